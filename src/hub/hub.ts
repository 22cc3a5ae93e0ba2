/**
 * The hub: one router that every transport hands its endpoints to, and the
 * contract of those transports.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import { checkMessage, type Message } from "../codec/messages.ts";
import type { TimeSource } from "../clock.ts";
import { PortClosedError } from "../errors.ts";
import { Gate } from "../gate.ts";
import type { InputPort, OutputPort, Port } from "../port.ts";
import { hasSink, hasSource, SINK, SOURCE } from "../sink.ts";
import { atMost } from "../_time.ts";
import { callBack } from "../_call.ts";
import { FramedBatch } from "./_batch.ts";
import { Backpressure } from "./_backpressure.ts";
import { Events } from "./_events.ts";
import { Member } from "./_member.ts";
import {
  type HubOptions,
  type HubSettings,
  resolveHubOptions,
} from "./_options.ts";
import { PortSink } from "./_port_sink.ts";
import { Router } from "./_router.ts";
import type { PlayoutStats } from "../time/playout.ts";
import type {
  AddOptions,
  Endpoint,
  EventFeed,
  EventOptions,
  HubEvent,
} from "./types.ts";

/** The most messages taken from one endpoint before others get a turn. */
const TURN = 4096;
/** How long `close()` lets endpoints close gracefully, in ms. */
const CLOSE_DEADLINE_MS = 2000;

/**
 * A way in to a hub: `hub.attach(transport)` starts it, `hub.close()` (or
 * `await using hub`) closes it, in the reverse order of attaching.
 *
 * A transport makes endpoints (TCP clients, web pages, RTP-MIDI
 * participants, hardware ports, a link to other hubs) and hands them to the
 * hub it is attached to; the hub owns it from then on and closes it when
 * the hub closes, after the hub has stopped reading, released every held
 * note and closed every endpoint.
 *
 * @example A transport that adds one port to the hub it is attached to
 * ```ts
 * import assert from "node:assert/strict";
 * import { Hub, InputPortBase, type Transport } from "@x/midisock";
 *
 * class Silent extends InputPortBase {
 *   readonly name = "silent";
 *   close(): Promise<void> {
 *     this.finish(undefined, true);
 *     return Promise.resolve();
 *   }
 * }
 *
 * class OnePort implements Transport {
 *   readonly name = "one port";
 *   closed = false;
 *   attach(hub: Hub): Promise<void> {
 *     hub.add(new Silent(), { kind: "device", transport: "example" });
 *     return Promise.resolve();
 *   }
 *   close(): Promise<void> {
 *     this.closed = true;
 *     return Promise.resolve();
 *   }
 *   [Symbol.asyncDispose](): Promise<void> {
 *     return this.close();
 *   }
 * }
 *
 * const transport = new OnePort();
 * {
 *   await using hub = new Hub();
 *   await hub.attach(transport);
 *   assert.equal(hub.endpoints.length, 1);
 * }
 * assert.ok(transport.closed);
 * ```
 */
export interface Transport extends AsyncDisposable {
  /** For people: what it is and where, as `tcp 127.0.0.1:8080`. */
  readonly name: string;
  /**
   * Starts making endpoints for `hub`, under its gate and policies. Called
   * once, by {@linkcode Hub.attach}.
   *
   * @param hub The hub its endpoints join.
   * @returns A promise that resolves once the transport is ready (bound,
   * connected, opened), or rejects with why it cannot be.
   */
  attach(hub: Hub): Promise<void>;
  /**
   * Stops making endpoints and frees what the transport holds (listeners,
   * sockets, native handles). The endpoints it made belong to the hub.
   * Closing twice does nothing.
   */
  close(): Promise<void>;
}

/**
 * Routes messages between endpoints: every message an endpoint sends goes
 * to every other endpoint its route allows (by default: clients hear each
 * other, devices and links hear clients, clients hear everyone), and never
 * back to the sender.
 *
 * It owns what every transport shares:
 * - who may join, for every transport: its {@linkcode Gate};
 * - per-endpoint policies: sysex in and out, rate limits for clients and
 *   for links (no policy drops the end of a note it let through);
 * - held notes: an endpoint that leaves with notes on gets a note_off for
 *   each, sent where its messages went;
 * - readers that fall behind: one that keeps taking is waited for (the hub
 *   stops reading the inputs that send more than their fair share, then
 *   gives each a read in turn; see `maxQueuedBytes`); one that stays more
 *   than `maxQueuedBytes` behind for `maxLag`, or takes nothing at all for
 *   about that long (see `maxLag`), is dropped, so it never slows the
 *   others and memory stays bounded. A reader in this process (a `"wait"`
 *   sink) is always waited for, by every input;
 * - fairness: each endpoint's input is taken a read at a time, so a flood
 *   from one delays the others by a turn at most;
 * - events (join, leave, refuse, message, warning) and counters;
 * - the transports attached to it, closed last, newest first.
 *
 * A transport's job ends at making endpoints and handing them to `add`.
 * Every time the hub reads or waits goes through its `clock`.
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
 * while (b.heard.length === 0) await new Promise((r) => setTimeout(r, 1));
 * assert.deepEqual(b.heard, [message("note_on", { note: 60 })]);
 * assert.deepEqual(a.heard, []);
 * ```
 */
export class Hub implements AsyncDisposable {
  readonly #settings: HubSettings;
  readonly #gate: Gate;
  readonly #events = new Events();
  readonly #backpressure: Backpressure;
  readonly #router: Router;
  #members: Member[] = [];
  readonly #closings = new Set<Promise<void>>();
  #transports: Transport[] = [];
  #stopping = false;
  /** Resolves when the hub stops: no input is waited for after that. */
  /** Wakes each input read under way when the hub stops. */
  readonly #wakers = new Set<(value: undefined) => void>();
  #closing: Promise<void> | undefined;

  /**
   * Makes a hub with no endpoints.
   *
   * @param options Gate rules, policies, bounds, routing, a listener and a
   * clock.
   * @throws {RangeError} For a bound or policy out of range.
   * @throws {SyntaxError} For an allow rule that does not parse.
   * @throws {TypeError} For a malformed token, route or clock.
   */
  constructor(options: HubOptions = {}) {
    this.#gate = new Gate({
      ...options,
      onRefuse: (refusal) => {
        this.#events.emit({ type: "refuse", refusal });
        options.onRefuse?.(refusal);
      },
    });
    this.#settings = resolveHubOptions(options);
    const host = {
      members: (): readonly Member[] => this.#members,
      drop: (member: Member, reason: unknown) => this.#drop(member, reason),
    };
    this.#backpressure = new Backpressure(this.#settings, host);
    this.#router = new Router(
      this.#settings,
      this.#backpressure,
      this.#events,
      host,
    );
    if (options.onEvent !== undefined) this.listen(options.onEvent);
  }

  /** Who may join: share it with every transport of this hub. */
  get gate(): Gate {
    return this.#gate;
  }

  /** The hub's time: what its checks and waits read. */
  get clock(): TimeSource {
    return this.#settings.clock;
  }

  /**
   * What the playout delay did so far (see `latency`): messages delivered,
   * those that came late, the worst lateness and the delay now; undefined
   * without a playout delay.
   */
  get timing(): PlayoutStats | undefined {
    return this.#router.timing;
  }

  /**
   * The longest sysex kept, in data bytes: what transports give their
   * parsers.
   */
  get maxSysexLength(): number {
    return this.#settings.maxSysexLength;
  }

  /**
   * How long a client may send nothing before it is dropped, in ms
   * (undefined: never): what transports whose clients keep themselves
   * alive take their interval from.
   */
  get idleTimeout(): number | undefined {
    return this.#settings.idleTimeout;
  }

  /** The endpoints now, in the order they joined. */
  get endpoints(): readonly Endpoint[] {
    return [...this.#members];
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#stopping;
  }

  /** The transports attached, in the order they were. */
  get transports(): readonly Transport[] {
    return [...this.#transports];
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
    const member = new Member(port, options, input, this.#settings);
    if (output !== undefined) {
      member.sink = hasSink(output) ? output[SINK] : new PortSink(
        output as OutputPort,
        (reason) => this.#drop(member, reason),
        (error) => this.#warnOnce(member, error),
      );
      member.progressSeen = member.sink.progress;
    }
    this.#members = [...this.#members, member];
    this.#backpressure.joined(member);
    this.#events.emit({ type: "join", endpoint: member });
    if (input !== undefined && hasSource(input)) {
      member.source = true;
      let end!: () => void;
      member.pump = new Promise<void>((resolve) => end = resolve);
      input[SOURCE].attach(
        (framed, at, origin) => this.#fromSource(member, framed, at, origin),
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
    this.#backpressure.start();
    return member;
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
    this.#backpressure.forget(member);
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
    this.#router.take(member, batch.bytes, batch, false);
  }

  #flushInjected(member: Member): void {
    const messages = member.injected;
    member.injected = undefined;
    if (messages === undefined || messages.length === 0 || member.left) {
      return;
    }
    const batch = new FramedBatch(undefined, messages);
    this.#router.take(member, batch.bytes, batch, false);
  }

  /**
   * Ends every note an endpoint holds now, where its notes went, as when it
   * leaves, but keeps it: what a transport does when the peer behind an
   * endpoint changes (a reconnecting client's connection was lost).
   *
   * @param endpoint The endpoint.
   * @returns How many notes were released.
   */
  releaseNotes(endpoint: Endpoint): number {
    const member = endpoint as Member;
    if (!this.#members.includes(member) || member.left) return 0;
    return this.#releaseNotes(member);
  }

  /**
   * Says what people should know, as a `notice` event: how transports tell
   * the hub's listeners where they can be reached and what happens to them
   * (a port lost or back, another hub joined); a `HubLog` prints it.
   *
   * @param message What, for people.
   */
  notice(message: string): void {
    this.#events.emit({ type: "notice", message });
  }

  /**
   * Reports a problem that does not stop anything, as a `warning` event:
   * how transports tell the hub's listeners (a full descriptor table, say).
   *
   * @param message What, for people.
   */
  warn(message: string): void {
    this.#events.emit({ type: "warning", message });
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
    return this.#events.listen(listener, options);
  }

  /**
   * A feed of events to iterate with `for await`, bounded: a reader that
   * falls behind misses events (reported as one `missed` event) rather than
   * holding memory. It ends when the hub closes or `close()` is called.
   *
   * @param options Whether to include message events, and the bound.
   * @returns The feed.
   * @throws {RangeError} For a `queueSize` that is not a positive integer.
   */
  events(options: EventOptions = {}): EventFeed {
    return this.#events.feed(options);
  }

  #warnOnce(member: Member, error: unknown): void {
    if (member.warned) return;
    member.warned = true;
    this.#events.emit({
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
        for (
          let paused = this.#backpressure.pausedFor(member);
          paused !== undefined && !this.#stopping;
          paused = this.#backpressure.pausedFor(member)
        ) {
          await paused;
        }
        if (this.#stopping) return;
        // Each read races a promise of its own, woken when the hub stops: a
        // race against one promise that lives as long as the hub would keep
        // a reaction per read until then.
        const stop = Promise.withResolvers<undefined>();
        this.#wakers.add(stop.resolve);
        let next: IteratorResult<Message> | undefined;
        try {
          next = await Promise.race([messages.next(), stop.promise]);
        } finally {
          this.#wakers.delete(stop.resolve);
        }
        if (next === undefined) return;
        const { value, done } = next;
        if (done || this.#stopping) break;
        const list = [value];
        for (let msg = port.poll(); msg !== undefined; msg = port.poll()) {
          list.push(msg);
          if (list.length >= TURN) break;
        }
        const batch = new FramedBatch(undefined, list);
        this.#router.take(member, batch.bytes, batch, true);
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

  #fromSource(
    member: Member,
    framed: Uint8Array,
    at: number | undefined,
    origin?: string,
  ): Promise<void> | undefined {
    if (this.#stopping || member.left) return undefined;
    this.#router.take(member, framed, undefined, true, at, origin);
    return this.#backpressure.pausedFor(member) && this.#whenFree(member);
  }

  /** Resolves once no reader holds `member`'s input back. */
  async #whenFree(member: Member): Promise<void> {
    for (
      let paused = this.#backpressure.pausedFor(member);
      paused !== undefined && !this.#stopping && !member.left;
      paused = this.#backpressure.pausedFor(member)
    ) {
      await paused;
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
    this.#backpressure.forget(member);
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
    this.#backpressure.left(member);
    const released = this.#releaseNotes(member);
    if (member.closePort) this.#track(member.port.close().catch(() => {}));
    this.#left(member, released);
  }

  /** Sends a note_off for each note `member` holds, where its notes went. */
  #releaseNotes(member: Member): number {
    const notes = member.release();
    if (notes.length > 0) {
      this.#router.deliver(member, new FramedBatch(undefined, notes));
    }
    return notes.length;
  }

  /** Says that `member` has left: its `leave` event and `onLeave`. */
  #left(member: Member, released: number): void {
    this.#events.emit({
      type: "leave",
      endpoint: member,
      reason: member.reason,
      released,
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

  /** The one way a hub stops (see `close`). */
  async #shutdown(): Promise<void> {
    this.#stopping = true;
    for (const wake of this.#wakers) wake(undefined);
    this.#wakers.clear();
    this.#backpressure.stop();
    const members = this.#members;
    for (const member of members) this.#flushInjected(member);
    // Stop reading first, then let go of every held note where it belongs,
    // then close: gracefully while the deadline lasts, then at once.
    const released = members.map((member) => this.#releaseNotes(member));
    // What the playout delay holds goes now, before the ports close.
    this.#router.flush();
    const closing = members.filter((m) => m.closePort).map((m) => m.port);
    const late = await atMost(
      Promise.all(closing.map((port) => port.close())),
      CLOSE_DEADLINE_MS,
      this.#settings.clock,
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
        this.#events.emit({
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
      member.outputDead = true;
      this.#left(member, released[i]);
    });
    this.#events.end();
  }

  /** Closes the hub, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Closes a port at once where it can (its `abort`), else as it closes.
 */
function abortPort(port: Port, reason: unknown): Promise<void> {
  const closing = port.abort !== undefined ? port.abort(reason) : port.close();
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
