/**
 * What a hub's users see of it: its endpoints, their counters, the options
 * of `add`, and its events.
 *
 * @module
 */

import type { Message } from "../codec/messages.ts";
import type { Refusal } from "../gate.ts";
import type { Port } from "../port.ts";

/**
 * What an endpoint is to the routing:
 * - `"client"`: a remote peer (a TCP client, a page, an RTP-MIDI
 *   participant). Policies apply to it; clients hear each other when the
 *   hub relays.
 * - `"device"`: a local port (hardware, a virtual port, a program's own
 *   port). Devices hear clients and links, not each other.
 * - `"link"`: a link to other hubs. Links hear clients and devices, not
 *   each other; their own limit (`linkRateLimit`) applies to what they
 *   bring in.
 */
export type EndpointKind = "client" | "device" | "link";

/** One endpoint of a hub, as others see it. */
export interface Endpoint {
  /** A number unique within the hub. */
  readonly id: number;
  /** A name for people: `host:port` for clients, a device's name. */
  readonly name: string;
  /** What it is to the routing. */
  readonly kind: EndpointKind;
  /** How it is reached: `"tcp"`, `"midi"`, `"web"`, `"rtp"`, `"nats"`, ... */
  readonly transport: string;
  /** The port behind it. */
  readonly port: Port;
  /** When it joined (`Date.now()`, for people). */
  readonly joinedAt: number;
  /** Its counters, now. */
  readonly stats: EndpointStats;
}

/** What went through one endpoint. */
export interface EndpointStats {
  /** Messages taken from it. */
  readonly received: number;
  /** Messages routed to it. */
  readonly sent: number;
  /** Messages from it refused by a policy, or dropped by its port. */
  readonly dropped: number;
  /** Bytes waiting to reach it. */
  readonly queuedBytes: number;
  /** Notes it holds on now. */
  readonly heldNotes: number;
}

/** Options for {@linkcode Hub.add}. */
export interface AddOptions {
  /**
   * What the endpoint is to the routing.
   * @default {"client"}
   */
  kind?: EndpointKind;
  /**
   * A name for people.
   * @default {port.name}
   */
  name?: string;
  /**
   * How it is reached, for people.
   * @default {"port"}
   */
  transport?: string;
  /**
   * Use the port as an input (when it is one).
   * @default {true}
   */
  input?: boolean;
  /**
   * Use the port as an output (when it is one).
   * @default {true}
   */
  output?: boolean;
  /**
   * Close the port when the endpoint leaves.
   * @default {true}
   */
  close?: boolean;
  /** Called once, when the endpoint has left. */
  onLeave?: () => void;
}

/** Something that happened in a hub. */
export type HubEvent =
  | {
    /** An endpoint joined. */
    readonly type: "join";
    /** Which. */
    readonly endpoint: Endpoint;
  }
  | {
    /** An endpoint left. */
    readonly type: "leave";
    /** Which. */
    readonly endpoint: Endpoint;
    /** Why, when it did not just go away: an error. */
    readonly reason?: unknown;
    /** How many held notes were released for it. */
    readonly released: number;
  }
  | {
    /** A connection was refused at the gate. */
    readonly type: "refuse";
    /** Who and why. */
    readonly refusal: Refusal;
  }
  | {
    /** A message passed (only to listeners that asked for messages). */
    readonly type: "message";
    /** Where from. */
    readonly endpoint: Endpoint;
    /** The message. */
    readonly message: Message;
  }
  | {
    /** Something went wrong that does not stop the hub. */
    readonly type: "warning";
    /** The endpoint concerned, where there is one. */
    readonly endpoint?: Endpoint;
    /** What, for people. */
    readonly message: string;
  }
  | {
    /**
     * A transport says what people should know: where it can be reached (a
     * server, a page, a session), a port lost or back, another hub joined.
     */
    readonly type: "notice";
    /** What, for people. */
    readonly message: string;
  }
  | {
    /** The playout delay chosen (with `latency: "auto"`) changed. */
    readonly type: "latency";
    /** The delay now, in whole ms. */
    readonly latency: number;
  }
  | {
    /** A listener fell behind and missed events. */
    readonly type: "missed";
    /** How many. */
    readonly count: number;
  };

/** Options for {@linkcode Hub.events}. */
export interface EventOptions {
  /**
   * Include a `message` event for every message (costly on a busy hub).
   * @default {false}
   */
  messages?: boolean;
  /**
   * Events kept for a reader that falls behind; past it they are counted
   * and reported as one `missed` event.
   * @default {10000}
   */
  queueSize?: number;
}

/** A feed of hub events: iterate it; `close()` ends it. */
export interface EventFeed extends AsyncIterableIterator<HubEvent> {
  /** Stops the feed; iteration ends. */
  close(): void;
}
