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
