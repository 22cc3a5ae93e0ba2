/**
 * Hardware MIDI ports over RtMidi: list the system's ports, open them by
 * name, create virtual ones.
 *
 * @module
 */

import { encode } from "../codec/encode.ts";
import type { Message } from "../codec/messages.ts";
import { Parser } from "../codec/parser.ts";
import { PortClosedError } from "../errors.ts";
import {
  DEFAULT_QUEUE_SIZE,
  type InputPort,
  InputPortBase,
  type IOPort,
  type OutputPort,
  PANIC_MESSAGES,
  RESET_MESSAGES,
} from "../port.ts";
import {
  apiFromEnvironment,
  checkApi,
  compiledApis,
  type Direction,
  type HardwareApi,
  Lease,
  READ_BUFFER_SIZE,
} from "./_native.ts";
import { PortNotFoundError } from "./errors.ts";

export type { HardwareApi } from "./_native.ts";

/** Options every hardware call takes. */
export interface HardwareOptions {
  /**
   * The MIDI backend: `"alsa"` or `"jack"` on Linux, `"core"` on macOS,
   * `"winmm"` on Windows. See {@linkcode getApis} for what the installed
   * RtMidi has.
   * @default {the MIDISOCK_RTMIDI_API environment variable if set and readable, else RtMidi's first backend with ports}
   */
  api?: HardwareApi;
  /**
   * The client name the system shows for midisock (ALSA and JACK clients;
   * JACK adds a number when the name is taken).
   * @default {"midisock"}
   */
  clientName?: string;
}

/** Options of {@linkcode openOutput}. */
export interface OutputOptions extends HardwareOptions {
  /**
   * Create a virtual port with the given name, for other programs to
   * connect to, instead of opening an existing one. Not on Windows.
   * @default {false}
   */
  virtual?: boolean;
}

/**
 * Options of {@linkcode openInput}. The filters default to what mido does:
 * sysex and timing (clock, MIDI time code) come through, active sensing is
 * dropped. (RtMidi's and python-rtmidi's own default drops all three.)
 */
export interface InputOptions extends OutputOptions {
  /**
   * Drop sysex messages.
   * @default {false}
   */
  ignoreSysex?: boolean;
  /**
   * Drop timing messages: clock (F8) and MIDI time code quarter frames (F1).
   * @default {false}
   */
  ignoreTiming?: boolean;
  /**
   * Drop active sensing (FE).
   * @default {true}
   */
  ignoreActiveSensing?: boolean;
  /**
   * How many received messages wait for the reader at most. When the queue
   * is full, newly arriving messages are dropped and counted in
   * {@linkcode HardwareInput.dropped}: a MIDI thread cannot be told to
   * wait, so a reader that falls behind loses the newest messages, never
   * the order of those it gets.
   * @default {4096}
   */
  queueSize?: number;
}

/** Options of {@linkcode openIOPort}: those of both halves. */
export interface IOPortOptions extends InputOptions {}

/**
 * An input port on a MIDI device or a virtual port: iterate it with
 * `for await`. Each message's `time` is the delta time RtMidi measured since
 * the previous message, in seconds.
 *
 * RtMidi queues what arrives; the port takes it from that queue every
 * millisecond while a reader waits (`receive()` or a `for await` loop), and
 * only then keeps the process alive, so a script that forgets to close it
 * still ends. Messages that find the port's own queue full are dropped and
 * counted in `dropped`.
 */
export interface HardwareInput extends InputPort {
  /** How many messages arrived while the queue was full, and were lost. */
  readonly dropped: number;
  /** Whether this port was created as a virtual port. */
  readonly virtual: boolean;
  /** The backend in use. */
  readonly api: string;
}

/**
 * An output port on a MIDI device or a virtual port.
 *
 * `send` resolves once RtMidi took the message. JACK then writes it in the
 * next process cycle from a fixed-size buffer: a flood of messages faster
 * than the cycle drains it loses messages (RtMidi prints a warning), so
 * pace large bursts.
 */
export interface HardwareOutput extends OutputPort {
  /** Whether this port was created as a virtual port. */
  readonly virtual: boolean;
  /** The backend in use. */
  readonly api: string;
}

/** A pair of hardware ports used as one: the input and output halves. */
export interface HardwareIOPort extends IOPort {
  /** The input half. */
  readonly input: HardwareInput;
  /** The output half. */
  readonly output: HardwareOutput;
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

function checkOptions(
  options: HardwareOptions & { virtual?: boolean } | undefined,
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

function checkQuery(
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
function resolvePort(
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

async function withLease<T>(
  direction: Direction,
  options: HardwareOptions | undefined,
  use: (lease: Lease) => Promise<T>,
): Promise<T> {
  const { api, clientName } = checkOptions(options);
  const lease = await Lease.take(direction, api, clientName);
  try {
    return await use(lease);
  } finally {
    await lease.end();
  }
}

/**
 * Lists the MIDI input ports: the ports messages can be read from.
 *
 * @param options The backend and client name to list with.
 * @returns Their names, in index order (the index `openInput` accepts).
 * @throws {RtMidiNotFoundError} When the RtMidi library is missing.
 * @throws {Deno.errors.NotCapable} Without `--allow-ffi`.
 * @throws {RtMidiError} When RtMidi fails.
 *
 * @example Listing inputs
 * ```ts ignore
 * import { getInputNames } from "@x/midisock";
 *
 * for (const name of await getInputNames()) console.log(name);
 * ```
 */
export function getInputNames(options?: HardwareOptions): Promise<string[]> {
  return withLease("input", options, (lease) => lease.portNames());
}

/**
 * Lists the MIDI output ports: the ports messages can be sent to.
 *
 * @param options The backend and client name to list with.
 * @returns Their names, in index order (the index `openOutput` accepts).
 * @throws {RtMidiNotFoundError} When the RtMidi library is missing.
 * @throws {Deno.errors.NotCapable} Without `--allow-ffi`.
 * @throws {RtMidiError} When RtMidi fails.
 *
 * @example Listing outputs of one backend
 * ```ts ignore
 * import { getOutputNames } from "@x/midisock";
 *
 * console.log(await getOutputNames({ api: "jack" }));
 * ```
 */
export function getOutputNames(options?: HardwareOptions): Promise<string[]> {
  return withLease("output", options, (lease) => lease.portNames());
}

/**
 * The MIDI backends the installed RtMidi was built with.
 *
 * @returns Their names, e.g. `["alsa", "jack"]`.
 * @throws {RtMidiNotFoundError} When the RtMidi library is missing.
 * @throws {Deno.errors.NotCapable} Without `--allow-ffi`.
 *
 * @example Checking for JACK
 * ```ts ignore
 * import { getApis } from "@x/midisock";
 *
 * if (getApis().includes("jack")) console.log("JACK is available");
 * ```
 */
export function getApis(): HardwareApi[] {
  return compiledApis();
}

/** How often an input looks at RtMidi's queue, in milliseconds. */
const POLL_INTERVAL = 1;

/** At most this many messages are taken from RtMidi per look. */
const POLL_BATCH = 4096;

/** What the finalizer of an unclosed input needs. */
interface InputHeld {
  lease: Lease;
  timer: ReturnType<typeof setInterval>;
}

/**
 * Inputs someone is waiting on. The poller holds ports only weakly (so an
 * unclosed, forgotten port can be collected), and a reader suspended in
 * `await port.receive()` is itself reachable only through the port: this
 * set keeps such a port, and its reader, alive.
 */
const awaited = new Set<Input>();

class Input extends InputPortBase implements HardwareInput {
  static #registry = new FinalizationRegistry<InputHeld>((held) => {
    clearInterval(held.timer);
    held.lease.end().catch(() => {});
  });
  static #buffer = new Uint8Array(READ_BUFFER_SIZE);
  static #size = new BigUint64Array(1);

  readonly virtual: boolean;
  readonly name: string;
  #lease: Lease;
  #timer: ReturnType<typeof setInterval>;
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
    this.#timer = setInterval(Input.#poller(new WeakRef(this)), POLL_INTERVAL);
    Deno.unrefTimer(this.#timer);
    Input.#registry.register(this, { lease, timer: this.#timer }, this);
  }

  /** The timer's task: holds the port only weakly, so it can be collected. */
  static #poller(port: WeakRef<Input>): () => void {
    return () => {
      const input = port.deref();
      if (input !== undefined) input.#pump();
    };
  }

  /** Moves what RtMidi queued into the port's queue. */
  #pump(): void {
    if (this.closed) return;
    const buffer = Input.#buffer;
    const size = Input.#size;
    for (let i = 0; i < POLL_BATCH; i++) {
      const delta = this.#lease.read(buffer, size);
      const length = Number(size[0]);
      if (length === 0) return;
      this.#time += delta;
      if (length > buffer.length) {
        this.#dropped++;
        continue;
      }
      for (const msg of this.#parser.feed(buffer.subarray(0, length))) {
        // The parser made this object; nobody else holds it yet.
        (msg as { time: number }).time = this.#time;
        this.#time = 0;
        if (!this.deliver(msg)) this.#dropped++;
      }
    }
  }

  get dropped(): number {
    this.#pump();
    return this.#dropped;
  }

  get api(): string {
    return this.#lease.api;
  }

  #hold(): void {
    if (this.#waiting++ === 0) {
      awaited.add(this);
      Deno.refTimer(this.#timer);
    }
  }

  #release(): void {
    if (--this.#waiting === 0) {
      awaited.delete(this);
      Deno.unrefTimer(this.#timer);
    }
  }

  override poll(): Message | undefined {
    this.#pump();
    return super.poll();
  }

  override async receive(): Promise<Message> {
    this.#pump();
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
        this.#pump();
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

  close(): Promise<void> {
    if (this.#closing === undefined) {
      clearInterval(this.#timer);
      this.finish(undefined, true);
      Input.#registry.unregister(this);
      this.#closing = this.#lease.end();
    }
    return this.#closing;
  }
}

class Output implements HardwareOutput {
  static #registry = new FinalizationRegistry<Lease>((lease) => {
    lease.end().catch(() => {});
  });

  readonly name: string;
  readonly virtual: boolean;
  #lease: Lease;
  #closing: Promise<void> | undefined;

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

  send(msg: Message): Promise<void> {
    if (this.#closing !== undefined) {
      return Promise.reject(new PortClosedError(this.name));
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

class Pair implements HardwareIOPort {
  readonly input: HardwareInput;
  readonly output: HardwareOutput;

  constructor(input: HardwareInput, output: HardwareOutput) {
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

  async close(): Promise<void> {
    await Promise.all([this.input.close(), this.output.close()]);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

async function connect(
  lease: Lease,
  query: string | number | undefined,
  virtual: boolean,
): Promise<string> {
  if (virtual) {
    const name = query as string;
    await lease.openVirtual(name);
    return name;
  }
  const names = await lease.portNames();
  const index = resolvePort(lease.direction, names, query);
  await lease.open(
    index,
    lease.direction === "input" ? "in" : "out",
    names[index],
  );
  return names[index];
}

/**
 * Opens a MIDI input port: by exact name, else by a part of the name that
 * only one port has (any case), else by index; the first port when no name
 * is given. With `virtual: true`, creates a port of that name instead.
 *
 * @param name The port: a name, part of one, or an index.
 * @param options Backend, client name, virtual, filters, queue size.
 * @returns The open port.
 * @throws {TypeError | RangeError} For a malformed argument, before anything
 * native runs.
 * @throws {PortNotFoundError} When no port or several match; its message
 * lists the ports there are.
 * @throws {RtMidiError} When RtMidi fails (for JACK: no server running).
 * @throws {RtMidiNotFoundError} When the RtMidi library is missing.
 * @throws {Deno.errors.NotCapable} Without `--allow-ffi`.
 *
 * @example Printing what a keyboard plays
 * ```ts ignore
 * import { openInput } from "@x/midisock";
 *
 * await using keys = await openInput("keystation");
 * for await (const msg of keys) console.log(msg);
 * ```
 */
export async function openInput(
  name?: string | number,
  options?: InputOptions,
): Promise<HardwareInput> {
  const checked = checkOptions(options);
  const query = checkQuery(name, checked.virtual);
  const queueSize = options?.queueSize ?? DEFAULT_QUEUE_SIZE;
  if (!Number.isSafeInteger(queueSize) || queueSize < 1) {
    throw new RangeError(
      `queueSize must be a positive integer: got ${queueSize}`,
    );
  }
  const sysex = checkBoolean(options?.ignoreSysex, "ignoreSysex", false);
  const timing = checkBoolean(options?.ignoreTiming, "ignoreTiming", false);
  const sensing = checkBoolean(
    options?.ignoreActiveSensing,
    "ignoreActiveSensing",
    true,
  );
  const lease = await Lease.take("input", checked.api, checked.clientName);
  try {
    lease.ignoreTypes(sysex, timing, sensing);
    const opened = await connect(lease, query, checked.virtual);
    return new Input(lease, opened, checked.virtual, queueSize);
  } catch (error) {
    await lease.end();
    throw error;
  }
}

/**
 * Opens a MIDI output port, found as {@linkcode openInput} finds inputs;
 * with `virtual: true`, creates a port of that name instead.
 *
 * @param name The port: a name, part of one, or an index.
 * @param options Backend, client name, virtual.
 * @returns The open port.
 * @throws {TypeError | RangeError} For a malformed argument, before anything
 * native runs.
 * @throws {PortNotFoundError} When no port or several match; its message
 * lists the ports there are.
 * @throws {RtMidiError} When RtMidi fails (for JACK: no server running).
 * @throws {RtMidiNotFoundError} When the RtMidi library is missing.
 * @throws {Deno.errors.NotCapable} Without `--allow-ffi`.
 *
 * @example Playing a note on a synth
 * ```ts ignore
 * import { message, openOutput } from "@x/midisock";
 *
 * await using synth = await openOutput("fluid");
 * await synth.send(message("note_on", { note: 60 }));
 * await new Promise((done) => setTimeout(done, 500));
 * await synth.send(message("note_off", { note: 60 }));
 * ```
 */
export async function openOutput(
  name?: string | number,
  options?: OutputOptions,
): Promise<HardwareOutput> {
  const checked = checkOptions(options);
  const query = checkQuery(name, checked.virtual);
  const lease = await Lease.take("output", checked.api, checked.clientName);
  try {
    const opened = await connect(lease, query, checked.virtual);
    return new Output(lease, opened, checked.virtual);
  } catch (error) {
    await lease.end();
    throw error;
  }
}

/**
 * Opens an input and an output by the same name (or index), as one port:
 * what a device that both plays and listens offers. With `virtual: true`,
 * creates both.
 *
 * @param name The ports: a name, part of one, or an index.
 * @param options Those of {@linkcode openInput}.
 * @returns The pair.
 * @throws {TypeError | RangeError} For a malformed argument.
 * @throws {PortNotFoundError} When either side has no single match.
 * @throws {RtMidiError} When RtMidi fails.
 * @throws {RtMidiNotFoundError} When the RtMidi library is missing.
 * @throws {Deno.errors.NotCapable} Without `--allow-ffi`.
 *
 * @example Echoing a device back to itself
 * ```ts ignore
 * import { openIOPort } from "@x/midisock";
 *
 * await using port = await openIOPort("launchpad");
 * for await (const msg of port) await port.send(msg);
 * ```
 */
export async function openIOPort(
  name?: string | number,
  options?: IOPortOptions,
): Promise<HardwareIOPort> {
  const input = await openInput(name, options);
  try {
    return new Pair(input, await openOutput(name, options));
  } catch (error) {
    await input.close();
    throw error;
  }
}
