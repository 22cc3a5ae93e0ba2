/**
 * Internal: socket options, checked once, defaults filled in, frozen and
 * passed down.
 *
 * @module
 */

import { DEFAULT_MAX_SYSEX_LENGTH } from "../codec/parser.ts";
import { DEFAULT_QUEUE_SIZE } from "../port.ts";
import {
  checkRate,
  positiveInteger,
  type Rate,
  type RateLimit,
  sysexLimit,
  type SysexPolicy,
} from "../_policy.ts";

/** Options every socket port takes. */
export interface SocketOptions {
  /**
   * How many received messages wait for the reader at most. When full, the
   * port stops reading from the socket until the reader catches up, so TCP
   * slows the sender down: nothing is dropped.
   * @default {4096}
   */
  queueSize?: number;
  /**
   * How many bytes may wait to be written to a peer that is not reading.
   * Past it `send` throws {@linkcode QueueFullError}.
   * @default {1048576}
   */
  maxQueuedBytes?: number;
  /**
   * The longest sysex accepted from the peer, in data bytes; a longer one
   * is dropped.
   * @default {1048576}
   */
  maxSysexLength?: number;
  /**
   * What to do with sysex from the peer: `"allow"`, `"drop"`, or a number,
   * the longest sysex let through (data bytes; longer ones are dropped).
   * Dropped messages count in `dropped`.
   * @default {"allow"}
   */
  sysexIn?: SysexPolicy;
  /**
   * What to do with sysex sent to the peer: `"allow"`, `"drop"` (skipped
   * silently, so one policy serves a whole server), or the longest sysex
   * let through, in data bytes.
   * @default {"allow"}
   */
  sysexOut?: SysexPolicy;
  /**
   * Most messages per second accepted from the peer, with bursts; messages
   * over it are dropped (and counted in `dropped`), the connection stays.
   * @default {undefined} (no limit)
   */
  rateLimit?: RateLimit;
}

/** The send queue's bound when no option says otherwise: 1 MiB. */
export const DEFAULT_MAX_QUEUED_BYTES = 1 << 20;

/** Socket options, checked. */
export interface SocketSettings {
  readonly queueSize: number;
  readonly maxQueuedBytes: number;
  /** The parser's bound: `maxSysexLength`, lowered by `sysexIn`. */
  readonly maxSysexLength: number;
  /** Longest sysex let in, out: -1 none, Infinity any. */
  readonly sysexIn: number;
  readonly sysexOut: number;
  readonly rate: Rate | undefined;
}

/**
 * Checks socket options and fills in their defaults.
 *
 * @throws {RangeError} For a bound or policy out of range.
 */
export function resolveSocketOptions(options: SocketOptions): SocketSettings {
  const queueSize = positiveInteger(
    "queueSize",
    options.queueSize ?? DEFAULT_QUEUE_SIZE,
  );
  const maxQueuedBytes = positiveInteger(
    "maxQueuedBytes",
    options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES,
  );
  const maxSysexLength = options.maxSysexLength ?? DEFAULT_MAX_SYSEX_LENGTH;
  if (!Number.isSafeInteger(maxSysexLength) || maxSysexLength < 0) {
    throw new RangeError(
      `maxSysexLength must be a non-negative integer: got ${maxSysexLength}`,
    );
  }
  const sysexIn = sysexLimit("sysexIn", options.sysexIn ?? "allow");
  const sysexOut = sysexLimit("sysexOut", options.sysexOut ?? "allow");
  return Object.freeze({
    queueSize,
    maxQueuedBytes,
    maxSysexLength: Math.min(maxSysexLength, Math.max(sysexIn, 0)),
    sysexIn,
    sysexOut,
    rate: options.rateLimit && checkRate(options.rateLimit),
  });
}
