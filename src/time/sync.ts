/**
 * How one clock reads against another, from NTP-style exchanges: the side
 * that asks notes when it sent (t1) and when the answer came (t4), the side
 * that answers notes when the question came (t2) and when it answered (t3).
 * RTP-MIDI's CK0/CK1/CK2 exchange is one of these.
 *
 * One exchange gives the offset `((t2 - t1) + (t3 - t4)) / 2`, wrong by half
 * the difference between the two ways' delays. The estimator keeps the
 * recent exchanges and does better than any one of them. `t2 - t1` is the
 * offset plus the way there, which a network only ever makes longer: over
 * time those points lie on or above a line, the offset plus the shortest
 * way there, drifting as the two crystals differ (tens of ppm is usual).
 * That line is the edge of the points' lower convex hull under the middle
 * of the window; `t3 - t4`, the offset minus the way back, gives another
 * from its upper hull. Their mean is the offset, their slope the drift:
 * even when no single exchange was quick both ways, and with no weights to
 * tune. Until the exchanges span a second, the drift is taken as 0.
 *
 * Pure arithmetic: no I/O, no clock of its own.
 *
 * @module
 */

/** One exchange: t1 and t4 on this side's clock, t2 and t3 on the other's. */
export interface SyncSample {
  /** When the question left (here). */
  readonly t1: number;
  /** When it arrived (there). */
  readonly t2: number;
  /** When the answer left (there). */
  readonly t3: number;
  /** When the answer arrived (here). */
  readonly t4: number;
}

/** Options for {@linkcode ClockSync}. */
export interface ClockSyncOptions {
  /**
   * How many recent exchanges are kept (and the lines fitted over).
   * @default {256}
   */
  window?: number;
}

interface Point {
  /** Midpoint of the exchange, on this side's clock. */
  readonly at: number;
  /** The other clock minus this one, then, from this exchange alone. */
  readonly offset: number;
  /** Round trip without the other side's time. */
  readonly delay: number;
  /** t2 - t1: the offset plus the way there. */
  readonly there: number;
  /** t3 - t4: the offset minus the way back. */
  readonly back: number;
}

/**
 * The least span of exchanges over which drift is fitted, in ms; until
 * then, the last second's give the offset (200 ppm is 0.2 ms a second).
 */
const MIN_SPAN_MS = 1000;
/** Drift beyond this is taken for noise (a quartz is within 100 ppm). */
const MAX_DRIFT = 500e-6;

/**
 * The offset and drift between this clock and another, from exchanges.
 *
 * @example Another clock 5 s ahead and 200 ppm fast
 * ```ts
 * import assert from "node:assert/strict";
 * import { ClockSync } from "@x/midisock/hub";
 *
 * const other = (t: number) => 5000 + t * (1 + 200e-6);
 * const sync = new ClockSync();
 * for (let t = 0; t <= 8000; t += 500) {
 *   // 2 ms each way, answered at once.
 *   sync.add({ t1: t, t2: other(t + 2), t3: other(t + 2), t4: t + 4 });
 * }
 * assert.ok(Math.abs(sync.toRemote(9000) - other(9000)) < 0.01);
 * assert.ok(Math.abs(sync.toLocal(other(9000)) - 9000) < 0.01);
 * assert.ok(Math.abs(sync.drift - 200e-6) < 1e-6);
 * ```
 */
export class ClockSync {
  readonly #window: number;
  #points: Point[] = [];
  /** The fitted line: offset = #base + #slope * (t - #origin). */
  #origin = 0;
  #base = 0;
  #slope = 0;

  /**
   * Makes an estimator with no exchange yet.
   *
   * @param options How many exchanges to keep.
   * @throws {RangeError} For a window under 2.
   */
  constructor(options: ClockSyncOptions = {}) {
    const window = options.window ?? 256;
    if (!Number.isSafeInteger(window) || window < 2) {
      throw new RangeError(
        `window must be an integer of 2 or more: got ${window}`,
      );
    }
    this.#window = window;
  }

  /** Whether any exchange was added: before that, the offset is 0. */
  get synced(): boolean {
    return this.#points.length > 0;
  }

  /** How many exchanges are kept. */
  get samples(): number {
    return this.#points.length;
  }

  /** The shortest round trip kept, in ms (Infinity before any). */
  get roundTrip(): number {
    let least = Infinity;
    for (const point of this.#points) least = Math.min(least, point.delay);
    return least;
  }

  /** How much faster the other clock runs, as a fraction (2e-4: 200 ppm). */
  get drift(): number {
    return this.#slope;
  }

  /**
   * Takes one exchange into account. One with a negative round trip (the
   * other side's time exceeds ours: a clock jumped) is ignored.
   *
   * @param sample The four times.
   * @returns Whether it was used.
   */
  add(sample: SyncSample): boolean {
    const { t1, t2, t3, t4 } = sample;
    const delay = (t4 - t1) - (t3 - t2);
    if (
      !(delay >= 0) || !Number.isFinite(delay) || !Number.isFinite(t2 + t3)
    ) {
      return false;
    }
    const point: Point = {
      at: (t1 + t4) / 2,
      offset: ((t2 - t1) + (t3 - t4)) / 2,
      delay,
      there: t2 - t1,
      back: t3 - t4,
    };
    this.#points.push(point);
    if (this.#points.length > this.#window) this.#points.shift();
    this.#fit();
    return true;
  }

  /** Forgets every exchange (the other side restarted, say). */
  reset(): void {
    this.#points = [];
    this.#origin = this.#base = this.#slope = 0;
  }

  /**
   * The other clock minus this one, at a time of this clock.
   *
   * @param local A time on this clock.
   * @returns The offset, in ms.
   */
  offsetAt(local: number): number {
    return this.#base + this.#slope * (local - this.#origin);
  }

  /**
   * A time of this clock, read on the other.
   *
   * @param local A time on this clock.
   * @returns The same instant on the other clock.
   */
  toRemote(local: number): number {
    return local + this.offsetAt(local);
  }

  /**
   * A time of the other clock, read on this one.
   *
   * @param remote A time on the other clock.
   * @returns The same instant on this clock.
   */
  toLocal(remote: number): number {
    // remote = local + base + slope * (local - origin), solved for local.
    return (remote - this.#base + this.#slope * this.#origin) /
      (1 + this.#slope);
  }

  #fit(): void {
    const points = this.#points;
    const last = points[points.length - 1];
    if (last.at - points[0].at < MIN_SPAN_MS) {
      // Too short to see drift: each way's shortest delay of the last
      // second, as it is.
      let there = Infinity;
      let back = -Infinity;
      for (const point of points) {
        if (last.at - point.at > MIN_SPAN_MS) continue;
        there = Math.min(there, point.there);
        back = Math.max(back, point.back);
      }
      this.#slope = 0;
      this.#origin = last.at;
      this.#base = (there + back) / 2;
      return;
    }
    let middle = 0;
    for (const point of points) middle += point.at;
    middle /= points.length;
    const there = hullEdge(points, middle, (point) => point.there);
    const back = hullEdge(points, middle, (point) => -point.back);
    const slope = (there.slope - back.slope) / 2;
    this.#slope = Math.max(-MAX_DRIFT, Math.min(MAX_DRIFT, slope));
    this.#origin = middle;
    this.#base = (there.value - back.value) / 2;
  }
}

/**
 * The edge of the lower convex hull of `(at, y)` above `x`: its slope and
 * its value at `x`. The points come in time order.
 */
function hullEdge(
  points: readonly Point[],
  x: number,
  y: (point: Point) => number,
): { slope: number; value: number } {
  const hull: Point[] = [];
  for (const point of points) {
    while (hull.length >= 2) {
      const a = hull[hull.length - 2];
      const b = hull[hull.length - 1];
      const turn = (b.at - a.at) * (y(point) - y(a)) -
        (y(b) - y(a)) * (point.at - a.at);
      if (turn > 0) break;
      hull.pop();
    }
    hull.push(point);
  }
  let i = 0;
  while (i < hull.length - 2 && hull[i + 1].at < x) i++;
  const a = hull[i];
  const b = hull[i + 1];
  const slope = (y(b) - y(a)) / (b.at - a.at);
  return { slope, value: y(a) + slope * (x - a.at) };
}
