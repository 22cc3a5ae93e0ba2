/**
 * Internal: the hub's routing and policies. What an endpoint sends is taken
 * as framed bytes: its policies apply (sysex in, active sensing, its rate
 * limit), its held notes are tracked, and what passed goes to every
 * endpoint its route allows, but never back to it (sysex out applied to
 * clients).
 *
 * @module
 */

import type { Message } from "../codec/messages.ts";
import type { TimeSource } from "../clock.ts";
import { Playout, type PlayoutStats } from "../time/playout.ts";
import { countFramed, FramedBatch, sizeAt } from "./_batch.ts";
import type { Backpressure } from "./_backpressure.ts";
import type { Events } from "./_events.ts";
import type { Member } from "./_member.ts";
import type { HubSettings } from "./_options.ts";
import type { Endpoint } from "./types.ts";

/** How often a client's active sensing is answered, at most, in ms. */
const ANSWER_MS = 100;
const ACTIVE_SENSING: Message = Object.freeze({
  type: "active_sensing",
  time: 0,
});
const SENSING_BYTES = new Uint8Array([0xfe]);

/** What the router needs of its hub. */
export interface RouterHost {
  /** The endpoints now. */
  members(): readonly Member[];
  /** Stops routing to an endpoint and closes its port. */
  drop(member: Member, reason: unknown): void;
}

/** Routes batches between a hub's endpoints, under its policies. */
export class Router {
  readonly #route: (from: Endpoint, to: Endpoint) => boolean;
  readonly #sysexIn: number;
  readonly #sysexOut: number;
  readonly #sensingIsLink: boolean;
  readonly #clock: TimeSource;
  readonly #backpressure: Backpressure;
  readonly #events: Events;
  readonly #host: RouterHost;
  /** The playout delay of plain endpoints, when there is one. */
  readonly #playout: Playout<[Member, FramedBatch][]> | undefined;

  constructor(
    settings: HubSettings,
    backpressure: Backpressure,
    events: Events,
    host: RouterHost,
  ) {
    this.#route = settings.route;
    this.#sysexIn = settings.sysexIn;
    this.#sysexOut = settings.sysexOut;
    this.#sensingIsLink = settings.sensingIsLink;
    this.#clock = settings.clock;
    this.#backpressure = backpressure;
    this.#events = events;
    this.#host = host;
    const latency = settings.latency;
    if (latency !== 0) {
      this.#playout = new Playout((writes) => this.#late(writes), {
        latency,
        clock: this.#clock,
        onLatency: (ms) => events.emit({ type: "latency", latency: ms }),
      });
    }
  }

  /** What the playout delay did so far, when there is one. */
  get timing(): PlayoutStats | undefined {
    return this.#playout?.stats;
  }

  /** Writes everything the playout delay holds, now (the hub is closing). */
  flush(): void {
    this.#playout?.flush();
    this.#playout?.close();
  }

  /**
   * Applies `from`'s policies to what it sent (framed bytes, and the
   * messages when they are known already), then routes what passed.
   *
   * No policy drops the message that ends a note `from` played through the
   * hub (see {@linkcode NoteTracker.ends}): a rate limit that let a note_on
   * through lets its note_off through too.
   *
   * @param counted Whether the messages count as received (not injected).
   * @param at When they happened, on the hub's clock, where the transport
   * knows (never later than now); else now.
   * @param origin Who, behind `from`, sent them: order is kept per origin.
   */
  take(
    from: Member,
    bytes: Uint8Array,
    known: FramedBatch | undefined,
    counted: boolean,
    at?: number,
    origin?: string,
  ): void {
    const now = this.#clock.now();
    const when = at === undefined || !(at < now) ? now : at;
    from.lastInput = now;
    from.inputBytes += bytes.length;
    const sensing = from.client && this.#sensingIsLink;
    const sysexIn = from.client ? this.#sysexIn : Infinity;
    const bucket = from.bucket;
    const notes = from.notes;
    bucket?.arrive(countFramed(bytes), now);
    let kept: Uint8Array | undefined;
    let keptLength = 0;
    let count = 0;
    let dropped = 0;
    let sensed = false;
    const length = bytes.length;
    for (let i = 0; i < length;) {
      const status = bytes[i];
      const size = sizeAt(bytes, i);
      let keep = true;
      if (status === 0xfe && sensing) {
        // Active sensing keeps a client's link alive, as MIDI 1.0 means it:
        // answered, and not relayed.
        keep = false;
        sensed = true;
      } else if (
        (status === 0xf0 && size - 2 > sysexIn) ||
        (bucket !== undefined && !bucket.take() &&
          !notes!.ends(status, bytes[i + 1], bytes[i + 2]))
      ) {
        keep = false;
        dropped++;
      }
      if (keep) {
        count++;
        if (notes !== undefined && (status < 0xc0 || status === 0xff)) {
          notes.trackBytes(status, bytes[i + 1], bytes[i + 2]);
        }
        if (kept !== undefined) {
          kept.set(bytes.subarray(i, i + size), keptLength);
          keptLength += size;
        }
      } else if (kept === undefined) {
        kept = new Uint8Array(length);
        kept.set(bytes.subarray(0, i));
        keptLength = i;
      }
      i += size;
    }
    from.dropped += dropped;
    if (sensed) this.#answer(from, now);
    if (count === 0) return;
    if (counted) from.received += count;
    const batch = kept === undefined
      ? known ?? new FramedBatch(bytes, undefined, count)
      : new FramedBatch(kept.subarray(0, keptLength), undefined, count);
    batch.at = when;
    if (this.#events.wantMessages) {
      for (const message of batch.messages) {
        this.#events.emit({ type: "message", endpoint: from, message });
      }
    }
    this.deliver(from, batch, origin);
  }

  /** Answers a client's active sensing, at most every `ANSWER_MS`. */
  #answer(from: Member, now: number): void {
    if (from.sink === undefined || now - from.answeredAt < ANSWER_MS) return;
    from.answeredAt = now;
    from.sink.write(new FramedBatch(SENSING_BYTES, [ACTIVE_SENSING]));
  }

  /**
   * Sends a batch everywhere `from`'s route allows: at once to timed
   * endpoints (and to all without a playout delay), at its time plus the
   * delay to the others.
   */
  deliver(from: Member, batch: FramedBatch, origin?: string): void {
    batch.at ??= this.#clock.now();
    const playout = this.#playout;
    let later: [Member, FramedBatch][] | undefined;
    let toClients: FramedBatch | undefined;
    for (const to of this.#host.members()) {
      if (to === from || to.sink === undefined || to.outputDead) continue;
      if (!this.#route(from, to)) continue;
      let share = batch;
      if (to.client && this.#sysexOut !== Infinity) {
        toClients ??= this.#withoutSysex(batch);
        share = toClients;
        if (share.bytes.length === 0) continue;
      }
      if (playout !== undefined && to.sink.timed !== true) {
        (later ??= []).push([to, share]);
      } else {
        this.#write(to, share);
      }
    }
    if (later !== undefined) {
      // Each source's order is kept: an endpoint's, or each origin's behind it.
      const source = origin === undefined ? from : `${from.id} ${origin}`;
      playout!.push(source, batch.at, later);
    }
    this.#backpressure.delivered();
  }

  /** Writes what the playout delay held, now that it is due. */
  #late(writes: [Member, FramedBatch][]): void {
    for (const [to, share] of writes) {
      if (to.sink !== undefined && !to.outputDead) this.#write(to, share);
    }
    this.#backpressure.delivered();
  }

  #write(to: Member, share: FramedBatch): void {
    const sink = to.sink!;
    if (!sink.write(share)) {
      this.#host.drop(to, undefined);
      return;
    }
    to.sent += share.count;
    this.#backpressure.wrote(to, sink, share);
  }

  /** The batch without the sysex `sysexOut` keeps from clients. */
  #withoutSysex(batch: FramedBatch): FramedBatch {
    const bytes = batch.bytes;
    if (!bytes.includes(0xf0)) return batch;
    const kept = new Uint8Array(bytes.length);
    let length = 0;
    for (let i = 0; i < bytes.length;) {
      const size = sizeAt(bytes, i);
      if (bytes[i] !== 0xf0 || size - 2 <= this.#sysexOut) {
        kept.set(bytes.subarray(i, i + size), length);
        length += size;
      }
      i += size;
    }
    return new FramedBatch(
      kept.subarray(0, length),
      undefined,
      undefined,
      batch.at,
    );
  }
}
