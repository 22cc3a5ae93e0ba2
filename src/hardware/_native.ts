/**
 * The one place that holds raw RtMidi handles: a `Device` owns one RtMidiIn
 * or RtMidiOut, frees it exactly once, and never lets a pointer out.
 *
 * Inputs are read from RtMidi's own queue (`rtmidi_in_get_message`, a quick
 * synchronous copy) by the shared poller of `_poller.ts`. An idle JACK input
 * installs RtMidi's per-message callback (it is "armed"): the first message
 * after a silence rings it, and the callback removes itself before it
 * returns, so JACK's process thread waits for JavaScript once per silence,
 * never once per message (see {@linkcode Ringable}). JACK outputs send
 * through a `Pacer`, which never lets RtMidi's ring overflow. Calls that wait
 * for the MIDI system (create, open, close, free) are `nonblocking` and
 * awaited.
 *
 * @module
 */

import { loadRtMidi } from "../../ffi/load.ts";
import { probePortNames, type RtMidiLayout } from "../../ffi/layout.ts";
import { INPUT_CALLBACK, type RtMidiLibrary } from "../../ffi/symbols.ts";
import { RtMidiError } from "./errors.ts";
import { type JackHelper, jackServerGone, jackState } from "./_jack.ts";
import { type OverflowPolicy, type PacedSink, Pacer } from "./_pacer.ts";
import { jackLibrary, silenceNativeLibraries } from "./_system.ts";
import { cString, readCString } from "./_text.ts";
import { HARDWARE_APIS, type HardwareApi } from "./_api.ts";

export { cString } from "./_text.ts";

/**
 * Messages RtMidi's own input queue holds until the port takes them. One
 * JACK cycle (21 ms at 48 kHz with 1024 frames) can bring over a thousand
 * messages at once at high rates, all before the next poll: RtMidi's usual
 * 1024 loses some, so keep more (each entry is a few dozen bytes).
 */
const RTMIDI_QUEUE_LIMIT = 16384;

/**
 * The largest message read from RtMidi's queue: longer ones (sysex only)
 * are dropped and counted.
 */
export const READ_BUFFER_SIZE = 1 << 20;

const decoder = new TextDecoder();

let layoutKnown: RtMidiLayout | undefined;
let silenced = false;
/** Set when a JACK output's ring was not where the layout says. */
let ringMissed = false;

/**
 * Whether RtMidi's JACK output rings can be read here: the loaded version
 * keeps them where `ffi/layout.ts` says, and no check has failed.
 *
 * @returns The answer; `false` until the version is known.
 */
export function ringsReadable(): boolean {
  const layout = layoutKnown ?? loadRtMidi().layout;
  return layout?.jackOutput !== undefined && !ringMissed;
}

function lib(): RtMidiLibrary {
  const loaded = loadRtMidi();
  if (!silenced) {
    silenced = true;
    silenceNativeLibraries();
  }
  return loaded.lib;
}

/**
 * The backends this RtMidi was built with, known to midisock, in RtMidi's
 * order (the order it tries them in).
 *
 * @returns Their names.
 */
export function compiledApis(): HardwareApi[] {
  const symbols = lib().symbols;
  const count = symbols.rtmidi_get_compiled_api(null, 0);
  if (count <= 0) return [];
  const numbers = new Int32Array(count);
  const written = symbols.rtmidi_get_compiled_api(numbers, count);
  const names: HardwareApi[] = [];
  for (const number of numbers.subarray(0, Math.max(0, written))) {
    const name = readCString(symbols.rtmidi_api_name(number));
    if (HARDWARE_APIS.includes(name as HardwareApi)) {
      names.push(name as HardwareApi);
    }
  }
  return names;
}

function apiNumber(api: HardwareApi): number {
  const number = lib().symbols.rtmidi_compiled_api_by_name(cString(api));
  if (number === 0) {
    throw new RtMidiError(
      "compiled_api_by_name",
      `RtMidi was built without the ${api} backend; it has: ${
        compiledApis().join(", ") || "none"
      }`,
    );
  }
  return number;
}

/** Which way a device carries messages. */
export type Direction = "input" | "output";

/**
 * The ring RtMidi's JACK output writes into, found through the layout of
 * the loaded version and checked by a value it must hold; `undefined` when
 * the version keeps another layout or the check fails.
 */
function jackOutputRing(
  handle: Deno.PointerObject,
  layout: RtMidiLayout,
): Deno.PointerObject | undefined {
  const path = layout.jackOutput;
  const jack = jackLibrary();
  if (path === undefined || jack === undefined) return undefined;
  const object = new Deno.UnsafePointerView(handle).getPointer(0);
  if (object === null) return undefined;
  const api = new Deno.UnsafePointerView(object).getPointer(path.rtapiOffset);
  if (api === null) return undefined;
  const data = new Deno.UnsafePointerView(api).getPointer(path.apiDataOffset);
  if (data === null) return undefined;
  const fields = new Deno.UnsafePointerView(data);
  if (fields.getInt32(path.maxWriteOffset) !== path.maxWrite) return undefined;
  const ring = fields.getPointer(path.ringOffset);
  if (ring === null) return undefined;
  const room = Number(jack.symbols.jack_ringbuffer_write_space(ring));
  return room === path.maxWrite ? ring : undefined;
}

/**
 * RtMidi's input queue, read where the layout is known and checked: the
 * queue size it holds is the one midisock asked for, and a new client's
 * queue is empty at its start.
 */
function inputQueue(
  handle: Deno.PointerObject,
  layout: RtMidiLayout,
): Deno.UnsafePointerView | undefined {
  const path = layout.inputQueue;
  const object = new Deno.UnsafePointerView(handle).getPointer(0);
  if (object === null) return undefined;
  const api = new Deno.UnsafePointerView(object).getPointer(path.rtapiOffset);
  if (api === null) return undefined;
  const view = new Deno.UnsafePointerView(api);
  if (
    view.getUint32(path.ringSizeOffset) !== RTMIDI_QUEUE_LIMIT ||
    view.getUint32(path.frontOffset) !== 0 ||
    view.getUint32(path.backOffset) !== 0
  ) return undefined;
  return view;
}

/**
 * What a ring reaches: the input a client serves now. It is called on the
 * JavaScript thread while RtMidi's thread waits in the callback, after the
 * callback has been removed; the bytes are a copy.
 */
export interface Ringable {
  /**
   * The first message after a silence.
   *
   * @param delta RtMidi's delta time, in seconds.
   * @param bytes The message: one complete MIDI message.
   */
  rang(delta: number, bytes: Uint8Array): void;
}

/**
 * Input clients by the token their callback carries as `userData`: a
 * client keeps its token for life, so a ring still on its way after the
 * callback was removed from outside finds its client and is delivered.
 */
const ringing = new Map<bigint, Device>();
/** Clients whose callback is installed now: removed before the process exits. */
const armed = new Set<Device>();
let nextToken = 1n;
let ringCallback: Deno.UnsafeCallback<typeof INPUT_CALLBACK> | undefined;

/**
 * The one callback every armed input installs: thread-safe, because JACK's
 * process thread calls it (it wakes the event loop also after `unref`,
 * which only lets the process end); never closed.
 */
function ringPointer(): Deno.PointerObject<typeof INPUT_CALLBACK> {
  if (ringCallback === undefined) {
    ringCallback = Deno.UnsafeCallback.threadSafe(
      INPUT_CALLBACK,
      (delta, message, size, user) => {
        const token = BigInt(Deno.UnsafePointer.value(user));
        ringing.get(token)?.rang(delta, message, Number(size));
      },
    );
    ringCallback.unref();
    // No MIDI thread may call into a runtime that is going away.
    globalThis.addEventListener("unload", () => {
      for (const device of armed) device.disarm();
    });
  }
  return ringCallback.pointer;
}

/**
 * One RtMidi client: an RtMidiIn or RtMidiOut. Ports lease clients from a
 * pool rather than creating and destroying one each time: closing a JACK
 * client right after opening one is a race inside libjack (jack2 1.9.21
 * crashes in a client thread), while opening and closing ports on a
 * living client is safe.
 */
class Device {
  readonly direction: Direction;
  readonly api: HardwareApi;
  readonly key: string;
  #handle: Deno.PointerObject | null;
  #layout: RtMidiLayout;
  #pending: Promise<void> | undefined;
  #freed: Promise<void> | undefined;
  /** For JACK: the helper of the server this client belongs to. */
  readonly jack: JackHelper | undefined;
  /** For JACK outputs: RtMidi's ring, where it can be read. */
  readonly ring: Deno.PointerObject | undefined;
  /** Set once RtMidi reported a failure: `ok` never turns true again. */
  poisoned = false;
  /** For inputs: the token a ring carries. */
  readonly #token: bigint | undefined;
  /** For inputs: RtMidi's queue, where it can be read. */
  readonly #queue: Deno.UnsafePointerView | undefined;
  /** Whether the callback is installed: reading the queue must wait. */
  #armed = false;
  /** For inputs: the port this client serves now, which a ring reaches. */
  target: WeakRef<Ringable> | undefined;

  private constructor(
    direction: Direction,
    api: HardwareApi,
    key: string,
    handle: Deno.PointerObject,
    layout: RtMidiLayout,
    jack: JackHelper | undefined,
  ) {
    this.direction = direction;
    this.api = api;
    this.key = key;
    this.#handle = handle;
    this.#layout = layout;
    this.jack = jack;
    this.ring = api === "jack" && direction === "output"
      ? jackOutputRing(handle, layout)
      : undefined;
    if (api === "jack" && direction === "output" && this.ring === undefined) {
      ringMissed = true;
    }
    if (direction === "input") {
      this.#token = nextToken++;
      ringing.set(this.#token, this);
      this.#queue = inputQueue(handle, layout);
    }
  }

  static async create(
    direction: Direction,
    api: HardwareApi,
    clientName: string,
    key: string,
    jack: JackHelper | undefined,
  ): Promise<Device> {
    const symbols = lib().symbols;
    const number = apiNumber(api);
    const name = cString(clientName);
    const operation = direction === "input" ? "in_create" : "out_create";
    const handle = direction === "input"
      ? await symbols.rtmidi_in_create(number, name, RTMIDI_QUEUE_LIMIT)
      : await symbols.rtmidi_out_create(number, name);
    if (handle === null) {
      throw new RtMidiError(
        operation,
        `RtMidi could not allocate a MIDI ${direction} client`,
      );
    }
    const layout = layoutKnown ?? loadRtMidi().layout ??
      await probePortNames(lib(), handle);
    layoutKnown = layout;
    let device: Device | undefined;
    try {
      device = new Device(direction, api, key, handle, layout, jack);
      device.#check(
        operation,
        `RtMidi could not create a MIDI ${direction} client named ${
          JSON.stringify(clientName)
        } on ${api}`,
      );
    } catch (error) {
      if (device !== undefined) await device.free();
      else if (direction === "input") await symbols.rtmidi_in_free(handle);
      else await symbols.rtmidi_out_free(handle);
      throw error;
    }
    return device;
  }

  #live(): Deno.PointerObject {
    if (this.#handle === null) {
      throw new Error("Internal error: RtMidi device used after free");
    }
    return this.#handle;
  }

  #check(operation: string, what: string): void {
    const view = new Deno.UnsafePointerView(this.#live());
    if (view.getUint8(this.#layout.okOffset) !== 0) return;
    this.poisoned = true;
    const detail = this.#layout.messageReadable
      ? readCString(view.getPointer(this.#layout.msgOffset))
      : undefined;
    throw new RtMidiError(operation, what, { detail });
  }

  /** Whether the JACK server this client belongs to has gone. */
  get orphaned(): boolean {
    return this.jack !== undefined && jackServerGone(this.jack.generation);
  }

  async portNames(): Promise<string[]> {
    const symbols = lib().symbols;
    const handle = this.#live();
    const count = await symbols.rtmidi_get_port_count(handle);
    this.#check("get_port_count", "RtMidi could not count MIDI ports");
    const names: string[] = [];
    for (let index = 0; index < count; index++) {
      names.push(await this.#portName(handle, index));
    }
    return names;
  }

  async #portName(handle: Deno.PointerObject, index: number): Promise<string> {
    const symbols = lib().symbols;
    if (this.#layout.portNames === "string") {
      // 4.0 hands back a copy it never frees: a few bytes per listing.
      const pointer = await symbols.rtmidi_get_port_name_v4(handle, index);
      return readCString(pointer) ?? "";
    }
    const length = new Int32Array(1);
    const status = await symbols.rtmidi_get_port_name(
      handle,
      index,
      null,
      length,
    );
    if (status < 0 || length[0] <= 0) {
      // A port that went away meanwhile: RtMidi only warns about it.
      this.#check("get_port_name", `RtMidi could not name port ${index}`);
      return "";
    }
    const buffer = new Uint8Array(length[0]);
    await symbols.rtmidi_get_port_name(handle, index, buffer, length);
    const end = buffer.indexOf(0);
    return decoder.decode(end < 0 ? buffer : buffer.subarray(0, end));
  }

  async open(index: number, localName: string, label: string): Promise<void> {
    await lib().symbols.rtmidi_open_port(
      this.#live(),
      index,
      cString(localName),
    );
    this.#check(
      "open_port",
      `RtMidi could not open MIDI ${this.direction} port ${
        JSON.stringify(label)
      }`,
    );
  }

  async openVirtual(name: string): Promise<void> {
    await lib().symbols.rtmidi_open_virtual_port(this.#live(), cString(name));
    this.#check(
      "open_virtual_port",
      `RtMidi could not create virtual MIDI ${this.direction} port ${
        JSON.stringify(name)
      }`,
    );
  }

  ignoreTypes(sysex: boolean, timing: boolean, sensing: boolean): void {
    lib().symbols.rtmidi_in_ignore_types(this.#live(), sysex, timing, sensing);
  }

  /**
   * Takes the next message RtMidi queued, without waiting.
   *
   * @param buffer Where the bytes go.
   * @param size In: the buffer's length; out: the message's length (0 when
   * none is queued, more than the buffer's length when it did not fit and
   * was dropped).
   * @returns The delta time in seconds.
   */
  read(
    buffer: Uint8Array<ArrayBuffer>,
    size: BigUint64Array<ArrayBuffer>,
  ): number {
    // While the callback is installed, RtMidi queues nothing and warns on
    // standard error for each read.
    if (this.#armed) {
      size[0] = 0n;
      return 0;
    }
    size[0] = BigInt(buffer.length);
    const delta = lib().symbols.rtmidi_in_get_message(
      this.#live(),
      buffer,
      size,
    );
    if (delta < 0) {
      this.#check("in_get_message", "RtMidi could not read a message");
    }
    return delta;
  }

  /** Whether the callback is installed. */
  get armed(): boolean {
    return this.#armed;
  }

  /**
   * Whether RtMidi's queue holds a message (one that came in the instant
   * before the callback was installed), read without a call into RtMidi;
   * `undefined` where the queue's place is not known.
   */
  get queued(): boolean | undefined {
    const view = this.#queue;
    if (view === undefined || this.#handle === null) return undefined;
    const { frontOffset, backOffset } = this.#layout.inputQueue;
    return view.getUint32(frontOffset) !== view.getUint32(backOffset);
  }

  /**
   * Installs the ring callback: RtMidi hands the next message to it instead
   * of queueing it. Quick (RtMidi only sets flags); installing twice does
   * nothing.
   */
  arm(): void {
    if (this.#armed || this.#handle === null || this.#token === undefined) {
      return;
    }
    lib().symbols.rtmidi_in_set_callback(
      this.#handle,
      ringPointer(),
      Deno.UnsafePointer.create(this.#token),
    );
    this.#armed = true;
    armed.add(this);
  }

  /**
   * Removes the callback, if installed. Quick, and safe from inside it: RtMidi
   * only clears its flags, and the MIDI thread waiting in the call touches
   * nothing that frees.
   */
  disarm(): void {
    if (!this.#armed) return;
    this.#armed = false;
    armed.delete(this);
    if (this.#handle !== null) {
      lib().symbols.rtmidi_in_cancel_callback(this.#handle);
    }
  }

  /**
   * A message came to the callback: removes the callback before RtMidi's
   * thread goes on (the rest of its cycle is queued), then hands a copy to
   * the port served now.
   *
   * @param delta RtMidi's delta time.
   * @param message The bytes, valid during this call only.
   * @param size Their length.
   */
  rang(delta: number, message: Deno.PointerValue, size: number): void {
    if (this.#handle === null) return;
    const bytes = message === null || size <= 0
      ? undefined
      : new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(message, size))
        .slice();
    this.disarm();
    if (bytes !== undefined) this.target?.deref()?.rang(delta, bytes);
  }

  /**
   * Empties RtMidi's queue.
   *
   * @returns How many messages were thrown away.
   */
  drain(): number {
    const size = Device.#size;
    let count = 0;
    for (; count < 1 << 16; count++) {
      this.read(Device.#buffer, size);
      if (size[0] === 0n) break;
    }
    return count;
  }

  static #buffer = new Uint8Array(READ_BUFFER_SIZE);
  static #size = new BigUint64Array(1);

  /** Where a pacer writes: RtMidi's send, and the ring's room. */
  sink(): PacedSink {
    const symbols = lib().symbols;
    const handle = this.#live();
    const ring = this.ring;
    const space = jackLibrary()?.symbols.jack_ringbuffer_write_space;
    return {
      room: ring === undefined || space === undefined
        ? () => undefined
        : () => Number(space(ring)),
      write: (bytes) =>
        this.#handle !== null &&
        symbols.rtmidi_out_send_message(handle, bytes, bytes.length) === 0,
      periodMs: () => this.jack?.alive ? this.jack.periodMs() : undefined,
      alive: () => this.#handle !== null && !this.orphaned,
    };
  }

  send(bytes: Uint8Array<ArrayBuffer>): Promise<void> {
    const handle = this.#live();
    const symbols = lib().symbols;
    if (this.#pending === undefined && bytes[0] !== 0xf0) {
      const status = symbols.rtmidi_out_send_message(
        handle,
        bytes,
        bytes.length,
      );
      return status === 0 ? Promise.resolve() : Promise.reject(sendError());
    }
    // Long sysex on a worker thread: some backends (WinMM) write it out
    // before returning.
    const previous = this.#pending ?? Promise.resolve();
    const sent = previous.then(async () => {
      const status = await symbols.rtmidi_out_send_message_nonblocking(
        handle,
        bytes,
        bytes.length,
      );
      if (status !== 0) throw sendError();
    });
    const tail: Promise<void> = sent.catch(() => {}).finally(() => {
      if (this.#pending === tail) this.#pending = undefined;
    });
    this.#pending = tail;
    return sent;
  }

  /** Waits for sends in flight, then closes the port; the client stays. */
  async closePort(): Promise<void> {
    this.disarm();
    this.target = undefined;
    await this.#pending;
    await lib().symbols.rtmidi_close_port(this.#live());
    // Leave nothing queued for the next user of this client.
    if (this.direction === "input") this.drain();
  }

  /**
   * Frees the client, after sends in flight. Calling it again returns the
   * same promise.
   */
  free(): Promise<void> {
    this.#freed ??= this.#release();
    return this.#freed;
  }

  async #release(): Promise<void> {
    await this.#pending;
    this.disarm();
    this.#forget();
    const handle = this.#handle;
    if (handle === null) return;
    this.#handle = null;
    const symbols = lib().symbols;
    if (this.direction === "input") await symbols.rtmidi_in_free(handle);
    else await symbols.rtmidi_out_free(handle);
  }

  /**
   * Lets go of a client whose JACK server has gone, without calling into
   * it: freeing would wait for process cycles that never come.
   */
  abandon(): void {
    this.#armed = false;
    armed.delete(this);
    this.#forget();
    this.#handle = null;
  }

  #forget(): void {
    if (this.#token !== undefined) ringing.delete(this.#token);
    this.target = undefined;
  }
}

/** Idle clients kept for reuse, per direction, backend and client name. */
const idle = new Map<string, Device[]>();

/** How many idle clients are kept per key; more are freed. */
const POOL_LIMIT = 4;

/** Options of {@linkcode Lease.take}. */
export interface LeaseOptions {
  /** For JACK outputs: what a send does when the ring is full. */
  overflow?: OverflowPolicy;
}

/**
 * A port's use of one client, from open to close. Everything a port does
 * natively goes through its lease; once the lease has ended it does
 * nothing, even if the client serves another port by then.
 */
export class Lease {
  #device: Device | null;
  #ended: Promise<void> | undefined;
  #pacer: Pacer | undefined;

  private constructor(device: Device, options: LeaseOptions) {
    this.#device = device;
    if (device.direction === "output" && device.api === "jack") {
      this.#pacer = new Pacer(device.sink(), options.overflow ?? "queue");
    }
  }

  /**
   * Takes an idle client, or creates one.
   *
   * @param direction Input or output.
   * @param api The backend, checked to be usable.
   * @param clientName The client's name, checked to hold no NUL.
   * @param options For outputs, the overflow policy.
   * @returns The lease.
   * @throws {RtMidiError} When RtMidi fails.
   */
  static async take(
    direction: Direction,
    api: HardwareApi,
    clientName: string,
    options: LeaseOptions = {},
  ): Promise<Lease> {
    let jack: JackHelper | undefined;
    if (api === "jack") {
      const state = await jackState();
      if (state.running) jack = state.helper;
    }
    const key = `${direction}\0${api}\0${clientName}\0${jack?.generation}`;
    const pool = idle.get(key);
    let device = pool?.pop();
    while (device?.orphaned) {
      device.abandon();
      device = pool?.pop();
    }
    device ??= await Device.create(direction, api, clientName, key, jack);
    return new Lease(device, options);
  }

  #live(): Device {
    if (this.#device === null) {
      throw new Error("Internal error: RtMidi lease used after its end");
    }
    return this.#device;
  }

  /** Which way the client carries messages. */
  get direction(): Direction {
    return this.#live().direction;
  }

  /** The backend in use, or `"closed"`. */
  get api(): string {
    return this.#device === null ? "closed" : this.#device.api;
  }

  /** Whether the lease has ended. */
  get ended(): boolean {
    return this.#ended !== undefined;
  }

  /** For JACK outputs: sends lost to a full ring under `"drop"`. */
  get dropped(): number {
    return this.#pacer?.dropped ?? 0;
  }

  /**
   * Lists the ports the client can open.
   *
   * @returns Their names, in RtMidi's index order.
   */
  portNames(): Promise<string[]> {
    return this.#live().portNames();
  }

  /**
   * Connects to an existing port.
   *
   * @param index Its index, checked to be in range.
   * @param localName The name of this end.
   * @param label The port's name, for errors.
   * @returns A promise settled once it is open.
   */
  open(index: number, localName: string, label: string): Promise<void> {
    return this.#live().open(index, localName, label);
  }

  /**
   * Creates a virtual port.
   *
   * @param name Its name.
   * @returns A promise settled once it exists.
   */
  openVirtual(name: string): Promise<void> {
    return this.#live().openVirtual(name);
  }

  /**
   * Says what RtMidi drops before queueing.
   *
   * @param sysex Drop sysex.
   * @param timing Drop clock and time code.
   * @param sensing Drop active sensing.
   */
  ignoreTypes(sysex: boolean, timing: boolean, sensing: boolean): void {
    this.#live().ignoreTypes(sysex, timing, sensing);
  }

  /**
   * Takes the next queued message, without waiting.
   *
   * @param buffer Where the bytes go.
   * @param size In: the buffer's length; out: the message's length.
   * @returns The delta time in seconds.
   */
  read(
    buffer: Uint8Array<ArrayBuffer>,
    size: BigUint64Array<ArrayBuffer>,
  ): number {
    return this.#live().read(buffer, size);
  }

  /**
   * Says which port a ring reaches: the input this lease serves.
   *
   * @param port The port; held weakly.
   */
  serve(port: Ringable): void {
    this.#live().target = new WeakRef(port);
  }

  /**
   * Whether a ring can wake this input: a JACK input whose server is
   * there, where no send can wait inside RtMidi on the JavaScript thread
   * (a ring then would wait for that thread).
   */
  get armable(): boolean {
    const device = this.#device;
    return device !== null && device.direction === "input" &&
      device.api === "jack" && device.jack?.alive === true &&
      !device.orphaned && ringsReadable();
  }

  /** Whether the callback is installed. */
  get armed(): boolean {
    return this.#device?.armed ?? false;
  }

  /** Whether RtMidi's queue holds a message; see `Device.queued`. */
  get queued(): boolean | undefined {
    return this.#device?.queued;
  }

  /** Installs the ring callback; see `Device.arm`. */
  arm(): void {
    this.#live().arm();
  }

  /** Removes the ring callback, if installed. */
  disarm(): void {
    this.#device?.disarm();
  }

  /**
   * Sends one message's bytes, in order with the others.
   *
   * @param bytes One complete message.
   * @returns A promise settled once RtMidi took it.
   */
  send(bytes: Uint8Array<ArrayBuffer>): Promise<void> {
    const device = this.#live();
    return this.#pacer?.send(bytes) ?? device.send(bytes);
  }

  /**
   * Drops the sends still waiting for room, rejecting them: for a port
   * whose other end went away.
   *
   * @param error What they are rejected with.
   */
  discard(error: unknown): void {
    this.#pacer?.discard(error);
  }

  /**
   * Ends the lease: writes what waits, closes the port and puts the client
   * back in the pool (or frees it). Calling it again returns the same
   * promise.
   *
   * @returns A promise settled once the port is closed.
   */
  end(): Promise<void> {
    this.#ended ??= this.#finish();
    return this.#ended;
  }

  async #finish(): Promise<void> {
    const device = this.#device;
    if (device === null) return;
    await this.#pacer?.flush();
    this.#device = null;
    if (device.orphaned) {
      device.abandon();
      return;
    }
    if (!device.poisoned) {
      try {
        await device.closePort();
        const pool = idle.get(device.key) ?? [];
        if (pool.length < POOL_LIMIT) {
          pool.push(device);
          idle.set(device.key, pool);
          return;
        }
      } catch {
        // Fall through to freeing it.
      }
    }
    await device.free();
  }
}

/** A port as a listing shows it, with what tells it from a namesake. */
export interface ListedPort {
  /** Its name, as `openInput`/`openOutput` take it. */
  readonly name: string;
  /** Its identity: a port re-created under the same name differs here. */
  readonly id: string;
}

/**
 * Lists one backend's ports in one direction: JACK's through libjack in
 * one snapshot, the others through an RtMidi client.
 *
 * @param api The backend, checked to be usable.
 * @param direction Ports to read from (`"input"`) or to write to.
 * @param clientName The client name to list with.
 * @returns The ports, in RtMidi's index order.
 * @throws {RtMidiError} When RtMidi fails.
 */
export async function listPorts(
  api: HardwareApi,
  direction: Direction,
  clientName: string,
): Promise<ListedPort[]> {
  if (api === "jack") {
    const state = await jackState();
    if (state.running) return state.helper.ports(direction);
  }
  const lease = await Lease.take(direction, api, clientName);
  try {
    return (await lease.portNames()).map((name) => ({ name, id: name }));
  } finally {
    await lease.end();
  }
}

function sendError(): RtMidiError {
  return new RtMidiError("out_send_message", "RtMidi could not send a message");
}
