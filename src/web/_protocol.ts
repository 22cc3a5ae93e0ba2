/**
 * Internal: what a page and the web server say to each other over the
 * WebSocket at `/midi`, and the checks an HTTP request passes first. Pure:
 * no I/O.
 *
 * Binary frames carry MIDI both ways: one or more whole MIDI 1.0 messages,
 * each with its own status byte, as on the TCP socket. A binary frame may
 * also carry when its messages happened: then it starts with the byte
 * {@linkcode TIMED} (a data byte, so never the start of an untimed frame),
 * then the time as a 64-bit float, big-endian, in milliseconds on the
 * hub's clock, then the messages. Text frames carry JSON control messages:
 *
 * - server to page: `{"type":"token"}` (send your token now), `welcome`
 *   (with `keepAlive`: how often, in milliseconds, the page sends active
 *   sensing so that an open page never counts as idle, 0 for never; `time`:
 *   the version of the time protocol below the server speaks; `latency`:
 *   the hub's playout delay in milliseconds, 0 for none), `latency` (the
 *   delay changed), `time` (an answer), `refused`, `endpoints`, `monitor`;
 * - page to server: `{"type":"token","token":"..."}`, first, and only when
 *   asked; then, to a server whose welcome has `time`:
 *   `{"type":"time","t1":T}` (T: when the page asked, on its clock),
 *   answered at once with `{"type":"time","t1":T,"t2":H,"t3":H}` (H: when
 *   the server read it and answered, on the hub's clock), an NTP-style
 *   exchange from which the page maps its clock to the hub's; and
 *   `{"type":"mode","timed":true}` when it schedules what it plays (Web
 *   MIDI output), `false` when it stops.
 *
 * A page in timed mode is a timed endpoint of the hub: it gets every batch
 * at once, in a timed frame with the batch's time, and plays it at that
 * time plus the hub's delay (mapped to its clock). Other pages get untimed
 * frames when the hub's delay is up, as before. A page sends timed frames,
 * with the time (on the hub's clock) when each was played, once it has
 * mapped its clock; a page that says nothing of time is an endpoint as
 * before.
 *
 * Either side ignores text frames of a type it does not know and fields it
 * does not know (the server counts them as dropped): new kinds of frames
 * can come later without breaking older pages or servers.
 *
 * A refused or dropped page is closed with a code from {@linkcode CLOSE}
 * and the reason as the close reason.
 *
 * @module
 */

import type { Message } from "../codec/messages.ts";
import { formatMessage } from "../codec/text.ts";
import type { RefusalCode } from "../gate.ts";

/**
 * The WebSocket close codes the server uses (the API lets a server pick
 * only 1000 and 3000-4999).
 */
export const CLOSE = {
  /** The endpoint was dropped by the hub (fell behind, idle, an error). */
  dropped: 4000,
  /** The server or the hub is closing: come back later. */
  closing: 4001,
  /** A frame over the bound. */
  tooBig: 4009,
  /** Not the protocol (a TLS or HTTP mistake, a malformed token frame). */
  protocol: 4400,
  /** No token, or a wrong one. */
  token: 4401,
  /** The address is not in the allow list, or the origin is foreign. */
  notAllowed: 4403,
  /** No token within the handshake timeout. */
  timeout: 4408,
  /** Too many handshakes, or too many wrong tokens: retry later. */
  busy: 4429,
  /** The hub is full. */
  full: 4503,
} as const;

/** The close code for a refusal. */
export function closeCodeFor(code: RefusalCode): number {
  switch (code) {
    case "not-allowed":
      return CLOSE.notAllowed;
    case "full":
      return CLOSE.full;
    case "busy":
    case "waiting":
      return CLOSE.busy;
    case "wrong-token":
    case "no-token":
      return CLOSE.token;
    case "timeout":
      return CLOSE.timeout;
    case "protocol":
      return CLOSE.protocol;
    case "closing":
      return CLOSE.closing;
  }
}

const encoder = new TextEncoder();

/**
 * A close reason that fits a close frame: at most 123 bytes of UTF-8, cut
 * at a character boundary.
 */
export function closeReason(text: string): string {
  if (encoder.encode(text).length <= 123) return text;
  let cut = text.slice(0, 120);
  while (encoder.encode(`${cut}...`).length > 123) cut = cut.slice(0, -1);
  return `${cut}...`;
}

/** An endpoint as pages see it. */
export interface EndpointInfo {
  /** A number unique within the hub. */
  readonly id: number;
  /** A name for people. */
  readonly name: string;
  /** `"client"`, `"device"` or `"link"`. */
  readonly kind: string;
  /** `"tcp"`, `"web"`, `"midi"`, `"nats"`, ... */
  readonly transport: string;
  /** Messages taken from it. */
  readonly sent: number;
  /** Messages routed to it. */
  readonly heard: number;
}

/** One line of the monitor: when (ms since the epoch), from whom, what. */
export type MonitorLine = readonly [time: number, source: number, text: string];

/** The frame that asks a page for its token. */
export const TOKEN_REQUEST = '{"type":"token"}';

/** The version of the time protocol the server speaks. */
export const TIME_VERSION = 1;

/**
 * The frame that tells a page it is in: its endpoint's id and name, how
 * often to send active sensing (milliseconds; 0 for never), the time
 * protocol the server speaks, and the hub's playout delay (ms; 0 for none).
 */
export function welcomeFrame(
  id: number,
  name: string,
  keepAlive: number,
  latency: number,
): string {
  return JSON.stringify({
    type: "welcome",
    id,
    name,
    keepAlive,
    time: TIME_VERSION,
    latency,
  });
}

/** The frame that tells pages the hub's playout delay changed (ms). */
export function latencyFrame(latency: number): string {
  return JSON.stringify({ type: "latency", latency });
}

/**
 * The answer to a page's time request: its own time back, and when the
 * server read the request and answered it, on the hub's clock.
 */
export function timeFrame(t1: number, t2: number, t3: number): string {
  return JSON.stringify({ type: "time", t1, t2, t3 });
}

/** A control message of an admitted page. */
export type PageControl =
  | { readonly type: "time"; readonly t1: number }
  | { readonly type: "mode"; readonly timed: boolean };

/** A frame's JSON object, when it is one of at most `max` characters. */
function jsonObject(
  text: string,
  max: number,
): Record<string, unknown> | undefined {
  if (text.length > max) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  return typeof value === "object" && value !== null
    ? value as Record<string, unknown>
    : undefined;
}

/** The longest control message read from an admitted page, in characters. */
export const MAX_CONTROL_FRAME = 256;

/**
 * Reads a control message of an admitted page.
 *
 * @returns The message, or `undefined` when the frame is not one.
 */
export function readControl(text: string): PageControl | undefined {
  const value = jsonObject(text, MAX_CONTROL_FRAME);
  if (value === undefined) return undefined;
  const { type, t1, timed } = value;
  if (type === "time" && typeof t1 === "number" && Number.isFinite(t1)) {
    return { type, t1 };
  }
  if (type === "mode" && typeof timed === "boolean") return { type, timed };
  return undefined;
}

/** The first byte of a timed binary frame (a data byte: see the module). */
export const TIMED = 0x01;

/** The bytes before the messages of a timed frame: the marker and time. */
export const TIMED_HEAD = 9;

/** Where times are turned into bytes and back (no view made per frame). */
const scratch = new Uint8Array(8);
const scratchView = new DataView(scratch.buffer);

/**
 * Writes a timed frame's head (its marker and time) at `offset`.
 *
 * @returns The offset after it.
 */
export function writeTimedHead(
  target: Uint8Array,
  offset: number,
  at: number,
): number {
  target[offset] = TIMED;
  scratchView.setFloat64(0, at);
  target.set(scratch, offset + 1);
  return offset + TIMED_HEAD;
}

/**
 * Reads a page's binary frame: the time it carries, if any, and its
 * messages.
 *
 * @returns The time (`undefined` for an untimed frame) and the bytes of
 * the messages, or `undefined` for a timed frame cut short or with a time
 * that is not a finite number.
 */
export function readTimed(
  data: Uint8Array,
): { at: number | undefined; midi: Uint8Array } | undefined {
  if (data[0] !== TIMED) return { at: undefined, midi: data };
  if (data.length < TIMED_HEAD) return undefined;
  scratch.set(data.subarray(1, TIMED_HEAD));
  const at = scratchView.getFloat64(0);
  if (!Number.isFinite(at)) return undefined;
  return { at, midi: data.subarray(TIMED_HEAD) };
}

/** The frame that tells a page why it is refused (before the close). */
export function refusedFrame(code: RefusalCode, reason: string): string {
  return JSON.stringify({ type: "refused", code, reason });
}

/** The frame that lists the hub's endpoints. */
export function endpointsFrame(endpoints: readonly EndpointInfo[]): string {
  return JSON.stringify({ type: "endpoints", endpoints });
}

/**
 * The frame that carries monitor lines, with how many were left out since
 * the last one.
 */
export function monitorFrame(
  lines: readonly MonitorLine[],
  missed: number,
): string {
  return JSON.stringify({ type: "monitor", lines, missed });
}

/** The longest token frame read, in characters. */
export const MAX_TOKEN_FRAME = 512;

/**
 * Reads a page's token frame, `{"type":"token","token":"..."}`.
 *
 * @returns The token, or `undefined` when the frame is not one.
 */
export function readTokenFrame(text: string): string | undefined {
  const { type, token } = jsonObject(text, MAX_TOKEN_FRAME) ?? {};
  return type === "token" && typeof token === "string" ? token : undefined;
}

/** A `Host` header: a name or IPv4 address, or an IPv6 one in brackets. */
const HOST = /^(?:\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::\d{1,5})?$/i;
const IPV4 = /^\d{1,3}(?:\.\d{1,3}){3}$/;

/** The host name of a `Host` header, without the port. */
function hostName(host: string): string {
  if (host.startsWith("[")) return host.slice(0, host.indexOf("]") + 1);
  const colon = host.lastIndexOf(":");
  return (colon < 0 ? host : host.slice(0, colon)).toLowerCase();
}

/**
 * Whether a page may be served under this `Host` header. Without TLS, a
 * name that a stranger's DNS could point at this machine (DNS rebinding)
 * is refused: IP addresses, `localhost`, `*.localhost` and `*.local`
 * (mDNS) pass, and the names in `names`. With TLS every name passes: a
 * browser refuses a certificate issued for another name.
 *
 * @param host The header's value.
 * @param names Further host names (lower case, without port) to accept.
 * @param tls Whether the server speaks TLS.
 */
export function hostAllowed(
  host: string | null,
  names: ReadonlySet<string>,
  tls: boolean,
): boolean {
  if (host === null || !HOST.test(host)) return false;
  if (tls) return true;
  const name = hostName(host);
  return name.startsWith("[") || IPV4.test(name) || name === "localhost" ||
    name.endsWith(".localhost") || name.endsWith(".local") ||
    names.has(name);
}

/**
 * Whether a WebSocket request may open `/midi`: programs send no `Origin`;
 * a browser sends the page's origin, which must be this server (the same
 * host and port as the `Host` header, and the server's scheme) or one of
 * `origins`. So that no other web site a visitor has open can play through
 * the hub.
 *
 * @param origin The `Origin` header.
 * @param host The `Host` header (checked already).
 * @param tls Whether the server speaks TLS.
 * @param origins Further origins to accept, as `scheme://host:port`.
 */
export function originAllowed(
  origin: string | null,
  host: string,
  tls: boolean,
  origins: ReadonlySet<string>,
): boolean {
  if (origin === null) return true;
  if (origins.has(origin)) return true;
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  const scheme = tls ? "https:" : "http:";
  if (url.protocol !== scheme) return false;
  // URL drops a default port; the Host header may carry it.
  const defaultPort = tls ? ":443" : ":80";
  const wanted = host.toLowerCase().endsWith(defaultPort)
    ? host.toLowerCase().slice(0, -defaultPort.length)
    : host.toLowerCase();
  return url.host === wanted;
}

/** The most sysex data bytes the monitor shows. */
const SYSEX_SHOWN = 48;

/**
 * mido's text form of a message, for the monitor: a long sysex shows its
 * first bytes, then how many there are.
 */
export function monitorText(msg: Message): string {
  if (msg.type !== "sysex" || msg.data.length <= SYSEX_SHOWN) {
    return formatMessage(msg);
  }
  const text = formatMessage({ ...msg, data: msg.data.slice(0, SYSEX_SHOWN) });
  return `${text.replace(")", ",...)")} [${msg.data.length} bytes]`;
}
