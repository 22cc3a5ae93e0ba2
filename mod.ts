/**
 * midisock: a MIDI hub for Deno and the library it is made of. MIDI over
 * TCP/IP wire-compatible with Python mido's socket ports (a plain MIDI 1.0
 * byte stream), hardware MIDI through RtMidi, RTP-MIDI sessions and hubs
 * federated over NATS, all joined by one {@linkcode Hub}, with one async port
 * vocabulary: every input is `for await`-able, every output has `send`,
 * `reset` and `panic`.
 *
 * Importing this module needs no permission; RtMidi and the NATS client are
 * loaded on first use only.
 *
 * @example Encoding and parsing messages
 * ```ts
 * import assert from "node:assert/strict";
 * import { encode, formatMessage, message, Parser } from "@x/midisock";
 *
 * const bytes = encode(message("note_on", { note: 60 }));
 * assert.deepEqual(bytes, new Uint8Array([0x90, 60, 64]));
 * const [msg] = new Parser().feed(bytes);
 * assert.equal(formatMessage(msg), "note_on channel=0 note=60 velocity=64 time=0");
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
export {
  FellBehindError,
  PortClosedError,
  QueueFullError,
  RefusedError,
  type RefusedErrorOptions,
} from "./src/errors.ts";
export {
  type Address,
  formatAddress,
  parseAddress,
  unmapAddress,
} from "./src/address.ts";
export {
  DEFAULT_MAX_QUEUED_BYTES,
  type PendingRead,
  type Preamble,
  type SocketOptions,
  SocketPort,
  type SocketPortOptions,
  type SysexPolicy,
} from "./src/net/socket_port.ts";
export {
  type AcceptOptions,
  PortServer,
  type PortServerOptions,
} from "./src/net/server.ts";
export { connect, type ConnectOptions } from "./src/net/connect.ts";
export {
  ReconnectingPort,
  type ReconnectOptions,
} from "./src/net/reconnecting_port.ts";
export {
  type Backoff,
  exponentialBackoff,
  type ExponentialBackoffOptions,
} from "./src/backoff.ts";
export { NoteTracker } from "./src/notes.ts";
export { AddressList } from "./src/access.ts";
export { TOKEN_PREFIX } from "./src/net/_hello.ts";
export type { RateLimit } from "./src/_policy.ts";
export {
  type ArriveOptions,
  Gate,
  type GateOptions,
  isToken,
  MAX_DETAIL_LENGTH,
  MIN_TOKEN_LENGTH,
  type Peer,
  printable,
  type Refusal,
  REFUSAL_CODES,
  type RefusalCode,
  type Ticket,
  WAITING_CHECKS_PER_SECOND,
} from "./src/gate.ts";
export {
  type Batch,
  type HasSink,
  hasSink,
  type HasSource,
  hasSource,
  SINK,
  type Sink,
  SOURCE,
  type Source,
} from "./src/sink.ts";
export {
  type AddOptions,
  type Endpoint,
  type EndpointKind,
  type EndpointStats,
  type EventFeed,
  type EventOptions,
  Hub,
  type HubEvent,
  HubLog,
  type HubLogOptions,
  type HubOptions,
} from "./src/hub/mod.ts";
export { type Transport } from "./src/transport.ts";
export { type ClockTimer, systemClock, type TimeSource } from "./src/clock.ts";
export {
  type ScheduledCall,
  Scheduler,
  type SchedulerOptions,
} from "./src/time/scheduler.ts";
export {
  ClockSync,
  type ClockSyncOptions,
  type SyncSample,
} from "./src/time/sync.ts";
export {
  Playout,
  type PlayoutOptions,
  type PlayoutStats,
} from "./src/time/playout.ts";
export * from "./src/hardware/mod.ts";
export {
  formatNatsLinkEvent,
  type LeaveReason,
  NatsLink,
  NatsLinkError,
  type NatsLinkEvent,
  type NatsLinkOptions,
  type NatsLinkStats,
  type NatsTlsOptions,
  type RemoteHub,
} from "./src/nats/link.ts";
export * from "./src/rtp/mod.ts";
export { WebServer, type WebServerOptions } from "./src/web/server.ts";
