/**
 * midisock: a MIDI hub for Deno and the library it is made of. MIDI over
 * TCP/IP wire-compatible with Python mido's socket ports (a plain MIDI 1.0
 * byte stream), hardware MIDI through RtMidi, RTP-MIDI sessions and hubs
 * federated over NATS, all joined by one {@linkcode Hub}, with one async port
 * vocabulary: every input is `for await`-able, every output has `send`,
 * `reset` and `panic`.
 *
 * The root holds what most programs use: messages and the codec, ports,
 * the TCP server and clients, hardware ports, the hub, its log and the
 * transport contract. Each wing also has a subpath with all of it:
 * `@x/midisock/codec`, `/net`, `/hardware`, `/hub` (admission, sinks,
 * time), `/web`, `/rtp` (sessions and the RTP-MIDI codec), `/nats`.
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
  type AcceptOptions,
  type Address,
  type Backoff,
  connect,
  type ConnectOptions,
  exponentialBackoff,
  type ExponentialBackoffOptions,
  formatAddress,
  parseAddress,
  type PendingRead,
  PortServer,
  type PortServerOptions,
  type Preamble,
  type ReconnectEvent,
  ReconnectingPort,
  type ReconnectOptions,
  type SocketOptions,
  SocketPort,
  type SocketPortOptions,
  type SocketTiming,
  type SysexPolicy,
} from "./src/net/mod.ts";
export {
  type AddOptions,
  type ArriveOptions,
  type Batch,
  type ClockTimer,
  type Endpoint,
  type EndpointKind,
  type EndpointStats,
  type EventFeed,
  type EventOptions,
  Gate,
  type GateOptions,
  type HasSink,
  type HasSource,
  Hub,
  type HubEvent,
  HubLog,
  type HubLogOptions,
  type HubOptions,
  NoteTracker,
  type Peer,
  type PlayoutStats,
  type RateLimit,
  type Refusal,
  type RefusalCode,
  SINK,
  type Sink,
  SOURCE,
  type Source,
  systemClock,
  type Ticket,
  type TimeSource,
  type Transport,
} from "./src/hub/mod.ts";
export {
  BackendUnavailableError,
  followInput,
  followOutput,
  getInputNames,
  getOutputNames,
  listPorts,
  MidiPorts,
  type MidiPortsOptions,
  openInput,
  openIOPort,
  openOutput,
  PortLostError,
  PortNotFoundError,
  RtMidiError,
  RtMidiNotFoundError,
  watchPorts,
} from "./src/hardware/mod.ts";
export { RtpMidiSession, type RtpMidiSessionOptions } from "./src/rtp/mod.ts";
export { NatsLink, type NatsLinkOptions } from "./src/nats/mod.ts";
export { WebServer, type WebServerOptions } from "./src/web/mod.ts";

// What the API above refers to, from elsewhere in the package.
export {
  type FollowEvent,
  type FollowInputOptions,
  type FollowOptions,
  type FollowOutputOptions,
  type HardwareApi,
  type HardwareInput,
  type HardwareIOPort,
  type HardwareOptions,
  type HardwareOutput,
  type InputOptions,
  type IOPortOptions,
  type ListedPort,
  type MidiPortsEvent,
  type OutputOptions,
  type PortChange,
  type PortFollower,
  type PortListing,
  type PortOptions,
  type PortWatcher,
  type UnavailableBackend,
  type WatchOptions,
} from "./src/hardware/mod.ts";
export { REFUSAL_CODES } from "./src/hub/mod.ts";
export {
  type LeaveReason,
  type NatsLinkEvent,
  type NatsLinkStats,
  type NatsTlsOptions,
  type RemoteClock,
  type RemoteHub,
} from "./src/nats/mod.ts";
export {
  type BonjourAdvertisement,
  type RtpMidiParticipant,
  type RtpMidiParticipantStats,
  type RtpMidiSessionStats,
  type RtpMidiWarning,
} from "./src/rtp/mod.ts";
