/**
 * Internal: what a midisock connection says before MIDI flows. All of it is
 * 7-bit ASCII sent at the start of the stream, which MIDI parsers (mido's
 * among them) skip as stray data bytes:
 *
 * - a client that has a token sends `MIDISOCK-TOKEN <token>\n` first; the
 *   server answers `MIDISOCK-OK\n`;
 * - a server that refuses a connection sends `MIDISOCK-REFUSED <reason>\n`,
 *   then closes.
 *
 * And two things that are not MIDI at all: a TLS handshake record sent to a
 * plain port, and a TLS alert a TLS server answers plain bytes with.
 *
 * @module
 */

import type { Gate, Refusal, Ticket } from "../gate.ts";
import { checkToken } from "../_policy.ts";
import { atMost } from "../_time.ts";
import { closeQuietly } from "./_transport.ts";
import { PLAIN_ON_TLS } from "./_tls.ts";

/**
 * The start of the line a client sends first when the server wants a token:
 * `MIDISOCK-TOKEN <token>\n`.
 */
export const TOKEN_PREFIX = "MIDISOCK-TOKEN ";
const OK_LINE = "MIDISOCK-OK\n";
const REFUSED_PREFIX = "MIDISOCK-REFUSED ";
const REPLY_PREFIX = "MIDISOCK-";
/** The longest answer line a client reads. */
const MAX_REPLY = 512;
/** How long a refused peer has to read the reason before the close. */
const REFUSAL_LINGER_MS = 1000;
const LINGER_BYTES = 64 * 1024;

const NEWLINE = 0x0a;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The header line for a token. */
export function tokenHeader(token: string): Uint8Array {
  return encoder.encode(`${TOKEN_PREFIX}${checkToken(token)}\n`);
}

/** Whether bytes start like a TLS record of the given content type. */
function isTlsRecord(bytes: Uint8Array, type: number): boolean {
  return bytes.length >= 2 && bytes[0] === type && bytes[1] === 0x03;
}

/** A TLS handshake record: what a TLS client sends first. */
export function isTlsHello(bytes: Uint8Array): boolean {
  return isTlsRecord(bytes, 0x16);
}

/** A read still under way, handed on to whoever reads next. */
export interface PendingRead {
  /** The read. */
  readonly read: Promise<number | null>;
  /** The buffer it reads into. */
  readonly buffer: Uint8Array;
}

/** What a connection brought before the port took it over. */
export interface Preamble {
  /** Bytes read already, to be parsed first. */
  readonly bytes?: Uint8Array;
  /** A read under way, whose bytes come next. */
  readonly pending?: PendingRead;
}

/**
 * Reads until `done(bytes)` holds, the peer closes, `limit` bytes are read
 * or `deadline` passes. A read still under way at the deadline is handed
 * back, so no byte is lost.
 */
async function readUntil(
  conn: Deno.Conn,
  limit: number,
  deadline: number,
  done: (bytes: Uint8Array) => boolean,
): Promise<{ bytes: Uint8Array; closed: boolean; pending?: PendingRead }> {
  const bytes = new Uint8Array(limit);
  let length = 0;
  for (;;) {
    const view = bytes.subarray(0, length);
    if (length >= limit || done(view)) return { bytes: view, closed: false };
    const buffer = bytes.subarray(length);
    const read = conn.read(buffer);
    const wait = deadline - performance.now();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const n = await Promise.race([
      read,
      new Promise<"late">((resolve) => {
        timer = setTimeout(() => resolve("late"), Math.max(0, wait));
      }),
    ]);
    clearTimeout(timer);
    if (n === "late") {
      return { bytes: view, closed: false, pending: { read, buffer } };
    }
    if (n === null) return { bytes: view, closed: true };
    length += n;
  }
}

/** Options of the server side of a handshake. */
export interface ServerHandshake {
  /** The gate's rules. */
  readonly gate: Gate;
  /** Whether the port serves TLS (a TLS hello is then expected). */
  readonly tls: boolean;
}

/**
 * Runs the server side: TLS handshake (with the deadline), token, then the
 * client bound. Refuses with a reason line where the peer can read one.
 *
 * @returns What the connection sent past the handshake, or the refusal.
 */
export async function serverHandshake(
  conn: Deno.Conn,
  ticket: Ticket,
  options: ServerHandshake,
): Promise<Preamble | Refusal> {
  const { gate } = options;
  const deadline = ticket.deadline;
  if (options.tls) {
    let failure: unknown;
    const late = await atMost(
      (conn as Deno.TlsConn).handshake().catch((error) => failure = error),
      deadline - performance.now(),
    );
    if (late || failure !== undefined) {
      if (late) closeQuietly(conn);
      return late
        ? ticket.refuse(
          "timeout",
          `no TLS handshake within ${gate.handshakeTimeout} ms`,
        )
        : ticket.refuse(
          "protocol",
          failure instanceof Error && failure.message === PLAIN_ON_TLS
            ? PLAIN_ON_TLS
            : "TLS handshake failed",
        );
    }
  }
  let preamble: Preamble = {};
  if (gate.wantsToken) {
    const want = gate.tokenLength + TOKEN_PREFIX.length + 1;
    const { bytes, closed, pending } = await readUntil(
      conn,
      want,
      deadline,
      (seen) => seen.includes(NEWLINE) || isTlsHello(seen),
    );
    if (pending !== undefined || closed) {
      if (pending !== undefined) pending.read.catch(() => {});
      closeQuietly(conn);
      return pending !== undefined
        ? ticket.refuse(
          "timeout",
          `no token within ${gate.handshakeTimeout} ms`,
        )
        : ticket.refuse("no-token", "closed before sending a token");
    }
    if (!options.tls && isTlsHello(bytes)) {
      return refuse(conn, ticket.refuse("protocol", TLS_ON_PLAIN));
    }
    const line = bytes.indexOf(NEWLINE);
    const header = decoder.decode(line < 0 ? bytes : bytes.subarray(0, line));
    if (!header.startsWith(TOKEN_PREFIX)) {
      return refuse(conn, ticket.refuse("no-token", "no token sent"));
    }
    // A line longer than the token can be is a wrong token too.
    if (line < 0 || !ticket.checkToken(header.slice(TOKEN_PREFIX.length))) {
      if (line < 0) ticket.checkToken("");
      return refuse(conn, ticket.refuse("wrong-token", "wrong token"));
    }
    preamble = { bytes: bytes.slice(line + 1) };
  }
  const full = ticket.enter();
  if (full !== undefined) return refuse(conn, full);
  if (gate.wantsToken) {
    try {
      await conn.write(OK_BYTES);
    } catch {
      // The peer left; its port will find out.
    }
  }
  return preamble;
}

/** Why a plain port closes a connection that starts a TLS handshake. */
export const TLS_ON_PLAIN =
  "sent a TLS handshake to a port that does not serve TLS";

let lingering = 0;
const MAX_LINGERING = 64;

/**
 * Tells a refused peer why, then closes: the reason line, our FIN, and a
 * short wait for the peer to close (reading and dropping what it sends), so
 * the close does not reset the connection before the peer reads the line.
 *
 * @returns The refusal, for chaining.
 */
export function refuse(conn: Deno.Conn, refusal: Refusal): Refusal {
  if (lingering >= MAX_LINGERING) {
    closeQuietly(conn);
    return refusal;
  }
  lingering++;
  const line = encoder.encode(`${REFUSED_PREFIX}${refusal.reason}\n`);
  (async () => {
    try {
      await atMost(conn.write(line), REFUSAL_LINGER_MS);
      await conn.closeWrite();
      await atMost(
        readUntil(
          conn,
          LINGER_BYTES,
          performance.now() + REFUSAL_LINGER_MS,
          () => false,
        ).then((r) => r.pending?.read),
        REFUSAL_LINGER_MS,
      );
    } catch {
      // Gone already.
    } finally {
      lingering--;
      closeQuietly(conn);
    }
  })();
  return refusal;
}

/** What a server said at the start of a connection, as a client reads it. */
export type Reply =
  | { kind: "ok"; rest: Uint8Array }
  | { kind: "refused"; reason: string }
  | { kind: "tls" }
  | { kind: "midi"; rest: Uint8Array }
  | { kind: "partial" };

/**
 * Reads the start of what a server sent: an answer line, a TLS alert (the
 * server speaks TLS), or MIDI.
 *
 * @param bytes Everything received so far.
 * @returns What it is; `"partial"` when an answer line is not complete yet.
 */
export function readReply(bytes: Uint8Array): Reply {
  if (bytes.length === 0) return { kind: "partial" };
  if (isTlsRecord(bytes, 0x15) || isTlsHello(bytes)) return { kind: "tls" };
  const start = decoder.decode(bytes.subarray(0, REPLY_PREFIX.length));
  if (!REPLY_PREFIX.startsWith(start)) return { kind: "midi", rest: bytes };
  const line = bytes.indexOf(NEWLINE);
  if (line < 0) {
    return bytes.length >= MAX_REPLY
      ? { kind: "midi", rest: bytes }
      : { kind: "partial" };
  }
  const text = decoder.decode(bytes.subarray(0, line)).replace(/\r$/, "");
  if (`${text}\n` === OK_LINE) {
    return { kind: "ok", rest: bytes.slice(line + 1) };
  }
  if (text.startsWith(REFUSED_PREFIX)) {
    return { kind: "refused", reason: text.slice(REFUSED_PREFIX.length) };
  }
  return { kind: "midi", rest: bytes };
}

/** What a client sent at the start of a connection, as a server reads it. */
export type Request =
  | { kind: "token"; rest: Uint8Array }
  | { kind: "tls" }
  | { kind: "midi"; rest: Uint8Array }
  | { kind: "partial" };

/**
 * Reads the start of what a client sent to a server that wants no token: a
 * token line anyway (answered, and skipped), a TLS hello, or MIDI.
 *
 * @param bytes Everything received so far.
 * @returns What it is; `"partial"` while a token line is not complete.
 */
export function readRequest(bytes: Uint8Array): Request {
  if (bytes.length === 0) return { kind: "partial" };
  if (isTlsHello(bytes)) return { kind: "tls" };
  const start = decoder.decode(bytes.subarray(0, TOKEN_PREFIX.length));
  if (!TOKEN_PREFIX.startsWith(start)) return { kind: "midi", rest: bytes };
  const line = bytes.indexOf(NEWLINE);
  if (line < 0) {
    return bytes.length >= MAX_REPLY
      ? { kind: "midi", rest: bytes }
      : { kind: "partial" };
  }
  return { kind: "token", rest: bytes.slice(line + 1) };
}

/** The line a server answers a token with. */
export const OK_BYTES: Uint8Array = encoder.encode(OK_LINE);

/**
 * Reads a server's answer to a token, within `ms`.
 *
 * @returns The answer, with `"timeout"` and `"closed"` for none.
 */
export async function readAnswer(
  conn: Deno.Conn,
  ms: number,
): Promise<Reply | { kind: "timeout" | "closed" }> {
  const { bytes, closed, pending } = await readUntil(
    conn,
    MAX_REPLY,
    performance.now() + ms,
    (seen) => readReply(seen).kind !== "partial",
  );
  if (pending !== undefined) {
    pending.read.catch(() => {});
    return { kind: "timeout" };
  }
  const reply = readReply(bytes);
  if (reply.kind === "partial" || (reply.kind === "midi" && closed)) {
    return { kind: closed ? "closed" : "timeout" };
  }
  return reply;
}
