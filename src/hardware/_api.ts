/**
 * The names of the MIDI backends, and the checks of a name a caller or the
 * environment gives: nothing native, so a command line can check `--api`
 * before RtMidi is loaded.
 *
 * @module
 */

/** The MIDI backends midisock can ask RtMidi for. */
export type HardwareApi = "alsa" | "jack" | "core" | "winmm";

/** Every backend name, in the order RtMidi numbers them. */
export const HARDWARE_APIS: readonly HardwareApi[] = [
  "core",
  "alsa",
  "jack",
  "winmm",
];

/** The environment variable that picks the default backend. */
export const API_VARIABLE = "MIDISOCK_RTMIDI_API";

/**
 * Checks a backend name given by a caller, before anything native runs.
 *
 * @param api The name, or `undefined` for the default.
 * @param what How to call the value in an error.
 * @returns The name, or `undefined`.
 * @throws {RangeError} For a name that is not a backend.
 */
export function checkApi(
  api: unknown,
  what = "api",
): HardwareApi | undefined {
  if (api === undefined) return undefined;
  if (!HARDWARE_APIS.includes(api as HardwareApi)) {
    throw new RangeError(
      `${what} must be one of ${HARDWARE_APIS.join(", ")}: got ${
        typeof api === "string" ? JSON.stringify(api) : String(api)
      }`,
    );
  }
  return api as HardwareApi;
}

/**
 * The backend from `MIDISOCK_RTMIDI_API`, when it is set and readable.
 *
 * @returns The name, or `undefined`.
 * @throws {RangeError} When the variable names no backend.
 */
export function apiFromEnvironment(): HardwareApi | undefined {
  const state = Deno.permissions.querySync({
    name: "env",
    variable: API_VARIABLE,
  }).state;
  if (state !== "granted") return undefined;
  const value = Deno.env.get(API_VARIABLE);
  if (value === undefined || value === "") return undefined;
  return checkApi(value, API_VARIABLE);
}
