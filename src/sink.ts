/**
 * The fast ways through a hub. A port that offers a {@linkcode Sink} under
 * the {@linkcode SINK} symbol takes each routed batch at once, without a
 * promise per message, and tells the hub how far behind it is; a port that
 * offers a {@linkcode Source} under {@linkcode SOURCE} hands its input to the
 * hub as framed bytes, without making messages of them. The hub wraps any
 * other port in a queue and a loop of its own. TCP ports offer both: bytes
 * go from one socket to the others as they are, each message whole.
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
 * import { hasSink, SINK, type Sink } from "@x/midisock/hub";
 *
 * const heard: number[] = [];
 * const sink: Sink = {
 *   write: (batch) => {
 *     heard.push(...batch.bytes);
 *     return true;
 *   },
 *   queuedBytes: 0,
 *   copiedBytes: 0,
 *   progress: 0,
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
 * A batch of messages on its way to several endpoints, in two forms made
 * once, on first use, for all of them. Nobody may change either; both may
 * be kept.
 */
export interface Batch {
  /** The messages, in order. */
  readonly messages: readonly Message[];
  /**
   * Their MIDI 1.0 bytes: each message whole, with its own status byte, as
   * mido sends them (shared: read only).
   */
  readonly bytes: Uint8Array;
  /**
   * When the messages happened, on the hub's clock (ms): when they entered
   * this process, or their sender's own time where the transport carries
   * one. The hub sets it on every batch it routes.
   */
  readonly at?: number;
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
  /**
   * A count that changes whenever the queue moves: each time bytes leave it
   * for the endpoint, and when a write finds it empty. The hub compares it
   * between its checks: an endpoint whose count stayed the same while bytes
   * waited took nothing meanwhile. No clock is needed to keep it (the hub
   * keeps the time). Only read for `slow: "drop"` sinks.
   */
  readonly progress: number;
  /**
   * What the hub does when this endpoint falls behind: `"drop"` it (a remote
   * peer), or `"wait"`, pausing every input until it catches up (a reader
   * in this process, which must not lose messages). A `"drop"` endpoint
   * that keeps taking is waited for too, for a while: see the hub's
   * `maxLag`.
   */
  readonly slow: "drop" | "wait";
  /**
   * Resolves once the queue is back under its high water mark. A hub that
   * waits for the endpoint then looks at `queuedBytes` again; a sink that
   * cannot tell may resolve at once, and the hub looks again now and then.
   */
  drained(): Promise<void>;
  /**
   * Whether the endpoint carries each batch's time (`at`) on to its peer,
   * which then plays it out itself: the hub's playout delay leaves such an
   * endpoint alone and writes to it at once.
   * @default {false}
   */
  readonly timed?: boolean;
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
 * import { hasSink } from "@x/midisock/hub";
 *
 * assert.equal(hasSink({ name: "plain" }), false);
 * ```
 */
export function hasSink(port: object): port is HasSink {
  return SINK in port;
}

/** Where a port keeps its source. */
export const SOURCE: unique symbol = Symbol("midisock.source");

/**
 * A port's input, handed over whole: instead of queueing messages for a
 * reader, the port gives each piece of what arrives, as framed bytes (whole
 * messages, each with its own status byte: what a `Batch`'s `bytes` are),
 * to the hub.
 */
export interface Source {
  /**
   * Hands the input over, once.
   *
   * @param take Called with each piece, in order; the bytes are the
   * callee's to keep. `at` is when the piece's messages happened, on the
   * hub's clock, where the port knows it (a timed peer's own time); left
   * out, it is now. When it returns a promise, the port reads nothing more
   * until it settles. `origin` says who, behind the port, sent the piece
   * (a remote hub of a link): the hub keeps each origin's order apart, so
   * one origin's late messages never hold another's back.
   * @param end Called once when the input ends, with why when it was an
   * error.
   */
  attach(
    take: (
      framed: Uint8Array,
      at?: number,
      origin?: string,
    ) => void | Promise<void>,
    end: (cause?: unknown) => void,
  ): void;
}

/** A port that offers a source. */
export interface HasSource {
  /** The port's source. */
  readonly [SOURCE]: Source;
}

/**
 * Tells whether a port offers a source.
 *
 * @param port Any port.
 * @returns Whether it does.
 *
 * @example Checking a port
 * ```ts
 * import assert from "node:assert/strict";
 * import { hasSource } from "@x/midisock/hub";
 *
 * assert.equal(hasSource({ name: "plain" }), false);
 * ```
 */
export function hasSource(port: object): port is HasSource {
  return SOURCE in port;
}
