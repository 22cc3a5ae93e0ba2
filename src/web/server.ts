/**
 * `WebServer`: a hub's web page and its WebSocket, a transport of the hub.
 * Each page that connects is one endpoint of the hub.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import type { Message } from "../codec/messages.ts";
import { PortClosedError } from "../errors.ts";
import {
  Gate,
  type Peer,
  type Refusal,
  type RefusalCode,
  type Ticket,
} from "../gate.ts";
import type { ClockTimer } from "../clock.ts";
import type { Endpoint, Hub, HubEvent } from "../hub/mod.ts";
import type { Transport } from "../transport.ts";
import { checkPort, formatAddress } from "../address.ts";
import { positiveInteger } from "../_policy.ts";
import { atMost } from "../_time.ts";
import { closeQuietly } from "../net/_transport.ts";
import { acceptEach, listenTcp } from "../_accept.ts";
import { type Secure, serverTls } from "../net/_tls.ts";
import { type ConnectionHandler, WebConnection } from "./_connection.ts";
import { type FrameEvent, STATUS } from "./_frames.ts";
import {
  hasBody,
  hasToken,
  keepsAlive,
  type RequestHead,
  webSocketKeyValid,
} from "./_http.ts";
import { PagePort } from "./_page_port.ts";
import {
  CLOSE,
  closeCodeFor,
  closeReason,
  type EndpointInfo,
  endpointsFrame,
  hostAllowed,
  latencyFrame,
  MAX_TOKEN_FRAME,
  monitorFrame,
  type MonitorLine,
  monitorText,
  originAllowed,
  readControl,
  readTokenFrame,
  refusedFrame,
  timeFrame,
  TOKEN_REQUEST,
  welcomeFrame,
} from "./_protocol.ts";

/** Options for {@linkcode WebServer}. */
export interface WebServerOptions {
  /**
   * Host name or IP address to listen on; `""` for every interface.
   * @default {"127.0.0.1"}
   */
  hostname?: string;
  /**
   * TCP port; 0 for any free one.
   * @default {8081}
   */
  port?: number;
  /** Serve HTTPS and WSS with this certificate chain and private key (PEM). */
  tls?: Deno.TlsCertifiedKeyPem;
  /**
   * Host names the page may be opened by, besides IP addresses,
   * `localhost`, `*.localhost` and `*.local`. Without TLS other names are
   * refused, so that a stranger's DNS name pointed at this machine (DNS
   * rebinding) cannot reach the hub from a browser. With TLS every name
   * passes.
   * @default {[]}
   */
  hosts?: Iterable<string>;
  /**
   * Origins (`https://app.example:8443`) whose pages may open the
   * WebSocket, besides this server's own. Browsers send the origin of the
   * page that opens a WebSocket; programs send none and always pass.
   * @default {[]}
   */
  origins?: Iterable<string>;
  /**
   * The largest message a page may send, in bytes (all the frames of a
   * fragmented message together); a page that sends a larger one is
   * counted and closed as soon as a frame header says so, before its bytes
   * are kept. The default fits the longest sysex the hub keeps. Before a
   * page has given its token, the bound is 512 bytes.
   * @default {max(65536, hub.maxSysexLength + 2)}
   */
  maxFrameBytes?: number;
  /**
   * Send pages every message that passes through the hub, for their
   * monitor. A page that does not keep up misses monitor lines (it is told
   * how many), never MIDI and never its connection.
   * @default {true}
   */
  monitor?: boolean;
  /**
   * How often an open page sends active sensing, in milliseconds (the hub
   * answers it and does not pass it on), so that a page left open is never
   * dropped as idle. Keep it well under the hub's `idleTimeout`; 0 turns it
   * off.
   * @default {a third of the hub's idleTimeout, at most 1000}
   */
  keepAlive?: number;
  /**
   * Most connections at once that have not sent a whole request yet (TLS
   * and the request head under way, or nothing at all). Past it, the oldest
   * of them is closed to make room: a client that sends its request at
   * once is never the oldest for long, one that holds a connection without
   * a word soon is. The same number bounds the connections kept open for
   * a further request.
   * @default {256}
   */
  maxConnections?: number;
  /**
   * Most connections from one address that have not sent a whole request
   * yet; past it, the oldest from there is closed to make room.
   * @default {32}
   */
  maxConnectionsPerAddress?: number;
}

/**
 * Monitor lines held for a page between two flushes, at most: 50,000 a
 * second, ten times what a page draws.
 */
const MONITOR_QUEUE = 1024;
/** A page with more than this many bytes unsent gets no monitor lines. */
const MONITOR_HIGH_WATER = 256 * 1024;
/** How often monitor lines and endpoint changes go out, at most. */
const FLUSH_MS = 20;
/** How often the endpoint list (with its counters) is refreshed. */
const STATS_MS = 1000;
/** How often admitted pages are checked for silence. */
const SWEEP_MS = 5000;
/** A page silent this long is pinged. */
const PING_AFTER_MS = 15_000;
/** A page silent this long (its pings unanswered) is dropped. */
const SILENT_MS = 30_000;
/** `drained()` of a connection waits under this many bytes. */
const HIGH_WATER = 64 * 1024;
/**
 * A page with this many bytes unsent or more gets no answer to its time
 * requests (it does not read them).
 */
const ANSWER_UNDER = 64 * 1024;
/**
 * A page's time requests are answered at most this often, in ms (the page
 * asks every 25 ms at most): a page that asks in a flood gets little.
 */
const ANSWER_EVERY_MS = 5;
/** How long `close()` waits for connections to close. */
const SHUTDOWN_MS = 2000;

const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
} as const;

const encoder = new TextEncoder();

/** A file of the page, ready to send. */
interface Served {
  readonly type: string;
  readonly etag: string;
  readonly body: Uint8Array;
}

/** One connection, from its accept until it is closed. */
class Visitor {
  readonly peer: Peer;
  connection!: WebConnection;
  /**
   * Its place among the connections that have not sent a whole request
   * yet (the ones a slowloris holds).
   */
  door: Ticket | undefined;
  /** Whether it is kept open for another request (counted in `#kept`). */
  kept = false;
  /** Whether a request of it was answered. */
  served = false;
  /** Its place at the hub's gate, once it asked for the WebSocket. */
  ticket: Ticket | undefined;
  /** Where it is: `checking` while the gate checks its token. */
  state: "http" | "token" | "checking" | "admitted" | "gone" = "http";
  port: PagePort | undefined;
  endpoint: Endpoint | undefined;
  lines: MonitorLine[] = [];
  missed = 0;
  /** Whether lines were left out between others since the last flush. */
  gap = false;
  /** The endpoint list this page was sent last. */
  endpointsSent = "";
  /** When its last time request was answered (the hub's clock). */
  answeredAt = -Infinity;

  constructor(peer: Peer) {
    this.peer = peer;
  }
}

/** The options, checked. */
interface Settings {
  readonly hostname: string;
  readonly port: number;
  readonly tls: Deno.TlsCertifiedKeyPem | undefined;
  readonly hosts: ReadonlySet<string>;
  readonly origins: ReadonlySet<string>;
  readonly maxFrameBytes: number | undefined;
  readonly monitor: boolean;
  /** Undefined: from the hub's idle timeout, once attached. */
  readonly keepAlive: number | undefined;
  readonly maxConnections: number;
  readonly maxConnectionsPerAddress: number;
}

function settings(options: WebServerOptions): Settings {
  const hostname = options.hostname ?? "127.0.0.1";
  if (typeof hostname !== "string") {
    throw new TypeError(`Host must be a string: got ${String(hostname)}`);
  }
  const keepAlive = options.keepAlive;
  if (
    keepAlive !== undefined && (!Number.isFinite(keepAlive) || keepAlive < 0)
  ) {
    throw new RangeError(
      `keepAlive must be 0 or a positive number of milliseconds: got ${keepAlive}`,
    );
  }
  return {
    hostname,
    port: checkPort(options.port ?? 8081),
    tls: options.tls,
    hosts: new Set([...options.hosts ?? []].map((h) => h.toLowerCase())),
    origins: new Set(options.origins ?? []),
    maxFrameBytes: options.maxFrameBytes === undefined
      ? undefined
      : positiveInteger("maxFrameBytes", options.maxFrameBytes),
    monitor: options.monitor ?? true,
    keepAlive,
    maxConnections: positiveInteger(
      "maxConnections",
      options.maxConnections ?? 256,
    ),
    maxConnectionsPerAddress: positiveInteger(
      "maxConnectionsPerAddress",
      options.maxConnectionsPerAddress ?? 32,
    ),
  };
}

/** The handler of a connection that is only told why it is refused. */
const IGNORE: ConnectionHandler = {
  request: () => {},
  badRequest: () => {},
  text: () => {},
  binary: () => {},
  closed: () => {},
  failed: () => {},
  gone: () => {},
};

/**
 * Serves a hub's web page at `/` and its WebSocket at `/midi`: a transport
 * of the hub, started by `hub.attach(web)` and closed with the hub. Each
 * page that connects is one endpoint of the hub (kind `"client"`,
 * transport `"web"`): the hub's gate admits it (allow list, client bound,
 * token: the page sends it first when the hub wants one), its policies
 * apply, and when it leaves its held notes are released.
 *
 * Binary frames carry MIDI both ways: one or more whole messages per
 * message, raw bytes as on the TCP socket. What a page sends is parsed as
 * a MIDI stream that ends with each message, so only whole valid messages
 * reach the hub; text frames and messages over `maxFrameBytes` never do.
 *
 * Frames may carry time: a page maps its clock to the hub's (it asks the
 * hub's time, an NTP-style exchange) and sends what it plays with when it
 * played it, which the hub takes as the messages' time. A page that
 * schedules what it plays (its Web MIDI output) says so and becomes a timed
 * endpoint: the hub sends it each batch at once, with the batch's time, and
 * the page plays it at that time plus the hub's playout delay (`latency`,
 * told in the welcome). Other pages, and programs that say nothing of time,
 * are plain endpoints as before. Its deadlines (a request's, a token's)
 * and its check for silent pages run on the hub's clock.
 * Text frames to pages carry the endpoint list and the monitor (every
 * message that passes through the hub, with its time and source), bounded
 * per page: a page that falls behind misses monitor lines and is told how
 * many.
 *
 * The server speaks HTTP/1.1 and WebSocket (RFC 6455) itself, on its own
 * socket, so every bound holds before anything is kept: the allow list at
 * the connection, a request head of at most 8 KiB within the handshake
 * timeout, a bound on connections that are not yet pages (the oldest makes
 * room), each message bounded from its frame header, and a refused or
 * timed-out connection closed at once. Browsers may open the WebSocket only
 * from this server's own page (or `origins`), and without TLS only under
 * an IP address or a local name (see `hosts`), so that no other web site
 * can play through the hub.
 *
 * @example Serving the page of a hub
 * ```ts
 * import assert from "node:assert/strict";
 * import { Hub, WebServer } from "@x/midisock";
 *
 * await using hub = new Hub();
 * const web = await hub.attach(new WebServer({ port: 0 }));
 * const page = await fetch(web.url);
 * assert.equal(page.status, 200);
 * assert.match(await page.text(), /midisock/);
 * ```
 */
export class WebServer implements Transport {
  readonly #settings: Settings;
  readonly #handler: (visitor: Visitor) => ConnectionHandler;
  readonly #visitors = new Set<Visitor>();
  readonly #admitted = new Set<Visitor>();
  readonly #stop = new AbortController();
  #hub: Hub | undefined;
  #listener: Deno.TcpListener | undefined;
  #secure: Secure | undefined;
  #assets: Map<string, Served> | undefined;
  /** Bounds the connections that have not sent a whole request yet. */
  #doors: Gate | undefined;
  /** Connections kept open after an answer, waiting for another request. */
  #kept = 0;
  #maxFrameBytes = 0;
  #accepting: Promise<void> | undefined;
  #stopListening: (() => void) | undefined;
  #stopMessages: (() => void) | undefined;
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  /** Whether pages are owed the endpoint list (joins, leaves, counters). */
  #listDue = false;
  #statsTimer: ReturnType<typeof setInterval> | undefined;
  /** The next check of silent pages, on the hub's clock. */
  #sweepTimer: ClockTimer | undefined;
  #closing: Promise<void> | undefined;

  /**
   * Makes a web server; `hub.attach(web)` binds it and starts serving.
   *
   * @param options Where to listen, TLS, and bounds.
   * @throws {TypeError | RangeError} For a port that is not 0-65535, or a
   * bad option.
   */
  constructor(options: WebServerOptions = {}) {
    this.#settings = settings(options);
    this.#handler = (visitor) => ({
      request: (head) => this.#request(visitor, head),
      badRequest: (reason, line) =>
        this.#hub!.gate.refuse(visitor.peer, "protocol", reason, line),
      text: (text) => this.#text(visitor, text),
      binary: (data) => this.#binary(visitor, data),
      closed: (code, reason) => this.#closed(visitor, code, reason),
      failed: (error) => this.#failed(visitor, error),
      gone: (cause, clean) => this.#gone(visitor, cause, clean),
    });
  }

  /**
   * For people: `web host:port`, the bound address once attached.
   */
  get name(): string {
    const addr = this.#listener?.addr ??
      { hostname: this.#settings.hostname, port: this.#settings.port };
    return `web ${formatAddress(addr)}`;
  }

  #bound(): Deno.NetAddr {
    if (this.#listener === undefined) {
      throw new Error(`${this.name} is not serving: attach it to a hub first`);
    }
    return this.#listener.addr;
  }

  /**
   * The address the server is bound to.
   *
   * @throws {Error} Before it is attached to a hub.
   */
  get addr(): Deno.NetAddr {
    return this.#bound();
  }

  /**
   * The TCP port the server is bound to.
   *
   * @throws {Error} Before it is attached to a hub.
   */
  get port(): number {
    return this.#bound().port;
  }

  /**
   * The page's address, to open from this machine: `http://host:port/`
   * (`https` with TLS; loopback when bound to every interface).
   *
   * @throws {Error} Before it is attached to a hub.
   */
  get url(): string {
    const { hostname, port } = this.#bound();
    const host = hostname === "0.0.0.0" || hostname === "::"
      ? "127.0.0.1"
      : hostname;
    return `${this.#settings.tls ? "https" : "http"}://${
      formatAddress({ hostname: host, port })
    }/`;
  }

  /** The hub pages join, once attached. */
  get hub(): Hub | undefined {
    return this.#hub;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /**
   * Binds the server and starts serving `hub`'s page. Called by
   * {@linkcode Hub.attach}.
   *
   * @param hub The hub pages join; its gate and policies apply to them.
   * @throws {Deno.errors.AddrInUse} When the port is taken.
   * @throws {Deno.errors.NotCapable} Without `--allow-net` for the address.
   * @throws {TypeError} `cannot serve TLS: ...`, for a certificate or key
   * that cannot be used.
   * @throws {Error} For a server attached already.
   */
  async attach(hub: Hub): Promise<void> {
    if (this.#hub !== undefined) {
      throw new Error(`${this.name} is attached to a hub already`);
    }
    if (this.#closing !== undefined) throw new PortClosedError(this.name);
    this.#hub = hub;
    const s = this.#settings;
    this.#maxFrameBytes = s.maxFrameBytes ??
      Math.max(65536, hub.maxSysexLength + 2);
    if (s.tls !== undefined) this.#secure = await serverTls(s.tls);
    const { ASSETS } = await import("./_assets.ts");
    this.#assets = new Map(
      Object.entries(ASSETS).map(([path, asset]) => [path, {
        type: asset.type,
        etag: `"${asset.hash}"`,
        body: encoder.encode(asset.body),
      }]),
    );
    if (this.#closing !== undefined) throw new PortClosedError(this.name);
    // Its refusals are reported through the hub's gate, by `#shutOut`.
    this.#doors = new Gate({
      maxPending: s.maxConnections,
      maxPendingPerAddress: s.maxConnectionsPerAddress,
      handshakeTimeout: hub.gate.handshakeTimeout,
      clock: hub.clock,
    });
    const listener = listenTcp(s.hostname, s.port);
    this.#listener = listener;
    const everywhere = /^(::|0\.0\.0\.0)$/.test(listener.addr.hostname)
      ? " (every interface: from other devices, use this machine's address)"
      : "";
    hub.notice(`web page on ${this.url}${everywhere}`);
    const warning = hub.gate.exposure(this.name, listener.addr.hostname);
    if (warning !== undefined) hub.warn(warning);
    this.#stopListening = hub.listen((event) => this.#onEvent(event));
    this.#accepting = this.#acceptLoop(listener);
  }

  async #acceptLoop(listener: Deno.TcpListener): Promise<void> {
    await acceptEach(listener, {
      name: this.name,
      warn: (line) => this.#hub!.warn(line),
      signal: this.#stop.signal,
    }, (conn) => {
      try {
        this.#arrive(conn);
      } catch {
        // A connection that failed at once (reset before it was read).
        closeQuietly(conn);
      }
      // Let what the connections accepted so far sent be read before the
      // next is taken: under a flood of connections, a client that sends
      // its request at once is then read before newer ones push it out.
      return new Promise(setImmediate);
    });
  }

  #arrive(raw: Deno.TcpConn): void {
    const { hostname, port } = raw.remoteAddr;
    const peer: Peer = { transport: "web", hostname, port };
    const hub = this.#hub!;
    if (this.#closing !== undefined) return closeQuietly(raw);
    if (!hub.gate.allows(hostname)) {
      hub.gate.refuse(peer, "not-allowed", "address not in the allow list");
      return this.#turnAway(raw, 403, "Forbidden");
    }
    const visitor = new Visitor(peer);
    if (!this.#awaitRequest(visitor)) return closeQuietly(raw);
    const conn = this.#secure?.(raw) ?? raw;
    visitor.connection = new WebConnection(conn, this.#handler(visitor), {
      name: formatAddress(peer as Deno.NetAddr),
      highWater: HIGH_WATER,
      now: () => hub.clock.now(),
    });
    this.#visitors.add(visitor);
  }

  /**
   * Answers a connection refused before it said anything, in plain HTTP
   * where it can, and closes it; a TLS one is closed at once.
   */
  #turnAway(raw: Deno.TcpConn, status: number, text: string): void {
    if (this.#secure !== undefined) return closeQuietly(raw);
    const clock = this.#hub!.clock;
    const connection = new WebConnection(raw, IGNORE, {
      name: formatAddress(raw.remoteAddr),
      highWater: HIGH_WATER,
      now: () => clock.now(),
    });
    connection.respond(
      status,
      {
        ...SECURITY_HEADERS,
        "content-type": "text/plain; charset=utf-8",
      },
      encoder.encode(`${text}\n`),
      true,
    );
  }

  /**
   * The next request must come within the handshake timeout: the
   * connection takes a place among those that have not sent a whole
   * request, whose ticket keeps that deadline.
   *
   * @returns Whether it has a place (else close it).
   */
  #awaitRequest(visitor: Visitor): boolean {
    const door = this.#doors!.arrive(visitor.peer, {
      long: true,
      close: (refusal) => this.#shutOut(visitor, refusal),
    });
    if ("code" in door) return false;
    door.owes("whole request");
    visitor.door = door;
    return true;
  }

  /**
   * A connection's time for its request ran out, or it was closed to make
   * room for a newer one. One that sent part of a request is a slow one,
   * and reported; one that sent nothing (a browser's spare connection, an
   * idle keep-alive) is closed without a word when its time runs out, and
   * reported when it makes room, unless it was kept after an answer.
   */
  #shutOut(visitor: Visitor, refusal: Refusal): void {
    const hub = this.#hub!;
    const expired = hub.clock.now() >= visitor.door!.deadline;
    visitor.door = undefined;
    const { connection } = visitor;
    if (connection.started || (!expired && !visitor.served)) {
      hub.gate.refuse(
        refusal.peer,
        refusal.code,
        refusal.reason,
        refusal.detail,
      );
    }
    connection.abort();
  }

  #request(visitor: Visitor, head: RequestHead): void | Promise<void> {
    // A whole request: no longer one of those that may be slow.
    visitor.door?.leave();
    visitor.door = undefined;
    visitor.served = true;
    if (visitor.kept) {
      visitor.kept = false;
      this.#kept--;
    }
    const host = head.fields.get("host");
    if (host === undefined) {
      return this.#plain(visitor, head, 400, "A request needs a Host field");
    }
    if (
      !hostAllowed(host, this.#settings.hosts, this.#settings.tls !== undefined)
    ) {
      return this.#plain(
        visitor,
        head,
        421,
        "Unknown host name: open the page by this machine's address",
      );
    }
    if (head.path === "/midi") return this.#upgrade(visitor, head, host);
    if (head.method !== "GET" && head.method !== "HEAD") {
      return this.#plain(visitor, head, 405, "Method not allowed", {
        allow: "GET, HEAD",
      });
    }
    const asset = this.#assets!.get(head.path);
    if (asset === undefined) {
      return this.#plain(visitor, head, 404, "Not found");
    }
    const fields: Record<string, string> = {
      ...SECURITY_HEADERS,
      "content-type": asset.type,
      "cache-control": "no-cache",
      etag: asset.etag,
    };
    if (asset.type.startsWith("text/html")) {
      const ws = `ws${this.#settings.tls ? "s" : ""}://${host}`;
      fields["content-security-policy"] = "default-src 'none'; " +
        "script-src 'self'; style-src 'self'; img-src 'self' data:; " +
        `connect-src 'self' ${ws}; base-uri 'none'; form-action 'none'; ` +
        "frame-ancestors 'none'";
    }
    const fresh = head.fields.get("if-none-match") === asset.etag;
    this.#respond(
      visitor,
      head,
      fresh ? 304 : 200,
      fields,
      fresh ? undefined : asset.body,
    );
  }

  /** Answers a request; the next must come within the timeout. */
  #respond(
    visitor: Visitor,
    head: RequestHead,
    status: number,
    fields: Record<string, string>,
    body: Uint8Array | undefined,
  ): void {
    // Kept open for another request while few are: beyond that, clients
    // open a new connection (and a busy server has room for them).
    const close = hasBody(head) || !keepsAlive(head) ||
      this.#kept >= this.#settings.maxConnections;
    if (!close) {
      visitor.kept = true;
      this.#kept++;
    }
    visitor.connection.respond(
      status,
      fields,
      body,
      close,
      head.method === "HEAD",
    );
    if (!close && !this.#awaitRequest(visitor)) visitor.connection.abort();
  }

  #plain(
    visitor: Visitor,
    head: RequestHead,
    status: number,
    text: string,
    fields: Record<string, string> = {},
  ): void {
    this.#respond(visitor, head, status, {
      ...SECURITY_HEADERS,
      ...fields,
      "content-type": "text/plain; charset=utf-8",
    }, encoder.encode(`${text}\n`));
  }

  async #upgrade(
    visitor: Visitor,
    head: RequestHead,
    host: string,
  ): Promise<void> {
    const { fields } = head;
    if (
      head.method !== "GET" || !hasToken(fields.get("upgrade"), "websocket")
    ) {
      return this.#plain(visitor, head, 426, "This is a WebSocket", {
        upgrade: "websocket",
      });
    }
    const key = fields.get("sec-websocket-key");
    if (
      !hasToken(fields.get("connection"), "upgrade") ||
      !webSocketKeyValid(key) || hasBody(head)
    ) {
      return this.#plain(visitor, head, 400, "Bad WebSocket request");
    }
    if (fields.get("sec-websocket-version") !== "13") {
      return this.#plain(visitor, head, 426, "WebSocket version 13 only", {
        "sec-websocket-version": "13",
      });
    }
    const hub = this.#hub!;
    const gate = hub.gate;
    const origin = fields.get("origin") ?? null;
    const tls = this.#settings.tls !== undefined;
    if (!originAllowed(origin, host, tls, this.#settings.origins)) {
      // The origin is the peer's text: it goes in the detail, never the
      // reason, so that refusals group by address and reason.
      gate.refuse(
        visitor.peer,
        "not-allowed",
        "a page from another origin may not connect",
        origin!,
      );
      return this.#plain(visitor, head, 403, "Forbidden origin");
    }
    if (this.#closing !== undefined || hub.closed) {
      return this.#plain(visitor, head, 503, "The hub is closing");
    }
    // The ticket keeps the deadline for the token, and closes the page
    // through `#dismiss` when it passes (or to make room).
    const ticket = gate.arrive(visitor.peer, {
      long: gate.wantsToken,
      close: (refusal) => this.#dismiss(visitor, refusal),
    });
    const open = await visitor.connection.upgrade(key, MAX_TOKEN_FRAME);
    if ("code" in ticket) {
      // Opened only to say why: a browser shows no HTTP error of a WebSocket.
      visitor.state = "gone";
      if (open) tellAndClose(visitor.connection, ticket.code, ticket.reason);
      return;
    }
    visitor.ticket = ticket;
    if (!open) return ticket.leave();
    if (!gate.wantsToken) return this.#admit(visitor);
    visitor.state = "token";
    ticket.owes("token");
    visitor.connection.sendText(TOKEN_REQUEST);
  }

  /**
   * The gate closes a page still in its handshake: its deadline passed, or
   * it was closed to make room for a newer one.
   */
  #dismiss(visitor: Visitor, refusal: Refusal): void {
    if (visitor.state === "admitted" || visitor.state === "gone") return;
    visitor.state = "gone";
    tellAndClose(visitor.connection, refusal.code, refusal.reason);
  }

  #text(visitor: Visitor, text: string): void {
    switch (visitor.state) {
      case "token": {
        const token = readTokenFrame(text);
        if (token === undefined) {
          return this.#refuse(visitor, "no-token", "no token sent");
        }
        // What the page sends while the gate checks (a wrong token is
        // answered once its address's wait is over) is dropped: it may
        // not play before it is in.
        visitor.state = "checking";
        visitor.ticket!.present(token).then((refusal) => {
          if (visitor.state !== "checking") return;
          if (refusal === undefined) return this.#admit(visitor);
          visitor.state = "gone";
          tellAndClose(visitor.connection, refusal.code, refusal.reason);
        });
        return;
      }
      case "admitted":
        return this.#control(visitor, text);
    }
  }

  /**
   * A control message of an admitted page: a time request (answered at
   * once, at most one every `ANSWER_EVERY_MS` and none while the page does
   * not read its answers), or whether it schedules what it plays. Others
   * (of later pages, or not JSON) are counted and ignored.
   */
  #control(visitor: Visitor, text: string): void {
    const clock = this.#hub!.clock;
    const t2 = clock.now();
    const port = visitor.port!;
    const control = readControl(text);
    if (control === undefined) return port.badFrame();
    if (control.type === "mode") {
      port.timed = control.timed;
    } else if (
      t2 - visitor.answeredAt >= ANSWER_EVERY_MS &&
      port.queuedBytes < ANSWER_UNDER
    ) {
      visitor.answeredAt = t2;
      port.text(timeFrame(control.t1, t2, clock.now()));
    }
  }

  #binary(visitor: Visitor, data: Uint8Array): void | Promise<void> {
    switch (visitor.state) {
      case "token":
        return this.#refuse(visitor, "no-token", "no token sent");
      case "admitted":
        return visitor.port!.input(data);
    }
  }

  /** The page sent a close frame. */
  #closed(visitor: Visitor, code: number | undefined, reason: string): void {
    if (visitor.state === "admitted") {
      visitor.port!.end(closeCause(code, reason));
    }
  }

  /** The page broke the protocol, or sent a message over the bound. */
  #failed(visitor: Visitor, error: Extract<FrameEvent, { kind: "error" }>) {
    const connection = visitor.connection;
    if (visitor.state === "token" || visitor.state === "checking") {
      if (visitor.state === "token" && error.code === STATUS.tooBig) {
        return this.#refuse(visitor, "no-token", "no token sent");
      }
      // Closed with the RFC's code for the error, after this.
      visitor.state = "gone";
      visitor.ticket!.refuse(
        "protocol",
        "broke the WebSocket protocol",
        error.reason,
      );
      return;
    }
    if (visitor.state !== "admitted") return;
    const port = visitor.port!;
    if (error.code === STATUS.tooBig) {
      const max = this.#maxFrameBytes;
      port.badFrame();
      connection.close(
        CLOSE.tooBig,
        `frame of ${error.size} bytes: at most ${max}`,
      );
      port.end(new Error(`Sent a frame over ${max} bytes`));
      return;
    }
    // The close frame first: ending the port makes the hub close it too.
    connection.close(error.code, error.reason);
    port.end(new Error(`Broke the WebSocket protocol: ${error.reason}`));
  }

  /** The connection is closed. */
  #gone(visitor: Visitor, cause: unknown, clean: boolean): void {
    this.#visitors.delete(visitor);
    visitor.door?.leave();
    if (visitor.kept) {
      visitor.kept = false;
      this.#kept--;
    }
    switch (visitor.state) {
      case "http":
      case "token":
      case "checking":
        visitor.ticket?.leave();
        break;
      case "admitted":
        // Whoever closed it cleanly ended the port already.
        if (!clean) visitor.port!.end(cause ?? new Error("Connection lost"));
        return;
    }
    visitor.state = "gone";
  }

  #refuse(visitor: Visitor, code: RefusalCode, reason: string): void {
    visitor.state = "gone";
    visitor.ticket!.refuse(code, reason);
    tellAndClose(visitor.connection, code, reason);
  }

  #admit(visitor: Visitor): void {
    const { ticket, connection, peer } = visitor;
    const hub = this.#hub!;
    const full = ticket!.enter();
    if (full !== undefined) {
      visitor.state = "gone";
      return tellAndClose(connection, full.code, full.reason);
    }
    connection.limit = this.#maxFrameBytes;
    connection.patient = true;
    const clock = hub.clock;
    const port = new PagePort(connection, {
      name: `web ${formatAddress(peer as Deno.NetAddr)}`,
      maxSysexLength: hub.maxSysexLength,
      now: () => clock.now(),
    });
    visitor.port = port;
    visitor.state = "admitted";
    try {
      visitor.endpoint = hub.add(port, {
        kind: "client",
        transport: "web",
        onLeave: () => {
          ticket!.leave();
          this.#left(visitor);
        },
      });
    } catch {
      ticket!.leave();
      visitor.state = "gone";
      port.closeWith(CLOSE.closing, "hub closing");
      return;
    }
    port.text(
      welcomeFrame(
        visitor.endpoint.id,
        visitor.endpoint.name,
        this.#settings.keepAlive ??
          Math.round(Math.min(1000, (hub.idleTimeout ?? Infinity) / 3)),
        hub.timing?.latency ?? 0,
      ),
    );
    this.#admitted.add(visitor);
    if (this.#settings.monitor && this.#stopMessages === undefined) {
      this.#stopMessages = hub.listen(
        (event) => {
          if (event.type === "message") this.#onMessage(event);
        },
        { messages: true },
      );
    }
    this.#statsTimer ??= startTimer(() => this.#listChanged(), STATS_MS);
    this.#armSweep();
    this.#listChanged();
  }

  /** The page left the hub: forget it. */
  #left(visitor: Visitor): void {
    this.#admitted.delete(visitor);
    if (this.#admitted.size > 0) return;
    this.#stopMessages?.();
    this.#stopMessages = undefined;
    clearInterval(this.#statsTimer);
    this.#statsTimer = undefined;
    this.#sweepTimer?.cancel();
    this.#sweepTimer = undefined;
  }

  /** Checks for silent pages every `SWEEP_MS`, on the hub's clock. */
  #armSweep(): void {
    if (this.#sweepTimer !== undefined || this.#closing !== undefined) return;
    this.#sweepTimer = this.#hub!.clock.setTimer(() => {
      this.#sweepTimer = undefined;
      this.#sweep();
      if (this.#admitted.size > 0) this.#armSweep();
    }, SWEEP_MS);
  }

  /**
   * Pings pages that have been silent for a while, and drops those that
   * stay silent (a phone gone out of range answers nothing).
   */
  #sweep(): void {
    const now = this.#hub!.clock.now();
    for (const visitor of this.#admitted) {
      const silent = now - visitor.connection.lastInput;
      if (silent >= SILENT_MS) {
        visitor.port!.abort(
          new Error(`Silent for ${Math.round(silent / 1000)} s`),
        );
      } else if (silent >= PING_AFTER_MS) {
        visitor.connection.ping();
      }
    }
  }

  #onEvent(event: HubEvent): void {
    if (event.type === "join" || event.type === "leave") this.#listChanged();
    if (event.type === "latency") {
      // The delay itself, not the whole ms the event says, once the hub
      // has taken it.
      queueMicrotask(() => {
        const latency = this.#hub?.timing?.latency ?? event.latency;
        const frame = encoder.encode(latencyFrame(latency));
        for (const visitor of this.#admitted) visitor.port!.text(frame);
      });
    }
  }

  #listChanged(): void {
    this.#listDue = true;
    this.#schedule();
  }

  #onMessage(event: { endpoint: Endpoint; message: Message }): void {
    // One line for every page that has room for it; a page behind on its
    // socket or its lines is only told how many it missed.
    let line: MonitorLine | undefined;
    for (const visitor of this.#admitted) {
      if (visitor.lines.length >= MONITOR_QUEUE) {
        visitor.missed++;
        continue;
      }
      if (visitor.connection.queuedBytes > MONITOR_HIGH_WATER) {
        // A gap in its lines: they are no longer the same as other pages'.
        visitor.missed++;
        visitor.gap = true;
        continue;
      }
      line ??= [Date.now(), event.endpoint.id, monitorText(event.message)];
      visitor.lines.push(line);
    }
    this.#schedule();
  }

  #schedule(): void {
    if (this.#flushTimer !== undefined || this.#admitted.size === 0) return;
    this.#flushTimer = setTimeout(() => {
      this.#flushTimer = undefined;
      this.#flush();
    }, FLUSH_MS);
  }

  /**
   * Sends each page its endpoint list (when changed) and monitor lines. A
   * frame is made once for the pages that get the same, and shared.
   */
  #flush(): void {
    const endpoints = this.#listDue
      ? endpointsFrame(this.#hub!.endpoints.map(describe))
      : undefined;
    const endpointBytes = endpoints && encoder.encode(endpoints);
    this.#listDue = false;
    let behind = false;
    // Monitor frames made, by their first line, then by how many lines and
    // how many missed: without a gap, a page's lines are all the lines since
    // its first one (up to the bound), so those three tell them apart.
    const frames = new Map<MonitorLine | undefined, Map<string, Uint8Array>>();
    const frameFor = (visitor: Visitor): Uint8Array => {
      const { lines, missed } = visitor;
      if (visitor.gap) return encoder.encode(monitorFrame(lines, missed));
      let made = frames.get(lines[0]);
      if (made === undefined) frames.set(lines[0], made = new Map());
      const key = `${lines.length} ${missed}`;
      let bytes = made.get(key);
      if (bytes === undefined) {
        bytes = encoder.encode(monitorFrame(lines, missed));
        made.set(key, bytes);
      }
      return bytes;
    };
    for (const visitor of this.#admitted) {
      const port = visitor.port!;
      if (port.closed) continue;
      if (port.queuedBytes > MONITOR_HIGH_WATER) {
        behind = true;
        continue;
      }
      if (endpoints !== undefined && visitor.endpointsSent !== endpoints) {
        visitor.endpointsSent = endpoints;
        port.text(endpointBytes!);
      }
      if (visitor.lines.length > 0 || visitor.missed > 0) {
        port.text(frameFor(visitor));
        visitor.lines = [];
        visitor.missed = 0;
        visitor.gap = false;
      }
    }
    if (behind) {
      this.#listDue ||= endpoints !== undefined;
      this.#schedule();
    }
  }

  /**
   * Stops serving: every page is closed (it hears that the hub is closing,
   * and comes back on its own when a server answers again), then every
   * other connection and the listener. The hub stays open. Closing twice
   * does nothing.
   *
   * @returns A promise that resolves once everything is closed.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    this.#stop.abort();
    try {
      this.#listener?.close();
    } catch {
      // Closed already.
    }
    await this.#accepting;
    this.#stopListening?.();
    this.#stopMessages?.();
    clearTimeout(this.#flushTimer);
    clearInterval(this.#statsTimer);
    this.#sweepTimer?.cancel();
    const endpoints = [...this.#admitted].map((v) => v.endpoint!);
    const closing: Promise<void>[] = [];
    for (const visitor of this.#visitors) {
      if (visitor.state === "admitted") continue;
      const waiting = visitor.state === "token" || visitor.state === "checking";
      if (waiting) visitor.state = "gone";
      visitor.ticket?.leave();
      if (waiting) {
        tellAndClose(visitor.connection, "closing", "hub closing");
        closing.push(visitor.connection.done);
      } else {
        closing.push(visitor.connection.abort());
      }
    }
    if (this.#hub !== undefined) {
      await Promise.all(endpoints.map((e) => this.#hub!.remove(e)));
    }
    this.#admitted.clear();
    await atMost(Promise.all(closing), SHUTDOWN_MS);
  }

  /** Closes the server, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** An endpoint as pages see it. */
function describe(endpoint: Endpoint): EndpointInfo {
  const { received, sent } = endpoint.stats;
  return {
    id: endpoint.id,
    name: endpoint.name,
    kind: endpoint.kind,
    transport: endpoint.transport,
    sent: received,
    heard: sent,
  };
}

/** Tells a page why it is refused, then closes its socket. */
function tellAndClose(
  connection: WebConnection,
  code: RefusalCode,
  reason: string,
): void {
  connection.sendText(refusedFrame(code, reason));
  connection.close(closeCodeFor(code), closeReason(reason));
}

/**
 * Why a page's socket closed, as a leave reason: nothing when the page
 * closed it (left, reloaded), else what it said.
 */
function closeCause(code: number | undefined, reason: string): unknown {
  // Normal, going away (left, reloaded), or a close with no code at all.
  if (code === undefined || code === 1000 || code === 1001) return undefined;
  return new Error(
    `Closed with code ${code}${reason === "" ? "" : `: ${reason}`}`,
  );
}

function startTimer(
  fn: () => void,
  ms: number,
): ReturnType<typeof setInterval> {
  const timer = setInterval(fn, ms);
  Deno.unrefTimer(timer as unknown as number);
  return timer;
}
