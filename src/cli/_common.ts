/**
 * What the command-line entry points share: the version, one-line error
 * reports, shutdown signals, addresses, and lines that stay readable under
 * a flood of refusals.
 *
 * @module
 */

import denoJson from "../../deno.json" with { type: "json" };
import { type Address, parseAddress } from "../address.ts";
import { describeError } from "../_text.ts";
import {
  api as readApi,
  type Args,
  asUsage,
  parseFlags,
  port as readPort,
  UsageError,
} from "./_flags.ts";
import type { Hub } from "../hub/mod.ts";

export { UsageError } from "./_flags.ts";
export { HARDWARE_APIS as APIS } from "../hardware/_api.ts";

/** The package version, from deno.json. */
export const VERSION: string = denoJson.version;

/** The package name, from deno.json. */
export const PACKAGE: string = denoJson.name;

/** Options every `main` takes besides its arguments. */
export interface MainOptions {
  /**
   * Stops the command as SIGINT/SIGTERM do (a clean shutdown, exit code 0):
   * for running it inside another program or a test.
   */
  signal?: AbortSignal;
}

/** A failure already phrased for people: reported as is, exit code 1. */
export class CliError extends Error {
  override name = "CliError";
}

/**
 * Runs a command: reads `argv` against the flags its help declares (see
 * `parseFlags`), answers `--help` and `--version`, and reports what `body`
 * throws in one line on stderr, `midisock COMMAND: LINE`. Returns the exit
 * code: what `body` returns (0 by default), 2 for bad usage, 1 for a
 * failure.
 */
export async function run(
  command: string,
  argv: string[],
  help: string,
  body: (args: Args) => Promise<number | void>,
): Promise<number> {
  try {
    const args = parseFlags(argv, help);
    if (args.has("help") || args.has("version")) {
      console.log(args.has("help") ? help : `midisock ${VERSION}`);
      return 0;
    }
    return await body(args) ?? 0;
  } catch (error) {
    const usage = error instanceof UsageError;
    const line = usage ? `${error.message} (see --help)` : describeError(error);
    console.error(`midisock ${command}: ${line}`);
    return usage ? 2 : 1;
  }
}

/**
 * Reads the address given as the one `ADDRESS` or with `--host`/`--port`.
 *
 * @throws {UsageError} For more than one, an address that does not parse,
 * or both forms.
 */
export function readAddress(args: Args, defaults: Address): Address {
  const [text, ...more] = args.positionals;
  const [host, port] = [args.text("host"), args.read("port", readPort)];
  if (more.length > 0) {
    throw new UsageError(
      `expected at most one ADDRESS: got ${args.positionals.join(" ")}`,
    );
  }
  if (text !== undefined && (host ?? port) !== undefined) {
    throw new UsageError(
      "give the address either as ADDRESS or with --host/--port, not both",
    );
  }
  if (text !== undefined) {
    return asUsage(() => parseAddress(text, defaults.port));
  }
  const hostname = (host ?? defaults.hostname).replace(/^\[(.*)\]$/, "$1");
  return { hostname, port: port ?? defaults.port };
}

/**
 * Puts the `--in`, `--out` and `--virtual` ports on a hub (the hardware
 * module loaded only then), which tell the hub what happens to them; a failure of
 * RtMidi's default backend says to choose one with `--api`.
 *
 * @throws {UsageError} For an empty name.
 */
export async function attachPorts(hub: Hub, args: Args): Promise<void> {
  const api = args.read("api", readApi);
  const names = (flag: string) =>
    args.list(flag).map((name) => {
      if (name.trim() === "") throw new UsageError(`--${flag} needs a name`);
      return /^\d+$/.test(name) ? Number(name) : name;
    });
  const [inputs, outputs, virtual] = ["in", "out", "virtual"].map(names);
  if (inputs.length + outputs.length + virtual.length === 0) return;
  const hardware = await import("../hardware/mod.ts");
  try {
    // It tells the hub what happens to its ports: the log prints that.
    const virtualNames = virtual.map(String);
    await hub.attach(
      new hardware.MidiPorts({ inputs, outputs, virtual: virtualNames, api }),
    );
  } catch (error) {
    if (api !== undefined || !(error instanceof hardware.RtMidiError)) {
      throw error;
    }
    throw new CliError(
      `${describeError(error)}; choose a MIDI backend with --api`,
    );
  }
}

/** Reads a file named on the command line, phrasing a failure. */
export function readFile(flag: string, path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    throw new CliError(`cannot read ${flag} ${path}: ${describeError(error)}`, {
      cause: error,
    });
  }
}

/**
 * Calls `stop` on SIGINT or SIGTERM (where the platform has it) or when
 * `signal` aborts; a second SIGINT/SIGTERM during shutdown exits at once
 * with code 130. Disposing it removes the listeners: declare it (`using`)
 * before what it must outlive, so that a second Ctrl-C still works while
 * that shuts down.
 */
export function onStop(stop: () => void, signal?: AbortSignal): Disposable {
  let stopping = false;
  const handler = () => {
    if (stopping) Deno.exit(130);
    stopping = true;
    stop();
  };
  const installed: Deno.Signal[] = [];
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT", "SIGBREAK"]
    : ["SIGINT", "SIGTERM"];
  for (const name of signals) {
    try {
      Deno.addSignalListener(name, handler);
      installed.push(name);
    } catch {
      // Not supported here: the other ways to stop remain.
    }
  }
  const abort = () => {
    stopping = true;
    stop();
  };
  if (signal?.aborted) queueMicrotask(abort);
  else signal?.addEventListener("abort", abort, { once: true });
  return {
    [Symbol.dispose]() {
      for (const name of installed) Deno.removeSignalListener(name, handler);
      signal?.removeEventListener("abort", abort);
    },
  };
}

export { describeError, plural } from "../_text.ts";

/**
 * How to run another midisock command (`connect`, `ports`), the way this
 * one was started: `deno run -A jsr:@x/midisock/connect` from JSR, the file
 * from a clone (relative to the working directory when it is under it),
 * the module's address from anywhere else.
 */
export function commandFor(command: string, from: string): string {
  const url = new URL(`./${command}.ts`, from);
  if (url.hostname === "jsr.io") return `deno run -A jsr:${PACKAGE}/${command}`;
  if (url.protocol !== "file:") return `deno run -A ${url.href}`;
  let path = decodeURIComponent(url.pathname);
  try {
    const cwd = `${Deno.cwd()}/`;
    if (path.startsWith(cwd)) path = path.slice(cwd.length);
  } catch {
    // No read permission for the working directory: the whole path.
  }
  return `deno run -A ${/\s/.test(path) ? JSON.stringify(path) : path}`;
}
