/**
 * Internal: the wait helpers every module uses, so that each wait and
 * deadline is written once. Both take a {@linkcode TimeSource} (tests hand
 * in a clock they step by hand); their timers keep the process alive, as a
 * wait someone awaits should.
 *
 * @module
 */

import { systemClock, type TimeSource } from "./clock.ts";

/**
 * Waits `ms` milliseconds, or less if `signal` aborts first.
 *
 * @param ms How long.
 * @param signal Ends the wait early.
 * @param clock Whose milliseconds.
 * @returns A promise that resolves (never rejects) when the time is up.
 */
export function sleep(
  ms: number,
  signal?: AbortSignal,
  clock: TimeSource = systemClock,
): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      timer.cancel();
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = clock.setTimer(done, Math.max(0, ms), true);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Waits for `promise` (ignoring how it settles), but at most `ms`
 * milliseconds.
 *
 * @param promise What to wait for.
 * @param ms The most to wait.
 * @param clock Whose milliseconds.
 * @returns Whether the time ran out first.
 */
export async function atMost(
  promise: Promise<unknown>,
  ms: number,
  clock: TimeSource = systemClock,
): Promise<boolean> {
  let timer: { cancel(): void } | undefined;
  try {
    return await Promise.race([
      promise.then(() => false, () => false),
      new Promise<boolean>((resolve) => {
        timer = clock.setTimer(() => resolve(true), Math.max(0, ms), true);
      }),
    ]);
  } finally {
    timer?.cancel();
  }
}
