/**
 * Internal: the timed mode of one connection, as I/O on a clock (its bytes
 * are in src/codec/_timed.ts). Both ends read the stream through a
 * splitter that hands on MIDI with the time it carries; each end writes a
 * time frame before what it sends.
 *
 * The server's clock is the reference, and the server keeps no state about
 * the client's: it stamps what it sends with its own clock, reads the
 * client's times as its own, and answers each ping with when it came, when
 * the answer left, and how many messages it had taken from the client. The
 * client pings every {@linkcode PING_MS} (more often at first), feeds a
 * `ClockSync` with the
 * exchanges, maps its own times to the server's before it sends them, and
 * maps the server's back to its clock when it reads them.
 *
 * @module
 */

import type { ClockTimer, TimeSource } from "../clock.ts";
import {
  pingFrame,
  pongFrame,
  type TimedEvent,
  TimedSplitter,
  unwrap,
  WRAP,
} from "../codec/_timed.ts";
import { countFramed } from "../hub/_batch.ts";
import type { Framer } from "../codec/_framer.ts";
import { ClockSync } from "../time/sync.ts";
import type { Batch } from "../sink.ts";

/** The feature word of the timed mode, in the hello and its answer. */
export const TIMED = "timed";
/** How often the client pings, in ms (4 bytes there, 19 back). */
export const PING_MS = 100;
/**
 * For the first {@linkcode FAST_MS} of a connection it pings every this
 * many ms: the clock estimate takes the quickest exchanges each way, and
 * more of them at the start settle it sooner.
 */
const FAST_PING_MS = 20;
const FAST_MS = 2000;
/**
 * The server answers at most one ping in this many ms, and none while its
 * port's `maxQueuedBytes` wait to be written to the client: a client that
 * pings in a flood and reads nothing gets little, and holds no more memory
 * than its port allows (its clock exchange just misses those answers).
 */
const PONG_GAP_MS = 5;
/** Pings remembered for their answers (ids are 14 bits). */
const PINGS_KEPT = 64;
const ID_MASK = 0x3fff;

/**
 * What a timed client knows about its link to the server: how the server's
 * clock reads against its own, and how much of what it sent the server
 * has confirmed.
 */
export interface SocketTiming {
  /**
   * The server's clock minus the port's, now, in ms (0 before the first
   * answer).
   */
  readonly offset: number;
  /** How much faster the server's clock runs, as a fraction (2e-4: 200 ppm). */
  readonly drift: number;
  /** The shortest round trip seen lately, in ms (Infinity before any). */
  readonly roundTrip: number;
  /**
   * When the server last answered a ping, on the port's clock; undefined
   * before its first answer.
   */
  readonly answeredAt: number | undefined;
  /** Messages sent on this connection so far. */
  readonly sent: number;
  /**
   * Of those, how many the server had not yet taken when it last answered
   * (all of them before its first answer): at most what a broken link
   * lost.
   */
  readonly unconfirmed: number;
}

/** Where a timed link writes its frames, and hands on what it read. */
export interface TimedHost {
  /** Queues a frame for the peer. */
  push(frame: Uint8Array): boolean;
  /** Whether the peer's write queue has room for an answer. */
  readonly room: boolean;
  /**
   * Takes framed MIDI read from the peer, with when it happened on the
   * port's clock (undefined: unknown, now). The bytes are a view of a
   * shared buffer: copy them to keep them.
   */
  take(framed: Uint8Array, at: number | undefined): void;
}

/** How many messages a batch holds (a hub's batches know already). */
export function batchCount(batch: Batch): number {
  const known = (batch as { readonly count?: unknown }).count;
  return typeof known === "number" ? known : countFramed(batch.bytes);
}

/**
 * Checks a clock option.
 *
 * @returns The clock.
 * @throws {TypeError} Unless it has `now()` and `setTimer()`.
 */
export function checkClock(clock: TimeSource): TimeSource {
  if (
    typeof clock?.now !== "function" || typeof clock.setTimer !== "function"
  ) {
    throw new TypeError("clock must have now() and setTimer()");
  }
  return clock;
}

/** One connection's timed mode, at either end. */
export class TimedLink implements SocketTiming {
  readonly #clock: TimeSource;
  readonly #server: boolean;
  readonly #framer: Framer;
  readonly #host: TimedHost;
  readonly #splitter = new TimedSplitter();
  /** The time of the last frame written, µs (NaN: none yet). */
  #written = NaN;
  /** When the read being split came, on the port's clock. */
  #now = 0;
  // The server's end.
  /** Messages framed from the client so far. */
  #taken = 0;
  #answeredPing = -Infinity;
  // The client's end.
  readonly #sync = new ClockSync();
  readonly #pingIds = new Int32Array(PINGS_KEPT).fill(-1);
  readonly #pingTimes = new Float64Array(PINGS_KEPT);
  #nextId = 0;
  #startedAt = 0;
  #timer: ClockTimer | undefined;
  #stopped = false;
  /** The server's time of the last answer, µs, unwrapped. */
  #remote: number | undefined;
  #answeredAt: number | undefined;
  #confirmed = 0;
  /** Messages written into the stream, at the client's end. */
  sent = 0;

  /**
   * @param clock The port's clock.
   * @param server Whether this is the server's end.
   * @param framer The port's framer (its count of dropped messages counts
   * as taken).
   * @param host Where frames go and MIDI comes out.
   */
  constructor(
    clock: TimeSource,
    server: boolean,
    framer: Framer,
    host: TimedHost,
  ) {
    this.#clock = clock;
    this.#server = server;
    this.#framer = framer;
    this.#host = host;
  }

  get offset(): number {
    return this.#sync.offsetAt(this.#clock.now());
  }

  get drift(): number {
    return this.#sync.drift;
  }

  get roundTrip(): number {
    return this.#sync.roundTrip;
  }

  get answeredAt(): number | undefined {
    return this.#answeredAt;
  }

  get unconfirmed(): number {
    if (this.#answeredAt === undefined) return this.sent;
    const behind = (((this.sent - this.#confirmed) % WRAP) + WRAP) % WRAP;
    return Math.min(behind, this.sent);
  }

  /** Whether the client can map times to the server's (it had an answer). */
  get synced(): boolean {
    return this.#sync.synced;
  }

  /** Starts the client's pings (the first at once). */
  start(): void {
    if (this.#server || this.#timer !== undefined || this.#stopped) return;
    this.#startedAt = this.#clock.now();
    this.#ping();
  }

  /** Stops the pings. Twice does nothing. */
  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  #ping(): void {
    if (this.#stopped) return;
    const id = this.#nextId;
    this.#nextId = (id + 1) & ID_MASK;
    const slot = id % PINGS_KEPT;
    const now = this.#clock.now();
    this.#pingIds[slot] = id;
    this.#pingTimes[slot] = now;
    if (!this.#host.push(pingFrame(id))) return;
    this.#timer = this.#clock.setTimer(
      () => this.#ping(),
      now - this.#startedAt < FAST_MS ? FAST_PING_MS : PING_MS,
    );
  }

  /**
   * The time frame's value for messages that happened at `at` (the port's
   * clock), in µs of the server's clock; undefined when no frame is needed:
   * the same time as the last frame, or a client with no answer yet (its
   * messages are then taken as they come).
   */
  stamp(at: number): number | undefined {
    let us: number;
    if (this.#server) us = Math.round(at * 1000);
    else if (this.#sync.synced) us = Math.round(this.#sync.toRemote(at) * 1000);
    else return undefined;
    if (us === this.#written) return undefined;
    this.#written = us;
    return us;
  }

  /** Reads one chunk of the peer's stream. */
  read(chunk: Uint8Array): void {
    this.#now = this.#clock.now();
    this.#splitter.feed(chunk, this.#midi, this.#control);
  }

  readonly #midi = (bytes: Uint8Array, time: number): void => {
    const framed = this.#framer.frame(bytes);
    if (framed.length === 0) return;
    if (this.#server) this.#taken += countFramed(framed);
    this.#host.take(framed, time < 0 ? undefined : this.#local(time));
  };

  /** A time frame's value as a time of the port's clock. */
  #local(us: number): number | undefined {
    if (this.#server) return unwrap(us, this.#now * 1000) / 1000;
    if (!this.#sync.synced) return undefined;
    const reference = this.#sync.toRemote(this.#now) * 1000;
    return this.#sync.toLocal(unwrap(us, reference) / 1000);
  }

  readonly #control = (event: TimedEvent): void => {
    if (event.type === "ping") {
      if (!this.#server) return;
      if (
        this.#now - this.#answeredPing < PONG_GAP_MS || !this.#host.room
      ) {
        return;
      }
      this.#answeredPing = this.#now;
      const taken = this.#taken + this.#framer.dropped;
      this.#host.push(
        pongFrame(
          event.id,
          this.#now * 1000,
          this.#clock.now() * 1000,
          taken % WRAP,
        ),
      );
      return;
    }
    if (this.#server) return;
    const slot = event.id % PINGS_KEPT;
    if (this.#pingIds[slot] !== event.id) return;
    this.#pingIds[slot] = -1;
    const t1 = this.#pingTimes[slot];
    const received = this.#unwrapRemote(event.received);
    const sent = this.#unwrapRemote(event.sent);
    this.#remote = sent;
    this.#sync.add({
      t1,
      t2: received / 1000,
      t3: sent / 1000,
      t4: this.#now,
    });
    this.#answeredAt = this.#now;
    this.#confirmed = event.count;
  };

  /** A 35-bit time of the server's, on one unbroken scale. */
  #unwrapRemote(us: number): number {
    return this.#remote === undefined ? us : unwrap(us, this.#remote);
  }
}
