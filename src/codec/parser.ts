/**
 * A streaming MIDI 1.0 parser: bytes in, in chunks split anywhere, whole
 * messages out.
 *
 * @module
 */

import type { Message } from "./messages.ts";
import { decodeFramed, Framer } from "./_framer.ts";

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
 * import assert from "node:assert/strict";
 * import { message, Parser } from "@x/midisock/codec";
 *
 * const parser = new Parser();
 * assert.deepEqual(parser.feed(new Uint8Array([0x90, 60])), []);
 * // The rest of the note, then a second by running status.
 * assert.deepEqual(parser.feed(new Uint8Array([100, 62, 0])), [
 *   message("note_on", { note: 60, velocity: 100 }),
 *   message("note_on", { note: 62, velocity: 0 }),
 * ]);
 * ```
 */
export class Parser {
  readonly #framer: Framer;

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
    this.#framer = new Framer(max);
  }

  /** The longest sysex kept, in data bytes. */
  get maxSysexLength(): number {
    return this.#framer.maxSysexLength;
  }

  /**
   * How many incomplete, interrupted or oversized messages were dropped so
   * far (stray data bytes are not counted).
   */
  get dropped(): number {
    return this.#framer.dropped;
  }

  /**
   * Whether the parser is in the middle of a message: what a peer leaves
   * behind when it goes away mid-message.
   */
  get pending(): boolean {
    return this.#framer.pending;
  }

  /**
   * Parses the next piece of the stream.
   *
   * @param chunk The bytes, of any length.
   * @returns The messages this chunk completed, in order.
   */
  feed(chunk: Uint8Array): Message[] {
    return decodeFramed(this.#framer.frame(chunk), []);
  }

  /** Forgets any unfinished message and the running status. */
  reset(): void {
    this.#framer.reset();
  }
}
