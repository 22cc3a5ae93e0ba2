/**
 * A playout delay (a jitter buffer): each item carries when it happened,
 * and is delivered at that time plus a fixed delay, so that jitter below the
 * delay disappears and only a uniform latency is left. An item that arrives
 * after its due time goes at once and is counted as late. Items of one
 * source keep their order. With `latency: "auto"`, the delay is chosen from
 * the delays measured: the smallest that keeps late items under 0.1%.
 *
 * @module
 */

import { systemClock, type TimeSource } from "../clock.ts";
import { type ScheduledCall, Scheduler } from "./scheduler.ts";
import { checkLatency } from "../_policy.ts";

interface Waiting<T> {
  readonly source: unknown;
  readonly due: number;
  readonly item: T;
  call: ScheduledCall | undefined;
}

/** Options for {@linkcode Playout}. */
export interface PlayoutOptions {
  /**
   * The delay, in milliseconds, or `"auto"` to choose it from the delays
   * measured (starting from what the first items show).
   */
  latency: number | "auto";
  /**
   * The clock item times are read on.
   * @default {systemClock}
   */
  clock?: TimeSource;
  /**
   * The scheduler that wakes deliveries (share one per process or hub).
   * @default {a scheduler of its own on `clock`}
   */
  scheduler?: Scheduler;
  /**
   * With `"auto"`: the share of items that may be late.
   * @default {0.001}
   */
  lateShare?: number;
  /**
   * With `"auto"`: the least and most delay chosen, in ms.
   * @default {[1, 1000]}
   */
  range?: [number, number];
  /** With `"auto"`: called when the delay chosen changes (whole ms). */
  onLatency?: (ms: number) => void;
}

/** What a playout did so far. */
export interface PlayoutStats {
  /** Items delivered. */
  readonly delivered: number;
  /** Of those, items that arrived after their due time (sent at once). */
  readonly late: number;
  /** How far past its due time the latest late item arrived, in ms. */
  readonly worstLateMs: number;
  /** The delay now, in ms. */
  readonly latency: number;
}

/** Delays kept to choose an automatic delay from, and how often it is chosen. */
const AUTO_WINDOW = 4096;
const AUTO_EVERY = 256;
/** Delays are counted in bins of this many ms. */
const BIN_MS = 0.1;
/** Headroom added to the measured quantile (the wake-up's own error), ms. */
const AUTO_MARGIN_MS = 1;

/**
 * Delivers items at their time plus a delay, in order per source.
 *
 * @typeParam T What it delivers.
 *
 * @example A late item goes at once; on-time ones wait for their time
 * ```ts
 * import assert from "node:assert/strict";
 * import { Playout, systemClock } from "@x/midisock/hub";
 *
 * const heard: string[] = [];
 * const playout = new Playout<string>((item) => heard.push(item), {
 *   latency: 5,
 * });
 * const now = systemClock.now();
 * playout.push("a", now - 10, "late");
 * playout.push("a", now, "on time");
 * assert.deepEqual(heard, ["late"]);
 * while (heard.length < 2) await new Promise((r) => setTimeout(r, 1));
 * assert.ok(systemClock.now() >= now + 5);
 * assert.equal(playout.stats.late, 1);
 * ```
 */
export class Playout<T> {
  readonly #deliver: (item: T) => void;
  readonly #clock: TimeSource;
  readonly #scheduler: Scheduler;
  /** Whether the scheduler is its own (closed with it). */
  readonly #ownScheduler: boolean;
  readonly #auto: AutoLatency | undefined;
  #latency: number;
  /** The due time of the last item of each source still waiting. */
  readonly #lastDue = new Map<unknown, number>();
  /** What waits, in the order it was taken. */
  readonly #waiting = new Set<Waiting<T>>();
  #delivered = 0;
  #late = 0;
  #worstLate = 0;
  #closed = false;

  /**
   * Makes a playout.
   *
   * @param deliver Called with each item at its time; what it throws is
   * reported, never thrown.
   * @param options The delay, clock and scheduler.
   * @throws {RangeError} For a delay that is not a number of ms (0 or more)
   * or `"auto"`, or bad automatic bounds.
   */
  constructor(deliver: (item: T) => void, options: PlayoutOptions) {
    this.#deliver = deliver;
    this.#clock = options.clock ?? systemClock;
    this.#ownScheduler = options.scheduler === undefined;
    this.#scheduler = options.scheduler ??
      new Scheduler({ clock: this.#clock });
    if (options.latency === "auto") {
      this.#auto = new AutoLatency(options);
      this.#latency = this.#auto.latency;
    } else {
      this.#latency = checkLatency(options.latency) as number;
    }
  }

  /** The delay now, in ms. */
  get latency(): number {
    return this.#latency;
  }

  /** Whether the delay is chosen automatically. */
  get auto(): boolean {
    return this.#auto !== undefined;
  }

  /** Items waiting for their time. */
  get waiting(): number {
    return this.#waiting.size;
  }

  /** What it did so far. */
  get stats(): PlayoutStats {
    return {
      delivered: this.#delivered,
      late: this.#late,
      worstLateMs: this.#worstLate,
      latency: this.#latency,
    };
  }

  /**
   * Takes an item: delivers it at `at` + the delay, after every item of the
   * same source taken before it; at once (counted late) when that time has
   * passed and nothing of its source waits.
   *
   * @param source Whose item it is (an endpoint, an id): order is kept per
   * source.
   * @param at When it happened, on the playout's clock.
   * @param item The item.
   */
  push(source: unknown, at: number, item: T): void {
    if (this.#closed) return;
    const now = this.#clock.now();
    if (this.#auto !== undefined) {
      const latency = this.#auto.measure(now - at);
      if (latency !== this.#latency) this.#latency = latency;
    }
    let due = at + this.#latency;
    if (due < now) {
      this.#late++;
      this.#worstLate = now - due;
    }
    const previous = this.#lastDue.get(source);
    if (previous !== undefined && previous > due) due = previous;
    if (due <= now && previous === undefined) {
      this.#send(item);
      return;
    }
    this.#lastDue.set(source, due);
    const waiting: Waiting<T> = { source, due, item, call: undefined };
    this.#waiting.add(waiting);
    waiting.call = this.#scheduler.at(due, () => this.#play(waiting));
  }

  #play(waiting: Waiting<T>): void {
    if (!this.#waiting.delete(waiting)) return;
    if (this.#lastDue.get(waiting.source) === waiting.due) {
      this.#lastDue.delete(waiting.source);
    }
    this.#send(waiting.item);
  }

  /**
   * Delivers everything that waits now, in due order (order per source
   * kept): what a hub does before it closes.
   */
  flush(): void {
    const all = [...this.#waiting].sort((a, b) => a.due - b.due);
    for (const waiting of all) {
      waiting.call?.cancel();
      this.#play(waiting);
    }
  }

  #send(item: T): void {
    this.#delivered++;
    try {
      this.#deliver(item);
    } catch (error) {
      reportError(error);
    }
  }

  /** Drops what waits and takes nothing more. */
  close(): void {
    this.#closed = true;
    if (this.#ownScheduler) this.#scheduler.close();
    for (const waiting of this.#waiting) waiting.call?.cancel();
    this.#waiting.clear();
    this.#lastDue.clear();
  }
}

/**
 * Chooses a delay from the delays measured: the smallest that keeps late
 * items under the share allowed over the last few thousand, with a margin.
 * It rises at once when the network gets worse and comes down slowly.
 */
class AutoLatency {
  readonly #share: number;
  readonly #min: number;
  readonly #max: number;
  readonly #onLatency: ((ms: number) => void) | undefined;
  readonly #bins: Uint32Array;
  readonly #ring = new Float64Array(AUTO_WINDOW);
  #count = 0;
  #since = 0;
  latency: number;

  constructor(options: PlayoutOptions) {
    this.#share = options.lateShare ?? 0.001;
    if (!(this.#share > 0 && this.#share < 1)) {
      throw new RangeError(
        `lateShare must be between 0 and 1: got ${this.#share}`,
      );
    }
    const [min, max] = options.range ?? [1, 1000];
    if (!(min >= 0) || !(max >= min) || !Number.isFinite(max)) {
      throw new RangeError(
        `range must be [min, max] ms with 0 <= min <= max: got [${min}, ${max}]`,
      );
    }
    this.#min = min;
    this.#max = max;
    this.#onLatency = options.onLatency;
    this.#bins = new Uint32Array(Math.ceil(max / BIN_MS) + 2);
    this.latency = min;
  }

  /** Takes one measured delay; returns the delay to use now. */
  measure(delay: number): number {
    const bin = this.#binOf(delay);
    if (this.#count >= AUTO_WINDOW) {
      this.#bins[this.#binOf(this.#ring[this.#count % AUTO_WINDOW])]--;
    }
    this.#ring[this.#count % AUTO_WINDOW] = delay;
    this.#bins[bin]++;
    this.#count++;
    // Early on, every delay seen must fit; later, the quantile decides
    // every so often.
    const early = this.#count < AUTO_EVERY;
    if (early) {
      this.#set(Math.max(this.latency, delay + AUTO_MARGIN_MS));
    } else if (++this.#since >= AUTO_EVERY) {
      this.#since = 0;
      const target = this.#quantile() + AUTO_MARGIN_MS;
      const next = target > this.latency
        ? target
        : this.latency - Math.min(1, (this.latency - target) / 4);
      this.#set(next);
    }
    return this.latency;
  }

  #set(value: number): void {
    const ms = Math.min(this.#max, Math.max(this.#min, value));
    const before = Math.round(this.latency);
    this.latency = ms;
    if (Math.round(ms) !== before) this.#onLatency?.(Math.round(ms));
  }

  #binOf(delay: number): number {
    return Math.min(
      this.#bins.length - 1,
      Math.max(0, Math.ceil(delay / BIN_MS)),
    );
  }

  /** The delay under which all but the allowed share fall. */
  #quantile(): number {
    const total = Math.min(this.#count, AUTO_WINDOW);
    const allowed = Math.floor(total * this.#share);
    let above = 0;
    for (let bin = this.#bins.length - 1; bin >= 0; bin--) {
      above += this.#bins[bin];
      if (above > allowed) return bin * BIN_MS;
    }
    return 0;
  }
}
