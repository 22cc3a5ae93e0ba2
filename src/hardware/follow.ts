/**
 * Following a port through unplug and replug: the port is opened, watched,
 * ended when it goes away and opened again when it comes back.
 *
 * @module
 */

import {
  checkInterval,
  type Snapshot,
  subscribe,
  type Subscription,
} from "./_census.ts";
import { EventQueue } from "./_events.ts";
import { currentJackHelper } from "./_jack.ts";
import type { HardwareApi } from "./_api.ts";
import type { Direction, ListedPort } from "./_native.ts";
import {
  checkOptions,
  checkQuery,
  type Losable,
  LOSE,
  type Opened,
  openInputPort,
  openOutputPort,
} from "./_ports.ts";
import type {
  HardwareInput,
  HardwareOutput,
  InputOptions,
  OutputOptions,
} from "./types.ts";

/**
 * What happened to a followed port: first `"opened"`, then `"lost"` and
 * `"back"` in turn, each with the port concerned.
 */
export interface FollowEvent<P> {
  /**
   * `"opened"`: the port was opened (the first event); `"lost"`: the port
   * it was connected to went away, and `port` has ended (an input delivers
   * what arrived before, then ends with a `PortLostError` as the cause;
   * an output's waiting sends are dropped); `"back"`: a port matching the
   * name is there again and `port` is open on it.
   */
  readonly type: "opened" | "lost" | "back";
  /** The port: new for `"opened"` and `"back"`, ended for `"lost"`. */
  readonly port: P;
  /** The name of the port it is (or was) connected to. */
  readonly name: string;
}

/** Options of following, besides those of opening the port. */
export interface FollowOptions {
  /**
   * How often the port lists are looked at, in milliseconds: a port that
   * goes away or comes back is seen within about this long.
   * @default {250}
   */
  interval?: number;
  /** Stops following (as `close()` does) when aborted. */
  signal?: AbortSignal;
}

/** Options of {@linkcode followInput}: those of `openInput` but `virtual`. */
export interface FollowInputOptions
  extends Omit<InputOptions, "virtual">, FollowOptions {}

/** Options of {@linkcode followOutput}: those of `openOutput` but `virtual`. */
export interface FollowOutputOptions
  extends Omit<OutputOptions, "virtual">, FollowOptions {}

/**
 * A port followed through unplug and replug. Iterate it with `for await`
 * for its {@linkcode FollowEvent}s; iteration ends when the follower is
 * closed (breaking out of the loop closes it). Only a waiting reader keeps
 * the process alive.
 */
export interface PortFollower<P>
  extends AsyncIterableIterator<FollowEvent<P>>, AsyncDisposable {
  /** The port while it is there; `undefined` while it is away. */
  readonly port: P | undefined;
  /** The name of the port followed: the one last opened. */
  readonly name: string;
  /** Whether the follower is closed. */
  readonly closed: boolean;
  /**
   * Stops following and closes the port. Closing twice does nothing.
   *
   * @returns A promise settled once the port is closed.
   */
  close(): Promise<void>;
}

type Opener<P> = (name: string) => Promise<Opened<P>>;

class Follower<P extends Losable & { close(): Promise<void> }>
  implements PortFollower<P> {
  readonly #direction: Direction;
  readonly #api: HardwareApi;
  readonly #query: string | number | undefined;
  readonly #open: Opener<P>;
  readonly #events: EventQueue<FollowEvent<P>>;
  readonly #subscription: Subscription;
  readonly #signal: AbortSignal | undefined;
  #port: P | undefined;
  #listed: ListedPort;
  #link: string | undefined;
  #reopening = false;
  #closing: Promise<void> | undefined;

  constructor(
    direction: Direction,
    query: string | number | undefined,
    first: Opened<P>,
    open: Opener<P>,
    interval: number,
    clientName: string,
    signal: AbortSignal | undefined,
  ) {
    this.#direction = direction;
    this.#api = first.api;
    this.#query = query;
    this.#open = open;
    this.#port = first.port;
    this.#listed = first.listed!;
    this.#link = first.link;
    this.#events = new EventQueue(
      (waiting) => this.#subscription.wait(waiting),
      () => this.close(),
    );
    this.#events.push({
      type: "opened",
      port: first.port,
      name: this.#listed.name,
    });
    this.#subscription = subscribe(
      [first.api],
      clientName,
      interval,
      (snapshot) => this.#see(snapshot),
    );
    this.#signal = signal;
    signal?.addEventListener("abort", this.#abort, { once: true });
    if (signal?.aborted) this.#abort();
  }

  get port(): P | undefined {
    return this.#port;
  }

  get name(): string {
    return this.#listed.name;
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  #abort = (): void => {
    this.close();
  };

  #see(snapshot: Snapshot): void {
    if (this.#closing !== undefined || this.#reopening) return;
    const ports = snapshot.get(this.#api)?.[this.#direction];
    const port = this.#port;
    if (port !== undefined) {
      if (this.#present(ports)) return;
      this.#port = undefined;
      port[LOSE]().catch(() => {});
      this.#events.push({ type: "lost", port, name: this.#listed.name });
      return;
    }
    const match = ports === undefined ? undefined : this.#match(ports);
    if (match !== undefined) this.#reopen(match);
  }

  /**
   * Whether the port followed is still there, and on JACK still connected
   * to this end: jack2 gives a port re-created between two looks its old
   * identity, but not its connections.
   */
  #present(ports: readonly ListedPort[] | undefined): boolean {
    if (!ports?.some((p) => p.id === this.#listed.id)) return false;
    if (this.#link === undefined) return true;
    const connected = currentJackHelper()?.connections(this.#listed.name);
    return connected === undefined || connected.includes(this.#link);
  }

  /**
   * The port to reopen: the one of the same name, else (for a name query)
   * the one port the query matches, as `openInput` would find it.
   */
  #match(ports: readonly ListedPort[]): ListedPort | undefined {
    const same = ports.find((p) => p.name === this.#listed.name);
    if (same !== undefined || typeof this.#query !== "string") return same;
    const query = this.#query;
    const exact = ports.find((p) => p.name === query);
    if (exact !== undefined) return exact;
    const lower = query.toLowerCase();
    const matches = ports.filter((p) => p.name.toLowerCase().includes(lower));
    return matches.length === 1 ? matches[0] : undefined;
  }

  async #reopen(match: ListedPort): Promise<void> {
    this.#reopening = true;
    let opened: Opened<P> | undefined;
    try {
      opened = await this.#open(match.name);
    } catch {
      // Gone again, or not ready: the next look tries again.
    } finally {
      this.#reopening = false;
    }
    if (opened === undefined) return;
    if (this.#closing !== undefined) {
      await opened.port.close();
      return;
    }
    this.#port = opened.port;
    this.#listed = opened.listed ?? match;
    this.#link = opened.link;
    this.#events.push({ type: "back", port: opened.port, name: match.name });
  }

  next(): Promise<IteratorResult<FollowEvent<P>>> {
    return this.#events.next();
  }

  return(): Promise<IteratorResult<FollowEvent<P>>> {
    return this.#events.return();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#subscription.cancel();
      this.#signal?.removeEventListener("abort", this.#abort);
      this.#events.end();
      const port = this.#port;
      this.#port = undefined;
      // A reopening in flight closes what it opens (see #reopen).
      await port?.close();
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function checkFollowed(
  name: unknown,
  options: object | undefined,
): string | number | undefined {
  if (options !== undefined && options !== null && "virtual" in options) {
    throw new TypeError(
      "A virtual port cannot be followed: it is there while it is open",
    );
  }
  return checkQuery(name, false);
}

/**
 * Opens a MIDI input as `openInput` does and follows it: when the port it
 * reads goes away (a device unplugged, a program that quit), the input ends
 * and a `"lost"` event is reported; when a port of the same name (or, for a
 * name query, the one port the query matches) is there again, a new input
 * is opened on it and reported as `"back"`.
 *
 * @param name The port: a name, part of one, or an index (an index only
 * finds the port the first time; it comes back by name).
 * @param options Those of `openInput` (but `virtual`), and the interval.
 * @returns The follower, once the port is open; its first event is
 * `"opened"`.
 * @throws {TypeError | RangeError} For a malformed argument.
 * @throws {PortNotFoundError} When no port or several match at the start.
 * @throws {BackendUnavailableError} When the backend cannot be used.
 * @throws {RtMidiError} When RtMidi fails.
 * @throws {RtMidiNotFoundError} When the RtMidi library is missing.
 * @throws {Deno.errors.NotCapable} Without `--allow-ffi`.
 *
 * @example Printing a keyboard's notes across unplugging it
 * ```ts ignore
 * import { followInput } from "@x/midisock";
 *
 * for await (const { type, port, name } of await followInput("keystation")) {
 *   console.log(type, name);
 *   if (type !== "lost") {
 *     (async () => { for await (const msg of port) console.log(msg); })();
 *   }
 * }
 * ```
 */
export async function followInput(
  name?: string | number,
  options?: FollowInputOptions,
): Promise<PortFollower<HardwareInput>> {
  const query = checkFollowed(name, options);
  const interval = checkInterval(options?.interval);
  const { clientName } = checkOptions(options);
  const first = await openInputPort(query, options);
  const again = { ...options, api: first.api, interval: undefined };
  return new Follower(
    "input",
    query,
    first,
    (found) => openInputPort(found, again),
    interval,
    clientName,
    options?.signal,
  );
}

/**
 * Opens a MIDI output as `openOutput` does and follows it, as
 * {@linkcode followInput} follows an input: when the port goes away, the
 * output is closed (sends waiting for room are dropped) and `"lost"` is
 * reported; when it is back, a new output is opened on it (`"back"`).
 *
 * @param name The port: a name, part of one, or an index.
 * @param options Those of `openOutput` (but `virtual`), and the interval.
 * @returns The follower, once the port is open; its first event is
 * `"opened"`.
 * @throws {TypeError | RangeError} For a malformed argument.
 * @throws {PortNotFoundError} When no port or several match at the start.
 * @throws {BackendUnavailableError} When the backend cannot be used.
 * @throws {RtMidiError} When RtMidi fails.
 * @throws {RtMidiNotFoundError} When the RtMidi library is missing.
 * @throws {Deno.errors.NotCapable} Without `--allow-ffi`.
 *
 * @example Keeping a synth as the target of a loop
 * ```ts ignore
 * import { followOutput, message } from "@x/midisock";
 *
 * await using synth = await followOutput("fluid");
 * setInterval(() => synth.port?.send(message("clock")).catch(() => {}), 20);
 * for await (const { type, name } of synth) console.log(type, name);
 * ```
 */
export async function followOutput(
  name?: string | number,
  options?: FollowOutputOptions,
): Promise<PortFollower<HardwareOutput>> {
  const query = checkFollowed(name, options);
  const interval = checkInterval(options?.interval);
  const { clientName } = checkOptions(options);
  const first = await openOutputPort(query, options);
  const again = { ...options, api: first.api, interval: undefined };
  return new Follower(
    "output",
    query,
    first,
    (found) => openOutputPort(found, again),
    interval,
    clientName,
    options?.signal,
  );
}
