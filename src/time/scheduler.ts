/**
 * Calls things at a given time, to within a fraction of a millisecond.
 *
 * JavaScript timers fire late: Deno's `setTimeout` a millisecond or more at
 * the median. A playout delay is only as good as its wake-up, so the
 * scheduler wakes a little early and waits out the rest in turns of the
 * event loop (`setImmediate`), which keep every socket and timer of the
 * process served meanwhile. What wakes it is an alarm on a worker thread
 * that blocks in `Atomics.wait` (src/time/_alarm.ts): it rings within a
 * few tenths of a ms, so the turns last that long, not milliseconds (each
 * turn makes garbage, and collecting it stalls the thread). Where no
 * worker can be made, a timer wakes it, earlier. How early is learnt from
 * how late wake-ups come. With nothing scheduled it costs nothing: the
 * worker sleeps, no timer, no turn. With a clock that only moves when
 * stepped (a test's), it sets its timer for the exact time and never waits
 * in turns.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import { type ClockTimer, systemClock, type TimeSource } from "../clock.ts";
import { Alarm } from "./_alarm.ts";

/** Options for {@linkcode Scheduler}. */
export interface SchedulerOptions {
  /**
   * The clock due times are read on.
   * @default {systemClock}
   */
  clock?: TimeSource;
  /**
   * How early to wake, in milliseconds, before waiting out the rest in
   * turns of the event loop. By default it follows how late wake-ups come
   * (0 with a stepped clock).
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

/** The least and most a wake-up is set early, in ms. */
const MIN_EARLY_MS = 0.15;
const MAX_EARLY_MS = 4;
/** How much earlier than it runs late a timer is set, or the alarm. */
const TIMER_MARGIN_MS = 0.5;
const ALARM_MARGIN_MS = 0.1;
/** How much of each new lateness the estimate takes in (its decay). */
const LEARN = 1 / 32;
/**
 * With the alarm, a timer this long after the due time keeps the process
 * alive (the worker does not) and stands in should the alarm not ring.
 */
const BACKSTOP_MS = 2;

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
  /** How late this process's wake-ups come, as learnt (ms). */
  #lateness = 1.5;
  #heap: Task[] = [];
  #seq = 0;
  #timer: ClockTimer | undefined;
  /** The time the armed wake-up was asked for. */
  #timerAt = Infinity;
  /** When the armed wake-up was asked for, and what for. */
  #asked = 0;
  #polling = false;
  /** The alarm, once started; "starting" meanwhile. */
  #alarm: Alarm | "starting" | undefined;
  #closed = false;

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
    // Started now, not at the first call: making a worker thread holds up
    // this one for tens of ms, better before any message waits.
    if (this.#precise) this.#startAlarm();
  }

  /** How many calls wait. */
  get size(): number {
    return this.#heap.length;
  }

  /** How early the timer is set now, in ms. */
  get earlyMs(): number {
    const margin = this.#ringing() ? ALARM_MARGIN_MS : TIMER_MARGIN_MS;
    return this.#fixedEarly ??
      Math.min(MAX_EARLY_MS, Math.max(MIN_EARLY_MS, this.#lateness + margin));
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
    this.#disarm();
  }

  /**
   * Cancels everything that waits and stops the alarm's worker thread; the
   * scheduler then falls back to timers.
   */
  close(): void {
    this.clear();
    this.#closed = true;
    if (this.#alarm instanceof Alarm) this.#alarm.close();
    this.#alarm = undefined;
  }

  /** Closes it. */
  [Symbol.dispose](): void {
    this.close();
  }

  #startAlarm(): void {
    this.#alarm = "starting";
    Alarm.start(() => this.#wake(true)).then((started) => {
      if (this.#closed) started?.close();
      else if (started !== undefined) {
        this.#alarm = started;
        this.#lateness = 0.3;
      }
    });
  }

  /** The alarm, when it runs. */
  #ringing(): Alarm | undefined {
    const alarm = this.#alarm;
    return alarm instanceof Alarm && !alarm.closed ? alarm : undefined;
  }

  #disarm(): void {
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#timerAt = Infinity;
    if (this.#alarm instanceof Alarm) this.#alarm.cancel();
  }

  #arm(): void {
    this.#dropCancelled();
    const first = this.#heap[0];
    if (this.#polling) return;
    if (first === undefined) return this.#disarm();
    const at = first.due - this.earlyMs;
    if (this.#timer !== undefined && this.#timerAt <= at) return;
    this.#timer?.cancel();
    this.#timerAt = at;
    this.#asked = this.#clock.now();
    const alarm = this.#ringing();
    alarm?.set(Math.max(0, at - this.#asked));
    this.#timer = this.#clock.setTimer(
      () => this.#wake(alarm === undefined),
      Math.max(
        0,
        alarm ? first.due + BACKSTOP_MS - this.#asked : at - this.#asked,
      ),
      true,
    );
  }

  /** Wakes up; `learn`: from what was armed to wake it (not a backstop). */
  #wake(learn: boolean): void {
    if (this.#timerAt === Infinity) return; // Disarmed since.
    const at = this.#timerAt;
    this.#timer?.cancel();
    this.#timer = undefined;
    this.#timerAt = Infinity;
    if (learn && this.#precise && at > this.#asked) {
      // Learn how late wake-ups come, so the next is set early enough.
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
