/**
 * Internal: the one table of message specs that drives the codec (encoder,
 * parser, decoder, text form, checks), and the checks built on it.
 *
 * @module
 */

import type {
  Message,
  MessageType,
  Pitchwheel,
  QuarterFrame,
  Songpos,
  SongSelect,
  Sysex,
} from "./types.ts";

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
  /** Writes a checked message at `offset`; returns the offset past it. */
  readonly put: (msg: Message, target: Uint8Array, offset: number) => number;
  /**
   * Whether a record is a well-formed message of this type: the fast check.
   * `false` says only that the full check must run (to name the problem).
   */
  readonly valid: (r: Fields) => boolean;
}

type Fields = Record<string, number>;

/** Whether `time` is absent or a finite number. */
function timeOk(time: unknown): boolean {
  return time === undefined ||
    (typeof time === "number" && time - time === 0);
}

/** How many own enumerable keys a record has. */
function keyCount(r: object): number {
  let keys = 0;
  for (const _ in r) keys++;
  return keys;
}

/** Whether `x` is an integer in 0..mask, mask being 2^n - 1. */
function within(x: unknown, mask: number): boolean {
  return typeof x === "number" && (x & mask) === x;
}

/** `put` for a channel message of two data bytes named `a` and `b`. */
function put2(status: number, a: string, b: string): TypeSpec["put"] {
  return (msg, target, offset) => {
    const m = msg as unknown as Fields;
    target[offset] = status | m.channel;
    target[offset + 1] = m[a];
    target[offset + 2] = m[b];
    return offset + 3;
  };
}

/** `put` for a channel message of one data byte named `a`. */
function put1(status: number, a: string): TypeSpec["put"] {
  return (msg, target, offset) => {
    const m = msg as unknown as Fields;
    target[offset] = status | m.channel;
    target[offset + 1] = m[a];
    return offset + 2;
  };
}

// One row a type. `make` and `put` are written out per row, rather than
// assembled from `fields`, so that every message object has a fixed shape
// from birth and each type is written without a loop: the parser's and the
// encoder's hot paths depend on it.
const TABLE: readonly TypeSpec[] = [
  {
    type: "note_off",
    status: 0x80,
    fields: ["channel", "note", "velocity"],
    size: 3,
    put: put2(0x80, "note", "velocity"),
    valid: (r) =>
      within(r.channel, 15) && within(r.note, 127) && within(r.velocity, 127) &&
      timeOk(r.time) && keyCount(r) === (r.time === undefined ? 4 : 5),
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
    put: put2(0x90, "note", "velocity"),
    valid: (r) =>
      within(r.channel, 15) && within(r.note, 127) && within(r.velocity, 127) &&
      timeOk(r.time) && keyCount(r) === (r.time === undefined ? 4 : 5),
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
    put: put2(0xa0, "note", "value"),
    valid: (r) =>
      within(r.channel, 15) && within(r.note, 127) && within(r.value, 127) &&
      timeOk(r.time) && keyCount(r) === (r.time === undefined ? 4 : 5),
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
    put: put2(0xb0, "control", "value"),
    valid: (r) =>
      within(r.channel, 15) && within(r.control, 127) && within(r.value, 127) &&
      timeOk(r.time) && keyCount(r) === (r.time === undefined ? 4 : 5),
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
    put: put1(0xc0, "program"),
    valid: (r) =>
      within(r.channel, 15) && within(r.program, 127) && timeOk(r.time) &&
      keyCount(r) === (r.time === undefined ? 3 : 4),
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
    put: put1(0xd0, "value"),
    valid: (r) =>
      within(r.channel, 15) && within(r.value, 127) && timeOk(r.time) &&
      keyCount(r) === (r.time === undefined ? 3 : 4),
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
    put: (msg, target, offset) => {
      const m = msg as Pitchwheel;
      const unsigned = m.pitch + 8192;
      target[offset] = 0xe0 | m.channel;
      target[offset + 1] = unsigned & 0x7f;
      target[offset + 2] = unsigned >> 7;
      return offset + 3;
    },
    valid: (r) =>
      within(r.channel, 15) && typeof r.pitch === "number" &&
      within(r.pitch + 8192, 16383) && timeOk(r.time) &&
      keyCount(r) === (r.time === undefined ? 3 : 4),
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
    put: (msg, target, offset) => {
      const data = (msg as Sysex).data;
      target[offset] = 0xf0;
      target.set(data, offset + 1);
      target[offset + data.length + 1] = 0xf7;
      return offset + data.length + 2;
    },
    valid: () => false,
    make: () => ({ type: "sysex", data: new Uint8Array(0), time: 0 }),
  },
  {
    type: "quarter_frame",
    status: 0xf1,
    fields: ["frame_type", "frame_value"],
    size: 2,
    put: (msg, target, offset) => {
      const m = msg as QuarterFrame;
      target[offset] = 0xf1;
      target[offset + 1] = (m.frame_type << 4) | m.frame_value;
      return offset + 2;
    },
    valid: (r) =>
      within(r.frame_type, 7) && within(r.frame_value, 15) && timeOk(r.time) &&
      keyCount(r) === (r.time === undefined ? 3 : 4),
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
    put: (msg, target, offset) => {
      const pos = (msg as Songpos).pos;
      target[offset] = 0xf2;
      target[offset + 1] = pos & 0x7f;
      target[offset + 2] = pos >> 7;
      return offset + 3;
    },
    valid: (r) =>
      within(r.pos, 16383) && timeOk(r.time) &&
      keyCount(r) === (r.time === undefined ? 2 : 3),
    make: (_, a, b) => ({ type: "songpos", pos: a | (b << 7), time: 0 }),
  },
  {
    type: "song_select",
    status: 0xf3,
    fields: ["song"],
    size: 2,
    put: (msg, target, offset) => {
      target[offset] = 0xf3;
      target[offset + 1] = (msg as SongSelect).song;
      return offset + 2;
    },
    valid: (r) =>
      within(r.song, 127) && timeOk(r.time) &&
      keyCount(r) === (r.time === undefined ? 2 : 3),
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
    valid: (r) =>
      timeOk(r.time) && keyCount(r) === (r.time === undefined ? 1 : 2),
    put: (_, target, offset) => {
      target[offset] = status;
      return offset + 1;
    },
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

/**
 * The status byte a channel message goes out with (its channel added);
 * 0 for a system message.
 */
export function channelStatusOf(msg: Message): number {
  const status = SPECS[msg.type].status;
  return status < 0xf0 ? status | (msg as { channel: number }).channel : 0;
}

function typeList(): string {
  return TABLE.map((spec) => spec.type).join(", ");
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

/** Checks a message's time. */
export function checkTime(type: MessageType, value: unknown): number {
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

/** Builds a message of one spec from `init`, filling defaults from `base` or mido's. */
export function build(
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

/** Every message type's spec, by name, for the fast path of checks. */
export const SPEC_BY_NAME: ReadonlyMap<string, TypeSpec> = new Map(
  TABLE.map((spec) => [spec.type, spec]),
);
