/**
 * Errors of the hardware ports.
 *
 * @module
 */

export { RtMidiNotFoundError } from "../../ffi/load.ts";

/** Options for {@linkcode RtMidiError}. */
export interface RtMidiErrorOptions extends ErrorOptions {
  /** RtMidi's own text for the failure, where the library keeps it. */
  detail?: string;
}

/**
 * Thrown when RtMidi reports a failure: creating a client, opening a port,
 * sending. RtMidi's own text is in the message where the library version
 * keeps it readable (before 6.0 it does not; RtMidi then prints it on
 * standard error).
 *
 * @example Telling an RtMidi failure apart
 * ```ts
 * import { RtMidiError } from "@x/midisock";
 *
 * const error: Error = new RtMidiError("open_virtual_port", "Cannot open virtual port \"synth\"");
 * if (error instanceof RtMidiError) console.log(error.operation); // open_virtual_port
 * ```
 */
export class RtMidiError extends Error {
  /** What was being done: the RtMidi C function's name without `rtmidi_`. */
  readonly operation: string;

  /**
   * Makes the error.
   *
   * @param operation What was being done.
   * @param message What failed, for people.
   * @param options `detail`: RtMidi's text; `cause`: an underlying error.
   */
  constructor(
    operation: string,
    message: string,
    options?: RtMidiErrorOptions,
  ) {
    const detail = options?.detail;
    super(
      detail === undefined || detail === "" ? message : `${message}: ${detail}`,
      options,
    );
    this.name = "RtMidiError";
    this.operation = operation;
  }
}

/**
 * Thrown when no MIDI port matches the name asked for, or several do: the
 * message lists the ports there are.
 *
 * @example Listing what there is when a port is missing
 * ```ts
 * import { PortNotFoundError } from "@x/midisock";
 *
 * const error = new PortNotFoundError("input", "synth", ["a:out", "b:out"]);
 * console.log(error.available); // [ "a:out", "b:out" ]
 * ```
 */
export class PortNotFoundError extends Error {
  /** What was asked for: a name, part of one, or an index. */
  readonly query: string | number;
  /** Which side was searched. */
  readonly direction: "input" | "output";
  /** The ports there were. */
  readonly available: readonly string[];
  /** The ports the query matched, when it matched more than one. */
  readonly matches: readonly string[];

  /**
   * Makes the error.
   *
   * @param direction Which side was searched.
   * @param query What was asked for.
   * @param available The ports there were.
   * @param matches The ports it matched, when it matched more than one.
   */
  constructor(
    direction: "input" | "output",
    query: string | number,
    available: readonly string[],
    matches: readonly string[] = [],
  ) {
    const list = available.length === 0
      ? "there are none"
      : `available: ${available.map((n) => JSON.stringify(n)).join(", ")}`;
    const what = typeof query === "number"
      ? `No MIDI ${direction} port has index ${query} (valid: 0-${
        available.length - 1
      })`
      : query === ""
      ? `No MIDI ${direction} port to open`
      : matches.length > 1
      ? `MIDI ${direction} port name ${
        JSON.stringify(query)
      } is ambiguous: it matches ${
        matches.map((n) => JSON.stringify(n)).join(", ")
      }`
      : `No MIDI ${direction} port matches ${JSON.stringify(query)}`;
    super(
      typeof query === "number" && available.length === 0
        ? `No MIDI ${direction} port has index ${query}; there are none`
        : `${what}; ${list}`,
    );
    this.name = "PortNotFoundError";
    this.direction = direction;
    this.query = query;
    this.available = available;
    this.matches = matches;
  }
}

/** One backend that cannot be used, and why. */
export interface UnavailableBackend {
  /** The backend. */
  readonly api: string;
  /** Why, for people. */
  readonly reason: string;
}

/**
 * Thrown when a MIDI backend cannot be used (no JACK server running, no
 * ALSA sequencer, a backend this RtMidi was built without), or when no
 * backend can be used at all: the message says why, for each.
 *
 * @example Telling a missing JACK server apart
 * ```ts
 * import assert from "node:assert/strict";
 * import { BackendUnavailableError } from "@x/midisock";
 *
 * const error = new BackendUnavailableError([
 *   { api: "jack", reason: "the JACK server is not running" },
 * ], "jack");
 * assert.equal(error.api, "jack");
 * assert.equal(
 *   error.message,
 *   "MIDI backend jack is unavailable: the JACK server is not running",
 * );
 * ```
 */
export class BackendUnavailableError extends Error {
  /** The backend asked for, or `undefined` when none was and none works. */
  readonly api: string | undefined;
  /** Each backend that cannot be used, and why. */
  readonly reasons: readonly UnavailableBackend[];

  /**
   * Makes the error.
   *
   * @param reasons Each backend that cannot be used, and why.
   * @param api The backend asked for, if one was.
   * @param options `cause`: an underlying error.
   */
  constructor(
    reasons: readonly UnavailableBackend[],
    api?: string,
    options?: ErrorOptions,
  ) {
    const own = reasons.find((r) => r.api === api);
    super(
      api !== undefined
        ? `MIDI backend ${api} is unavailable: ${own?.reason ?? "unknown"}`
        : reasons.length === 0
        ? "No MIDI backend is usable: this RtMidi was built with none"
        : `No MIDI backend is usable: ${
          reasons.map((r) => `${r.api}: ${r.reason}`).join("; ")
        }`,
      options,
    );
    this.name = "BackendUnavailableError";
    this.api = api;
    this.reasons = reasons;
  }
}

/**
 * Why a hardware port ended on its own: the port it was connected to went
 * away (a device unplugged, a program that quit). `receive()` on such an
 * input throws a {@linkcode PortClosedError} whose `cause` is this error.
 *
 * @example Telling an unplugged device from a closed port
 * ```ts
 * import assert from "node:assert/strict";
 * import { PortClosedError, PortLostError } from "@x/midisock";
 *
 * const closed = new PortClosedError("synth:in", {
 *   cause: new PortLostError("synth:in"),
 * });
 * assert.ok(closed.cause instanceof PortLostError);
 * assert.equal(closed.cause.message, `MIDI port "synth:in" went away`);
 * ```
 */
export class PortLostError extends Error {
  /** The name of the port that went away. */
  readonly port: string;

  /**
   * Makes the error.
   *
   * @param port The port's name.
   */
  constructor(port: string) {
    super(`MIDI port ${JSON.stringify(port)} went away`);
    this.name = "PortLostError";
    this.port = port;
  }
}
