/**
 * The hardware ports themselves, and how a port is found: which backends
 * can be used now, which of them has the port asked for, and its index
 * there. `ports.ts` is the public face of this module; `follow.ts` uses
 * the details it returns (which backend, which port identity) and the
 * {@linkcode LOSE} seam, which ends a port whose other end went away.
 *
 * @module
 */

import { encode } from "../codec/encode.ts";
import type { Message } from "../codec/messages.ts";
import { Parser } from "../codec/parser.ts";
import { PortClosedError } from "../errors.ts";
import { sleep } from "../_time.ts";
import {
  DEFAULT_QUEUE_SIZE,
  InputPortBase,
  PANIC_MESSAGES,
  RESET_MESSAGES,
} from "../port.ts";
import { backendState } from "./_backends.ts";
import { currentJackHelper } from "./_jack.ts";
import { apiFromEnvironment, checkApi, type HardwareApi } from "./_api.ts";
import {
  compiledApis,
  type Direction,
  Lease,
  type ListedPort,
  listPorts,
  READ_BUFFER_SIZE,
  type Ringable,
} from "./_native.ts";
import { type Polled, poller } from "./_poller.ts";
import {
  BackendUnavailableError,
  PortLostError,
  PortNotFoundError,
  RtMidiError,
  type UnavailableBackend,
} from "./errors.ts";
import type {
  ApiState,
  HardwareInput,
  HardwareIOPort,
  HardwareOptions,
  HardwareOutput,
  InputOptions,
  OutputOptions,
  PortOptions,
} from "./types.ts";

/**
 * Ends a port whose other end went away: an input delivers what arrived
 * before and then ends with a {@linkcode PortLostError} as the cause; an
 * output drops what still waits. The native port is closed either way.
 */
export const LOSE: unique symbol = Symbol("midisock.lose");

/** A port that can be ended through {@linkcode LOSE}. */
export interface Losable {
  [LOSE](): Promise<void>;
}

const DEFAULT_CLIENT_NAME = "midisock";

interface Checked {
  api: HardwareApi | undefined;
  clientName: string;
  virtual: boolean;
}

function checkText(value: unknown, what: string): string {
  if (typeof value !== "string") {
    throw new TypeError(`${what} must be a string: got ${typeof value}`);
  }
  if (value.includes("\0")) {
    throw new RangeError(
      `${what} must not contain a NUL character: got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

function checkBoolean(
  value: unknown,
  what: string,
  fallback: boolean,
): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== "boolean") {
    throw new TypeError(`${what} must be a boolean: got ${typeof value}`);
  }
  return value;
}

/**
 * Checks the options every hardware call takes.
 *
 * @param options The options.
 * @returns Them, checked, with the defaults filled in.
 * @throws {TypeError | RangeError} For a malformed option.
 */
export function checkOptions(
  options: PortOptions | undefined,
): Checked {
  if (
    options !== undefined && (options === null || typeof options !== "object")
  ) {
    throw new TypeError(`Options must be an object: got ${options}`);
  }
  const api = checkApi(options?.api) ?? apiFromEnvironment();
  const clientName = checkText(
    options?.clientName ?? DEFAULT_CLIENT_NAME,
    "clientName",
  );
  if (clientName === "") {
    throw new RangeError(`clientName must not be empty: got ""`);
  }
  const virtual = checkBoolean(options?.virtual, "virtual", false);
  return { api, clientName, virtual };
}

/**
 * Checks the options only inputs take.
 *
 * @param options The options.
 * @returns The queue size and the filters, with the defaults filled in.
 * @throws {TypeError | RangeError} For a malformed option.
 */
export function checkInputOptions(options: InputOptions | undefined): {
  queueSize: number;
  sysex: boolean;
  timing: boolean;
  sensing: boolean;
} {
  const queueSize = options?.queueSize ?? DEFAULT_QUEUE_SIZE;
  if (!Number.isSafeInteger(queueSize) || queueSize < 1) {
    throw new RangeError(
      `queueSize must be a positive integer: got ${queueSize}`,
    );
  }
  return {
    queueSize,
    sysex: checkBoolean(options?.ignoreSysex, "ignoreSysex", false),
    timing: checkBoolean(options?.ignoreTiming, "ignoreTiming", false),
    sensing: checkBoolean(
      options?.ignoreActiveSensing,
      "ignoreActiveSensing",
      true,
    ),
  };
}

/**
 * Checks the option only outputs take.
 *
 * @param options The options.
 * @returns The overflow policy, with the default filled in.
 * @throws {RangeError} For a policy that is not one.
 */
export function checkOverflow(
  options: OutputOptions | undefined,
): "queue" | "drop" {
  const overflow = options?.overflow ?? "queue";
  if (overflow !== "queue" && overflow !== "drop") {
    throw new RangeError(
      `overflow must be "queue" or "drop": got ${JSON.stringify(overflow)}`,
    );
  }
  return overflow;
}

/**
 * Checks what names a port.
 *
 * @param name A name, part of one, or an index.
 * @param virtual Whether a virtual port of that name is to be made.
 * @returns The query; `undefined` for "the first port".
 * @throws {TypeError | RangeError} For a malformed name.
 */
export function checkQuery(
  name: unknown,
  virtual: boolean,
): string | number | undefined {
  if (name === undefined) {
    if (virtual) {
      throw new TypeError("A virtual port needs a name: got undefined");
    }
    return undefined;
  }
  if (typeof name === "number") {
    if (virtual) {
      throw new TypeError(
        `A virtual port's name must be a string: got ${name}`,
      );
    }
    if (!Number.isSafeInteger(name) || name < 0) {
      throw new RangeError(
        `Port index must be a non-negative integer: got ${name}`,
      );
    }
    return name;
  }
  const text = checkText(name, "Port name");
  if (virtual && text === "") {
    throw new RangeError(`A virtual port's name must not be empty: got ""`);
  }
  return text;
}

/**
 * Picks a port: the exact name, else the one name containing the query
 * (ignoring case), else the query read as an index.
 *
 * @param direction For the error.
 * @param names The ports there are.
 * @param query What was asked for; `undefined` means the first port.
 * @returns The index.
 * @throws {PortNotFoundError} When nothing or more than one port matches.
 */
export function resolvePort(
  direction: Direction,
  names: readonly string[],
  query: string | number | undefined,
): number {
  if (query === undefined) {
    if (names.length === 0) throw new PortNotFoundError(direction, "", names);
    return 0;
  }
  if (typeof query === "number") {
    if (query >= names.length) {
      throw new PortNotFoundError(direction, query, names);
    }
    return query;
  }
  const exact = names.indexOf(query);
  if (exact >= 0) return exact;
  const lower = query.toLowerCase();
  const matches = names.filter((n) =>
    n !== "" && n.toLowerCase().includes(lower)
  );
  if (matches.length === 1) return names.indexOf(matches[0]);
  if (matches.length > 1) {
    throw new PortNotFoundError(direction, query, names, matches);
  }
  if (/^\d+$/.test(query) && Number(query) < names.length) return Number(query);
  throw new PortNotFoundError(direction, query, names);
}

/**
 * Every backend RtMidi has, with whether it can be used now.
 *
 * @returns The states, in RtMidi's order.
 */
export async function usableApis(): Promise<ApiState[]> {
  const states: ApiState[] = [];
  for (const api of compiledApis()) {
    const state = await backendState(api);
    states.push(
      state.usable
        ? { api, usable: true }
        : { api, usable: false, reason: state.reason },
    );
  }
  return states;
}

/**
 * The backends to try, in order: the one asked for, checked, or every
 * usable one.
 *
 * @param api The backend asked for, if any.
 * @returns The usable backends and why the others are not.
 * @throws {BackendUnavailableError} When none can be used.
 */
export async function candidateApis(
  api: HardwareApi | undefined,
): Promise<{ usable: HardwareApi[]; unusable: UnavailableBackend[] }> {
  const compiled = compiledApis();
  if (api !== undefined) {
    if (!compiled.includes(api)) {
      throw new BackendUnavailableError([{
        api,
        reason: `this RtMidi was built without it (it has: ${
          compiled.join(", ") || "none"
        })`,
      }], api);
    }
    const state = await backendState(api);
    if (!state.usable) {
      throw new BackendUnavailableError([{ api, reason: state.reason }], api);
    }
    return { usable: [api], unusable: [] };
  }
  const usable: HardwareApi[] = [];
  const unusable: UnavailableBackend[] = [];
  for (const state of await usableApis()) {
    if (state.usable) usable.push(state.api);
    else unusable.push({ api: state.api, reason: state.reason });
  }
  if (usable.length === 0) throw new BackendUnavailableError(unusable);
  return { usable, unusable };
}

/**
 * Lists the ports of one direction: of the backend asked for, or of the
 * first usable backend that has any.
 *
 * @param direction Which ports.
 * @param options Backend and client name.
 * @returns Their names.
 */
export async function listNames(
  direction: Direction,
  options: HardwareOptions | undefined,
): Promise<string[]> {
  const { api, clientName } = checkOptions(options);
  const { usable } = await candidateApis(api);
  let first: string[] | undefined;
  for (const name of usable) {
    let names: string[];
    try {
      names = (await listPorts(name, direction, clientName)).map((p) => p.name);
    } catch (error) {
      if (api !== undefined || !(error instanceof RtMidiError)) throw error;
      continue;
    }
    if (names.length > 0) return names;
    first ??= names;
  }
  return first ?? [];
}

/** A port opened, and where it was found. */
export interface Opened<P> {
  /** The port. */
  readonly port: P;
  /** The backend it is on. */
  readonly api: HardwareApi;
  /** The port it is connected to, as listed; `undefined` for virtual ports. */
  readonly listed: ListedPort | undefined;
  /**
   * For JACK: the full name of this end of the connection, by which a
   * follower sees the connection is still there.
   */
  readonly link?: string;
}

interface OpenedLease {
  lease: Lease;
  api: HardwareApi;
  name: string;
  listed: ListedPort | undefined;
  link?: string;
}

/** How long a JACK connection may take to show in the graph. */
const LINK_WAIT_MS = 500;

/**
 * How many times a JACK port is opened before its connection is given up
 * on: RtMidi does not say when `jack_connect` fails, which it does while
 * the server is busy dropping a client that died.
 */
const CONNECT_ATTEMPTS = 3;

/**
 * Finds this end of a JACK connection just made: the one port connected to
 * `remote` now that was not before. JACK applies graph changes at a cycle
 * boundary, so it is looked for until it shows, for a while.
 *
 * @returns This end's full name; `null` when several ports were connected
 * meanwhile (so which is this end cannot be told), or when the remote
 * port is gone; `undefined` when no connection showed.
 */
async function findLink(
  remote: string,
  before: readonly string[],
): Promise<string | null | undefined> {
  const deadline = performance.now() + LINK_WAIT_MS;
  for (;;) {
    const after = currentJackHelper()?.connections(remote);
    if (after === undefined) return null;
    const added = after.filter((name) => !before.includes(name));
    if (added.length === 1) return added[0];
    if (added.length > 1) return null;
    if (performance.now() > deadline) return undefined;
    await sleep(5);
  }
}

/**
 * Finds the port a query names and opens it on a leased client: see
 * {@linkcode HardwareOptions.api} for the order backends are tried in.
 */
async function openLease(
  direction: Direction,
  query: string | number | undefined,
  checked: Checked,
  take: (api: HardwareApi) => Promise<Lease>,
): Promise<OpenedLease> {
  const { usable } = await candidateApis(checked.api);
  if (checked.virtual) {
    const api = usable[0];
    const name = query as string;
    const lease = await take(api);
    try {
      await lease.openVirtual(name);
    } catch (error) {
      await lease.end();
      throw error;
    }
    return { lease, api, name, listed: undefined };
  }
  const seen: string[] = [];
  const byPosition = query === undefined || typeof query === "number";
  for (const api of usable) {
    let ports: ListedPort[];
    try {
      ports = await listPorts(api, direction, checked.clientName);
    } catch (error) {
      if (checked.api !== undefined || !(error instanceof RtMidiError)) {
        throw error;
      }
      continue;
    }
    let names = ports.map((p) => p.name);
    if (byPosition && names.length === 0) continue;
    let index: number;
    try {
      index = resolvePort(direction, names, query);
    } catch (error) {
      const ambiguous = error instanceof PortNotFoundError &&
        error.matches.length > 1;
      if (byPosition || ambiguous) throw error;
      seen.push(...names);
      continue;
    }
    const name = names[index];
    for (let attempt = 1;; attempt++) {
      const lease = await take(api);
      const before = api === "jack"
        ? currentJackHelper()?.connections(name)
        : undefined;
      try {
        await lease.open(index, direction === "input" ? "in" : "out", name);
      } catch (error) {
        await lease.end();
        throw error;
      }
      const link = before && await findLink(name, before);
      if (before === undefined || link !== undefined) {
        return {
          lease,
          api,
          name,
          listed: ports[index],
          link: link ?? undefined,
        };
      }
      // Open, but not connected: a port that would never hear a thing.
      await lease.end();
      if (attempt === CONNECT_ATTEMPTS) {
        throw new RtMidiError(
          "open_port",
          `JACK did not connect MIDI ${direction} port ${JSON.stringify(name)}`,
        );
      }
      ports = await listPorts(api, direction, checked.clientName);
      names = ports.map((p) => p.name);
      index = names.indexOf(name);
      if (index < 0) throw new PortNotFoundError(direction, name, names);
    }
  }
  throw new PortNotFoundError(direction, query ?? "", seen);
}

/**
 * Opens an input as `openInput` does, telling where it was found.
 *
 * @param name The port.
 * @param options The input's options.
 * @returns The port and where it is.
 */
export async function openInputPort(
  name: string | number | undefined,
  options: InputOptions | undefined,
): Promise<Opened<Input>> {
  const checked = checkOptions(options);
  const query = checkQuery(name, checked.virtual);
  const { queueSize, sysex, timing, sensing } = checkInputOptions(options);
  const opened = await openLease("input", query, checked, async (api) => {
    const lease = await Lease.take("input", api, checked.clientName);
    lease.ignoreTypes(sysex, timing, sensing);
    return lease;
  });
  return {
    port: new Input(opened.lease, opened.name, checked.virtual, queueSize),
    api: opened.api,
    listed: opened.listed,
    link: opened.link,
  };
}

/**
 * Opens an output as `openOutput` does, telling where it was found.
 *
 * @param name The port.
 * @param options The output's options.
 * @returns The port and where it is.
 */
export async function openOutputPort(
  name: string | number | undefined,
  options: OutputOptions | undefined,
): Promise<Opened<Output>> {
  const checked = checkOptions(options);
  const query = checkQuery(name, checked.virtual);
  const overflow = checkOverflow(options);
  const opened = await openLease(
    "output",
    query,
    checked,
    (api) => Lease.take("output", api, checked.clientName, { overflow }),
  );
  return {
    port: new Output(opened.lease, opened.name, checked.virtual),
    api: opened.api,
    listed: opened.listed,
    link: opened.link,
  };
}

/** At most this many messages are taken from RtMidi per look. */
const PUMP_BATCH = 4096;

/** An input port; see `HardwareInput`. */
export class Input extends InputPortBase
  implements HardwareInput, Polled, Losable, Ringable {
  static #registry = new FinalizationRegistry<Lease>((lease) => {
    lease.end().catch(() => {});
  });
  static #buffer = new Uint8Array(READ_BUFFER_SIZE);
  static #size = new BigUint64Array(1);

  readonly virtual: boolean;
  readonly name: string;
  #lease: Lease;
  #waiting = 0;
  #parser = new Parser();
  #dropped = 0;
  #time = 0;
  #closing: Promise<void> | undefined;

  constructor(
    lease: Lease,
    name: string,
    virtual: boolean,
    queueSize: number,
  ) {
    super(queueSize);
    this.#lease = lease;
    this.name = name;
    this.virtual = virtual;
    lease.serve(this);
    Input.#registry.register(this, lease, this);
  }

  /** Whether a ring can wake the poller for this input (see `Lease`). */
  get armable(): boolean {
    return !this.closed && this.#lease.armable;
  }

  /** Whether the ring callback is installed. */
  get armed(): boolean {
    return this.#lease.armed;
  }

  /** Whether RtMidi's queue holds a message, where that can be read. */
  get queued(): boolean | undefined {
    return this.closed ? false : this.#lease.queued;
  }

  /** Installs the ring callback: the next message rings. */
  arm(): void {
    if (!this.closed) this.#lease.arm();
  }

  /** Removes the ring callback, so that the queue can be read. */
  disarm(): void {
    if (!this.closed) this.#lease.disarm();
  }

  /**
   * The first message after a silence, rung while RtMidi's thread waits:
   * what was queued before it goes first, then it, then the poller is
   * woken for what follows.
   *
   * @param delta RtMidi's delta time.
   * @param bytes The message.
   */
  rang(delta: number, bytes: Uint8Array): void {
    if (this.closed) return;
    this.pump();
    this.#take(delta, bytes);
    poller.wake();
  }

  #take(delta: number, bytes: Uint8Array): void {
    this.#time += delta;
    for (const msg of this.#parser.feed(bytes)) {
      // The parser made this object; nobody else holds it yet.
      (msg as { time: number }).time = this.#time;
      this.#time = 0;
      if (!this.deliver(msg)) this.#dropped++;
    }
  }

  /**
   * Moves what RtMidi queued into the port's queue.
   *
   * @returns How many messages RtMidi handed over.
   */
  pump(): number {
    if (this.closed) return 0;
    const buffer = Input.#buffer;
    const size = Input.#size;
    let taken = 0;
    for (; taken < PUMP_BATCH; taken++) {
      const delta = this.#lease.read(buffer, size);
      const length = Number(size[0]);
      if (length === 0) break;
      if (length > buffer.length) {
        this.#time += delta;
        this.#dropped++;
        continue;
      }
      this.#take(delta, buffer.subarray(0, length));
    }
    return taken;
  }

  get dropped(): number {
    this.pump();
    return this.#dropped;
  }

  get api(): string {
    return this.#lease.api;
  }

  /** Whether a reader waits for a message. */
  get waiting(): boolean {
    return this.#waiting > 0;
  }

  // While a reader waits, the poller holds the port (and so the reader,
  // reachable only through it) and reads it; it lets go at the first look
  // with no reader waiting.
  #hold(): void {
    if (this.#waiting++ === 0) poller.add(this);
  }

  #release(): void {
    this.#waiting--;
  }

  override poll(): Message | undefined {
    this.pump();
    return super.poll();
  }

  override async receive(): Promise<Message> {
    this.pump();
    if (this.closed) return super.receive();
    this.#hold();
    try {
      return await super.receive();
    } finally {
      this.#release();
    }
  }

  override async *[Symbol.asyncIterator](): AsyncGenerator<
    Message,
    void,
    undefined
  > {
    const messages = super[Symbol.asyncIterator]();
    try {
      for (;;) {
        this.pump();
        this.#hold();
        let result: IteratorResult<Message, void>;
        try {
          result = await messages.next();
        } finally {
          this.#release();
        }
        if (result.done) return;
        yield result.value;
      }
    } finally {
      await messages.return?.(undefined);
    }
  }

  [LOSE](): Promise<void> {
    if (this.#closing === undefined) {
      this.pump();
      this.finish(new PortLostError(this.name));
      this.#end();
    }
    return this.#closing!;
  }

  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.finish(undefined, true);
      this.#end();
    }
    return this.#closing!;
  }

  #end(): void {
    poller.delete(this);
    Input.#registry.unregister(this);
    this.#closing = this.#lease.end();
  }
}

/** An output port; see `HardwareOutput`. */
export class Output implements HardwareOutput, Losable {
  static #registry = new FinalizationRegistry<Lease>((lease) => {
    lease.end().catch(() => {});
  });

  readonly name: string;
  readonly virtual: boolean;
  #lease: Lease;
  #closing: Promise<void> | undefined;
  #lost = false;

  constructor(lease: Lease, name: string, virtual: boolean) {
    this.#lease = lease;
    this.name = name;
    this.virtual = virtual;
    Output.#registry.register(this, lease, this);
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  get api(): string {
    return this.#lease.api;
  }

  get dropped(): number {
    return this.#lease.dropped;
  }

  #closedError(): PortClosedError {
    return new PortClosedError(
      this.name,
      this.#lost ? { cause: new PortLostError(this.name) } : undefined,
    );
  }

  send(msg: Message): Promise<void> {
    if (this.#closing !== undefined) {
      return Promise.reject(this.#closedError());
    }
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = encode(msg) as Uint8Array<ArrayBuffer>;
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#lease.send(bytes);
  }

  async reset(): Promise<void> {
    for (const msg of RESET_MESSAGES) {
      if (this.closed) return;
      await this.send(msg);
    }
  }

  async panic(): Promise<void> {
    for (const msg of PANIC_MESSAGES) {
      if (this.closed) return;
      await this.send(msg);
    }
  }

  [LOSE](): Promise<void> {
    if (this.#closing === undefined) {
      this.#lost = true;
      this.#lease.discard(this.#closedError());
    }
    return this.close();
  }

  close(): Promise<void> {
    if (this.#closing === undefined) {
      Output.#registry.unregister(this);
      this.#closing = this.#lease.end();
    }
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** An input and an output used as one port; see `HardwareIOPort`. */
export class Pair implements HardwareIOPort, Losable {
  readonly input: Input;
  readonly output: Output;

  constructor(input: Input, output: Output) {
    this.input = input;
    this.output = output;
  }

  get name(): string {
    return this.input.name;
  }

  get closed(): boolean {
    return this.input.closed && this.output.closed;
  }

  receive(): Promise<Message> {
    return this.input.receive();
  }

  poll(): Message | undefined {
    return this.input.poll();
  }

  iterPending(): IterableIterator<Message> {
    return this.input.iterPending();
  }

  [Symbol.asyncIterator](): AsyncIterator<Message> {
    return this.input[Symbol.asyncIterator]();
  }

  send(msg: Message): Promise<void> {
    return this.output.send(msg);
  }

  reset(): Promise<void> {
    return this.output.reset();
  }

  panic(): Promise<void> {
    return this.output.panic();
  }

  async [LOSE](): Promise<void> {
    await Promise.all([this.input[LOSE](), this.output[LOSE]()]);
  }

  async close(): Promise<void> {
    await Promise.all([this.input.close(), this.output.close()]);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
