/**
 * Internal: one connection to the web server, as bytes: HTTP/1.1 requests
 * until one upgrades it, then WebSocket frames. It reads its own bytes, so
 * every bound holds before anything is kept (the request head, each
 * message), and closing it closes the socket. What the requests and the
 * messages mean is its owner's business (the web server).
 *
 * @module
 */

import { ByteTransport, closeQuietly } from "../net/_transport.ts";
import {
  closeFrame,
  type FrameEvent,
  FrameReader,
  headerSize,
  OPCODE,
  STATUS,
  writeHeader,
} from "./_frames.ts";
import {
  headEnd,
  MAX_HEAD_BYTES,
  readRequestHead,
  type RequestHead,
  responseHead,
  webSocketAccept,
} from "./_http.ts";
import { TIMED_HEAD, writeTimedHead } from "./_protocol.ts";

/** What a connection tells its owner. */
export interface ConnectionHandler {
  /**
   * A request came: answer it with `respond`, or `upgrade`. The next
   * request is read once the returned promise (if any) settles.
   */
  request(head: RequestHead): void | Promise<void>;
  /**
   * The request head was malformed or too long: it is answered with
   * `status` and the connection closed.
   *
   * @param reason Why, with no text the peer chose.
   * @param line The start of what the peer sent, to show.
   */
  badRequest(reason: string, line: string): void;
  /** A whole text message, once upgraded. */
  text(text: string): void;
  /**
   * A whole binary message, once upgraded (the bytes are the callee's).
   * Nothing more is read until the returned promise (if any) settles.
   */
  binary(data: Uint8Array): void | Promise<void>;
  /**
   * The peer sent a close frame: it is answered, and the connection closes.
   *
   * @param code The code it sent, if any.
   * @param reason The reason it gave.
   */
  closed(code: number | undefined, reason: string): void;
  /**
   * The peer broke the protocol (or sent a message over the bound): call
   * `close` with the code and reason to send, or it is closed with the
   * RFC's code for `error`.
   */
  failed(error: Extract<FrameEvent, { kind: "error" }>): void;
  /**
   * The connection is closed both ways: `clean` when this side closed it
   * (or answered the peer's close), else `cause` says why it ended, when it
   * failed.
   */
  gone(cause: unknown, clean: boolean): void;
}

/** Options of a connection. */
export interface ConnectionOptions {
  /** A name for errors: the peer's `host:port`. */
  readonly name: string;
  /** What a `drained()` waits under, in bytes. */
  readonly highWater: number;
  /** The clock `lastInput` reads (the hub's), in ms. */
  readonly now: () => number;
}

/** A frame header and what it heads, for the transport's `append`. */
interface FrameParts {
  opcode: number;
  payload: Uint8Array;
}

function putFrame(target: Uint8Array, offset: number, what: FrameParts): void {
  const at = writeHeader(target, offset, what.opcode, what.payload.length);
  target.set(what.payload, at);
}

const EMPTY = new Uint8Array(0);

/** A timed frame's parts, for the transport's `append`. */
interface TimedParts {
  at: number;
  payload: Uint8Array;
}

/** The parts of the timed frame being written (no object made per frame). */
const timed: TimedParts = { at: 0, payload: EMPTY };

/** A whole timed binary frame: header, marker, time, messages. */
function putTimed(target: Uint8Array, offset: number, what: TimedParts): void {
  const length = TIMED_HEAD + what.payload.length;
  const at = writeHeader(target, offset, OPCODE.binary, length);
  target.set(what.payload, writeTimedHead(target, at, what.at));
}

/** A timed binary frame's header, marker and time; the messages follow. */
function putTimedHead(
  target: Uint8Array,
  offset: number,
  what: TimedParts,
): void {
  const length = TIMED_HEAD + what.payload.length;
  writeTimedHead(
    target,
    writeHeader(target, offset, OPCODE.binary, length),
    what.at,
  );
}

/** The header of a frame: opcode in the low byte, the length above it. */
function putHeader(target: Uint8Array, offset: number, what: number): void {
  writeHeader(target, offset, what % 16, Math.floor(what / 16));
}

const encoder = new TextEncoder();
const latin1 = (bytes: Uint8Array) => String.fromCharCode(...bytes);

/** Bytes shared rather than copied into the write queue, from this size. */
const SHARE_FROM = 4096;
/** Past this many bytes waiting to be written, pings go unanswered. */
const PONG_LIMIT = 64 * 1024;
/** What a closing connection reads and drops before it is cut off. */
const MAX_DISCARDED = 64 * 1024;
/**
 * Connections that are not admitted pages, closing gracefully now (each for
 * two seconds at most), across servers; past the bound, they close at once.
 */
let lingering = 0;
const MAX_LINGERING = 256;
/** Requests answered on one connection before it is closed. */
const MAX_REQUESTS = 100;

/**
 * One connection: a request reader, then a WebSocket. Everything is read
 * by one loop; a promise returned by the handler pauses it (and TCP then
 * slows the peer down).
 */
export class WebConnection {
  readonly #transport: ByteTransport;
  readonly #handler: ConnectionHandler;
  readonly #reader = new FrameReader(0);
  #state: "http" | "upgrading" | "websocket" | "closing" | "gone" = "http";
  /** Whether it was upgraded (what it reads is frames). */
  #frames = false;
  #requests = 0;
  /** Bytes read and dropped since this side began to close. */
  #discarded = 0;
  /** The request head read so far. */
  #head: Uint8Array | undefined;
  #headLength = 0;
  /** Whether any byte of the current request came. */
  #started = false;
  readonly #now: () => number;
  #lastInput: number;
  #closing: Promise<void> | undefined;
  readonly #done: Promise<void>;

  /**
   * Takes a connection over and starts reading it.
   *
   * @param conn The connection (TCP, or TLS over it).
   * @param handler Who answers it.
   * @param options Its name and write bound.
   */
  constructor(
    conn: Deno.Conn,
    handler: ConnectionHandler,
    options: ConnectionOptions,
  ) {
    this.#handler = handler;
    this.#now = options.now;
    this.#lastInput = options.now();
    this.#transport = new ByteTransport(conn, {
      name: options.name,
      highWater: options.highWater,
    });
    this.#done = this.#transport.read((chunk) => this.#read(chunk)).then(
      async (cause) => {
        const clean = this.#state === "closing" || this.#state === "gone";
        this.#state = "gone";
        await this.#transport.close();
        this.#handler.gone(clean ? undefined : cause, clean);
      },
    );
  }

  /**
   * Whether a graceful close is always given its time (a page admitted to
   * the hub): others are closed at once while many are closing.
   */
  patient = false;

  /** Whether frames and responses can still be sent. */
  get open(): boolean {
    return (this.#state === "websocket" || this.#state === "http") &&
      this.#transport.writable;
  }

  /** Whether it is a WebSocket now. */
  get upgraded(): boolean {
    return this.#state === "websocket";
  }

  /** Whether part of a request has come since the last answer. */
  get started(): boolean {
    return this.#started;
  }

  /** When the peer last sent anything (on the `now` clock, in ms). */
  get lastInput(): number {
    return this.#lastInput;
  }

  /** Bytes waiting to be written. */
  get queuedBytes(): number {
    return this.#transport.queuedBytes;
  }

  /** Of those, the ones copied for this connection alone. */
  get copiedBytes(): number {
    return this.#transport.copiedBytes;
  }

  /** A count that changes whenever the write queue moves. */
  get progress(): number {
    return this.#transport.progress;
  }

  /** Resolves once the connection is closed and its owner was told. */
  get done(): Promise<void> {
    return this.#done;
  }

  /** Resolves once at most the high water mark waits to be written. */
  drained(): Promise<void> {
    return this.#transport.drained();
  }

  #read(chunk: Uint8Array): void | Promise<void> {
    this.#lastInput = this.#now();
    switch (this.#state) {
      case "http":
        return this.#readHead(chunk);
      case "websocket":
        this.#reader.feed(chunk);
        return this.#readFrames();
      case "closing":
        // A closing WebSocket waits for the peer's close frame; a closing
        // HTTP connection reads nothing more. A peer that keeps sending
        // after the close is not waiting for it: it is cut off.
        this.#discarded += chunk.length;
        if (this.#discarded > MAX_DISCARDED) {
          this.abort();
          return;
        }
        if (!this.#frames) return;
        this.#reader.feed(chunk);
        return this.#readFrames();
      default:
        // Gone, or waiting: nothing is read while upgrading.
        return;
    }
  }

  /** Adds to the request head; answers each request it completes. */
  #readHead(chunk: Uint8Array): void | Promise<void> {
    this.#started = true;
    const room = MAX_HEAD_BYTES + 4 - this.#headLength;
    const take = Math.min(room, chunk.length);
    this.#head ??= new Uint8Array(Math.min(1024, MAX_HEAD_BYTES + 4));
    if (this.#headLength + take > this.#head.length) {
      const grown = new Uint8Array(
        Math.min(MAX_HEAD_BYTES + 4, (this.#headLength + take) * 2),
      );
      grown.set(this.#head.subarray(0, this.#headLength));
      this.#head = grown;
    }
    this.#head.set(chunk.subarray(0, take), this.#headLength);
    const from = Math.max(0, this.#headLength - 2);
    this.#headLength += take;
    // Only new bytes can end the head: a trickle costs no rescans.
    if (
      this.#headLength < MAX_HEAD_BYTES &&
      headEnd(this.#head.subarray(0, this.#headLength), from) < 0
    ) {
      return;
    }
    const result = readRequestHead(this.#head.subarray(0, this.#headLength));
    if (result.kind === "partial") return;
    if (result.kind === "bad") {
      const start = this.#head.subarray(0, Math.min(200, this.#headLength));
      this.#head = undefined;
      this.#headLength = 0;
      this.#handler.badRequest(result.reason, latin1(start).split(/\r?\n/)[0]);
      this.respond(
        result.status,
        { "content-type": "text/plain; charset=utf-8" },
        encoder.encode(`${result.reason}\n`),
        true,
      );
      return;
    }
    // The head ends in this chunk: what follows it is the rest of the chunk
    // (a view: the chunk stays ours until the promise returned settles).
    const rest = chunk.subarray(take - (this.#headLength - result.head.size));
    this.#head = undefined;
    this.#headLength = 0;
    this.#started = false;
    return this.#answer(result.head, rest);
  }

  async #answer(head: RequestHead, rest: Uint8Array): Promise<void> {
    const answered = this.#handler.request(head);
    if (answered !== undefined) await answered;
    if (rest.length === 0) return;
    if (this.#state === "http") return await this.#readHead(rest);
    if (this.#state === "websocket") {
      this.#reader.feed(rest);
      return await this.#readFrames();
    }
  }

  /**
   * Answers a request. With `close`, the connection closes once the
   * answer is out.
   *
   * @param status The status code.
   * @param fields The header fields (content-length is added).
   * @param body The body, shared (never changed afterwards).
   * @param close Whether to close afterwards.
   * @param head Whether to leave the body out (a HEAD request).
   */
  respond(
    status: number,
    fields: Readonly<Record<string, string>>,
    body: Uint8Array | undefined,
    close: boolean,
    head = false,
  ): void {
    if (this.#state !== "http") return;
    // A connection is not kept for ever: after so many requests, the
    // client opens another.
    if (++this.#requests >= MAX_REQUESTS) close = true;
    const all = {
      ...fields,
      "content-length": String(body?.length ?? 0),
      ...(close ? { connection: "close" } : {}),
    };
    this.#transport.push(responseHead(status, all));
    if (body !== undefined && !head) this.#transport.push(body);
    if (close) this.#shut();
  }

  /**
   * Upgrades to a WebSocket: answers the request with 101 and reads frames
   * from now on, messages up to `limit` bytes.
   *
   * @param key The client's `Sec-WebSocket-Key` (checked already).
   * @param limit The largest message kept.
   * @returns Whether the connection is still there.
   */
  async upgrade(key: string, limit: number): Promise<boolean> {
    if (this.#state !== "http") return false;
    this.#state = "upgrading";
    const accept = await webSocketAccept(key);
    if (this.#state !== "upgrading") return false;
    this.#transport.push(responseHead(101, {
      upgrade: "websocket",
      connection: "Upgrade",
      "sec-websocket-accept": accept,
    }));
    this.#reader.limit = limit;
    this.#state = "websocket";
    this.#frames = true;
    return true;
  }

  /** Sets the largest message kept from now on. */
  set limit(bytes: number) {
    this.#reader.limit = bytes;
  }

  async #readFrames(): Promise<void> {
    const reader = this.#reader;
    let pong: Uint8Array | undefined;
    for (
      let event = reader.next();
      event !== undefined;
      event = reader.next()
    ) {
      if (this.#state === "gone") return;
      if (pong !== undefined && event.kind !== "ping") {
        this.#pong(pong);
        pong = undefined;
      }
      switch (event.kind) {
        case "binary": {
          if (this.#state !== "websocket") break;
          const waiting = this.#handler.binary(event.data);
          if (waiting !== undefined) await waiting;
          break;
        }
        case "text":
          if (this.#state === "websocket") this.#handler.text(event.text);
          break;
        case "ping":
          // Answered once the pings that came together are read: the RFC
          // lets a pong answer only the latest.
          pong = event.data;
          break;
        case "pong":
          break;
        case "close":
          // In "closing", the answer to our close: the peer closes next.
          if (this.#state !== "websocket") break;
          this.#state = "closing";
          reader.discard = true;
          this.#transport.push(closeFrame(event.code ?? STATUS.normal, ""));
          this.#handler.closed(event.code, event.reason);
          this.#shut();
          return;
        case "error":
          if (this.#state !== "websocket") {
            this.abort();
            return;
          }
          this.#handler.failed(event);
          this.close(event.code, event.reason);
          return;
      }
    }
    if (pong !== undefined) this.#pong(pong);
  }

  /** Answers a ping, unless the peer does not read the answers. */
  #pong(payload: Uint8Array): void {
    if (
      this.#state === "websocket" && this.#transport.queuedBytes < PONG_LIMIT
    ) {
      this.#send(OPCODE.pong, payload);
    }
  }

  /** Sends one frame; `false` once the connection takes no more. */
  #send(opcode: number, payload: Uint8Array): boolean {
    if (!this.open) return false;
    if (payload.length < SHARE_FROM) {
      return this.#transport.append(
        headerSize(payload.length) + payload.length,
        putFrame,
        { opcode, payload },
      );
    }
    // One number, not an object: this runs for every batch to every page.
    this.#transport.append(
      headerSize(payload.length),
      putHeader,
      payload.length * 16 + opcode,
    );
    return this.#transport.push(payload);
  }

  /**
   * Sends a text frame: a string, or its UTF-8 bytes (4 KiB or more are
   * queued by reference: nobody may change them).
   *
   * @returns `false` once the connection takes no more.
   */
  sendText(text: string | Uint8Array): boolean {
    return this.#state === "websocket" &&
      this.#send(
        OPCODE.text,
        typeof text === "string" ? encoder.encode(text) : text,
      );
  }

  /**
   * Sends a binary frame; bytes of 4 KiB or more are queued by reference
   * (nobody may change them).
   *
   * @returns `false` once the connection takes no more.
   */
  sendBinary(bytes: Uint8Array): boolean {
    return this.#state === "websocket" && this.#send(OPCODE.binary, bytes);
  }

  /**
   * Sends a timed binary frame: the time `at`, then `bytes` (from 4 KiB
   * queued by reference: nobody may change them).
   *
   * @returns `false` once the connection takes no more.
   */
  sendTimed(at: number, bytes: Uint8Array): boolean {
    if (this.#state !== "websocket" || !this.open) return false;
    const size = headerSize(TIMED_HEAD + bytes.length) + TIMED_HEAD;
    timed.at = at;
    timed.payload = bytes;
    try {
      if (bytes.length < SHARE_FROM) {
        return this.#transport.append(size + bytes.length, putTimed, timed);
      }
      return this.#transport.append(size, putTimedHead, timed) &&
        this.#transport.push(bytes);
    } finally {
      timed.payload = EMPTY;
    }
  }

  /** Sends a ping (how a quiet peer is asked whether it is still there). */
  ping(): void {
    if (this.#state === "websocket") this.#send(OPCODE.ping, new Uint8Array(0));
  }

  /**
   * Closes a WebSocket with a close frame (`code`, `reason`): what waits
   * to be written goes first, then the peer has a second to answer; data
   * it sends meanwhile is dropped unread. Before the upgrade, closes the
   * connection once what waits is out. Closing twice does nothing.
   *
   * @returns A promise that resolves once the socket is closed.
   */
  close(code: number, reason: string): Promise<void> {
    if (this.#state === "websocket") {
      this.#transport.push(closeFrame(code, reason));
      this.#state = "closing";
      this.#reader.discard = true;
    }
    this.#shut();
    return this.#done;
  }

  /**
   * Ends reading requests and closes once what waits is out, and the peer
   * had a moment to read it. Past `MAX_LINGERING` connections doing so at
   * once, a connection that is not `patient` is closed at once instead.
   */
  #shut(): void {
    if (this.#state === "http" || this.#state === "upgrading") {
      this.#state = "closing";
    }
    if (this.#closing !== undefined) return;
    if (this.patient) {
      this.#closing = this.#transport.close();
    } else if (lingering >= MAX_LINGERING) {
      this.#closing = this.abort();
    } else {
      lingering++;
      this.#closing = this.#transport.close().finally(() => lingering--);
    }
  }

  /**
   * Closes the socket at once, dropping what waits to be written.
   *
   * @returns A promise that resolves once it is closed.
   */
  abort(): Promise<void> {
    if (this.#state !== "gone") this.#state = "closing";
    this.#closing ??= this.#done;
    this.#transport.abort();
    // Also when a graceful close waits for the peer: now.
    closeQuietly(this.#transport.conn);
    return this.#done;
  }
}
