/**
 * Internal: a batch of messages as the hub routes it, in framed bytes (each
 * message whole, with its own status byte) or as messages, each form made
 * once, on first use, for every endpoint that hears it.
 *
 * @module
 */

import type { Message } from "../codec/messages.ts";
import { decodeFramed, encodeFramed, FRAMED_SIZE } from "../codec/_framer.ts";
import type { Batch } from "../sink.ts";

/** A batch made from whichever form came first; the other on first use. */
export class FramedBatch implements Batch {
  #messages: readonly Message[] | undefined;
  #bytes: Uint8Array | undefined;
  #count: number | undefined;
  /** When its messages happened, on the hub's clock. */
  at: number | undefined;

  constructor(
    bytes?: Uint8Array,
    messages?: readonly Message[],
    count?: number,
    at?: number,
  ) {
    this.#bytes = bytes;
    this.#messages = messages;
    this.#count = count ?? messages?.length;
    this.at = at;
  }

  /** How many messages it holds. */
  get count(): number {
    return this.#count ??= countFramed(this.#bytes!);
  }

  get messages(): readonly Message[] {
    return this.#messages ??= decodeFramed(this.#bytes!, []);
  }

  get bytes(): Uint8Array {
    return this.#bytes ??= encodeFramed(this.#messages!);
  }
}

/** The length of the framed message at `i`. */
export function sizeAt(bytes: Uint8Array, i: number): number {
  const status = bytes[i];
  return status === 0xf0
    ? bytes.indexOf(0xf7, i + 1) - i + 1
    : FRAMED_SIZE[status - 0x80];
}

/** Counts the framed messages in `bytes`. */
export function countFramed(bytes: Uint8Array): number {
  let count = 0;
  for (let i = 0; i < bytes.length; i += sizeAt(bytes, i)) count++;
  return count;
}
