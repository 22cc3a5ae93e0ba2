/**
 * MIDI over TCP, wire-compatible with mido's socket ports: a server
 * (`PortServer`, a transport of a hub or a port of its own), clients
 * (`connect`, `SocketPort`, `ReconnectingPort`), the timed mode between
 * midisock programs, and addresses.
 *
 * @example A server and a client
 * ```ts
 * import assert from "node:assert/strict";
 * import { message } from "@x/midisock";
 * import { connect, PortServer } from "@x/midisock/net";
 *
 * await using server = new PortServer("127.0.0.1", 0);
 * await using client = await connect("127.0.0.1", server.port);
 * await client.send(message("note_on", { note: 60 }));
 * assert.deepEqual(await server.receive(), message("note_on", { note: 60 }));
 * ```
 *
 * @module
 */

export {
  DEFAULT_MAX_QUEUED_BYTES,
  type PendingRead,
  type Preamble,
  type SocketOptions,
  SocketPort,
  type SocketPortOptions,
  type SocketTiming,
  type SysexPolicy,
} from "./socket_port.ts";
export {
  type AcceptOptions,
  PortServer,
  type PortServerOptions,
} from "./server.ts";
export { connect, type ConnectOptions } from "./connect.ts";
export {
  DEFAULT_HEARTBEAT_MS,
  describeConnectError,
  formatReconnectEvent,
  type ReconnectEvent,
  ReconnectingPort,
  type ReconnectOptions,
} from "./reconnecting_port.ts";
export { TOKEN_PREFIX } from "./_hello.ts";
export {
  type Address,
  formatAddress,
  parseAddress,
  unmapAddress,
} from "../address.ts";
export {
  type Backoff,
  exponentialBackoff,
  type ExponentialBackoffOptions,
} from "../backoff.ts";

// What the API above refers to, from elsewhere in the package.
export type * from "../_vocabulary.ts";
export { RefusedError } from "../errors.ts";
export {
  type Batch,
  type RateLimit,
  type Sink,
  type Source,
} from "../hub/mod.ts";
