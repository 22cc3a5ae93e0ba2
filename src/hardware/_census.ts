/**
 * The port lists, taken again and again: RtMidi 5.0 has no notifications,
 * so whoever wants to see ports come and go subscribes here, and one loop
 * per backend selection lists them at the shortest interval any subscriber
 * asked for, handing each snapshot to all. A JACK snapshot is one libjack
 * call per direction reading shared memory; other backends list through an
 * RtMidi client.
 *
 * @module
 */

import type { HardwareApi } from "./_api.ts";
import { backendState } from "./_backends.ts";
import {
  compiledApis,
  type Direction,
  type ListedPort,
  listPorts,
} from "./_native.ts";

/** One backend's ports, both directions; `undefined` while unusable. */
export interface BackendPorts {
  readonly input: readonly ListedPort[];
  readonly output: readonly ListedPort[];
}

/** Every watched backend's ports at one moment. */
export type Snapshot = ReadonlyMap<HardwareApi, BackendPorts | undefined>;

/** Receives each snapshot. */
export type Subscriber = (snapshot: Snapshot) => void;

/** A subscription to a census. */
export interface Subscription {
  /** Stops the snapshots. */
  cancel(): void;
  /**
   * Says whether this subscriber waits for something: the census keeps the
   * process alive while any does.
   */
  wait(waiting: boolean): void;
  /** Asks for a snapshot soon, not at the next interval. */
  hurry(): void;
}

/** How often port lists are taken by default, in milliseconds. */
export const DEFAULT_INTERVAL = 250;

/**
 * Checks how often port lists are to be taken.
 *
 * @param interval Milliseconds, or `undefined` for the default.
 * @returns The interval.
 * @throws {RangeError} For anything but a number from 1.
 */
export function checkInterval(interval: unknown): number {
  const value = interval ?? DEFAULT_INTERVAL;
  if (typeof value !== "number" || !(value >= 1 && value < 2 ** 31)) {
    throw new RangeError(
      `interval must be a number of milliseconds from 1: got ${value}`,
    );
  }
  return value;
}

const DIRECTIONS: readonly Direction[] = ["input", "output"];

class Census {
  readonly #apis: readonly HardwareApi[] | undefined;
  readonly #clientName: string;
  readonly #subscribers = new Map<
    Subscriber,
    { interval: number; waiting: boolean }
  >();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running = false;
  #last: Map<HardwareApi, BackendPorts | undefined> = new Map();
  readonly #forget: () => void;

  constructor(
    apis: readonly HardwareApi[] | undefined,
    clientName: string,
    forget: () => void,
  ) {
    this.#apis = apis;
    this.#clientName = clientName;
    this.#forget = forget;
  }

  subscribe(interval: number, subscriber: Subscriber): Subscription {
    const entry = { interval, waiting: false };
    this.#subscribers.set(subscriber, entry);
    this.#schedule(0);
    return {
      cancel: () => {
        this.#subscribers.delete(subscriber);
        if (this.#subscribers.size === 0) {
          clearTimeout(this.#timer);
          this.#timer = undefined;
          this.#forget();
        } else this.#ref();
      },
      wait: (waiting) => {
        entry.waiting = waiting;
        this.#ref();
      },
      hurry: () => this.#schedule(0),
    };
  }

  #interval(): number {
    let interval = Infinity;
    for (const entry of this.#subscribers.values()) {
      interval = Math.min(interval, entry.interval);
    }
    return interval;
  }

  #ref(): void {
    if (this.#timer === undefined) return;
    const waiting = [...this.#subscribers.values()].some((e) => e.waiting);
    if (waiting) Deno.refTimer(this.#timer);
    else Deno.unrefTimer(this.#timer);
  }

  #schedule(ms: number): void {
    if (this.#running || this.#subscribers.size === 0) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => this.#take(), ms);
    this.#ref();
  }

  async #take(): Promise<void> {
    this.#timer = undefined;
    this.#running = true;
    let snapshot: Snapshot;
    try {
      snapshot = await this.#list();
    } catch {
      // Nothing could be listed (no RtMidi, no permission): nothing changed.
      snapshot = this.#last;
    } finally {
      this.#running = false;
    }
    this.#last = new Map(snapshot);
    for (const subscriber of [...this.#subscribers.keys()]) {
      if (this.#subscribers.has(subscriber)) subscriber(snapshot);
    }
    this.#schedule(this.#interval());
  }

  async #list(): Promise<Snapshot> {
    const apis = this.#apis ?? compiledApis();
    const snapshot = new Map<HardwareApi, BackendPorts | undefined>();
    for (const api of apis) {
      const state = await backendState(api);
      if (!state.usable) {
        snapshot.set(api, undefined);
        continue;
      }
      try {
        const [input, output] = await Promise.all(
          DIRECTIONS.map((d) => listPorts(api, d, this.#clientName)),
        );
        snapshot.set(api, { input, output });
      } catch {
        // A listing that failed tells nothing: keep what was seen before.
        snapshot.set(api, this.#last.get(api));
      }
    }
    return snapshot;
  }
}

const censuses = new Map<string, Census>();

/**
 * Subscribes to the port lists of some backends.
 *
 * @param apis The backends, or `undefined` for every one RtMidi has.
 * @param clientName The client name to list with.
 * @param interval How often to list, in milliseconds, at most.
 * @param subscriber Receives each snapshot, the first one at once.
 * @returns The subscription.
 */
export function subscribe(
  apis: readonly HardwareApi[] | undefined,
  clientName: string,
  interval: number,
  subscriber: Subscriber,
): Subscription {
  const key = `${apis?.join(",") ?? "*"}\0${clientName}`;
  let census = censuses.get(key);
  if (census === undefined) {
    census = new Census(apis, clientName, () => censuses.delete(key));
    censuses.set(key, census);
  }
  return census.subscribe(interval, subscriber);
}
