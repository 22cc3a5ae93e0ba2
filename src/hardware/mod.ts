/**
 * Hardware MIDI through RtMidi: list the system's MIDI ports, open them by
 * name, part of a name or index, create virtual ports, and use them like
 * every other midisock port (`for await` on inputs, `send` on outputs).
 *
 * Nothing native is touched until the first call: importing needs no
 * permission; calling needs `--allow-ffi` and the RtMidi library
 * (`MIDISOCK_RTMIDI_PATH` names its file if it is somewhere unusual,
 * `MIDISOCK_RTMIDI_API` picks the default backend; both are read only when
 * `--allow-env` covers them).
 *
 * @example A bridge from a keyboard to a synth
 * ```ts ignore
 * import { openInput, openOutput } from "@x/midisock";
 *
 * await using keys = await openInput("keystation");
 * await using synth = await openOutput("fluid");
 * for await (const msg of keys) await synth.send(msg);
 * ```
 *
 * @module
 */

export {
  type ApiState,
  getApis,
  getInputNames,
  getOutputNames,
  getUsableApis,
  type HardwareApi,
  type HardwareInput,
  type HardwareIOPort,
  type HardwareOptions,
  type HardwareOutput,
  type InputOptions,
  type IOPortOptions,
  openInput,
  openIOPort,
  openOutput,
  type OutputOptions,
  type PortOptions,
} from "./ports.ts";
export {
  BackendUnavailableError,
  PortLostError,
  PortNotFoundError,
  RtMidiError,
  type RtMidiErrorOptions,
  RtMidiNotFoundError,
  type UnavailableBackend,
} from "./errors.ts";
export {
  DEFAULT_WATCH_INTERVAL,
  type PortChange,
  type PortWatcher,
  type WatchOptions,
  watchPorts,
} from "./watch.ts";
export {
  type FollowEvent,
  followInput,
  type FollowInputOptions,
  type FollowOptions,
  followOutput,
  type FollowOutputOptions,
  type PortFollower,
} from "./follow.ts";
export {
  formatMidiPortsEvent,
  type MidiPortRole,
  MidiPorts,
  type MidiPortsEvent,
  type MidiPortsOptions,
} from "./midi_ports.ts";
export {
  formatPortListing,
  type ListedPort,
  listPorts,
  type PortListing,
} from "./listing.ts";

// What the API above refers to, from elsewhere in the package.
export type * from "../_vocabulary.ts";
