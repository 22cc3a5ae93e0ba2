// A raw WebSocket client for tests: the opening handshake and frames
// written by hand over a TCP (or TLS) connection, so a test can send what a
// browser never would (huge frames, any header) and stop reading at will.

import { within } from "./_net.ts";
import { concat } from "./_util.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Writes all of `bytes`: a write may take only part of them. */
export async function writeAll(
  conn: Deno.Conn,
  bytes: Uint8Array,
): Promise<void> {
  for (let at = 0; at < bytes.length;) {
    at += await conn.write(bytes.subarray(at));
  }
}

/** A frame as the server sent it. */
export interface Frame {
  opcode: number;
  payload: Uint8Array;
}

/** What the server answered the opening handshake. */
export interface RawOpen {
  /** The HTTP status. */
  status: number;
  /** The socket, when the status is 101. */
  socket?: RawWebSocket;
}

/** Opens a WebSocket by hand: `path` on `conn`, with extra headers. */
export async function openRaw(
  conn: Deno.Conn,
  host: string,
  path = "/midi",
  headers: Record<string, string> = {},
): Promise<RawOpen> {
  const lines = [
    `GET ${path} HTTP/1.1`,
    `Host: ${host}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Version: 13",
    ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
  ];
  await writeAll(conn, encoder.encode(`${lines.join("\r\n")}\r\n\r\n`));
  const socket = new RawWebSocket(conn);
  const head = await within(socket.readHead(), 5000, "the handshake answer");
  const status = Number(head.split(" ")[1]);
  if (status !== 101) {
    conn.close();
    return { status };
  }
  return { status, socket };
}

/**
 * Opens a page's WebSocket by hand on `port` and reads its first frame (the
 * welcome, or the token request).
 */
export async function rawPage(
  port: number,
): Promise<{ socket: RawWebSocket; first: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const { socket, status } = await openRaw(conn, `127.0.0.1:${port}`);
  if (socket === undefined) throw new Error(`Answered ${status}`);
  const first = await within(socket.next(), 5000, "the first frame");
  if (first?.opcode !== 1) throw new Error("No text frame first");
  return { socket, first: decoder.decode(first.payload) };
}

/** The client end of a WebSocket, frame by frame. */
export class RawWebSocket {
  readonly conn: Deno.Conn;
  #buffer: Uint8Array = new Uint8Array(0);
  #closed = false;

  constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  async #fill(): Promise<boolean> {
    const chunk = new Uint8Array(64 * 1024);
    const n = await this.conn.read(chunk);
    if (n === null) return false;
    this.#buffer = concat([this.#buffer, chunk.subarray(0, n)]);
    return true;
  }

  /** Reads the HTTP answer's head. */
  async readHead(): Promise<string> {
    for (;;) {
      const text = decoder.decode(this.#buffer);
      const end = text.indexOf("\r\n\r\n");
      if (end >= 0) {
        this.#buffer = this.#buffer.slice(
          encoder.encode(text.slice(0, end + 4)).length,
        );
        return text.slice(0, end);
      }
      if (!await this.#fill()) return text;
    }
  }

  /** Sends one frame, masked as a client must (unless `mask` is false). */
  async send(
    payload: Uint8Array | string,
    options: { opcode?: number; fin?: boolean; mask?: boolean } = {},
  ): Promise<void> {
    const bytes = typeof payload === "string"
      ? encoder.encode(payload)
      : payload;
    const opcode = options.opcode ?? (typeof payload === "string" ? 1 : 2);
    const head: number[] = [((options.fin ?? true) ? 0x80 : 0) | opcode];
    const masked = options.mask ?? true ? 0x80 : 0;
    const length = bytes.length;
    if (length < 126) head.push(masked | length);
    else if (length < 65536) head.push(masked | 126, length >> 8, length & 255);
    else {
      head.push(masked | 127, 0, 0, 0, 0);
      head.push(length >>> 24, (length >> 16) & 255, (length >> 8) & 255);
      head.push(length & 255);
    }
    const key = [0x12, 0x34, 0x56, 0x78];
    if (masked) head.push(...key);
    const frame = new Uint8Array(head.length + length);
    frame.set(head);
    for (let i = 0; i < length; i++) {
      frame[head.length + i] = masked ? bytes[i] ^ key[i & 3] : bytes[i];
    }
    await writeAll(this.conn, frame);
  }

  /** Reads the next frame, or undefined when the connection ends. */
  async next(): Promise<Frame | undefined> {
    for (;;) {
      const frame = this.#parse();
      if (frame !== undefined) return frame;
      if (!await this.#fill().catch(() => false)) return undefined;
    }
  }

  #parse(): Frame | undefined {
    const b = this.#buffer;
    if (b.length < 2) return undefined;
    let length = b[1] & 0x7f;
    let offset = 2;
    if (length === 126) {
      if (b.length < 4) return undefined;
      length = (b[2] << 8) | b[3];
      offset = 4;
    } else if (length === 127) {
      if (b.length < 10) return undefined;
      length = new DataView(b.buffer, b.byteOffset + 2).getUint32(4);
      offset = 10;
    }
    if (b.length < offset + length) return undefined;
    const frame = {
      opcode: b[0] & 0x0f,
      payload: b.slice(offset, offset + length),
    };
    this.#buffer = b.slice(offset + length);
    return frame;
  }

  /**
   * Reads frames until one that `wanted` holds for: every frame read, that
   * one last. Fails when the connection ends first or `ms` pass.
   */
  async until(
    wanted: (frame: Frame) => boolean,
    ms = 5000,
  ): Promise<Frame[]> {
    return await within(
      (async () => {
        const frames: Frame[] = [];
        for (;;) {
          const frame = await this.next();
          if (frame === undefined) {
            throw new Error(
              `The connection ended after ${
                frames.map((f) => f.opcode).join(",")
              }`,
            );
          }
          frames.push(frame);
          if (wanted(frame)) return frames;
        }
      })(),
      ms,
      "a frame",
    );
  }

  /** Reads frames until a close: its code and reason (or undefined). */
  async closeFrame(
    ms = 5000,
  ): Promise<{ code: number; reason: string; texts: string[] } | undefined> {
    const texts: string[] = [];
    return await within(
      (async () => {
        for (;;) {
          const frame = await this.next();
          if (frame === undefined) return undefined;
          if (frame.opcode === 1) texts.push(decoder.decode(frame.payload));
          if (frame.opcode === 8) {
            const code = (frame.payload[0] << 8) | frame.payload[1];
            return {
              code,
              reason: decoder.decode(frame.payload.subarray(2)),
              texts,
            };
          }
        }
      })(),
      ms,
      "a close frame",
    );
  }

  /** Closes the connection (without a close frame). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch {
      // Closed already.
    }
  }
}
