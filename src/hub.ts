/**
 * The hub: one router that every transport hands its endpoints to. TCP
 * clients, hardware ports, web pages, RTP-MIDI participants and links to
 * other hubs are all endpoints: anything with the port interfaces.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import { checkMessage, type Message } from "./codec/messages.ts";
import { encodedLength } from "./codec/encode.ts";
import { DEFAULT_MAX_SYSEX_LENGTH } from "./codec/parser.ts";
import { decodeFramed, encodeFramed, FRAMED_SIZE } from "./codec/_framer.ts";
import { FellBehindError, PortClosedError } from "./errors.ts";
import { Gate, type GateOptions, type Refusal } from "./gate.ts";
import { NoteTracker } from "./notes.ts";
import type { InputPort, OutputPort, Port } from "./port.ts";
import {
  checkRate,
  positiveInteger,
  positiveMs,
  type Rate,
  type RateLimit,
  sysexLimit,
  type SysexPolicy,
  TokenBucket,
} from "./_policy.ts";
import {
  type Batch,
  hasSink,
  hasSource,
  SINK,
  type Sink,
  SOURCE,
} from "./sink.ts";
import { atMost } from "./_time.ts";
import { callBack } from "./_call.ts";
import type { Transport } from "./transport.ts";

/**
 * What an endpoint is to the routing:
 * - `"client"`: a remote peer (a TCP client, a page, an RTP-MIDI
 *   participant). Policies apply to it; clients hear each other when the
 *   hub relays.
 * - `"device"`: a local port (hardware, a virtual port, a program's own
 *   port). Devices hear clients and links, not each other.
 * - `"link"`: a link to other hubs. Links hear clients and devices, not
 *   each other.
 */
export type EndpointKind = "client" | "device" | "link";

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
   * spread over the time since the read before.
   * @default {undefined} (no limit)
   */
  rateLimit?: RateLimit;
  /**
   * An endpoint with more than this many bytes waiting for it is behind;
   * one that stays behind for `maxLag` is dropped. The default is 1 MiB or
   * twice the largest message the sysex policies let through, whichever is
   * more, so that one big message passing is never taken for lag.
   * @default {max(1 MiB, 2 x largest message)}
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
}

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
  /** When it joined (`Date.now()`). */
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

/** The most messages taken from one endpoint before others get a turn. */
const TURN = 4096;
const LAG_CHECK_MS = 250;
/** Bytes that must wait, unmoved, for a reader to count as stalled. */
const STALL_BYTES = 64 * 1024;
/** The most times maxLag a reader that takes nothing is given. */
const STALL_PATIENCE = 4;
/** How late a check may run and still count in full. */
const LATE_MS = 50;
/** How often a client's active sensing is answered, at most. */
const ANSWER_MS = 100;
const ACTIVE_SENSING: Message = Object.freeze({
  type: "active_sensing",
  time: 0,
});
const SENSING_BYTES = new Uint8Array([0xfe]);
/** How long `close()` lets endpoints close gracefully. */
const CLOSE_DEADLINE_MS = 2000;
/** How far past `maxQueuedBytes` an endpoint may go before it is dropped at once. */
const HARD_FACTOR = 8;

/** A batch made from whichever form came first; the other on first use. */
class FramedBatch implements Batch {
  #messages: readonly Message[] | undefined;
  #bytes: Uint8Array | undefined;
  #count: number | undefined;

  constructor(
    bytes?: Uint8Array,
    messages?: readonly Message[],
    count?: number,
  ) {
    this.#bytes = bytes;
    this.#messages = messages;
    this.#count = count ?? messages?.length;
  }

  /** How many messages it holds. */
  get count(): number {
    return this.#count ??= countFramed(this.#bytes!);
  }

  get messages(): readonly Message[] {
    return this.#messages ??= decodeFramed(this.#bytes!, []);
  }

  get bytes(): Uint8Array {
    return this.#bytes ??= encodeFramed(this.#messages!);
  }
}

/** The length of the framed message at `i`. */
function sizeAt(bytes: Uint8Array, i: number): number {
  const status = bytes[i];
  return status === 0xf0
    ? bytes.indexOf(0xf7, i + 1) - i + 1
    : FRAMED_SIZE[status - 0x80];
}

/** Counts the framed messages in `bytes`. */
function countFramed(bytes: Uint8Array): number {
  let count = 0;
  for (let i = 0; i < bytes.length; i += sizeAt(bytes, i)) count++;
  return count;
}

/** A sink for any `OutputPort`: a queue, sent one message at a time. */
class PortSink implements Sink {
  readonly #port: OutputPort;
  readonly #onClosed: (reason: unknown) => void;
  readonly #onError: (error: unknown) => void;
  #queue: Message[] = [];
  #head = 0;
  #bytes = 0;
  #progressAt = 0;
  #pumping: Promise<void> | undefined;
  #closed = false;
  #drain: PromiseWithResolvers<void> | undefined;
  readonly slow = "drop" as const;

  constructor(
    port: OutputPort,
    onClosed: (reason: unknown) => void,
    onError: (error: unknown) => void,
  ) {
    this.#port = port;
    this.#onClosed = onClosed;
    this.#onError = onError;
  }

  get queuedBytes(): number {
    return this.#bytes;
  }

  get copiedBytes(): number {
    return this.#bytes;
  }

  get progressAt(): number {
    return this.#progressAt;
  }

  write(batch: Batch): boolean {
    if (this.#closed) return false;
    if (this.#bytes === 0) this.#progressAt = performance.now();
    for (const msg of batch.messages) {
      this.#queue.push(msg);
      this.#bytes += encodedLength(msg);
    }
    this.#pumping ??= this.#pump();
    return true;
  }

  drained(): Promise<void> {
    if (this.#bytes === 0 || this.#closed) return Promise.resolve();
    this.#drain ??= Promise.withResolvers<void>();
    return this.#drain.promise;
  }

  async #pump(): Promise<void> {
    const port = this.#port as OutputPort & {
      sendAll?: (messages: Iterable<Message>) => Promise<void>;
    };
    while (this.#head < this.#queue.length && !this.#closed) {
      // A port that takes many at once gets all that wait; others one by one.
      const messages = typeof port.sendAll === "function"
        ? this.#queue.slice(this.#head)
        : [this.#queue[this.#head]];
      this.#head += messages.length;
      try {
        await (messages.length === 1
          ? port.send(messages[0])
          : port.sendAll!(messages));
      } catch (error) {
        if (error instanceof PortClosedError || port.closed) {
          this.#closed = true;
          this.#onClosed(error);
          break;
        }
        this.#onError(error);
      }
      for (const msg of messages) this.#bytes -= encodedLength(msg);
      this.#progressAt = performance.now();
      if (this.#head === this.#queue.length) {
        this.#queue = [];
        this.#head = 0;
      }
    }
    this.#queue = [];
    this.#head = 0;
    this.#bytes = 0;
    this.#pumping = undefined;
    this.#drain?.resolve();
    this.#drain = undefined;
  }

  close(): void {
    this.#closed = true;
  }
}

let nextId = 1;

class Member implements Endpoint {
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
  readonly notes: NoteTracker | undefined;
  readonly bucket: TokenBucket | undefined;
  readonly closePort: boolean;
  readonly onLeave: (() => void) | undefined;
  received = 0;
  sent = 0;
  dropped = 0;
  warned = false;
  /** How long it has been over the bound, in counted time (see #check). */
  behind = 0;
  /** How long it has taken nothing with bytes waiting, likewise. */
  stalled = 0;
  /** The sink's progress time when last checked. */
  progressSeen = 0;
  lastInput = performance.now();
  answeredAt = -Infinity;
  /** Set when its output stops: dropped, or closed. */
  reason: unknown;
  outputDead = false;
  left = false;
  pump: Promise<void> | undefined;

  constructor(
    port: Port,
    options: AddOptions,
    input: InputPort | undefined,
    notes: boolean,
    rate: Rate | undefined,
  ) {
    this.port = port;
    this.name = options.name ?? port.name;
    this.kind = options.kind ?? "client";
    this.transport = options.transport ?? "port";
    this.input = input;
    this.notes = notes && input !== undefined ? new NoteTracker() : undefined;
    this.bucket = rate !== undefined && this.kind === "client" &&
        input !== undefined
      ? new TokenBucket(rate)
      : undefined;
    this.closePort = options.close ?? true;
    this.onLeave = options.onLeave;
  }

  get stats(): EndpointStats {
    const own = (this.port as { dropped?: unknown }).dropped;
    return {
      received: this.received,
      sent: this.sent,
      dropped: this.dropped + (typeof own === "number" ? own : 0),
      queuedBytes: this.sink?.queuedBytes ?? 0,
      heldNotes: this.notes?.size ?? 0,
    };
  }
}

class Feed implements EventFeed {
  readonly #capacity: number;
  readonly #stop: () => void;
  #items: HubEvent[] = [];
  #missed = 0;
  #waiting: ((result: IteratorResult<HubEvent>) => void) | undefined;
  #done = false;

  constructor(capacity: number, stop: () => void) {
    this.#capacity = capacity;
    this.#stop = stop;
  }

  push(event: HubEvent): void {
    if (this.#done) return;
    const waiting = this.#waiting;
    if (waiting !== undefined) {
      this.#waiting = undefined;
      return waiting({ value: event, done: false });
    }
    if (this.#items.length >= this.#capacity) {
      this.#missed++;
      return;
    }
    this.#items.push(event);
  }

  next(): Promise<IteratorResult<HubEvent>> {
    if (this.#missed > 0) {
      const count = this.#missed;
      this.#missed = 0;
      return Promise.resolve({ value: { type: "missed", count }, done: false });
    }
    const event = this.#items.shift();
    if (event !== undefined) {
      return Promise.resolve({ value: event, done: false });
    }
    if (this.#done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => this.#waiting = resolve);
  }

  return(): Promise<IteratorResult<HubEvent>> {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  close(): void {
    this.#items = [];
    this.end();
  }

  /** Takes nothing more; what is queued is still read. */
  end(): void {
    if (this.#done) return;
    this.#done = true;
    this.#stop();
    this.#waiting?.({ value: undefined, done: true });
    this.#waiting = undefined;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<HubEvent> {
    return this;
  }
}

interface Listener {
  readonly fn: (event: HubEvent) => void;
  readonly messages: boolean;
}

function defaultRoute(relay: boolean) {
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
 * Routes messages between endpoints: every message an endpoint sends goes
 * to every other endpoint its route allows (by default: clients hear each
 * other, devices and links hear clients, clients hear everyone), and never
 * back to the sender.
 *
 * It owns what every transport shares:
 * - who may join, for every transport: its {@linkcode Gate};
 * - per-endpoint policies: sysex in and out, rate limits;
 * - held notes: an endpoint that leaves with notes on gets a note_off for
 *   each, sent where its messages went;
 * - endpoints that fall behind: one that stays more than `maxQueuedBytes`
 *   behind for `maxLag`, or takes nothing at all for about that long (see
 *   `maxLag`), is dropped, so it never slows the others and memory stays
 *   bounded. A
 *   reader in this process (a `"wait"` sink) is waited for instead;
 * - fairness: each endpoint's input is taken a read at a time, so a flood
 *   from one delays the others by a turn at most;
 * - events (join, leave, refuse, message, warning) and counters.
 *
 * A transport's job ends at making endpoints and handing them to `add`.
 *
 * @example Two ports joined by a hub
 * ```ts
 * import assert from "node:assert/strict";
 * import { Hub, InputPortBase, type Message, message } from "@x/midisock";
 *
 * class Local extends InputPortBase {
 *   readonly name: string;
 *   readonly heard: Message[] = [];
 *   constructor(name: string) {
 *     super();
 *     this.name = name;
 *   }
 *   play(msg: Message) {
 *     this.deliver(msg);
 *   }
 *   send(msg: Message): Promise<void> {
 *     this.heard.push(msg);
 *     return Promise.resolve();
 *   }
 *   reset = () => Promise.resolve();
 *   panic = () => Promise.resolve();
 *   close(): Promise<void> {
 *     this.finish(undefined, true);
 *     return Promise.resolve();
 *   }
 * }
 *
 * await using hub = new Hub();
 * const a = new Local("a");
 * const b = new Local("b");
 * hub.add(a);
 * hub.add(b);
 * a.play(message("note_on", { note: 60 }));
 * await new Promise((resolve) => setTimeout(resolve, 10));
 * assert.deepEqual(b.heard, [message("note_on", { note: 60 })]);
 * assert.deepEqual(a.heard, []);
 * ```
 */
export class Hub implements AsyncDisposable {
  readonly #gate: Gate;
  readonly #route: (from: Endpoint, to: Endpoint) => boolean;
  readonly #releaseNotes: boolean;
  readonly #sysexIn: number;
  readonly #sysexOut: number;
  readonly #maxSysexLength: number;
  readonly #rate: Rate | undefined;
  readonly #maxQueuedBytes: number;
  readonly #maxQueuedTotal: number;
  /**
   * What waits for all endpoints, as last measured plus what was written
   * since: never less than the truth, so measuring again when it passes the
   * budget catches a flood between checks.
   */
  #queuedEstimate = 0;
  #shedding = false;
  readonly #maxLag: number;
  readonly #idleTimeout: number | undefined;
  readonly #sensingIsLink: boolean;
  #members: Member[] = [];
  readonly #listeners = new Set<Listener>();
  readonly #feeds = new Set<Feed>();
  /** Whether `close()` has finished. */
  #closed = false;
  #messageListeners = 0;
  #timer: ReturnType<typeof setInterval> | undefined;
  #checkedAt = 0;
  #paused: PromiseWithResolvers<void> | undefined;
  readonly #waitingFor = new Set<Member>();
  readonly #closings = new Set<Promise<void>>();
  #transports: Transport[] = [];
  #stopping = false;
  /** Resolves when the hub stops: no input is waited for after that. */
  readonly #stop = Promise.withResolvers<undefined>();
  readonly #stopped = this.#stop.promise;
  #closing: Promise<void> | undefined;

  /**
   * Makes a hub with no endpoints.
   *
   * @param options Gate rules, policies, bounds, routing and a listener.
   * @throws {RangeError} For a bound or policy out of range.
   * @throws {SyntaxError} For an allow rule that does not parse.
   * @throws {TypeError} For a malformed token.
   */
  constructor(options: HubOptions = {}) {
    this.#gate = new Gate({
      ...options,
      onRefuse: (refusal) => {
        this.#emit({ type: "refuse", refusal });
        options.onRefuse?.(refusal);
      },
    });
    this.#route = options.route ?? defaultRoute(options.relay ?? true);
    this.#releaseNotes = options.releaseNotes ?? true;
    this.#sysexIn = sysexLimit("sysexIn", options.sysexIn ?? "allow");
    this.#sysexOut = sysexLimit("sysexOut", options.sysexOut ?? "allow");
    const maxSysexLength = options.maxSysexLength ?? DEFAULT_MAX_SYSEX_LENGTH;
    if (!Number.isSafeInteger(maxSysexLength) || maxSysexLength < 0) {
      throw new RangeError(
        `maxSysexLength must be a non-negative integer: got ${maxSysexLength}`,
      );
    }
    this.#maxSysexLength = Math.min(maxSysexLength, Math.max(this.#sysexIn, 0));
    this.#rate = options.rateLimit && checkRate(options.rateLimit);
    const largest = Math.min(
      this.#maxSysexLength,
      Math.max(this.#sysexOut, 0),
    ) + 2;
    this.#maxQueuedBytes = options.maxQueuedBytes === undefined
      ? Math.max(1 << 20, 2 * largest)
      : positiveInteger("maxQueuedBytes", options.maxQueuedBytes);
    this.#maxQueuedTotal = options.maxQueuedTotal === undefined
      ? Math.max(64 << 20, 4 * this.#maxQueuedBytes)
      : positiveInteger("maxQueuedTotal", options.maxQueuedTotal);
    if (this.#maxQueuedTotal < this.#maxQueuedBytes) {
      throw new RangeError(
        `maxQueuedTotal must be at least maxQueuedBytes (${this.#maxQueuedBytes}): got ${this.#maxQueuedTotal}`,
      );
    }
    this.#maxLag = positiveMs("maxLag", options.maxLag ?? 2000);
    this.#idleTimeout = options.idleTimeout === undefined
      ? undefined
      : positiveMs("idleTimeout", options.idleTimeout);
    const sensing = options.activeSensing ?? "link";
    if (sensing !== "link" && sensing !== "relay") {
      throw new RangeError(
        `activeSensing must be "link" or "relay": got ${
          JSON.stringify(sensing)
        }`,
      );
    }
    this.#sensingIsLink = sensing === "link";
    if (options.onEvent !== undefined) this.listen(options.onEvent);
  }

  /** Who may join: share it with every transport of this hub. */
  get gate(): Gate {
    return this.#gate;
  }

  /**
   * The longest sysex kept, in data bytes: what transports give their
   * parsers.
   */
  get maxSysexLength(): number {
    return this.#maxSysexLength;
  }

  /** The endpoints now, in the order they joined. */
  get endpoints(): readonly Endpoint[] {
    return [...this.#members];
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#stopping;
  }

  /**
   * Adds an endpoint. From now on the hub reads its messages (when it is an
   * input) and routes messages to it (when it is an output), until it
   * leaves: its input ends, its output fails or falls behind, or
   * `remove` is called. Then its held notes are released, a `leave` event
   * says why, and (unless `close: false`) the port is closed.
   *
   * @param port An input, an output, or both.
   * @param options Kind, name and transport, for routing and people.
   * @returns The endpoint.
   * @throws {TypeError} When `port` is neither an input nor an output.
   * @throws {PortClosedError} When the hub is closed.
   */
  add(port: Port, options: AddOptions = {}): Endpoint {
    if (this.#stopping) throw new PortClosedError("hub");
    const input = options.input !== false && isInput(port) ? port : undefined;
    const output = options.output !== false && (hasSink(port) || isOutput(port))
      ? port
      : undefined;
    if (input === undefined && output === undefined) {
      throw new TypeError(
        `Cannot add ${describePort(port)} to a hub: it is neither an input ` +
          "(async iterable with poll) nor an output (send)",
      );
    }
    const member = new Member(
      port,
      options,
      input,
      this.#releaseNotes,
      this.#rate,
    );
    if (output !== undefined) {
      member.sink = hasSink(output) ? output[SINK] : new PortSink(
        output as OutputPort,
        (reason) => this.#drop(member, reason),
        (error) => this.#warnOnce(member, error),
      );
    }
    this.#members = [...this.#members, member];
    this.#emit({ type: "join", endpoint: member });
    if (input !== undefined && hasSource(input)) {
      member.source = true;
      let end!: () => void;
      member.pump = new Promise<void>((resolve) => end = resolve);
      input[SOURCE].attach(
        (framed) => this.#fromSource(member, framed),
        (cause) => {
          if (!this.#stopping) {
            member.reason ??= cause;
            this.#leave(member);
          }
          end();
        },
      );
    } else if (input !== undefined) {
      member.pump = this.#pump(member, input);
    }
    this.#timer ??= this.#startTimer();
    return member;
  }

  /** The transports attached, in the order they were. */
  get transports(): readonly Transport[] {
    return [...this.#transports];
  }

  /**
   * Attaches a transport: it makes endpoints for this hub from now on, and
   * the hub closes it when it closes (after its endpoints, in the reverse
   * order of attaching). A transport that cannot start is closed and its
   * error thrown.
   *
   * @param transport The transport.
   * @returns The transport, once it is ready.
   * @throws {PortClosedError} When the hub is closed (the transport is
   * closed too).
   * @throws {Error} What the transport's `attach` threw.
   */
  async attach<T extends Transport>(transport: T): Promise<T> {
    if (this.#stopping) {
      await transport.close().catch(() => {});
      throw new PortClosedError("hub");
    }
    if (this.#transports.includes(transport)) return transport;
    this.#transports.push(transport);
    try {
      await transport.attach(this);
    } catch (error) {
      this.#transports = this.#transports.filter((t) => t !== transport);
      await transport.close().catch(() => {});
      throw error;
    }
    return transport;
  }

  /**
   * Takes an endpoint off the hub: nothing more is routed to it, its held
   * notes are released, and its port is closed (unless it was added with
   * `close: false`). Removing twice does nothing.
   *
   * @param endpoint The endpoint.
   * @param reason Why, for the `leave` event.
   * @returns A promise that resolves once it has left.
   */
  async remove(endpoint: Endpoint, reason?: unknown): Promise<void> {
    const member = endpoint as Member;
    if (!this.#members.includes(member) || member.outputDead) return;
    member.outputDead = true;
    member.reason = reason;
    if (member.closePort) {
      await this.#track(member.port.close().catch(() => {}));
    }
    this.#leave(member);
    await member.pump;
  }

  /**
   * Routes messages as if `from` had sent them: how a program speaks
   * through an output-only endpoint (a `PortServer`'s own `send`).
   *
   * @param from The endpoint they come from.
   * @param messages The messages; all are checked first.
   * @throws {TypeError | RangeError} For a malformed message (nothing sent).
   * @throws {PortClosedError} When the hub is closed or `from` has left.
   */
  inject(from: Endpoint, messages: readonly Message[]): void {
    for (const msg of messages) checkMessage(msg);
    const member = from as Member;
    if (this.#stopping || member.left) {
      throw new PortClosedError(this.#stopping ? "hub" : member.name);
    }
    // The first injection of a turn of the event loop goes out at once;
    // what follows in the same turn goes out together at its end: a program
    // that sends in a loop costs one write per endpoint a turn, not one per
    // message, and a single message waits for nothing.
    if (member.injected !== undefined) {
      for (const msg of messages) member.injected.push(msg);
      return;
    }
    member.injected = [];
    setImmediate(() => this.#flushInjected(member));
    const batch = new FramedBatch(undefined, messages);
    this.#take(member, batch.bytes, batch, false);
  }

  #flushInjected(member: Member): void {
    const messages = member.injected;
    member.injected = undefined;
    if (messages === undefined || messages.length === 0 || member.left) {
      return;
    }
    const batch = new FramedBatch(undefined, messages);
    this.#take(member, batch.bytes, batch, false);
  }

  /**
   * Reports a problem that does not stop anything, as a `warning` event:
   * how transports tell the hub's listeners (a full descriptor table, say).
   *
   * @param message What, for people.
   */
  warn(message: string): void {
    this.#emit({ type: "warning", message });
  }

  /**
   * Calls `listener` with every event, synchronously, until the returned
   * function is called.
   *
   * @param listener The callback; what it throws is reported, not thrown.
   * @param options `messages: true` to include message events.
   * @returns A function that stops the calls.
   */
  listen(
    listener: (event: HubEvent) => void,
    options: { messages?: boolean } = {},
  ): () => void {
    const entry: Listener = {
      fn: listener,
      messages: options.messages ?? false,
    };
    this.#listeners.add(entry);
    if (entry.messages) this.#messageListeners++;
    return () => {
      if (this.#listeners.delete(entry) && entry.messages) {
        this.#messageListeners--;
      }
    };
  }

  /**
   * A feed of events to iterate with `for await`, bounded: a reader that
   * falls behind misses events (reported as one `missed` event) rather than
   * holding memory. It ends when the hub closes or `close()` is called.
   *
   * @param options Whether to include message events, and the bound.
   * @returns The feed.
   */
  events(options: EventOptions = {}): EventFeed {
    const capacity = positiveInteger("queueSize", options.queueSize ?? 10000);
    let stop = () => {};
    const feed = new Feed(capacity, () => {
      stop();
      this.#feeds.delete(feed);
    });
    stop = this.listen((event) => feed.push(event), options);
    this.#feeds.add(feed);
    if (this.#closed) feed.end();
    return feed;
  }

  #emit(event: HubEvent): void {
    for (const listener of this.#listeners) {
      if (event.type === "message" && !listener.messages) continue;
      callBack(listener.fn, event);
    }
  }

  #warnOnce(member: Member, error: unknown): void {
    if (member.warned) return;
    member.warned = true;
    this.#emit({
      type: "warning",
      endpoint: member,
      message: error instanceof Error ? error.message : String(error),
    });
  }

  async #pump(member: Member, port: InputPort): Promise<void> {
    const messages = port[Symbol.asyncIterator]();
    let cause: unknown;
    try {
      for (;;) {
        if (this.#paused !== undefined) await this.#paused.promise;
        if (this.#stopping) return;
        const next = await Promise.race([messages.next(), this.#stopped]);
        if (next === undefined) return;
        const { value, done } = next;
        if (done || this.#stopping) break;
        const list = [value];
        for (let msg = port.poll(); msg !== undefined; msg = port.poll()) {
          list.push(msg);
          if (list.length >= TURN) break;
        }
        const batch = new FramedBatch(undefined, list);
        this.#take(member, batch.bytes, batch, true);
        // A full turn: let every other endpoint and the writes go first.
        if (list.length >= TURN) await new Promise(setImmediate);
      }
    } catch (error) {
      cause = error;
    }
    if (this.#stopping) return;
    if (member.reason === undefined) {
      member.reason = cause ?? await closeCause(port);
    }
    this.#leave(member);
  }

  #fromSource(member: Member, framed: Uint8Array): Promise<void> | undefined {
    if (this.#stopping || member.left) return undefined;
    this.#take(member, framed, undefined, true);
    return this.#paused?.promise;
  }

  /**
   * Applies `from`'s policies to what it sent (framed bytes, and the
   * messages when they are known already), then routes what passed.
   */
  #take(
    from: Member,
    bytes: Uint8Array,
    known: FramedBatch | undefined,
    counted: boolean,
  ): void {
    const now = performance.now();
    from.lastInput = now;
    const client = from.kind === "client";
    const sysexIn = client ? this.#sysexIn : Infinity;
    const bucket = client ? from.bucket : undefined;
    const notes = from.notes;
    bucket?.arrive(countFramed(bytes), now);
    let kept: Uint8Array | undefined;
    let keptLength = 0;
    let count = 0;
    let dropped = 0;
    let sensed = false;
    const length = bytes.length;
    for (let i = 0; i < length;) {
      const status = bytes[i];
      const size = sizeAt(bytes, i);
      let keep = true;
      if (client) {
        if (status === 0xfe && this.#sensingIsLink) {
          // Active sensing keeps a client's link alive, as MIDI 1.0 means
          // it: answered, and not relayed.
          keep = false;
          sensed = true;
        } else if (
          (status === 0xf0 && size - 2 > sysexIn) ||
          (bucket !== undefined && !bucket.take())
        ) {
          keep = false;
          dropped++;
        }
      }
      if (keep) {
        count++;
        if (notes !== undefined && (status < 0xc0 || status === 0xff)) {
          notes.trackBytes(status, bytes[i + 1], bytes[i + 2]);
        }
        if (kept !== undefined) {
          kept.set(bytes.subarray(i, i + size), keptLength);
          keptLength += size;
        }
      } else if (kept === undefined) {
        kept = new Uint8Array(length);
        kept.set(bytes.subarray(0, i));
        keptLength = i;
      }
      i += size;
    }
    from.dropped += dropped;
    if (sensed) this.#answer(from, now);
    if (count === 0) return;
    if (counted) from.received += count;
    const batch = kept === undefined
      ? known ?? new FramedBatch(bytes, undefined, count)
      : new FramedBatch(kept.subarray(0, keptLength), undefined, count);
    if (this.#messageListeners > 0) {
      for (const message of batch.messages) {
        this.#emit({ type: "message", endpoint: from, message });
      }
    }
    this.#deliver(from, batch);
  }

  /** Answers a client's active sensing, at most every `ANSWER_MS`. */
  #answer(from: Member, now: number): void {
    if (from.sink === undefined || now - from.answeredAt < ANSWER_MS) return;
    from.answeredAt = now;
    from.sink.write(new FramedBatch(SENSING_BYTES, [ACTIVE_SENSING]));
  }

  /** Sends a batch everywhere `from`'s route allows. */
  #deliver(from: Member, batch: FramedBatch): void {
    let toClients: FramedBatch | undefined;
    for (const to of this.#members) {
      if (to === from || to.sink === undefined || to.outputDead) continue;
      if (!this.#route(from, to)) continue;
      let share = batch;
      if (to.kind === "client" && this.#sysexOut !== Infinity) {
        toClients ??= this.#withoutSysex(batch);
        share = toClients;
        if (share.bytes.length === 0) continue;
      }
      const sink = to.sink;
      if (!sink.write(share)) {
        this.#drop(to, undefined);
        continue;
      }
      to.sent += share.count;
      if (sink.slow === "wait") {
        if (sink.queuedBytes > 0) this.#waitFor(to);
        continue;
      }
      this.#queuedEstimate += share.bytes.length;
      if (
        sink.queuedBytes > this.#maxQueuedBytes * HARD_FACTOR ||
        sink.copiedBytes > this.#maxQueuedBytes * 2
      ) {
        this.#drop(to, new FellBehindError(to.name, sink.queuedBytes, 0));
      }
    }
    if (this.#queuedEstimate > this.#maxQueuedTotal) {
      const total = this.#queuedTotal();
      if (total > this.#maxQueuedTotal) this.#shed(total);
    }
  }

  /**
   * What waits for all endpoints that may be dropped, measured: what each
   * holds for itself alone (shared batches are held once, by reference).
   */
  #queuedTotal(): number {
    let total = 0;
    for (const member of this.#members) {
      const sink = member.sink;
      if (sink !== undefined && sink.slow === "drop" && !member.outputDead) {
        total += sink.copiedBytes;
      }
    }
    this.#queuedEstimate = total;
    return total;
  }

  /** The batch without the sysex `sysexOut` keeps from clients. */
  #withoutSysex(batch: FramedBatch): FramedBatch {
    const bytes = batch.bytes;
    if (!bytes.includes(0xf0)) return batch;
    const kept = new Uint8Array(bytes.length);
    let length = 0;
    for (let i = 0; i < bytes.length;) {
      const size = sizeAt(bytes, i);
      if (bytes[i] !== 0xf0 || size - 2 <= this.#sysexOut) {
        kept.set(bytes.subarray(i, i + size), length);
        length += size;
      }
      i += size;
    }
    return new FramedBatch(kept.subarray(0, length));
  }

  /** Pauses every input until a reader in this process catches up. */
  #waitFor(member: Member): void {
    if (this.#waitingFor.has(member)) return;
    this.#waitingFor.add(member);
    this.#paused ??= Promise.withResolvers<void>();
    member.sink!.drained().finally(() => {
      this.#waitingFor.delete(member);
      if (this.#waitingFor.size === 0) {
        this.#paused?.resolve();
        this.#paused = undefined;
      }
    });
  }

  #startTimer(): ReturnType<typeof setInterval> {
    this.#checkedAt = performance.now();
    const timer = setInterval(() => this.#check(), LAG_CHECK_MS);
    Deno.unrefTimer(timer as unknown as number);
    return timer;
  }

  /** Drops endpoints that stay behind, stall, or idle past the limit. */
  #check(): void {
    const now = performance.now();
    // Time counts against an endpoint only while the hub itself keeps up:
    // a hub too busy to run this check on time is also too busy to see its
    // writes complete, and the endpoint is not to blame for that.
    const counted = Math.min(now - this.#checkedAt, LAG_CHECK_MS + LATE_MS);
    this.#checkedAt = now;
    for (const member of this.#members) {
      const sink = member.sink;
      if (sink !== undefined && sink.slow === "drop" && !member.outputDead) {
        const queued = sink.queuedBytes;
        member.behind = queued > this.#maxQueuedBytes
          ? member.behind + counted
          : 0;
        const progress = sink.progressAt;
        // A few bytes that do not move cost nothing: a reader counts as
        // stalled only with a real amount waiting.
        member.stalled =
          queued >= STALL_BYTES && progress === member.progressSeen
            ? member.stalled + counted
            : 0;
        member.progressSeen = progress;
        // The less a reader that takes nothing pins, the longer it is given:
        // a network dropout (TCP's retransmits back off to seconds) costs
        // little while it lasts. Half the bound or more waiting: maxLag.
        const patience = Math.min(
          STALL_PATIENCE,
          Math.max(1, this.#maxQueuedBytes / (2 * queued)),
        );
        const stalled = member.stalled >= this.#maxLag * patience;
        if (stalled || member.behind >= this.#maxLag) {
          this.#drop(
            member,
            new FellBehindError(
              member.name,
              queued,
              Math.round(stalled ? member.stalled : member.behind),
              stalled,
            ),
          );
          continue;
        }
      }
      if (
        this.#idleTimeout !== undefined && member.kind === "client" &&
        member.input !== undefined && !member.outputDead &&
        now - member.lastInput >= this.#idleTimeout
      ) {
        this.#drop(
          member,
          new Error(`Idle for ${Math.round(this.#idleTimeout / 1000)} s`),
        );
      }
    }
    const total = this.#queuedTotal();
    if (total > this.#maxQueuedTotal) this.#shed(total);
  }

  /**
   * Too much waits for all endpoints together: drops endpoints until a
   * quarter of the budget is free again. Those that took nothing since the
   * last check go first, then those holding most; a reader that keeps
   * taking goes last.
   */
  #shed(total: number): void {
    // A drop can route (the note offs of an endpoint leaving): no shedding
    // inside shedding.
    if (this.#shedding) return;
    this.#shedding = true;
    try {
      const target = this.#maxQueuedTotal * 0.75;
      const idle = performance.now() - LAG_CHECK_MS;
      const candidates: [Member, number, boolean][] = [];
      for (const member of this.#members) {
        const sink = member.sink;
        if (sink === undefined || sink.slow !== "drop" || member.outputDead) {
          continue;
        }
        const held = sink.copiedBytes;
        if (held > 0) candidates.push([member, held, sink.progressAt <= idle]);
      }
      candidates.sort(([, x, a], [, y, b]) => Number(b) - Number(a) || y - x);
      for (const [member, held] of candidates) {
        if (total <= target) break;
        if (member.outputDead) continue;
        total -= held;
        this.#drop(
          member,
          new FellBehindError(
            member.name,
            member.sink!.queuedBytes,
            0,
            false,
            this.#maxQueuedTotal,
          ),
        );
      }
    } finally {
      this.#shedding = false;
      this.#queuedTotal();
    }
  }

  /**
   * Stops routing to an endpoint and closes its port at once; what it sent
   * before is still routed, then it leaves.
   */
  #drop(member: Member, reason: unknown): void {
    if (member.outputDead) return;
    member.outputDead = true;
    member.reason ??= reason;
    if (member.closePort) this.#track(abortPort(member.port, reason));
    if (member.input === undefined) this.#leave(member);
  }

  /** The endpoint is gone: release its notes, tell the listeners. */
  #leave(member: Member): void {
    if (member.left) return;
    this.#flushInjected(member);
    member.left = true;
    member.outputDead = true;
    this.#members = this.#members.filter((m) => m !== member);
    this.#waitingFor.delete(member);
    const notes = member.notes?.release() ?? [];
    if (notes.length > 0) {
      this.#deliver(member, new FramedBatch(undefined, notes));
    }
    if (member.closePort) this.#track(member.port.close().catch(() => {}));
    this.#emit({
      type: "leave",
      endpoint: member,
      reason: member.reason,
      released: notes.length,
    });
    callBack(member.onLeave);
  }

  #track(promise: Promise<void>): Promise<void> {
    this.#closings.add(promise);
    promise.finally(() => this.#closings.delete(promise));
    return promise;
  }

  /**
   * Stops the hub: stops reading every input, releases every held note
   * where it belongs, then closes every endpoint's port (those added with
   * `close: false` excepted), gracefully for at most two seconds and then
   * at once, and last closes the attached transports, newest first. Closing
   * twice does nothing.
   *
   * @returns A promise that resolves once everything is closed.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    this.#stopping = true;
    this.#stop.resolve(undefined);
    this.#paused?.resolve();
    this.#paused = undefined;
    clearInterval(this.#timer);
    const members = this.#members;
    for (const member of members) this.#flushInjected(member);
    // Stop reading first, then let go of every held note where it belongs,
    // then close: gracefully while the deadline lasts, then at once.
    const released = members.map((member) => {
      const notes = member.notes?.release() ?? [];
      if (notes.length > 0) {
        this.#deliver(member, new FramedBatch(undefined, notes));
      }
      return notes.length;
    });
    const closing = members.filter((m) => m.closePort).map((m) => m.port);
    const late = await atMost(
      Promise.all(closing.map((port) => port.close())),
      CLOSE_DEADLINE_MS,
    );
    if (late) {
      await Promise.all(closing.map((port) => abortPort(port, undefined)));
    }
    await Promise.all(members.map((m) => m.pump));
    await Promise.all(this.#closings);
    // The transports last, newest first: they stop making endpoints and let
    // go of their listeners and sockets.
    for (const transport of this.#transports.splice(0).reverse()) {
      await transport.close().catch((error) =>
        this.#emit({
          type: "warning",
          message: `closing ${transport.name}: ${
            error instanceof Error ? error.message : String(error)
          }`,
        })
      );
    }
    this.#members = [];
    members.forEach((member, i) => {
      if (member.left) return;
      member.left = true;
      this.#emit({ type: "leave", endpoint: member, released: released[i] });
    });
    this.#closed = true;
    for (const feed of [...this.#feeds]) feed.end();
  }

  /** Closes the hub, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Closes a port at once where it can (a `SocketPort`'s `abort`), else as
 * it closes.
 */
function abortPort(port: Port, reason: unknown): Promise<void> {
  const abort = (port as { abort?: (reason: unknown) => Promise<void> })
    .abort;
  const closing = typeof abort === "function"
    ? abort.call(port, reason)
    : port.close();
  return closing.catch(() => {});
}

function isInput(port: Port): port is InputPort {
  return Symbol.asyncIterator in port &&
    typeof (port as InputPort).poll === "function";
}

function isOutput(port: Port): port is OutputPort {
  return typeof (port as OutputPort).send === "function";
}

function describePort(port: unknown): string {
  const name = (port as { name?: unknown } | null)?.name;
  return typeof name === "string" ? JSON.stringify(name) : String(port);
}

/** Why a port's input ended, as its `receive()` says. */
async function closeCause(port: InputPort): Promise<unknown> {
  try {
    await port.receive();
    return undefined;
  } catch (error) {
    return error instanceof PortClosedError ? error.cause : error;
  }
}
