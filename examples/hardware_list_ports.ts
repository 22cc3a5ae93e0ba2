/**
 * Lists the MIDI backends and ports RtMidi sees.
 *
 * ```sh
 * deno run --allow-ffi --allow-env examples/hardware_list_ports.ts
 * ```
 *
 * @module
 */

import { getApis, getInputNames, getOutputNames } from "../src/hardware/mod.ts";

for (const api of getApis()) {
  console.log(`${api}:`);
  const inputs = await getInputNames({ api });
  const outputs = await getOutputNames({ api });
  inputs.forEach((name, i) => console.log(`  in  ${i}: ${name}`));
  outputs.forEach((name, i) => console.log(`  out ${i}: ${name}`));
}
