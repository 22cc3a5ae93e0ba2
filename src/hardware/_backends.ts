/**
 * Which MIDI backends can be used right now, and why the others cannot:
 * asked of libjack and libasound directly, before RtMidi is, because RtMidi
 * 5.0 only prints a warning and carries on with no ports when no JACK
 * server runs, and throws from a constructor (after printing) when ALSA's
 * sequencer is missing.
 *
 * @module
 */

import { SND_SEQ_OPEN_DUPLEX } from "../../ffi/system.ts";
import { type JackState, jackState } from "./_jack.ts";
import { alsaLibrary } from "./_system.ts";
import { cString, readCString } from "./_text.ts";
import type { HardwareApi } from "./_api.ts";

/** Whether one backend can be used, and if not, why. */
export type BackendState =
  | { readonly usable: true; readonly jack?: JackState }
  | { readonly usable: false; readonly reason: string };

const USABLE: BackendState = Object.freeze({ usable: true });

/** How long a failed ALSA probe is trusted before it is made again. */
const ALSA_RETRY_MS = 2000;

let alsaOk = false;
let alsaFailure: { reason: string; at: number } | undefined;

async function alsaState(): Promise<BackendState> {
  if (alsaOk) return USABLE;
  if (
    alsaFailure !== undefined &&
    performance.now() - alsaFailure.at < ALSA_RETRY_MS
  ) {
    return { usable: false, reason: alsaFailure.reason };
  }
  const lib = alsaLibrary();
  // Without libasound only RtMidi can tell: let it try.
  if (lib === undefined) return USABLE;
  const handle = new BigUint64Array(1);
  const error = await lib.symbols.snd_seq_open(
    handle,
    cString("default"),
    SND_SEQ_OPEN_DUPLEX,
    0,
  );
  if (error < 0) {
    const text = readCString(lib.symbols.snd_strerror(error)) ?? `${error}`;
    const reason = `the ALSA sequencer cannot be opened (${text}); ` +
      "it needs /dev/snd/seq (the snd-seq kernel module)";
    alsaFailure = { reason, at: performance.now() };
    return { usable: false, reason };
  }
  const pointer = Deno.UnsafePointer.create(handle[0]);
  if (pointer !== null) await lib.symbols.snd_seq_close(pointer);
  alsaOk = true;
  alsaFailure = undefined;
  return USABLE;
}

/**
 * Whether a backend can be used now.
 *
 * @param api The backend.
 * @returns Its state; for JACK, with what libjack said.
 */
export async function backendState(api: HardwareApi): Promise<BackendState> {
  switch (api) {
    case "jack": {
      const jack = await jackState();
      return jack.running === false
        ? { usable: false, reason: jack.reason }
        : { usable: true, jack };
    }
    case "alsa":
      return await alsaState();
    default:
      return USABLE;
  }
}
