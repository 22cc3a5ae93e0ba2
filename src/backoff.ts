/**
 * How long to wait before trying again: one backoff for everything in
 * midisock that retries (reconnecting clients, `connect --retry`).
 *
 * @module
 */

/**
 * A backoff: given the number of the attempt that just failed (1 for the
 * first), how many milliseconds to wait before the next.
 */
export type Backoff = (attempt: number) => number;

/** Options for {@linkcode exponentialBackoff}. */
export interface ExponentialBackoffOptions {
  /**
   * The first wait, in milliseconds.
   * @default {100}
   */
  first?: number;
  /**
   * The longest wait, in milliseconds.
   * @default {5000}
   */
  max?: number;
  /**
   * Random extra wait, as a fraction of the wait (0.2: up to 20% more), so
   * that many clients do not come back at the same instant.
   * @default {0.2}
   */
  jitter?: number;
}

/**
 * A backoff that doubles from `first` to `max`, with jitter.
 *
 * @param options The first and longest waits, and the jitter.
 * @returns The backoff.
 * @throws {RangeError} Unless `0 < first <= max` and `0 <= jitter`.
 *
 * @example Waits of a backoff without jitter
 * ```ts
 * import assert from "node:assert/strict";
 * import { exponentialBackoff } from "@x/midisock";
 *
 * const wait = exponentialBackoff({ first: 100, max: 1000, jitter: 0 });
 * assert.deepEqual([1, 2, 3, 4, 5].map(wait), [100, 200, 400, 800, 1000]);
 * ```
 */
export function exponentialBackoff(
  options: ExponentialBackoffOptions = {},
): Backoff {
  const first = options.first ?? 100;
  const max = options.max ?? 5000;
  const jitter = options.jitter ?? 0.2;
  if (!(first > 0) || !(max >= first) || !Number.isFinite(max)) {
    throw new RangeError(
      `Backoff waits must satisfy 0 < first <= max: got ${first} and ${max}`,
    );
  }
  if (!(jitter >= 0) || !Number.isFinite(jitter)) {
    throw new RangeError(`Backoff jitter must be 0 or more: got ${jitter}`);
  }
  return (attempt: number): number => {
    const wait = Math.min(first * 2 ** Math.max(0, attempt - 1), max);
    return wait * (1 + Math.random() * jitter);
  };
}
