/**
 * Bridges one MIDI input to one MIDI output until interrupted. Each port
 * is found by name (or a unique part of one) on the first backend that can
 * be used and has it; `MIDISOCK_RTMIDI_API=jack` (or `alsa`, ...) picks
 * the backend instead.
 *
 * ```sh
 * deno run --allow-ffi --allow-env examples/hardware_bridge.ts keyboard synth
 * ```
 *
 * @module
 */

import { openInput, openOutput } from "../src/hardware/mod.ts";

const [from, to] = Deno.args;
if (from === undefined || to === undefined) {
  console.error("Usage: hardware_bridge.ts <input> <output>");
  Deno.exit(2);
}
try {
  await using input = await openInput(from);
  await using output = await openOutput(to);
  console.log(`${input.name} -> ${output.name}`);
  Deno.addSignalListener("SIGINT", () => input.close());
  for await (const msg of input) await output.send(msg);
} catch (error) {
  // A port that is not there, no usable backend, no RtMidi: one line.
  console.error(error instanceof Error ? error.message : error);
  Deno.exitCode = 1;
}
