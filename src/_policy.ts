/**
 * Internal: what may pass through a port or a hub, checked once and frozen:
 * sysex policies, rate limits (a token bucket) and bounds.
 *
 * @module
 */

import type { Message } from "./codec/messages.ts";

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
 * @throws {RangeError} For a rate or burst that is not positive.
 */
export function checkRate(limit: RateLimit): Rate {
  const burst = limit.burst ?? limit.messages;
  if (!(limit.messages > 0) || !Number.isFinite(limit.messages)) {
    throw new RangeError(
      `Rate limit messages must be a positive number: got ${limit.messages}`,
    );
  }
  if (!(burst >= 1) || !Number.isFinite(burst)) {
    throw new RangeError(`Rate limit burst must be at least 1: got ${burst}`);
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
   */
  constructor(rate: Rate) {
    this.#rate = rate;
    this.#tokens = rate.burst;
    this.#filled = this.#lastRead = this.#at = performance.now();
  }

  /**
   * Says that `count` messages were just read, at `now`.
   *
   * @param count How many.
   * @param now When (ms, `performance.now()`).
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
