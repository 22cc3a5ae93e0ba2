/**
 * Every MIDI port there is, per backend, with whether each is a program's
 * (virtual) or a device: what `ports` prints.
 *
 * @module
 */

import {
  getApis,
  getInputNames,
  getOutputNames,
  getUsableApis,
  type HardwareApi,
} from "./ports.ts";

/** One port as listed. */
export interface ListedPort {
  /** Its index in its backend's list (what `--in 2` opens). */
  readonly index: number;
  /** Its name. */
  readonly name: string;
  /**
   * `true` for a port a program made, `false` for a device, `null` where
   * the backend's names do not tell.
   */
  readonly virtual: boolean | null;
}

/** One backend's ports, or why it cannot be used. */
export type PortListing =
  | {
    readonly api: HardwareApi;
    readonly inputs: readonly ListedPort[];
    readonly outputs: readonly ListedPort[];
  }
  | { readonly api: HardwareApi; readonly error: string };

/**
 * Whether a port is virtual, where the backend's names tell: JACK's
 * `system:` ports are devices, other clients are programs; ALSA names end
 * in `client:port` numbers, where clients 16-127 are sound cards and 14
 * (Midi Through) and 128 on are programs.
 */
function isVirtual(api: HardwareApi, name: string): boolean | null {
  if (api === "jack") {
    if (name.startsWith("system:")) return false;
    return name.startsWith("a2j:") ? null : true;
  }
  const client = api === "alsa" ? name.match(/ (\d+):\d+$/)?.[1] : undefined;
  if (client === undefined) return null;
  if (Number(client) === 14 || Number(client) >= 128) return true;
  return Number(client) >= 16 ? false : null;
}

/**
 * Lists the ports of each backend RtMidi offers (or of one), with a reason
 * for each backend that cannot be used now.
 *
 * @param options `api`: one backend only.
 * @returns A listing per backend, in RtMidi's order.
 * @throws {RtMidiNotFoundError} Without the RtMidi library.
 * @throws {Deno.errors.NotCapable} Without `--allow-ffi`.
 *
 * @example Every port of every backend
 * ```ts ignore
 * import { listPorts } from "@x/midisock";
 *
 * for (const backend of await listPorts()) {
 *   if ("error" in backend) continue;
 *   for (const port of backend.inputs) console.log(backend.api, port.name);
 * }
 * ```
 */
export async function listPorts(
  options: { api?: HardwareApi } = {},
): Promise<PortListing[]> {
  const { api } = options;
  const states = (await getUsableApis()).filter((state) =>
    api === undefined || state.api === api
  );
  if (states.length === 0 && api !== undefined) {
    const has = getApis().join(", ") || "none";
    return [{
      api,
      error: `this RtMidi was built without it (it has: ${has})`,
    }];
  }
  const listings: PortListing[] = [];
  for (const state of states) {
    if (!state.usable) {
      listings.push({ api: state.api, error: state.reason });
      continue;
    }
    const ports = (names: string[]) =>
      names.map((name, index) => ({
        index,
        name,
        virtual: isVirtual(state.api, name),
      }));
    try {
      listings.push({
        api: state.api,
        inputs: ports(await getInputNames({ api: state.api })),
        outputs: ports(await getOutputNames({ api: state.api })),
      });
    } catch (error) {
      if (
        error instanceof Deno.errors.NotCapable ||
        (error instanceof Error && error.name === "RtMidiNotFoundError")
      ) {
        throw error;
      }
      listings.push({
        api: state.api,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  }
  return listings;
}

/**
 * A backend's listing as `ports` prints it: a line per port, `API
 * DIRECTION INDEX KIND NAME` (KIND `virtual`, `device`, or `-` where the
 * backend cannot tell), and a note when the backend cannot be used (`API
 * unavailable: REASON`) or has no ports (`API no ports`).
 *
 * @param listing One backend's listing, from {@linkcode listPorts}.
 * @returns The lines, and the note if any (`ports` prints it on stderr).
 *
 * @example A backend with one device input
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatPortListing } from "@x/midisock/hardware";
 *
 * assert.deepEqual(
 *   formatPortListing({
 *     api: "jack",
 *     inputs: [{ index: 0, name: "system:midi_capture_1", virtual: false }],
 *     outputs: [],
 *   }),
 *   { lines: ["jack input 0 device system:midi_capture_1"], note: undefined },
 * );
 * ```
 */
export function formatPortListing(
  listing: PortListing,
): { lines: string[]; note: string | undefined } {
  if ("error" in listing) {
    return { lines: [], note: `${listing.api} unavailable: ${listing.error}` };
  }
  const kind = (virtual: boolean | null) =>
    virtual === null ? "-" : virtual ? "virtual" : "device";
  const lines = (["input", "output"] as const).flatMap((direction) =>
    listing[`${direction}s`].map((port) =>
      `${listing.api} ${direction} ${port.index} ${
        kind(port.virtual)
      } ${port.name}`
    )
  );
  return {
    lines,
    note: lines.length === 0 ? `${listing.api} no ports` : undefined,
  };
}
