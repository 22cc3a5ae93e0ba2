/**
 * Hubs federated over NATS: a `NatsLink` is a transport that joins a room
 * shared by hubs on other machines; every hub hears what the clients of
 * every other hub send, with presence, held notes ended for hubs that go,
 * and time carried between hubs whose clocks are compared. The NATS client
 * (npm `@nats-io/transport-node`) is loaded only when a link connects.
 *
 * @example Joining a room
 * ```ts ignore
 * import { Hub } from "@x/midisock";
 * import { NatsLink } from "@x/midisock/nats";
 *
 * await using hub = new Hub();
 * await hub.attach(new NatsLink("nats://127.0.0.1:4222", { room: "stage" }));
 * ```
 *
 * @module
 */

export {
  formatNatsLinkEvent,
  type LeaveReason,
  NatsLink,
  NatsLinkError,
  type NatsLinkEvent,
  type NatsLinkOptions,
  type NatsLinkStats,
  type NatsTlsOptions,
  type RemoteClock,
  type RemoteHub,
} from "./link.ts";

// What the API above refers to, from elsewhere in the package.
export type * from "../_vocabulary.ts";
export { type Batch, type Sink, type Source } from "../hub/mod.ts";
