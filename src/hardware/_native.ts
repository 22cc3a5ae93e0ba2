/**
 * The one place that holds raw RtMidi handles: a `Device` owns one RtMidiIn
 * or RtMidiOut, frees it exactly once, and never lets a pointer out.
 *
 * Threads: RtMidi calls the input callback from its own MIDI thread, which
 * then waits until the JavaScript thread has run it. Every call that may
 * wait for that MIDI thread in turn (open, close, free, listing) is made
 * `nonblocking` and awaited, so the JavaScript thread stays free to run the
 * callback meanwhile. Teardown of an input: close the port, cancel the
 * callback, free the device (each awaited, so the MIDI thread is gone when
 * they return), and only then close the `UnsafeCallback`.
 *
 * @module
 */

import { loadRtMidi } from "../../ffi/load.ts";
import { probePortNames, type RtMidiLayout } from "../../ffi/layout.ts";
import { INPUT_CALLBACK, type RtMidiLibrary } from "../../ffi/symbols.ts";
import { RtMidiError } from "./errors.ts";

/** The MIDI backends midisock can ask RtMidi for. */
export type HardwareApi = "alsa" | "jack" | "core" | "winmm";

/** Every backend name, in the order RtMidi numbers them. */
export const HARDWARE_APIS: readonly HardwareApi[] = [
  "core",
  "alsa",
  "jack",
  "winmm",
];

/** The environment variable that picks the default backend. */
export const API_VARIABLE = "MIDISOCK_RTMIDI_API";

/** What a device's input callback is handed: delta time and a byte copy. */
export type InputSink = (deltaSeconds: number, bytes: Uint8Array) => void;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

let layoutKnown: RtMidiLayout | undefined;

function lib(): RtMidiLibrary {
  return loadRtMidi().lib;
}

/**
 * A string as C wants it: UTF-8 with a NUL at the end.
 *
 * @param text The text; checked by the caller to hold no NUL.
 * @returns The bytes.
 */
export function cString(text: string): Uint8Array<ArrayBuffer> {
  return encoder.encode(`${text}\0`);
}

function readCString(pointer: Deno.PointerValue): string | undefined {
  return pointer === null
    ? undefined
    : Deno.UnsafePointerView.getCString(pointer);
}

/**
 * The backends this RtMidi was built with, known to midisock.
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

/**
 * Checks a backend name given by a caller, before anything native runs.
 *
 * @param api The name, or `undefined` for the default.
 * @param what How to call the value in an error.
 * @returns The name, or `undefined`.
 * @throws {RangeError} For a name that is not a backend.
 */
export function checkApi(
  api: unknown,
  what = "api",
): HardwareApi | undefined {
  if (api === undefined) return undefined;
  if (!HARDWARE_APIS.includes(api as HardwareApi)) {
    throw new RangeError(
      `${what} must be one of ${HARDWARE_APIS.join(", ")}: got ${
        typeof api === "string" ? JSON.stringify(api) : String(api)
      }`,
    );
  }
  return api as HardwareApi;
}

/**
 * The backend from `MIDISOCK_RTMIDI_API`, when it is set and readable.
 *
 * @returns The name, or `undefined`.
 * @throws {RangeError} When the variable names no backend.
 */
export function apiFromEnvironment(): HardwareApi | undefined {
  const state = Deno.permissions.querySync({
    name: "env",
    variable: API_VARIABLE,
  }).state;
  if (state !== "granted") return undefined;
  const value = Deno.env.get(API_VARIABLE);
  if (value === undefined || value === "") return undefined;
  return checkApi(value, API_VARIABLE);
}

function apiNumber(api: HardwareApi | undefined): number {
  if (api === undefined) return 0; // RTMIDI_API_UNSPECIFIED
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
 * One RtMidi device and its callback. Created by {@linkcode Device.create},
 * released by {@linkcode Device.free}, which is safe to call any number of
 * times and from a finalizer.
 */
export class Device {
  readonly direction: Direction;
  #handle: Deno.PointerObject | null;
  #layout: RtMidiLayout;
  #callback: Deno.UnsafeCallback<typeof INPUT_CALLBACK> | null = null;
  #held = 0;
  #pending: Promise<void> | undefined;
  #freed: Promise<void> | undefined;

  private constructor(
    direction: Direction,
    handle: Deno.PointerObject,
    layout: RtMidiLayout,
  ) {
    this.direction = direction;
    this.#handle = handle;
    this.#layout = layout;
  }

  /**
   * Creates an RtMidiIn or RtMidiOut client.
   *
   * @param direction Input or output.
   * @param api The backend, or `undefined` for RtMidi's choice.
   * @param clientName The client's name, checked to hold no NUL.
   * @returns The device.
   * @throws {RtMidiError} When RtMidi fails.
   */
  static async create(
    direction: Direction,
    api: HardwareApi | undefined,
    clientName: string,
  ): Promise<Device> {
    const symbols = lib().symbols;
    const number = apiNumber(api);
    const name = cString(clientName);
    const handle = direction === "input"
      ? await symbols.rtmidi_in_create(number, name, 1024)
      : await symbols.rtmidi_out_create(number, name);
    if (handle === null) {
      throw new RtMidiError(
        `${direction === "input" ? "in" : "out"}_create`,
        `RtMidi could not allocate a MIDI ${direction} client`,
      );
    }
    const layout = layoutKnown ?? loadRtMidi().layout ??
      await probePortNames(lib(), handle);
    layoutKnown = layout;
    const device = new Device(direction, handle, layout);
    if (!device.#ok()) {
      const error = new RtMidiError(
        `${direction === "input" ? "in" : "out"}_create`,
        `RtMidi could not create a MIDI ${direction} client named ${
          JSON.stringify(clientName)
        }${api === undefined ? "" : ` on ${api}`}`,
        { detail: device.#message() },
      );
      await device.free();
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

  #ok(): boolean {
    return new Deno.UnsafePointerView(this.#live()).getUint8(
      this.#layout.okOffset,
    ) !== 0;
  }

  #message(): string | undefined {
    if (!this.#layout.messageReadable) return undefined;
    const view = new Deno.UnsafePointerView(this.#live());
    return readCString(view.getPointer(this.#layout.msgOffset));
  }

  #check(operation: string, what: string): void {
    if (!this.#ok()) {
      throw new RtMidiError(operation, what, { detail: this.#message() });
    }
  }

  /** The backend in use, as RtMidi reports it. */
  get api(): string {
    const symbols = lib().symbols;
    const number = this.direction === "input"
      ? symbols.rtmidi_in_get_current_api(this.#live())
      : symbols.rtmidi_out_get_current_api(this.#live());
    return readCString(symbols.rtmidi_api_name(number)) ?? "unknown";
  }

  /**
   * Lists the ports this device can open (for an input device: the
   * system's outputs, which it reads from).
   *
   * @returns Their names, in RtMidi's index order.
   * @throws {RtMidiError} When RtMidi fails.
   */
  async portNames(): Promise<string[]> {
    const symbols = lib().symbols;
    const handle = this.#live();
    const count = await symbols.rtmidi_get_port_count(handle);
    this.#check("get_port_count", `RtMidi could not count MIDI ports`);
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
      this.#check("get_port_name", `RtMidi could not name port ${index}`);
      return "";
    }
    const buffer = new Uint8Array(length[0]);
    await symbols.rtmidi_get_port_name(handle, index, buffer, length);
    const end = buffer.indexOf(0);
    return decoder.decode(end < 0 ? buffer : buffer.subarray(0, end));
  }

  /**
   * Connects to an existing port.
   *
   * @param index The port's index, checked by the caller to be in range.
   * @param localName The name of this end, checked to hold no NUL.
   * @param label The port's name, for errors.
   * @throws {RtMidiError} When RtMidi fails.
   */
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

  /**
   * Creates a virtual port that other programs connect to.
   *
   * @param name Its name, checked to hold no NUL.
   * @throws {RtMidiError} When RtMidi fails (for JACK: no server running).
   */
  async openVirtual(name: string): Promise<void> {
    await lib().symbols.rtmidi_open_virtual_port(this.#live(), cString(name));
    this.#check(
      "open_virtual_port",
      `RtMidi could not create virtual MIDI ${this.direction} port ${
        JSON.stringify(name)
      }`,
    );
  }

  /**
   * Says which message kinds RtMidi drops before the callback.
   *
   * @param sysex Drop sysex.
   * @param timing Drop clock and other timing messages.
   * @param sensing Drop active sensing.
   */
  ignoreTypes(sysex: boolean, timing: boolean, sensing: boolean): void {
    lib().symbols.rtmidi_in_ignore_types(this.#live(), sysex, timing, sensing);
  }

  /**
   * Installs the input callback. `sink` must not hold the port strongly, so
   * that an unclosed port can still be garbage-collected. The callback does
   * not keep the process alive unless {@linkcode Device.hold} says so.
   *
   * @param sink Receives each message's delta time and a copy of its bytes.
   */
  async listen(sink: InputSink): Promise<void> {
    const callback = Deno.UnsafeCallback.threadSafe(
      INPUT_CALLBACK,
      (delta, pointer, size) => {
        const length = Number(size);
        if (pointer === null || length === 0) return;
        // The bytes are RtMidi's only during this call: copy them out.
        const bytes = new Uint8Array(length);
        new Deno.UnsafePointerView(pointer).copyInto(bytes);
        sink(delta, bytes);
      },
    );
    callback.unref();
    this.#callback = callback;
    await lib().symbols.rtmidi_in_set_callback(
      this.#live(),
      callback.pointer,
      null,
    );
    this.#check("in_set_callback", "RtMidi could not install the callback");
  }

  /** Keeps the process alive while someone waits for input. */
  hold(): void {
    if (this.#held++ === 0) this.#callback?.ref();
  }

  /** Undoes one {@linkcode Device.hold}. */
  release(): void {
    if (--this.#held === 0) this.#callback?.unref();
  }

  /**
   * Sends one message's bytes. Short messages go straight out; a sysex is
   * written from a worker thread (some backends take their time over it),
   * and whatever is sent after it waits its turn, so order is kept.
   *
   * @param bytes One complete message.
   * @returns A promise settled once RtMidi took the message.
   * @throws {RtMidiError} When RtMidi refuses it.
   */
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
    const previous = this.#pending ?? Promise.resolve();
    const sent = previous.then(async () => {
      const status = await symbols.rtmidi_out_send_message_nonblocking(
        handle,
        bytes,
        bytes.length,
      );
      if (status !== 0) throw sendError();
    });
    const tail = sent.catch(() => {}).finally(() => {
      if (this.#pending === tail) this.#pending = undefined;
    });
    this.#pending = tail;
    return sent;
  }

  /** Whether {@linkcode Device.free} was called. */
  get freed(): boolean {
    return this.#freed !== undefined;
  }

  /**
   * Releases the device: waits for sends in flight, closes the port,
   * cancels and frees, then closes the callback. Calling it again returns
   * the same promise.
   *
   * @returns A promise settled when nothing native is left.
   */
  free(): Promise<void> {
    this.#freed ??= this.#release();
    return this.#freed;
  }

  async #release(): Promise<void> {
    await this.#pending;
    const handle = this.#handle;
    if (handle === null) return;
    const symbols = lib().symbols;
    try {
      if (this.direction === "input") {
        if (this.#callback !== null) {
          await symbols.rtmidi_close_port(handle);
          await symbols.rtmidi_in_cancel_callback(handle);
        }
        await symbols.rtmidi_in_free(handle);
      } else {
        await symbols.rtmidi_out_free(handle);
      }
    } finally {
      this.#handle = null;
      // The MIDI thread is gone: nothing can call the callback any more.
      this.#callback?.close();
      this.#callback = null;
    }
  }
}

function sendError(): RtMidiError {
  return new RtMidiError("out_send_message", "RtMidi could not send a message");
}
