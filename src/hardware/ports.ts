/**
 * Hardware MIDI ports over RtMidi: list the system's ports, open them by
 * name, create virtual ones.
 *
 * @module
 */

import type { InputPort, IOPort, OutputPort } from "../port.ts";
import { compiledApis } from "./_native.ts";
import {
  listNames,
  openInputPort,
  openOutputPort,
  Pair,
  usableApis,
} from "./_ports.ts";

export type { HardwareApi } from "./_native.ts";
import type { HardwareApi } from "./_native.ts";

/** Options every hardware call takes. */
export interface HardwareOptions {
  /**
   * The MIDI backend: `"alsa"` or `"jack"` on Linux, `"core"` on macOS,
   * `"winmm"` on Windows. See {@linkcode getApis} for what the installed
   * RtMidi has. Without one, the backends that can be used now are tried
   * in RtMidi's order: a name opens the first port it matches in any of
   * them, an index or a listing takes the first backend that has ports,
   * a virtual port goes to the first one.
   * @default {the MIDISOCK_RTMIDI_API environment variable if set and readable, else the first usable backend with ports}
   */
  api?: HardwareApi;
  /**
   * The client name the system shows for midisock (ALSA and JACK clients;
   * JACK adds a number when the name is taken).
   * @default {"midisock"}
   */
  clientName?: string;
}

/** Options of opening a port. */
export interface PortOptions extends HardwareOptions {
  /**
   * Create a virtual port with the given name, for other programs to
   * connect to, instead of opening an existing one. Not on Windows.
   * @default {false}
   */
  virtual?: boolean;
}

/** Options of {@linkcode openOutput}. */
export interface OutputOptions extends PortOptions {
  /**
   * What a send does when JACK's buffer for this port is full (JACK only;
   * other backends take every message at once). `"queue"`: it waits, in
   * order, and goes out in a later process cycle, so a burst of any size
   * arrives whole and in order (`send` resolves once the message is in
   * JACK's buffer). `"drop"`: it is dropped and counted in
   * {@linkcode HardwareOutput.dropped}, as RtMidi 4.0 did (a sysex longer
   * than the buffer still waits: it could never go otherwise).
   * @default {"queue"}
   */
  overflow?: "queue" | "drop";
}

/**
 * Options of {@linkcode openInput}. The filters default to what mido does:
 * sysex and timing (clock, MIDI time code) come through, active sensing is
 * dropped. (RtMidi's and python-rtmidi's own default drops all three.)
 */
export interface InputOptions extends PortOptions {
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
export interface IOPortOptions extends InputOptions, OutputOptions {}

/**
 * An input port on a MIDI device or a virtual port: iterate it with
 * `for await`. Each message's `time` is the delta time RtMidi measured since
 * the previous message, in seconds.
 *
 * RtMidi queues what arrives; while a reader waits (`receive()` or a
 * `for await` loop), one timer shared by every input takes it from there:
 * every millisecond while messages come, less often after a silence (at
 * most every 40 ms, or once a second where a JACK doorbell wakes it at the
 * first message). Only a waiting reader keeps the process alive, so a
 * script that forgets to close a port still ends. Messages that find the
 * port's own queue full are dropped and counted in `dropped`.
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
 * `send` resolves once RtMidi took the message. On JACK, a message waits
 * until JACK's buffer for the port has room (see
 * {@linkcode OutputOptions.overflow}): bursts go out over several process
 * cycles, whole and in order, and a sysex longer than the buffer goes as
 * several JACK events, which RtMidi joins again on the other side.
 */
export interface HardwareOutput extends OutputPort {
  /** Whether this port was created as a virtual port. */
  readonly virtual: boolean;
  /** The backend in use. */
  readonly api: string;
  /**
   * Messages dropped because JACK's buffer was full: always 0 unless
   * `overflow` is `"drop"`.
   */
  readonly dropped: number;
}

/** A pair of hardware ports used as one: the input and output halves. */
export interface HardwareIOPort extends IOPort {
  /** The input half. */
  readonly input: HardwareInput;
  /** The output half. */
  readonly output: HardwareOutput;
}

/**
 * Lists the MIDI input ports: the ports messages can be read from.
 *
 * @param options The backend and client name to list with.
 * @returns Their names, in index order (the index `openInput` accepts).
 * Without `api`: those of the first usable backend that has inputs.
 * @throws {BackendUnavailableError} When the backend asked for (or, without
 * one, every backend) cannot be used; the message says why.
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
  return listNames("input", options);
}

/**
 * Lists the MIDI output ports: the ports messages can be sent to.
 *
 * @param options The backend and client name to list with.
 * @returns Their names, in index order (the index `openOutput` accepts).
 * Without `api`: those of the first usable backend that has outputs.
 * @throws {BackendUnavailableError} When the backend asked for (or, without
 * one, every backend) cannot be used; the message says why.
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
  return listNames("output", options);
}

/**
 * The MIDI backends the installed RtMidi was built with, in the order
 * midisock tries them when no backend is named. Whether each can be used
 * now is {@linkcode getUsableApis}'s question.
 *
 * @returns Their names, e.g. `["alsa", "jack"]`.
 * @throws {RtMidiNotFoundError} When the RtMidi library is missing.
 * @throws {Deno.errors.NotCapable} Without `--allow-ffi`.
 *
 * @example Checking for JACK
 * ```ts ignore
 * import { getApis } from "@x/midisock";
 *
 * if (getApis().includes("jack")) console.log("RtMidi has JACK");
 * ```
 */
export function getApis(): HardwareApi[] {
  return compiledApis();
}

/** A backend RtMidi has, and whether it can be used now. */
export type ApiState =
  | { readonly api: HardwareApi; readonly usable: true }
  | {
    readonly api: HardwareApi;
    readonly usable: false;
    readonly reason: string;
  };

/**
 * Which of the backends RtMidi has can be used now, and why the others
 * cannot: no JACK server running, no ALSA sequencer (`/dev/snd/seq`). The
 * JACK and ALSA libraries are asked directly, so nothing is printed.
 *
 * @returns One entry per backend, in RtMidi's order.
 * @throws {RtMidiNotFoundError} When the RtMidi library is missing.
 * @throws {Deno.errors.NotCapable} Without `--allow-ffi`.
 *
 * @example Saying why JACK cannot be used
 * ```ts ignore
 * import { getUsableApis } from "@x/midisock";
 *
 * for (const state of await getUsableApis()) {
 *   if (!state.usable) console.error(`${state.api} unavailable: ${state.reason}`);
 * }
 * ```
 */
export function getUsableApis(): Promise<ApiState[]> {
  return usableApis();
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
 * @throws {BackendUnavailableError} When the backend cannot be used (for
 * JACK: no server running; the message says how to start one).
 * @throws {RtMidiError} When RtMidi fails.
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
  return (await openInputPort(name, options)).port;
}

/**
 * Opens a MIDI output port, found as {@linkcode openInput} finds inputs;
 * with `virtual: true`, creates a port of that name instead.
 *
 * @param name The port: a name, part of one, or an index.
 * @param options Backend, client name, virtual, overflow policy.
 * @returns The open port.
 * @throws {TypeError | RangeError} For a malformed argument, before anything
 * native runs.
 * @throws {PortNotFoundError} When no port or several match; its message
 * lists the ports there are.
 * @throws {BackendUnavailableError} When the backend cannot be used (for
 * JACK: no server running; the message says how to start one).
 * @throws {RtMidiError} When RtMidi fails.
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
  return (await openOutputPort(name, options)).port;
}

/**
 * Opens an input and an output by the same name (or index), as one port:
 * what a device that both plays and listens offers. With `virtual: true`,
 * creates both.
 *
 * @param name The ports: a name, part of one, or an index.
 * @param options Those of {@linkcode openInput} and {@linkcode openOutput}.
 * @returns The pair.
 * @throws {TypeError | RangeError} For a malformed argument.
 * @throws {PortNotFoundError} When either side has no single match.
 * @throws {BackendUnavailableError} When the backend cannot be used.
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
  const input = await openInputPort(name, options);
  try {
    // The output half on the backend the input was found on.
    const output = await openOutputPort(name, { ...options, api: input.api });
    return new Pair(input.port, output.port);
  } catch (error) {
    await input.port.close();
    throw error;
  }
}
