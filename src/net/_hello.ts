/**
 * Internal: the lines a midisock connection starts with, as bytes. Pure: no
 * I/O, so every reader here can be fuzzed.
 *
 * All of it is 7-bit ASCII sent before the first status byte, which MIDI
 * parsers (mido's among them) skip as stray data bytes:
 *
 * - a midisock client says `MIDISOCK-HELLO [feature ...] [token=<token>]`
 *   first. Features are words it offers (the timed mode of a later version,
 *   say); a server ignores those it does not know.
 * - a midisock server answers a hello with `MIDISOCK-OK [feature ...]` (the
 *   features it takes, from those offered), or refuses any connection with
 *   `MIDISOCK-REFUSED <code>: <reason>` and closes it.
 * - the older `MIDISOCK-TOKEN <token>` line is a hello with a token and no
 *   features; it is answered the same way.
 *
 * A mido client says no hello, so it gets no answer, only a refusal line
 * (which it skips); a mido server skips the hello and never answers.
 *
 * And what is not MIDI at all, at the start of a stream: a TLS record (a
 * TLS client on a plain port, or a TLS server answering plain bytes), and
 * an HTTP request line (a web page posting to the port).
 *
 * @module
 */

import { REFUSAL_CODES, type RefusalCode } from "../errors.ts";

/**
 * The start of the line a client sends first when the server wants a token:
 * `MIDISOCK-TOKEN <token>\n` (the older form of a hello).
 */
export const TOKEN_PREFIX = "MIDISOCK-TOKEN ";
const HELLO = "MIDISOCK-HELLO";
const OK = "MIDISOCK-OK";
const REFUSED = "MIDISOCK-REFUSED ";
const PREFIX = "MIDISOCK-";
const TOKEN_WORD = "token=";
/** Why a plain port refuses a connection that starts a TLS handshake. */
export const TLS_ON_PLAIN =
  "sent a TLS handshake to a port that does not serve TLS";
/** Why a port refuses a connection that starts with an HTTP request. */
export const HTTP_ON_MIDI = "sent an HTTP request to a MIDI port";

/** The longest line either side reads; a longer one is not a midisock line. */
export const MAX_LINE = 512;
/** The longest HTTP method taken for one. */
const MAX_METHOD = 12;

const NEWLINE = 0x0a;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Checks a feature word: 1-64 printable ASCII characters, no spaces, not
 * a token.
 *
 * @throws {TypeError} Naming it.
 */
export function checkFeature(feature: string): string {
  if (!/^[\x21-\x7e]{1,64}$/.test(feature) || feature.startsWith(TOKEN_WORD)) {
    throw new TypeError(
      `A feature must be 1-64 printable ASCII characters without spaces, not starting with "${TOKEN_WORD}": got ${
        JSON.stringify(feature)
      }`,
    );
  }
  return feature;
}

/**
 * A client's hello: the features it offers, and its token (checked by the
 * caller).
 */
export function helloLine(
  features: readonly string[],
  token?: string,
): Uint8Array {
  const words = [HELLO, ...features.map(checkFeature)];
  if (token !== undefined) words.push(`${TOKEN_WORD}${token}`);
  return encoder.encode(`${words.join(" ")}\n`);
}

/** A server's answer to a hello: the features it takes. */
export function okLine(features: readonly string[]): Uint8Array {
  return encoder.encode(`${[OK, ...features].join(" ")}\n`);
}

/** A server's refusal, as a client (or a person) reads it. */
export function refusedLine(code: RefusalCode, reason: string): Uint8Array {
  return encoder.encode(`${REFUSED}${code}: ${reason}\n`);
}

const HTTP_BODY = "This is a MIDI port (midisock), not a web server.\n";

/** What an HTTP client gets instead of MIDI: a 400 it can show. */
export const HTTP_REFUSAL: Uint8Array = encoder.encode(
  "HTTP/1.1 400 Bad Request\r\n" +
    "Content-Type: text/plain; charset=utf-8\r\n" +
    `Content-Length: ${HTTP_BODY.length}\r\n` +
    "Connection: close\r\n\r\n" + HTTP_BODY,
);

/**
 * A fatal TLS alert, for a TLS client that is refused before any TLS: TLS
 * clients show its description (rustls: "received fatal alert:
 * AccessDenied").
 */
export function tlsAlert(description: number): Uint8Array {
  return new Uint8Array([
    0x15, // alert
    0x03,
    0x03, // TLS 1.2 record
    0x00,
    0x02, // 2 bytes
    0x02, // fatal
    description,
  ]);
}

/** The alert for a client refused by an access rule. */
export const ALERT_ACCESS_DENIED = 49;
/** The alert for a refusal that is not the client's doing (busy, closing). */
export const ALERT_INTERNAL_ERROR = 80;
/**
 * What a plain port answers a TLS hello with: protocol_version, shown by
 * rustls as "received fatal alert: ProtocolVersion".
 */
export const TLS_NOT_SERVED: Uint8Array = tlsAlert(70);

/** Whether bytes start like a TLS record of the given content type. */
function isTlsRecord(bytes: Uint8Array, type: number): boolean {
  return bytes.length >= 2 && bytes[0] === type && bytes[1] === 0x03;
}

/** A TLS handshake record: what a TLS client sends first. */
export function isTlsHello(bytes: Uint8Array): boolean {
  return isTlsRecord(bytes, 0x16);
}

/** Whether `bytes` are the start of `text`, or `text` the start of them. */
function startsAlike(bytes: Uint8Array, text: string): boolean {
  const n = Math.min(bytes.length, text.length);
  for (let i = 0; i < n; i++) {
    if (bytes[i] !== text.charCodeAt(i)) return false;
  }
  return true;
}

/** The first line, without its end, or undefined while it is not whole. */
function firstLine(bytes: Uint8Array): string | undefined {
  const end = bytes.indexOf(NEWLINE);
  if (end < 0) return undefined;
  return decoder.decode(bytes.subarray(0, end)).replace(/\r$/, "");
}

/** Splits a line into its words. */
function words(text: string): string[] {
  return text.split(" ").filter((word) => word !== "");
}

/** What a client sent at the start of a connection, as a server reads it. */
export type Request =
  | {
    /** A midisock client's hello (or the older token line). */
    kind: "hello";
    /** The features it offers. */
    features: string[];
    /** Its token, if it sent one. */
    token: string | undefined;
    /** The bytes after the line. */
    rest: Uint8Array;
  }
  | { kind: "tls" }
  | {
    /** An HTTP request. */
    kind: "http";
    /** Its request line, as far as it came (for the refusal's detail). */
    line: string;
  }
  | {
    /** MIDI (or anything else, which a MIDI parser skips). */
    kind: "midi";
    /** Every byte, to parse. */
    rest: Uint8Array;
  }
  | { kind: "partial" };

/**
 * Reads the start of what a client sent: a hello, a TLS hello, an HTTP
 * request, or MIDI.
 *
 * @param bytes Everything received so far.
 * @returns What it is; `"partial"` while it cannot tell yet.
 */
export function readRequest(bytes: Uint8Array): Request {
  if (bytes.length === 0) return { kind: "partial" };
  if (bytes[0] === 0x16) {
    if (bytes.length === 1) return { kind: "partial" };
    if (isTlsHello(bytes)) return { kind: "tls" };
  }
  if (startsAlike(bytes, PREFIX)) {
    const line = firstLine(bytes);
    if (line === undefined) {
      return bytes.length >= MAX_LINE
        ? { kind: "midi", rest: bytes }
        : { kind: "partial" };
    }
    const rest = bytes.slice(bytes.indexOf(NEWLINE) + 1);
    if (line.startsWith(TOKEN_PREFIX)) {
      return {
        kind: "hello",
        features: [],
        token: line.slice(TOKEN_PREFIX.length),
        rest,
      };
    }
    const [first, ...offered] = words(line);
    if (first === HELLO) {
      let token: string | undefined;
      const features: string[] = [];
      for (const word of offered) {
        if (word.startsWith(TOKEN_WORD)) token = word.slice(TOKEN_WORD.length);
        else features.push(word);
      }
      return { kind: "hello", features, token, rest };
    }
    return { kind: "midi", rest: bytes };
  }
  // An HTTP method (capital letters), then a space.
  let i = 0;
  while (i < bytes.length && i <= MAX_METHOD && isCapital(bytes[i])) i++;
  if (i === bytes.length && i <= MAX_METHOD) return { kind: "partial" };
  if (i >= 3 && i <= MAX_METHOD && bytes[i] === 0x20) {
    const end = bytes.indexOf(NEWLINE);
    const line = decoder.decode(bytes.subarray(0, end < 0 ? 80 : end))
      .replace(/\r$/, "");
    return { kind: "http", line };
  }
  return { kind: "midi", rest: bytes };
}

function isCapital(byte: number): boolean {
  return byte >= 0x41 && byte <= 0x5a;
}

/** What a server said at the start of a connection, as a client reads it. */
export type Reply =
  | {
    /** Admitted. */
    kind: "ok";
    /** The features the server takes. */
    features: string[];
    /** The bytes after the line. */
    rest: Uint8Array;
  }
  | {
    /** Refused. */
    kind: "refused";
    /** Why, in a word, when the server said it. */
    code: RefusalCode | undefined;
    /** Why, for people. */
    reason: string;
  }
  | {
    /** A TLS record: the server speaks TLS. */
    kind: "tls";
  }
  | {
    /** MIDI: the server does not answer hellos (mido). */
    kind: "midi";
    /** Every byte, to parse. */
    rest: Uint8Array;
  }
  | { kind: "partial" };

/**
 * Reads the start of what a server sent: an answer line, a TLS record, or
 * MIDI.
 *
 * @param bytes Everything received so far.
 * @returns What it is; `"partial"` while an answer line is not whole.
 */
export function readReply(bytes: Uint8Array): Reply {
  if (bytes.length === 0) return { kind: "partial" };
  if (bytes.length === 1 && (bytes[0] === 0x15 || bytes[0] === 0x16)) {
    return { kind: "partial" };
  }
  if (isTlsRecord(bytes, 0x15) || isTlsHello(bytes)) return { kind: "tls" };
  if (!startsAlike(bytes, PREFIX)) return { kind: "midi", rest: bytes };
  const line = firstLine(bytes);
  if (line === undefined) {
    return bytes.length >= MAX_LINE
      ? { kind: "midi", rest: bytes }
      : { kind: "partial" };
  }
  const [first, ...features] = words(line);
  if (first === OK) {
    return {
      kind: "ok",
      features,
      rest: bytes.slice(bytes.indexOf(NEWLINE) + 1),
    };
  }
  if (line.startsWith(REFUSED)) {
    const text = line.slice(REFUSED.length);
    const colon = text.indexOf(": ");
    const code = text.slice(0, colon);
    return colon > 0 && (REFUSAL_CODES as readonly string[]).includes(code)
      ? {
        kind: "refused",
        code: code as RefusalCode,
        reason: text.slice(colon + 2),
      }
      : { kind: "refused", code: undefined, reason: text };
  }
  return { kind: "midi", rest: bytes };
}
