/**
 * Internal: one page's WebSocket as a MIDI port, what the web server adds
 * to the hub for each page.
 *
 * @module
 */

import { checkMessage, type Message } from "../codec/messages.ts";
import { checkMessages } from "../codec/_check.ts";
import { decodeFramed, encodeFramed, Framer } from "../codec/_framer.ts";
import { PortClosedError } from "../errors.ts";
import {
  InputPortBase,
  type IOPort,
  PANIC_MESSAGES,
  RESET_MESSAGES,
} from "../port.ts";
import { type Batch, SINK, type Sink, SOURCE, type Source } from "../sink.ts";
import { atMost } from "../_time.ts";
import { CLOSE, closeReason } from "./_protocol.ts";

/** What a page port is made with. */
export interface PagePortOptions {
  /** Its name: `web host:port`. */
  readonly name: string;
  /** The longest sysex kept, in data bytes. */
  readonly maxSysexLength: number;
}

/**
 * Framed input held while the hub has paused its inputs (a WebSocket
 * cannot be paused): past this many bytes it is dropped and counted.
 */
const MAX_HELD_BYTES = 256 * 1024;
/**
 * Bytes handed to the socket at most (it copies them); further batches wait
 * by reference until it has written those.
 */
const SOCKET_HIGH_WATER = 128 * 1024;
/** Batches waiting are joined into frames of up to this many bytes. */
const MAX_JOINED = 64 * 1024;
/** How often waiting batches are handed on while the socket is full. */
const PUMP_MS = 2;
/** How long `close()` waits for the page to answer the close. */
const CLOSE_WAIT_MS = 1000;
const RESOLVED = Promise.resolve();

/**
 * A page's WebSocket as an `IOPort`. Each binary frame the page sends is
 * read as whole MIDI messages (what a frame leaves unfinished is dropped);
 * what the hub routes to the page goes out as one binary frame per batch.
 * Text frames are for the web server's own use (`text`).
 */
export class PagePort extends InputPortBase implements IOPort {
  readonly #socket: WebSocket;
  readonly #name: string;
  readonly #framer: Framer;
  readonly #sink: Sink;
  readonly #closed: Promise<void>;
  #badFrames = 0;
  #heldDropped = 0;
  #take: ((framed: Uint8Array) => void | Promise<void>) | undefined;
  #end: ((cause?: unknown) => void) | undefined;
  #ended: { cause: unknown } | undefined;
  #held: Uint8Array[] = [];
  #heldBytes = 0;
  #paused = false;
  #progress = 0;
  #lastBuffered = 0;
  /** Batches for the page the socket has no room for yet. */
  #waiting: Uint8Array[] = [];
  #waitingBytes = 0;
  #pumpTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * Wraps an open WebSocket; the port owns it from now on. Its owner feeds
   * it with `input` and `badFrame`; the input ends when the socket closes.
   */
  constructor(socket: WebSocket, options: PagePortOptions) {
    super();
    this.#socket = socket;
    this.#name = options.name;
    this.#framer = new Framer(options.maxSysexLength);
    this.#sink = this.#makeSink();
    this.#closed = new Promise((resolve) => {
      socket.addEventListener("close", (event) => {
        this.#endInput(closeCause(event));
        resolve();
      }, { once: true });
    });
  }

  /** `web host:port` of the page. */
  get name(): string {
    return this.#name;
  }

  /**
   * Messages from the page dropped: unfinished, cut short or oversized,
   * frames that were not MIDI, and input that came while the hub was
   * paused past the bound.
   */
  get dropped(): number {
    return this.#framer.dropped + this.#badFrames + this.#heldDropped;
  }

  /** Bytes waiting to be sent to the page (text frames included). */
  get bufferedAmount(): number {
    return this.#socket.bufferedAmount;
  }

  /** What the hub writes to: one binary frame per batch. */
  get [SINK](): Sink {
    return this.#sink;
  }

  /** What the hub reads from: the page's frames, as framed bytes. */
  get [SOURCE](): Source {
    return {
      attach: (take, end) => {
        if (this.#take !== undefined) {
          throw new Error(`The input of ${this.#name} is taken already`);
        }
        const queued = [...this.iterPending()];
        this.#take = take;
        this.#end = end;
        if (queued.length > 0) this.#pass(encodeFramed(queued));
        if (this.#ended !== undefined) end(this.#ended.cause);
      },
    };
  }

  #makeSink(): Sink {
    // deno-lint-ignore no-this-alias
    const port = this;
    return {
      write: (batch: Batch): boolean => {
        if (this.#socket.readyState !== WebSocket.OPEN) return false;
        const bytes = batch.bytes;
        if (
          this.#waiting.length === 0 && this.#inSocket() < SOCKET_HIGH_WATER
        ) {
          this.#socket.send(bytes);
          return true;
        }
        // The socket has enough: keep the batch (shared, by reference).
        this.#waiting.push(bytes);
        this.#waitingBytes += bytes.length;
        this.#pumpSoon();
        return true;
      },
      get queuedBytes() {
        return port.#inSocket() + port.#waitingBytes;
      },
      get copiedBytes() {
        return port.#inSocket();
      },
      get progress() {
        port.#inSocket();
        return port.#progress;
      },
      slow: "drop",
      drained: () => RESOLVED,
    };
  }

  /**
   * Bytes the socket holds, not yet written; notes progress whenever the
   * amount went down.
   */
  #inSocket(): number {
    const buffered = this.#socket.bufferedAmount;
    if (buffered < this.#lastBuffered || buffered === 0) {
      this.#progress++;
    }
    this.#lastBuffered = buffered;
    return buffered;
  }

  #pumpSoon(): void {
    this.#pumpTimer ??= setTimeout(() => {
      this.#pumpTimer = undefined;
      this.#pump();
    }, PUMP_MS);
  }

  /** Hands kept batches to the socket as it empties, several per frame. */
  #pump(): void {
    if (this.#socket.readyState !== WebSocket.OPEN) {
      this.#waiting = [];
      this.#waitingBytes = 0;
      return;
    }
    while (
      this.#waiting.length > 0 && this.#inSocket() < SOCKET_HIGH_WATER
    ) {
      let count = 1;
      let size = this.#waiting[0].length;
      while (
        count < this.#waiting.length &&
        size + this.#waiting[count].length <= MAX_JOINED
      ) {
        size += this.#waiting[count++].length;
      }
      const parts = this.#waiting.splice(0, count);
      this.#waitingBytes -= size;
      this.#socket.send(count === 1 ? parts[0] : join(parts, size));
      this.#progress++;
    }
    if (this.#waiting.length > 0) this.#pumpSoon();
  }

  /**
   * Takes one binary frame from the page: whole messages pass, anything
   * unfinished at its end is dropped (a frame never continues in the next).
   */
  input(frame: Uint8Array): void {
    if (this.#ended !== undefined) return;
    const framed = this.#framer.frame(frame);
    this.#framer.reset();
    if (framed.length === 0) return;
    if (this.#take === undefined) {
      for (const msg of decodeFramed(framed, [])) {
        if (!this.deliver(msg)) this.#heldDropped++;
      }
      return;
    }
    this.#pass(framed.slice());
  }

  /** Counts a frame that was not MIDI. */
  badFrame(): void {
    this.#badFrames++;
  }

  #pass(framed: Uint8Array): void {
    if (this.#paused) {
      if (this.#heldBytes + framed.length > MAX_HELD_BYTES) {
        this.#heldDropped += countMessages(framed);
        return;
      }
      this.#held.push(framed);
      this.#heldBytes += framed.length;
      return;
    }
    const waiting = this.#take!(framed);
    if (waiting !== undefined) {
      this.#paused = true;
      waiting.then(() => this.#resume(), () => this.#resume());
    }
  }

  #resume(): void {
    this.#paused = false;
    while (this.#held.length > 0 && !this.#paused) {
      const framed = this.#held.shift()!;
      this.#heldBytes -= framed.length;
      this.#pass(framed);
    }
  }

  /**
   * Sends a text frame (the web server's control messages).
   *
   * @returns Whether it went out (`false` once the socket is closing).
   */
  text(frame: string): boolean {
    if (this.#socket.readyState !== WebSocket.OPEN) return false;
    this.#socket.send(frame);
    return true;
  }

  /** The socket closed: input ends, with `cause` when it was an error. */
  #endInput(cause?: unknown): void {
    if (this.#ended !== undefined) return;
    this.#ended = { cause };
    this.#held = [];
    clearTimeout(this.#pumpTimer);
    this.#waiting = [];
    this.#waitingBytes = 0;
    this.finish(cause);
    this.#end?.(cause);
  }

  /**
   * Sends one message to the page.
   *
   * @param msg The message.
   * @returns A promise that resolves once it is queued.
   * @throws {TypeError | RangeError} For a malformed message.
   * @throws {PortClosedError} When the socket is closed.
   */
  send(msg: Message): Promise<void> {
    try {
      checkMessage(msg);
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#sendBytes(encodeFramed([msg]));
  }

  /**
   * Sends several messages to the page, in one frame.
   *
   * @param messages The messages; all are checked first.
   * @returns A promise that resolves once they are queued.
   * @throws {TypeError | RangeError} For a malformed message.
   * @throws {PortClosedError} When the socket is closed.
   */
  sendAll(messages: Iterable<Message>): Promise<void> {
    let list: Message[];
    try {
      list = checkMessages(messages);
    } catch (error) {
      return Promise.reject(error);
    }
    return list.length === 0 ? RESOLVED : this.#sendBytes(encodeFramed(list));
  }

  #sendBytes(bytes: Uint8Array): Promise<void> {
    if (this.#socket.readyState !== WebSocket.OPEN) {
      return Promise.reject(new PortClosedError(this.#name));
    }
    this.#socket.send(bytes);
    return RESOLVED;
  }

  /**
   * Sends mido's reset set. Does nothing on a closed port.
   *
   * @returns A promise that resolves once it is queued.
   */
  async reset(): Promise<void> {
    if (!this.closed) await this.sendAll(RESET_MESSAGES);
  }

  /**
   * Sends mido's panic set. Does nothing on a closed port.
   *
   * @returns A promise that resolves once it is queued.
   */
  async panic(): Promise<void> {
    if (!this.closed) await this.sendAll(PANIC_MESSAGES);
  }

  /**
   * Closes the socket with `code` and `reason`, and waits (a second at
   * most) for the page to answer.
   */
  async closeWith(
    code: number,
    reason: string,
    cause?: unknown,
  ): Promise<void> {
    this.finish(cause, cause === undefined);
    const state = this.#socket.readyState;
    if (state === WebSocket.OPEN || state === WebSocket.CONNECTING) {
      try {
        this.#socket.close(code, closeReason(reason));
      } catch {
        // Closed meanwhile.
      }
    }
    if (this.#socket.readyState !== WebSocket.CLOSED) {
      await atMost(this.#closed, CLOSE_WAIT_MS);
    }
    // A page that never answers the close ends here all the same.
    this.#endInput(cause);
  }

  /**
   * Closes the page's socket: the page hears that the hub is closing, and
   * comes back later. Closing twice does nothing.
   *
   * @returns A promise that resolves once the socket is closed (or a second
   * has passed).
   */
  close(): Promise<void> {
    return this.closeWith(CLOSE.closing, "hub closing");
  }

  /**
   * Drops the page: how the hub closes a page that fell behind.
   *
   * @param reason Why.
   * @returns A promise that resolves as `close()`'s does.
   */
  abort(reason?: unknown): Promise<void> {
    const text = reason instanceof Error
      ? reason.message
      : reason === undefined
      ? "dropped"
      : String(reason);
    return this.closeWith(CLOSE.dropped, text, reason ?? new Error(text));
  }
}

/**
 * Why a page's socket closed, as a leave reason: nothing when the page
 * closed it (left, reloaded), else what happened.
 */
function closeCause(event: CloseEvent): unknown {
  // Normal, going away (left, reloaded), or a close with no code at all.
  if (event.code === 1000 || event.code === 1001 || event.code === 1005) {
    return undefined;
  }
  return new Error(
    event.code === 1006
      ? "Connection lost"
      : `Closed with code ${event.code}${
        event.reason === "" ? "" : `: ${event.reason}`
      }`,
  );
}

/** Byte arrays joined into one. */
function join(parts: readonly Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** How many messages framed bytes hold. */
function countMessages(framed: Uint8Array): number {
  return decodeFramed(framed, []).length;
}
