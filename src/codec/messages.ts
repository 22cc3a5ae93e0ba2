/**
 * MIDI 1.0 messages as plain readonly objects, with mido's type and field
 * names: building, checking, copying and comparing them.
 *
 * @module
 */

import {
  build,
  checkData,
  checkField,
  checkTime,
  describe,
  SPEC_BY_NAME,
  specOf,
  SPECS,
} from "./_spec.ts";

export type {
  ActiveSensing,
  Aftertouch,
  Clock,
  Continue,
  ControlChange,
  Message,
  MessageBase,
  MessageInit,
  MessageOf,
  MessageType,
  NoteOff,
  NoteOn,
  Pitchwheel,
  Polytouch,
  ProgramChange,
  QuarterFrame,
  Reset,
  Songpos,
  SongSelect,
  Start,
  Stop,
  Sysex,
  TuneRequest,
} from "./types.ts";
import type {
  Message,
  MessageInit,
  MessageOf,
  MessageType,
  Sysex,
} from "./types.ts";

/** Every message type name, in status byte order. */
export const MESSAGE_TYPES: readonly MessageType[] = Object.freeze(
  Object.keys(SPECS) as MessageType[],
);

/**
 * Builds and checks one message, filling mido's defaults for what is left
 * out (velocity 64, every other field 0, sysex data empty, time 0).
 *
 * @param type The message type, as mido names it.
 * @param fields The fields to set.
 * @returns A new message.
 * @throws {TypeError} For an unknown type or field, or a value that is not a
 * number.
 * @throws {RangeError} For a value out of its field's range.
 *
 * @example Building messages
 * ```ts
 * import assert from "node:assert/strict";
 * import { message } from "@x/midisock";
 *
 * const on = message("note_on", { note: 60 });
 * assert.deepEqual(on, {
 *   type: "note_on",
 *   channel: 0,
 *   note: 60,
 *   velocity: 64,
 *   time: 0,
 * });
 * const dump = message("sysex", { data: [0x7e, 0x7f, 0x09, 0x01] });
 * assert.equal(dump.data.length, 4);
 * assert.throws(() => message("note_on", { note: 128 }), RangeError);
 * ```
 */
export function message<T extends MessageType>(
  type: T,
  fields?: MessageInit<T>,
): MessageOf<T> {
  const spec = specOf(type);
  if (fields !== undefined && (fields === null || typeof fields !== "object")) {
    throw new TypeError(
      `Message fields must be an object: got ${describe(fields)}`,
    );
  }
  return build(spec, (fields ?? {}) as Record<string, unknown>) as MessageOf<
    T
  >;
}

/**
 * Checks that a value is a well-formed message (every field present, in
 * range, no unknown field), as ports do before sending it.
 *
 * @param value What to check.
 * @returns The same value, typed.
 * @throws {TypeError} For a missing or unknown type or field.
 * @throws {RangeError} For a value out of range.
 *
 * @example Checking a message from elsewhere
 * ```ts
 * import assert from "node:assert/strict";
 * import { checkMessage } from "@x/midisock";
 *
 * const msg = checkMessage(JSON.parse('{"type":"clock"}'));
 * assert.equal(msg.type, "clock");
 * assert.throws(() => checkMessage({ type: "clock", extra: 1 }), TypeError);
 * ```
 */
export function checkMessage(value: unknown): Message {
  // The fast path: a well-formed message of a known type passes at once;
  // anything else takes the full check below, which names the problem.
  if (value !== null && typeof value === "object") {
    const spec = SPEC_BY_NAME.get((value as { type?: string }).type!);
    if (spec?.valid(value as Record<string, number>)) return value as Message;
  }
  if (value === null || typeof value !== "object") {
    throw new TypeError(`Expected a message object: got ${describe(value)}`);
  }
  const record = value as Record<string, unknown>;
  const spec = specOf(record.type);
  for (const name of spec.fields) {
    checkField(spec.type, name, record[name]);
  }
  if (spec.type === "sysex") {
    const data = record.data;
    if (!(data instanceof Uint8Array) && !Array.isArray(data)) {
      throw new TypeError(
        `sysex data must be a Uint8Array or an array of integers in 0..127: got ${
          describe(data)
        } (message() accepts any list and converts it)`,
      );
    }
    if (!(data instanceof Uint8Array) || data.some((b) => b > 127)) {
      checkData(data);
    }
  }
  if (record.time !== undefined) checkTime(spec.type, record.time);
  // Every field was found above: as many keys as expected means no others.
  let keys = 0;
  for (const _ in record) keys++;
  const expected = 1 + spec.fields.length + (spec.type === "sysex" ? 1 : 0) +
    (record.time !== undefined ? 1 : 0);
  if (keys !== expected) {
    for (const key of Object.keys(record)) {
      if (
        key !== "type" && key !== "time" &&
        !(spec.fields as string[]).includes(key) &&
        !(spec.type === "sysex" && key === "data")
      ) {
        throw new TypeError(`${spec.type} has no field ${JSON.stringify(key)}`);
      }
    }
  }
  return value as Message;
}

/**
 * Copies a message with some fields replaced, checking the result, as
 * mido's `msg.copy(**overrides)` does. The type cannot change.
 *
 * @param msg The message to copy.
 * @param overrides The fields to replace.
 * @returns A new message.
 * @throws {TypeError} For an unknown field or a change of type.
 * @throws {RangeError} For a value out of range.
 *
 * @example Transposing a note
 * ```ts
 * import assert from "node:assert/strict";
 * import { copy, message } from "@x/midisock";
 *
 * const on = message("note_on", { note: 60 });
 * assert.equal(copy(on, { note: on.note + 12 }).note, 72);
 * ```
 */
export function copy<M extends Message>(
  msg: M,
  overrides?: MessageInit<M["type"]>,
): M {
  const init = (overrides ?? {}) as Record<string, unknown>;
  if (init.type !== undefined && init.type !== msg.type) {
    throw new TypeError(
      `Cannot change a message's type from ${msg.type} to ${
        describe(init.type)
      }`,
    );
  }
  return build(
    specOf(msg.type),
    init,
    msg as unknown as Record<string, unknown>,
  ) as M;
}

/**
 * Compares two messages field by field, ignoring `time`, as mido does.
 *
 * @param a One message.
 * @param b The other.
 * @returns Whether they would be the same bytes on the wire.
 *
 * @example Comparing messages
 * ```ts
 * import assert from "node:assert/strict";
 * import { equals, message } from "@x/midisock";
 *
 * assert.ok(equals(
 *   message("note_on", { note: 60, time: 1 }),
 *   message("note_on", { note: 60 }),
 * ));
 * ```
 */
export function equals(a: Message, b: Message): boolean {
  if (a.type !== b.type) return false;
  const spec = SPECS[a.type];
  const ra = a as unknown as Record<string, number>;
  const rb = b as unknown as Record<string, number>;
  for (const name of spec.fields) {
    if (ra[name] !== rb[name]) return false;
  }
  if (a.type === "sysex") {
    const da = a.data;
    const db = (b as Sysex).data;
    if (da.length !== db.length) return false;
    for (let i = 0; i < da.length; i++) if (da[i] !== db[i]) return false;
  }
  return true;
}

/**
 * Tells whether a message is a system realtime message (clock, start,
 * continue, stop, active_sensing, reset): one byte, allowed anywhere.
 *
 * @param msg The message.
 * @returns `true` for realtime messages.
 *
 * @example Filtering out clock
 * ```ts
 * import assert from "node:assert/strict";
 * import { isRealtime, message } from "@x/midisock";
 *
 * assert.ok(isRealtime(message("clock")));
 * assert.ok(!isRealtime(message("note_on")));
 * ```
 */
export function isRealtime(msg: Message): boolean {
  return SPECS[msg.type].status >= 0xf8;
}

/**
 * Tells whether a message belongs to a channel (note, controller, program,
 * pressure, pitch bend): it has a `channel` field.
 *
 * @param msg The message.
 * @returns `true` for channel messages.
 *
 * @example Re-channelling
 * ```ts
 * import assert from "node:assert/strict";
 * import { copy, isChannelMessage, message } from "@x/midisock";
 *
 * const msg = message("program_change", { program: 5 });
 * assert.ok(isChannelMessage(msg));
 * assert.equal(copy(msg, { channel: 9 }).channel, 9);
 * ```
 */
export function isChannelMessage(
  msg: Message,
): msg is Extract<Message, { channel: number }> {
  return SPECS[msg.type].status < 0xf0;
}
