/**
 * The fast way into an endpoint: a port that offers a {@linkcode Sink}
 * under the {@linkcode SINK} symbol takes each routed batch at once, without
 * a promise per message, and tells the hub how far behind it is. The hub
 * wraps any other `OutputPort` in a queue of its own. TCP ports offer a
 * sink that writes the batch's bytes, shared by every client, as they are.
 *
 * @module
 */

import type { Message } from "./codec/messages.ts";

/**
 * Where a port keeps its sink.
 *
 * @example A port with a sink, as a hub sees it
 * ```ts
 * import assert from "node:assert/strict";
 * import { hasSink, SINK, type Sink } from "@x/midisock";
 *
 * const heard: number[] = [];
 * const sink: Sink = {
 *   write: (batch) => {
 *     heard.push(...batch.bytes);
 *     return true;
 *   },
 *   queuedBytes: 0,
 *   copiedBytes: 0,
 *   progressAt: 0,
 *   slow: "drop",
 *   drained: () => Promise.resolve(),
 * };
 * const port = { [SINK]: sink };
 * assert.ok(hasSink(port));
 * port[SINK].write({ messages: [], bytes: new Uint8Array([0xf8]) });
 * assert.deepEqual(heard, [0xf8]);
 * ```
 */
export const SINK: unique symbol = Symbol("midisock.sink");

/**
 * A batch of messages on its way to several endpoints, encoded once, on
 * first use, for all of them. Nobody may change the messages or the bytes.
 */
export interface Batch {
  /** The messages, in order. */
  readonly messages: readonly Message[];
  /** Their MIDI 1.0 bytes, each message whole (shared: read only). */
  readonly bytes: Uint8Array;
}

/** What the hub writes a member's share of the traffic to. */
export interface Sink {
  /**
   * Takes a batch now, without waiting.
   *
   * @returns `false` when the endpoint takes nothing more (it is closed).
   */
  write(batch: Batch): boolean;
  /** Bytes (or their equivalent) waiting to reach the endpoint. */
  readonly queuedBytes: number;
  /** Of those, the ones held for this endpoint alone (not shared). */
  readonly copiedBytes: number;
  /** When the queue last moved (`performance.now()` ms). */
  readonly progressAt: number;
  /**
   * What the hub does when this endpoint falls behind: `"drop"` it (a remote
   * peer), or `"wait"`, pausing every input until it catches up (a reader
   * in this process, which must not lose messages).
   */
  readonly slow: "drop" | "wait";
  /** Resolves once the queue is back under its high water mark. */
  drained(): Promise<void>;
}

/** A port that offers a sink. */
export interface HasSink {
  /** The port's sink. */
  readonly [SINK]: Sink;
}

/**
 * Tells whether a port offers a sink.
 *
 * @param port Any port.
 * @returns Whether it does.
 *
 * @example Checking a port
 * ```ts
 * import assert from "node:assert/strict";
 * import { hasSink } from "@x/midisock";
 *
 * assert.equal(hasSink({ name: "plain" }), false);
 * ```
 */
export function hasSink(port: object): port is HasSink {
  return SINK in port;
}
