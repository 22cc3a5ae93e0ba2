/**
 * Internal: one page's WebSocket as a MIDI port, what the web server adds
 * to the hub for each page.
 *
 * @module
 */

import { InputTap } from "../_tap.ts";
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
import { CLOSE, readTimed } from "./_protocol.ts";

/**
 * The WebSocket a page port speaks through (the web server's connection):
 * frames out, a write queue as the hub measures it, and its close.
 */
export interface PageSocket {
  /** Whether it still takes frames. */
  readonly open: boolean;
  /** Bytes waiting to be written. */
  readonly queuedBytes: number;
  /** Of those, the ones copied for this socket alone. */
  readonly copiedBytes: number;
  /** A count that changes whenever the write queue moves. */
  readonly progress: number;
  /** Resolves once the write queue is back under its high water mark. */
  drained(): Promise<void>;
  /** Queues a binary frame (large bytes by reference). */
  sendBinary(bytes: Uint8Array): boolean;
  /** Queues a timed binary frame: the time, then the bytes. */
  sendTimed(at: number, bytes: Uint8Array): boolean;
  /** Queues a text frame (its UTF-8 bytes by reference, from 4 KiB). */
  sendText(text: string | Uint8Array): boolean;
  /** Closes with a close frame, after what waits; resolves once closed. */
  close(code: number, reason: string): Promise<void>;
  /** Closes the socket at once; resolves once closed. */
  abort(): Promise<void>;
}

/** What a page port is made with. */
export interface PagePortOptions {
  /** Its name: `web host:port`. */
  readonly name: string;
  /** The longest sysex kept, in data bytes. */
  readonly maxSysexLength: number;
  /** The hub's clock: the time of a batch that carries none. */
  readonly now: () => number;
}

/**
 * A page dropped with less than this waiting for it is told why in a close
 * frame (after what waits); with more, its socket is closed at once.
 */
const TELL_WHEN_UNDER = 16 * 1024;
const RESOLVED = Promise.resolve();

/**
 * What the hub writes a page's share to: one binary frame per batch, timed
 * when the page schedules what it plays.
 */
class PageSink implements Sink {
  readonly #socket: PageSocket;
  readonly #now: () => number;
  readonly slow = "drop";
  timed = false;

  constructor(socket: PageSocket, now: () => number) {
    this.#socket = socket;
    this.#now = now;
  }

  write(batch: Batch): boolean {
    return this.timed
      ? this.#socket.sendTimed(batch.at ?? this.#now(), batch.bytes)
      : this.#socket.sendBinary(batch.bytes);
  }

  get queuedBytes(): number {
    return this.#socket.queuedBytes;
  }

  get copiedBytes(): number {
    return this.#socket.copiedBytes;
  }

  get progress(): number {
    return this.#socket.progress;
  }

  drained(): Promise<void> {
    return this.#socket.drained();
  }
}

/**
 * A page's WebSocket as an `IOPort`. Each binary message the page sends is
 * read as whole MIDI messages (what a message leaves unfinished is
 * dropped); what the hub routes to the page goes out as one binary frame
 * per batch, queued as on a TCP connection (big batches shared, by
 * reference), so the hub's bounds on what waits for a client hold for
 * pages too. A page that schedules what it plays is `timed`: each batch
 * goes to it at once, in a timed frame with the batch's time. What a page
 * sends in timed frames reaches the hub with the time they carry. Text
 * frames are the web server's (`text`).
 */
export class PagePort extends InputPortBase implements IOPort {
  readonly #socket: PageSocket;
  readonly #name: string;
  readonly #framer: Framer;
  readonly #sink: PageSink;
  #badFrames = 0;
  readonly #tap: InputTap;

  /**
   * Wraps an open WebSocket; the port owns it from now on. Its owner feeds
   * it with `input` and `badFrame`, and calls `end` when the socket closes.
   */
  constructor(socket: PageSocket, options: PagePortOptions) {
    super();
    this.#socket = socket;
    this.#name = options.name;
    this.#framer = new Framer(options.maxSysexLength);
    this.#sink = new PageSink(socket, options.now);
    this.#tap = new InputTap({
      name: this.#name,
      closed: () => this.closed,
      pending: () => this.iterPending(),
      deliver: (msg) => this.deliver(msg),
      room: () => this.roomForMore(),
    });
  }

  /**
   * Whether the page schedules what it plays: the hub then writes to it at
   * once, each batch with its time, and leaves the playout to the page.
   */
  get timed(): boolean {
    return this.#sink.timed;
  }

  set timed(timed: boolean) {
    this.#sink.timed = timed;
  }

  /** `web host:port` of the page. */
  get name(): string {
    return this.#name;
  }

  /**
   * Messages from the page dropped: unfinished, cut short or oversized,
   * and frames that were not MIDI.
   */
  get dropped(): number {
    return this.#framer.dropped + this.#badFrames;
  }

  /** Bytes waiting to be sent to the page (text frames included). */
  get queuedBytes(): number {
    return this.#socket.queuedBytes;
  }

  /** What the hub writes to: one binary frame per batch. */
  get [SINK](): Sink {
    return this.#sink;
  }

  /** What the hub reads from: the page's frames, as framed bytes. */
  get [SOURCE](): Source {
    return this.#tap.source;
  }

  /**
   * Takes one binary message from the page: whole MIDI messages pass,
   * anything unfinished at its end is dropped (a message never continues
   * in the next). A timed frame's messages reach the hub with its time (the
   * hub takes no time later than now); a timed frame cut short, or with a
   * time that is no number, is dropped.
   *
   * @returns A promise while the hub takes no more input: read nothing
   * more from the page until it settles.
   */
  input(data: Uint8Array): void | Promise<void> {
    if (this.#tap.ended) return;
    const frame = readTimed(data);
    if (frame === undefined) {
      this.#badFrames++;
      return;
    }
    const framed = this.#framer.frame(frame.midi);
    this.#framer.reset();
    if (framed.length === 0) return;
    const take = this.#tap.take;
    if (take === undefined) {
      for (const msg of decodeFramed(framed, [])) {
        if (!this.deliver(msg)) this.#badFrames++;
      }
      return;
    }
    return take(framed.slice(), frame.at);
  }

  /** Counts a frame that was not MIDI. */
  badFrame(): void {
    this.#badFrames++;
  }

  /**
   * Sends a text frame (the web server's control messages): a string, or
   * its UTF-8 bytes, shared with other pages (never changed afterwards).
   *
   * @returns Whether it went out (`false` once the socket is closing).
   */
  text(frame: string | Uint8Array): boolean {
    return this.#socket.sendText(frame);
  }

  /** The socket closed: input ends, with `cause` when it was an error. */
  end(cause?: unknown): void {
    if (this.#tap.ended) return;
    this.finish(cause);
    this.#tap.end(cause);
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
    if (!this.#socket.sendBinary(bytes)) {
      return Promise.reject(new PortClosedError(this.#name));
    }
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
   * Closes the socket with `code` and `reason`, after what waits for the
   * page (the page has a second to answer).
   */
  async closeWith(
    code: number,
    reason: string,
    cause?: unknown,
  ): Promise<void> {
    this.finish(cause, cause === undefined);
    await this.#socket.close(code, reason);
    this.end(cause);
  }

  /**
   * Closes the page's socket: the page hears that the hub is closing, and
   * comes back later. Closing twice does nothing.
   *
   * @returns A promise that resolves once the socket is closed.
   */
  close(): Promise<void> {
    return this.closeWith(CLOSE.closing, "hub closing");
  }

  /**
   * Drops the page: how the hub closes a page that fell behind or idled.
   * With little waiting for it, the page is told why; else its socket is
   * closed at once.
   *
   * @param reason Why.
   * @returns A promise that resolves once the socket is closed.
   */
  async abort(reason?: unknown): Promise<void> {
    const text = reason instanceof Error
      ? reason.message
      : reason === undefined
      ? "dropped"
      : String(reason);
    const cause = reason ?? new Error(text);
    if (this.#socket.queuedBytes < TELL_WHEN_UNDER) {
      return this.closeWith(CLOSE.dropped, text, cause);
    }
    this.finish(cause);
    await this.#socket.abort();
    this.end(cause);
  }
}
