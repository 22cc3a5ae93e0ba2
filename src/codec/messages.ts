/**
 * MIDI 1.0 messages as plain readonly objects, with mido's type and field
 * names, and the one table that drives every part of the codec.
 *
 * @module
 */

/** Fields every message may carry. */
export interface MessageBase {
  /**
   * Time in seconds, as mido uses it: never sent on the wire. Ports that
   * know it (hardware inputs) fill in the time since the previous message.
   * @default {0}
   */
  readonly time?: number;
}

/** A key released: `8n kk vv`. */
export interface NoteOff extends MessageBase {
  /** The message type. */
  readonly type: "note_off";
  /** Channel, 0-15. */
  readonly channel: number;
  /** Note number, 0-127. */
  readonly note: number;
  /** Release velocity, 0-127. */
  readonly velocity: number;
}

/** A key pressed: `9n kk vv` (velocity 0 is kept as note_on, as in mido). */
export interface NoteOn extends MessageBase {
  /** The message type. */
  readonly type: "note_on";
  /** Channel, 0-15. */
  readonly channel: number;
  /** Note number, 0-127. */
  readonly note: number;
  /** Velocity, 0-127. */
  readonly velocity: number;
}

/** Polyphonic key pressure: `An kk vv`. */
export interface Polytouch extends MessageBase {
  /** The message type. */
  readonly type: "polytouch";
  /** Channel, 0-15. */
  readonly channel: number;
  /** Note number, 0-127. */
  readonly note: number;
  /** Pressure, 0-127. */
  readonly value: number;
}

/** A controller change: `Bn cc vv`. */
export interface ControlChange extends MessageBase {
  /** The message type. */
  readonly type: "control_change";
  /** Channel, 0-15. */
  readonly channel: number;
  /** Controller number, 0-127. */
  readonly control: number;
  /** Controller value, 0-127. */
  readonly value: number;
}

/** A program change: `Cn pp`. */
export interface ProgramChange extends MessageBase {
  /** The message type. */
  readonly type: "program_change";
  /** Channel, 0-15. */
  readonly channel: number;
  /** Program number, 0-127. */
  readonly program: number;
}

/** Channel pressure: `Dn vv`. */
export interface Aftertouch extends MessageBase {
  /** The message type. */
  readonly type: "aftertouch";
  /** Channel, 0-15. */
  readonly channel: number;
  /** Pressure, 0-127. */
  readonly value: number;
}

/** Pitch bend: `En ll mm`, sent as `pitch + 8192` in 14 bits. */
export interface Pitchwheel extends MessageBase {
  /** The message type. */
  readonly type: "pitchwheel";
  /** Channel, 0-15. */
  readonly channel: number;
  /** Bend, -8192..8191 (0 is centre). */
  readonly pitch: number;
}

/** System exclusive: `F0 data F7`. */
export interface Sysex extends MessageBase {
  /** The message type. */
  readonly type: "sysex";
  /** The bytes between F0 and F7, each 0-127. */
  readonly data: Uint8Array;
}

/** MIDI time code quarter frame: `F1 (frame_type << 4 | frame_value)`. */
export interface QuarterFrame extends MessageBase {
  /** The message type. */
  readonly type: "quarter_frame";
  /** Which part of the time code, 0-7. */
  readonly frame_type: number;
  /** Its value, 0-15. */
  readonly frame_value: number;
}

/** Song position pointer: `F2 ll mm`. */
export interface Songpos extends MessageBase {
  /** The message type. */
  readonly type: "songpos";
  /** Position in MIDI beats (sixteenth notes), 0-16383. */
  readonly pos: number;
}

/** Song select: `F3 ss`. */
export interface SongSelect extends MessageBase {
  /** The message type. */
  readonly type: "song_select";
  /** Song number, 0-127. */
  readonly song: number;
}

/** Tune request: `F6`. */
export interface TuneRequest extends MessageBase {
  /** The message type. */
  readonly type: "tune_request";
}

/** Timing clock, 24 per quarter note: `F8`. */
export interface Clock extends MessageBase {
  /** The message type. */
  readonly type: "clock";
}

/** Start: `FA`. */
export interface Start extends MessageBase {
  /** The message type. */
  readonly type: "start";
}

/** Continue: `FB`. */
export interface Continue extends MessageBase {
  /** The message type. */
  readonly type: "continue";
}

/** Stop: `FC`. */
export interface Stop extends MessageBase {
  /** The message type. */
  readonly type: "stop";
}

/** Active sensing: `FE`. */
export interface ActiveSensing extends MessageBase {
  /** The message type. */
  readonly type: "active_sensing";
}

/** System reset: `FF`. */
export interface Reset extends MessageBase {
  /** The message type. */
  readonly type: "reset";
}

/** Any MIDI 1.0 message, discriminated by `type`. */
export type Message =
  | NoteOff
  | NoteOn
  | Polytouch
  | ControlChange
  | ProgramChange
  | Aftertouch
  | Pitchwheel
  | Sysex
  | QuarterFrame
  | Songpos
  | SongSelect
  | TuneRequest
  | Clock
  | Start
  | Continue
  | Stop
  | ActiveSensing
  | Reset;

/** The name of a message type, such as `"note_on"`. */
export type MessageType = Message["type"];

/** The message object of one type. */
export type MessageOf<T extends MessageType> = Extract<Message, { type: T }>;

/**
 * The fields {@linkcode message} accepts for one type: every field optional
 * (mido's defaults fill the rest), sysex `data` as any list of numbers.
 */
export type MessageInit<T extends MessageType> =
  & {
    -readonly [K in Exclude<keyof MessageOf<T>, "type" | "data">]?: MessageOf<
      T
    >[K];
  }
  & (T extends "sysex" ? { data?: Iterable<number> | ArrayLike<number> }
    : Record<never, never>);

/** A numeric field's name. */
export type FieldName =
  | "channel"
  | "note"
  | "velocity"
  | "value"
  | "control"
  | "program"
  | "pitch"
  | "frame_type"
  | "frame_value"
  | "pos"
  | "song";

/**
 * How a numeric field is stored: `min`/`max` bound it, and `bits` says where
 * it goes on the wire (`"status"`: low nibble of the status byte; 7: one data
 * byte; 14: two data bytes, low 7 bits first, `max - min` offset by `-min`;
 * `"high"`/`"low"`: the two nibbles of one data byte).
 */
export interface FieldSpec {
  readonly min: number;
  readonly max: number;
  readonly bits: "status" | 7 | 14 | "high" | "low";
}

/** Every numeric field, its range and its wire form. */
export const FIELDS: Readonly<Record<FieldName, FieldSpec>> = {
  channel: { min: 0, max: 15, bits: "status" },
  note: { min: 0, max: 127, bits: 7 },
  velocity: { min: 0, max: 127, bits: 7 },
  value: { min: 0, max: 127, bits: 7 },
  control: { min: 0, max: 127, bits: 7 },
  program: { min: 0, max: 127, bits: 7 },
  pitch: { min: -8192, max: 8191, bits: 14 },
  frame_type: { min: 0, max: 7, bits: "high" },
  frame_value: { min: 0, max: 15, bits: "low" },
  pos: { min: 0, max: 16383, bits: 14 },
  song: { min: 0, max: 127, bits: 7 },
};

/**
 * One message type: its status byte (channel 0 for channel messages), its
 * fields in mido's order, its length on the wire (0 for sysex, which has
 * none fixed), and `make`, which builds the message from the status byte and
 * the two data bytes as they arrived.
 */
export interface TypeSpec {
  readonly type: MessageType;
  readonly status: number;
  readonly fields: readonly FieldName[];
  readonly size: number;
  readonly make: (status: number, d1: number, d2: number) => Message;
}

// One row a type. `make` is written out per row, rather than assembled from
// `fields`, so that every message object has a fixed shape from birth: the
// parser's hot path depends on it.
const TABLE: readonly TypeSpec[] = [
  {
    type: "note_off",
    status: 0x80,
    fields: ["channel", "note", "velocity"],
    size: 3,
    make: (s, a, b) => ({
      type: "note_off",
      channel: s & 15,
      note: a,
      velocity: b,
      time: 0,
    }),
  },
  {
    type: "note_on",
    status: 0x90,
    fields: ["channel", "note", "velocity"],
    size: 3,
    make: (s, a, b) => ({
      type: "note_on",
      channel: s & 15,
      note: a,
      velocity: b,
      time: 0,
    }),
  },
  {
    type: "polytouch",
    status: 0xa0,
    fields: ["channel", "note", "value"],
    size: 3,
    make: (s, a, b) => ({
      type: "polytouch",
      channel: s & 15,
      note: a,
      value: b,
      time: 0,
    }),
  },
  {
    type: "control_change",
    status: 0xb0,
    fields: ["channel", "control", "value"],
    size: 3,
    make: (s, a, b) => ({
      type: "control_change",
      channel: s & 15,
      control: a,
      value: b,
      time: 0,
    }),
  },
  {
    type: "program_change",
    status: 0xc0,
    fields: ["channel", "program"],
    size: 2,
    make: (s, a) => ({
      type: "program_change",
      channel: s & 15,
      program: a,
      time: 0,
    }),
  },
  {
    type: "aftertouch",
    status: 0xd0,
    fields: ["channel", "value"],
    size: 2,
    make: (s, a) => ({
      type: "aftertouch",
      channel: s & 15,
      value: a,
      time: 0,
    }),
  },
  {
    type: "pitchwheel",
    status: 0xe0,
    fields: ["channel", "pitch"],
    size: 3,
    make: (s, a, b) => ({
      type: "pitchwheel",
      channel: s & 15,
      pitch: (a | (b << 7)) - 8192,
      time: 0,
    }),
  },
  {
    type: "sysex",
    status: 0xf0,
    fields: [],
    size: 0,
    make: () => ({ type: "sysex", data: new Uint8Array(0), time: 0 }),
  },
  {
    type: "quarter_frame",
    status: 0xf1,
    fields: ["frame_type", "frame_value"],
    size: 2,
    make: (_, a) => ({
      type: "quarter_frame",
      frame_type: a >> 4,
      frame_value: a & 15,
      time: 0,
    }),
  },
  {
    type: "songpos",
    status: 0xf2,
    fields: ["pos"],
    size: 3,
    make: (_, a, b) => ({ type: "songpos", pos: a | (b << 7), time: 0 }),
  },
  {
    type: "song_select",
    status: 0xf3,
    fields: ["song"],
    size: 2,
    make: (_, a) => ({ type: "song_select", song: a, time: 0 }),
  },
  simple("tune_request", 0xf6),
  simple("clock", 0xf8),
  simple("start", 0xfa),
  simple("continue", 0xfb),
  simple("stop", 0xfc),
  simple("active_sensing", 0xfe),
  simple("reset", 0xff),
];

function simple(type: MessageType, status: number): TypeSpec {
  return {
    type,
    status,
    fields: [],
    size: 1,
    make: () => ({ type, time: 0 }) as Message,
  };
}

/** Every message type's spec, by name. */
export const SPECS: Readonly<Record<MessageType, TypeSpec>> = Object
  .fromEntries(TABLE.map((spec) => [spec.type, spec])) as Record<
    MessageType,
    TypeSpec
  >;

/**
 * Spec by status byte: index `status - 0x80`; channel messages appear for
 * all 16 channels, undefined status bytes are `undefined`.
 */
export const SPEC_BY_STATUS: readonly (TypeSpec | undefined)[] = (() => {
  const table: (TypeSpec | undefined)[] = new Array(128).fill(undefined);
  for (const spec of TABLE) {
    const count = spec.status < 0xf0 ? 16 : 1;
    for (let i = 0; i < count; i++) table[spec.status - 0x80 + i] = spec;
  }
  return table;
})();

/** Every message type name, in status byte order. */
export const MESSAGE_TYPES: readonly MessageType[] = TABLE.map((s) => s.type);

function typeList(): string {
  return MESSAGE_TYPES.join(", ");
}

/**
 * Looks up the spec of a type name.
 *
 * @throws {TypeError} If the name is not a message type.
 */
export function specOf(type: unknown): TypeSpec {
  const spec = typeof type === "string"
    ? Object.hasOwn(SPECS, type) ? SPECS[type as MessageType] : undefined
    : undefined;
  if (spec === undefined) {
    throw new TypeError(
      `Unknown message type ${
        JSON.stringify(type)
      }: expected one of ${typeList()}`,
    );
  }
  return spec;
}

/** Checks one numeric field's value, naming the type, field and range. */
export function checkField(
  type: MessageType,
  name: FieldName,
  value: unknown,
): number {
  const { min, max } = FIELDS[name];
  if (typeof value !== "number") {
    throw new TypeError(
      `${type} ${name} must be an integer in ${min}..${max}: got ${
        describe(value)
      }`,
    );
  }
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(
      `${type} ${name} must be an integer in ${min}..${max}: got ${value}`,
    );
  }
  return value;
}

function checkTime(type: MessageType, value: unknown): number {
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new TypeError(
      `${type} time must be a finite number: got ${describe(value)}`,
    );
  }
  return value;
}

/** Checks and copies sysex data. */
export function checkData(value: unknown): Uint8Array {
  if (
    value === null || typeof value !== "object" ||
    !(Symbol.iterator in value || "length" in value)
  ) {
    throw new TypeError(
      `sysex data must be a list of integers in 0..127: got ${describe(value)}`,
    );
  }
  const list = value instanceof Uint8Array
    ? value
    : Array.from(value as Iterable<unknown> | ArrayLike<unknown>);
  const data = new Uint8Array(list.length);
  for (let i = 0; i < list.length; i++) {
    const byte = list[i];
    if (typeof byte !== "number") {
      throw new TypeError(
        `sysex data[${i}] must be an integer in 0..127: got ${describe(byte)}`,
      );
    }
    if (!Number.isInteger(byte) || byte < 0 || byte > 127) {
      throw new RangeError(
        `sysex data[${i}] must be an integer in 0..127: got ${byte}`,
      );
    }
    data[i] = byte;
  }
  return data;
}

/** Describes a value for an error message. */
export function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `${value}n`;
  if (value === null || typeof value !== "object") return String(value);
  if (Array.isArray(value)) return "an array";
  return `an object (${value.constructor?.name ?? "Object"})`;
}

function build(
  spec: TypeSpec,
  init: Record<string, unknown>,
  base?: Record<string, unknown>,
): Message {
  for (const key of Object.keys(init)) {
    if (
      key !== "time" && !(spec.fields as string[]).includes(key) &&
      !(spec.type === "sysex" && key === "data") && key !== "type"
    ) {
      const allowed = [
        ...spec.fields,
        ...(spec.type === "sysex" ? ["data"] : []),
        "time",
      ];
      throw new TypeError(
        `${spec.type} has no field ${JSON.stringify(key)}: expected ${
          allowed.join(", ")
        }`,
      );
    }
  }
  const out: Record<string, unknown> = { type: spec.type };
  for (const name of spec.fields) {
    const value = init[name] ?? base?.[name] ??
      (name === "velocity" ? 64 : 0);
    out[name] = checkField(spec.type, name, value);
  }
  if (spec.type === "sysex") {
    const data = init.data ?? base?.data ?? [];
    out.data = checkData(data);
  }
  out.time = checkTime(spec.type, init.time ?? base?.time ?? 0);
  return out as unknown as Message;
}

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
 * import { message } from "@x/midisock";
 *
 * const on = message("note_on", { note: 60 });
 * console.log(on); // { type: "note_on", channel: 0, note: 60, velocity: 64, time: 0 }
 * const dump = message("sysex", { data: [0x7e, 0x7f, 0x09, 0x01] });
 * console.log(dump.data.length); // 4
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
 * import { checkMessage } from "@x/midisock";
 *
 * const msg = checkMessage(JSON.parse('{"type":"clock"}'));
 * console.log(msg.type); // clock
 * ```
 */
export function checkMessage(value: unknown): Message {
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
 * Checks every message of a list, as `sendAll` does before sending any.
 *
 * @param messages The messages.
 * @returns Them, as an array.
 * @throws {TypeError | RangeError} For the first malformed one.
 */
export function checkMessages(messages: Iterable<Message>): Message[] {
  const list = [...messages];
  for (const msg of list) checkMessage(msg);
  return list;
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
 * import { copy, message } from "@x/midisock";
 *
 * const on = message("note_on", { note: 60 });
 * console.log(copy(on, { note: on.note + 12 }).note); // 72
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
 * import { equals, message } from "@x/midisock";
 *
 * console.log(equals(
 *   message("note_on", { note: 60, time: 1 }),
 *   message("note_on", { note: 60 }),
 * )); // true
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
 * import { isRealtime, message } from "@x/midisock";
 *
 * console.log(isRealtime(message("clock"))); // true
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
 * import { copy, isChannelMessage, message } from "@x/midisock";
 *
 * const msg = message("program_change", { program: 5 });
 * if (isChannelMessage(msg)) console.log(copy(msg, { channel: 9 }).channel); // 9
 * ```
 */
export function isChannelMessage(
  msg: Message,
): msg is Extract<Message, { channel: number }> {
  return SPECS[msg.type].status < 0xf0;
}
