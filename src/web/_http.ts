/**
 * Internal: the part of HTTP/1.1 the web server speaks, pure: no I/O. It
 * reads a request's head (request line and header fields), bounded, and
 * writes response heads. The server serves a few files and one WebSocket,
 * so there is no request body to read: a request that has one is answered
 * and its connection closed.
 *
 * @module
 */

/** The longest request head read (request line and fields), in bytes. */
export const MAX_HEAD_BYTES = 8192;
/** The most header fields a request may have. */
export const MAX_FIELDS = 64;

/** A request's head. */
export interface RequestHead {
  /** `GET`, `HEAD`, ... */
  readonly method: string;
  /** The path, without the query. */
  readonly path: string;
  /** `HTTP/1.1` or `HTTP/1.0`. */
  readonly version: string;
  /** Header fields by lower-case name; repeated fields joined with `, `. */
  readonly fields: ReadonlyMap<string, string>;
  /** Bytes the head took, the empty line included. */
  readonly size: number;
}

/** What the start of a connection's input holds. */
export type HeadResult =
  | { readonly kind: "partial" }
  | { readonly kind: "head"; readonly head: RequestHead }
  | {
    readonly kind: "bad";
    /** The status to answer with. */
    readonly status: 400 | 431 | 505;
    /** Why, for people: no text the peer sent. */
    readonly reason: string;
  };

/** `tchar` of RFC 9110: what a method and a field name are made of. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** A field value: visible ASCII, spaces and tabs, and any high byte. */
const VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** An origin-form request target: a path and an optional query. */
const TARGET = /^\/[\x21-\x7e]*$/;

/**
 * Reads a request head from the start of `bytes`.
 *
 * @returns The head (with its size, so the caller knows where what follows
 * begins), `partial` while the empty line has not come yet, or why it is
 * refused.
 */
export function readRequestHead(bytes: Uint8Array): HeadResult {
  const end = headEnd(bytes);
  if (end < 0) {
    return bytes.length >= MAX_HEAD_BYTES
      ? { kind: "bad", status: 431, reason: "request head too long" }
      : { kind: "partial" };
  }
  if (end > MAX_HEAD_BYTES) {
    return { kind: "bad", status: 431, reason: "request head too long" };
  }
  // Latin-1: one character per byte, so nothing is lost or merged.
  let text = "";
  for (let i = 0; i < end; i += 4096) {
    text += String.fromCharCode(...bytes.subarray(i, Math.min(end, i + 4096)));
  }
  const lines = text.split("\n").map((line) =>
    line.endsWith("\r") ? line.slice(0, -1) : line
  );
  // A client may send empty lines before the request line.
  while (lines.length > 0 && lines[0] === "") lines.shift();
  // The head ends with an empty line (and the split leaves one after it).
  while (lines.length > 0 && lines.at(-1) === "") lines.pop();
  const requestLine = lines.shift();
  if (requestLine === undefined) {
    return { kind: "bad", status: 400, reason: "empty request" };
  }
  const parts = requestLine.split(" ");
  if (parts.length !== 3 || !TOKEN.test(parts[0])) {
    return { kind: "bad", status: 400, reason: "malformed request line" };
  }
  const [method, target, version] = parts;
  if (version !== "HTTP/1.1" && version !== "HTTP/1.0") {
    return /^HTTP\/\d(\.\d)?$/.test(version)
      ? { kind: "bad", status: 505, reason: "HTTP version not supported" }
      : { kind: "bad", status: 400, reason: "malformed request line" };
  }
  if (!TARGET.test(target)) {
    return { kind: "bad", status: 400, reason: "malformed request target" };
  }
  if (lines.length > MAX_FIELDS) {
    return { kind: "bad", status: 431, reason: "too many header fields" };
  }
  const fields = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    const name = colon < 0 ? "" : line.slice(0, colon);
    const value = line.slice(colon + 1).replace(/^[ \t]+|[ \t]+$/g, "");
    // A name with space before the colon, or a line folded onto the one
    // before (starting with white space), is refused (RFC 9112).
    if (!TOKEN.test(name) || !VALUE.test(value)) {
      return { kind: "bad", status: 400, reason: "malformed header field" };
    }
    const key = name.toLowerCase();
    const seen = fields.get(key);
    if (seen !== undefined && (key === "host" || key === "content-length")) {
      return { kind: "bad", status: 400, reason: `repeated ${key} field` };
    }
    fields.set(key, seen === undefined ? value : `${seen}, ${value}`);
  }
  const query = target.indexOf("?");
  return {
    kind: "head",
    head: {
      method,
      path: query < 0 ? target : target.slice(0, query),
      version,
      fields,
      size: end,
    },
  };
}

/**
 * Where the head ends (after its empty line), or -1: lines end with CRLF,
 * or a bare LF, which RFC 9112 lets a server accept.
 *
 * @param bytes The start of the input.
 * @param from Where to start looking (the head cannot end before it).
 */
export function headEnd(bytes: Uint8Array, from = 0): number {
  const length = Math.min(bytes.length, MAX_HEAD_BYTES + 4);
  for (let i = bytes.indexOf(0x0a, from); i >= 0 && i < length;) {
    if (bytes[i + 1] === 0x0a) return i + 2;
    if (bytes[i + 1] === 0x0d && bytes[i + 2] === 0x0a) return i + 3;
    i = bytes.indexOf(0x0a, i + 1);
  }
  return -1;
}

/**
 * Whether a field's value holds `token` in its comma-separated list (as
 * `Connection: keep-alive, Upgrade` holds `upgrade`), ignoring case.
 */
export function hasToken(value: string | undefined, token: string): boolean {
  if (value === undefined) return false;
  return value.split(",").some((part) => part.trim().toLowerCase() === token);
}

/** Whether a request carries a body (which this server never reads). */
export function hasBody(head: RequestHead): boolean {
  const length = head.fields.get("content-length");
  return head.fields.has("transfer-encoding") ||
    (length !== undefined && length !== "0");
}

/** Whether the client wants the connection kept open after the answer. */
export function keepsAlive(head: RequestHead): boolean {
  const connection = head.fields.get("connection");
  if (hasToken(connection, "close")) return false;
  return head.version === "HTTP/1.1" || hasToken(connection, "keep-alive");
}

const REASONS: Record<number, string> = {
  101: "Switching Protocols",
  200: "OK",
  304: "Not Modified",
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  421: "Misdirected Request",
  426: "Upgrade Required",
  431: "Request Header Fields Too Large",
  503: "Service Unavailable",
  505: "HTTP Version Not Supported",
};

const encoder = new TextEncoder();

/**
 * A response head: the status line and the fields, with the empty line
 * that ends it.
 *
 * @param status The status code.
 * @param fields The header fields, in order.
 */
export function responseHead(
  status: number,
  fields: Readonly<Record<string, string>>,
): Uint8Array {
  let text = `HTTP/1.1 ${status} ${REASONS[status] ?? "Unknown"}\r\n`;
  for (const [name, value] of Object.entries(fields)) {
    text += `${name}: ${value}\r\n`;
  }
  return encoder.encode(`${text}\r\n`);
}

/** The GUID RFC 6455 appends to a client's key. */
const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** A `Sec-WebSocket-Key`: 16 bytes in base64. */
const WEBSOCKET_KEY = /^[A-Za-z0-9+/]{21}[AQgw]==$/;

/** Whether a `Sec-WebSocket-Key` is well formed. */
export function webSocketKeyValid(key: string | undefined): key is string {
  return key !== undefined && WEBSOCKET_KEY.test(key);
}

/**
 * The `Sec-WebSocket-Accept` that answers a key: the base64 of the SHA-1
 * of the key and the RFC's GUID.
 */
export async function webSocketAccept(key: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-1",
    encoder.encode(key + WEBSOCKET_GUID),
  );
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}
