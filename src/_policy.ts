/**
 * Internal: the one option checker of midisock. What may pass through a port
 * or a hub (sysex policies, rate limits and their token bucket), bounds and
 * durations, tokens, and the defaults transports share, each defined once.
 * The hub resolves its own options with these (src/hub/_options.ts); every
 * transport checks its options with the same functions, so that a value
 * means the same and is refused with the same words everywhere.
 *
 * @module
 */

import type { Message } from "./codec/messages.ts";
import { DEFAULT_MAX_SYSEX_LENGTH } from "./codec/parser.ts";

export { DEFAULT_MAX_SYSEX_LENGTH };

/**
 * What may wait to be written to one peer when no option says otherwise:
 * a socket's `maxQueuedBytes` (1 MiB). A hub's own default is larger when
 * its sysex policies let a larger message through (see
 * {@linkcode defaultMaxQueuedBytes}).
 */
export const DEFAULT_MAX_QUEUED_BYTES = 1 << 20;

/**
 * A hub's `maxQueuedBytes` when none is given: {@linkcode
 * DEFAULT_MAX_QUEUED_BYTES} or twice the largest message let through,
 * whichever is more, so that one big message passing is never taken for
 * lag. With the default sysex bounds: 2 x (1 MiB + 2) = 2,097,156 bytes.
 *
 * @param largestSysex The longest sysex let out, in data bytes.
 */
export function defaultMaxQueuedBytes(largestSysex: number): number {
  return Math.max(DEFAULT_MAX_QUEUED_BYTES, 2 * (largestSysex + 2));
}

/**
 * Checks `maxSysexLength` (the longest sysex a parser keeps, in data bytes)
 * and fills in its default: what every transport gives its parser.
 *
 * @param value The option as given.
 * @param sysexIn The input sysex policy's limit from {@linkcode sysexLimit},
 * which lowers it (a parser need not keep what the policy drops).
 * @returns The bound.
 * @throws {RangeError} Unless it is a non-negative integer.
 */
export function checkMaxSysexLength(
  value: number | undefined,
  sysexIn: number = Infinity,
): number {
  const max = value ?? DEFAULT_MAX_SYSEX_LENGTH;
  if (!Number.isSafeInteger(max) || max < 0) {
    throw new RangeError(
      `maxSysexLength must be a non-negative integer: got ${max}`,
    );
  }
  return Math.min(max, Math.max(sysexIn, 0));
}

/**
 * What a port does with sysex in one direction: let it through, drop it, or
 * let through only those of at most this many data bytes.
 */
export type SysexPolicy = "allow" | "drop" | number;

/** A rate limit: `messages` per second, bursts of up to `burst`. */
export interface RateLimit {
  /** Messages per second, sustained. */
  messages: number;
  /**
   * How many messages may come at once above the sustained rate.
   * @default {messages}
   */
  burst?: number;
}

/**
 * Reads a sysex policy as the longest sysex let through, in data bytes:
 * -1 for none, Infinity for any.
 *
 * @throws {RangeError} For anything but "allow", "drop" or a length.
 */
export function sysexLimit(name: string, policy: SysexPolicy): number {
  if (policy === "allow") return Infinity;
  if (policy === "drop") return -1;
  if (!Number.isSafeInteger(policy) || policy < 0) {
    throw new RangeError(
      `${name} must be "allow", "drop" or a non-negative integer: got ${
        JSON.stringify(policy)
      }`,
    );
  }
  return policy;
}

/** Whether a message passes a sysex limit from {@linkcode sysexLimit}. */
export function sysexAllowed(msg: Message, limit: number): boolean {
  return msg.type !== "sysex" || msg.data.length <= limit;
}

/**
 * Checks a positive integer option.
 *
 * @throws {RangeError} Naming the option and the value.
 */
export function positiveInteger(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a positive integer: got ${value}`);
  }
  return value;
}

/**
 * Checks a duration option, in milliseconds.
 *
 * @throws {RangeError} Naming the option and the value.
 */
export function positiveMs(name: string, value: number): number {
  if (!(value > 0) || !Number.isFinite(value)) {
    throw new RangeError(
      `${name} must be a positive number of ms: got ${value}`,
    );
  }
  return value;
}

/** A rate limit, checked. */
export interface Rate {
  /** Messages per millisecond. */
  readonly perMs: number;
  /** The bucket's size. */
  readonly burst: number;
}

/**
 * Checks a rate limit.
 *
 * @param limit The limit.
 * @param what What it is, for errors: `"Rate limit"`, `"Link rate limit"`.
 * @throws {RangeError} For a rate or burst that is not positive.
 */
export function checkRate(limit: RateLimit, what = "Rate limit"): Rate {
  const burst = limit.burst ?? limit.messages;
  if (!(limit.messages > 0) || !Number.isFinite(limit.messages)) {
    throw new RangeError(
      `${what} messages must be a positive number: got ${limit.messages}`,
    );
  }
  if (!(burst >= 1) || !Number.isFinite(burst)) {
    throw new RangeError(`${what} burst must be at least 1: got ${burst}`);
  }
  return Object.freeze({ perMs: limit.messages / 1000, burst });
}

/**
 * A token bucket, counting messages by arrival. A reader that takes a
 * chunk of `count` messages calls `arrive(count)`: they are taken to have
 * arrived evenly since its previous read, so a backlog that waited in a
 * socket while the reader was busy elsewhere is not mistaken for a burst.
 * Over any longer stretch the sustained rate still holds: the bucket never
 * holds more than `burst`.
 */
export class TokenBucket {
  readonly #rate: Rate;
  #tokens: number;
  /** The time the bucket was last filled to. */
  #filled: number;
  /** The previous read, and the arrival times handed out since. */
  #lastRead: number;
  #at: number;
  #step = 0;

  /**
   * Makes a full bucket.
   *
   * @param rate The checked rate.
   * @param now The time now (ms, on the clock `arrive` is given).
   */
  constructor(rate: Rate, now: number = performance.now()) {
    this.#rate = rate;
    this.#tokens = rate.burst;
    this.#filled = this.#lastRead = this.#at = now;
  }

  /**
   * Says that `count` messages were just read, at `now`.
   *
   * @param count How many.
   * @param now When (ms, `performance.now()` unless the owner keeps its own
   * clock).
   */
  arrive(count: number, now: number = performance.now()): void {
    this.#at = Math.max(this.#lastRead, this.#filled);
    this.#step = count > 0 ? Math.max(0, now - this.#at) / count : 0;
    this.#lastRead = now;
  }

  /**
   * Takes one token for the next message, if there is one.
   *
   * @returns Whether the message is within the limit.
   */
  take(): boolean {
    const at = this.#at += this.#step;
    if (at > this.#filled) {
      this.#tokens = Math.min(
        this.#rate.burst,
        this.#tokens + (at - this.#filled) * this.#rate.perMs,
      );
      this.#filled = at;
    }
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

/**
 * Checks a playout delay: a number of ms (0 or more), or `"auto"`.
 *
 * @throws {RangeError} Naming the value.
 */
export function checkLatency(latency: unknown): number | "auto" {
  if (latency === "auto") return latency;
  if (
    typeof latency !== "number" || !(latency >= 0) || !Number.isFinite(latency)
  ) {
    throw new RangeError(
      `latency must be a number of ms (0 or more) or "auto": got ${
        typeof latency === "string" ? JSON.stringify(latency) : latency
      }`,
    );
  }
  return latency;
}
