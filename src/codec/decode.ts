/**
 * Bytes to one message, strictly: for callers that hold exactly one whole
 * message (a hardware callback, a test). Streams go through `Parser`.
 *
 * @module
 */

import type { Message } from "./messages.ts";
import { SPEC_BY_STATUS } from "./_spec.ts";

function hex(byte: number): string {
  return `0x${byte.toString(16).padStart(2, "0")}`;
}

/**
 * Thrown by {@linkcode decode} for bytes that are not exactly one message.
 *
 * @example Reporting where bytes went wrong
 * ```ts
 * import assert from "node:assert/strict";
 * import { decode, DecodeError } from "@x/midisock/codec";
 *
 * assert.throws(
 *   () => decode(new Uint8Array([0x90, 60])),
 *   (error) => error instanceof DecodeError && error.offset === 2,
 * );
 * ```
 */
export class DecodeError extends SyntaxError {
  /** Where in the input the problem is. */
  readonly offset: number;

  /**
   * Makes the error.
   *
   * @param message What is wrong.
   * @param offset Where.
   */
  constructor(message: string, offset: number) {
    super(`${message} (at offset ${offset})`);
    this.name = "DecodeError";
    this.offset = offset;
  }
}

/**
 * Decodes exactly one complete MIDI 1.0 message.
 *
 * @param bytes The message's bytes, from status byte to end.
 * @returns The message, with `time` 0.
 * @throws {DecodeError} If the bytes are empty, start with a data byte or an
 * undefined status, are too short or too long for their type, hold a status
 * byte where data belongs, or are an unterminated sysex.
 *
 * @example Decoding a control change
 * ```ts
 * import assert from "node:assert/strict";
 * import { decode } from "@x/midisock/codec";
 *
 * assert.deepEqual(decode(new Uint8Array([0xb0, 7, 100])), {
 *   type: "control_change",
 *   channel: 0,
 *   control: 7,
 *   value: 100,
 *   time: 0,
 * });
 * ```
 */
export function decode(bytes: Uint8Array): Message {
  if (bytes.length === 0) throw new DecodeError("No bytes to decode", 0);
  const status = bytes[0];
  if (status < 0x80) {
    throw new DecodeError(
      `Expected a status byte (0x80-0xff), got data byte ${hex(status)}`,
      0,
    );
  }
  const spec = status === 0xf7 ? undefined : SPEC_BY_STATUS[status - 0x80];
  if (spec === undefined) {
    throw new DecodeError(
      `Status byte ${hex(status)} starts no MIDI message`,
      0,
    );
  }
  const size = spec.type === "sysex" ? bytes.length : spec.size;
  const end = spec.type === "sysex" ? bytes.length - 1 : bytes.length;
  for (let i = 1; i < Math.min(end, size); i++) {
    if (bytes[i] >= 0x80) {
      throw new DecodeError(
        `${spec.type} expects data bytes (0x00-0x7f), got ${hex(bytes[i])}`,
        i,
      );
    }
  }
  if (spec.type === "sysex") {
    if (bytes.length < 2 || bytes[bytes.length - 1] !== 0xf7) {
      throw new DecodeError(
        "sysex must end with 0xf7",
        bytes.length,
      );
    }
    return { type: "sysex", data: bytes.slice(1, -1), time: 0 };
  }
  if (bytes.length !== size) {
    throw new DecodeError(
      `${spec.type} takes ${size} bytes, got ${bytes.length}`,
      Math.min(bytes.length, size),
    );
  }
  return spec.make(status, bytes[1], bytes[2]);
}
