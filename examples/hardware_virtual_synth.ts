/**
 * Creates a virtual MIDI input other programs can play into, and prints
 * what arrives, with the time since the previous message. The port is made
 * on the first backend that can be used (ALSA, else JACK, on Linux);
 * `MIDISOCK_RTMIDI_API=jack` picks JACK.
 *
 * ```sh
 * deno run --allow-ffi --allow-env examples/hardware_virtual_synth.ts
 * ```
 *
 * @module
 */

import { openInput } from "../src/hardware/mod.ts";

try {
  await using port = await openInput("midisock synth", { virtual: true });
  console.log(`Play into ${port.name} (${port.api}); Ctrl-C to stop`);
  Deno.addSignalListener("SIGINT", () => port.close());
  for await (const msg of port) {
    console.log(`${msg.time?.toFixed(4)}s`, msg);
  }
  console.log(`dropped: ${port.dropped}`);
} catch (error) {
  // No usable backend, no RtMidi: one line, no stack trace.
  console.error(error instanceof Error ? error.message : error);
  Deno.exitCode = 1;
}
