/**
 * Messages to bytes: exactly as mido sends them, each message whole with its
 * own status byte (no running status).
 *
 * @module
 */

import { SPECS } from "./_spec.ts";
import { checkMessage, type Message } from "./messages.ts";

/**
 * The number of bytes a message takes on the wire. The message is assumed
 * well-formed (see {@linkcode checkMessage}).
 *
 * @param msg The message.
 * @returns Its length in bytes.
 *
 * @example Sizing a buffer
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodedLength, message } from "@x/midisock/codec";
 *
 * assert.equal(encodedLength(message("sysex", { data: [1, 2] })), 4);
 * ```
 */
export function encodedLength(msg: Message): number {
  return msg.type === "sysex" ? msg.data.length + 2 : SPECS[msg.type].size;
}

/**
 * Writes a well-formed message into `target` at `offset`, without checking
 * it: the fast path for callers that checked it already.
 *
 * @param msg The message (already checked).
 * @param target Where to write; must have room for
 * {@linkcode encodedLength} bytes.
 * @param offset Where to start.
 * @returns The offset just past the message.
 *
 * @example Writing a burst into one buffer
 * ```ts
 * import assert from "node:assert/strict";
 * import { encodedLength, encodeInto, message } from "@x/midisock/codec";
 *
 * const burst = [message("note_on", { note: 60 }), message("clock")];
 * const buffer = new Uint8Array(burst.reduce((n, m) => n + encodedLength(m), 0));
 * let offset = 0;
 * for (const msg of burst) offset = encodeInto(msg, buffer, offset);
 * assert.deepEqual(buffer, new Uint8Array([0x90, 60, 64, 0xf8]));
 * ```
 */
export function encodeInto(
  msg: Message,
  target: Uint8Array,
  offset: number,
): number {
  return SPECS[msg.type].put(msg, target, offset);
}

/**
 * Encodes one message to its MIDI 1.0 bytes, checking it first.
 *
 * The bytes are the caller's own: a new buffer for each call. To encode many
 * messages into one buffer without an allocation each, use
 * {@linkcode encodeInto}.
 *
 * @param msg The message.
 * @returns Its bytes.
 * @throws {TypeError} For an unknown type or field, or a non-numeric value.
 * @throws {RangeError} For a value out of range.
 *
 * @example Encoding a note
 * ```ts
 * import assert from "node:assert/strict";
 * import { encode, message } from "@x/midisock/codec";
 *
 * assert.deepEqual(
 *   encode(message("note_on", { channel: 1, note: 60 })),
 *   new Uint8Array([0x91, 60, 64]),
 * );
 * ```
 */
export function encode(msg: Message): Uint8Array {
  checkMessage(msg);
  const bytes = new Uint8Array(encodedLength(msg));
  encodeInto(msg, bytes, 0);
  return bytes;
}
