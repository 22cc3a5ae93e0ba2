/**
 * Hardware MIDI ports over RtMidi: list the system's ports, open them by
 * name, create virtual ones.
 *
 * @module
 */

import { compiledApis } from "./_native.ts";
import {
  listNames,
  openInputPort,
  openOutputPort,
  Pair,
  usableApis,
} from "./_ports.ts";

import type {
  ApiState,
  HardwareApi,
  HardwareInput,
  HardwareIOPort,
  HardwareOptions,
  HardwareOutput,
  InputOptions,
  IOPortOptions,
  OutputOptions,
} from "./types.ts";

export type {
  ApiState,
  HardwareApi,
  HardwareInput,
  HardwareIOPort,
  HardwareOptions,
  HardwareOutput,
  InputOptions,
  IOPortOptions,
  OutputOptions,
  PortOptions,
} from "./types.ts";

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
