/**
 * Test helper: whether real RtMidi can be reached here (library and, for
 * JACK, a running server), the backend to use, and small utilities.
 *
 * @module
 */

import {
  getInputNames,
  getUsableApis,
  openOutput,
  RtMidiNotFoundError,
} from "../src/hardware/mod.ts";
import type { HardwareApi } from "../src/hardware/mod.ts";

/** The backend the tests use: `MIDISOCK_RTMIDI_API`, else JACK. */
export const API: HardwareApi =
  (Deno.env.get("MIDISOCK_RTMIDI_API") || "jack") as HardwareApi;

/** Whether a missing RtMidi or server fails the tests instead of skipping. */
export const REQUIRED = Deno.env.get("MIDISOCK_REQUIRE_RTMIDI") === "1";

/** An error's whole message on one line. */
function oneLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split("\n").map((line) => line.trim()).filter((l) => l !== "")
    .join("; ");
}

/**
 * Says exactly what is missing: the library (and where it was looked
 * for), the backend in this RtMidi, the server, or a working port.
 */
async function probe(): Promise<string | undefined> {
  let states;
  try {
    states = await getUsableApis();
  } catch (error) {
    if (error instanceof RtMidiNotFoundError) {
      const tried = error.tried.map(([path, why]) => `${path} (${why})`);
      return `the RtMidi library is not installed: tried ${
        tried.join(", ")
      }; install librtmidi6 (Debian/Ubuntu) or set MIDISOCK_RTMIDI_PATH`;
    }
    return `RtMidi cannot be loaded (${oneLine(error)})`;
  }
  const state = states.find((s) => s.api === API);
  if (state === undefined) {
    return `this RtMidi was built without the ${API} backend (it has: ${
      states.map((s) => s.api).join(", ") || "none"
    })`;
  }
  if (!state.usable) {
    return `the ${API} backend cannot be used: ${state.reason}`;
  }
  try {
    const name = `probe-${Deno.pid}`;
    const port = await openOutput(name, { virtual: true, api: API });
    const seen = (await getInputNames({ api: API })).some((n) =>
      n.includes(name)
    );
    await port.close();
    return seen ? undefined : `a virtual ${API} port was made but not listed`;
  } catch (error) {
    return `a virtual ${API} port could not be made (${oneLine(error)})`;
  }
}

/** Why hardware tests cannot run here, or `undefined` when they can. */
export const UNAVAILABLE: string | undefined = await probe();

if (UNAVAILABLE !== undefined) {
  console.warn(
    REQUIRED
      ? `MIDISOCK_REQUIRE_RTMIDI=1 but ${UNAVAILABLE}`
      : `Skipping RtMidi tests: ${UNAVAILABLE}`,
  );
}

/** Why tests that need RtMidi are skipped here (unless required), or undefined. */
export const RTMIDI_MISSING: string | undefined = REQUIRED
  ? undefined
  : UNAVAILABLE;

/** `ignore` for tests that need RtMidi: skip unless it is required. */
export const IGNORE = UNAVAILABLE !== undefined && !REQUIRED;

/** Fails the calling test when RtMidi is required but missing. */
export function assertAvailable(): void {
  if (UNAVAILABLE !== undefined) {
    throw new Error(`MIDISOCK_REQUIRE_RTMIDI=1 but ${UNAVAILABLE}`);
  }
}

let counter = 0;

/**
 * A port name no other test or test process uses.
 *
 * @param what A readable part.
 * @returns The name.
 */
export function uniqueName(what: string): string {
  return `ms${Deno.pid}x${++counter}-${what}`;
}

/**
 * Waits a while.
 *
 * @param ms Milliseconds.
 * @returns A promise of that moment.
 */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export { within } from "./_net.ts";

/**
 * Runs a script with Deno in a subprocess, from stdin.
 *
 * @param code The script.
 * @param flags Flags for `deno run`.
 * @param env Extra environment.
 * @returns Exit code and output.
 */
export async function runScript(
  code: string,
  flags: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--quiet", ...flags, "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env,
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(code));
  await writer.close();
  const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const output = await child.output();
  clearTimeout(killer);
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** The URL of a module of the project, for scripts run from stdin. */
export function moduleUrl(path: string): string {
  return new URL(`../${path}`, import.meta.url).href;
}

/**
 * Standard error without what no program can silence: Berkeley DB, which
 * libjack's metadata store uses, prints straight to stderr when its shared
 * environment (`/dev/shm/jack_db-*`) is full, e.g. after many JACK clients
 * were killed (`BDB2034 unable to allocate memory for mutex`). Every JACK
 * client prints it then, `jack_lsp` included; libjack's own printing,
 * which midisock does silence, says the rest.
 *
 * @param stderr What a process printed.
 * @returns The same without Berkeley DB's lines.
 */
export function withoutDbNoise(stderr: string): string {
  return stderr.split("\n").filter((line) => !/^BDB\d{4} /.test(line))
    .join("\n");
}
