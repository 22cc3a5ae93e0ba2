/**
 * Internal: the byte layer under every TCP port. One connection, read in
 * chunks into a sink, written through a queue of segments: small writes are
 * copied into a tail buffer and go out together, large shared buffers (a
 * batch fanned out to many connections) are queued by reference. Writes
 * never interleave; close is graceful.
 *
 * @module
 */

import { PortClosedError } from "../errors.ts";
import { atMost } from "../_time.ts";

/** A read still under way, handed on to whoever reads next. */
export interface PendingRead {
  /** The read. */
  readonly read: Promise<number | null>;
  /** The buffer it reads into. */
  readonly buffer: Uint8Array;
}

/** What a connection brought before the port took it over. */
export interface Preamble {
  /** Bytes read already, to be parsed first. */
  readonly bytes?: Uint8Array;
  /** A read under way, whose bytes come next. */
  readonly pending?: PendingRead;
  /**
   * Set when a handshake has admitted the connection already: the
   * features agreed on (see `SocketPort.admitted`).
   */
  readonly admitted?: readonly string[];
  /** Whether the server answered the hello (a midisock server). */
  readonly greeted?: boolean;
  /**
   * Called on the server's end when the stream turns out to be another
   * protocol (a TLS hello, an HTTP request) only after the handshake handed
   * it over: how the refusal still reaches the gate.
   */
  readonly refuse?: (reason: string, detail?: string) => void;
}

/** A connection reads into a small buffer, grown while reads fill it. */
const READ_FIRST = 2 * 1024;
const READ_MOST = 64 * 1024;
const TAIL_SIZE = 4 * 1024;
/** Shared buffers at least this long are queued by reference, not copied. */
const SHARE_MIN = 4 * 1024;
/** How long a closing connection waits for the peer at each step. */
export const CLOSE_GRACE_MS = 1000;

const RESOLVED = Promise.resolve();

/** What a connection's reader does with each chunk. */
export type ChunkSink = (chunk: Uint8Array) => void | Promise<void>;

/** Options for {@linkcode ByteTransport}. */
export interface TransportOptions {
  /** A name for errors: the peer's `host:port`. */
  name: string;
  /** What was read before the transport took the connection over. */
  preamble?: Preamble;
  /**
   * `drained()` waits while more than this many bytes are queued.
   */
  highWater: number;
  /** Called once, when a write fails: the connection is then unusable. */
  onWriteError?: (error: unknown) => void;
}

/** Sets the options every midisock connection runs with, where it can. */
export function tune(conn: Deno.Conn): void {
  if ("setNoDelay" in conn) {
    try {
      (conn as Deno.TcpConn).setNoDelay(true);
      (conn as Deno.TcpConn).setKeepAlive(true);
    } catch {
      // Not a TCP socket after all (a test double, a closed socket).
    }
  }
}

/** Closes a connection, ignoring that it may be closed already. */
export function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Closed already.
  }
}

/**
 * One connection's bytes: a read loop feeding a sink, and a write queue.
 * Its owner (a port) decides what the bytes mean.
 */
export class ByteTransport {
  readonly #conn: Deno.Conn;
  readonly #name: string;
  readonly #highWater: number;
  readonly #onWriteError: ((error: unknown) => void) | undefined;
  #preamble: Preamble | undefined;

  /** Sealed segments waiting to be written, oldest first. */
  #segments: Uint8Array[] = [];
  /** Which of them were copied (count against this connection alone). */
  #copiedFlags: boolean[] = [];
  #tail: Uint8Array | undefined;
  #tailStart = 0;
  #tailLength = 0;
  /** Bytes waiting or in flight, and how many of them were copied. */
  #queued = 0;
  #copied = 0;
  #progress = 0;
  #written = 0;
  #writing: Promise<void> | undefined;
  #drain: PromiseWithResolvers<void> | undefined;
  #writeError: unknown;

  #reading: Promise<unknown> | undefined;
  #readOpen = true;
  #closing: Promise<void> | undefined;
  #abrupt = false;

  /**
   * Takes a connection over.
   *
   * @param conn The connection.
   * @param options Name, leftover bytes and the high water mark.
   */
  constructor(conn: Deno.Conn, options: TransportOptions) {
    this.#conn = conn;
    this.#name = options.name;
    this.#preamble = options.preamble;
    this.#highWater = options.highWater;
    this.#onWriteError = options.onWriteError;
    tune(conn);
  }

  /** The connection. */
  get conn(): Deno.Conn {
    return this.#conn;
  }

  /** Bytes waiting to be written or being written. */
  get queuedBytes(): number {
    return this.#queued;
  }

  /** Of `queuedBytes`, those copied for this connection alone. */
  get copiedBytes(): number {
    return this.#copied;
  }

  /**
   * A count that changes whenever the queue moves: at each write that
   * completes, and when the queue goes from empty to not empty.
   */
  get progress(): number {
    return this.#progress;
  }

  /** Whether the connection can still take writes. */
  get writable(): boolean {
    return this.#closing === undefined && this.#writeError === undefined;
  }

  /** Whether a close has begun. */
  get closing(): boolean {
    return this.#closing !== undefined;
  }

  /** Why writes fail, once one has. */
  get writeError(): unknown {
    return this.#writeError;
  }

  /**
   * Starts reading: every chunk goes to `sink` (awaited, so a sink that
   * waits slows the reader, and TCP the peer). Resolves when the peer closes
   * the connection, to the error that ended reading, if any.
   */
  read(sink: ChunkSink): Promise<unknown> {
    this.#reading ??= this.#read(sink);
    return this.#reading;
  }

  async #read(sink: ChunkSink): Promise<unknown> {
    let buffer = new Uint8Array(READ_FIRST);
    let cause: unknown;
    try {
      const { bytes, pending } = this.#preamble ?? {};
      this.#preamble = undefined;
      if (bytes !== undefined && bytes.length > 0) {
        const waiting = sink(bytes);
        if (waiting !== undefined) await waiting;
      }
      if (pending !== undefined) {
        const n = await pending.read;
        if (n === null) return this.#readEnded(undefined);
        const waiting = sink(pending.buffer.subarray(0, n));
        if (waiting !== undefined) await waiting;
      }
      for (;;) {
        const n = await this.#conn.read(buffer);
        if (n === null) break;
        const waiting = sink(buffer.subarray(0, n));
        if (waiting !== undefined) await waiting;
        // A busy peer fills the buffer: read more at a time. An idle one
        // gets a small buffer back, so that thousands of idle connections
        // hold little.
        if (n === buffer.length && buffer.length < READ_MOST) {
          buffer = new Uint8Array(Math.min(buffer.length * 4, READ_MOST));
        } else if (n < READ_FIRST && buffer.length > READ_FIRST) {
          buffer = new Uint8Array(READ_FIRST);
        }
      }
    } catch (error) {
      if (this.#closing === undefined) cause = error;
    }
    return this.#readEnded(cause);
  }

  #readEnded(cause: unknown): unknown {
    this.#readOpen = false;
    return cause;
  }

  /**
   * Appends `size` bytes, written in place by `fill` (given `what`, so that
   * callers need no closure per call), to the write queue.
   *
   * @returns `false` when the connection takes no more writes.
   */
  append<T>(
    size: number,
    fill: (target: Uint8Array, offset: number, what: T) => void,
    what: T,
  ): boolean {
    if (!this.writable) return false;
    const tail = this.#tailWithRoom(size);
    fill(tail, this.#tailLength, what);
    this.#tailLength += size;
    this.#copied += size;
    this.#grew(size);
    return true;
  }

  /**
   * Queues bytes that nobody will change (a batch fanned out to many
   * connections): large ones by reference, small ones copied.
   *
   * @returns `false` when the connection takes no more writes.
   */
  push(bytes: Uint8Array): boolean {
    if (!this.writable) return false;
    const size = bytes.length;
    if (size === 0) return true;
    if (size < SHARE_MIN) {
      const tail = this.#tailWithRoom(size);
      tail.set(bytes, this.#tailLength);
      this.#tailLength += size;
      this.#copied += size;
    } else {
      this.#seal();
      this.#segments.push(bytes);
      this.#copiedFlags.push(false);
    }
    this.#grew(size);
    return true;
  }

  #tailWithRoom(size: number): Uint8Array {
    const tail = this.#tail;
    if (tail !== undefined && this.#tailLength + size <= tail.length) {
      return tail;
    }
    this.#seal();
    this.#tail = new Uint8Array(Math.max(TAIL_SIZE, size));
    this.#tailStart = this.#tailLength = 0;
    return this.#tail;
  }

  /** Moves what the tail holds into the segment list. */
  #seal(): void {
    if (this.#tailLength > this.#tailStart) {
      this.#segments.push(
        this.#tail!.subarray(this.#tailStart, this.#tailLength),
      );
      this.#copiedFlags.push(true);
      this.#tailStart = this.#tailLength;
    }
  }

  #grew(size: number): void {
    if (this.#queued === 0) this.#progress++;
    this.#queued += size;
    this.#writing ??= this.#flush();
  }

  /**
   * Resolves once at most the high water mark waits to be written: how a
   * sender that awaits each send is kept from running ahead of the peer.
   *
   * @throws {PortClosedError} When a write fails meanwhile.
   */
  drained(): Promise<void> {
    if (this.#queued <= this.#highWater) return RESOLVED;
    this.#drain ??= Promise.withResolvers<void>();
    return this.#drain.promise;
  }

  async #flush(): Promise<void> {
    try {
      for (;;) {
        this.#seal();
        const segment = this.#segments.shift();
        if (segment === undefined) break;
        const copied = this.#copiedFlags.shift()!;
        for (let offset = 0; offset < segment.length;) {
          const n = await this.#conn.write(
            offset === 0 ? segment : segment.subarray(offset),
          );
          offset += n;
          this.#written += n;
          this.#queued -= n;
          if (copied) this.#copied -= n;
          this.#progress++;
        }
        if (this.#drain !== undefined && this.#queued <= this.#highWater) {
          this.#drain.resolve();
          this.#drain = undefined;
        }
      }
      // Nothing waits: start the tail over (a big one is let go).
      if (this.#queued === 0) {
        if (this.#tail !== undefined && this.#tail.length > TAIL_SIZE) {
          this.#tail = undefined;
        }
        this.#tailStart = this.#tailLength = 0;
      }
    } catch (error) {
      this.#failWrites(error);
    } finally {
      this.#writing = undefined;
    }
  }

  #failWrites(error: unknown): void {
    this.#writeError = error;
    this.#segments = [];
    this.#copiedFlags = [];
    this.#tail = undefined;
    this.#tailStart = this.#tailLength = 0;
    this.#queued = this.#copied = 0;
    this.#drain?.reject(new PortClosedError(this.#name, { cause: error }));
    this.#drain = undefined;
    this.#onWriteError?.(error);
  }

  /**
   * Closes gracefully: queued bytes go out while the peer takes them (a peer
   * that takes nothing for a second loses the rest), then this side sends
   * FIN and waits, at most a second, for the peer to close, so that nothing
   * the peer has not read is lost to a reset. Closing twice does nothing.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  /** Closes at once, dropping what waits to be written. */
  abort(): Promise<void> {
    this.#abrupt = true;
    this.#closing ??= this.#shutdown();
    if (this.#writing !== undefined) closeQuietly(this.#conn);
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    while (this.#writing !== undefined && !this.#abrupt) {
      const before = this.#written;
      await atMost(this.#writing, CLOSE_GRACE_MS);
      if (this.#written === before) break;
    }
    if (
      this.#readOpen && this.#reading !== undefined &&
      this.#writing === undefined && !this.#abrupt
    ) {
      // Closing first: send our FIN and read on until the peer closes too.
      // Closing outright with its data unread would reset the connection,
      // and the peer could lose what it had not read of ours.
      try {
        await this.#conn.closeWrite();
        await atMost(this.#reading, CLOSE_GRACE_MS);
      } catch {
        // The connection is gone already.
      }
    }
    closeQuietly(this.#conn);
    await this.#reading;
    await this.#writing;
  }
}
