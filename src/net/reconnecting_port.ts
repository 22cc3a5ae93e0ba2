/**
 * A client port that survives its server going away: it reconnects with a
 * backoff, holds or drops what is sent meanwhile, watches the link with a
 * heartbeat, and carries the timed mode across reconnections.
 *
 * @module
 */

import { InputTap } from "../_tap.ts";
import type { Message } from "../codec/messages.ts";
import { checkMessages } from "../codec/_check.ts";
import { PortClosedError, QueueFullError, RefusedError } from "../errors.ts";
import {
  DEFAULT_QUEUE_SIZE,
  InputPortBase,
  type IOPort,
  PANIC_MESSAGES,
  RESET_MESSAGES,
} from "../port.ts";
import { type Batch, SINK, type Sink, SOURCE, type Source } from "../sink.ts";
import { type Backoff, exponentialBackoff } from "../backoff.ts";
import { type ClockTimer, systemClock, type TimeSource } from "../clock.ts";
import { positiveMs } from "../_policy.ts";
import { checkToken } from "../gate.ts";
import { sleep } from "../_time.ts";
import { checkPort, formatAddress } from "../address.ts";
import { connect, type ConnectOptions } from "./connect.ts";
import { resolveSocketOptions } from "./_settings.ts";
import { batchCount, checkClock } from "./_timed.ts";
import type { SocketPort } from "./socket_port.ts";
import { callBack } from "../_call.ts";
import { describeError, plural } from "../_text.ts";

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
   * On a hub, what the hub routes to the port while it is disconnected is
   * held the same way, and what cannot be held is counted in `undelivered`
   * (a hub's write cannot throw).
   * @default {"queue"}
   */
  whileDown?: "queue" | "reject" | "drop";
  /**
   * Messages held while disconnected, at most.
   * @default {1024}
   */
  maxPending?: number;
  /**
   * Watch the link: the connection counts as dead once the server has not
   * answered for three times this many milliseconds, however much is being
   * sent, and it is then closed and made again. A dead link is so noticed
   * within three heartbeats and a round trip; without a heartbeat, only
   * when TCP gives up, which can take many minutes. `false` turns it off.
   *
   * The answers: with a server in the timed mode (a midisock server; see
   * `timed`), those to the clock pings, every 100 ms, and the server's own
   * count of what it received. With a midisock server that is not, the
   * port sends active sensing, one at a time, 110 ms after each answer (a
   * midisock hub answers; such a server counts only once it has answered
   * once, and gets no more after eight unanswered). A mido server answers
   * nothing and gets nothing: its link is never counted dead.
   * @default {1000}
   */
  heartbeat?: number | false;
  /**
   * Ask each server for the timed mode (see `connect`): the heartbeat's
   * answers and the count of what the server received come with it, and on
   * a hub the port carries when each message happened, both ways, across
   * reconnections.
   * @default {true}
   */
  timed?: boolean;
  /**
   * The port's clock: the heartbeat, the waits between attempts and the
   * timed mode read it. On a hub, give it the hub's (`hub.clock`).
   * @default {systemClock}
   */
  clock?: TimeSource;
  /**
   * Called each time a connection is made or lost, and before each wait
   * to reconnect; {@linkcode formatReconnectEvent} words each.
   */
  onEvent?: (event: ReconnectEvent) => void;
}

/** What happened to a {@linkcode ReconnectingPort}'s connection. */
export type ReconnectEvent =
  | {
    /**
     * A connection is made. With no token, a midisock server may still
     * refuse it: `socket.admitted` says.
     */
    readonly type: "connect";
    /** `host:port` of the server. */
    readonly server: string;
    /** The connection. */
    readonly socket: SocketPort;
  }
  | {
    /** The connection is lost. */
    readonly type: "disconnect";
    readonly server: string;
    /** Why, when known: `undefined` when the server closed it. */
    readonly reason: unknown;
    /** Messages sent on it that may not have arrived (see `unconfirmed`). */
    readonly unconfirmed: number;
  }
  | {
    /** The port waits to try again. */
    readonly type: "retry";
    readonly server: string;
    /** How long, in milliseconds. */
    readonly delay: number;
    /** Why the last attempt failed, or the connection ended. */
    readonly reason: unknown;
  };

/**
 * Why connecting to `server` failed, in one line for people.
 *
 * @param server `host:port` of the server.
 * @param error What `connect` threw.
 * @returns The line.
 *
 * @example Wording a failure
 * ```ts
 * import assert from "node:assert/strict";
 * import { describeConnectError } from "@x/midisock/net";
 *
 * assert.equal(
 *   describeConnectError("127.0.0.1:8080", new Deno.errors.ConnectionRefused("os error 111")),
 *   "cannot connect to 127.0.0.1:8080: connection refused (is a server running there?)",
 * );
 * ```
 */
export function describeConnectError(server: string, error: unknown): string {
  if (error instanceof RefusedError) return describeError(error);
  const why = error instanceof Deno.errors.ConnectionRefused
    ? "connection refused (is a server running there?)"
    : describeError(error);
  return `cannot connect to ${server}: ${why}`;
}

/**
 * Words what happened to a reconnecting port in one line, as `midisock
 * connect --retry` prints it.
 *
 * @param event The event.
 * @returns The line.
 *
 * @example The lines of a server restart
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatReconnectEvent } from "@x/midisock/net";
 *
 * const server = "127.0.0.1:8080";
 * assert.equal(
 *   formatReconnectEvent({ type: "disconnect", server, reason: undefined, unconfirmed: 2 }),
 *   "disconnected from 127.0.0.1:8080 (2 messages may be lost)",
 * );
 * assert.equal(
 *   formatReconnectEvent({ type: "retry", server, delay: 400, reason: undefined }),
 *   "retrying in 0.4s: the server closed the connection",
 * );
 * ```
 */
export function formatReconnectEvent(event: ReconnectEvent): string {
  switch (event.type) {
    case "connect":
      return `connected to ${event.server}`;
    case "disconnect": {
      const lost = event.unconfirmed > 0
        ? ` (${plural(event.unconfirmed, "message")} may be lost)`
        : "";
      return `disconnected from ${event.server}${lost}`;
    }
    case "retry":
      return `retrying in ${(event.delay / 1000).toFixed(1)}s: ${
        event.reason === undefined
          ? "the server closed the connection"
          : describeConnectError(event.server, event.reason)
      }`;
  }
}

/** The heartbeat when none is given, in ms. */
export const DEFAULT_HEARTBEAT_MS = 1000;
/**
 * Probing a server that is not timed with active sensing: one probe at a
 * time, the next this long after the answer to the last. A midisock hub
 * answers a client's active sensing at most every 100 ms (its
 * `ANSWER_MS`): waiting longer than that means every probe is answered, so
 * each answer is known to be for the probe that waits.
 */
const PROBE_GAP_MS = 110;
/** A probe never answered on this connection is sent again this often... */
const REPROBE_MS = 500;
/** ...this many times in all, then the server gets no more. */
const PROBES_UNANSWERED = 8;
const ACTIVE_SENSING: Message = Object.freeze({
  type: "active_sensing",
  time: 0,
});
const SENSING = 0xfe;
const RESOLVED = Promise.resolve();

/**
 * A port to a midisock or mido server that reconnects by itself. Iteration
 * goes on across reconnections and ends only when you close the port.
 *
 * While disconnected, `send` holds messages (bounded, `whileDown:
 * "queue"`), refuses them (`"reject"`) or drops and counts them (`"drop"`).
 * Messages the server had not read when the connection broke are lost:
 * TCP cannot give them back. The heartbeat (on by default) notices a dead
 * link within three heartbeats while the port keeps sending, and counts
 * what the server had not confirmed by then in `unconfirmed` (reported to
 * a `"disconnect"` event): with a midisock server in the timed mode, the server's
 * own count of what it received.
 *
 * On a hub (`hub.add(port, { kind: "link" })`, with `clock: hub.clock`),
 * it is a timed endpoint like a timed `SocketPort`: what it reads enters
 * the hub at the time it happened at the server, what the hub routes to it
 * goes out with its time, across reconnections.
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
 *
 * @example Nothing lost without a word
 * ```ts
 * import assert from "node:assert/strict";
 * import { message, PortServer, ReconnectingPort } from "@x/midisock";
 *
 * await using server = new PortServer("127.0.0.1", 0);
 * const heard = server.receive();
 * await using port = new ReconnectingPort("127.0.0.1", server.port);
 * await port.send(message("note_on", { note: 60 }));
 * assert.deepEqual(await heard, message("note_on", { note: 60 }));
 * // Confirmed by the server's answer to a ping, a moment later.
 * while (port.unconfirmed > 0) {
 *   await new Promise((resolve) => setTimeout(resolve, 5));
 * }
 * ```
 */
export class ReconnectingPort extends InputPortBase implements IOPort {
  readonly #hostname: string;
  readonly #port: number;
  readonly #options: ReconnectOptions;
  readonly #backoff: Backoff;
  readonly #maxPending: number;
  readonly #heartbeat: number | undefined;
  readonly #timed: boolean;
  readonly #clock: TimeSource;
  readonly #running: Promise<void>;
  readonly #stop = new AbortController();
  readonly #sink: Sink;
  #socket: SocketPort | undefined;
  #pending: Message[] = [];
  #closing: Promise<void> | undefined;
  #undelivered = 0;
  /** The sink's progress over connections gone by. */
  #progress = 0;
  // Where the input goes: the reader's queue, or a hub that took it over.
  readonly #tap: InputTap;
  // The heartbeat of the connection now, with a server not in timed mode.
  #connectedAt = 0;
  /** Messages sent on this connection. */
  #sent = 0;
  /** `#sent` as of the last answered probe. */
  #confirmed = 0;
  /** `#sent` at each probe not answered yet, oldest first. */
  #probes: number[] = [];
  #probesSent = 0;
  #probedAt = 0;
  /** When the next probe may go, once none waits for its answer. */
  #probeAt = 0;
  #answeredAt: number | undefined;
  #watchTimer: ClockTimer | undefined;

  /**
   * Starts connecting at once, in the background.
   *
   * @param host Host name or IP address.
   * @param port TCP port.
   * @param options Backoff, what to do while disconnected, heartbeat, and
   * the options of each connection.
   * @throws {RangeError} For a bad port, delay, bound or policy.
   * @throws {TypeError} For a bad token or clock.
   */
  constructor(host: string, port: number, options: ReconnectOptions = {}) {
    super(options.queueSize ?? DEFAULT_QUEUE_SIZE);
    checkPort(port);
    resolveSocketOptions(options);
    if (options.token !== undefined) checkToken(options.token);
    this.#clock = checkClock(options.clock ?? systemClock);
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
    const heartbeat = options.heartbeat ?? DEFAULT_HEARTBEAT_MS;
    this.#heartbeat = heartbeat === false
      ? undefined
      : positiveMs("heartbeat", heartbeat);
    this.#timed = options.timed ?? true;
    this.#hostname = host;
    this.#port = port;
    this.#options = options;
    this.#maxPending = maxPending;
    this.#sink = this.#makeSink();
    this.#tap = new InputTap({
      name: this.name,
      closed: () => this.closed,
      pending: () => this.iterPending(),
      deliver: (msg) => this.deliver(msg),
      room: () => this.roomForMore(),
    });
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

  /** The connection now, when one is up. */
  get socket(): SocketPort | undefined {
    return this.connected ? this.#socket : undefined;
  }

  /** Messages held for the next connection. */
  get pending(): number {
    return this.#pending.length;
  }

  /**
   * Messages dropped while disconnected (`whileDown: "drop"`, or what a hub
   * routed to the port that could not be held).
   */
  get undelivered(): number {
    return this.#undelivered;
  }

  /**
   * Messages sent on the current connection that the server has not
   * confirmed: those a link that died now would have lost, at most. With
   * a server in the timed mode, those it had not received when it last
   * answered a ping (every 100 ms); with another midisock server and a
   * heartbeat, those sent since the last answered active sensing; 0 with
   * neither (nothing is known).
   */
  get unconfirmed(): number {
    const socket = this.#socket;
    return socket === undefined ? 0 : this.#unconfirmedOn(socket);
  }

  #unconfirmedOn(socket: SocketPort): number {
    const timing = socket.timing;
    if (timing !== undefined) return timing.unconfirmed;
    if (this.#heartbeat === undefined) return 0;
    return this.#sent - this.#confirmed;
  }

  /** What a hub writes to: routed batches, carried on to the server. */
  get [SINK](): Sink {
    return this.#sink;
  }

  /**
   * What a hub reads from: the server's messages as framed bytes, with
   * when they happened, across reconnections (messages queued already go
   * first).
   */
  get [SOURCE](): Source {
    return this.#tap.source;
  }

  #makeSink(): Sink {
    // deno-lint-ignore no-this-alias
    const port = this;
    const sinkOf = () => {
      const socket = port.#socket;
      return socket === undefined || socket.closed ? undefined : socket[SINK];
    };
    return {
      write: (batch: Batch): boolean => this.#fromHub(batch),
      get queuedBytes() {
        return sinkOf()?.queuedBytes ?? 0;
      },
      get copiedBytes() {
        return sinkOf()?.copiedBytes ?? 0;
      },
      get progress() {
        return port.#progress + (sinkOf()?.progress ?? 0);
      },
      slow: "drop",
      drained: () => sinkOf()?.drained().catch(() => {}) ?? RESOLVED,
      // While disconnected, batches are held with no time to carry: timed
      // as the next connection will likely be, so that nothing is delayed
      // by the hub only to be held.
      get timed() {
        return sinkOf()?.timed ?? port.#timed;
      },
    };
  }

  /** A batch the hub routed to the server. */
  #fromHub(batch: Batch): boolean {
    if (this.#closing !== undefined || this.closed) return false;
    const socket = this.#socket;
    if (socket !== undefined && !socket.closed && socket[SINK].write(batch)) {
      if (this.#heartbeat !== undefined) this.#sent += batchCount(batch);
      return true;
    }
    const messages = batch.messages;
    if (
      this.#options.whileDown === undefined ||
      this.#options.whileDown === "queue"
    ) {
      if (this.#pending.length + messages.length <= this.#maxPending) {
        this.#pending.push(...messages);
        return true;
      }
    }
    this.#undelivered += messages.length;
    return true;
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
          timed: this.#timed,
          clock: this.#clock,
          signal: stopped,
        });
      } catch (error) {
        if (error instanceof Deno.errors.NotCapable) {
          this.finish(error);
          this.#tap.end(error);
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
        this.#say({
          type: "disconnect",
          server: this.name,
          reason,
          unconfirmed: this.#unconfirmedOn(socket),
        });
      }
      const delay = this.#backoff(++attempt);
      this.#say({ type: "retry", server: this.name, delay, reason });
      await sleep(delay, stopped, this.#clock);
    }
  }

  #say(event: ReconnectEvent): void {
    callBack(this.#options.onEvent, event);
  }

  /** Uses one connection until it ends; resolves to why it ended. */
  async #serve(socket: SocketPort): Promise<unknown> {
    this.#socket = socket;
    this.#connectedAt = this.#clock.now();
    this.#sent = this.#confirmed = 0;
    this.#probes = [];
    this.#probesSent = 0;
    this.#probeAt = this.#connectedAt;
    this.#answeredAt = undefined;
    const ended = Promise.withResolvers<unknown>();
    socket[SOURCE].attach(
      (framed, at) => this.#fromServer(socket, framed, at),
      (cause) => ended.resolve(cause),
    );
    this.#say({ type: "connect", server: this.name, socket });
    const held = this.#pending;
    this.#pending = [];
    if (held.length > 0) this.#write(socket, held).catch(() => {});
    this.#tick(socket);
    try {
      return await ended.promise;
    } finally {
      this.#watchTimer?.cancel();
      this.#watchTimer = undefined;
      this.#progress += 1 + socket[SINK].progress;
      this.#socket = undefined;
    }
  }

  /** What the server sent: to the hub, or to the port's own queue. */
  #fromServer(
    socket: SocketPort,
    framed: Uint8Array,
    at: number | undefined,
  ): void | Promise<void> {
    // Without the timed mode, the server's active sensing answers probes
    // (every 0xFE byte of framed MIDI is one: data bytes are under 0x80).
    if (
      this.#heartbeat !== undefined && socket.timing === undefined &&
      framed.includes(SENSING)
    ) {
      for (let i = framed.indexOf(SENSING); i >= 0;) {
        this.#answered(socket);
        i = framed.indexOf(SENSING, i + 1);
      }
      framed = framed.filter((byte) => byte !== SENSING);
      if (framed.length === 0) return;
    }
    return this.#tap.give(framed, at);
  }

  /**
   * The server answered a probe: what was sent before it is through. (Active
   * sensing the server's own devices send may be taken for an answer: the
   * count is then early by what was sent in one round trip.)
   */
  #answered(socket: SocketPort): void {
    const now = this.#clock.now();
    this.#answeredAt = now;
    const confirmed = this.#probes.shift();
    if (confirmed === undefined) return;
    this.#confirmed = confirmed;
    if (this.#probes.length === 0) {
      this.#probeAt = now + PROBE_GAP_MS;
      this.#tick(socket);
    }
  }

  /**
   * When the server was last heard answering; undefined while it is not
   * known to answer (a server that is not timed and has not answered yet).
   */
  #heardAt(socket: SocketPort): number | undefined {
    const timing = socket.timing;
    if (timing !== undefined) return timing.answeredAt ?? this.#connectedAt;
    return this.#answeredAt;
  }

  /**
   * Watches a connection: closes it once the server has not answered for
   * three heartbeats, probes a server that is not timed when a probe is
   * due, and sets the timer for the next of these.
   */
  #tick(socket: SocketPort): void {
    const heartbeat = this.#heartbeat;
    if (heartbeat === undefined) return;
    this.#watchTimer?.cancel();
    this.#watchTimer = undefined;
    if (this.#socket !== socket || socket.closed) return;
    const now = this.#clock.now();
    const heard = this.#heardAt(socket);
    if (heard !== undefined && now - heard >= 3 * heartbeat) {
      socket.abort(
        new Deno.errors.TimedOut(
          `No answer from ${this.name} for ${Math.round(now - heard)} ms`,
        ),
      ).catch(() => {});
      return;
    }
    const probeAt = this.#nextProbe(socket);
    if (probeAt <= now) this.#probe(socket, now);
    let next = Math.max(this.#nextProbe(socket), now + 1);
    if (heard !== undefined) next = Math.min(next, heard + 3 * heartbeat);
    // Look again at least every heartbeat (the server may turn out timed,
    // or greet us, meanwhile).
    next = Math.min(next, now + heartbeat);
    this.#watchTimer = this.#clock.setTimer(
      () => this.#tick(socket),
      next - now,
    );
  }

  /** When the next probe is due (Infinity: none is). */
  #nextProbe(socket: SocketPort): number {
    if (socket.timing !== undefined || !socket.greeted) return Infinity;
    if (this.#probes.length === 0) {
      return Math.max(this.#probeAt, this.#connectedAt + PROBE_GAP_MS);
    }
    // One waits for its answer. A server that never answered is asked
    // again now and then; one that did will answer, or the link is dead.
    if (
      this.#answeredAt !== undefined ||
      this.#probesSent >= PROBES_UNANSWERED
    ) {
      return Infinity;
    }
    return this.#probedAt + REPROBE_MS;
  }

  /** Sends active sensing to a midisock server that is not timed. */
  #probe(socket: SocketPort, now: number): void {
    if (!socket.writable) return;
    this.#probes.push(this.#sent);
    this.#probesSent++;
    this.#probedAt = now;
    socket.send(ACTIVE_SENSING).catch(() => {});
  }

  /**
   * Sends on a connection. Messages the connection no longer takes are
   * held again; those it took count as sent (and, if it breaks before the
   * server confirms them, as unconfirmed).
   */
  #write(socket: SocketPort, messages: Message[]): Promise<void> {
    if (!socket.writable || socket.closed) return this.#hold(messages);
    const sending = socket.sendAll(messages);
    if (this.#heartbeat !== undefined) this.#sent += messages.length;
    return sending.catch((error) => {
      // Taken, then the connection broke: counted in `unconfirmed`.
      if (error instanceof PortClosedError) return;
      throw error;
    });
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
      this.#tap.end(undefined);
      this.#pending = [];
      this.#stop.abort(new PortClosedError(this.name));
      await this.#socket?.close();
      await this.#running;
    })();
    return this.#closing;
  }
}
