/**
 * Errors a caller may want to catch by class.
 *
 * Bad arguments throw the built-in `TypeError` or `RangeError`, and text that
 * does not parse throws `SyntaxError`; the classes here are for conditions
 * that happen at run time.
 *
 * @module
 */

/**
 * Thrown when a port is used after it was closed, by the user or by the
 * peer: sending on it, or awaiting `receive()` once nothing
 * more can arrive.
 *
 * @example Telling a closed port from other failures
 * ```ts
 * import assert from "node:assert/strict";
 * import { PortClosedError } from "@x/midisock";
 *
 * const error: Error = new PortClosedError("127.0.0.1:8080");
 * assert.ok(error instanceof PortClosedError);
 * assert.equal(error.port, "127.0.0.1:8080");
 * assert.equal(error.message, "Port 127.0.0.1:8080 is closed");
 * ```
 */
export class PortClosedError extends Error {
  /** The name of the port that is closed. */
  readonly port: string;

  /**
   * Makes the error for one port.
   *
   * @param port The port's name.
   * @param options `cause`: what closed it, where known.
   */
  constructor(port: string, options?: ErrorOptions) {
    super(`Port ${port} is closed`, options);
    this.name = "PortClosedError";
    this.port = port;
  }
}

/**
 * Thrown by `send` when the bytes waiting to be written to a connection
 * would pass its bound (`maxQueuedBytes`): the peer is not reading fast
 * enough. The message is not queued. A `PortServer` drops such a client
 * instead, and reports this error as the reason.
 *
 * @example Backing off from a slow peer
 * ```ts
 * import assert from "node:assert/strict";
 * import { QueueFullError } from "@x/midisock";
 *
 * const error: Error = new QueueFullError("127.0.0.1:8080", 1 << 20);
 * assert.ok(error instanceof QueueFullError);
 * assert.equal(error.limit, 1048576);
 * ```
 */
export class QueueFullError extends Error {
  /** The port's name. */
  readonly port: string;
  /** The bound, in bytes. */
  readonly limit: number;

  /** What `limit` counts. */
  readonly unit: "bytes" | "messages";

  /**
   * Makes the error.
   *
   * @param port The port's name.
   * @param limit The bound that was reached.
   * @param unit What the bound counts: bytes waiting for a peer that is not
   * reading, or messages held while disconnected.
   */
  constructor(
    port: string,
    limit: number,
    unit: "bytes" | "messages" = "bytes",
  ) {
    super(
      unit === "bytes"
        ? `Send queue of ${port} is full: more than ${limit} bytes wait for a peer that is not reading`
        : `Send queue of ${port} is full: ${limit} messages are held while it is disconnected`,
    );
    this.unit = unit;
    this.name = "QueueFullError";
    this.port = port;
    this.limit = limit;
  }
}

/**
 * Every {@linkcode RefusalCode}, as the wire names them (a TCP server's
 * `MIDISOCK-REFUSED code: reason` line).
 */
export const REFUSAL_CODES = [
  "not-allowed",
  "full",
  "busy",
  "wrong-token",
  "no-token",
  "timeout",
  "waiting",
  "protocol",
  "closing",
] as const;

/**
 * Why a connection was refused, in a word: not on the allow list, the
 * server full, too many handshakes under way, a wrong or missing token, a
 * handshake that took too long (or was closed to make room), an address
 * that must wait after wrong tokens, bytes of another protocol (TLS on a
 * plain port or the reverse, HTTP), or a hub closing.
 */
export type RefusalCode = typeof REFUSAL_CODES[number];

/** Options for {@linkcode RefusedError}. */
export interface RefusedErrorOptions extends ErrorOptions {
  /** Why, in a word, when the server said it. */
  code?: RefusalCode;
}

/**
 * Thrown when a server refuses a connection and says why (its reason line),
 * or when a connection cannot be the kind asked for (a plain connection to a
 * TLS server, or the reverse). Ports closed this way report it as the
 * `cause` of their {@linkcode PortClosedError}.
 *
 * @example Telling a refusal from other failures
 * ```ts
 * import assert from "node:assert/strict";
 * import { RefusedError } from "@x/midisock";
 *
 * const error = new RefusedError("127.0.0.1:8080", "wrong token", {
 *   code: "wrong-token",
 * });
 * assert.equal(error.message, "Refused by 127.0.0.1:8080 (wrong token)");
 * assert.equal(error.reason, "wrong token");
 * assert.equal(error.code, "wrong-token");
 * ```
 */
export class RefusedError extends Error {
  /** The server's address, `host:port`. */
  readonly server: string;
  /** Why, as the server (or the TLS layer) said. */
  readonly reason: string;
  /** Why, in a word, when the server (or the TLS layer) said it. */
  readonly code: RefusalCode | undefined;

  /**
   * Makes the error.
   *
   * @param server The server's address.
   * @param reason Why it refused.
   * @param options `code`: why, in a word; `cause`: the underlying error,
   * where there is one.
   */
  constructor(server: string, reason: string, options?: RefusedErrorOptions) {
    super(`Refused by ${server} (${reason})`, options);
    this.name = "RefusedError";
    this.server = server;
    this.reason = reason;
    this.code = options?.code;
  }
}

/**
 * Why a hub dropped an endpoint that fell behind: more than its bound waited
 * for it for too long, or it took nothing at all for too long.
 *
 * @example Reading why an endpoint was dropped
 * ```ts
 * import assert from "node:assert/strict";
 * import { FellBehindError } from "@x/midisock";
 *
 * const error = new FellBehindError("127.0.0.1:50000", 3145728, 2000, true);
 * assert.equal(
 *   error.message,
 *   "127.0.0.1:50000 fell behind: 3145728 bytes waiting, none taken for 2000 ms",
 * );
 * ```
 */
export class FellBehindError extends Error {
  /** The endpoint's name. */
  readonly endpoint: string;
  /** Bytes that were waiting for it. */
  readonly waiting: number;
  /** For how long, in milliseconds (0: past the hard bound at once). */
  readonly ms: number;
  /** Whether it took nothing at all in that time. */
  readonly stalled: boolean;
  /**
   * Set when it was dropped because too much waited for all endpoints
   * together: the hub's budget (`maxQueuedTotal`), in bytes. `ms` and
   * `stalled` then say nothing.
   */
  readonly budget: number | undefined;

  /**
   * Makes the error.
   *
   * @param endpoint The endpoint's name.
   * @param waiting Bytes waiting for it.
   * @param ms For how long.
   * @param stalled Whether nothing was taken at all.
   * @param budget The hub-wide budget, when that was what ran out.
   */
  constructor(
    endpoint: string,
    waiting: number,
    ms: number,
    stalled = false,
    budget?: number,
  ) {
    super(
      `${endpoint} fell behind: ${waiting} bytes waiting, ${
        budget !== undefined
          ? `dropped to bring what waits for all endpoints under ${budget} bytes`
          : ms === 0
          ? "past the hard bound"
          : stalled
          ? `none taken for ${ms} ms`
          : `over the bound for ${ms} ms`
      }`,
    );
    this.budget = budget;
    this.name = "FellBehindError";
    this.endpoint = endpoint;
    this.waiting = waiting;
    this.ms = ms;
    this.stalled = stalled;
  }
}
