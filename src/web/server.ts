/**
 * `WebServer`: a hub's web page and its WebSocket, on `Deno.serve`. Each
 * page that connects is one endpoint of the hub.
 *
 * @module
 */

import type { Message } from "../codec/messages.ts";
import type { Peer, RefusalCode, Ticket } from "../gate.ts";
import type { Endpoint, Hub, HubEvent } from "../hub/mod.ts";
import { checkPort, formatAddress } from "../address.ts";
import { positiveInteger } from "../_policy.ts";
import { atMost } from "../_time.ts";
import { PagePort } from "./_page_port.ts";
import {
  CLOSE,
  closeCodeFor,
  closeReason,
  type EndpointInfo,
  endpointsFrame,
  hostAllowed,
  monitorFrame,
  type MonitorLine,
  monitorText,
  originAllowed,
  readTokenFrame,
  refusedFrame,
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
   * The largest binary frame a page may send, in bytes; a page that sends
   * a larger one is counted and closed. The default fits the longest sysex
   * the hub keeps.
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
}

/** Monitor lines held for a page between two flushes, at most. */
const MONITOR_QUEUE = 4096;
/** A page with more than this many bytes unsent gets no monitor lines. */
const MONITOR_HIGH_WATER = 256 * 1024;
/** How often monitor lines and endpoint changes go out, at most. */
const FLUSH_MS = 20;
/** How often the endpoint list (with its counters) is refreshed. */
const STATS_MS = 1000;
/** Seconds of silence before Deno pings a page (and drops it unanswered). */
const IDLE_TIMEOUT_S = 30;
/** How long `close()` waits for the HTTP server to finish. */
const SHUTDOWN_MS = 2000;

const SECURITY_HEADERS = {
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
} as const;

type Listener = Deno.HttpServer<Deno.NetAddr>;
type Handler = Deno.ServeHandler<Deno.NetAddr>;

/** One page's WebSocket, from the upgrade until it leaves. */
class Session {
  readonly socket: WebSocket;
  readonly peer: Peer;
  readonly ticket: Ticket;
  state: "opening" | "token" | "admitted" | "gone" = "opening";
  timer: ReturnType<typeof setTimeout> | undefined;
  port: PagePort | undefined;
  endpoint: Endpoint | undefined;
  lines: MonitorLine[] = [];
  missed = 0;
  /** The endpoint list this page was sent last. */
  endpointsSent = "";

  constructor(socket: WebSocket, peer: Peer, ticket: Ticket) {
    this.socket = socket;
    this.peer = peer;
    this.ticket = ticket;
  }
}

/**
 * Serves a hub's web page at `/` and its WebSocket at `/midi`, on
 * `Deno.serve`. Each page that connects is one endpoint of the hub (kind
 * `"client"`, transport `"web"`): the hub's gate admits it (allow list,
 * client bound, token: the page sends it first when the hub wants one),
 * its policies apply, and when it leaves its held notes are released.
 *
 * Binary frames carry MIDI both ways: one or more whole messages per frame,
 * raw bytes as on the TCP socket. Frames from pages are parsed as a MIDI
 * stream that ends with each frame, so only whole valid messages reach the
 * hub; text frames and frames over `maxFrameBytes` never do. Text frames to
 * pages carry the endpoint list and the monitor (every message that passes
 * through the hub, with its time and source), bounded per page: a page
 * that falls behind misses monitor lines and is told how many.
 *
 * Browsers may open the WebSocket only from this server's own page (or
 * `origins`), and without TLS only under an IP address or a local name
 * (see `hosts`), so that no other web site can play through the hub.
 *
 * @example Serving the page of a hub
 * ```ts
 * import assert from "node:assert/strict";
 * import { Hub, WebServer } from "@x/midisock";
 *
 * await using hub = new Hub();
 * await using web = new WebServer(hub, { port: 0 });
 * const page = await fetch(web.url);
 * assert.equal(page.status, 200);
 * assert.match(await page.text(), /midisock/);
 * ```
 */
export class WebServer implements AsyncDisposable {
  readonly #hub: Hub;
  readonly #server: Listener;
  readonly #tls: boolean;
  readonly #hosts: ReadonlySet<string>;
  readonly #origins: ReadonlySet<string>;
  readonly #maxFrameBytes: number;
  readonly #monitor: boolean;
  readonly #sessions = new Set<Session>();
  readonly #admitted = new Set<Session>();
  readonly #stopListening: () => void;
  #stopMessages: (() => void) | undefined;
  #flushTimer: ReturnType<typeof setTimeout> | undefined;
  /** Whether pages are owed the endpoint list (joins, leaves, counters). */
  #listDue = false;
  #statsTimer: ReturnType<typeof setInterval> | undefined;
  #closing: Promise<void> | undefined;

  /**
   * Binds the server and starts serving.
   *
   * @param hub The hub pages join; its gate and policies apply to them.
   * @param options Where to listen, TLS, and bounds.
   * @throws {Deno.errors.AddrInUse} When the port is taken.
   * @throws {Deno.errors.NotCapable} Without `--allow-net` for the address.
   * @throws {TypeError | RangeError} For a port that is not 0-65535, or a
   * bad option.
   */
  constructor(hub: Hub, options: WebServerOptions = {}) {
    const hostname = options.hostname ?? "127.0.0.1";
    if (typeof hostname !== "string") {
      throw new TypeError(`Host must be a string: got ${String(hostname)}`);
    }
    const port = checkPort(options.port ?? 8081);
    this.#hub = hub;
    this.#tls = options.tls !== undefined;
    this.#hosts = new Set([...options.hosts ?? []].map((h) => h.toLowerCase()));
    this.#origins = new Set(options.origins ?? []);
    this.#maxFrameBytes = positiveInteger(
      "maxFrameBytes",
      options.maxFrameBytes ?? Math.max(65536, hub.maxSysexLength + 2),
    );
    this.#monitor = options.monitor ?? true;
    this.#server = listen(
      hostname,
      port,
      options.tls,
      (request, info) => this.#handle(request, info),
    );
    this.#stopListening = hub.listen((event) => this.#onEvent(event));
  }

  /** The address the server is bound to. */
  get addr(): Deno.NetAddr {
    return this.#server.addr;
  }

  /** The TCP port the server is bound to. */
  get port(): number {
    return this.#server.addr.port;
  }

  /** `host:port` of the bound address. */
  get name(): string {
    return formatAddress(this.#server.addr);
  }

  /**
   * The page's address, to open from this machine: `http://host:port/`
   * (`https` with TLS; loopback when bound to every interface).
   */
  get url(): string {
    const { hostname, port } = this.#server.addr;
    const host = hostname === "0.0.0.0" || hostname === "::"
      ? "127.0.0.1"
      : hostname;
    return `${this.#tls ? "https" : "http"}://${
      formatAddress({ hostname: host, port })
    }/`;
  }

  /** The hub pages join. */
  get hub(): Hub {
    return this.#hub;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  #handle(
    request: Request,
    info: Deno.ServeHandlerInfo<Deno.NetAddr>,
  ): Response | Promise<Response> {
    // HTTP/2 (over TLS) names the host in the URL, not in a header.
    const host = request.headers.get("host") ?? new URL(request.url).host;
    if (!hostAllowed(host, this.#hosts, this.#tls)) {
      return plain(
        421,
        "Unknown host name: open the page by this machine's address",
      );
    }
    const { hostname, port } = info.remoteAddr;
    if (!this.#hub.gate.allows(hostname)) return plain(403, "Forbidden");
    const path = new URL(request.url).pathname;
    if (path === "/midi") {
      return this.#upgrade(
        request,
        { transport: "web", hostname, port },
        host!,
      );
    }
    if (request.method !== "GET" && request.method !== "HEAD") {
      return plain(405, "Method not allowed", { allow: "GET, HEAD" });
    }
    return this.#asset(request, path, host!);
  }

  async #asset(
    request: Request,
    path: string,
    host: string,
  ): Promise<Response> {
    const { ASSETS } = await import("./_assets.ts");
    const asset = Object.hasOwn(ASSETS, path) ? ASSETS[path] : undefined;
    if (asset === undefined) return plain(404, "Not found");
    const headers: Record<string, string> = {
      ...SECURITY_HEADERS,
      "content-type": asset.type,
      "cache-control": "no-cache",
      etag: `"${asset.hash}"`,
    };
    if (asset.type.startsWith("text/html")) {
      const ws = `ws${this.#tls ? "s" : ""}://${host}`;
      headers["content-security-policy"] = "default-src 'none'; " +
        "script-src 'self'; style-src 'self'; img-src 'self' data:; " +
        `connect-src 'self' ${ws}; base-uri 'none'; form-action 'none'; ` +
        "frame-ancestors 'none'";
    }
    if (request.headers.get("if-none-match") === `"${asset.hash}"`) {
      return new Response(null, { status: 304, headers });
    }
    return new Response(request.method === "HEAD" ? null : asset.body, {
      headers,
    });
  }

  #upgrade(request: Request, peer: Peer, host: string): Response {
    if (
      request.method !== "GET" ||
      request.headers.get("upgrade")?.toLowerCase() !== "websocket"
    ) {
      return plain(426, "This is a WebSocket", { upgrade: "websocket" });
    }
    const gate = this.#hub.gate;
    const origin = request.headers.get("origin");
    if (!originAllowed(origin, host, this.#tls, this.#origins)) {
      gate.refuse(peer, "not-allowed", `a page from ${origin} may not connect`);
      return plain(403, "Forbidden origin");
    }
    if (this.#closing !== undefined || this.#hub.closed) {
      return plain(503, "The hub is closing");
    }
    let socket: WebSocket;
    let response: Response;
    try {
      ({ socket, response } = Deno.upgradeWebSocket(request, {
        idleTimeout: IDLE_TIMEOUT_S,
      }));
    } catch {
      return plain(400, "Bad WebSocket request");
    }
    socket.binaryType = "arraybuffer";
    const ticket = gate.arrive(peer);
    if ("code" in ticket) {
      // Opened only to say why: a browser shows no HTTP error of a WebSocket.
      socket.onopen = () => tellAndClose(socket, ticket.code, ticket.reason);
      return response;
    }
    const session = new Session(socket, peer, ticket);
    this.#sessions.add(session);
    socket.onopen = () => this.#open(session);
    socket.onmessage = (event) => this.#frame(session, event.data);
    socket.onclose = () => this.#gone(session);
    socket.onerror = () => {};
    return response;
  }

  #open(session: Session): void {
    if (session.state !== "opening") return;
    const { ticket } = session;
    if (!this.#hub.gate.wantsToken) return this.#admit(session);
    session.state = "token";
    session.socket.send(TOKEN_REQUEST);
    session.timer = setTimeout(() => {
      this.#refuse(
        session,
        "timeout",
        `no token within ${this.#hub.gate.handshakeTimeout} ms`,
      );
    }, Math.max(0, ticket.deadline - performance.now()));
  }

  #frame(session: Session, data: unknown): void {
    switch (session.state) {
      case "token": {
        clearTimeout(session.timer);
        const token = typeof data === "string"
          ? readTokenFrame(data)
          : undefined;
        if (token === undefined) {
          return this.#refuse(session, "no-token", "no token sent");
        }
        if (!session.ticket.checkToken(token)) {
          return this.#refuse(session, "wrong-token", "wrong token");
        }
        return this.#admit(session);
      }
      case "admitted": {
        const port = session.port!;
        if (!(data instanceof ArrayBuffer)) return port.badFrame();
        if (data.byteLength > this.#maxFrameBytes) {
          port.badFrame();
          port.closeWith(
            CLOSE.tooBig,
            `frame of ${data.byteLength} bytes: at most ${this.#maxFrameBytes}`,
            new Error(`Sent a frame over ${this.#maxFrameBytes} bytes`),
          );
          return;
        }
        return port.input(new Uint8Array(data));
      }
    }
  }

  #refuse(session: Session, code: RefusalCode, reason: string): void {
    clearTimeout(session.timer);
    session.state = "gone";
    this.#sessions.delete(session);
    session.ticket.refuse(code, reason);
    tellAndClose(session.socket, code, reason);
  }

  #admit(session: Session): void {
    clearTimeout(session.timer);
    const { ticket, socket, peer } = session;
    const full = ticket.enter();
    if (full !== undefined) {
      session.state = "gone";
      this.#sessions.delete(session);
      return tellAndClose(socket, full.code, full.reason);
    }
    const port = new PagePort(socket, {
      name: `web ${
        formatAddress({ hostname: peer.hostname, port: peer.port! })
      }`,
      maxSysexLength: this.#hub.maxSysexLength,
    });
    session.port = port;
    session.state = "admitted";
    try {
      session.endpoint = this.#hub.add(port, {
        kind: "client",
        transport: "web",
        onLeave: () => {
          ticket.leave();
          this.#gone(session);
        },
      });
    } catch {
      ticket.leave();
      session.state = "gone";
      this.#sessions.delete(session);
      port.closeWith(CLOSE.closing, "hub closing");
      return;
    }
    port.text(welcomeFrame(session.endpoint.id, session.endpoint.name));
    this.#admitted.add(session);
    if (this.#monitor && this.#stopMessages === undefined) {
      this.#stopMessages = this.#hub.listen(
        (event) => {
          if (event.type === "message") this.#onMessage(event);
        },
        { messages: true },
      );
    }
    this.#statsTimer ??= startTimer(() => this.#listChanged(), STATS_MS);
    this.#listChanged();
  }

  /** The socket closed, or the endpoint left: forget the page. */
  #gone(session: Session): void {
    clearTimeout(session.timer);
    if (session.state === "token" || session.state === "opening") {
      session.ticket.leave();
    }
    session.state = "gone";
    this.#sessions.delete(session);
    // An admitted page is forgotten once it has left the hub (`onLeave`).
    if (session.endpoint !== undefined && !this.#hasLeft(session.endpoint)) {
      return;
    }
    this.#admitted.delete(session);
    if (this.#admitted.size === 0) {
      this.#stopMessages?.();
      this.#stopMessages = undefined;
      clearInterval(this.#statsTimer);
      this.#statsTimer = undefined;
    }
  }

  #hasLeft(endpoint: Endpoint): boolean {
    return !this.#hub.endpoints.includes(endpoint);
  }

  #onEvent(event: HubEvent): void {
    if (event.type === "join" || event.type === "leave") this.#listChanged();
  }

  #listChanged(): void {
    this.#listDue = true;
    this.#schedule();
  }

  #onMessage(event: { endpoint: Endpoint; message: Message }): void {
    let text: string | undefined;
    const time = Date.now();
    for (const session of this.#admitted) {
      if (session.lines.length >= MONITOR_QUEUE) {
        session.missed++;
        continue;
      }
      text ??= monitorText(event.message);
      session.lines.push([time, event.endpoint.id, text]);
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

  /** Sends each page its endpoint list (when changed) and monitor lines. */
  #flush(): void {
    const endpoints = this.#listDue
      ? endpointsFrame(this.#hub.endpoints.map(describe))
      : undefined;
    this.#listDue = false;
    let behind = false;
    for (const session of this.#admitted) {
      const port = session.port!;
      if (port.closed) continue;
      if (port.bufferedAmount > MONITOR_HIGH_WATER) {
        behind = true;
        continue;
      }
      if (endpoints !== undefined && session.endpointsSent !== endpoints) {
        session.endpointsSent = endpoints;
        port.text(endpoints);
      }
      if (session.lines.length > 0 || session.missed > 0) {
        port.text(monitorFrame(session.lines, session.missed));
        session.lines = [];
        session.missed = 0;
      }
    }
    if (behind) {
      this.#listDue ||= endpoints !== undefined;
      this.#schedule();
    }
  }

  /**
   * Stops serving: every page is closed (it hears that the hub is closing,
   * and comes back on its own when a server answers again), then the HTTP
   * server stops. The hub stays open. Closing twice does nothing.
   *
   * @returns A promise that resolves once everything is closed.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    this.#stopListening();
    this.#stopMessages?.();
    clearTimeout(this.#flushTimer);
    clearInterval(this.#statsTimer);
    const endpoints = [...this.#admitted].map((s) => s.endpoint!);
    for (const session of this.#sessions) {
      if (session.state === "admitted") continue;
      clearTimeout(session.timer);
      session.ticket.leave();
      session.state = "gone";
      tellAndClose(session.socket, "closing", "hub closing");
    }
    this.#sessions.clear();
    await Promise.all(endpoints.map((e) => this.#hub.remove(e)));
    this.#admitted.clear();
    await atMost(this.#server.shutdown(), SHUTDOWN_MS);
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

/** Sends a page why it is refused, then closes its socket. */
function tellAndClose(
  socket: WebSocket,
  code: RefusalCode,
  reason: string,
): void {
  try {
    if (socket.readyState === WebSocket.OPEN) {
      socket.send(refusedFrame(code, reason));
    }
    socket.close(closeCodeFor(code), closeReason(reason));
  } catch {
    // Gone already.
  }
}

function plain(
  status: number,
  text: string,
  headers: Record<string, string> = {},
): Response {
  return new Response(`${text}\n`, {
    status,
    headers: {
      ...SECURITY_HEADERS,
      ...headers,
      "content-type": "text/plain; charset=utf-8",
    },
  });
}

function startTimer(
  fn: () => void,
  ms: number,
): ReturnType<typeof setInterval> {
  const timer = setInterval(fn, ms);
  Deno.unrefTimer(timer as unknown as number);
  return timer;
}

/**
 * Starts `Deno.serve`; the host `""` listens on every interface, IPv6 and
 * IPv4 where the system has both.
 */
function listen(
  host: string,
  port: number,
  tls: Deno.TlsCertifiedKeyPem | undefined,
  handler: Handler,
): Listener {
  const open = (hostname: string): Listener =>
    Deno.serve({
      hostname,
      port,
      ...(tls === undefined ? {} : { cert: tls.cert, key: tls.key }),
      onListen: () => {},
      onError: () => plain(500, "Internal error"),
    }, handler);
  if (host !== "") return open(host);
  try {
    return open("::");
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    return open("0.0.0.0");
  }
}
