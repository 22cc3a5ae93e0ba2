/**
 * A streaming MIDI 1.0 parser: bytes in, in chunks split anywhere, whole
 * messages out.
 *
 * @module
 */

import type { Message } from "./messages.ts";
import { SPEC_BY_STATUS, type TypeSpec } from "./_spec.ts";

/** Options for {@linkcode Parser}. */
export interface ParserOptions {
  /**
   * The longest sysex kept, in data bytes (without F0 and F7). A longer one
   * is dropped whole, and the parser goes on with the next status byte;
   * memory never grows past this.
   * @default {1048576}
   */
  maxSysexLength?: number;
}

/** The default bound on a sysex's length: 1 MiB of data. */
export const DEFAULT_MAX_SYSEX_LENGTH = 1024 * 1024;

const INITIAL_SYSEX_BUFFER = 256;
const KEPT_SYSEX_BUFFER = 64 * 1024;

/**
 * Turns a MIDI 1.0 byte stream into messages, keeping its state between
 * chunks, so a stream cut anywhere (as TCP reads are) gives the same
 * messages as the whole stream at once. It follows the MIDI 1.0
 * specification:
 *
 * - realtime bytes (F8-FF) are delivered at once wherever they fall, even
 *   inside another message or a sysex, which they leave undisturbed;
 * - running status: data bytes after a complete channel message repeat its
 *   status; system common messages (F0-F7) cancel it, realtime does not;
 * - a status byte that interrupts an unfinished message drops it; a sysex
 *   cut by any status byte but F7 and realtime is dropped whole;
 * - data bytes with no status, a lone F7 and the undefined F4, F5, F9 and FD
 *   are skipped;
 * - a sysex longer than `maxSysexLength` is dropped.
 *
 * It never throws on input. Messages come out with `time` 0.
 *
 * @example Feeding a stream in pieces
 * ```ts
 * import { Parser } from "@x/midisock/codec";
 *
 * const parser = new Parser();
 * console.log(parser.feed(new Uint8Array([0x90, 60]))); // []
 * console.log(parser.feed(new Uint8Array([100, 62, 0])));
 * // [ { type: "note_on", channel: 0, note: 60, velocity: 100, time: 0 },
 * //   { type: "note_on", channel: 0, note: 62, velocity: 0, time: 0 } ]
 * ```
 */
export class Parser {
  #max: number;
  /** Running status byte, or 0 when there is none. */
  #status = 0;
  #spec: TypeSpec | undefined;
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
   * Makes a parser with no state.
   *
   * @param options Bounds.
   * @throws {RangeError} If `maxSysexLength` is not a non-negative integer.
   */
  constructor(options: ParserOptions = {}) {
    const max = options.maxSysexLength ?? DEFAULT_MAX_SYSEX_LENGTH;
    if (!Number.isSafeInteger(max) || max < 0) {
      throw new RangeError(
        `maxSysexLength must be a non-negative integer: got ${max}`,
      );
    }
    this.#max = max;
  }

  /** The longest sysex kept, in data bytes. */
  get maxSysexLength(): number {
    return this.#max;
  }

  /**
   * How many incomplete, interrupted or oversized messages were dropped so
   * far (stray data bytes are not counted).
   */
  get dropped(): number {
    return this.#dropped;
  }

  /**
   * Whether the parser is in the middle of a message: what a peer leaves
   * behind when it goes away mid-message.
   */
  get pending(): boolean {
    return this.#inSysex || this.#count > 0;
  }

  /**
   * Parses the next piece of the stream.
   *
   * @param chunk The bytes, of any length.
   * @returns The messages this chunk completed, in order.
   */
  feed(chunk: Uint8Array): Message[] {
    const out: Message[] = [];
    let status = this.#status;
    let spec = this.#spec;
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
            out.push(spec!.make(status, count === 0 ? byte : first, byte));
            count = 0;
            if (status >= 0xf0) status = 0;
          }
        }
        continue;
      }
      if (byte >= 0xf8) {
        const realtime = SPEC_BY_STATUS[byte - 0x80];
        if (realtime !== undefined) out.push(realtime.make(byte, 0, 0));
        continue;
      }
      // A status byte, 0x80-0xf7: whatever was unfinished ends here.
      if (this.#inSysex) {
        this.#inSysex = false;
        if (byte === 0xf7) {
          if (this.#sysexOverflow) this.#dropped++;
          else out.push(this.#takeSysex());
          continue;
        }
        this.#dropped++;
        this.#sysexLength = 0;
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
      const next = byte === 0xf7 ? undefined : SPEC_BY_STATUS[byte - 0x80];
      if (next === undefined) continue;
      if (next.size === 1) {
        out.push(next.make(byte, 0, 0));
        continue;
      }
      status = byte;
      spec = next;
      need = next.size - 1;
    }
    this.#status = status;
    this.#spec = spec;
    this.#need = need;
    this.#count = count;
    this.#first = first;
    return out;
  }

  /** Forgets any unfinished message and the running status. */
  reset(): void {
    if (this.pending) this.#dropped++;
    this.#status = 0;
    this.#count = 0;
    this.#inSysex = false;
    this.#sysexLength = 0;
  }

  #appendSysex(chunk: Uint8Array, start: number, end: number): void {
    if (this.#sysexOverflow) return;
    const length = this.#sysexLength + (end - start);
    if (length > this.#max) {
      this.#sysexOverflow = true;
      this.#sysexLength = 0;
      if (this.#sysex.length > KEPT_SYSEX_BUFFER) {
        this.#sysex = new Uint8Array(INITIAL_SYSEX_BUFFER);
      }
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

  #takeSysex(): Message {
    const data = this.#sysex.slice(0, this.#sysexLength);
    this.#sysexLength = 0;
    if (this.#sysex.length > KEPT_SYSEX_BUFFER) {
      this.#sysex = new Uint8Array(INITIAL_SYSEX_BUFFER);
    }
    return { type: "sysex", data, time: 0 };
  }
}
