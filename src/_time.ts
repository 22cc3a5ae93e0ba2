/**
 * Internal: the timer helpers every module uses, so each deadline and wait
 * is written once.
 *
 * @module
 */

/**
 * Waits `ms` milliseconds, or less if `signal` aborts first.
 *
 * @returns A promise that resolves (never rejects) when the time is up.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Waits for `promise` (ignoring how it settles), but at most `ms`
 * milliseconds.
 *
 * @returns Whether the time ran out first.
 */
export async function atMost(
  promise: Promise<unknown>,
  ms: number,
): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise.then(() => false, () => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), Math.max(0, ms));
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
