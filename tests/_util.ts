// Shared test helpers: a seeded random source and message generators.

import { type Message, message, MESSAGE_TYPES } from "../mod.ts";
import { FIELDS, SPECS } from "../src/codec/_spec.ts";

/** A small seeded PRNG (mulberry32), so generated cases repeat exactly. */
export function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An integer in min..max inclusive. */
export function between(next: () => number, min: number, max: number): number {
  return min + Math.floor(next() * (max - min + 1));
}

/** A random well-formed message of a random (or given) type. */
export function randomMessage(
  next: () => number,
  type = MESSAGE_TYPES[between(next, 0, MESSAGE_TYPES.length - 1)],
  maxSysex = 40,
): Message {
  const fields: Record<string, unknown> = {};
  for (const name of SPECS[type].fields) {
    fields[name] = between(next, FIELDS[name].min, FIELDS[name].max);
  }
  if (type === "sysex") {
    fields.data = Array.from(
      { length: between(next, 0, maxSysex) },
      () => between(next, 0, 127),
    );
  }
  return message(type, fields);
}

/** Concatenates byte arrays. */
export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** Registers a test that runs with no permission at all. */
export function pureTest(name: string, fn: () => void | Promise<void>): void {
  Deno.test({ name, permissions: "none", fn });
}
