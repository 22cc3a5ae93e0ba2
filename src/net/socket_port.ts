/**
 * One TCP connection as a MIDI port: what `connect()` and
 * `PortServer.accept()` give.
 *
 * @module
 */

import { InputTap } from "../_tap.ts";
import { encodedLength, encodeInto } from "../codec/encode.ts";
import { checkMessage, type Message } from "../codec/messages.ts";
import { checkMessages } from "../codec/_check.ts";
import { decodeFramed, Framer } from "../codec/_framer.ts";
import { PortClosedError, QueueFullError, RefusedError } from "../errors.ts";
import {
  InputPortBase,
  type IOPort,
  PANIC_MESSAGES,
  RESET_MESSAGES,
} from "../port.ts";
import { type Batch, SINK, type Sink, SOURCE, type Source } from "../sink.ts";
import { formatAddress } from "../address.ts";
import {
  HTTP_ON_MIDI,
  HTTP_REFUSAL,
  okLine,
  readReply,
  readRequest,
  TLS_NOT_SERVED,
  TLS_ON_PLAIN,
} from "./_hello.ts";
import {
  resolveSocketOptions,
  type SocketOptions,
  type SocketSettings,
} from "./_settings.ts";
import { ByteTransport, type Preamble } from "./_transport.ts";
import { callBack } from "../_call.ts";
import { systemClock, type TimeSource } from "../clock.ts";
import { putTimeFrame, TIME_FRAME_BYTES } from "../codec/_timed.ts";
import {
  batchCount,
  checkClock,
  type SocketTiming,
  TIMED,
  TimedLink,
} from "./_timed.ts";

export type { PendingRead, Preamble } from "./_transport.ts";
export type { SocketTiming } from "./_timed.ts";
export { DEFAULT_MAX_QUEUED_BYTES, type SocketOptions } from "./_settings.ts";
export type { SysexPolicy } from "../_policy.ts";

/** Options for the {@linkcode SocketPort} constructor. */
export interface SocketPortOptions extends SocketOptions {
  /**
   * The port's name.
   * @default {"host:port" of the peer}
   */
  name?: string;
  /**
   * What was read from the connection before it was handed over (a
   * handshake that read past its end): parsed before anything else.
   */
  preamble?: Preamble;
  /**
   * On the server's end: the features it takes from a client's hello
   * (those it offers and the server names here).
   * @default {[]}
   */
  features?: readonly string[];
  /**
   * On the client's end: the features its hello offered (what `connect`
   * said). With `"timed"` among them, the port counts what it sends from
   * the start, for the timed mode's confirmations.
   * @default {[]}
   */
  offered?: readonly string[];
  /**
   * The clock of the timed mode: the times this port writes and reads are
   * on it. On a hub, give the hub's (`hub.clock`).
   * @default {systemClock}
   */
  clock?: TimeSource;
  /**
   * Which end of the connection this port is. A client reads a server's
   * answer (`MIDISOCK-OK` or `MIDISOCK-REFUSED`) at the start of the
   * stream; a server answers a hello, and closes a connection that starts
   * a TLS handshake or an HTTP request.
   * @default {"client"}
   */
  side?: "client" | "server";
}

/** Below this many queued bytes, `send` resolves at once. */
const HIGH_WATER = 64 * 1024;
const RESOLVED = Promise.resolve();

/**
 * A MIDI port over one TCP connection, speaking mido's protocol: a plain
 * MIDI 1.0 byte stream, each message whole. Get one from `connect()` or
 * `PortServer.accept()`, or wrap any `Deno.Conn`.
 *
 * Reading: messages are parsed as they arrive (see `Parser`) and wait in a
 * bounded queue; iterate with `for await`, or use `receive()`, `poll()`,
 * `iterPending()`. When the peer goes away, iteration ends after the
 * messages that came before; a message it left unfinished is dropped. A
 * server's refusal line (`MIDISOCK-REFUSED code: reason`) at the start of
 * the stream closes the port with a {@linkcode RefusedError} as the cause
 * (and `refused` says it); `admitted` tells when a server took the
 * connection in.
 *
 * Writing: `send` writes each message whole; messages sent while a write is
 * under way go out together in the next one. TCP_NODELAY is on, so nothing
 * waits for Nagle's algorithm. Writes never interleave.
 *
 * The timed mode: when a client offers `"timed"` in its hello
 * (`connect(host, port, { timed: true })`) and the server takes it (a
 * `PortServer` does by default), both ends carry time: each batch of
 * messages goes out after a time frame (a few bytes a MIDI parser skips),
 * and the client pings the server every 100 ms to learn how the server's
 * clock reads against its own (`timing`). On a hub, such a port is a timed
 * endpoint: what it reads enters the hub at the time it happened at the
 * other end (mapped to this end's clock), and what the hub routes to it
 * goes out at once with its time, for the other end's hub to play out.
 * Used on its own, `send` stamps messages with the time of the call, and
 * what is read carries no time (`for await` gives messages only). A mido
 * peer, or a midisock peer that did not ask for it, sees the plain stream.
 *
 * @example Sending to a server and reading its replies
 * ```ts ignore
 * import { connect, message } from "@x/midisock";
 *
 * await using port = await connect("localhost", 8080);
 * await port.send(message("note_on", { note: 60 }));
 * for await (const msg of port) console.log(msg);
 * ```
 */
export class SocketPort extends InputPortBase implements IOPort {
  readonly #transport: ByteTransport;
  readonly #name: string;
  readonly #framer: Framer;
  readonly #settings: SocketSettings;
  readonly #reading: Promise<unknown>;
  readonly #finished: Promise<void>;
  /** The start of the stream while it may still be a line. */
  #start: Uint8Array | undefined = new Uint8Array(0);
  readonly #admitted = Promise.withResolvers<readonly string[]>();
  /** The features agreed on, and those this end takes (server). */
  #features: readonly string[] = [];
  readonly #takes: readonly string[];
  #refusal: RefusedError | undefined;
  #protocolError: Error | undefined;
  readonly #onProtocolError: Preamble["refuse"];
  readonly #server: boolean;
  readonly #sink: Sink;
  /** Where input goes: the reader's queue, or a hub that took it over. */
  readonly #tap: InputTap;
  /** Why the port was aborted, for the end of its input. */
  #aborted: unknown;
  readonly #clock: TimeSource;
  /** The timed mode: made when offered (client) or agreed (server). */
  #timed: TimedLink | undefined;
  /** Whether both ends agreed on the timed mode. */
  #timedOn = false;
  /** A client that offered it and learnt the server does not take it. */
  #timedDeclined = false;
  /** What the timed mode read of the current chunk. */
  #timedMessages: Message[] | undefined;
  #timedWaiting: Promise<void> | undefined;
  #greeted = false;

  /**
   * Wraps a connection. It sets TCP_NODELAY and keepalive on TCP sockets and
   * starts reading at once.
   *
   * @param conn The connection; the port owns it from now on.
   * @param options Queue bounds, policies, name and what was read already.
   * @throws {RangeError} For a bound or policy out of range.
   */
  constructor(conn: Deno.Conn, options: SocketPortOptions = {}) {
    const settings = resolveSocketOptions(options);
    super(settings.queueSize);
    this.#settings = settings;
    this.#server = options.side === "server";
    this.#framer = new Framer(settings.maxSysexLength);
    this.#clock = checkClock(options.clock ?? systemClock);
    this.#name = options.name ??
      formatAddress(conn.remoteAddr as Deno.NetAddr);
    this.#transport = new ByteTransport(conn, {
      name: this.#name,
      preamble: options.preamble,
      highWater: Math.min(HIGH_WATER, settings.maxQueuedBytes),
    });
    this.#sink = this.#makeSink();
    this.#tap = new InputTap({
      name: this.#name,
      closed: () => this.closed,
      pending: () => this.iterPending(),
      deliver: (msg) => this.deliver(msg),
      room: () => this.roomForMore(),
    });
    this.#onProtocolError = options.preamble?.refuse;
    this.#admitted.promise.catch(() => {});
    this.#takes = options.features ?? [];
    if (!this.#server && options.offered?.includes(TIMED)) {
      this.#timed = this.#timedLink();
    }
    const admitted = options.preamble?.admitted;
    if (admitted !== undefined || this.#server) {
      this.#greeted = options.preamble?.greeted ?? false;
      this.#agree(admitted ?? []);
      if (admitted !== undefined) this.#start = undefined;
    }
    this.#reading = this.#transport.read((chunk) => this.#read(chunk));
    this.#finished = this.#reading.then((cause) => {
      this.#timed?.stop();
      cause = this.#refusal ?? this.#protocolError ?? this.#aborted ?? cause;
      this.#admitted.reject(
        new PortClosedError(
          this.#name,
          cause === undefined ? undefined : { cause },
        ),
      );
      this.finish(cause);
      this.#tap.end(cause);
      return this.#transport.close();
    });
  }

  /** The peer's address, `host:port`. */
  get name(): string {
    return this.#name;
  }

  /** The peer's address. */
  get remoteAddr(): Deno.NetAddr {
    return this.#transport.conn.remoteAddr as Deno.NetAddr;
  }

  /** This end's address. */
  get localAddr(): Deno.NetAddr {
    return this.#transport.conn.localAddr as Deno.NetAddr;
  }

  /**
   * Whether the connection still takes writes: false once it is closing,
   * closed, or a write failed.
   */
  get writable(): boolean {
    return this.#transport.writable;
  }

  /** Bytes waiting to be written to the peer. */
  get queuedBytes(): number {
    return this.#transport.queuedBytes;
  }

  /**
   * How many messages from the peer were dropped: unfinished, cut short or
   * oversized.
   */
  get dropped(): number {
    return this.#framer.dropped;
  }

  /**
   * The server's refusal, when it sent one at the start of the stream (the
   * port is then closed).
   */
  get refused(): RefusedError | undefined {
    return this.#refusal;
  }

  /**
   * Resolves once the server has taken this connection in, to the features
   * agreed on; rejects with the server's {@linkcode RefusedError} when it
   * refused. A midisock server answers a client's hello at once (`connect`
   * says hello). A server that answers no hello (mido's) never says either:
   * the promise then resolves when it first sends something, and waits
   * while it sends nothing. Rejects with a {@linkcode PortClosedError} when
   * the connection ends before any of that. On the server's end of a
   * connection, it is resolved already.
   *
   * @example Waiting to be let in
   * ```ts
   * import assert from "node:assert/strict";
   * import { connect, PortServer } from "@x/midisock";
   *
   * await using server = new PortServer("127.0.0.1", 0);
   * await using port = await connect("127.0.0.1", server.port);
   * assert.deepEqual(await port.admitted, []);
   * ```
   */
  get admitted(): Promise<readonly string[]> {
    return this.#admitted.promise;
  }

  /**
   * The features both ends agreed on at the start of the connection (the
   * client offered them in its hello, the server took them): none until
   * then, and none with a peer that says no hello (mido).
   */
  get features(): readonly string[] {
    return this.#features;
  }

  #agree(features: readonly string[]): void {
    this.#features = Object.freeze([...features]);
    this.#admitted.resolve(this.#features);
    if (!this.#features.includes(TIMED)) {
      this.#timedDeclined = true;
      return;
    }
    this.#timed ??= this.#timedLink();
    this.#timedDeclined = false;
    this.#timedOn = true;
    this.#timed.start();
  }

  #timedLink(): TimedLink {
    const transport = this.#transport;
    const limit = this.#settings.maxQueuedBytes;
    return new TimedLink(this.#clock, this.#server, this.#framer, {
      push: (frame) => transport.push(frame),
      get room() {
        return transport.queuedBytes < limit;
      },
      take: (framed, at) => {
        const take = this.#tap.take;
        if (take !== undefined) {
          const waiting = take(framed.slice(), at);
          if (waiting !== undefined) this.#timedWaiting = waiting;
        } else {
          decodeFramed(framed, this.#timedMessages ??= []);
        }
      },
    });
  }

  /**
   * Whether the server answered the hello (`MIDISOCK-OK`): a midisock
   * server. A server that answers no hello (mido's) never does. On the
   * server's end, false.
   */
  get greeted(): boolean {
    return this.#greeted;
  }

  /**
   * The timed mode, seen from the client's end (undefined elsewhere, and
   * before both ends agreed on it): how the server's clock reads against
   * this port's, and how much of what was sent the server has confirmed.
   *
   * @example A timed client learns the server's clock
   * ```ts
   * import assert from "node:assert/strict";
   * import { connect, PortServer } from "@x/midisock";
   *
   * await using server = new PortServer("127.0.0.1", 0);
   * server.poll();
   * await using port = await connect("127.0.0.1", server.port, {
   *   timed: true,
   * });
   * assert.deepEqual(await port.admitted, ["timed"]);
   * while (port.timing?.answeredAt === undefined) {
   *   await new Promise((resolve) => setTimeout(resolve, 5));
   * }
   * assert.ok(port.timing.roundTrip < 1000);
   * assert.equal(port.timing.unconfirmed, 0);
   * ```
   */
  get timing(): SocketTiming | undefined {
    return this.#timedOn && !this.#server ? this.#timed : undefined;
  }

  /**
   * Resolves once the connection is closed, by either end, and every
   * message the peer sent has been parsed.
   */
  get finished(): Promise<void> {
    return this.#finished;
  }

  /** What the hub writes to: routed batches, queued without a promise. */
  get [SINK](): Sink {
    return this.#sink;
  }

  /**
   * What a hub reads from: the input as framed bytes, in place of the
   * queue (messages queued already go first).
   */
  get [SOURCE](): Source {
    return this.#tap.source;
  }

  #makeSink(): Sink {
    const transport = this.#transport;
    // deno-lint-ignore no-this-alias
    const port = this;
    return {
      write: (batch: Batch): boolean => {
        const timed = this.#timed;
        if (timed === undefined) return transport.push(batch.bytes);
        if (!transport.writable) return false;
        timed.sent += batchCount(batch);
        if (this.#timedOn) {
          const us = timed.stamp(batch.at ?? this.#clock.now());
          if (
            us !== undefined &&
            !transport.append(TIME_FRAME_BYTES, putTimeFrame, us)
          ) {
            return false;
          }
        }
        return transport.push(batch.bytes);
      },
      // A client that asked for the timed mode is timed until the server
      // says it is not: what it sends meanwhile goes at once, unstamped.
      get timed() {
        return port.#timed !== undefined && !port.#timedDeclined;
      },
      get queuedBytes() {
        return transport.queuedBytes;
      },
      get copiedBytes() {
        return transport.copiedBytes;
      },
      get progress() {
        return transport.progress;
      },
      slow: "drop",
      drained: () => transport.drained(),
    };
  }

  /** Parses one chunk; waits only when the reader's queue is full. */
  #read(chunk: Uint8Array): void | Promise<void> {
    // A connection refused for what it started with: nothing more of it.
    if (this.#protocolError !== undefined) return;
    if (this.#start !== undefined) {
      const rest = this.#startOfStream(chunk);
      if (rest === undefined) return;
      chunk = rest;
    }
    if (this.#timedOn) return this.#readTimed(chunk);
    const framed = this.#framer.frame(chunk);
    if (framed.length === 0) return;
    return this.#tap.give(framed);
  }

  /** `#read` in the timed mode: MIDI with its time, pings and pongs. */
  #readTimed(chunk: Uint8Array): void | Promise<void> {
    this.#timed!.read(chunk);
    const waiting = this.#timedWaiting;
    const messages = this.#timedMessages;
    this.#timedWaiting = this.#timedMessages = undefined;
    if (messages !== undefined) return this.#tap.giveMessages(messages);
    return waiting;
  }

  /**
   * Looks at the start of the stream for what a midisock server or a TLS
   * server says before MIDI: returns the MIDI bytes to parse, or undefined
   * while it cannot tell yet (or the stream is over for MIDI).
   */
  #startOfStream(chunk: Uint8Array): Uint8Array | undefined {
    const seen = new Uint8Array(this.#start!.length + chunk.length);
    seen.set(this.#start!);
    seen.set(chunk, this.#start!.length);
    if (this.#server) return this.#startOfRequest(seen);
    const reply = readReply(seen);
    switch (reply.kind) {
      case "partial":
        this.#start = seen;
        return undefined;
      case "ok":
        this.#start = undefined;
        this.#greeted = true;
        this.#agree(reply.features);
        return reply.rest;
      case "midi":
        // A server that answers no hello (mido): it sends MIDI, so it let
        // the connection in.
        this.#start = undefined;
        this.#agree([]);
        return seen;
      case "refused":
      case "tls":
        this.#start = undefined;
        this.#refusal = reply.kind === "tls"
          ? new RefusedError(this.#name, "it speaks TLS: connect with TLS", {
            code: "protocol",
          })
          : new RefusedError(this.#name, reply.reason, { code: reply.code });
        this.#admitted.reject(this.#refusal);
        this.finish(this.#refusal);
        this.#transport.abort();
        return undefined;
    }
  }

  /** `#startOfStream` for the server's end of a connection. */
  #startOfRequest(seen: Uint8Array): Uint8Array | undefined {
    const request = readRequest(seen);
    switch (request.kind) {
      case "partial":
        this.#start = seen;
        return undefined;
      case "hello":
        // Said after the server took the client in (a server that wants no
        // token does not wait for it): answered all the same.
        this.#start = undefined;
        this.#transport.push(okLine(
          request.features.filter((f) => this.#takes.includes(f)),
        ));
        this.#agree(request.features.filter((f) => this.#takes.includes(f)));
        return request.rest;
      case "midi":
        this.#start = undefined;
        return seen;
      case "tls":
      case "http":
        // Told why in its own protocol, then closed; nothing of it parsed.
        this.#start = undefined;
        this.#protocolError = new Error(
          request.kind === "tls" ? TLS_ON_PLAIN : HTTP_ON_MIDI,
        );
        callBack(
          this.#onProtocolError,
          this.#protocolError.message,
          request.kind === "http" ? request.line : undefined,
        );
        this.#transport.push(
          request.kind === "tls" ? TLS_NOT_SERVED : HTTP_REFUSAL,
        );
        this.finish(this.#protocolError);
        this.#transport.close();
        return undefined;
    }
  }

  /**
   * Queues messages for the peer, in order, each whole.
   *
   * @returns The promise `send` returns, or undefined when refused.
   */
  #enqueue(messages: readonly Message[]): Promise<void> | undefined {
    let size = 0;
    for (const msg of messages) size += encodedLength(msg);
    const transport = this.#transport;
    const queued = transport.queuedBytes;
    if (queued > 0 && queued + size > this.#settings.maxQueuedBytes) {
      return Promise.reject(
        new QueueFullError(this.#name, this.#settings.maxQueuedBytes),
      );
    }
    if (this.#timed !== undefined && !this.#stampNow(messages.length)) {
      return undefined;
    }
    const ok = transport.append(size, putAll, messages);
    if (!ok) return undefined;
    return transport.drained();
  }

  /**
   * In the timed mode, before messages sent now: counts them and writes
   * the time frame of now (when it changed).
   *
   * @returns `false` when the connection takes no more writes.
   */
  #stampNow(count: number): boolean {
    const timed = this.#timed!;
    if (!this.#transport.writable) return false;
    timed.sent += count;
    if (!this.#timedOn) return true;
    const us = timed.stamp(this.#clock.now());
    return us === undefined ||
      this.#transport.append(TIME_FRAME_BYTES, putTimeFrame, us);
  }

  #closedError(): PortClosedError {
    const cause = this.#refusal ?? this.#transport.writeError;
    return new PortClosedError(
      this.#name,
      cause === undefined ? undefined : { cause },
    );
  }

  /**
   * Sends one message, whole.
   *
   * @param msg The message.
   * @returns A promise that resolves once the bytes are queued while less
   * than 64 KiB waits to be written, else once the queue is back under that
   * mark (so a sender that awaits each send never runs ahead of the peer).
   * @throws {TypeError | RangeError} For a malformed message (nothing sent).
   * @throws {PortClosedError} When the port or the connection is closed.
   * @throws {QueueFullError} When more than `maxQueuedBytes` wait already.
   */
  send(msg: Message): Promise<void> {
    try {
      checkMessage(msg);
    } catch (error) {
      return Promise.reject(error);
    }
    const transport = this.#transport;
    if (!transport.writable) return Promise.reject(this.#closedError());
    const size = encodedLength(msg);
    const queued = transport.queuedBytes;
    if (queued > 0 && queued + size > this.#settings.maxQueuedBytes) {
      return Promise.reject(
        new QueueFullError(this.#name, this.#settings.maxQueuedBytes),
      );
    }
    if (this.#timed !== undefined) this.#stampNow(1);
    transport.append(size, putOne, msg);
    return transport.drained();
  }

  /**
   * Sends several messages in one write, in order.
   *
   * @param messages The messages; all are checked before any is sent.
   * @returns A promise that resolves as `send`'s does.
   * @throws {TypeError | RangeError} For a malformed message (nothing sent).
   * @throws {PortClosedError} When the port or the connection is closed.
   * @throws {QueueFullError} When more than `maxQueuedBytes` wait already.
   */
  sendAll(messages: Iterable<Message>): Promise<void> {
    let list: readonly Message[];
    try {
      list = checkMessages(messages);
    } catch (error) {
      return Promise.reject(error);
    }
    if (list.length === 0) return RESOLVED;
    return this.#enqueue(list) ?? Promise.reject(this.#closedError());
  }

  /**
   * Sends mido's reset set (all notes off, reset all controllers, on every
   * channel) in one write. Does nothing on a closed port.
   *
   * @returns A promise that resolves once it is queued.
   */
  async reset(): Promise<void> {
    if (!this.closed) await this.sendAll(RESET_MESSAGES);
  }

  /**
   * Sends mido's panic set (all sounds off on every channel) in one write.
   * Does nothing on a closed port.
   *
   * @returns A promise that resolves once it is queued.
   */
  async panic(): Promise<void> {
    if (!this.closed) await this.sendAll(PANIC_MESSAGES);
  }

  /**
   * Closes the connection: messages not yet read are dropped and iteration
   * ends. Messages already sent still go out while the peer takes them (a
   * peer that takes nothing for a second loses the rest); then this side
   * half-closes and waits (up to a second) for the peer to close, so that
   * nothing the peer has not read is lost to a reset. Closing twice does
   * nothing.
   *
   * @returns A promise that resolves once the socket is closed.
   */
  async close(): Promise<void> {
    this.finish(undefined, true);
    await this.#transport.close();
    await this.#finished;
  }

  /**
   * Closes the connection at once, dropping what waits to be written, but
   * keeps what was received readable, with `reason` as the cause: how a
   * server drops a client that fell behind.
   *
   * @param reason Why.
   * @returns A promise that resolves once the socket is closed.
   */
  async abort(reason?: unknown): Promise<void> {
    if (!this.closed) this.#aborted = reason;
    this.finish(reason);
    await this.#transport.abort();
    await this.#finished;
  }
}

/** Writes one message (a `fill` for the transport). */
function putOne(target: Uint8Array, offset: number, msg: Message): void {
  encodeInto(msg, target, offset);
}

/** Writes messages one after another (a `fill` for the transport). */
function putAll(
  target: Uint8Array,
  offset: number,
  messages: readonly Message[],
): void {
  for (const msg of messages) offset = encodeInto(msg, target, offset);
}
