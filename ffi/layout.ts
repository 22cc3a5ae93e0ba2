/**
 * Everything that differs between the RtMidi versions midisock supports, in
 * one table, and how the loaded library's version is told.
 *
 * | version | how it is told | port names | `ok` / `msg` offsets | `msg` readable | JACK output |
 * | --- | --- | --- | --- | --- | --- |
 * | 4.0 | file name `.so.5`, or the probe below | returned string | 16 / 24 | no | two rings, overflow corrupts |
 * | 5.0 | file name `.so.6`, or the probe below | caller's buffer | 16 / 24 | no | one ring, a full one spins |
 * | 6.0 | `rtmidi_get_version` | caller's buffer | 16 / 24 | no | one ring, a full one spins |
 * | master | `rtmidi_set_error_callback` | caller's buffer | 24 / 32 | yes | one ring, a full one spins |
 *
 * Up to 6.0, `msg` points into a C++ exception that is gone by the time the
 * call returns, so it is never read; `ok` is read instead. Every version
 * keeps an input's queue in the same place (see {@linkcode InputQueueLayout}).
 *
 * @module
 */

import type { RtMidiLibrary } from "./symbols.ts";

/** How `rtmidi_get_port_name` hands back a name. */
export type PortNameProtocol = "string" | "buffer";

/** What the wrapper needs to know about one RtMidi version. */
export interface RtMidiLayout {
  /** The version, as exact as the library lets it be known. */
  readonly version: string;
  /** `rtmidi_get_port_name`: 4.0 returns a string, 5.0+ fills a buffer. */
  readonly portNames: PortNameProtocol;
  /** Byte offset of `bool ok` in `struct RtMidiWrapper`. */
  readonly okOffset: number;
  /** Byte offset of `const char *msg` in `struct RtMidiWrapper`. */
  readonly msgOffset: number;
  /** Whether `msg` still points at the text after an error. */
  readonly messageReadable: boolean;
  /**
   * Where an RtMidi JACK output keeps its ring buffer, for versions whose
   * `JackMidiData` has one ring of (length, bytes) records; `undefined` for
   * 4.0, which keeps two rings.
   */
  readonly jackOutput: JackOutputLayout | undefined;
  /** Where an RtMidi input keeps its queue's read and write positions. */
  readonly inputQueue: InputQueueLayout;
}

/**
 * The path from an `RtMidiInPtr` to the queue RtMidi's input thread fills
 * (RtMidi.h: `RtMidiWrapper.ptr` -> `RtMidi::rtapi_` ->
 * `MidiInApi::inputData_.queue`, a `MidiQueue` of `unsigned int front,
 * back, ringSize`), read to tell whether anything waits in it while the
 * input's callback is installed (when RtMidi refuses to be read). After
 * `MidiApi`'s fields (vtable pointer, `apiData_`, `connected_`, a
 * libstdc++ `std::string`, the error callback, a flag and its user data).
 * `ringSize` holds the queue size midisock asked for, which tells a wrong
 * path from a right one (libc++'s `std::string` is shorter, for one).
 */
export interface InputQueueLayout {
  /** Offset of `MidiApi *rtapi_` in an `RtMidi` object. */
  readonly rtapiOffset: number;
  /** Offset of `unsigned int front` in a `MidiInApi` object. */
  readonly frontOffset: number;
  /** Offset of `unsigned int back`. */
  readonly backOffset: number;
  /** Offset of `unsigned int ringSize`. */
  readonly ringSizeOffset: number;
}

/** The input queue's place, the same from 4.0 to master (64-bit). */
const INPUT_QUEUE: InputQueueLayout = {
  rtapiOffset: 8,
  frontOffset: 80,
  backOffset: 84,
  ringSizeOffset: 88,
};

/**
 * The path from an `RtMidiOutPtr` to the ring buffer RtMidi's JACK output
 * writes into and its process callback drains each cycle (RtMidi.cpp:
 * `RtMidiWrapper.ptr` -> `RtMidi::rtapi_` -> `MidiApi::apiData_` ->
 * `JackMidiData::buff`). Read so that sends wait for room instead of
 * spinning inside `sendMessage` (5.0 and later) or overflowing it (4.0).
 * Each step is after a C++ vtable pointer or at a fixed field position;
 * `maxWriteOffset` holds a known value (the ring's size less one) that
 * tells a wrong path from a right one before the ring is used.
 */
export interface JackOutputLayout {
  /** Offset of `MidiApi *rtapi_` in an `RtMidi` object. */
  readonly rtapiOffset: number;
  /** Offset of `void *apiData_` in a `MidiApi` object. */
  readonly apiDataOffset: number;
  /** Offset of `jack_ringbuffer_t *buff` in `JackMidiData`. */
  readonly ringOffset: number;
  /** Offset of `int buffMaxWrite` in `JackMidiData`. */
  readonly maxWriteOffset: number;
  /** What `buffMaxWrite` holds: `JACK_RINGBUFFER_SIZE` (16384) less one. */
  readonly maxWrite: number;
}

/** The JACK output layout of 5.0, 6.0 and master. */
const JACK_OUTPUT_ONE_RING: JackOutputLayout = {
  rtapiOffset: 8,
  apiDataOffset: 8,
  ringOffset: 16,
  maxWriteOffset: 24,
  maxWrite: 16383,
};

/** The versions midisock knows, oldest first. */
export const LAYOUTS = {
  "4": {
    version: "4",
    portNames: "string",
    okOffset: 16,
    msgOffset: 24,
    messageReadable: false,
    jackOutput: undefined,
    inputQueue: INPUT_QUEUE,
  },
  "5": {
    version: "5",
    portNames: "buffer",
    okOffset: 16,
    msgOffset: 24,
    messageReadable: false,
    jackOutput: JACK_OUTPUT_ONE_RING,
    inputQueue: INPUT_QUEUE,
  },
  "6": {
    version: "6",
    portNames: "buffer",
    okOffset: 16,
    msgOffset: 24,
    messageReadable: false,
    jackOutput: JACK_OUTPUT_ONE_RING,
    inputQueue: INPUT_QUEUE,
  },
  master: {
    version: "master",
    portNames: "buffer",
    okOffset: 24,
    msgOffset: 32,
    messageReadable: true,
    jackOutput: JACK_OUTPUT_ONE_RING,
    inputQueue: INPUT_QUEUE,
  },
} as const satisfies Record<string, RtMidiLayout>;

/** Library file names that give the version away (the so-name's number). */
const VERSION_BY_FILE: readonly (readonly [RegExp, "4" | "5"])[] = [
  [/librtmidi\.so\.5(\.|$)/, "4"],
  [/librtmidi\.so\.6(\.|$)/, "5"],
  [/librtmidi\.5(\.\d+)*\.dylib$/, "4"],
  [/librtmidi\.6(\.\d+)*\.dylib$/, "5"],
];

/**
 * Tells the layout of a loaded library, once: the symbols 6.0 and master
 * added decide first, then the file name, then a probe that 4.0 and 5.0
 * answer differently. The probe calls `rtmidi_get_port_name(NULL, 0, NULL,
 * NULL)`: 5.0+ returns -1 at once without touching the device, while 4.0
 * (whose signature has two parameters) would dereference the device, so it
 * is only made with a real device, by {@linkcode probePortNames}.
 *
 * @param lib The library.
 * @param path The file it was loaded from.
 * @returns The layout, or `undefined` when only a probe can tell 4.0 from 5.0.
 */
export function layoutFromSymbols(
  lib: RtMidiLibrary,
  path: string,
): RtMidiLayout | undefined {
  const symbols = lib.symbols;
  if (symbols.rtmidi_set_error_callback !== null) {
    return { ...LAYOUTS.master, version: versionString(lib) ?? "master" };
  }
  const version = versionString(lib);
  if (version !== undefined) return { ...LAYOUTS["6"], version };
  const base = path.split(/[\\/]/).pop() ?? path;
  for (const [pattern, major] of VERSION_BY_FILE) {
    if (pattern.test(base)) return LAYOUTS[major];
  }
  return undefined;
}

/**
 * Tells 4.0 from 5.0 with a device in hand: called with two NULL buffers,
 * 5.0's `rtmidi_get_port_name` returns -1 without looking at the device;
 * 4.0's returns a (non-NULL, aligned) string pointer whose low 32 bits are
 * never -1.
 *
 * @param lib The library.
 * @param device A live device (`RtMidiPtr`).
 * @returns The layout.
 */
export async function probePortNames(
  lib: RtMidiLibrary,
  device: Deno.PointerObject,
): Promise<RtMidiLayout> {
  const result = await lib.symbols.rtmidi_get_port_name(device, 0, null, null);
  return result === -1 ? LAYOUTS["5"] : LAYOUTS["4"];
}

function versionString(lib: RtMidiLibrary): string | undefined {
  const getVersion = lib.symbols.rtmidi_get_version;
  if (getVersion === null) return undefined;
  const pointer = getVersion();
  if (pointer === null) return undefined;
  return Deno.UnsafePointerView.getCString(pointer);
}
