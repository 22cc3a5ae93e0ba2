/**
 * `PortServer` and `connect`: mido's socket ports, async.
 *
 * @module
 */

import { checkMessage, type Message } from "../codec/messages.ts";
import { encodedLength, encodeInto } from "../codec/encode.ts";
import { PortClosedError } from "../errors.ts";
import {
  DEFAULT_QUEUE_SIZE,
  InputPortBase,
  type IOPort,
  PANIC_MESSAGES,
  RESET_MESSAGES,
} from "../port.ts";
import { NoteTracker } from "../notes.ts";
import {
  AddressList,
  checkToken,
  timingSafeEqual,
  tokenHeader,
} from "./access.ts";
import { checkPort, formatAddress } from "./address.ts";
import {
  abort,
  prefixes,
  resolveSocketOptions,
  type SocketOptions,
  SocketPort,
  writeBytes,
} from "./socket_port.ts";

/** Options for {@linkcode PortServer}. */
export interface PortServerOptions extends SocketOptions {
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
   * drop it (a write that failed, a `QueueFullError` for a client that
   * stopped reading).
   */
  onDisconnect?: (client: SocketPort, reason?: unknown) => void;
  /**
   * Addresses and CIDR ranges (IPv4 and IPv6) that may connect; anyone
   * else is closed at once and reported to `onRefuse`. Leave it out to let
   * in whoever can reach the bound address, as mido does.
   * @default {undefined} (everyone)
   */
  allow?: Iterable<string>;
  /**
   * Most connections open at once (managed, waiting or handed out by
   * `accept()`); one more is closed at once and reported to `onRefuse`.
   * @default {undefined} (no limit)
   */
  maxClients?: number;
  /**
   * A shared secret clients must send first, as the line
   * `MIDISOCK-TOKEN <token>` (7-bit ASCII, which plain MIDI peers skip).
   * Connections without it, or with another, are closed. It is compared in
   * constant time. Without TLS it crosses the network in clear text.
   * @default {undefined} (no token)
   */
  token?: string;
  /**
   * How long a client has to send its token, in milliseconds.
   * @default {5000}
   */
  tokenTimeout?: number;
  /** Serve TLS with this certificate chain and private key (PEM). */
  tls?: Deno.TlsCertifiedKeyPem;
  /**
   * When a client the server manages leaves with notes still on, deliver a
   * note_off for each into the server's input, after that client's last
   * message, so nothing downstream is left sounding.
   * @default {true}
   */
  releaseNotes?: boolean;
  /**
   * Called for each connection refused, with the peer's address and why.
   */
  onRefuse?: (peer: Deno.NetAddr, reason: string) => void;
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
 * The wildcard address: every interface, IPv6 and IPv4 where the system has
 * both, as mido's `''` means.
 */
function listen(
  host: string,
  port: number,
  tls: Deno.TlsCertifiedKeyPem | undefined,
): Listener {
  const open = (hostname: string): Listener =>
    tls === undefined
      ? Deno.listen({ hostname, port })
      : Deno.listenTls({ hostname, port, cert: tls.cert, key: tls.key });
  if (host !== "") return open(host);
  try {
    return open("::");
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    return open("0.0.0.0");
  }
}

type Listener = Deno.Listener<Deno.Conn<Deno.NetAddr>, Deno.NetAddr>;

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Closed already.
  }
}

/**
 * Calls a user's callback; an error it throws is reported (as an uncaught
 * error would be) but never stops the server.
 */
export function callBack<A extends unknown[]>(
  callback: ((...args: A) => void) | undefined,
  ...args: A
): void {
  try {
    callback?.(...args);
  } catch (error) {
    reportError(error);
  }
}

const NEWLINE = 0x0a;

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
 * Clients that leave are dropped without disturbing the others. A client
 * that stops reading is dropped once `maxQueuedBytes` wait for it, so it
 * never slows the server or the other clients, and memory stays bounded.
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
 */
export class PortServer extends InputPortBase implements IOPort {
  readonly #listener: Listener;
  readonly #allow: AddressList | undefined;
  readonly #maxClients: number;
  readonly #token: Uint8Array | undefined;
  readonly #tokenTimeout: number;
  readonly #live = new Set<SocketPort>();
  readonly #handshakes = new Set<Promise<void>>();
  readonly #handshaking = new Set<Deno.Conn>();
  readonly #options: PortServerOptions;
  readonly #backlog: number;
  readonly #clients = new Set<SocketPort>();
  readonly #pumps = new Set<Promise<void>>();
  readonly #waiting: SocketPort[] = [];
  readonly #waiters: Waiter[] = [];
  readonly #accepting: Promise<void>;
  #asPort = false;
  #closing: Promise<void> | undefined;

  /**
   * Binds the server and starts taking connections.
   *
   * @param host Host name or IP address to listen on; `""` for every
   * interface.
   * @param port TCP port; 0 for any free one.
   * @param options Bounds and connection callbacks.
   * @throws {Deno.errors.AddrInUse} When the port is taken.
   * @throws {Deno.errors.NotCapable} Without `--allow-net` for the address.
   * @throws {TypeError | RangeError} For a port that is not 0-65535.
   */
  constructor(host: string, port: number, options: PortServerOptions = {}) {
    super(options.queueSize ?? DEFAULT_QUEUE_SIZE);
    checkPort(port);
    resolveSocketOptions(options);
    if (typeof host !== "string") {
      throw new TypeError(`Host must be a string: got ${String(host)}`);
    }
    const backlog = options.backlog ?? 64;
    if (!Number.isSafeInteger(backlog) || backlog < 1) {
      throw new RangeError(
        `backlog must be a positive integer: got ${backlog}`,
      );
    }
    const maxClients = options.maxClients ?? Infinity;
    if (
      !(maxClients >= 1) ||
      !Number.isInteger(maxClients) && maxClients !== Infinity
    ) {
      throw new RangeError(
        `maxClients must be a positive integer: got ${maxClients}`,
      );
    }
    const tokenTimeout = options.tokenTimeout ?? 5000;
    if (!(tokenTimeout > 0) || !Number.isFinite(tokenTimeout)) {
      throw new RangeError(
        `tokenTimeout must be a positive number of ms: got ${tokenTimeout}`,
      );
    }
    this.#backlog = backlog;
    this.#maxClients = maxClients;
    this.#tokenTimeout = tokenTimeout;
    this.#allow = options.allow && new AddressList(options.allow);
    this.#token = options.token === undefined
      ? undefined
      : tokenHeader(options.token);
    this.#options = options;
    this.#listener = listen(host, port, options.tls);
    this.#accepting = this.#acceptLoop();
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

  async #acceptLoop(): Promise<void> {
    for (;;) {
      let conn: Deno.Conn<Deno.NetAddr>;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#closing !== undefined) return;
        if (error instanceof Deno.errors.BadResource) return;
        // A failure of one accept (a peer that reset at once, too many
        // open files) must not stop the server.
        continue;
      }
      this.#admit(conn);
    }
  }

  #admit(conn: Deno.Conn<Deno.NetAddr>): void {
    const peer = conn.remoteAddr;
    if (this.#allow !== undefined && !this.#allow.includes(peer.hostname)) {
      return this.#refuse(conn, "address not in the allow list");
    }
    if (this.#live.size + this.#handshakes.size >= this.#maxClients) {
      return this.#refuse(conn, `client limit of ${this.#maxClients} reached`);
    }
    if (this.#token === undefined) return this.#open(conn);
    this.#handshaking.add(conn);
    const handshake = this.#readToken(conn, this.#token).then((rest) => {
      this.#handshakes.delete(handshake);
      this.#handshaking.delete(conn);
      if (this.#closing !== undefined) closeQuietly(conn);
      else if (typeof rest === "string") this.#refuse(conn, rest);
      else this.#open(conn, rest);
    });
    this.#handshakes.add(handshake);
  }

  /** Reads the token line; resolves to the bytes after it, or why not. */
  async #readToken(
    conn: Deno.Conn,
    expected: Uint8Array,
  ): Promise<Uint8Array | string> {
    const buffer = new Uint8Array(expected.length + 4096);
    let length = 0;
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    }, this.#tokenTimeout);
    try {
      while (length < expected.length) {
        const n = await conn.read(buffer.subarray(length));
        if (n === null) return "closed before sending a token";
        const newline = buffer.subarray(length, length + n).indexOf(NEWLINE);
        length += n;
        if (newline >= 0 && length - n + newline < expected.length - 1) break;
      }
    } catch {
      return timedOut
        ? `no token within ${this.#tokenTimeout} ms`
        : "connection failed during the token check";
    } finally {
      clearTimeout(timer);
    }
    if (
      length < expected.length ||
      !timingSafeEqual(buffer.subarray(0, expected.length), expected)
    ) {
      return "wrong token";
    }
    return buffer.slice(expected.length, length);
  }

  #refuse(conn: Deno.Conn<Deno.NetAddr>, reason: string): void {
    closeQuietly(conn);
    callBack(this.#options.onRefuse, conn.remoteAddr, reason);
  }

  #open(conn: Deno.Conn<Deno.NetAddr>, rest?: Uint8Array): void {
    if (rest !== undefined && rest.length > 0) prefixes.set(conn, rest);
    let client: SocketPort;
    try {
      client = new SocketPort(conn, this.#options);
    } catch {
      conn.close();
      return;
    }
    this.#live.add(client);
    client.finished.finally(() => this.#live.delete(client));
    this.#place(client);
  }

  #place(client: SocketPort): void {
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) return waiter.resolve(client);
    if (this.#asPort) return this.#adopt(client);
    this.#waiting.push(client);
    if (this.#waiting.length > this.#backlog) {
      this.#waiting.shift()!.close().catch(() => {});
    }
  }

  #adopt(client: SocketPort): void {
    this.#clients.add(client);
    callBack(this.#options.onConnect, client);
    const pump = this.#pump(client);
    this.#pumps.add(pump);
    pump.finally(() => this.#pumps.delete(pump));
  }

  async #pump(client: SocketPort): Promise<void> {
    const notes = this.#options.releaseNotes === false
      ? undefined
      : new NoteTracker();
    // Delivers one message; false when the server's queue is full.
    const take = (msg: Message): boolean => {
      notes?.track(msg);
      return this.deliver(msg) || this.closed;
    };
    const waitAndTake = async (msg: Message): Promise<void> => {
      while (!this.deliver(msg) && !this.closed) await this.roomForMore();
    };
    const messages = client[Symbol.asyncIterator]();
    for (;;) {
      const { value, done } = await messages.next();
      if (done) break;
      if (!take(value)) await waitAndTake(value);
      // Take whatever else has arrived without a turn of the event loop each.
      for (let msg = client.poll(); msg !== undefined; msg = client.poll()) {
        if (!take(msg)) await waitAndTake(msg);
      }
    }
    this.#drop(client);
    for (const off of notes?.release() ?? []) {
      if (!this.deliver(off) && !this.closed) await waitAndTake(off);
    }
  }

  /**
   * Takes a client off the server: no more broadcasts reach it and its
   * connection closes, but what it sent before is still delivered.
   */
  #drop(client: SocketPort, reason?: unknown): void {
    if (!this.#clients.delete(client)) return;
    // A client that left by itself is closing already, gracefully (it may
    // still be reading what was sent to it); one the server drops closes now.
    if (reason !== undefined) abort(client, reason);
    callBack(this.#options.onDisconnect, client, reason);
  }

  #usePort(): void {
    if (this.#asPort) return;
    this.#asPort = true;
    for (const client of this.#waiting.splice(0)) this.#adopt(client);
  }

  /**
   * Waits for the next connection, to manage yourself: the server will not
   * read from it or send to it.
   *
   * @returns A promise of the connection.
   * @throws {PortClosedError} When the server is closed.
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
    if (options.block === false) {
      if (this.#closing !== undefined) {
        throw new PortClosedError(this.name);
      }
      return this.#waiting.shift();
    }
    if (this.#closing !== undefined) {
      return Promise.reject(new PortClosedError(this.name));
    }
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
   * cannot take it (gone, or `maxQueuedBytes` behind) is dropped and
   * reported to `onDisconnect`; the others still get it.
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
    let size = 0;
    for (const msg of messages) size += encodedLength(msg);
    const bytes = new Uint8Array(size);
    let offset = 0;
    for (const msg of messages) offset = encodeInto(msg, bytes, offset);
    const single = messages.length === 1 ? messages[0] : undefined;
    for (const client of this.#clients) {
      const queued = writeBytes(client, bytes, single);
      if (queued instanceof Error) this.#drop(client, queued);
      else queued.catch((error) => this.#drop(client, error));
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
    this.#listener.close();
    await this.#accepting;
    for (const conn of this.#handshaking) closeQuietly(conn);
    await Promise.all(this.#handshakes);
    const closed = new PortClosedError(this.name);
    for (const waiter of this.#waiters.splice(0)) waiter.reject(closed);
    const clients = [...this.#clients, ...this.#waiting.splice(0)];
    this.#clients.clear();
    await Promise.all(clients.map((client) => client.close()));
    await Promise.all(this.#pumps);
  }
}

/** Options for {@linkcode connect}. */
export interface ConnectOptions extends SocketOptions {
  /**
   * The server's shared secret: sent first, as one line of 7-bit ASCII
   * (see `PortServerOptions.token`).
   * @default {undefined} (none)
   */
  token?: string;
  /**
   * Connect with TLS. The server's certificate must be valid for `host`
   * and signed by a trusted authority, or by one of `caCerts`.
   * @default {false}
   */
  tls?: boolean;
  /** Extra trusted certificate authorities (PEM), for TLS. */
  caCerts?: string[];
  /** Aborts the connection attempt (TCP connect and TLS handshake). */
  signal?: AbortSignal;
}

/**
 * Connects to a midisock or mido socket server.
 *
 * @param host Host name or IP address.
 * @param port TCP port.
 * @param options Queue bounds, policies, token and TLS.
 * @returns The connected port.
 * @throws {Deno.errors.ConnectionRefused} When nothing listens there.
 * @throws {Deno.errors.NotCapable} Without `--allow-net` for the address.
 * @throws {TypeError | RangeError} For a bad port or token.
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
  const hostname = host === "" ? "127.0.0.1" : host;
  const tcp = await Deno.connect({ hostname, port, signal: options.signal });
  let conn: Deno.Conn = tcp;
  if (options.tls) {
    // TLS connections offer no TCP options: set them on the socket below.
    tcp.setNoDelay(true);
    tcp.setKeepAlive(true);
    conn = await Deno.startTls(tcp, { hostname, caCerts: options.caCerts });
    const abandon = () => closeQuietly(conn);
    options.signal?.addEventListener("abort", abandon);
    try {
      await (conn as Deno.TlsConn).handshake();
    } catch (error) {
      closeQuietly(conn);
      throw options.signal?.aborted ? options.signal.reason : error;
    } finally {
      options.signal?.removeEventListener("abort", abandon);
    }
  }
  let socket: SocketPort;
  try {
    socket = new SocketPort(conn, {
      ...options,
      name: formatAddress({ hostname: host, port }),
    });
  } catch (error) {
    conn.close();
    throw error;
  }
  if (options.token !== undefined) {
    const queued = writeBytes(socket, tokenHeader(options.token));
    if (queued instanceof Error) throw queued;
    await queued;
  }
  return socket;
}
