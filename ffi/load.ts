/**
 * Finds and opens the RtMidi shared library, once, on first use.
 *
 * The environment variable `MIDISOCK_RTMIDI_PATH` names the library file
 * when set (read only if `--allow-env` covers it); otherwise the usual
 * names and places of the platform are tried in order. Opening needs
 * `--allow-ffi`: without it Deno's own `NotCapable` error comes through
 * unchanged.
 *
 * @module
 */

import { layoutFromSymbols, type RtMidiLayout } from "./layout.ts";
import { type RtMidiLibrary, SYMBOLS } from "./symbols.ts";

/** The environment variable that names the library file. */
export const PATH_VARIABLE = "MIDISOCK_RTMIDI_PATH";

/** The opened library, where it came from, and its layout if known yet. */
export interface LoadedRtMidi {
  /** The symbols. */
  readonly lib: RtMidiLibrary;
  /** The path or name it was opened by. */
  readonly path: string;
  /**
   * The version's layout, or `undefined` when only a live device can tell
   * (4.0 and 5.0 under an unnumbered file name).
   */
  readonly layout: RtMidiLayout | undefined;
}

const INSTALL_HELP = [
  "Install RtMidi:",
  "  Debian/Ubuntu: sudo apt-get install librtmidi6 (or librtmidi7)",
  "  Fedora: sudo dnf install rtmidi",
  "  Arch: sudo pacman -S rtmidi",
  "  macOS: brew install rtmidi",
  "  Windows: build rtmidi.dll from https://github.com/thestk/rtmidi",
  `or set ${PATH_VARIABLE} to the library file`,
].join("\n");

/**
 * Thrown when the RtMidi library cannot be opened: it lists every path
 * tried, why each failed, and how to install RtMidi.
 *
 * @example Telling a missing library apart
 * ```ts
 * import { RtMidiNotFoundError } from "./load.ts";
 *
 * const error: Error = new RtMidiNotFoundError([["librtmidi.so", "not found"]]);
 * console.log(error instanceof RtMidiNotFoundError); // true
 * ```
 */
export class RtMidiNotFoundError extends Error {
  /** Each path tried, with the reason it failed. */
  readonly tried: readonly (readonly [path: string, reason: string])[];
  /** What happened and what to do, in one line (for a command's error). */
  readonly summary: string;

  /**
   * Makes the error.
   *
   * @param tried Each path tried, with the reason it failed.
   * @param note A line to add before the install help.
   * @param options `cause`: the last failure.
   */
  constructor(
    tried: readonly (readonly [path: string, reason: string])[],
    note?: string,
    options?: ErrorOptions,
  ) {
    const lines = tried.map(([path, reason]) => `  ${path}: ${reason}`);
    super(
      [
        "Cannot load the RtMidi library; tried:",
        ...lines,
        ...(note === undefined ? [] : [note]),
        INSTALL_HELP,
      ].join("\n"),
      options,
    );
    this.name = "RtMidiNotFoundError";
    this.tried = tried;
    const where = tried.length === 1 ? tried[0][0] : `${tried.length} places`;
    this.summary = `the RtMidi library was not found (tried ${where}); ` +
      "install it (Debian/Ubuntu: apt-get install librtmidi6; macOS: brew " +
      "install rtmidi; Fedora: dnf install rtmidi; Arch: pacman -S rtmidi) " +
      `or set ${PATH_VARIABLE} to the library file`;
  }
}

/**
 * The places RtMidi is looked for on one platform, most likely first: bare
 * names go through the system's own search, full paths cover the places
 * that search may leave out.
 *
 * @param os The operating system, as `Deno.build.os` names it.
 * @returns The candidates, in order.
 */
export function candidatePaths(os: typeof Deno.build.os): string[] {
  switch (os) {
    case "darwin": {
      const names = [
        "librtmidi.dylib",
        "librtmidi.7.dylib",
        "librtmidi.6.dylib",
      ];
      return [
        ...names,
        ...["/opt/homebrew/lib", "/usr/local/lib"].flatMap((dir) =>
          names.map((name) => `${dir}/${name}`)
        ),
      ];
    }
    case "windows":
      return [
        "rtmidi.dll",
        "librtmidi-7.dll",
        "librtmidi-6.dll",
        "librtmidi.dll",
      ];
    default: {
      const names = [
        "librtmidi.so.7",
        "librtmidi.so.6",
        "librtmidi.so.5",
        "librtmidi.so",
      ];
      const dirs = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
        "/usr/local/lib",
      ];
      return [
        ...names,
        ...dirs.flatMap((dir) => names.map((n) => `${dir}/${n}`)),
      ];
    }
  }
}

function readPathVariable(): { path?: string; note?: string } {
  const state = Deno.permissions.querySync({
    name: "env",
    variable: PATH_VARIABLE,
  }).state;
  if (state !== "granted") {
    return {
      note:
        `(${PATH_VARIABLE} was not read: run with --allow-env=${PATH_VARIABLE} to use it)`,
    };
  }
  const path = Deno.env.get(PATH_VARIABLE);
  return path === undefined || path === "" ? {} : { path };
}

let loaded: LoadedRtMidi | undefined;

/**
 * Opens RtMidi the first time it is called and returns the same library
 * every time after.
 *
 * @returns The library, its path and layout.
 * @throws {Deno.errors.NotCapable} Without `--allow-ffi`.
 * @throws {RtMidiNotFoundError} When no candidate opens.
 */
export function loadRtMidi(): LoadedRtMidi {
  if (loaded !== undefined) return loaded;
  const { path, note } = readPathVariable();
  const candidates = path === undefined
    ? candidatePaths(Deno.build.os)
    : [path];
  const tried: [string, string][] = [];
  let lastError: unknown;
  for (const candidate of candidates) {
    let lib: RtMidiLibrary;
    try {
      lib = Deno.dlopen(candidate, SYMBOLS);
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable) throw error;
      lastError = error;
      tried.push([candidate, firstLine(error)]);
      continue;
    }
    loaded = {
      lib,
      path: candidate,
      layout: layoutFromSymbols(lib, candidate),
    };
    return loaded;
  }
  throw new RtMidiNotFoundError(
    tried,
    path === undefined ? note : `(from ${PATH_VARIABLE})`,
    { cause: lastError },
  );
}

/** Why one candidate did not open, in one line, without Deno's repeats. */
function firstLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n")[0].replace(/^(Could not open library: )+/, "");
}
