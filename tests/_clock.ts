// A clock for tests, stepped by hand: `advance(ms)` moves time on and runs
// the timers that fall due, in order of their due time (then of setting).
// A timer set by a timer that runs is run too when it falls due within the
// same advance.

import type { ClockTimer, TimeSource } from "../mod.ts";

interface Timer {
  readonly at: number;
  readonly seq: number;
  readonly callback: () => void;
}

/** A `TimeSource` whose time moves only when told to. */
export class ManualClock implements TimeSource {
  /** Time moves only when `advance` says. */
  readonly stepped = true;
  #now: number;
  #seq = 0;
  #timers: Timer[] = [];

  /** @param start The time it starts at, in ms. */
  constructor(start = 1000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimer(callback: () => void, delay: number): ClockTimer {
    const timer: Timer = {
      at: this.#now + Math.max(0, delay),
      seq: this.#seq++,
      callback,
    };
    this.#timers.push(timer);
    return {
      cancel: () => {
        this.#timers = this.#timers.filter((t) => t !== timer);
      },
    };
  }

  /** How many timers wait. */
  get pending(): number {
    return this.#timers.length;
  }

  /**
   * Moves time on by `ms`, running each timer that falls due on the way,
   * at its due time, earliest first.
   */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`Cannot go back in time: ${ms}`);
    const target = this.#now + ms;
    for (;;) {
      let next: Timer | undefined;
      for (const timer of this.#timers) {
        if (timer.at > target) continue;
        if (
          next === undefined || timer.at < next.at ||
          (timer.at === next.at && timer.seq < next.seq)
        ) {
          next = timer;
        }
      }
      if (next === undefined) break;
      this.#timers = this.#timers.filter((t) => t !== next);
      this.#now = Math.max(this.#now, next.at);
      next.callback();
    }
    this.#now = target;
  }
}
