/**
 * `connect`: a client of a midisock or mido socket server.
 *
 * @module
 */

import { RefusedError } from "../errors.ts";
import { checkToken } from "../gate.ts";
import { positiveMs } from "../_policy.ts";
import { atMost } from "../_time.ts";
import { checkPort, formatAddress } from "../address.ts";
import { readAnswer } from "./_handshake.ts";
import { helloLine } from "./_hello.ts";
import type { SocketOptions } from "./_settings.ts";
import { closeQuietly, type Preamble } from "./_transport.ts";
import { SocketPort } from "./socket_port.ts";
import { checkClock, TIMED } from "./_timed.ts";
import type { TimeSource } from "../clock.ts";

/** Options for {@linkcode connect}. */
export interface ConnectOptions extends SocketOptions {
  /**
   * The server's shared secret, sent in the hello (one line of 7-bit ASCII
   * before any MIDI); `connect` then waits for the server's answer (see
   * `handshakeTimeout`).
   * @default {undefined} (none)
   */
  token?: string;
  /**
   * How long to wait for the TLS handshake, and for the server's answer to
   * a token, in milliseconds.
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
  /**
   * Features to offer the server in the hello: words a midisock server
   * takes or ignores (`port.admitted` resolves to those it took, and
   * `port.features` holds them). `"timed"` is the timed mode (see
   * `timed`).
   * @default {[]}
   */
  features?: readonly string[];
  /**
   * Ask the server for the timed mode (the same as offering `"timed"` in
   * `features`). A midisock server takes it by default: both ends then
   * carry when each message happened, and the port pings the server every
   * 100 ms to map the server's clock to its own (`port.timing`). On a hub
   * (added as a `"link"` endpoint, with the hub's `clock`), the times go
   * from hub to hub, and each hub's playout delay (`latency`) plays them
   * out. A server that does not take it (mido's, or one that says no)
   * gets the plain stream: nothing changes.
   * @default {false}
   */
  timed?: boolean;
  /**
   * The clock of the timed mode: the port's times are read on it. On a
   * hub, give it the hub's (`hub.clock`).
   * @default {systemClock}
   */
  clock?: TimeSource;
  /** Aborts the connection attempt (TCP connect, TLS and token handshakes). */
  signal?: AbortSignal;
}

/** What rustls says when the other side does not speak TLS. */
const NOT_TLS =
  /InvalidContentType|corrupt message|InvalidMessage|invalid ?message|unexpected ?eof|peer closed connection without sending TLS close_notify|connection reset/i;

/** What a midisock server's TLS alerts mean, before any TLS. */
const ALERTS: readonly [RegExp, RefusedError["code"], string][] = [
  [
    /fatal alert: ProtocolVersion/i,
    "protocol",
    "it does not serve TLS: connect without TLS",
  ],
  [
    /fatal alert: AccessDenied/i,
    "not-allowed",
    "address not in the allow list",
  ],
  [
    /fatal alert: InternalError/i,
    "busy",
    "it cannot take the connection now; try again",
  ],
];

/**
 * Connects to a midisock or mido socket server.
 *
 * It says hello first (a line of 7-bit ASCII that a mido server skips), so
 * that a midisock server answers at once: `MIDISOCK-OK`, or why it refuses.
 * With a `token`, `connect` waits for that answer: it rejects with a
 * {@linkcode RefusedError} when refused. Without one, it resolves as soon
 * as the connection is up (a mido server never answers), and the port
 * learns the answer as it comes: `port.admitted` resolves, or the port
 * closes with the {@linkcode RefusedError} as the cause of its
 * `PortClosedError` (`port.refused` says it; `send` then throws).
 *
 * @param host Host name or IP address.
 * @param port TCP port.
 * @param options Queue bounds, policies, token and TLS.
 * @returns The connected port.
 * @throws {Deno.errors.ConnectionRefused} When nothing listens there.
 * @throws {Deno.errors.NotCapable} Without `--allow-net` for the address.
 * @throws {RefusedError} When the server refuses the token (or the
 * connection, with TLS), or the connection is not the kind asked for (TLS
 * to a plain server, or the reverse).
 * @throws {Deno.errors.TimedOut} When the server does not answer a token,
 * or finish a TLS handshake, within `handshakeTimeout`.
 * @throws {TypeError | RangeError} For a bad port, token or option.
 *
 * @example Sending a note to a server
 * ```ts ignore
 * import { connect, message } from "@x/midisock";
 *
 * await using output = await connect("localhost", 8080);
 * await output.send(message("note_on", { note: 60 }));
 * ```
 *
 * @example A refusal, told at once
 * ```ts
 * import assert from "node:assert/strict";
 * import { connect, PortServer, RefusedError } from "@x/midisock";
 *
 * await using server = new PortServer("127.0.0.1", 0, {
 *   token: "correct-horse-battery",
 * });
 * await assert.rejects(
 *   connect("127.0.0.1", server.port, { token: "a-wrong-guess" }),
 *   (e: unknown) => e instanceof RefusedError && e.code === "wrong-token",
 * );
 * await using plain = await connect("127.0.0.1", server.port);
 * await assert.rejects(
 *   plain.admitted,
 *   (e: unknown) => e instanceof RefusedError && e.code === "no-token",
 * );
 * ```
 */
export async function connect(
  host: string,
  port: number,
  options: ConnectOptions = {},
): Promise<SocketPort> {
  checkPort(port);
  if (options.token !== undefined) checkToken(options.token);
  const handshakeTimeout = positiveMs(
    "handshakeTimeout",
    options.handshakeTimeout ?? 5000,
  );
  const offered = offers(options);
  const hello = helloLine(offered, options.token);
  if (options.clock !== undefined) checkClock(options.clock);
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
      await tlsHandshake(conn as Deno.TlsConn, name, handshakeTimeout);
    }
    await conn.write(hello);
    let preamble: Preamble | undefined;
    if (options.token !== undefined) {
      const answer = await readAnswer(conn, handshakeTimeout);
      if (options.signal?.aborted) throw options.signal.reason;
      switch (answer.kind) {
        case "ok":
          preamble = {
            bytes: answer.rest,
            admitted: answer.features,
            greeted: true,
          };
          break;
        case "midi":
          // A server that answers no hello, and let us in (mido's).
          preamble = { bytes: answer.rest, admitted: [] };
          break;
        case "refused":
          throw new RefusedError(name, answer.reason, { code: answer.code });
        case "tls":
          throw new RefusedError(name, "it speaks TLS: connect with TLS", {
            code: "protocol",
          });
        case "closed":
          throw new RefusedError(name, "closed the connection at the token");
        default:
          throw new Deno.errors.TimedOut(
            `No answer to the token from ${name} within ${handshakeTimeout} ms ` +
              "(is it a midisock server that wants a token?)",
          );
      }
    }
    return new SocketPort(conn, {
      ...options,
      features: undefined,
      offered,
      name,
      preamble,
    });
  } catch (error) {
    closeQuietly(conn);
    if (options.signal?.aborted) throw options.signal.reason;
    throw error;
  } finally {
    options.signal?.removeEventListener("abort", abandon);
  }
}

/** The features a client's hello offers. */
function offers(options: ConnectOptions): readonly string[] {
  const features = options.features ?? [];
  return options.timed === true && !features.includes(TIMED)
    ? [...features, TIMED]
    : features;
}

/** Runs a client's TLS handshake, within `ms`, naming why it failed. */
async function tlsHandshake(
  conn: Deno.TlsConn,
  name: string,
  ms: number,
): Promise<void> {
  let failure: unknown;
  const late = await atMost(
    conn.handshake().catch((error) => failure = error ?? new Error()),
    ms,
  );
  if (late) {
    throw new Deno.errors.TimedOut(
      `No TLS handshake from ${name} within ${ms} ms (is it a TLS server?)`,
    );
  }
  if (failure === undefined) return;
  const message = failure instanceof Error ? failure.message : "";
  for (const [pattern, code, reason] of ALERTS) {
    if (pattern.test(message)) {
      throw new RefusedError(name, reason, { code, cause: failure });
    }
  }
  if (NOT_TLS.test(message)) {
    throw new RefusedError(name, "not a TLS server", {
      code: "protocol",
      cause: failure,
    });
  }
  const advice = CERTIFICATE_ADVICE.find(([pattern]) => pattern.test(message));
  if (advice !== undefined) {
    throw new Deno.errors.InvalidData(advice[1], { cause: failure });
  }
  throw failure;
}

/** What to do about the server certificates rustls refuses, by its code. */
const CERTIFICATE_ADVICE: readonly [RegExp, string][] = [
  [
    /CaUsedAsEndEntity/,
    "the server's certificate is a CA certificate (self-signed with " +
    "CA:TRUE): make a CA, sign a server certificate with it, serve that " +
    "and trust the CA (connect's --ca; see the README's TLS recipe)",
  ],
  [
    /UnknownIssuer/,
    "the server's certificate is not signed by a trusted authority: " +
    "trust the CA that signed it (caCerts, connect's --ca)",
  ],
  [
    /NotValidForName/,
    "the server's certificate is not valid for this host name: connect " +
    "with a name it lists (its subjectAltName)",
  ],
  [/Expired/, "the server's certificate has expired"],
];
