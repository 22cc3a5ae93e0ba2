/**
 * Bridges one MIDI input to one MIDI output until interrupted.
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
await using input = await openInput(from);
await using output = await openOutput(to);
console.log(`${input.name} -> ${output.name}`);
Deno.addSignalListener("SIGINT", () => input.close());
for await (const msg of input) await output.send(msg);
