/**
 * Seeing MIDI ports come and go: RtMidi has no notifications, so the port
 * lists are taken every `interval` milliseconds and compared.
 *
 * @module
 */

import {
  checkInterval,
  DEFAULT_INTERVAL,
  type Snapshot,
  subscribe,
  type Subscription,
} from "./_census.ts";
import { EventQueue } from "./_events.ts";
import type { HardwareApi } from "./_api.ts";
import { compiledApis } from "./_native.ts";
import { checkOptions } from "./_ports.ts";

/** A port that appeared or went away. */
export interface PortChange {
  /** `"added"`: it appeared; `"removed"`: it went away. */
  readonly type: "added" | "removed";
  /** Its backend. */
  readonly api: HardwareApi;
  /**
   * `"input"`: a port to read from (`openInput`); `"output"`: a port to
   * send to (`openOutput`).
   */
  readonly direction: "input" | "output";
  /** Its name, as `openInput`/`openOutput` take it. */
  readonly name: string;
}

/** Options of {@linkcode watchPorts}. */
export interface WatchOptions {
  /**
   * The backend to watch. A backend that cannot be used has no ports: when
   * a JACK server starts, its ports are reported added; when it stops,
   * removed.
   * @default {the MIDISOCK_RTMIDI_API environment variable if set and readable, else every backend RtMidi has}
   */
  api?: HardwareApi;
  /**
   * The client name to list with (ALSA, CoreMIDI, WinMM).
   * @default {"midisock"}
   */
  clientName?: string;
  /**
   * How often the lists are taken, in milliseconds. A change is reported
   * within about this long (plus the time listing takes).
   * @default {250}
   */
  interval?: number;
  /**
   * Report the ports there are at the start as `"added"`, so that the
   * changes describe every port from nothing.
   * @default {false}
   */
  existing?: boolean;
  /**
   * Ends the watch (as `close()` does) when aborted.
   */
  signal?: AbortSignal;
}

/**
 * Port changes as an async iterator: `for await (const change of watcher)`.
 * Iteration ends when the watcher is closed (breaking out of the loop
 * closes it). Only a waiting reader keeps the process alive.
 */
export interface PortWatcher
  extends AsyncIterableIterator<PortChange>, AsyncDisposable {
  /** Whether the watcher is closed. */
  readonly closed: boolean;
  /**
   * Stops watching: a waiting `next()` resolves as done. Closing twice does
   * nothing.
   *
   * @returns A promise settled once stopped.
   */
  close(): Promise<void>;
}

/** The default interval of {@linkcode watchPorts}, in milliseconds. */
export const DEFAULT_WATCH_INTERVAL: number = DEFAULT_INTERVAL;

class Watcher implements PortWatcher {
  readonly #subscription: Subscription;
  readonly #events: EventQueue<PortChange>;
  readonly #existing: boolean;
  readonly #signal: AbortSignal | undefined;
  #known: Map<string, PortChange> | undefined;

  constructor(
    apis: HardwareApi[] | undefined,
    clientName: string,
    interval: number,
    existing: boolean,
    signal: AbortSignal | undefined,
  ) {
    this.#existing = existing;
    this.#subscription = subscribe(
      apis,
      clientName,
      interval,
      (snapshot) => this.#see(snapshot),
    );
    this.#events = new EventQueue(
      (waiting) => this.#subscription.wait(waiting),
      () => this.close(),
    );
    this.#signal = signal;
    signal?.addEventListener("abort", this.#abort, { once: true });
    if (signal?.aborted) this.#abort();
  }

  get closed(): boolean {
    return this.#events.ended;
  }

  #abort = (): void => {
    this.close();
  };

  #see(snapshot: Snapshot): void {
    const now = new Map<string, PortChange>();
    for (const [api, ports] of snapshot) {
      if (ports === undefined) continue;
      for (const direction of ["input", "output"] as const) {
        for (const port of ports[direction]) {
          now.set(`${api}\0${direction}\0${port.id}`, {
            type: "added",
            api,
            direction,
            name: port.name,
          });
        }
      }
    }
    const before = this.#known;
    this.#known = now;
    if (before === undefined) {
      if (this.#existing) {
        for (const port of now.values()) this.#events.push(port);
      }
      return;
    }
    for (const [key, port] of before) {
      if (!now.has(key)) this.#events.push({ ...port, type: "removed" });
    }
    for (const [key, port] of now) {
      if (!before.has(key)) this.#events.push(port);
    }
  }

  next(): Promise<IteratorResult<PortChange>> {
    return this.#events.next();
  }

  return(): Promise<IteratorResult<PortChange>> {
    return this.#events.return();
  }

  [Symbol.asyncIterator](): PortWatcher {
    return this;
  }

  close(): Promise<void> {
    if (!this.#events.ended) {
      this.#subscription.cancel();
      this.#signal?.removeEventListener("abort", this.#abort);
      this.#events.end();
    }
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Watches the MIDI ports of one backend, or of every backend: each port
 * that appears or goes away is reported once, in the order seen. A port
 * re-created under the same name between two looks is reported removed and
 * added again (where the backend tells ports apart: JACK does).
 *
 * @param options Backend, interval, whether to report the ports there are.
 * @returns The watcher, an async iterator of {@linkcode PortChange}s.
 * @throws {TypeError | RangeError} For a malformed option.
 * @throws {RtMidiNotFoundError} When the RtMidi library is missing.
 * @throws {Deno.errors.NotCapable} Without `--allow-ffi`.
 *
 * @example Printing ports as they come and go
 * ```ts ignore
 * import { watchPorts } from "@x/midisock";
 *
 * for await (const change of watchPorts({ existing: true })) {
 *   console.log(change.type, change.api, change.direction, change.name);
 * }
 * ```
 */
export function watchPorts(options?: WatchOptions): PortWatcher {
  const { api, clientName } = checkOptions(options);
  const interval = checkInterval(options?.interval);
  const existing = options?.existing ?? false;
  if (typeof existing !== "boolean") {
    throw new TypeError(`existing must be a boolean: got ${typeof existing}`);
  }
  // Fails now, not in the loop, without RtMidi or permission.
  compiledApis();
  return new Watcher(
    api === undefined ? undefined : [api],
    clientName,
    interval,
    existing,
    options?.signal,
  );
}
