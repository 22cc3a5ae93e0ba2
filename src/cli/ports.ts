#!/usr/bin/env -S deno run --allow-ffi --allow-env=MIDISOCK_RTMIDI_PATH,MIDISOCK_RTMIDI_API
/**
 * `midisock ports`: lists the MIDI input and output ports of each backend
 * the installed RtMidi has (ALSA and JACK on Linux, CoreMIDI on macOS,
 * WinMM on Windows), marking the virtual ones (made by programs rather than
 * devices), as text or, with `--json`, for scripts.
 *
 * Text output, one line per port: `API DIRECTION INDEX KIND NAME`, where
 * DIRECTION is `input` (open it with `--in`) or `output` (`--out`), INDEX is
 * what `--in`/`--out` also accept, and KIND is `virtual`, `device` or `-`
 * when the backend cannot tell. A backend that cannot be used prints
 * `API unavailable: REASON` on standard error, so standard output holds
 * port lines only. With `--watch` it prints `added API DIRECTION NAME` and
 * `removed API DIRECTION NAME` as ports come and go, until Ctrl-C. Needs
 * `--allow-ffi` and the RtMidi library.
 *
 * @example Listing ports from the command line
 * ```sh
 * deno run -A jsr:@x/midisock/ports
 * deno run -A jsr:@x/midisock/ports --api jack --json
 * deno run -A jsr:@x/midisock/ports --watch
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  describeError,
  loadHardware,
  type MainOptions,
  onStop,
  PACKAGE,
  parse,
  printInfo,
  readApi,
  report,
  UsageError,
  VERSION,
} from "./_common.ts";

export type { MainOptions } from "./_common.ts";

const COMMAND = "ports";

const HELP = `midisock ports ${VERSION}: list MIDI ports

Usage: ports [OPTIONS]

Lists the input and output ports of each MIDI backend RtMidi offers, one
line per port: API DIRECTION INDEX KIND NAME. Inputs are what serve and
connect open with --in, outputs what they open with --out (by name, part of
a name, or INDEX). KIND is "virtual" for ports made by programs, "device"
for hardware, "-" when the backend cannot tell. A backend that cannot be
used (no sound devices, no JACK server) prints "API unavailable: REASON" on
standard error; a backend without ports prints "API no ports" there too.

With --watch, prints every port there is, then each port that comes or
goes, until Ctrl-C: "added API DIRECTION NAME", "removed API DIRECTION
NAME" (with --json, one JSON object per line: {"type", "api", "direction",
"name"}).

Options:
      --api API        Only this backend: alsa, jack, core or winmm
      --json           Print JSON: {"version", "apis": [{"api", "inputs",
                       "outputs"} or {"api", "error"}]}, each port
                       {"index", "name", "virtual"} (virtual: true, false
                       or null)
  -w, --watch          Print ports as they come and go, until Ctrl-C
      --interval MS    How often --watch looks, in ms (default 250)
  -h, --help           Print this help and exit
  -V, --version        Print the version and exit

Exit code 0 when at least one backend could be listed (or --watch was
stopped), 1 otherwise (no RtMidi, missing --allow-ffi, no backend usable),
2 for bad usage.

Examples:
  # Every backend's ports
  deno run -A jsr:${PACKAGE}/ports

  # JACK's ports, for a script
  deno run -A jsr:${PACKAGE}/ports --api jack --json

  # The names only
  deno run -A jsr:${PACKAGE}/ports | cut -d' ' -f5-

  # Ports as they are plugged in and out
  deno run -A jsr:${PACKAGE}/ports --watch
`;

/** One port as `--json` prints it. */
interface PortEntry {
  index: number;
  name: string;
  virtual: boolean | null;
}

/** One backend as `--json` prints it. */
type ApiEntry =
  | { api: string; inputs: PortEntry[]; outputs: PortEntry[] }
  | { api: string; error: string };

/**
 * Whether a port is virtual, where the backend's names tell: JACK's
 * `system:` ports are devices, other clients are programs; ALSA names end
 * in `client:port` numbers, where clients 16-127 are sound cards and 14
 * (Midi Through) and 128 on are programs.
 */
function isVirtual(api: string, name: string): boolean | null {
  if (api === "jack") {
    if (name.startsWith("system:")) return false;
    if (name.startsWith("a2j:")) return null;
    return true;
  }
  if (api === "alsa") {
    const match = name.match(/ (\d+):\d+$/);
    if (match === null) return null;
    const client = Number(match[1]);
    if (client === 14 || client >= 128) return true;
    if (client >= 16) return false;
    return null;
  }
  return null;
}

async function list(api: ReturnType<typeof readApi>): Promise<ApiEntry[]> {
  const hardware = await loadHardware();
  const states = (await hardware.getUsableApis()).filter((state) =>
    api === undefined || state.api === api
  );
  if (states.length === 0 && api !== undefined) {
    return [{
      api,
      error: `this RtMidi was built without it (it has: ${
        hardware.getApis().join(", ") || "none"
      })`,
    }];
  }
  const entries: ApiEntry[] = [];
  for (const state of states) {
    const name = state.api;
    if (!state.usable) {
      entries.push({ api: name, error: state.reason });
      continue;
    }
    try {
      const entry = (names: string[]) =>
        names.map((port, index) => ({
          index,
          name: port,
          virtual: isVirtual(name, port),
        }));
      entries.push({
        api: name,
        inputs: entry(await hardware.getInputNames({ api: name })),
        outputs: entry(await hardware.getOutputNames({ api: name })),
      });
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable) throw error;
      if (error instanceof Error && error.name === "RtMidiNotFoundError") {
        throw error;
      }
      entries.push({ api: name, error: describeError(error) });
    }
  }
  return entries;
}

function printText(entries: ApiEntry[]): void {
  for (const entry of entries) {
    if ("error" in entry) {
      console.error(`${entry.api} unavailable: ${entry.error}`);
      continue;
    }
    if (entry.inputs.length + entry.outputs.length === 0) {
      console.error(`${entry.api} no ports`);
    }
    for (
      const [direction, ports] of [
        ["input", entry.inputs],
        ["output", entry.outputs],
      ] as const
    ) {
      for (const port of ports) {
        const kind = port.virtual === null
          ? "-"
          : port.virtual
          ? "virtual"
          : "device";
        console.log(
          `${entry.api} ${direction} ${port.index} ${kind} ${port.name}`,
        );
      }
    }
  }
}

/** Prints ports as they come and go until stopped; the exit code. */
async function watch(
  api: ReturnType<typeof readApi>,
  interval: number,
  json: boolean,
  signal: AbortSignal | undefined,
): Promise<number> {
  const hardware = await loadHardware();
  const states = (await hardware.getUsableApis()).filter((state) =>
    api === undefined || state.api === api
  );
  for (const state of states) {
    if (!state.usable) {
      console.error(`${state.api} unavailable: ${state.reason}`);
    }
  }
  const stopping = new AbortController();
  const removeListeners = onStop(() => stopping.abort(), signal);
  try {
    const watcher = hardware.watchPorts({
      api,
      interval,
      existing: true,
      signal: stopping.signal,
    });
    for await (const change of watcher) {
      console.log(
        json
          ? JSON.stringify(change)
          : `${change.type} ${change.api} ${change.direction} ${change.name}`,
      );
    }
  } finally {
    removeListeners();
  }
  return 0;
}

function readInterval(text: string | undefined): number {
  if (text === undefined) return 250;
  const value = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || value < 1 || value > 3_600_000) {
    throw new UsageError(
      `invalid --interval ${
        JSON.stringify(text)
      }: expected milliseconds from 1 to 3600000`,
    );
  }
  return value;
}

/**
 * Runs `midisock ports` with the given command-line arguments.
 *
 * @param args The arguments, as `Deno.args` gives them.
 * @param options `signal`: stops `--watch` as Ctrl-C does.
 * @returns The exit code: 0 when a backend was listed (or for `--help`,
 * or when `--watch` was stopped), 1 when none could be (reported in one
 * line on stderr), 2 for bad usage.
 *
 * @example Listing JACK's ports as JSON from a program
 * ```ts ignore
 * import { main } from "@x/midisock/ports";
 *
 * Deno.exitCode = await main(["--api", "jack", "--json"]);
 * ```
 */
export async function main(
  args: string[],
  options: MainOptions = {},
): Promise<number> {
  try {
    const { values, positionals } = parse(() =>
      parseArgs({
        args,
        strict: true,
        allowPositionals: true,
        options: {
          api: { type: "string" },
          json: { type: "boolean" },
          watch: { type: "boolean", short: "w" },
          interval: { type: "string" },
          help: { type: "boolean", short: "h" },
          version: { type: "boolean", short: "V" },
        },
      })
    );
    if (values.help) return printInfo("help", HELP);
    if (values.version) return printInfo("version", HELP);
    if (positionals.length > 0) {
      throw new UsageError(
        `unexpected argument ${JSON.stringify(positionals[0])}`,
      );
    }
    const api = readApi(values.api);
    const interval = readInterval(values.interval);
    if (values.interval !== undefined && !values.watch) {
      throw new UsageError("--interval needs --watch");
    }
    if (values.watch) {
      return await watch(api, interval, values.json ?? false, options.signal);
    }
    const entries = await list(api);
    if (values.json) {
      console.log(JSON.stringify({ version: VERSION, apis: entries }, null, 2));
    } else {
      printText(entries);
    }
    const listed = entries.filter((entry) => !("error" in entry));
    if (listed.length === 0) {
      // The text form printed each reason above, one per backend.
      const why = values.json
        ? ` (${
          entries.map((e) => "error" in e ? `${e.api}: ${e.error}` : "").join(
            "; ",
          )
        })`
        : "";
      console.error(`midisock ${COMMAND}: no MIDI backend can be used${why}`);
      return 1;
    }
    return 0;
  } catch (error) {
    return report(COMMAND, error);
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
