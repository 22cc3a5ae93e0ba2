/**
 * Hardware MIDI ports as a transport of a hub: the inputs, outputs and
 * virtual pairs a hub should have, each a `device` endpoint, followed
 * through unplug and replug.
 *
 * @module
 */

import { callBack } from "../_call.ts";
import { PortClosedError } from "../errors.ts";
import type { Endpoint, Hub } from "../hub/mod.ts";
import type { Port } from "../port.ts";
import type { Transport } from "../transport.ts";
import { checkInterval } from "./_census.ts";
import { EventQueue } from "./_events.ts";
import {
  checkInputOptions,
  checkOptions,
  checkOverflow,
  checkQuery,
} from "./_ports.ts";
import { PortLostError } from "./errors.ts";
import { followInput, followOutput, type PortFollower } from "./follow.ts";
import { openIOPort } from "./ports.ts";
import type {
  HardwareInput,
  HardwareIOPort,
  HardwareOutput,
  IOPortOptions,
} from "./types.ts";

/**
 * What a hardware port is to a hub: an `"input"` it reads, an `"output"` it
 * plays to, or a virtual `"pair"`, both at once.
 */
export type MidiPortRole = "input" | "output" | "pair";

/** Options of {@linkcode MidiPorts}. */
export interface MidiPortsOptions extends Omit<IOPortOptions, "virtual"> {
  /**
   * Ports to read from: each a name, a part of one that only one port has,
   * or an index, as `openInput` takes it. Each is followed: when it goes
   * away its endpoint leaves the hub (which releases the notes it held),
   * and when it is back it joins again.
   * @default {[]}
   */
  inputs?: readonly (string | number)[];
  /**
   * Ports to play to, found and followed as `inputs` are.
   * @default {[]}
   */
  outputs?: readonly (string | number)[];
  /**
   * Virtual ports to create, for other programs to connect to: each name
   * makes an input and an output of that name, one endpoint. Not on
   * Windows.
   * @default {[]}
   */
  virtual?: readonly string[];
  /**
   * How often the port lists are looked at while following, in
   * milliseconds: a port that goes or comes back is seen within about this
   * long.
   * @default {250}
   */
  interval?: number;
  /**
   * Called with each {@linkcode MidiPortsEvent}, as it happens; what it
   * throws is reported, not thrown. {@linkcode formatMidiPortsEvent} words
   * an event for people. Without it, the hub is told each in those words,
   * as a notice (an `"error"` as a warning), which a `HubLog` prints.
   */
  onEvent?: (event: MidiPortsEvent) => void;
}

/** Something that happened to a port of {@linkcode MidiPorts}. */
export type MidiPortsEvent =
  | {
    /** A followed port was opened (during `attach`) and joined the hub. */
    readonly type: "opened";
    /** Which list it is from. */
    readonly role: "input" | "output";
    /** The port's name. */
    readonly name: string;
    /** Its endpoint on the hub. */
    readonly endpoint: Endpoint;
  }
  | {
    /** A virtual pair was created (during `attach`) and joined the hub. */
    readonly type: "created";
    /** Always `"pair"`. */
    readonly role: "pair";
    /** The pair's name. */
    readonly name: string;
    /** Its endpoint on the hub. */
    readonly endpoint: Endpoint;
  }
  | {
    /**
     * A followed port went away (a device unplugged, a program that quit):
     * its endpoint has left, or is leaving, the hub; an input's held notes
     * are released by the hub.
     */
    readonly type: "lost";
    /** Which list it is from. */
    readonly role: "input" | "output";
    /** The name of the port that went away. */
    readonly name: string;
  }
  | {
    /** A port that was lost is there again, opened, and on the hub. */
    readonly type: "back";
    /** Which list it is from. */
    readonly role: "input" | "output";
    /** The port's name. */
    readonly name: string;
    /** Its new endpoint on the hub. */
    readonly endpoint: Endpoint;
  }
  | {
    /**
     * A port that came back could not join the hub; it was closed, and
     * following goes on.
     */
    readonly type: "error";
    /** Which list it is from. */
    readonly role: "input" | "output";
    /** The port's name. */
    readonly name: string;
    /** What went wrong. */
    readonly error: unknown;
  };

/**
 * Words an event for people, one line, as `serve` prints it:
 * `input "NAME" opened`, `output "NAME" opened`, `virtual "NAME" created`,
 * `lost "NAME"`, `back "NAME"`, or `cannot use "NAME" again: WHY`.
 *
 * @param event The event.
 * @returns The line.
 *
 * @example Lines for a keyboard unplugged and plugged in again
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatMidiPortsEvent } from "@x/midisock/hardware";
 *
 * assert.equal(
 *   formatMidiPortsEvent({ type: "lost", role: "input", name: "keys:out" }),
 *   'lost "keys:out"',
 * );
 * assert.equal(
 *   formatMidiPortsEvent({
 *     type: "error",
 *     role: "input",
 *     name: "keys:out",
 *     error: new Error("Port hub is closed"),
 *   }),
 *   'cannot use "keys:out" again: Port hub is closed',
 * );
 * ```
 */
export function formatMidiPortsEvent(event: MidiPortsEvent): string {
  const name = JSON.stringify(event.name);
  switch (event.type) {
    case "opened":
      return `${event.role} ${name} opened`;
    case "created":
      return `virtual ${name} created`;
    case "lost":
      return `lost ${name}`;
    case "back":
      return `back ${name}`;
    case "error": {
      const why = event.error instanceof Error
        ? event.error.message
        : String(event.error);
      return `cannot use ${name} again: ${why}`;
    }
  }
}

/** What an endpoint of a hardware port is called: its name, quoted. */
function endpointName(port: Port): string {
  return JSON.stringify(port.name);
}

/** The transport's name: what it opens. */
function describe(
  inputs: readonly (string | number)[],
  outputs: readonly (string | number)[],
  virtual: readonly string[],
): string {
  const query = (q: string | number) =>
    typeof q === "number" ? `#${q}` : JSON.stringify(q);
  const parts = [
    ...inputs.map((q) => `in ${query(q)}`),
    ...outputs.map((q) => `out ${query(q)}`),
    ...virtual.map((name) => `virtual ${JSON.stringify(name)}`),
  ];
  return `midi ${parts.length === 0 ? "(no ports)" : parts.join(", ")}`;
}

function checkList<T>(
  value: unknown,
  what: string,
  check: (item: unknown) => T,
): T[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) {
    throw new TypeError(`${what} must be an array: got ${typeof value}`);
  }
  return value.map(check);
}

/** Checks one entry of `inputs` or `outputs`. */
function checkPort(query: unknown): string | number {
  if (query === undefined) {
    throw new TypeError(
      "A port to open must be a name or an index: got undefined",
    );
  }
  return checkQuery(query, false)!;
}

type Follower = PortFollower<HardwareInput> | PortFollower<HardwareOutput>;

/**
 * Hardware MIDI ports as a transport: attached to a hub, it opens the
 * `inputs` and `outputs` asked for (by name, part of a name or index) and
 * creates the `virtual` pairs, and makes each a `device` endpoint of the
 * hub (transport `"midi"`, named by the port's name in quotes). Inputs and
 * outputs are followed: when one goes away, its endpoint leaves the hub
 * (which releases the notes an input held) and a `"lost"` event says so;
 * when a port of that name is there again, it is opened, joins the hub
 * again and `"back"` says so.
 *
 * Events go to the `onEvent` option (or, without it, to the hub as
 * notices and warnings) and to every {@linkcode events} feed.
 * The hub closes the transport when it closes; `close()` stops following
 * and closes the ports.
 *
 * @example A hub with no hardware ports yet (no permission needed)
 * ```ts
 * import assert from "node:assert/strict";
 * import { Hub, MidiPorts } from "@x/midisock";
 *
 * const ports = new MidiPorts();
 * {
 *   await using hub = new Hub();
 *   await hub.attach(ports);
 *   assert.equal(ports.name, "midi (no ports)");
 *   assert.deepEqual(ports.endpoints, []);
 * }
 * assert.ok(ports.closed);
 * assert.throws(() => new MidiPorts({ inputs: [-1] }), RangeError);
 * ```
 *
 * @example A keyboard and a synth on a hub, through unplug and replug
 * ```ts ignore
 * import { formatMidiPortsEvent, Hub, MidiPorts } from "@x/midisock/hardware";
 *
 * await using hub = new Hub();
 * await hub.attach(
 *   new MidiPorts({
 *     inputs: ["keystation"],
 *     outputs: ["fluid"],
 *     virtual: ["midisock"],
 *     onEvent: (event) => console.log(formatMidiPortsEvent(event)),
 *   }),
 * );
 * ```
 */
export class MidiPorts implements Transport {
  /** What it opens, for people: `midi in "keys", out "synth"`. */
  readonly name: string;
  readonly #inputs: readonly (string | number)[];
  readonly #outputs: readonly (string | number)[];
  readonly #virtual: readonly string[];
  readonly #options: Readonly<Omit<IOPortOptions, "virtual">> & {
    readonly interval: number;
  };
  readonly #onEvent: ((event: MidiPortsEvent) => void) | undefined;
  readonly #followers = new Set<Follower>();
  readonly #pairs = new Set<HardwareIOPort>();
  readonly #endpoints = new Set<Endpoint>();
  readonly #following = new Set<Promise<void>>();
  readonly #feeds = new Set<EventQueue<MidiPortsEvent>>();
  #hub: Hub | undefined;
  #closing: Promise<void> | undefined;

  /**
   * Checks the options; nothing is opened before {@linkcode attach}.
   *
   * @param options The ports, their options, and where events go.
   * @throws {TypeError | RangeError} For a malformed option, naming it.
   */
  constructor(options: MidiPortsOptions = {}) {
    if (options === null || typeof options !== "object") {
      throw new TypeError(`Options must be an object: got ${options}`);
    }
    const { inputs, outputs, virtual, interval, onEvent, ...rest } = options;
    if (onEvent !== undefined && typeof onEvent !== "function") {
      throw new TypeError(`onEvent must be a function: got ${typeof onEvent}`);
    }
    const { api, clientName } = checkOptions(rest);
    checkInputOptions(rest);
    checkOverflow(rest);
    this.#inputs = Object.freeze(checkList(inputs, "inputs", checkPort));
    this.#outputs = Object.freeze(checkList(outputs, "outputs", checkPort));
    this.#virtual = Object.freeze(
      checkList(virtual, "virtual", (name) => checkQuery(name, true) as string),
    );
    this.#options = Object.freeze({
      ...rest,
      api,
      clientName,
      interval: checkInterval(interval),
    });
    this.#onEvent = onEvent;
    this.name = describe(this.#inputs, this.#outputs, this.#virtual);
  }

  /** Whether {@linkcode close} was called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** The endpoints its ports have on the hub now. */
  get endpoints(): readonly Endpoint[] {
    return [...this.#endpoints];
  }

  /**
   * A feed of the events from now on, to iterate with `for await`; it ends
   * when the transport closes (breaking out of the loop ends only the
   * feed).
   *
   * @returns The feed.
   */
  events(): AsyncIterableIterator<MidiPortsEvent> {
    const feed: EventQueue<MidiPortsEvent> = new EventQueue(() => {}, () => {
      this.#feeds.delete(feed);
      feed.end();
      return Promise.resolve();
    });
    if (this.closed) feed.end();
    else this.#feeds.add(feed);
    return feed;
  }

  /**
   * Opens the ports on `hub`: the virtual pairs, then the inputs, then the
   * outputs, in the order given, each joining the hub as it opens. Called
   * by {@linkcode Hub.attach}.
   *
   * @param hub The hub.
   * @returns A promise that resolves once every port is open and on the
   * hub, or rejects with why one cannot be (what was opened is closed).
   * @throws {PortNotFoundError} When no port or several match a query; the
   * message lists the ports there are.
   * @throws {BackendUnavailableError} When the backend cannot be used.
   * @throws {RtMidiError} When RtMidi fails.
   * @throws {RtMidiNotFoundError} When the RtMidi library is missing.
   * @throws {Deno.errors.NotCapable} Without `--allow-ffi`.
   * @throws {PortClosedError} When the transport or the hub is closed.
   */
  async attach(hub: Hub): Promise<void> {
    if (this.#closing !== undefined) throw new PortClosedError(this.name);
    if (hub.closed) throw new PortClosedError("hub");
    if (this.#hub !== undefined) {
      throw new Error(`${this.name} is attached to a hub already`);
    }
    this.#hub = hub;
    try {
      for (const name of this.#virtual) {
        const pair = await openIOPort(name, {
          ...this.#options,
          virtual: true,
        });
        if (this.#closing !== undefined) {
          await pair.close();
          return;
        }
        this.#pairs.add(pair);
        const endpoint = this.#add(pair);
        this.#emit({
          type: "created",
          role: "pair",
          name: pair.name,
          endpoint,
        });
      }
      for (const query of this.#inputs) await this.#follow("input", query);
      for (const query of this.#outputs) await this.#follow("output", query);
    } catch (error) {
      await this.close();
      throw error;
    }
  }

  /** Opens one port to follow, puts it on the hub, and follows it. */
  async #follow(role: "input" | "output", query: string | number) {
    const follower: Follower = role === "input"
      ? await followInput(query, this.#options)
      : await followOutput(query, this.#options);
    if (this.#closing !== undefined) {
      await follower.close();
      return;
    }
    this.#followers.add(follower);
    const first = await follower.next();
    if (first.done) return;
    const endpoint = this.#add(first.value.port);
    this.#emit({ type: "opened", role, name: first.value.name, endpoint });
    const following: Promise<void> = this.#watch(role, follower, endpoint)
      .finally(() => this.#following.delete(following));
    this.#following.add(following);
  }

  /** Follows a port after its first opening: lost and back, in turn. */
  async #watch(
    role: "input" | "output",
    follower: Follower,
    first: Endpoint,
  ): Promise<void> {
    const hub = this.#hub!;
    let current: Endpoint | undefined = first;
    for await (const { type, port, name } of follower) {
      if (type === "lost") {
        const gone = current;
        current = undefined;
        // An input ends by itself, and the hub releases what it held once
        // it has read what came before; an output would stay until a send
        // failed.
        if (gone !== undefined && role === "output") {
          await hub.remove(gone, new PortLostError(name));
        }
        this.#emit({ type: "lost", role, name });
        continue;
      }
      try {
        current = this.#add(port);
      } catch (error) {
        await port.close();
        if (hub.closed || this.#closing !== undefined) continue;
        this.#emit({ type: "error", role, name, error });
        continue;
      }
      this.#emit({ type: "back", role, name, endpoint: current });
    }
  }

  /** Puts a port on the hub as a device endpoint. */
  #add(port: Port): Endpoint {
    const endpoint: Endpoint = this.#hub!.add(port, {
      kind: "device",
      transport: "midi",
      name: endpointName(port),
      onLeave: () => this.#endpoints.delete(endpoint),
    });
    this.#endpoints.add(endpoint);
    return endpoint;
  }

  #emit(event: MidiPortsEvent): void {
    // With no listener of its own, it tells the hub's (a HubLog's lines).
    const line = this.#onEvent ? "" : formatMidiPortsEvent(event);
    if (this.#onEvent) callBack(this.#onEvent, event);
    else if (event.type === "error") this.#hub?.warn(line);
    else this.#hub?.notice(line);
    for (const feed of this.#feeds) feed.push(event);
  }

  /**
   * Stops following and closes the ports: their endpoints leave the hub
   * (releasing what inputs held), unless the hub has closed them already.
   * Closing twice does nothing.
   *
   * @returns A promise that resolves once every port is closed.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const hub = this.#hub;
    if (hub !== undefined && !hub.closed) {
      await Promise.all([...this.#endpoints].map((e) => hub.remove(e)));
    }
    await Promise.all([...this.#followers].map((f) => f.close()));
    await Promise.all([...this.#pairs].map((pair) => pair.close()));
    await Promise.all(this.#following);
    for (const feed of this.#feeds) feed.end();
    this.#feeds.clear();
  }

  /** Closes it, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
