#!/usr/bin/env -S deno run --allow-ffi --allow-env=MIDISOCK_RTMIDI_PATH,MIDISOCK_RTMIDI_API
/**
 * `midisock ports`: lists the MIDI input and output ports of each backend
 * the installed RtMidi has (ALSA and JACK on Linux, CoreMIDI on macOS,
 * WinMM on Windows), marking the virtual ones, as text or, with `--json`,
 * for scripts; with `--watch`, prints ports as they come and go. A shell
 * over the library's `listPorts` and `watchPorts`; see `--help`.
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

import type { HardwareApi } from "../hardware/_api.ts";
import * as cli from "./_common.ts";
import { api as readApi, count } from "./_flags.ts";

export type { MainOptions } from "./_common.ts";

const COMMAND = "ports";

const HELP = `midisock ports ${cli.VERSION}: list MIDI ports

Usage: ports [OPTIONS]

Lists the input and output ports of each MIDI backend RtMidi offers, one
line per port: API DIRECTION INDEX KIND NAME. Inputs are what serve and
connect open with --in, outputs what they open with --out (by name, part of
a name, or INDEX). KIND is "virtual" for ports made by programs, "device"
for hardware, "-" when the backend cannot tell. A backend that cannot be
used prints "API unavailable: REASON" on standard error; one without ports
prints "API no ports" there too.

With --watch, prints every port there is, then each that comes or goes,
until Ctrl-C: "added API DIRECTION NAME", "removed API DIRECTION NAME"
(with --json, one JSON object per line: {"type", "api", "direction",
"name"}).

Options:
      --api API           Only this backend: ${cli.APIS.join(", ")}
      --json              Print JSON: {"version", "apis": [{"api", "inputs",
                          "outputs"} or {"api", "error"}]}, each port
                          {"index", "name", "virtual"} (true, false or null)
  -w, --watch             Print ports as they come and go, until Ctrl-C
      --interval MS       How often --watch looks, in ms [250]
  -h, --help              Print this help and exit
  -V, --version           Print the version and exit

Exit code 0 when at least one backend could be listed (or --watch was
stopped), 1 otherwise (no RtMidi, missing --allow-ffi, no backend usable),
2 for bad usage.

Examples:
  deno run -A jsr:${cli.PACKAGE}/ports
  deno run -A jsr:${cli.PACKAGE}/ports --api jack --json
  deno run -A jsr:${cli.PACKAGE}/ports | cut -d' ' -f5-
  deno run -A jsr:${cli.PACKAGE}/ports --watch
`;

/** Prints ports as they come and go until stopped. */
async function watch(
  api: HardwareApi | undefined,
  interval: number,
  json: boolean,
  signal: AbortSignal | undefined,
): Promise<void> {
  const hardware = await import("../hardware/mod.ts");
  for (const state of await hardware.getUsableApis()) {
    if (!state.usable && (api === undefined || state.api === api)) {
      console.error(`${state.api} unavailable: ${state.reason}`);
    }
  }
  const stopping = new AbortController();
  using _signals = cli.onStop(() => stopping.abort(), signal);
  const changes = hardware.watchPorts({
    api,
    interval,
    existing: true,
    signal: stopping.signal,
  });
  for await (const change of changes) {
    console.log(
      json
        ? JSON.stringify(change)
        : `${change.type} ${change.api} ${change.direction} ${change.name}`,
    );
  }
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
export function main(
  args: string[],
  options: cli.MainOptions = {},
): Promise<number> {
  return cli.run(COMMAND, args, HELP, async (flags) => {
    if (flags.positionals.length > 0) {
      throw new cli.UsageError(`unexpected argument ${flags.positionals[0]}`);
    }
    flags.check({ needs: { interval: "watch" } });
    const api = flags.read("api", readApi);
    const interval = flags.read("interval", (f, t) => count(f, t, 1)) ?? 250;
    const json = flags.has("json");
    if (flags.has("watch")) return watch(api, interval, json, options.signal);
    const hardware = await import("../hardware/listing.ts");
    const listings = await hardware.listPorts({ api });
    for (const listing of json ? [] : listings) {
      const { lines, note } = hardware.formatPortListing(listing);
      if (note !== undefined) console.error(note);
      for (const line of lines) console.log(line);
    }
    if (json) {
      console.log(
        JSON.stringify({ version: cli.VERSION, apis: listings }, null, 2),
      );
    }
    if (listings.every((listing) => "error" in listing)) {
      // The text form printed each reason above, one per backend.
      const why = listings.map((l) =>
        "error" in l ? `${l.api}: ${l.error}` : ""
      );
      throw new cli.CliError(
        `no MIDI backend can be used${json ? ` (${why.join("; ")})` : ""}`,
      );
    }
  });
}

if (import.meta.main) Deno.exit(await main(Deno.args));
