/**
 * One TCP connection as a MIDI port: what `connect()` and
 * `PortServer.accept()` give.
 *
 * @module
 */

import { encodedLength, encodeInto } from "../codec/encode.ts";
import {
  checkMessage,
  checkMessages,
  type Message,
} from "../codec/messages.ts";
import { Parser } from "../codec/parser.ts";
import { PortClosedError, QueueFullError } from "../errors.ts";
import {
  DEFAULT_QUEUE_SIZE,
  InputPortBase,
  type IOPort,
  PANIC_MESSAGES,
  RESET_MESSAGES,
} from "../port.ts";
import { type RateLimit, TokenBucket } from "./access.ts";
import { formatAddress } from "./address.ts";

/** Options every socket port takes. */
export interface SocketOptions {
  /**
   * How many received messages wait for the reader at most. When full, the
   * port stops reading from the socket until the reader catches up, so TCP
   * slows the sender down: nothing is dropped.
   * @default {4096}
   */
  queueSize?: number;
  /**
   * How many bytes may wait to be written to a peer that is not reading.
   * Past it `send` throws {@linkcode QueueFullError} (and a `PortServer`
   * drops the client).
   * @default {1048576}
   */
  maxQueuedBytes?: number;
  /**
   * The longest sysex accepted from the peer, in data bytes; a longer one
   * is dropped.
   * @default {1048576}
   */
  maxSysexLength?: number;
  /**
   * What to do with sysex from the peer: `"allow"`, `"drop"`, or a number,
   * the longest sysex let through (data bytes; longer ones are dropped).
   * Dropped messages count in `dropped`.
   * @default {"allow"}
   */
  sysexIn?: SysexPolicy;
  /**
   * What to do with sysex sent to the peer: `"allow"`, `"drop"` (skipped
   * silently, so one policy serves a whole server), or the longest sysex
   * let through, in data bytes.
   * @default {"allow"}
   */
  sysexOut?: SysexPolicy;
  /**
   * Most messages per second accepted from the peer, with bursts; messages
   * over it are dropped (and counted in `dropped`), the connection stays.
   * @default {undefined} (no limit)
   */
  rateLimit?: RateLimit;
}

/**
 * What a port does with sysex in one direction: let it through, drop it, or
 * let through only those of at most this many data bytes.
 */
export type SysexPolicy = "allow" | "drop" | number;

function checkSysexPolicy(name: string, policy: SysexPolicy): number {
  if (policy === "allow") return Infinity;
  if (policy === "drop") return -1;
  if (!Number.isSafeInteger(policy) || policy < 0) {
    throw new RangeError(
      `${name} must be "allow", "drop" or a non-negative integer: got ${
        JSON.stringify(policy)
      }`,
    );
  }
  return policy;
}

interface SocketSettings {
  queueSize: number;
  maxQueuedBytes: number;
  maxSysexLength: number;
  sysexIn: number;
  sysexOut: number;
}

/**
 * Checks socket options and fills in their defaults; sysex policies become
 * the longest sysex let through (-1: none, Infinity: any).
 *
 * @throws {RangeError} For a bound or policy out of range.
 */
export function resolveSocketOptions(options: SocketOptions): SocketSettings {
  const queueSize = options.queueSize ?? DEFAULT_QUEUE_SIZE;
  const maxQueuedBytes = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
  for (
    const [name, value] of [["queueSize", queueSize], [
      "maxQueuedBytes",
      maxQueuedBytes,
    ]] as const
  ) {
    if (!Number.isSafeInteger(value) || value < 1) {
      throw new RangeError(`${name} must be a positive integer: got ${value}`);
    }
  }
  const sysexIn = checkSysexPolicy("sysexIn", options.sysexIn ?? "allow");
  const sysexOut = checkSysexPolicy("sysexOut", options.sysexOut ?? "allow");
  const maxSysexLength = Math.min(
    new Parser({ maxSysexLength: options.maxSysexLength }).maxSysexLength,
    Math.max(sysexIn, 0),
  );
  if (options.rateLimit !== undefined) new TokenBucket(options.rateLimit);
  return { queueSize, maxQueuedBytes, maxSysexLength, sysexIn, sysexOut };
}

/** Bytes a connection's reader must parse before anything it reads. */
export const prefixes: WeakMap<Deno.Conn, Uint8Array> = new WeakMap();

/** The send queue's bound when no option says otherwise: 1 MiB. */
export const DEFAULT_MAX_QUEUED_BYTES = 1 << 20;

const READ_BUFFER_SIZE = 16 * 1024;
const CLOSE_GRACE_MS = 1000;

const INITIAL_OUT_BUFFER = 1024;
const KEPT_OUT_BUFFER = 256 * 1024;
/** Below this many queued bytes, `send` resolves at once. */
const HIGH_WATER = 64 * 1024;
const RESOLVED = Promise.resolve();

/** Sets the options every midisock connection runs with, where it can. */
function tune(conn: Deno.Conn): void {
  if ("setNoDelay" in conn) {
    try {
      (conn as Deno.TcpConn).setNoDelay(true);
      (conn as Deno.TcpConn).setKeepAlive(true);
    } catch {
      // Not a TCP socket after all (a test double, a closed socket).
    }
  }
}

/**
 * Closes a port's connection at once, without the graceful steps of
 * `close()`, but keeps what it received readable: how a server drops a
 * client.
 */
let abort: (port: SocketPort, reason: unknown) => void;

/**
 * Queues bytes for the peer, in order, unless `msg` is a sysex its policy
 * keeps back. Refuses at once, returning the error rather than a rejected
 * promise, when the port is closed or its queue is full: a server drops
 * such a client before it queues anything more for it.
 */
let writeBytes: (
  port: SocketPort,
  bytes: Uint8Array,
  msg?: Message,
) => Promise<void> | PortClosedError | QueueFullError;

/**
 * A MIDI port over one TCP connection, speaking mido's protocol: a plain
 * MIDI 1.0 byte stream, each message whole. Get one from `connect()` or
 * `PortServer.accept()`, or wrap any `Deno.Conn`.
 *
 * Reading: messages are parsed as they arrive (see `Parser`) and wait in a
 * bounded queue; iterate with `for await`, or use `receive()`, `poll()`,
 * `iterPending()`. When the peer goes away, iteration ends after the
 * messages that came before; a message it left unfinished is dropped.
 *
 * Writing: `send` writes each message whole, in one write when the socket is
 * idle, and writes that wait are joined into one; TCP_NODELAY is on, so
 * nothing waits for Nagle's algorithm. Writes never interleave.
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
  static {
    abort = (port, reason) => port.#abort(reason);
    writeBytes = (port, bytes, msg) =>
      msg === undefined || port.#allowOut(msg)
        ? port.#append(bytes.length, (target, offset) => {
          target.set(bytes, offset);
        })
        : RESOLVED;
  }

  readonly #conn: Deno.Conn;
  readonly #name: string;
  readonly #parser: Parser;
  readonly #maxQueuedBytes: number;
  readonly #reading: Promise<void>;
  readonly #sysexIn: number;
  readonly #sysexOut: number;
  readonly #bucket: TokenBucket | undefined;
  readonly #finished: Promise<void>;
  #droppedIn = 0;
  readonly #highWater: number;
  /** Bytes waiting for the next write, and a buffer to swap in. */
  #out = new Uint8Array(INITIAL_OUT_BUFFER);
  #outLength = 0;
  #spare = new Uint8Array(INITIAL_OUT_BUFFER);
  #inFlight = 0;
  /** Bytes written so far: how a closing port sees progress. */
  #written = 0;
  /** Settles when the bytes now in `#out` are written. */
  #batch: PromiseWithResolvers<void> | undefined;
  #writing: Promise<void> | undefined;
  #readOpen = true;
  #abrupt = false;
  #writeError: unknown;
  #closing: Promise<void> | undefined;

  /**
   * Wraps a connection. It sets TCP_NODELAY and keepalive on TCP sockets and
   * starts reading at once.
   *
   * @param conn The connection; the port owns it from now on.
   * @param options Queue bounds.
   * @throws {RangeError} For a bound that is not a positive integer.
   */
  constructor(
    conn: Deno.Conn,
    options: SocketOptions & { name?: string } = {},
  ) {
    const settings = resolveSocketOptions(options);
    super(settings.queueSize);
    this.#sysexIn = settings.sysexIn;
    this.#sysexOut = settings.sysexOut;
    this.#bucket = options.rateLimit && new TokenBucket(options.rateLimit);
    this.#parser = new Parser({ maxSysexLength: settings.maxSysexLength });
    this.#conn = conn;
    this.#maxQueuedBytes = settings.maxQueuedBytes;
    this.#highWater = Math.min(HIGH_WATER, settings.maxQueuedBytes);
    this.#name = options.name ??
      formatAddress(conn.remoteAddr as Deno.NetAddr);
    tune(conn);
    this.#reading = this.#read();
    this.#finished = this.#reading.then(() => this.#closing);
  }

  /** The peer's address, `host:port`. */
  get name(): string {
    return this.#name;
  }

  /** The peer's address. */
  get remoteAddr(): Deno.NetAddr {
    return this.#conn.remoteAddr as Deno.NetAddr;
  }

  /** This end's address. */
  get localAddr(): Deno.NetAddr {
    return this.#conn.localAddr as Deno.NetAddr;
  }

  /** Bytes waiting to be written to the peer. */
  get queuedBytes(): number {
    return this.#outLength + this.#inFlight;
  }

  /**
   * How many messages from the peer were dropped as unfinished, cut short
   * or oversized.
   */
  get dropped(): number {
    return this.#parser.dropped + this.#droppedIn;
  }

  /**
   * Resolves once the connection is closed, by either end, and every
   * message the peer sent has been parsed.
   */
  get finished(): Promise<void> {
    return this.#finished;
  }

  async #read(): Promise<void> {
    const buffer = new Uint8Array(READ_BUFFER_SIZE);
    let cause: unknown;
    let chunk = prefixes.get(this.#conn);
    try {
      for (;;) {
        if (chunk === undefined) {
          const n = await this.#conn.read(buffer);
          if (n === null) break;
          chunk = buffer.subarray(0, n);
        }
        for (const msg of this.#parser.feed(chunk)) {
          // After a close on this side, read on until the peer answers
          // with its own close, but keep nothing.
          if (this.closed) break;
          if (
            (msg.type === "sysex" && this.#sysexIn < 0) ||
            (this.#bucket !== undefined && !this.#bucket.take())
          ) {
            this.#droppedIn++;
            continue;
          }
          while (!this.deliver(msg) && !this.closed) {
            await this.roomForMore();
          }
        }
        chunk = undefined;
      }
    } catch (error) {
      if (this.#closing === undefined) cause = error;
    }
    // The peer left: what it sent stays readable; close our side too, once
    // pending writes have gone out or failed.
    this.#readOpen = false;
    this.finish(cause);
    this.#closing ??= this.#shutdown();
  }

  #write(bytes: Uint8Array): Promise<void> {
    return this.#enqueue(bytes.length, (target, offset) => {
      target.set(bytes, offset);
    });
  }

  /**
   * Appends `size` bytes, written by `fill`, to what goes out next, and
   * starts a write if none is under way. Resolves at once below the high
   * water mark, else once these bytes are written: backpressure.
   */
  #enqueue(
    size: number,
    fill: (target: Uint8Array, offset: number) => void,
  ): Promise<void> {
    const queued = this.#append(size, fill);
    return queued instanceof Error ? Promise.reject(queued) : queued;
  }

  /** `#enqueue`, returning a refusal instead of rejecting. */
  #append(
    size: number,
    fill: (target: Uint8Array, offset: number) => void,
  ): Promise<void> | PortClosedError | QueueFullError {
    if (this.#closing !== undefined || this.#writeError !== undefined) {
      return new PortClosedError(
        this.#name,
        this.#writeError === undefined ? undefined : {
          cause: this.#writeError,
        },
      );
    }
    const queued = this.#outLength + this.#inFlight;
    if (queued > 0 && queued + size > this.#maxQueuedBytes) {
      return new QueueFullError(this.#name, this.#maxQueuedBytes);
    }
    if (this.#outLength + size > this.#out.length) {
      let capacity = this.#out.length * 2;
      while (capacity < this.#outLength + size) capacity *= 2;
      const grown = new Uint8Array(capacity);
      grown.set(this.#out.subarray(0, this.#outLength));
      this.#out = grown;
    }
    fill(this.#out, this.#outLength);
    this.#outLength += size;
    // The batch first: a write started now takes it along.
    const batch = queued + size > this.#highWater
      ? this.#batch ??= Promise.withResolvers<void>()
      : undefined;
    this.#writing ??= this.#flush();
    return batch?.promise ?? RESOLVED;
  }

  #allowOut(msg: Message): boolean {
    return msg.type !== "sysex" || msg.data.length <= this.#sysexOut;
  }

  async #flush(): Promise<void> {
    while (this.#outLength > 0) {
      // Swap buffers: sends append to the other one while this one goes out.
      const sending = this.#out;
      const bytes = sending.subarray(0, this.#outLength);
      const batch = this.#batch;
      this.#batch = undefined;
      this.#out = this.#spare;
      this.#spare = sending;
      this.#inFlight = this.#outLength;
      this.#outLength = 0;
      try {
        for (let offset = 0; offset < bytes.length;) {
          const n = await this.#conn.write(bytes.subarray(offset));
          offset += n;
          this.#written += n;
        }
      } catch (error) {
        this.#writeError = error;
        const reason = new PortClosedError(this.#name, { cause: error });
        // Sends that waited on this batch or the next learn it failed.
        for (const waiting of [batch, this.#batch as typeof batch]) {
          waiting?.reject(reason);
        }
        this.#batch = undefined;
        this.#outLength = 0;
        this.#inFlight = 0;
        break;
      }
      this.#inFlight = 0;
      if (this.#spare.length > KEPT_OUT_BUFFER) {
        this.#spare = new Uint8Array(INITIAL_OUT_BUFFER);
      }
      batch?.resolve();
    }
    this.#writing = undefined;
  }

  /**
   * Sends one message, whole.
   *
   * @param msg The message.
   * @returns A promise that resolves once the bytes are queued while less
   * than 64 KiB waits to be written, else once they are written (so a
   * sender that awaits each send never runs ahead of the peer).
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
    if (!this.#allowOut(msg)) return RESOLVED;
    return this.#enqueue(encodedLength(msg), (target, offset) => {
      encodeInto(msg, target, offset);
    });
  }

  /**
   * Sends several messages in one write, in order.
   *
   * @param messages The messages; all are checked before any is sent.
   * @returns A promise that resolves once the bytes are queued while less
   * than 64 KiB waits to be written, else once they are written (so a
   * sender that awaits each send never runs ahead of the peer).
   * @throws {TypeError | RangeError} For a malformed message (nothing sent).
   * @throws {PortClosedError} When the port or the connection is closed.
   * @throws {QueueFullError} When more than `maxQueuedBytes` wait already.
   */
  sendAll(messages: Iterable<Message>): Promise<void> {
    let list: Message[];
    try {
      list = checkMessages(messages);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#sysexOut !== Infinity) {
      list = list.filter((m) => this.#allowOut(m));
    }
    let size = 0;
    for (const msg of list) size += encodedLength(msg);
    if (size === 0) return RESOLVED;
    return this.#enqueue(size, (target, offset) => {
      for (const msg of list) offset = encodeInto(msg, target, offset);
    });
  }

  /**
   * Sends mido's reset set (all notes off, reset all controllers, on every
   * channel) in one write. Does nothing on a closed port.
   *
   * @returns A promise that resolves once it is written.
   */
  async reset(): Promise<void> {
    if (!this.closed) await this.sendAll(RESET_MESSAGES);
  }

  /**
   * Sends mido's panic set (all sounds off on every channel) in one write.
   * Does nothing on a closed port.
   *
   * @returns A promise that resolves once it is written.
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
  close(): Promise<void> {
    this.finish(undefined, true);
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  #abort(reason: unknown): void {
    this.#abrupt = true;
    this.finish(reason);
    this.#closing ??= this.#shutdown();
  }

  async #shutdown(): Promise<void> {
    // Queued writes go out as long as the peer takes them; a peer that
    // takes nothing for CLOSE_GRACE_MS loses the rest.
    while (this.#writing !== undefined && !this.#abrupt) {
      const before = this.#written;
      await this.#within(this.#writing);
      if (this.#written === before) break;
    }
    if (this.#readOpen && this.#writing === undefined && !this.#abrupt) {
      // Closing first: send our FIN and read on until the peer closes too.
      // Closing outright with its data unread would reset the connection,
      // and the peer could lose what it had not read of ours.
      try {
        await this.#conn.closeWrite();
        await this.#within(this.#reading);
      } catch {
        // The connection is gone already.
      }
    }
    try {
      this.#conn.close();
    } catch {
      // Already closed by the runtime.
    }
    await this.#reading;
    await this.#writing;
  }

  /** Waits for `promise`, but no longer than CLOSE_GRACE_MS. */
  async #within(promise: Promise<void>): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      promise,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, CLOSE_GRACE_MS);
      }),
    ]);
    clearTimeout(timer);
  }
}

export { abort, writeBytes };
