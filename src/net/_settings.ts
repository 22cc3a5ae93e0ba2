/**
 * Internal: socket options, checked once, defaults filled in, frozen and
 * passed down.
 *
 * @module
 */

import { DEFAULT_MAX_SYSEX_LENGTH } from "../codec/parser.ts";
import { DEFAULT_QUEUE_SIZE } from "../port.ts";
import { positiveInteger } from "../_policy.ts";

/**
 * Options every socket port takes. What may pass (sysex, rates) is a hub's
 * business: a hub's options (`HubOptions`), and a `PortServer`'s own.
 */
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
   * is dropped (and counted in `dropped`), and memory stays flat.
   * @default {1048576}
   */
  maxSysexLength?: number;
}

/** The send queue's bound when no option says otherwise: 1 MiB. */
export const DEFAULT_MAX_QUEUED_BYTES = 1 << 20;

/** Socket options, checked. */
export interface SocketSettings {
  readonly queueSize: number;
  readonly maxQueuedBytes: number;
  /** The parser's bound. */
  readonly maxSysexLength: number;
}

/**
 * Checks socket options and fills in their defaults.
 *
 * @throws {RangeError} For a bound out of range.
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
  return Object.freeze({ queueSize, maxQueuedBytes, maxSysexLength });
}
