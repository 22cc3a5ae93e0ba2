/**
 * Internal: the start of a midisock connection, as I/O: the server's side
 * (TLS, then the client's hello or token, then the client bound, with a
 * refusal line where the peer can read one) and the client's reading of
 * the answer. The lines themselves are in `_hello.ts`.
 *
 * @module
 */

import type { Gate, Refusal, Ticket } from "../gate.ts";
import { atMost } from "../_time.ts";
import {
  HTTP_ON_MIDI,
  HTTP_REFUSAL,
  MAX_LINE,
  okLine,
  readReply,
  readRequest,
  refusedLine,
  type Reply,
  TLS_NOT_SERVED,
  TLS_ON_PLAIN,
} from "./_hello.ts";
import { closeQuietly, type PendingRead, type Preamble } from "./_transport.ts";
import { PLAIN_ON_TLS } from "./_tls.ts";

/** How long a refused peer has to read the reason before the close. */
const REFUSAL_LINGER_MS = 1000;
const LINGER_BYTES = 64 * 1024;
/**
 * How long a server that wants no token waits for a client's first bytes
 * before it takes the client in as one that only listens (a mido client
 * may never send anything). A midisock client says hello at once.
 */
export const FIRST_BYTES_MS = 50;

/** Resolves when `signal` aborts; one listener for a whole handshake. */
function abortion(signal: AbortSignal): Promise<"aborted"> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve("aborted");
    else {signal.addEventListener("abort", () => resolve("aborted"), {
        once: true,
      });}
  });
}

/**
 * The start of a stream, read in pieces while it may still be a line: one
 * read at a time, and the read under way is handed on to whoever reads the
 * connection next, so no byte is lost.
 */
export class StartReader {
  readonly #conn: Deno.Conn;
  #bytes: Uint8Array = new Uint8Array(0);
  #pending: PendingRead | undefined;

  /**
   * Reads the start of `conn`.
   *
   * @param conn The connection.
   */
  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** Everything read so far. */
  get bytes(): Uint8Array {
    return this.#bytes;
  }

  /** The read under way, if any. */
  get pending(): PendingRead | undefined {
    return this.#pending;
  }

  /**
   * Waits for more bytes.
   *
   * @param stop Resolves to end the wait early.
   * @param ms How long to wait at most.
   * @returns `"more"` when bytes came, `"end"` when the peer closed (or the
   * read failed), `"stopped"` when `stop` resolved first, `"late"` when the
   * time ran out first (the read stays under way).
   */
  async more(
    stop: Promise<unknown>,
    ms = Infinity,
  ): Promise<"more" | "end" | "stopped" | "late"> {
    if (this.#pending === undefined) {
      const buffer = new Uint8Array(MAX_LINE);
      const read = this.#conn.read(buffer);
      read.catch(() => {});
      this.#pending = { read, buffer };
    }
    const { read, buffer } = this.#pending;
    let n: number | null | "stopped" | "late";
    try {
      const race = Promise.race([read, stop.then(() => "stopped" as const)]);
      // Late only if the read is still not done a turn of the event loop
      // after the time ran out: a process busy past the time runs its
      // timers before it looks at what the network brought meanwhile.
      n = ms !== Infinity && await atMost(race, ms) && await atMost(race, 0)
        ? "late"
        : await race;
    } catch {
      n = null;
    }
    if (n === "stopped" || n === "late") return n;
    this.#pending = undefined;
    if (n === null) return "end";
    const bytes = new Uint8Array(this.#bytes.length + n);
    bytes.set(this.#bytes);
    bytes.set(buffer.subarray(0, n), this.#bytes.length);
    this.#bytes = bytes;
    return "more";
  }

  /** Reads and drops what comes, until the peer closes or `ms` pass. */
  async drain(ms: number): Promise<void> {
    const deadline = performance.now() + ms;
    const never = new Promise<never>(() => {});
    for (let read = 0; read < LINGER_BYTES;) {
      const before = this.#bytes.length;
      const got = await this.more(never, deadline - performance.now());
      if (got !== "more") return;
      read += this.#bytes.length - before;
      this.#bytes = new Uint8Array(0);
    }
  }
}

let lingering = 0;
const MAX_LINGERING = 64;

/**
 * Tells a refused peer why, then closes: the reason (by default a
 * `MIDISOCK-REFUSED` line; a TLS alert or an HTTP response for such
 * peers), our FIN, and a short wait for the peer to close (reading and
 * dropping what it sends), so the close does not reset the connection
 * before the peer reads the reason.
 *
 * @param telling What to send; `null` for nothing.
 * @returns The refusal, for chaining.
 */
export function refuse(
  conn: Deno.Conn,
  refusal: Refusal,
  reader: StartReader = new StartReader(conn),
  telling: Uint8Array | null = refusedLine(refusal.code, refusal.reason),
): Refusal {
  if (lingering >= MAX_LINGERING || telling === null) {
    closeQuietly(conn);
    return refusal;
  }
  lingering++;
  (async () => {
    try {
      await atMost(conn.write(telling), REFUSAL_LINGER_MS);
      await conn.closeWrite();
      await reader.drain(REFUSAL_LINGER_MS);
    } catch {
      // Gone already.
    } finally {
      lingering--;
      closeQuietly(conn);
    }
  })();
  return refusal;
}

/** Why a handshake was stopped: the gate's refusal, or a server closing. */
function stopped(ticket: Ticket): Refusal {
  return ticket.refusal ?? ticket.refuse("closing", "the server is closing");
}

/** Options of the server side of a handshake. */
export interface ServerHandshake {
  /** The gate's rules. */
  readonly gate: Gate;
  /** Whether the port serves TLS (the connection is a TLS one). */
  readonly tls: boolean;
  /** The features the server takes from a hello. */
  readonly features: readonly string[];
  /**
   * Aborted by the gate (through the ticket's `close`) when the ticket's
   * deadline passes or it is closed to make room: the handshake then tells
   * the peer why and closes.
   */
  readonly signal: AbortSignal;
}

/**
 * Runs the server side: TLS handshake, then the start of the stream (a
 * hello and the token when one is wanted), then the client bound. Refuses
 * with the reason where the peer can read one: a line, a TLS alert to a
 * TLS client, an HTTP response to an HTTP client. A server that wants no
 * token takes a client in at once, and reads its first bytes for a moment
 * (to answer a hello, and to refuse TLS and HTTP before any of it is
 * relayed).
 *
 * @returns What the connection sent past the handshake; the refusal; or
 * `undefined` when the peer left before saying anything (the ticket is
 * then gone and the connection closed).
 */
export async function serverHandshake(
  conn: Deno.Conn,
  ticket: Ticket,
  options: ServerHandshake,
): Promise<Preamble | Refusal | undefined> {
  const { gate } = options;
  const stop = abortion(options.signal);
  if (options.tls) {
    ticket.owes("TLS handshake");
    let failure: unknown;
    const done = await Promise.race([
      (conn as Deno.TlsConn).handshake().then(
        () => "done" as const,
        (error) => (failure = error, "failed" as const),
      ),
      stop,
    ]);
    if (done !== "done") {
      closeQuietly(conn);
      if (done === "aborted") return stopped(ticket);
      // A plain client was told why by the TLS connection itself.
      return ticket.refuse(
        "protocol",
        failure instanceof Error && failure.message === PLAIN_ON_TLS
          ? PLAIN_ON_TLS
          : "TLS handshake failed",
      );
    }
  }
  const reader = new StartReader(conn);
  const wantsToken = gate.wantsToken;
  if (wantsToken) ticket.owes("token");
  else {
    const full = ticket.enter();
    if (full !== undefined) return refuse(conn, full, reader);
  }
  const until = wantsToken ? Infinity : performance.now() + FIRST_BYTES_MS;
  for (;;) {
    const request = readRequest(reader.bytes);
    switch (request.kind) {
      case "partial": {
        const got = await reader.more(stop, until - performance.now());
        if (got === "more") continue;
        if (got === "stopped") return refuse(conn, stopped(ticket), reader);
        if (got === "late") {
          // A client that only listens, or one slow to speak: its port
          // reads on, and still answers a hello or refuses TLS and HTTP.
          return { bytes: reader.bytes, pending: reader.pending };
        }
        closeQuietly(conn);
        if (!wantsToken) {
          ticket.leave();
          return undefined;
        }
        return ticket.refuse("no-token", "closed before sending a token");
      }
      case "tls":
        return refuse(
          conn,
          ticket.refuse("protocol", TLS_ON_PLAIN),
          reader,
          options.tls ? null : TLS_NOT_SERVED,
        );
      case "http":
        return refuse(
          conn,
          ticket.refuse("protocol", HTTP_ON_MIDI, request.line),
          reader,
          HTTP_REFUSAL,
        );
      case "midi":
        if (wantsToken) {
          return refuse(
            conn,
            ticket.refuse("no-token", "no token: this server wants one"),
            reader,
          );
        }
        return { bytes: request.rest, admitted: [] };
      case "hello": {
        if (wantsToken) {
          if (request.token === undefined) {
            return refuse(
              conn,
              ticket.refuse("no-token", "no token: this server wants one"),
              reader,
            );
          }
          const wrong = await ticket.present(request.token);
          if (wrong !== undefined) return refuse(conn, wrong, reader);
          const full = ticket.enter();
          if (full !== undefined) return refuse(conn, full, reader);
        }
        const features = request.features.filter((f) =>
          options.features.includes(f)
        );
        try {
          await conn.write(okLine(features));
        } catch {
          // The peer left; its port will find out.
        }
        return { bytes: request.rest, admitted: features };
      }
    }
  }
}

/**
 * Reads a server's answer to a hello, within `ms`.
 *
 * @returns The answer, with `"timeout"` and `"closed"` for none.
 */
export async function readAnswer(
  conn: Deno.Conn,
  ms: number,
): Promise<Reply | { kind: "timeout" | "closed" }> {
  const reader = new StartReader(conn);
  const deadline = performance.now() + ms;
  const never = new Promise<never>(() => {});
  for (;;) {
    const reply = readReply(reader.bytes);
    if (reply.kind !== "partial") return reply;
    const got = await reader.more(never, deadline - performance.now());
    if (got === "late") return { kind: "timeout" };
    if (got === "end") return { kind: "closed" };
  }
}
