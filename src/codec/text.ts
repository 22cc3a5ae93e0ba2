/**
 * mido's text form of a message: `note_on channel=0 note=60 velocity=64 time=0`.
 *
 * @module
 */

import {
  checkData,
  checkField,
  describe,
  type FieldName,
  specOf,
  SPECS,
} from "./_spec.ts";
import { type Message, message, type MessageType } from "./messages.ts";

/**
 * Formats a number as Python's `str()` does, so that times read the same as
 * in mido: integers without a fraction, scientific notation below 1e-4 and
 * from 1e16 (`1e-05`, `1e+16`).
 */
function formatNumber(value: number): string {
  if (Number.isInteger(value) && Math.abs(value) < 1e16) return String(value);
  if (!Number.isFinite(value)) {
    return Number.isNaN(value) ? "nan" : value > 0 ? "inf" : "-inf";
  }
  const [mantissa, exponentText] = value.toExponential().split("e");
  const exponent = Number(exponentText);
  if (exponent < -4 || exponent >= 16) {
    const digits = String(Math.abs(exponent)).padStart(2, "0");
    return `${mantissa}e${exponent < 0 ? "-" : "+"}${digits}`;
  }
  return String(value);
}

/**
 * Formats a message in mido's text form, the same characters as mido's
 * `str(msg)`: the type, then each field as `name=value` in mido's order, then
 * `time`. Sysex data reads `data=(1,2,3)`.
 *
 * mido prints a float time that is a whole number as `2.0`; JavaScript has
 * one number type, so midisock prints `2`, which mido reads back the same.
 *
 * @param msg The message.
 * @returns Its text.
 *
 * @example Printing a message as mido does
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatMessage, message } from "@x/midisock";
 *
 * assert.equal(
 *   formatMessage(message("note_on", { note: 60 })),
 *   "note_on channel=0 note=60 velocity=64 time=0",
 * );
 * assert.equal(
 *   formatMessage(message("sysex", { data: [1, 2, 3] })),
 *   "sysex data=(1,2,3) time=0",
 * );
 * ```
 */
export function formatMessage(msg: Message): string {
  const spec = SPECS[msg.type];
  let text: string = msg.type;
  const record = msg as unknown as Record<string, number>;
  for (const name of spec.fields) text += ` ${name}=${record[name]}`;
  if (msg.type === "sysex") text += ` data=(${msg.data.join(",")})`;
  return `${text} time=${formatNumber(msg.time ?? 0)}`;
}

const INTEGER = /^[+-]?\d+$/;
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;
const DATA = /^\(\s*([+-]?\d+\s*(,\s*[+-]?\d+\s*)*,?)?\s*\)$/;
const ARGUMENT = /(\S+?)=(\([^)]*\)|\S*)|(\S+)/g;

function fail(text: string, part: string, why: string, cause?: unknown): never {
  throw new SyntaxError(
    `Cannot parse message ${JSON.stringify(text)}: ${why} in ${
      JSON.stringify(part)
    }`,
    cause === undefined ? undefined : { cause },
  );
}

/**
 * Parses mido's text form back into a message, as mido's
 * `Message.from_str()` does: the type, then `name=value` pairs in any order;
 * fields left out take mido's defaults.
 *
 * @param text The text, such as `note_on note=60 velocity=100`.
 * @returns The message.
 * @throws {SyntaxError} For text that is not a message, quoting the bad
 * part; a value out of range keeps its `RangeError` as the `cause`.
 *
 * @example Reading a message typed by a person
 * ```ts
 * import assert from "node:assert/strict";
 * import { message, parseMessage } from "@x/midisock";
 *
 * assert.deepEqual(
 *   parseMessage("control_change control=7 value=100"),
 *   message("control_change", { control: 7, value: 100 }),
 * );
 * assert.deepEqual(
 *   parseMessage("sysex data=(1,2,3)"),
 *   message("sysex", { data: [1, 2, 3] }),
 * );
 * assert.throws(() => parseMessage("note_on note=300"), SyntaxError);
 * ```
 */
export function parseMessage(text: string): Message {
  if (typeof text !== "string") {
    throw new TypeError(`Expected message text: got ${describe(text)}`);
  }
  const trimmed = text.trim();
  const space = trimmed.search(/\s/);
  const type = space < 0 ? trimmed : trimmed.slice(0, space);
  if (type === "") fail(text, text, "no message type");
  let spec;
  try {
    spec = specOf(type);
  } catch (error) {
    fail(text, type, "unknown message type", error);
  }
  const fields: Record<string, unknown> = {};
  const rest = space < 0 ? "" : trimmed.slice(space);
  for (const match of rest.matchAll(ARGUMENT)) {
    const [part, name, value, bare] = match;
    if (bare !== undefined) fail(text, part, "expected name=value");
    if (Object.hasOwn(fields, name)) fail(text, part, "repeated field");
    try {
      if (name === "data" && spec.type === "sysex") {
        if (!DATA.test(value)) fail(text, part, "expected data=(n,n,...)");
        const inner = value.slice(1, -1).split(",").map((s) => s.trim());
        fields.data = checkData(inner.filter((s) => s !== "").map(Number));
      } else if (name === "time") {
        if (!NUMBER.test(value) || !Number.isFinite(Number(value))) {
          fail(text, part, "time must be a finite number");
        }
        fields.time = Number(value);
      } else if ((spec.fields as readonly string[]).includes(name)) {
        if (!INTEGER.test(value)) {
          fail(text, part, `${name} must be an integer`);
        }
        fields[name] = checkField(spec.type, name as FieldName, Number(value));
      } else {
        fail(text, part, `${type} has no field ${JSON.stringify(name)}`);
      }
    } catch (error) {
      if (error instanceof SyntaxError) throw error;
      fail(text, part, (error as Error).message, error);
    }
  }
  return message(type as MessageType, fields);
}
