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
 * import { PortClosedError } from "@x/midisock";
 *
 * const error: Error = new PortClosedError("127.0.0.1:8080");
 * if (error instanceof PortClosedError) console.log(error.port);
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
 * import { QueueFullError } from "@x/midisock";
 *
 * const error: Error = new QueueFullError("127.0.0.1:8080", 1 << 20);
 * if (error instanceof QueueFullError) console.log(error.limit); // 1048576
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
