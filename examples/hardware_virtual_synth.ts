/**
 * Creates a virtual MIDI input other programs can play into, and prints
 * what arrives, with the time since the previous message.
 *
 * ```sh
 * deno run --allow-ffi --allow-env examples/hardware_virtual_synth.ts
 * ```
 *
 * @module
 */

import { openInput } from "../src/hardware/mod.ts";

await using port = await openInput("midisock synth", { virtual: true });
console.log(`Play into ${port.name}; Ctrl-C to stop`);
Deno.addSignalListener("SIGINT", () => port.close());
for await (const msg of port) {
  console.log(`${msg.time?.toFixed(4)}s`, msg);
}
console.log(`dropped: ${port.dropped}`);
