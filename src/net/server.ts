/**
 * `PortServer`: mido's socket server, async, on the hub.
 *
 * @module
 */

import { checkMessage, type Message } from "../codec/messages.ts";
import { PortClosedError } from "../errors.ts";
import type { GateOptions, Ticket } from "../gate.ts";
import { type Endpoint, Hub } from "../hub/mod.ts";
import {
  InputPortBase,
  type IOPort,
  PANIC_MESSAGES,
  RESET_MESSAGES,
} from "../port.ts";
import type { Transport } from "../transport.ts";
import {
  positiveInteger,
  type RateLimit,
  type SysexPolicy,
} from "../_policy.ts";
import { acceptEach, listenTcp } from "../_accept.ts";
import { type Batch, SINK, type Sink } from "../sink.ts";
import { checkPort, formatAddress, unmapAddress } from "../address.ts";
import { refuse, serverHandshake } from "./_handshake.ts";
import {
  ALERT_ACCESS_DENIED,
  ALERT_INTERNAL_ERROR,
  checkFeature,
  tlsAlert,
} from "./_hello.ts";
import { resolveSocketOptions, type SocketOptions } from "./_settings.ts";
import { closeQuietly, type Preamble } from "./_transport.ts";
import { type Secure, serverTls } from "./_tls.ts";
import { SocketPort } from "./socket_port.ts";
import { TIMED } from "./_timed.ts";
import type { TimeSource } from "../clock.ts";
import { callBack } from "../_call.ts";

/**
 * Options for {@linkcode PortServer}. A server on its own takes every
 * option. Attached to a hub (`await hub.attach(server)`), it takes only its
 * own (`backlog`, `tls`, `queueSize`, `maxQueuedBytes` and the callbacks):
 * the gate, policies and bounds are the hub's.
 */
export interface PortServerOptions
  extends SocketOptions, Omit<GateOptions, "onRefuse"> {
  /**
   * Sysex from clients that join the server: `"allow"`, `"drop"`, or the
   * longest let through, in data bytes (as a `Hub`'s).
   * Connections taken with `accept()` are yours, as in mido: no policy
   * applies to them (add them to a `Hub` for that).
   * @default {"allow"}
   */
  sysexIn?: SysexPolicy;
  /**
   * Sysex to clients that join the server: `"allow"`, `"drop"`, or the
   * longest let through.
   * @default {"allow"}
   */
  sysexOut?: SysexPolicy;
  /**
   * Most messages per second from each client that joins the server, with
   * bursts; the excess is dropped and counted (never a note's end).
   * @default {undefined} (no limit)
   */
  rateLimit?: RateLimit;
  /**
   * How many connections may wait for `accept()` before the oldest waiting
   * one is closed to make room.
   * @default {64}
   */
  backlog?: number;
  /** Called with each connection the server takes in as part of itself. */
  onConnect?: (client: SocketPort) => void;
  /**
   * Called when a client the server manages leaves: `reason` is undefined
   * when the peer closed the connection, else the error that made the server
   * drop it (a write that failed, a `FellBehindError` for a client that
   * stopped reading).
   */
  onDisconnect?: (client: SocketPort, reason?: unknown) => void;
  /** Called for each connection refused, with the peer's address and why. */
  onRefuse?: (peer: Deno.NetAddr, reason: string) => void;
  /**
   * How long a client has to send its token, in milliseconds (the same as
   * `handshakeTimeout`, which wins when both are given).
   * @default {5000}
   */
  tokenTimeout?: number;
  /** Serve TLS with this certificate chain and private key (PEM). */
  tls?: Deno.TlsCertifiedKeyPem;
  /**
   * The features the server takes from a midisock client's hello, besides
   * the timed mode (see `timed`); each client's `features` says which it
   * agreed on.
   * @default {[]}
   */
  features?: readonly string[];
  /**
   * Take the timed mode from clients that ask for it
   * (`connect(host, port, { timed: true })`): with them, what the server
   * sends carries when it happened on the clock of the server's hub, what
   * they send carries when it happened (in that clock too), and the server
   * answers their pings. Plain clients (mido's, and midisock clients that
   * do not ask) get the plain stream either way.
   * @default {true}
   */
  timed?: boolean;
  /**
   * The clock of the server's own hub (the times of timed clients are read
   * on it). Attached to a hub, the server uses the hub's.
   * @default {systemClock}
   */
  clock?: TimeSource;
  /**
   * When a client the server manages leaves with notes still on, deliver a
   * note_off for each into the server's input, after that client's last
   * message. Off by default, as in mido.
   * @default {false}
   */
  releaseNotes?: boolean;
}

/** Options for {@linkcode PortServer.accept}. */
export interface AcceptOptions {
  /**
   * `false`: return a connection that is waiting, or `undefined` at once.
   * @default {true}
   */
  block?: boolean;
}

/**
 * The options a server keeps when it is attached to a hub; any other is
 * the hub's, and is refused then.
 */
const OWN_OPTIONS: ReadonlySet<string> = new Set(
  Object.keys(
    {
      backlog: true,
      tls: true,
      features: true,
      timed: true,
      queueSize: true,
      maxQueuedBytes: true,
      onConnect: true,
      onDisconnect: true,
      onRefuse: true,
    } satisfies { [K in keyof PortServerOptions]?: true },
  ),
);

type Listener = Deno.TcpListener;

interface Waiter {
  resolve(port: SocketPort): void;
  reject(error: unknown): void;
}

/**
 * A TCP server speaking mido's socket protocol, bound at construction.
 *
 * Used as a port it merges every client's messages (`for await`,
 * `receive()`, `poll()`, `iterPending()`) and `send` reaches every client.
 * Or call `accept()` to take connections one by one and manage them
 * yourself. A connection goes to one or the other, never both: a waiting
 * `accept()` gets the next one first; once the server has been used as a
 * port, every other connection joins it.
 *
 * Underneath, the server is a {@linkcode Hub} of its own: clients that
 * leave are dropped without disturbing the others, a client that falls
 * behind is dropped so it never slows the server or the other clients, and
 * memory stays bounded. A reader of the server itself is never dropped:
 * clients wait for it (TCP slows them down).
 *
 * It is also a {@linkcode Transport}: `await hub.attach(server)` (before
 * any other use) makes its connections join that hub instead, under the
 * hub's gate and policies, and the hub closes the server when it closes.
 *
 * The host `""` listens on every interface (anyone who can reach the
 * machine may connect and send anything, sysex included: see the README's
 * Security section). Port 0 picks a free port; read it from `port`.
 *
 * @example A server that prints what clients send
 * ```ts ignore
 * import { formatMessage, PortServer } from "@x/midisock";
 *
 * for await (const msg of new PortServer("localhost", 8080)) {
 *   console.log(formatMessage(msg));
 * }
 * ```
 *
 * @example A server whose clients join a hub
 * ```ts
 * import assert from "node:assert/strict";
 * import { connect, Hub, message, PortServer } from "@x/midisock";
 *
 * await using hub = new Hub({ token: "correct-horse-battery" });
 * const server = await hub.attach(new PortServer("127.0.0.1", 0));
 * const options = { token: "correct-horse-battery" };
 * await using a = await connect("127.0.0.1", server.port, options);
 * await using b = await connect("127.0.0.1", server.port, options);
 * while (hub.endpoints.length < 2) {
 *   await new Promise((resolve) => setTimeout(resolve, 5));
 * }
 * await a.send(message("note_on", { note: 60 }));
 * assert.deepEqual(await b.receive(), message("note_on", { note: 60 }));
 * ```
 */
export class PortServer extends InputPortBase implements IOPort, Transport {
  readonly #listener: Listener;
  #hub: Hub;
  #ownHub = true;
  readonly #options: PortServerOptions;
  readonly #tls: boolean;
  readonly #features: readonly string[];
  readonly #backlog: number;
  readonly #clients = new Set<SocketPort>();
  readonly #waiting: SocketPort[] = [];
  readonly #waiters: Waiter[] = [];
  /** Connections in their handshake, with their tickets. */
  readonly #handshakes = new Map<Deno.Conn, Ticket>();
  readonly #accepting: Promise<void>;
  /** What makes a connection TLS, once node:tls is loaded; none without. */
  readonly #secure: Promise<Secure> | undefined;
  /** Why the server closed by itself (TLS it cannot serve), if it did. */
  #failure: Error | undefined;
  readonly #stop = new AbortController();
  #stopListening: () => void;
  readonly #sink: Sink;
  #overflow: Message[] = [];
  #flushing: Promise<void> | undefined;
  #local: Endpoint | undefined;
  #closing: Promise<void> | undefined;

  /**
   * Binds the server and starts taking connections.
   *
   * @param host Host name or IP address to listen on; `""` for every
   * interface.
   * @param port TCP port; 0 for any free one.
   * @param options Bounds, access rules, policies and callbacks.
   * @throws {Deno.errors.AddrInUse} When the port is taken.
   * @throws {Deno.errors.NotCapable} Without `--allow-net` for the address.
   * @throws {TypeError | RangeError} For a port that is not 0-65535, or a
   * bad option.
   */
  constructor(host: string, port: number, options: PortServerOptions = {}) {
    const settings = resolveSocketOptions(options);
    super(settings.queueSize);
    checkPort(port);
    if (typeof host !== "string") {
      throw new TypeError(`Host must be a string: got ${String(host)}`);
    }
    if ("hub" in options) {
      throw new TypeError(
        "PortServer takes no hub option: attach it instead, with " +
          "await hub.attach(server)",
      );
    }
    this.#backlog = positiveInteger("backlog", options.backlog ?? 64);
    const features = (options.features ?? []).map(checkFeature);
    if (options.timed !== false && !features.includes(TIMED)) {
      features.push(TIMED);
    }
    this.#features = Object.freeze(features);
    this.#hub = new Hub({
      ...options,
      relay: false,
      // As in mido: what clients send reaches the reader as it is.
      releaseNotes: options.releaseNotes ?? false,
      activeSensing: "relay",
      handshakeTimeout: options.handshakeTimeout ?? options.tokenTimeout,
      maxQueuedBytes: settings.maxQueuedBytes,
      onRefuse: undefined,
      onEvent: undefined,
    });
    this.#options = options;
    this.#tls = options.tls !== undefined;
    this.#sink = this.#makeSink();
    this.#stopListening = this.#follow(this.#hub);
    this.#listener = listenTcp(host, port);
    this.#secure = options.tls && serverTls(options.tls);
    // Said by the accept loop, or thrown by attach.
    this.#secure?.catch(() => {});
    this.#accepting = this.#acceptLoop();
  }

  /** Calls the server's callbacks from the events of the hub it is on. */
  #follow(hub: Hub): () => void {
    const options = this.#options;
    return hub.listen((event) => {
      if (event.type === "refuse" && event.refusal.peer.transport === "tcp") {
        const { hostname, port } = event.refusal.peer;
        callBack(
          options.onRefuse,
          { transport: "tcp", hostname, port: port ?? 0 },
          event.refusal.reason,
        );
      } else if (event.type === "leave") {
        const client = event.endpoint.port as SocketPort;
        if (this.#clients.delete(client)) {
          callBack(options.onDisconnect, client, event.reason);
        }
      }
    });
  }

  /** The address the server is bound to. */
  get addr(): Deno.NetAddr {
    return this.#listener.addr;
  }

  /** The TCP port the server is bound to. */
  get port(): number {
    return this.#listener.addr.port;
  }

  /** `host:port` of the bound address. */
  get name(): string {
    return formatAddress(this.#listener.addr);
  }

  /** The clients the server manages as part of itself, now. */
  get clients(): readonly SocketPort[] {
    return [...this.#clients];
  }

  /** The hub the server's clients join: its own, or the one it is attached to. */
  get hub(): Hub {
    return this.#hub;
  }

  /**
   * Makes the server's connections join `hub` from now on, under its gate
   * and policies; the hub closes the server when it closes. Called by
   * {@linkcode Hub.attach}: use that. Connections still in their handshake
   * at the server's own gate are closed.
   *
   * @param hub The hub.
   * @returns A promise that resolves once the server is on the hub.
   * @throws {TypeError} When the server was made with options that belong
   * to the hub (give them to the `Hub`).
   * @throws {Error} When the server is in use on its own already (as a
   * port, or holding connections for `accept()`), or on another hub; or
   * (`cannot serve TLS: ...`) when its `tls` certificate or key cannot be
   * used.
   * @throws {PortClosedError} When the server is closed.
   */
  async attach(hub: Hub): Promise<void> {
    if (this.#closing !== undefined) throw new PortClosedError(this.name);
    if (hub === this.#hub) return;
    const hubs = Object.entries(this.#options).flatMap(([key, value]) =>
      value === undefined || OWN_OPTIONS.has(key) ? [] : [key]
    );
    if (hubs.length > 0) {
      throw new TypeError(
        `${hubs.join(", ")} ${
          hubs.length === 1 ? "is an option" : "are options"
        } ` +
          "of the hub when a PortServer is attached to one: give " +
          `${hubs.length === 1 ? "it" : "them"} to the Hub`,
      );
    }
    if (!this.#ownHub) {
      throw new Error(`PortServer ${this.name} is attached to a hub already`);
    }
    if (
      this.#local !== undefined || this.#waiting.length > 0 ||
      this.#hub.endpoints.length > 0
    ) {
      throw new Error(
        `PortServer ${this.name} is in use on its own already: attach it ` +
          "to a hub before using it as a port or accepting connections",
      );
    }
    await this.#secure; // a certificate or key TLS cannot use
    if (this.#closing !== undefined) throw new PortClosedError(this.name);
    const own = this.#hub;
    for (const [conn, ticket] of this.#handshakes) {
      ticket.leave();
      closeQuietly(conn);
    }
    this.#stopListening();
    this.#hub = hub;
    this.#ownHub = false;
    this.#stopListening = this.#follow(hub);
    await own.close();
    hub.notice(`listening on ${this.name}${this.#tls ? " (TLS)" : ""}`);
    const warning = hub.gate.exposure(this.name, this.addr.hostname);
    if (warning !== undefined) hub.warn(warning);
  }

  /**
   * The server's own input, as the hub writes to it: clients' messages are
   * queued for the reader, and when its queue is full the hub waits (TCP
   * then slows the clients down).
   */
  get [SINK](): Sink {
    return this.#sink;
  }

  #makeSink(): Sink {
    // deno-lint-ignore no-this-alias
    const server = this;
    return {
      write: (batch: Batch): boolean => {
        if (this.closed) return false;
        const { messages } = batch;
        let i = 0;
        if (this.#overflow.length === 0) {
          while (i < messages.length && this.deliver(messages[i])) i++;
          if (i === messages.length) return true;
        }
        for (; i < messages.length; i++) this.#overflow.push(messages[i]);
        this.#flushing ??= this.#flushOverflow();
        return true;
      },
      get queuedBytes() {
        return server.#overflow.length;
      },
      get copiedBytes() {
        return server.#overflow.length;
      },
      // A waited-for sink: the hub never looks at its progress.
      progress: 0,
      slow: "wait",
      drained: () => this.#flushing ?? Promise.resolve(),
    };
  }

  async #flushOverflow(): Promise<void> {
    let i = 0;
    while (i < this.#overflow.length && !this.closed) {
      while (i < this.#overflow.length && this.deliver(this.#overflow[i])) i++;
      if (i < this.#overflow.length) await this.roomForMore();
    }
    this.#overflow = [];
    this.#flushing = undefined;
  }

  async #acceptLoop(): Promise<void> {
    let secure: Secure | undefined;
    try {
      secure = await this.#secure;
    } catch (error) {
      // TLS it cannot serve: on a hub, attach throws it; on its own, the
      // server closes, and what waits for a connection is given why.
      this.#failure = error as Error;
      this.#hub.warn(`${this.name}: ${this.#failure.message}`);
      void this.close();
      return;
    }
    await acceptEach(this.#listener, {
      name: this.name,
      warn: (line) => this.#hub.warn(line),
      signal: this.#stop.signal,
    }, (conn) => this.#arrive(conn, secure));
  }

  #arrive(
    raw: Deno.TcpConn,
    secure: Secure | undefined,
  ): void {
    const { port } = raw.remoteAddr;
    const hostname = unmapAddress(raw.remoteAddr.hostname);
    const gate = this.#hub.gate;
    const stop = new AbortController();
    const ticket = gate.arrive({ transport: "tcp", hostname, port }, {
      long: secure !== undefined || gate.wantsToken,
      close: () => stop.abort(),
    });
    if ("code" in ticket) {
      // A TLS client can read no plain line: it is told by a TLS alert.
      refuse(
        raw,
        ticket,
        undefined,
        secure === undefined ? undefined : tlsAlert(
          ticket.code === "not-allowed"
            ? ALERT_ACCESS_DENIED
            : ALERT_INTERNAL_ERROR,
        ),
      );
      return;
    }
    const conn = secure === undefined ? raw : secure(raw);
    this.#handshakes.set(conn, ticket);
    serverHandshake(conn, ticket, {
      gate,
      tls: secure !== undefined,
      features: this.#features,
      signal: stop.signal,
    }).then((result) => {
      this.#handshakes.delete(conn);
      if (result === undefined || "code" in result) return;
      if (this.#closing !== undefined || ticket.state === "gone") {
        ticket.leave();
        closeQuietly(conn);
        return;
      }
      this.#place(conn, ticket, {
        ...result,
        refuse: (reason, detail) => ticket.refuse("protocol", reason, detail),
      });
    }, () => {
      this.#handshakes.delete(conn);
      ticket.leave();
      closeQuietly(conn);
    });
  }

  #place(conn: Deno.Conn<Deno.NetAddr>, ticket: Ticket, preamble: Preamble) {
    const waiter = this.#waiters.shift();
    const joining = waiter === undefined &&
      (!this.#ownHub || this.#local !== undefined);
    let client: SocketPort;
    try {
      client = new SocketPort(
        conn,
        joining
          ? {
            queueSize: this.#options.queueSize,
            maxQueuedBytes: this.#options.maxQueuedBytes,
            maxSysexLength: this.#hub.maxSysexLength,
            features: this.#features,
            clock: this.#hub.clock,
            preamble,
            side: "server",
          }
          : {
            ...this.#options,
            features: this.#features,
            clock: this.#hub.clock,
            preamble,
            side: "server",
          },
      );
    } catch {
      ticket.leave();
      closeQuietly(conn);
      return;
    }
    if (joining) return this.#join(client, ticket);
    client.finished.finally(() => ticket.leave());
    if (waiter !== undefined) return waiter.resolve(client);
    this.#waiting.push(client);
    if (this.#waiting.length > this.#backlog) {
      this.#waiting.shift()!.close().catch(() => {});
    }
  }

  #join(client: SocketPort, ticket?: Ticket): void {
    if (this.#hub.closed) {
      ticket?.leave();
      client.close().catch(() => {});
      return;
    }
    this.#clients.add(client);
    this.#hub.add(client, {
      kind: "client",
      transport: "tcp",
      onLeave: () => ticket?.leave(),
    });
    // Called once the client hears what the server sends.
    callBack(this.#options.onConnect, client);
  }

  #usePort(): void {
    if (this.#local !== undefined || this.#closing !== undefined) return;
    this.#local = this.#hub.add(this, {
      kind: "device",
      transport: "local",
      input: false,
      close: false,
    });
    if (this.#ownHub) {
      for (const client of this.#waiting.splice(0)) this.#join(client);
    }
  }

  /**
   * Waits for the next connection, to manage yourself: the server will not
   * read from it or send to it.
   *
   * @returns A promise of the connection.
   * @throws {PortClosedError} When the server is closed.
   * @throws {TypeError} `cannot serve TLS: ...`, when the server closed
   * itself because its `tls` certificate or key cannot be used.
   *
   * @example One client at a time
   * ```ts ignore
   * import { PortServer } from "@x/midisock";
   *
   * await using server = new PortServer("localhost", 8080);
   * for (;;) {
   *   await using client = await server.accept();
   *   for await (const msg of client) console.log(msg);
   * }
   * ```
   */
  accept(): Promise<SocketPort>;
  /**
   * Returns a connection that is waiting, or `undefined` when none is,
   * without waiting.
   *
   * @param options `{ block: false }`.
   * @returns The connection or `undefined`.
   * @throws {PortClosedError} When the server is closed.
   * @throws {TypeError} `cannot serve TLS: ...`, when the server closed
   * itself because its `tls` certificate or key cannot be used.
   *
   * @example Polling for new clients
   * ```ts ignore
   * import { PortServer } from "@x/midisock";
   *
   * const server = new PortServer("localhost", 8080);
   * const client = server.accept({ block: false });
   * if (client) console.log(`Connection from ${client.name}`);
   * ```
   */
  accept(options: { block: false }): SocketPort | undefined;
  /**
   * Takes the next connection, waiting for one or not as `block` says.
   *
   * @param options Whether to wait.
   * @returns The connection (or a promise of it when blocking); `undefined`
   * when not blocking and none is waiting.
   * @throws {PortClosedError} When the server is closed.
   * @throws {TypeError} `cannot serve TLS: ...`, when the server closed
   * itself because its `tls` certificate or key cannot be used.
   *
   * @example Choosing at run time
   * ```ts ignore
   * import { PortServer } from "@x/midisock";
   *
   * const server = new PortServer("localhost", 8080);
   * const client = await server.accept({ block: Math.random() < 0.5 });
   * console.log(client?.name);
   * ```
   */
  accept(options: AcceptOptions): Promise<SocketPort> | SocketPort | undefined;
  accept(
    options: AcceptOptions = {},
  ): Promise<SocketPort> | SocketPort | undefined {
    const closed = () => this.#failure ?? new PortClosedError(this.name);
    if (options.block === false) {
      if (this.#closing !== undefined) throw closed();
      return this.#waiting.shift();
    }
    if (this.#closing !== undefined) return Promise.reject(closed());
    const waiting = this.#waiting.shift();
    if (waiting !== undefined) return Promise.resolve(waiting);
    return new Promise((resolve, reject) =>
      this.#waiters.push({ resolve, reject })
    );
  }

  /**
   * Waits for the next message from any client.
   *
   * @returns The message.
   * @throws {PortClosedError} Once the server is closed.
   */
  override receive(): Promise<Message> {
    this.#usePort();
    return super.receive();
  }

  /**
   * Returns the next pending message from any client without waiting.
   *
   * @returns The message, or `undefined`.
   */
  override poll(): Message | undefined {
    this.#usePort();
    return super.poll();
  }

  /**
   * Yields every client's messages, merged, until the server closes.
   *
   * @returns An async iterator over the messages.
   */
  override [Symbol.asyncIterator](): AsyncIterableIterator<Message> {
    this.#usePort();
    return super[Symbol.asyncIterator]();
  }

  /**
   * Sends a message to every client the server manages. A client that
   * cannot take it (gone, or too far behind) is dropped and reported to
   * `onDisconnect`; the others still get it.
   *
   * @param msg The message.
   * @returns A promise that resolves once the message is queued for every
   * client (it does not wait for slow ones).
   * @throws {TypeError | RangeError} For a malformed message.
   * @throws {PortClosedError} When the server is closed.
   */
  send(msg: Message): Promise<void> {
    try {
      checkMessage(msg);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#broadcast([msg]);
  }

  #broadcast(messages: readonly Message[]): Promise<void> {
    if (this.#closing !== undefined) {
      return Promise.reject(new PortClosedError(this.name));
    }
    this.#usePort();
    try {
      this.#hub.inject(this.#local!, messages);
    } catch (error) {
      return Promise.reject(error);
    }
    return Promise.resolve();
  }

  /**
   * Sends mido's reset set to every client, in one write each. Does nothing
   * on a closed server.
   *
   * @returns A promise that resolves once it is queued.
   */
  async reset(): Promise<void> {
    if (this.#closing === undefined) await this.#broadcast(RESET_MESSAGES);
  }

  /**
   * Sends mido's panic set to every client, in one write each. Does nothing
   * on a closed server.
   *
   * @returns A promise that resolves once it is queued.
   */
  async panic(): Promise<void> {
    if (this.#closing === undefined) await this.#broadcast(PANIC_MESSAGES);
  }

  /**
   * Stops listening and closes every connection the server manages or holds
   * for `accept()`. Connections already handed out by `accept()` belong to
   * the caller and stay open. Closing twice does nothing.
   *
   * @returns A promise that resolves once everything is closed.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    this.finish(undefined, true);
    this.#stop.abort();
    this.#listener.close();
    await this.#accepting;
    for (const [conn, ticket] of this.#handshakes) {
      ticket.leave();
      closeQuietly(conn);
    }
    const closed = this.#failure ?? new PortClosedError(this.name);
    for (const waiter of this.#waiters.splice(0)) waiter.reject(closed);
    const waiting = this.#waiting.splice(0);
    if (this.#ownHub) {
      await this.#hub.close();
    } else if (!this.#hub.closed) {
      // Closed on its own, the server takes its clients off the hub; when
      // the hub closes it, the hub has them in hand.
      const mine = this.#hub.endpoints.filter((e) =>
        this.#clients.has(e.port as SocketPort) || e === this.#local
      );
      await Promise.all(mine.map((e) => this.#hub.remove(e)));
    }
    await Promise.all(waiting.map((client) => client.close()));
    this.#stopListening();
  }
}
