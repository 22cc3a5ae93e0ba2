/**
 * Internal: the MIDI 1.0 stream rules, once. A framer turns a byte stream,
 * cut anywhere, into framed bytes: every complete message whole, each with
 * its own status byte (running status written out, realtime bytes lifted
 * out of the messages they interrupted, unfinished and oversized messages
 * dropped). The parser decodes framed bytes into messages; the hub routes
 * them as they are.
 *
 * @module
 */

import type { Message } from "./messages.ts";
import { SPEC_BY_STATUS, SPECS, type TypeSpec } from "./_spec.ts";

const INITIAL_SYSEX_BUFFER = 256;
const KEPT_SYSEX_BUFFER = 4 * 1024;
const KEPT_OUT = 256 * 1024;

/**
 * Where every framer writes: one buffer for all of them, since each call's
 * output is read before the next call (a server with thousands of clients
 * must not hold a buffer per client).
 */
let shared = new Uint8Array(16 * 1024);

/**
 * Length of a framed message by its status byte (index `status - 0x80`):
 * 0 for sysex (up to its F7), -1 for bytes that never start one.
 */
export const FRAMED_SIZE: Int8Array = (() => {
  const table = new Int8Array(128).fill(-1);
  for (let i = 0; i < 128; i++) {
    const spec = SPEC_BY_STATUS[i];
    if (spec !== undefined) table[i] = spec.size;
  }
  return table;
})();

/** A stream framer: see the module doc. It never throws on input. */
export class Framer {
  readonly #max: number;
  /** Running status byte, or 0 when there is none. */
  #status = 0;
  /** Data bytes the current status takes: 1 or 2. */
  #need = 0;
  /** Data bytes of the current message seen so far: 0 or 1. */
  #count = 0;
  #first = 0;
  #inSysex = false;
  #sysexOverflow = false;
  #sysex = new Uint8Array(INITIAL_SYSEX_BUFFER);
  #sysexLength = 0;
  #dropped = 0;

  /**
   * Makes a framer with no state.
   *
   * @param maxSysexLength The longest sysex kept, in data bytes.
   */
  constructor(maxSysexLength: number) {
    this.#max = maxSysexLength;
  }

  /** The longest sysex kept, in data bytes. */
  get maxSysexLength(): number {
    return this.#max;
  }

  /** Incomplete, interrupted or oversized messages dropped so far. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Whether a message is in progress. */
  get pending(): boolean {
    return this.#inSysex || this.#count > 0;
  }

  /** Forgets any unfinished message and the running status. */
  reset(): void {
    if (this.pending) this.#dropped++;
    this.#status = 0;
    this.#count = 0;
    this.#inSysex = false;
    this.#sysexLength = 0;
  }

  /**
   * Frames the next piece of the stream.
   *
   * @returns The framed bytes of the messages this piece completed: a view
   * of a buffer the next call of any framer reuses (copy it to keep it).
   */
  frame(chunk: Uint8Array): Uint8Array {
    // Framed output is never longer than twice the input (a data byte pair
    // under running status gains its status byte), plus what a sysex held.
    const bound = chunk.length * 2 +
      (this.#inSysex ? this.#sysexLength + 2 : 0);
    let out = shared;
    if (out.length < bound) {
      out = shared = new Uint8Array(Math.max(bound, out.length * 2));
    }
    let n = 0;
    let status = this.#status;
    let need = this.#need;
    let count = this.#count;
    let first = this.#first;
    const length = chunk.length;
    for (let i = 0; i < length; i++) {
      const byte = chunk[i];
      if (byte < 0x80) {
        if (this.#inSysex) {
          let end = i + 1;
          while (end < length && chunk[end] < 0x80) end++;
          this.#appendSysex(chunk, i, end);
          i = end - 1;
        } else if (status !== 0) {
          if (count + 1 < need) {
            first = byte;
            count = 1;
          } else {
            out[n++] = status;
            if (need === 2) out[n++] = first;
            out[n++] = byte;
            count = 0;
            if (status >= 0xf0) status = 0;
          }
        }
        continue;
      }
      if (byte >= 0xf8) {
        if (SPEC_BY_STATUS[byte - 0x80] !== undefined) out[n++] = byte;
        continue;
      }
      // A status byte, 0x80-0xf7: whatever was unfinished ends here.
      if (this.#inSysex) {
        this.#inSysex = false;
        if (byte === 0xf7) {
          if (this.#sysexOverflow) this.#dropped++;
          else n = this.#putSysex(n);
          out = shared;
          continue;
        }
        this.#dropped++;
        this.#forgetSysex();
      } else if (count > 0) {
        this.#dropped++;
      }
      count = 0;
      status = 0;
      if (byte === 0xf0) {
        this.#inSysex = true;
        this.#sysexOverflow = false;
        this.#sysexLength = 0;
        continue;
      }
      const size = byte === 0xf7 ? -1 : FRAMED_SIZE[byte - 0x80];
      if (size < 1) continue;
      if (size === 1) {
        out[n++] = byte;
        continue;
      }
      status = byte;
      need = size - 1;
    }
    this.#status = status;
    this.#need = need;
    this.#count = count;
    this.#first = first;
    if (shared.length > KEPT_OUT) {
      // Let a buffer grown for one big sysex go once it is read.
      const framed = shared.slice(0, n);
      shared = new Uint8Array(KEPT_OUT);
      return framed;
    }
    return shared.subarray(0, n);
  }

  #appendSysex(chunk: Uint8Array, start: number, end: number): void {
    if (this.#sysexOverflow) return;
    const length = this.#sysexLength + (end - start);
    if (length > this.#max) {
      this.#sysexOverflow = true;
      this.#forgetSysex();
      return;
    }
    if (length > this.#sysex.length) {
      let size = this.#sysex.length * 2;
      while (size < length) size *= 2;
      const grown = new Uint8Array(Math.min(size, Math.max(this.#max, 1)));
      grown.set(this.#sysex.subarray(0, this.#sysexLength));
      this.#sysex = grown;
    }
    this.#sysex.set(chunk.subarray(start, end), this.#sysexLength);
    this.#sysexLength = length;
  }

  #forgetSysex(): void {
    this.#sysexLength = 0;
    if (this.#sysex.length > KEPT_SYSEX_BUFFER) {
      this.#sysex = new Uint8Array(INITIAL_SYSEX_BUFFER);
    }
  }

  /** Writes the finished sysex at `n`; returns the offset past it. */
  #putSysex(n: number): number {
    const length = this.#sysexLength;
    if (shared.length < n + length + 2) {
      const grown = new Uint8Array((n + length + 2) * 2);
      grown.set(shared.subarray(0, n));
      shared = grown;
    }
    const out = shared;
    out[n] = 0xf0;
    out.set(this.#sysex.subarray(0, length), n + 1);
    out[n + length + 1] = 0xf7;
    this.#forgetSysex();
    return n + length + 2;
  }
}

/**
 * Decodes framed bytes (as a {@linkcode Framer} writes them: whole messages,
 * each with its status byte) into messages, appending them to `out`.
 */
export function decodeFramed(bytes: Uint8Array, out: Message[]): Message[] {
  const length = bytes.length;
  for (let i = 0; i < length;) {
    const status = bytes[i];
    const spec = SPEC_BY_STATUS[status - 0x80] as TypeSpec;
    if (status === 0xf0) {
      const end = bytes.indexOf(0xf7, i + 1);
      out.push({ type: "sysex", data: bytes.slice(i + 1, end), time: 0 });
      i = end + 1;
      continue;
    }
    out.push(spec.make(status, bytes[i + 1], bytes[i + 2]));
    i += spec.size;
  }
  return out;
}

/**
 * Encodes checked messages into framed bytes, in one new buffer: what
 * {@linkcode decodeFramed} reads.
 */
export function encodeFramed(messages: readonly Message[]): Uint8Array {
  let size = 0;
  for (const msg of messages) {
    size += msg.type === "sysex" ? msg.data.length + 2 : SPECS[msg.type].size;
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const msg of messages) offset = SPECS[msg.type].put(msg, bytes, offset);
  return bytes;
}
