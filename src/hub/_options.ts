/**
 * Internal: a hub's options, checked once, defaults filled in, frozen, and
 * passed down to the parts of the hub. Every default of the hub is defined
 * here, and nowhere else.
 *
 * @module
 */

import { systemClock, type TimeSource } from "../clock.ts";
import type { GateOptions } from "../gate.ts";
import {
  checkLatency,
  checkMaxSysexLength,
  checkRate,
  defaultMaxQueuedBytes,
  positiveInteger,
  positiveMs,
  type Rate,
  type RateLimit,
  sysexLimit,
  type SysexPolicy,
} from "../_policy.ts";
import type { Endpoint, HubEvent } from "./types.ts";

/** Options for {@linkcode Hub}. */
export interface HubOptions extends GateOptions {
  /**
   * Whether clients hear each other. Without relay, clients reach devices
   * and links only.
   * @default {true}
   */
  relay?: boolean;
  /**
   * When an endpoint leaves with notes on, send a note_off for each where
   * its messages went, so nothing is left sounding.
   * @default {true}
   */
  releaseNotes?: boolean;
  /**
   * Sysex from clients: `"allow"`, `"drop"`, or the longest let through, in
   * data bytes.
   * @default {"allow"}
   */
  sysexIn?: SysexPolicy;
  /**
   * Sysex to clients: `"allow"`, `"drop"`, or the longest let through.
   * @default {"allow"}
   */
  sysexOut?: SysexPolicy;
  /**
   * The longest sysex a transport's parser keeps, in data bytes.
   * @default {1048576}
   */
  maxSysexLength?: number;
  /**
   * Most messages per second from each client, with bursts; the excess is
   * dropped and counted. Messages count by arrival: those of one read are
   * spread over the time since the read before. A message that ends a note
   * the client played through the hub (a note_off, a note_on of velocity 0,
   * all notes off and the other controls that end notes, a reset) is never
   * dropped, so no limit leaves a note sounding.
   * @default {undefined} (no limit)
   */
  rateLimit?: RateLimit;
  /**
   * Most messages per second from each link to other hubs (endpoints of
   * kind `"link"`: a NATS room), with bursts: the same rule as `rateLimit`,
   * apart because a link carries a whole room. Notes' ends always pass.
   * Links also take their turn like every input (a read of at most 4096
   * messages, then every other input's turn), so a link's flood delays a
   * local input's message by a turn at most.
   * @default {undefined} (no limit)
   */
  linkRateLimit?: RateLimit;
  /**
   * An endpoint with more than this many bytes waiting for it is behind;
   * one that stays behind for `maxLag` is dropped. The default is 1 MiB or
   * twice the largest message the sysex policies let through, whichever is
   * more, so that one big message passing is never taken for lag: with the
   * default sysex bounds, 2,097,156 bytes (2 x (1 MiB + 2)).
   *
   * A reader that keeps taking is not dropped for others' floods: past half
   * of this waiting for it, the hub stops reading every input that sent
   * more than its fair share (what one reader takes at `maxQueuedBytes`
   * every `maxLag`, split between the inputs) until the reader is down to a
   * quarter, then gives each of them a read in turn. Inputs within their
   * share go on meanwhile. A reader keeps up while it catches up within
   * `maxLag` whenever it holds inputs back like this.
   * @default {max(1048576, 2 x (largest sysex let out + 2))}
   */
  maxQueuedBytes?: number;
  /**
   * The most bytes that may wait for all endpoints together, counting what
   * each holds for itself alone (a big message queued for many by
   * reference counts once, at its sender's turn). Past it, endpoints are
   * dropped until a quarter of it is free again: first those that took
   * nothing since the last check, then those holding most. However many
   * connect, what waits for them stays bounded. At least `maxQueuedBytes`.
   * @default {max(64 MiB, 4 x maxQueuedBytes)}
   */
  maxQueuedTotal?: number;
  /**
   * How long an endpoint may stay behind before it is dropped, in
   * milliseconds. One that takes nothing at all while 64 KiB or more wait
   * for it is dropped too: after maxLag when half of `maxQueuedBytes` waits,
   * and given longer the less waits, up to 4 x maxLag, so that a brief
   * network dropout does not cost a reader its connection.
   * @default {2000}
   */
  maxLag?: number;
  /**
   * Drop clients that send nothing for this long, in milliseconds. Off by
   * default: a client that only listens sends nothing.
   * @default {undefined} (never)
   */
  idleTimeout?: number;
  /**
   * What active sensing from a client is: `"link"`, a keep-alive of that
   * client's link, as MIDI 1.0 means it (answered, not relayed); or
   * `"relay"`, a message like any other.
   * @default {"link"}
   */
  activeSensing?: "link" | "relay";
  /**
   * Decides who hears whom; the default follows the endpoint kinds (see
   * {@linkcode EndpointKind}) and `relay`.
   */
  route?: (from: Endpoint, to: Endpoint) => boolean;
  /** Called with every event, as it happens. */
  onEvent?: (event: HubEvent) => void;
  /**
   * The hub's time: every check it makes and every wait (lag, stalls, idle
   * clients, rate limits, how often active sensing is answered, the close
   * deadline) reads this clock. Tests hand in one they step by hand.
   * @default {systemClock}
   */
  clock?: TimeSource;
  /**
   * A playout delay, in milliseconds, or `"auto"`: each message is
   * delivered to the endpoints that do not play out time themselves
   * (mido and other plain TCP clients, hardware, pages without their own
   * scheduling) at the time it happened plus this delay, so that network
   * jitter under the delay disappears and only a steady latency is left.
   * A message due before it arrives goes at once and counts as late
   * (`hub.timing`). Each source's order is kept. `"auto"` picks the
   * smallest delay that keeps late messages under 0.1% from the delays
   * measured, adapts slowly, and reports each change as a `latency`
   * event. Timed endpoints (a timed TCP link, NATS, RTP-MIDI, pages that
   * schedule) get each message at once with its time.
   * @default {0} (deliver at once)
   */
  latency?: number | "auto";
}

/** The defaults of a hub's options that do not depend on others. */
export const HUB_DEFAULTS = Object.freeze(
  {
    relay: true,
    releaseNotes: true,
    sysexIn: "allow",
    sysexOut: "allow",
    maxLag: 2000,
    /** The smallest `maxQueuedTotal`, and how many `maxQueuedBytes` it is. */
    minQueuedTotal: 64 << 20,
    queuedTotalFactor: 4,
    activeSensing: "link",
    latency: 0,
  } as const,
);

/** A hub's options, checked, with every default filled in. */
export interface HubSettings {
  readonly route: (from: Endpoint, to: Endpoint) => boolean;
  readonly releaseNotes: boolean;
  /** Longest sysex let in from clients, out to them: -1 none, Infinity any. */
  readonly sysexIn: number;
  readonly sysexOut: number;
  readonly maxSysexLength: number;
  readonly rate: Rate | undefined;
  readonly linkRate: Rate | undefined;
  readonly maxQueuedBytes: number;
  readonly maxQueuedTotal: number;
  readonly maxLag: number;
  readonly idleTimeout: number | undefined;
  readonly sensingIsLink: boolean;
  readonly clock: TimeSource;
  /** The playout delay (ms, 0 for none), or "auto". */
  readonly latency: number | "auto";
}

/** The routing by kinds (see `EndpointKind`). */
export function defaultRoute(
  relay: boolean,
): (from: Endpoint, to: Endpoint) => boolean {
  return (from: Endpoint, to: Endpoint): boolean => {
    switch (from.kind) {
      case "client":
        return relay || to.kind !== "client";
      case "device":
        return to.kind !== "device";
      case "link":
        return to.kind !== "link";
    }
  };
}

/**
 * Checks a hub's options (all but the gate's) and fills in their defaults.
 *
 * @throws {RangeError} For a bound or policy out of range.
 * @throws {TypeError} For a route or clock that is not one.
 */
export function resolveHubOptions(options: HubOptions): HubSettings {
  const sysexIn = sysexLimit(
    "sysexIn",
    options.sysexIn ?? HUB_DEFAULTS.sysexIn,
  );
  const sysexOut = sysexLimit(
    "sysexOut",
    options.sysexOut ?? HUB_DEFAULTS.sysexOut,
  );
  const maxSysexLength = checkMaxSysexLength(options.maxSysexLength, sysexIn);
  const maxQueuedBytes = options.maxQueuedBytes === undefined
    ? defaultMaxQueuedBytes(Math.min(maxSysexLength, Math.max(sysexOut, 0)))
    : positiveInteger("maxQueuedBytes", options.maxQueuedBytes);
  const maxQueuedTotal = options.maxQueuedTotal === undefined
    ? Math.max(
      HUB_DEFAULTS.minQueuedTotal,
      HUB_DEFAULTS.queuedTotalFactor * maxQueuedBytes,
    )
    : positiveInteger("maxQueuedTotal", options.maxQueuedTotal);
  if (maxQueuedTotal < maxQueuedBytes) {
    throw new RangeError(
      `maxQueuedTotal must be at least maxQueuedBytes (${maxQueuedBytes}): got ${maxQueuedTotal}`,
    );
  }
  const sensing = options.activeSensing ?? HUB_DEFAULTS.activeSensing;
  if (sensing !== "link" && sensing !== "relay") {
    throw new RangeError(
      `activeSensing must be "link" or "relay": got ${JSON.stringify(sensing)}`,
    );
  }
  if (options.route !== undefined && typeof options.route !== "function") {
    throw new TypeError(
      `route must be a function: got ${typeof options.route}`,
    );
  }
  const clock = options.clock ?? systemClock;
  if (
    typeof clock?.now !== "function" || typeof clock.setTimer !== "function"
  ) {
    throw new TypeError("clock must have now() and setTimer()");
  }
  return Object.freeze({
    route: options.route ?? defaultRoute(options.relay ?? HUB_DEFAULTS.relay),
    releaseNotes: options.releaseNotes ?? HUB_DEFAULTS.releaseNotes,
    sysexIn,
    sysexOut,
    maxSysexLength,
    rate: options.rateLimit && checkRate(options.rateLimit),
    linkRate: options.linkRateLimit &&
      checkRate(options.linkRateLimit, "Link rate limit"),
    maxQueuedBytes,
    maxQueuedTotal,
    maxLag: positiveMs("maxLag", options.maxLag ?? HUB_DEFAULTS.maxLag),
    idleTimeout: options.idleTimeout === undefined
      ? undefined
      : positiveMs("idleTimeout", options.idleTimeout),
    sensingIsLink: sensing === "link",
    clock,
    latency: checkLatency(options.latency ?? HUB_DEFAULTS.latency),
  });
}
