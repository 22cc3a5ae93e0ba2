/**
 * midisock: MIDI over TCP/IP for Deno, wire-compatible with Python mido's
 * socket ports (a plain MIDI 1.0 byte stream, not RTP-MIDI), with hardware
 * MIDI through RtMidi, and one async port vocabulary for both: every input
 * is `for await`-able, every output has `send`, `reset` and `panic`.
 *
 * Importing this module needs no permission; RtMidi is loaded on the first
 * hardware call only.
 *
 * @example Encoding and parsing messages
 * ```ts
 * import { encode, formatMessage, message, Parser } from "@x/midisock";
 *
 * const bytes = encode(message("note_on", { note: 60 }));
 * for (const msg of new Parser().feed(bytes)) console.log(formatMessage(msg));
 * // note_on channel=0 note=60 velocity=64 time=0
 * ```
 *
 * @module
 */

export * from "./src/codec/mod.ts";
export {
  DEFAULT_QUEUE_SIZE,
  type InputPort,
  InputPortBase,
  type IOPort,
  MessageQueue,
  type OutputPort,
  PANIC_MESSAGES,
  type Port,
  RESET_MESSAGES,
} from "./src/port.ts";
export { PortClosedError, QueueFullError } from "./src/errors.ts";
export {
  type Address,
  formatAddress,
  parseAddress,
} from "./src/net/address.ts";
export {
  DEFAULT_MAX_QUEUED_BYTES,
  type SocketOptions,
  SocketPort,
  type SysexPolicy,
} from "./src/net/socket_port.ts";
export {
  type AcceptOptions,
  connect,
  type ConnectOptions,
  PortServer,
  type PortServerOptions,
} from "./src/net/server.ts";
export {
  ReconnectingPort,
  type ReconnectOptions,
} from "./src/net/reconnecting_port.ts";
export { NoteTracker } from "./src/notes.ts";
export { AddressList, type RateLimit, TOKEN_PREFIX } from "./src/net/access.ts";
export * from "./src/hardware/mod.ts";
export * from "./src/rtp/mod.ts";
