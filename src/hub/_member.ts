/**
 * Internal: what the hub keeps for each endpoint.
 *
 * @module
 */

import type { Message } from "../codec/messages.ts";
import { NoteTracker } from "../notes.ts";
import type { InputPort, Port } from "../port.ts";
import { TokenBucket } from "../_policy.ts";
import type { Sink } from "../sink.ts";
import type { HubSettings } from "./_options.ts";
import type {
  AddOptions,
  Endpoint,
  EndpointKind,
  EndpointStats,
} from "./types.ts";

let nextId = 1;

/** One endpoint, with the hub's bookkeeping for it. */
export class Member implements Endpoint {
  readonly id = nextId++;
  readonly name: string;
  readonly kind: EndpointKind;
  readonly transport: string;
  readonly port: Port;
  readonly joinedAt = Date.now();
  readonly input: InputPort | undefined;
  /** Whether its input comes as framed bytes (a `Source`). */
  source = false;
  /** Messages injected this turn, not routed yet. */
  injected: Message[] | undefined;
  sink: Sink | undefined;
  /**
   * The notes it holds: kept to release them when it leaves, and to let
   * the ends of its notes past its rate limit.
   */
  readonly notes: NoteTracker | undefined;
  /** Whether its held notes are released when it leaves. */
  readonly releases: boolean;
  /** Its rate limit: clients' `rateLimit`, links' `linkRateLimit`. */
  readonly bucket: TokenBucket | undefined;
  /** Whether the client policies (sysex in, active sensing) apply. */
  readonly client: boolean;
  readonly closePort: boolean;
  readonly onLeave: (() => void) | undefined;
  received = 0;
  sent = 0;
  dropped = 0;
  warned = false;
  /** Bytes taken from its input, in all, and at the last check. */
  inputBytes = 0;
  inputSeen = 0;
  /** The hub's time of its last input. */
  lastInput: number;
  /** When its active sensing was last answered. */
  answeredAt = -Infinity;

  // What the backpressure part keeps (see _backpressure.ts).
  /** How long it has been over the bound, in counted time. */
  behind = 0;
  /** How long it has taken nothing with bytes waiting, likewise. */
  stalled = 0;
  /** The sink's progress count when last checked. */
  progressSeen = 0;
  /** Whether it took nothing during the last check's interval. */
  idle = false;
  /**
   * Whether it keeps up: it caught up within `maxLag` whenever it held the
   * inputs back (or has caught up since it last did not). Such a reader is
   * waited for rather than left behind.
   */
  keepsUp = true;
  /** How long it has held the inputs back, this time, in counted time. */
  held = 0;

  /** Set when its output stops: dropped, or closed. */
  reason: unknown;
  outputDead = false;
  left = false;
  pump: Promise<void> | undefined;

  constructor(
    port: Port,
    options: AddOptions,
    input: InputPort | undefined,
    settings: HubSettings,
  ) {
    this.port = port;
    this.name = options.name ?? port.name;
    this.kind = options.kind ?? "client";
    this.transport = options.transport ?? "port";
    this.input = input;
    this.client = this.kind === "client";
    const rate = this.kind === "client"
      ? settings.rate
      : this.kind === "link"
      ? settings.linkRate
      : undefined;
    const now = settings.clock.now();
    this.lastInput = now;
    this.bucket = rate !== undefined && input !== undefined
      ? new TokenBucket(rate, now)
      : undefined;
    this.releases = settings.releaseNotes;
    this.notes = input !== undefined &&
        (settings.releaseNotes || this.bucket !== undefined)
      ? new NoteTracker()
      : undefined;
    this.closePort = options.close ?? true;
    this.onLeave = options.onLeave;
  }

  get stats(): EndpointStats {
    return {
      received: this.received,
      sent: this.sent,
      dropped: this.dropped + (this.port.dropped ?? 0),
      queuedBytes: this.sink?.queuedBytes ?? 0,
      heldNotes: this.notes?.size ?? 0,
    };
  }

  /** The notes to release as it leaves (and forgets them). */
  release(): Message[] {
    return this.releases ? this.notes?.release() ?? [] : [];
  }
}
