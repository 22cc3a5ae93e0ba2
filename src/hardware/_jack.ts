/**
 * What midisock asks libjack itself, through one helper client per process:
 * whether a server runs (RtMidi only prints "JACK server not running?" and
 * carries on with no ports), a snapshot of the MIDI ports (one call, where
 * RtMidi lists them one index at a time and can read past its array when
 * ports vanish meanwhile), each port's identity (a port re-created under
 * the same name is another port, where the server tells ports apart), the
 * connections of a port (jack2 gives a re-created port its old identity,
 * so a follower checks it is still connected instead), and the period.
 *
 * The helper client is opened once and never closed (closing a JACK client
 * soon after opening it races inside libjack 1.9.21); it has no ports and
 * is never activated. When the server goes away, libjack calls the native
 * `time()` on a flag the helper owns, so the next question opens a new
 * helper and RtMidi clients of the old server are known to be dead.
 *
 * @module
 */

import {
  JACK_MIDI_TYPE,
  JACK_NO_START_SERVER,
  JACK_PORT_IS_INPUT,
  JACK_PORT_IS_OUTPUT,
  JACK_STATUS,
  type JackLibrary,
} from "../../ffi/system.ts";
import { jackLibrary, nativeFunctions } from "./_system.ts";
import { cString, readCStringArray } from "./_text.ts";

/** How to start a JACK server, for error messages. */
export const START_JACK_HINT =
  "start one with `jackd -d alsa` (or `jackd -d dummy` without a sound card), or with qjackctl";

/** A port as libjack lists it. */
export interface JackPort {
  /** The full name, `client:port`. */
  readonly name: string;
  /** What tells it from a port that had the same name before. */
  readonly id: string;
}

/** The helper client of one server's lifetime. */
export class JackHelper {
  readonly #lib: JackLibrary;
  readonly #client: Deno.PointerObject;
  /** Written by libjack (through `time()`) when the server shuts down. */
  readonly #down = new BigInt64Array(1);
  readonly #midiType = cString(JACK_MIDI_TYPE);
  /** Counts the servers seen: RtMidi clients of an older one are dead. */
  readonly generation: number;

  constructor(
    lib: JackLibrary,
    client: Deno.PointerObject,
    generation: number,
  ) {
    this.#lib = lib;
    this.#client = client;
    this.generation = generation;
    const stamp = nativeFunctions()?.stamp;
    if (stamp !== undefined) {
      lib.symbols.jack_on_shutdown(client, stamp, this.#down);
    }
  }

  /** Whether the server this helper talks to is still there. */
  get alive(): boolean {
    return this.#down[0] === 0n;
  }

  /**
   * The server's period: one process cycle, in milliseconds.
   *
   * @returns The period.
   */
  periodMs(): number {
    const frames = this.#lib.symbols.jack_get_buffer_size(this.#client);
    const rate = this.#lib.symbols.jack_get_sample_rate(this.#client);
    return rate > 0 ? (frames * 1000) / rate : 0;
  }

  /**
   * The ports connected to a port.
   *
   * @param name The port's full name.
   * @returns Their full names, or `undefined` when the port is not there.
   */
  connections(name: string): string[] | undefined {
    const symbols = this.#lib.symbols;
    const port = symbols.jack_port_by_name(this.#client, cString(name));
    if (port === null) return undefined;
    const array = symbols.jack_port_get_all_connections(this.#client, port);
    const names = readCStringArray(array);
    if (array !== null) symbols.jack_free(array);
    return names;
  }

  /**
   * The MIDI ports in one snapshot, in the order RtMidi numbers them.
   *
   * @param direction `"input"`: ports that send (what an RtMidi input opens);
   * `"output"`: ports that receive.
   * @returns The ports.
   */
  ports(direction: "input" | "output"): JackPort[] {
    const symbols = this.#lib.symbols;
    const flags = direction === "input"
      ? JACK_PORT_IS_OUTPUT
      : JACK_PORT_IS_INPUT;
    const array = symbols.jack_get_ports(
      this.#client,
      null,
      this.#midiType,
      BigInt(flags),
    );
    const names = readCStringArray(array);
    if (array !== null) symbols.jack_free(array);
    const uuid = symbols.jack_port_uuid;
    return names.map((name) => {
      if (uuid === null) return { name, id: name };
      const port = symbols.jack_port_by_name(this.#client, cString(name));
      return { name, id: port === null ? name : `${uuid(port)}` };
    });
  }
}

/**
 * The live helper, if one was opened and its server is still there.
 *
 * @returns The helper.
 */
export function currentJackHelper(): JackHelper | undefined {
  return helper?.alive ? helper : undefined;
}

/** What is known about the JACK server. */
export type JackState =
  | { readonly running: true; readonly helper: JackHelper }
  | { readonly running: false; readonly reason: string }
  | { readonly running: undefined };

let helper: JackHelper | undefined;
/** Every helper made: libjack may still write to a dead one's flag. */
const helpers: JackHelper[] = [];
let opening: Promise<JackState> | undefined;
let generation = 0;

/**
 * Says why libjack did not open a client.
 *
 * @param status The `jack_status_t` bits.
 * @returns The reason, for people.
 */
export function jackReason(status: number): string {
  if (status & JACK_STATUS.serverFailed) {
    return `the JACK server is not running; ${START_JACK_HINT}`;
  }
  if (status & JACK_STATUS.versionError) {
    return "libjack and the JACK server are different versions";
  }
  if (status & JACK_STATUS.shmFailure) {
    return "JACK's shared memory could not be attached";
  }
  if (status & JACK_STATUS.serverError) {
    return "the JACK server refused a client";
  }
  return `libjack could not open a client (status 0x${status.toString(16)})`;
}

/**
 * Whether a JACK server runs, asking libjack (without starting one).
 *
 * @returns `running: true` with the helper client; `false` with the reason;
 * `undefined` when libjack cannot be loaded, so only RtMidi can tell.
 */
export function jackState(): Promise<JackState> {
  if (helper?.alive) return Promise.resolve({ running: true, helper });
  opening ??= open().finally(() => opening = undefined);
  return opening;
}

async function open(): Promise<JackState> {
  const lib = jackLibrary();
  if (lib === undefined) return { running: undefined };
  const status = new Int32Array(1);
  const client = await lib.symbols.jack_client_open(
    cString("midisock"),
    JACK_NO_START_SERVER,
    status,
  );
  if (client === null) return { running: false, reason: jackReason(status[0]) };
  // A dead helper is left as it is: closing it would talk to no server.
  if (helper !== undefined) generation++;
  helper = new JackHelper(lib, client, generation);
  helpers.push(helper);
  return { running: true, helper };
}

/**
 * The generation of the server RtMidi clients made now belong to.
 *
 * @returns The number; it grows each time a server replaces a dead one.
 */
export function jackGeneration(): number {
  return generation;
}

/**
 * Whether a JACK server of an older generation has gone.
 *
 * @param of The generation a client was made in.
 * @returns `true` when that server is known to be dead.
 */
export function jackServerGone(of: number): boolean {
  return of < generation || (of === generation && helper?.alive === false);
}
