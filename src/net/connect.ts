/**
 * `connect`: a client of a midisock or mido socket server.
 *
 * @module
 */

import { RefusedError } from "../errors.ts";
import { checkToken } from "../_policy.ts";
import { checkPort, formatAddress } from "../address.ts";
import { readAnswer, tokenHeader } from "./_handshake.ts";
import type { SocketOptions } from "./_settings.ts";
import { closeQuietly } from "./_transport.ts";
import { SocketPort } from "./socket_port.ts";

/** Options for {@linkcode connect}. */
export interface ConnectOptions extends SocketOptions {
  /**
   * The server's shared secret: sent first, as one line of 7-bit ASCII;
   * `connect` then waits for the server's answer (see `handshakeTimeout`).
   * @default {undefined} (none)
   */
  token?: string;
  /**
   * How long to wait for the server to answer a token, in milliseconds.
   * @default {5000}
   */
  handshakeTimeout?: number;
  /**
   * Connect with TLS. The server's certificate must be valid for `host`
   * and signed by a trusted authority, or by one of `caCerts`.
   * @default {false}
   */
  tls?: boolean;
  /** Extra trusted certificate authorities (PEM), for TLS. */
  caCerts?: string[];
  /** Aborts the connection attempt (TCP connect, TLS and token handshakes). */
  signal?: AbortSignal;
}

/** What rustls says when the other side does not speak TLS. */
const NOT_TLS =
  /InvalidContentType|corrupt message|InvalidMessage|invalid ?message|unexpected ?eof|peer closed connection without sending TLS close_notify|connection reset/i;

/**
 * Connects to a midisock or mido socket server.
 *
 * With a `token`, it waits for the server to accept it. Without one, a
 * server that refuses the connection (not on its allow list, full) says so
 * in a line the port reads first: the port then closes, with a
 * {@linkcode RefusedError} as the cause of its `PortClosedError`.
 *
 * @param host Host name or IP address.
 * @param port TCP port.
 * @param options Queue bounds, policies, token and TLS.
 * @returns The connected port.
 * @throws {Deno.errors.ConnectionRefused} When nothing listens there.
 * @throws {Deno.errors.NotCapable} Without `--allow-net` for the address.
 * @throws {RefusedError} When the server refuses the token, or the
 * connection is not the kind asked for (TLS to a plain server, or the
 * reverse).
 * @throws {Deno.errors.TimedOut} When the server does not answer a token.
 * @throws {TypeError | RangeError} For a bad port, token or option.
 *
 * @example Sending a note to a server
 * ```ts ignore
 * import { connect, message } from "@x/midisock";
 *
 * await using output = await connect("localhost", 8080);
 * await output.send(message("note_on", { note: 60 }));
 * ```
 */
export async function connect(
  host: string,
  port: number,
  options: ConnectOptions = {},
): Promise<SocketPort> {
  checkPort(port);
  if (options.token !== undefined) checkToken(options.token);
  const handshakeTimeout = options.handshakeTimeout ?? 5000;
  if (!(handshakeTimeout > 0)) {
    throw new RangeError(
      `handshakeTimeout must be a positive number of ms: got ${handshakeTimeout}`,
    );
  }
  const name = formatAddress({ hostname: host, port });
  const hostname = host === "" ? "127.0.0.1" : host;
  const tcp = await Deno.connect({ hostname, port, signal: options.signal });
  let conn: Deno.Conn = tcp;
  const abandon = () => closeQuietly(conn);
  options.signal?.addEventListener("abort", abandon);
  try {
    if (options.tls) {
      // TLS connections offer no TCP options: set them on the socket below.
      tcp.setNoDelay(true);
      tcp.setKeepAlive(true);
      conn = await Deno.startTls(tcp, { hostname, caCerts: options.caCerts });
      try {
        await (conn as Deno.TlsConn).handshake();
      } catch (error) {
        if (options.signal?.aborted) throw options.signal.reason;
        if (error instanceof Error && NOT_TLS.test(error.message)) {
          throw new RefusedError(name, "not a TLS server", { cause: error });
        }
        throw error;
      }
    }
    let preamble;
    if (options.token !== undefined) {
      await conn.write(tokenHeader(options.token));
      const answer = await readAnswer(conn, handshakeTimeout);
      if (options.signal?.aborted) throw options.signal.reason;
      switch (answer.kind) {
        case "ok":
          preamble = { bytes: answer.rest };
          break;
        case "refused":
          throw new RefusedError(name, answer.reason);
        case "tls":
          throw new RefusedError(name, "it speaks TLS: connect with TLS");
        case "closed":
          throw new RefusedError(name, "closed the connection at the token");
        default:
          throw new Deno.errors.TimedOut(
            `No answer to the token from ${name} within ${handshakeTimeout} ms ` +
              "(is it a midisock server that wants a token?)",
          );
      }
    }
    return new SocketPort(conn, { ...options, name, preamble });
  } catch (error) {
    closeQuietly(conn);
    throw error;
  } finally {
    options.signal?.removeEventListener("abort", abandon);
  }
}
