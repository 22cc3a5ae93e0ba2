/**
 * Internal: the wait helpers every module uses, so that each wait and
 * deadline is written once. Both take a {@linkcode Clock}: tests hand in a
 * clock they step by hand. On the system clock (the default) a wait keeps
 * the process alive, as an awaited timer should; a clock of one's own
 * decides that itself.
 *
 * @module
 */

import { type Clock, systemClock } from "./clock.ts";

/** Calls `callback` after `ms`; returns the cancel. */
function timer(clock: Clock, callback: () => void, ms: number): () => void {
  if (clock === systemClock) {
    const id = setTimeout(callback, Math.max(0, ms));
    return () => clearTimeout(id);
  }
  const set = clock.setTimer(callback, Math.max(0, ms));
  return () => set.cancel();
}

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
  clock: Clock = systemClock,
): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      cancel();
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const cancel = timer(clock, done, ms);
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
  clock: Clock = systemClock,
): Promise<boolean> {
  let cancel: (() => void) | undefined;
  try {
    return await Promise.race([
      promise.then(() => false, () => false),
      new Promise<boolean>((resolve) => {
        cancel = timer(clock, () => resolve(true), ms);
      }),
    ]);
  } finally {
    cancel?.();
  }
}
