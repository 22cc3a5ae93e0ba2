/**
 * Web streams over the codec, for byte streams such as `Deno.Conn`.
 *
 * @module
 */

import { encode } from "./encode.ts";
import type { Message } from "./messages.ts";
import { Parser, type ParserOptions } from "./parser.ts";

/**
 * Turns a stream of bytes, chunked anyhow, into a stream of messages, with
 * the rules of {@linkcode Parser}. An unfinished message at the end of the
 * stream is dropped.
 *
 * @example Reading messages from a connection
 * ```ts ignore
 * import { MidiDecoderStream } from "@x/midisock/codec";
 *
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: 8080 });
 * for await (const msg of conn.readable.pipeThrough(new MidiDecoderStream())) {
 *   console.log(msg);
 * }
 * ```
 */
export class MidiDecoderStream extends TransformStream<Uint8Array, Message> {
  /**
   * Makes the stream.
   *
   * @param options The parser's options.
   */
  constructor(options?: ParserOptions) {
    const parser = new Parser(options);
    super({
      transform(chunk, controller) {
        for (const msg of parser.feed(chunk)) controller.enqueue(msg);
      },
    });
  }
}

/**
 * Turns a stream of messages into their bytes, a chunk per message. A
 * malformed message errors the stream with the `TypeError` or `RangeError`
 * of {@linkcode encode}.
 *
 * @example Writing messages to a connection
 * ```ts ignore
 * import { message, MidiEncoderStream } from "@x/midisock/codec";
 *
 * const conn = await Deno.connect({ hostname: "127.0.0.1", port: 8080 });
 * await ReadableStream.from([message("note_on", { note: 60 })])
 *   .pipeThrough(new MidiEncoderStream())
 *   .pipeTo(conn.writable);
 * ```
 */
export class MidiEncoderStream extends TransformStream<Message, Uint8Array> {
  /** Makes the stream. */
  constructor() {
    super({
      transform(msg, controller) {
        controller.enqueue(encode(msg));
      },
    });
  }
}
