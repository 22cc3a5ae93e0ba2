/**
 * Time, as midisock reads it: one seam for every module that measures time
 * or waits. The hub, its transports and the playout of timed messages take
 * a `clock` option (a {@linkcode TimeSource}); tests hand them a clock they
 * step by hand, or clocks that differ by seconds and drift apart. (The MIDI
 * clock message is another thing: the codec's `Clock` type.)
 *
 * @module
 */

/** A timer set on a {@linkcode TimeSource}. */
export interface ClockTimer {
  /** Cancels the timer. Cancelling twice, or after it fired, does nothing. */
  cancel(): void;
}

/**
 * A monotonic clock in milliseconds, and timers on it.
 *
 * @example A clock that runs a second ahead of the system's
 * ```ts
 * import assert from "node:assert/strict";
 * import { systemClock, type TimeSource } from "@x/midisock";
 *
 * const ahead: TimeSource = {
 *   now: () => systemClock.now() + 1000,
 *   setTimer: (callback, delay) => systemClock.setTimer(callback, delay),
 * };
 * assert.ok(ahead.now() - systemClock.now() >= 999);
 * ```
 */
export interface TimeSource {
  /** Milliseconds on a monotonic scale with an arbitrary origin. */
  now(): number;
  /**
   * Whether time moves only when something steps it (a test's clock):
   * then nothing waits for it in turns of the event loop. A clock that
   * follows real time, however offset or fast, leaves it out.
   * @default {false}
   */
  readonly stepped?: boolean;
  /**
   * Calls `callback` once, `delay` milliseconds from now.
   *
   * @param callback What to call.
   * @param delay How long from now, in milliseconds (0 or more).
   * @param keepAlive Whether the timer keeps the process alive (work that
   * must be done, as a message to deliver), or not (a periodic check).
   * @returns The timer, to cancel it.
   */
  setTimer(
    callback: () => void,
    delay: number,
    keepAlive?: boolean,
  ): ClockTimer;
}

/**
 * The system's clock: `performance.now()` and `setTimeout`.
 *
 * @example Reading the time
 * ```ts
 * import assert from "node:assert/strict";
 * import { systemClock } from "@x/midisock";
 *
 * const before = systemClock.now();
 * assert.ok(systemClock.now() >= before);
 * ```
 */
export const systemClock: TimeSource = Object.freeze({
  now: (): number => performance.now(),
  setTimer(
    callback: () => void,
    delay: number,
    keepAlive = false,
  ): ClockTimer {
    const id = setTimeout(callback, Math.max(0, delay));
    if (!keepAlive) Deno.unrefTimer(id);
    return { cancel: () => clearTimeout(id) };
  },
});

/** Internal: the name helpers used first; the same as {@linkcode TimeSource}. */
export type Clock = TimeSource;
