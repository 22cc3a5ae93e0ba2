/**
 * A client port that survives its server going away: it reconnects with a
 * backoff, holds or drops what is sent meanwhile, and can watch the link with
 * a heartbeat.
 *
 * @module
 */

import type { Message } from "../codec/messages.ts";
import { checkMessages } from "../codec/_check.ts";
import { PortClosedError, QueueFullError } from "../errors.ts";
import {
  DEFAULT_QUEUE_SIZE,
  InputPortBase,
  type IOPort,
  PANIC_MESSAGES,
  RESET_MESSAGES,
} from "../port.ts";
import { type Backoff, exponentialBackoff } from "../backoff.ts";
import { positiveMs } from "../_policy.ts";
import { checkToken } from "../gate.ts";
import { sleep } from "../_time.ts";
import { checkPort, formatAddress } from "../address.ts";
import { connect, type ConnectOptions } from "./connect.ts";
import { resolveSocketOptions } from "./_settings.ts";
import type { SocketPort } from "./socket_port.ts";
import { callBack } from "../_call.ts";

/** Options for {@linkcode ReconnectingPort}. */
export interface ReconnectOptions extends ConnectOptions {
  /**
   * How long to wait after the n-th failed attempt in a row (or a lost
   * connection). A connection resets the count.
   * @default {exponentialBackoff()} (0.1 s doubling to 5 s, 20% jitter)
   */
  backoff?: Backoff;
  /**
   * First wait of the default backoff, in milliseconds (ignored with
   * `backoff`).
   * @default {100}
   */
  minDelay?: number;
  /**
   * Longest wait of the default backoff, in milliseconds (ignored with
   * `backoff`).
   * @default {5000}
   */
  maxDelay?: number;
  /**
   * What `send` does while disconnected: `"queue"` holds up to
   * `maxPending` messages and sends them, in order, once connected again
   * (past that, `send` throws `QueueFullError`); `"reject"` throws
   * `PortClosedError` at once; `"drop"` drops them, counted in `undelivered`.
   * @default {"queue"}
   */
  whileDown?: "queue" | "reject" | "drop";
  /**
   * Messages held while disconnected, at most.
   * @default {1024}
   */
  maxPending?: number;
  /**
   * Watch the link: send active sensing when nothing else went out for this
   * many milliseconds, and count the link dead when the server, having
   * answered once, sends nothing for three times as long. A midisock hub
   * answers active sensing with active sensing; a server that never
   * answers is never counted dead. Without it, a link that silently goes
   * away (a cable pulled, a network gone) is noticed only when TCP gives up,
   * which can take many minutes.
   * @default {undefined} (no heartbeat)
   */
  heartbeat?: number;
  /** Called each time a connection is made. */
  onConnect?: (port: SocketPort) => void;
  /**
   * Called each time the connection is lost: the reason if known, and how
   * many messages sent on it may not have arrived (those sent after the
   * server last answered a heartbeat; with no heartbeat, 0 is not a
   * promise).
   */
  onDisconnect?: (reason: unknown, unconfirmed: number) => void;
  /** Called before each wait to reconnect, with the wait and why. */
  onRetry?: (delay: number, reason: unknown) => void;
}

const ACTIVE_SENSING: Message = { type: "active_sensing", time: 0 };

/**
 * A port to a midisock or mido server that reconnects by itself. Iteration
 * goes on across reconnections and ends only when you close the port.
 *
 * While disconnected, `send` holds messages (bounded, `whileDown:
 * "queue"`), refuses them (`"reject"`) or drops and counts them (`"drop"`).
 * Messages the server had not read when the connection broke may be lost:
 * TCP cannot tell which. With a `heartbeat`, a dead link is noticed within
 * three heartbeats, and the messages sent since the server last answered
 * are counted in `unconfirmed` and reported to `onDisconnect`.
 *
 * @example A client that rides out server restarts
 * ```ts ignore
 * import { message, ReconnectingPort } from "@x/midisock";
 *
 * await using port = new ReconnectingPort("localhost", 8080, {
 *   heartbeat: 500,
 * });
 * await port.send(message("note_on", { note: 60 })); // held until connected
 * for await (const msg of port) console.log(msg);
 * ```
 */
export class ReconnectingPort extends InputPortBase implements IOPort {
  readonly #hostname: string;
  readonly #port: number;
  readonly #options: ReconnectOptions;
  readonly #backoff: Backoff;
  readonly #maxPending: number;
  readonly #heartbeat: number | undefined;
  readonly #running: Promise<void>;
  readonly #stop = new AbortController();
  #socket: SocketPort | undefined;
  #pending: Message[] = [];
  #closing: Promise<void> | undefined;
  #undelivered = 0;
  /** Messages sent on this connection since the server last answered. */
  #unconfirmed = 0;
  #lastSent = 0;
  #lastHeard = 0;
  #answered = false;

  /**
   * Starts connecting at once, in the background.
   *
   * @param host Host name or IP address.
   * @param port TCP port.
   * @param options Backoff, what to do while disconnected, heartbeat, and
   * the options of each connection.
   * @throws {RangeError} For a bad port, delay, bound or policy.
   * @throws {TypeError} For a bad token.
   */
  constructor(host: string, port: number, options: ReconnectOptions = {}) {
    super(options.queueSize ?? DEFAULT_QUEUE_SIZE);
    checkPort(port);
    resolveSocketOptions(options);
    if (options.token !== undefined) checkToken(options.token);
    this.#backoff = options.backoff ??
      exponentialBackoff({ first: options.minDelay, max: options.maxDelay });
    const maxPending = options.maxPending ?? 1024;
    if (!Number.isSafeInteger(maxPending) || maxPending < 0) {
      throw new RangeError(
        `maxPending must be a non-negative integer: got ${maxPending}`,
      );
    }
    const whileDown = options.whileDown ?? "queue";
    if (!["queue", "reject", "drop"].includes(whileDown)) {
      throw new RangeError(
        `whileDown must be "queue", "reject" or "drop": got ${
          JSON.stringify(whileDown)
        }`,
      );
    }
    this.#heartbeat = options.heartbeat === undefined
      ? undefined
      : positiveMs("heartbeat", options.heartbeat);
    this.#hostname = host;
    this.#port = port;
    this.#options = options;
    this.#maxPending = maxPending;
    this.#running = this.#run();
  }

  /** `host:port` of the server. */
  get name(): string {
    return formatAddress({ hostname: this.#hostname, port: this.#port });
  }

  /** Whether a connection is up now. */
  get connected(): boolean {
    return this.#socket !== undefined && !this.#socket.closed;
  }

  /** Messages held for the next connection. */
  get pending(): number {
    return this.#pending.length;
  }

  /** Messages dropped while disconnected (`whileDown: "drop"`). */
  get undelivered(): number {
    return this.#undelivered;
  }

  /**
   * Messages sent on the current connection since the server last answered
   * a heartbeat: those a dead link would lose.
   */
  get unconfirmed(): number {
    return this.#unconfirmed;
  }

  async #run(): Promise<void> {
    const stopped = this.#stop.signal;
    let attempt = 0;
    while (!stopped.aborted) {
      let socket: SocketPort | undefined;
      let reason: unknown;
      try {
        socket = await connect(this.#hostname, this.#port, {
          ...this.#options,
          signal: stopped,
        });
      } catch (error) {
        if (error instanceof Deno.errors.NotCapable) {
          this.finish(error);
          return;
        }
        reason = error;
      }
      if (socket !== undefined) {
        if (stopped.aborted) {
          await socket.close();
          return;
        }
        attempt = 0;
        reason = await this.#serve(socket);
        if (stopped.aborted) return;
        const unconfirmed = this.#unconfirmed;
        this.#unconfirmed = 0;
        callBack(this.#options.onDisconnect, reason, unconfirmed);
      }
      const delay = this.#backoff(++attempt);
      callBack(this.#options.onRetry, delay, reason);
      await sleep(delay, stopped);
    }
  }

  /** Uses one connection until it ends; resolves to why it ended. */
  async #serve(socket: SocketPort): Promise<unknown> {
    this.#socket = socket;
    this.#answered = false;
    this.#lastSent = this.#lastHeard = performance.now();
    callBack(this.#options.onConnect, socket);
    const held = this.#pending;
    this.#pending = [];
    if (held.length > 0) this.#write(socket, held);
    const watch = this.#heartbeat === undefined
      ? undefined
      : setInterval(() => this.#beat(socket), this.#heartbeat);
    try {
      for await (const msg of socket) {
        this.#lastHeard = performance.now();
        if (msg.type === "active_sensing" && this.#heartbeat !== undefined) {
          // The server answered: everything sent before is through.
          this.#answered = true;
          this.#unconfirmed = 0;
          continue;
        }
        while (!this.deliver(msg) && !this.closed) await this.roomForMore();
      }
    } finally {
      clearInterval(watch);
      this.#socket = undefined;
    }
    return await socket.receive().then(
      () => undefined,
      (error: Error) => error.cause,
    );
  }

  #beat(socket: SocketPort): void {
    const now = performance.now();
    const interval = this.#heartbeat!;
    if (this.#answered && now - this.#lastHeard > 3 * interval) {
      socket.abort(
        new Deno.errors.TimedOut(
          `No answer from ${this.name} for ${
            Math.round(now - this.#lastHeard)
          } ms`,
        ),
      );
      return;
    }
    if (now - this.#lastSent >= interval * 0.9) {
      this.#write(socket, [ACTIVE_SENSING], false);
    }
  }

  /** Sends on a connection; what it cannot take is held again. */
  #write(socket: SocketPort, messages: Message[], count = true): Promise<void> {
    this.#lastSent = performance.now();
    if (count && this.#heartbeat !== undefined) {
      this.#unconfirmed += messages.length;
    }
    return socket.sendAll(messages).catch((error) =>
      error instanceof PortClosedError
        ? this.#hold(messages)
        : Promise.reject(error)
    );
  }

  /**
   * Sends a message now, or deals with it as `whileDown` says while
   * disconnected.
   *
   * @param msg The message.
   * @returns A promise that resolves once it is sent, held or dropped.
   * @throws {TypeError | RangeError} For a malformed message.
   * @throws {PortClosedError} When closed, or disconnected with
   * `whileDown: "reject"`.
   * @throws {QueueFullError} When `maxPending` messages are held already.
   */
  send(msg: Message): Promise<void> {
    return this.sendAll([msg]);
  }

  /**
   * Sends several messages in one write, or deals with them as `whileDown`
   * says while disconnected.
   *
   * @param messages The messages; all are checked before any is sent.
   * @returns A promise that resolves once they are sent, held or dropped.
   * @throws {TypeError | RangeError} For a malformed message.
   * @throws {PortClosedError} When closed, or disconnected with
   * `whileDown: "reject"`.
   * @throws {QueueFullError} When `maxPending` messages would be passed.
   */
  sendAll(messages: Iterable<Message>): Promise<void> {
    let list: Message[];
    try {
      list = checkMessages(messages);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#closing !== undefined || this.closed) {
      return Promise.reject(new PortClosedError(this.name));
    }
    const socket = this.#socket;
    if (socket !== undefined && !socket.closed) {
      return this.#write(socket, list);
    }
    return this.#hold(list);
  }

  #hold(messages: Message[]): Promise<void> {
    switch (this.#options.whileDown) {
      case "reject":
        return Promise.reject(
          new PortClosedError(this.name, {
            cause: new Error('Not connected (whileDown: "reject")'),
          }),
        );
      case "drop":
        this.#undelivered += messages.length;
        return Promise.resolve();
    }
    if (this.#pending.length + messages.length > this.#maxPending) {
      return Promise.reject(
        new QueueFullError(this.name, this.#maxPending, "messages"),
      );
    }
    this.#pending.push(...messages);
    return Promise.resolve();
  }

  /**
   * Sends mido's reset set, if connected. Does nothing on a closed port.
   *
   * @returns A promise that resolves once it is sent.
   */
  async reset(): Promise<void> {
    if (this.connected) await this.sendAll(RESET_MESSAGES);
  }

  /**
   * Sends mido's panic set, if connected. Does nothing on a closed port.
   *
   * @returns A promise that resolves once it is sent.
   */
  async panic(): Promise<void> {
    if (this.connected) await this.sendAll(PANIC_MESSAGES);
  }

  /**
   * Stops reconnecting and closes the connection (what was sent still goes
   * out, as `SocketPort.close` does); held messages are dropped. Closing
   * twice does nothing.
   *
   * @returns A promise that resolves once everything is closed.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.finish(undefined, true);
      this.#pending = [];
      this.#stop.abort(new PortClosedError(this.name));
      await this.#socket?.close();
      await this.#running;
    })();
    return this.#closing;
  }
}
