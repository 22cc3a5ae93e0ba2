/**
 * Internal: WebSocket frames (RFC 6455), server side, pure: no I/O.
 *
 * {@linkcode FrameReader} reads what a client sends, from chunks cut
 * anywhere, and enforces the RFC's rules for a server that negotiated no
 * extension: every frame masked, reserved bits clear, known opcodes,
 * control frames whole and short, continuation frames only inside a
 * fragmented message, text that is valid UTF-8, close codes that may be
 * sent. Its bound holds before anything is kept: a frame whose header says
 * the message would grow past `limit` is refused from its header, so a
 * message (all its fragments together) never takes more than `limit`
 * bytes, however large the frames it announces.
 *
 * The rest builds what the server sends: unmasked frames, never
 * fragmented.
 *
 * @module
 */

/** Frame opcodes. */
export const OPCODE = {
  continuation: 0x0,
  text: 0x1,
  binary: 0x2,
  close: 0x8,
  ping: 0x9,
  pong: 0xa,
} as const;

/** Close codes of the RFC that the server sends itself. */
export const STATUS = {
  /** Normal closure. */
  normal: 1000,
  /** The peer broke the protocol. */
  protocol: 1002,
  /** Text that is not UTF-8. */
  invalidData: 1007,
  /** A message over the bound. */
  tooBig: 1009,
} as const;

/** What a client sent, one piece at a time. */
export type FrameEvent =
  | { readonly kind: "text"; readonly text: string }
  | { readonly kind: "binary"; readonly data: Uint8Array }
  | { readonly kind: "ping"; readonly data: Uint8Array }
  | { readonly kind: "pong" }
  | {
    readonly kind: "close";
    /** The code, or undefined when the frame carried none. */
    readonly code: number | undefined;
    readonly reason: string;
  }
  | {
    /** The client broke a rule: close with `code`, read nothing more. */
    readonly kind: "error";
    readonly code: number;
    readonly reason: string;
    /** For a message over the bound: the size it would have reached. */
    readonly size?: number;
  };

/** The longest control frame payload. */
const MAX_CONTROL = 125;
const EMPTY = new Uint8Array(0);
const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Reads client frames. Feed it a chunk, then take events with `next()`
 * until it returns `undefined`; the chunk must stay unchanged until then
 * (nothing of it is kept by reference). The bound and the discard mode may
 * change between two events: they apply from the next frame header on.
 */
export class FrameReader {
  /** The largest message kept, all fragments together, in bytes. */
  limit: number;
  /**
   * Skip data frames without keeping or checking them (a connection that
   * is closing waits only for the close frame).
   */
  discard = false;

  #chunk: Uint8Array = EMPTY;
  #at = 0;
  /** The frame header read so far. */
  readonly #head = new Uint8Array(14);
  #headLength = 0;
  /** The frame whose payload is being read, if any. */
  #inFrame = false;
  #fin = false;
  #opcode = 0;
  readonly #mask = new Uint8Array(4);
  #remaining = 0;
  #offset = 0;
  /** Where the payload goes; undefined to skip it. */
  #payload: Uint8Array | undefined;
  /** The fragmented message under way: its opcode, parts and size. */
  #message = 0;
  #parts: Uint8Array[] = [];
  #size = 0;
  #failed = false;

  /**
   * Makes a reader.
   *
   * @param limit The largest message kept, in bytes.
   */
  constructor(limit: number) {
    this.limit = limit;
  }

  /** Whether a message or a frame is cut off where the input stopped. */
  get partial(): boolean {
    return this.#headLength > 0 || this.#inFrame || this.#message !== 0;
  }

  /** Takes the next chunk of what the client sent. */
  feed(chunk: Uint8Array): void {
    this.#chunk = chunk;
    this.#at = 0;
  }

  /**
   * The next event the input holds, or `undefined` when it needs more (or
   * after an error: a reader that failed reads nothing more).
   */
  next(): FrameEvent | undefined {
    while (!this.#failed) {
      if (!this.#inFrame) {
        const event = this.#readHead();
        if (event !== undefined) return event;
        if (!this.#inFrame) return undefined;
      }
      const done = this.#readPayload();
      if (!done) return undefined;
      const event = this.#endFrame();
      if (event !== undefined) return event;
    }
    return undefined;
  }

  /** Reads header bytes; starts the frame once the header is whole. */
  #readHead(): FrameEvent | undefined {
    const chunk = this.#chunk;
    const head = this.#head;
    while (this.#at < chunk.length) {
      head[this.#headLength++] = chunk[this.#at++];
      if (this.#headLength < 2) continue;
      if (this.#headLength === 2) {
        const wrong = this.#checkStart(head[0], head[1]);
        if (wrong !== undefined) return wrong;
      }
      const code = head[1] & 0x7f;
      const need = 2 + (code === 126 ? 2 : code === 127 ? 8 : 0) + 4;
      if (this.#headLength < need) continue;
      this.#headLength = 0;
      return this.#startFrame(need);
    }
    return undefined;
  }

  #fail(code: number, reason: string, size?: number): FrameEvent {
    this.#failed = true;
    this.#parts = [];
    this.#payload = undefined;
    return size === undefined
      ? { kind: "error", code, reason }
      : { kind: "error", code, reason, size };
  }

  /** The checks the first two bytes of a header allow. */
  #checkStart(first: number, second: number): FrameEvent | undefined {
    if ((first & 0x70) !== 0) {
      return this.#fail(STATUS.protocol, "reserved bits set");
    }
    if ((second & 0x80) === 0) {
      return this.#fail(STATUS.protocol, "unmasked frame from a client");
    }
    const opcode = first & 0x0f;
    if (
      opcode > OPCODE.binary && opcode < OPCODE.close || opcode > OPCODE.pong
    ) {
      return this.#fail(STATUS.protocol, `unknown opcode ${opcode}`);
    }
    if (opcode >= OPCODE.close) {
      if ((first & 0x80) === 0) {
        return this.#fail(STATUS.protocol, "fragmented control frame");
      }
      if ((second & 0x7f) > MAX_CONTROL) {
        return this.#fail(STATUS.protocol, "control frame over 125 bytes");
      }
    } else if (opcode === OPCODE.continuation && this.#message === 0) {
      return this.#fail(STATUS.protocol, "continuation of no message");
    } else if (opcode !== OPCODE.continuation && this.#message !== 0) {
      return this.#fail(STATUS.protocol, "new message inside a fragmented one");
    }
    return undefined;
  }

  #startFrame(headSize: number): FrameEvent | undefined {
    const head = this.#head;
    const fin = (head[0] & 0x80) !== 0;
    const opcode = head[0] & 0x0f;
    let length = head[1] & 0x7f;
    if (length === 126) {
      length = (head[2] << 8) | head[3];
    } else if (length === 127) {
      const high = ((head[2] << 24) | (head[3] << 16) | (head[4] << 8) |
        head[5]) >>> 0;
      const low = ((head[6] << 24) | (head[7] << 16) | (head[8] << 8) |
        head[9]) >>> 0;
      if (high >= 0x80000000) {
        return this.#fail(STATUS.protocol, "frame length out of range");
      }
      // Past 2^53 a length is only "too long": keep it finite and huge.
      length = high >= 0x200000
        ? Number.MAX_SAFE_INTEGER
        : high * 2 ** 32 + low;
    }
    this.#mask.set(head.subarray(headSize - 4, headSize));
    if (opcode >= OPCODE.close) {
      this.#payload = length === 0 ? EMPTY : new Uint8Array(length);
    } else {
      if (opcode !== OPCODE.continuation) this.#message = opcode;
      if (this.discard) {
        this.#payload = undefined;
      } else {
        if (length > this.limit - this.#size) {
          return this.#fail(
            STATUS.tooBig,
            `message over ${this.limit} bytes`,
            this.#size + length,
          );
        }
        this.#payload = length === 0 ? EMPTY : new Uint8Array(length);
      }
    }
    this.#fin = fin;
    this.#opcode = opcode;
    this.#remaining = length;
    this.#offset = 0;
    this.#inFrame = true;
    return undefined;
  }

  /** Reads (and unmasks) payload bytes; true once the frame is whole. */
  #readPayload(): boolean {
    const take = Math.min(this.#remaining, this.#chunk.length - this.#at);
    const payload = this.#payload;
    if (payload !== undefined && take > 0) {
      const chunk = this.#chunk;
      const mask = this.#mask;
      const from = this.#at;
      let offset = this.#offset;
      for (let i = 0; i < take; i++, offset++) {
        payload[offset] = chunk[from + i] ^ mask[offset & 3];
      }
    }
    this.#at += take;
    this.#offset += take;
    this.#remaining -= take;
    return this.#remaining === 0;
  }

  #endFrame(): FrameEvent | undefined {
    this.#inFrame = false;
    const payload = this.#payload ?? EMPTY;
    this.#payload = undefined;
    switch (this.#opcode) {
      case OPCODE.ping:
        return { kind: "ping", data: payload };
      case OPCODE.pong:
        return { kind: "pong" };
      case OPCODE.close:
        return this.#closeFrame(payload);
    }
    if (!this.discard && payload.length > 0) {
      this.#parts.push(payload);
      this.#size += payload.length;
    }
    if (!this.#fin) return undefined;
    const opcode = this.#message;
    const parts = this.#parts;
    const size = this.#size;
    this.#message = 0;
    this.#parts = [];
    this.#size = 0;
    if (this.discard) return undefined;
    const data = parts.length === 1 ? parts[0] : join(parts, size);
    if (opcode === OPCODE.binary) return { kind: "binary", data };
    try {
      return { kind: "text", text: utf8.decode(data) };
    } catch {
      return this.#fail(STATUS.invalidData, "text that is not UTF-8");
    }
  }

  #closeFrame(payload: Uint8Array): FrameEvent {
    if (payload.length === 0) {
      return { kind: "close", code: undefined, reason: "" };
    }
    if (payload.length === 1) {
      return this.#fail(STATUS.protocol, "close frame of one byte");
    }
    const code = (payload[0] << 8) | payload[1];
    if (!closeCodeAllowed(code)) {
      return this.#fail(STATUS.protocol, `close code ${code}`);
    }
    try {
      return { kind: "close", code, reason: utf8.decode(payload.subarray(2)) };
    } catch {
      return this.#fail(STATUS.invalidData, "close reason that is not UTF-8");
    }
  }
}

/**
 * Whether a peer may send this close code: the RFC's and IANA's codes
 * meant for the wire, and those for applications (3000-4999).
 */
export function closeCodeAllowed(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
    (code >= 3000 && code <= 4999);
}

function join(parts: readonly Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/** The size of the header of a server frame with `length` payload bytes. */
export function headerSize(length: number): number {
  return length < 126 ? 2 : length < 65536 ? 4 : 10;
}

/**
 * Writes the header of one whole, unmasked frame.
 *
 * @returns The offset after it.
 */
export function writeHeader(
  target: Uint8Array,
  offset: number,
  opcode: number,
  length: number,
): number {
  target[offset++] = 0x80 | opcode;
  if (length < 126) {
    target[offset++] = length;
  } else if (length < 65536) {
    target[offset++] = 126;
    target[offset++] = length >> 8;
    target[offset++] = length & 0xff;
  } else {
    target[offset++] = 127;
    const high = Math.floor(length / 2 ** 32);
    for (const word of [high, length >>> 0]) {
      target[offset++] = word >>> 24;
      target[offset++] = (word >>> 16) & 0xff;
      target[offset++] = (word >>> 8) & 0xff;
      target[offset++] = word & 0xff;
    }
  }
  return offset;
}

const encoder = new TextEncoder();

/**
 * One whole frame, unmasked, as the server sends it.
 *
 * @param opcode The opcode.
 * @param payload Its payload.
 */
export function frame(opcode: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(headerSize(payload.length) + payload.length);
  out.set(payload, writeHeader(out, 0, opcode, payload.length));
  return out;
}

/** The longest close reason, in bytes (a control frame holds 125). */
export const MAX_CLOSE_REASON = 123;

/**
 * A close frame: the code and the reason (cut to fit at a character
 * boundary).
 */
export function closeFrame(code: number, reason: string): Uint8Array {
  let text = encoder.encode(reason);
  if (text.length > MAX_CLOSE_REASON) {
    let end = MAX_CLOSE_REASON;
    // Back to the start of a UTF-8 sequence.
    while (end > 0 && (text[end] & 0xc0) === 0x80) end--;
    text = text.subarray(0, end);
  }
  const payload = new Uint8Array(2 + text.length);
  payload[0] = code >> 8;
  payload[1] = code & 0xff;
  payload.set(text, 2);
  return frame(OPCODE.close, payload);
}
