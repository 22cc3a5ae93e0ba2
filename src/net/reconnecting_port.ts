/**
 * A client port that survives its server going away: it reconnects with
 * exponential backoff and holds what is sent meanwhile.
 *
 * @module
 */

import { checkMessages, type Message } from "../codec/messages.ts";
import { PortClosedError, QueueFullError } from "../errors.ts";
import {
  DEFAULT_QUEUE_SIZE,
  InputPortBase,
  type IOPort,
  PANIC_MESSAGES,
  RESET_MESSAGES,
} from "../port.ts";
import { checkPort, formatAddress } from "./address.ts";
import { checkToken } from "./access.ts";
import { callBack, connect, type ConnectOptions } from "./server.ts";
import { resolveSocketOptions, type SocketPort } from "./socket_port.ts";

/** Options for {@linkcode ReconnectingPort}. */
export interface ReconnectOptions extends ConnectOptions {
  /**
   * First wait before reconnecting, in milliseconds; it doubles after each
   * failed attempt.
   * @default {100}
   */
  minDelay?: number;
  /**
   * Longest wait between attempts, in milliseconds.
   * @default {5000}
   */
  maxDelay?: number;
  /**
   * What `send` does while disconnected: `"queue"` holds up to
   * `maxPending` messages and sends them, in order, once connected again
   * (past that, `send` throws `QueueFullError`); `"reject"` throws
   * `PortClosedError` at once.
   * @default {"queue"}
   */
  whileDown?: "queue" | "reject";
  /**
   * Messages held while disconnected, at most.
   * @default {1024}
   */
  maxPending?: number;
  /** Called each time a connection is made. */
  onConnect?: (port: SocketPort) => void;
  /** Called each time the connection is lost, with the reason if known. */
  onDisconnect?: (reason?: unknown) => void;
}

/**
 * A port to a midisock or mido server that reconnects by itself. Iteration
 * goes on across reconnections and ends only when you close the port.
 *
 * Backoff: after a failed attempt or a lost connection it waits `minDelay`,
 * doubling up to `maxDelay`, with up to 20% random jitter so that many
 * clients do not come back at the same instant; a connection resets the
 * delay.
 *
 * While disconnected, `send` holds messages (bounded, `whileDown: "queue"`)
 * or refuses them (`whileDown: "reject"`). Messages the server had not read
 * when the connection broke may be lost: TCP cannot tell which.
 *
 * @example A client that rides out server restarts
 * ```ts ignore
 * import { message, ReconnectingPort } from "@x/midisock";
 *
 * await using port = new ReconnectingPort("localhost", 8080);
 * await port.send(message("note_on", { note: 60 })); // held until connected
 * for await (const msg of port) console.log(msg);
 * ```
 */
export class ReconnectingPort extends InputPortBase implements IOPort {
  readonly #hostname: string;
  readonly #port: number;
  readonly #options: ReconnectOptions;
  readonly #minDelay: number;
  readonly #maxDelay: number;
  readonly #maxPending: number;
  readonly #running: Promise<void>;
  #socket: SocketPort | undefined;
  #pending: Message[] = [];
  #closing: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  readonly #abort = new AbortController();

  /**
   * Starts connecting at once, in the background.
   *
   * @param host Host name or IP address.
   * @param port TCP port.
   * @param options Backoff, what to do while disconnected, and the options
   * of each connection.
   * @throws {RangeError} For a bad port, delay, bound or policy.
   * @throws {TypeError} For a bad token.
   */
  constructor(host: string, port: number, options: ReconnectOptions = {}) {
    super(options.queueSize ?? DEFAULT_QUEUE_SIZE);
    checkPort(port);
    resolveSocketOptions(options);
    if (options.token !== undefined) checkToken(options.token);
    const minDelay = options.minDelay ?? 100;
    const maxDelay = options.maxDelay ?? 5000;
    if (!(minDelay > 0) || !(maxDelay >= minDelay)) {
      throw new RangeError(
        `Delays must satisfy 0 < minDelay <= maxDelay: got ${minDelay} and ${maxDelay}`,
      );
    }
    const maxPending = options.maxPending ?? 1024;
    if (!Number.isSafeInteger(maxPending) || maxPending < 0) {
      throw new RangeError(
        `maxPending must be a non-negative integer: got ${maxPending}`,
      );
    }
    this.#hostname = host;
    this.#port = port;
    this.#options = options;
    this.#minDelay = minDelay;
    this.#maxDelay = maxDelay;
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

  async #run(): Promise<void> {
    let delay = this.#minDelay;
    while (this.#closing === undefined) {
      let socket: SocketPort | undefined;
      try {
        socket = await connect(this.#hostname, this.#port, {
          ...this.#options,
          signal: this.#abort.signal,
        });
      } catch (error) {
        if (error instanceof Deno.errors.NotCapable) {
          this.finish(error);
          return;
        }
      }
      if (socket !== undefined) {
        if (this.#closing !== undefined) {
          await socket.close();
          return;
        }
        delay = this.#minDelay;
        this.#socket = socket;
        callBack(this.#options.onConnect, socket);
        const held = this.#pending;
        this.#pending = [];
        // If these cannot go out, hold them again for the next connection.
        if (held.length > 0) {
          socket.sendAll(held).catch(() => this.#pending.unshift(...held));
        }
        for await (const msg of socket) {
          while (!this.deliver(msg) && !this.closed) await this.roomForMore();
        }
        this.#socket = undefined;
        if (this.#closing !== undefined) return;
        const reason = await socket.receive().then(
          () => undefined,
          (error: Error) => error.cause,
        );
        callBack(this.#options.onDisconnect, reason);
      }
      const jitter = 1 + Math.random() * 0.2;
      await this.#sleep(delay * jitter);
      delay = Math.min(delay * 2, this.#maxDelay);
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }

  /**
   * Sends a message now, or holds it while disconnected (see `whileDown`).
   *
   * @param msg The message.
   * @returns A promise that resolves once it is sent or held.
   * @throws {TypeError | RangeError} For a malformed message.
   * @throws {PortClosedError} When closed, or disconnected with
   * `whileDown: "reject"`.
   * @throws {QueueFullError} When `maxPending` messages are held already.
   */
  send(msg: Message): Promise<void> {
    return this.sendAll([msg]);
  }

  /**
   * Sends several messages in one write, or holds them while disconnected.
   *
   * @param messages The messages; all are checked before any is sent.
   * @returns A promise that resolves once they are sent or held.
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
      return socket.sendAll(list).catch((error) =>
        error instanceof PortClosedError
          ? this.#hold(list)
          : Promise.reject(error)
      );
    }
    return this.#hold(list);
  }

  #hold(messages: Message[]): Promise<void> {
    if (this.#options.whileDown === "reject") {
      return Promise.reject(
        new PortClosedError(this.name, {
          cause: new Error('Not connected (whileDown: "reject")'),
        }),
      );
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
   * Stops reconnecting and closes the connection; held messages are
   * dropped. Closing twice does nothing.
   *
   * @returns A promise that resolves once everything is closed.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.finish(undefined, true);
      this.#pending = [];
      this.#wake?.();
      this.#abort.abort(new PortClosedError(this.name));
      await this.#socket?.close();
      await this.#running;
    })();
    return this.#closing;
  }
}
