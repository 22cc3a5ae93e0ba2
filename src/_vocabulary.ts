/**
 * Internal: the types every wing's API speaks of (messages, ports, the hub,
 * its gate and its clock), re-exported by each subpath so that its
 * documentation is whole.
 *
 * @module
 */

export type * from "./codec/types.ts";
export type * from "./port.ts";
export type * from "./hub/types.ts";
export type { Hub, Transport } from "./hub/hub.ts";
export type * from "./gate.ts";
export type { ClockTimer, TimeSource } from "./clock.ts";
export type { PlayoutStats } from "./time/playout.ts";
