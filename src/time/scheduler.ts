/**
 * Calls things at a given time, to within a fraction of a millisecond.
 *
 * JavaScript timers fire late: Deno's `setTimeout` a millisecond or more at
 * the median. A playout delay is only as good as its wake-up, so the
 * scheduler sets its timer a little early (by what it has seen timers be
 * late, learnt as it goes) and then waits out the rest in turns of the event
 * loop (`setImmediate`), which keeps every socket and timer of the process
 * served meanwhile. With nothing scheduled it costs nothing: no timer, no
 * turn. With a clock that only moves when stepped (a test's), it sets its
 * timer for the exact time and never waits in turns.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import { type ClockTimer, systemClock, type TimeSource } from "../clock.ts";

/** Options for {@linkcode Scheduler}. */
export interface SchedulerOptions {
  /**
   * The clock due times are read on.
   * @default {systemClock}
   */
  clock?: TimeSource;
  /**
   * How early to set the timer, in milliseconds, before waiting out the
   * rest in turns of the event loop. By default it starts at 2 ms and
   * follows how late this process's timers are (0 with a stepped clock).
   * @default {adaptive}
   */
  earlyMs?: number;
}

/** A call the scheduler will make. */
export interface ScheduledCall {
  /** When it is due, on the scheduler's clock. */
  readonly due: number;
  /** Cancels it. Cancelling twice, or after the call, does nothing. */
  cancel(): void;
}

interface Task extends ScheduledCall {
  readonly due: number;
  readonly seq: number;
  readonly callback: () => void;
  cancelled: boolean;
}

/** The least and most a timer is set early, in ms. */
const MIN_EARLY_MS = 0.5;
const MAX_EARLY_MS = 4;
/** How much of each new lateness the estimate takes in (its decay). */
const LEARN = 1 / 32;

/**
 * Calls functions at given times, in time order (and in the order they were
 * scheduled, for equal times), on one timer at a time.
 *
 * @example Three calls, in time order
 * ```ts
 * import assert from "node:assert/strict";
 * import { Scheduler, systemClock } from "@x/midisock/hub";
 *
 * const scheduler = new Scheduler();
 * const now = systemClock.now();
 * const heard: string[] = [];
 * const done = Promise.withResolvers<void>();
 * scheduler.at(now + 6, () => heard.push("c"));
 * scheduler.at(now + 2, () => heard.push("a"));
 * scheduler.at(now + 4, () => {
 *   heard.push("b");
 * });
 * scheduler.at(now + 8, () => done.resolve());
 * await done.promise;
 * assert.deepEqual(heard, ["a", "b", "c"]);
 * assert.ok(systemClock.now() >= now + 8);
 * ```
 */
export class Scheduler {
  readonly #clock: TimeSource;
  readonly #precise: boolean;
  readonly #fixedEarly: number | undefined;
  /** How late this process's timers run, as learnt (ms). */
  #lateness = 1.5;
  #heap: Task[] = [];
  #seq = 0;
  #timer: ClockTimer | undefined;
  /** The time the armed timer was asked to fire at. */
  #timerAt = Infinity;
  #polling = false;

  /**
   * Makes a scheduler with nothing scheduled.
   *
   * @param options The clock, and how early to wake.
   * @throws {RangeError} For an `earlyMs` that is not 0 or more.
   */
  constructor(options: SchedulerOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#precise = this.#clock.stepped !== true;
    if (options.earlyMs !== undefined) {
      if (!(options.earlyMs >= 0) || !Number.isFinite(options.earlyMs)) {
        throw new RangeError(
          `earlyMs must be a number of ms, 0 or more: got ${options.earlyMs}`,
        );
      }
      this.#fixedEarly = options.earlyMs;
    } else if (!this.#precise) {
      this.#fixedEarly = 0;
    }
  }

  /** How many calls wait. */
  get size(): number {
    return this.#heap.length;
  }

  /** How early the timer is set now, in ms. */
  get earlyMs(): number {
    return this.#fixedEarly ??
      Math.min(MAX_EARLY_MS, Math.max(MIN_EARLY_MS, this.#lateness + 0.5));
  }

  /**
   * Calls `callback` at `due` (on the scheduler's clock), or at once (in a
   * later turn) when that time has passed.
   *
   * @param due When.
   * @param callback What; what it throws is reported, never thrown here.
   * @returns The scheduled call, to cancel it.
   */
  at(due: number, callback: () => void): ScheduledCall {
    const task: Task = {
      due,
      seq: this.#seq++,
      callback,
      cancelled: false,
      cancel: () => {
        task.cancelled = true;
      },
    };
    this.#push(task);
    this.#arm();
    return task;
  }

  /** Cancels everything that waits. */
  clear(): void {
    for (const task of this.#heap) task.cancelled = true;
    this.#heap = [];
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#timerAt = Infinity;
  }

  #arm(): void {
    this.#dropCancelled();
    const first = this.#heap[0];
    if (first === undefined || this.#polling) return;
    const at = first.due - this.earlyMs;
    if (this.#timer !== undefined && this.#timerAt <= at) return;
    this.#timer?.cancel();
    this.#timerAt = at;
    const asked = this.#clock.now();
    this.#timer = this.#clock.setTimer(
      () => this.#wake(asked, at),
      Math.max(0, at - asked),
      true,
    );
  }

  #wake(asked: number, at: number): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    if (this.#precise && at > asked) {
      // Learn how late timers run, so the next is set early enough.
      const late = Math.max(0, this.#clock.now() - at);
      this.#lateness += (late - this.#lateness) * LEARN;
      if (late > this.#lateness) this.#lateness += (late - this.#lateness) / 4;
    }
    this.#run();
  }

  /** Runs what is due; waits out the rest in turns, or sets the timer. */
  #run(): void {
    const now = this.#clock.now();
    for (;;) {
      this.#dropCancelled();
      const first = this.#heap[0];
      if (first === undefined || first.due > now) break;
      this.#pop();
      try {
        first.callback();
      } catch (error) {
        reportError(error);
      }
    }
    const next = this.#heap[0];
    if (next === undefined) {
      this.#polling = false;
      return;
    }
    if (this.#precise && next.due - this.#clock.now() <= this.earlyMs) {
      this.#polling = true;
      setImmediate(() => this.#run());
      return;
    }
    this.#polling = false;
    this.#arm();
  }

  #dropCancelled(): void {
    while (this.#heap.length > 0 && this.#heap[0].cancelled) this.#pop();
  }

  #push(task: Task): void {
    const heap = this.#heap;
    heap.push(task);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i], heap[parent])) break;
      [heap[i], heap[parent]] = [heap[parent], heap[i]];
      i = parent;
    }
  }

  #pop(): Task | undefined {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0 && last !== undefined) {
      heap[0] = last;
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        const right = left + 1;
        let least = i;
        if (left < heap.length && before(heap[left], heap[least])) least = left;
        if (right < heap.length && before(heap[right], heap[least])) {
          least = right;
        }
        if (least === i) break;
        [heap[i], heap[least]] = [heap[least], heap[i]];
        i = least;
      }
    }
    return top;
  }
}

function before(a: Task, b: Task): boolean {
  return a.due < b.due || (a.due === b.due && a.seq < b.seq);
}
