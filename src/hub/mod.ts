/**
 * The hub: one router that every transport hands its endpoints to. TCP
 * clients, hardware ports, web pages, RTP-MIDI participants and links to
 * other hubs are all endpoints: anything with the port interfaces.
 *
 * Its parts, one job a file: `hub.ts` (the `Hub`: add, remove, attach,
 * inject, close, and the `Transport` contract), `_options.ts` (options,
 * checked once, every default), `_router.ts` (routing and policies),
 * `_backpressure.ts` (readers that fall behind, the budget, the periodic
 * check), `_port_sink.ts` (the queue for ports without a sink of their own),
 * `_events.ts` (listeners and feeds), `_member.ts` and `_batch.ts` (what the
 * hub keeps for an endpoint and for a batch).
 *
 * @module
 */

export { Hub, type Transport } from "./hub.ts";
export type { HubOptions } from "./_options.ts";
export type {
  AddOptions,
  Endpoint,
  EndpointKind,
  EndpointStats,
  EventFeed,
  EventOptions,
  HubEvent,
} from "./types.ts";
export { HubLog, type HubLogOptions } from "./log.ts";
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
} from "../gate.ts";
export { AddressList } from "../access.ts";
export { NoteTracker } from "../notes.ts";
export type { RateLimit, SysexPolicy } from "../_policy.ts";
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
} from "../sink.ts";
export { type ClockTimer, systemClock, type TimeSource } from "../clock.ts";
export {
  type ScheduledCall,
  Scheduler,
  type SchedulerOptions,
} from "../time/scheduler.ts";
export {
  ClockSync,
  type ClockSyncOptions,
  type SyncSample,
} from "../time/sync.ts";
export {
  Playout,
  type PlayoutOptions,
  type PlayoutStats,
} from "../time/playout.ts";

// What the API above refers to, from elsewhere in the package.
export type * from "../codec/types.ts";
export type * from "../port.ts";
