/**
 * Lists the MIDI backends RtMidi has, the ports of each one that can be
 * used now, and why the others cannot (no JACK server, no ALSA sequencer).
 * Works on any machine with RtMidi installed.
 *
 * ```sh
 * deno run --allow-ffi --allow-env examples/hardware_list_ports.ts
 * ```
 *
 * @module
 */

import {
  getInputNames,
  getOutputNames,
  getUsableApis,
} from "../src/hardware/mod.ts";

try {
  let usable = 0;
  for (const state of await getUsableApis()) {
    if (!state.usable) {
      console.log(`${state.api}: unavailable (${state.reason})`);
      continue;
    }
    usable++;
    console.log(`${state.api}:`);
    const inputs = await getInputNames({ api: state.api });
    const outputs = await getOutputNames({ api: state.api });
    inputs.forEach((name, i) => console.log(`  in  ${i}: ${name}`));
    outputs.forEach((name, i) => console.log(`  out ${i}: ${name}`));
    if (inputs.length + outputs.length === 0) console.log("  (no ports)");
  }
  if (usable === 0) Deno.exitCode = 1;
} catch (error) {
  // No RtMidi, or no --allow-ffi: one line, no stack trace.
  console.error(error instanceof Error ? error.message : error);
  Deno.exitCode = 1;
}
