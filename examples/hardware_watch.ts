/**
 * Prints the MIDI ports there are, then each one that comes or goes (a
 * device plugged in or out, a program started or stopped), until Ctrl-C.
 *
 * ```sh
 * deno run --allow-ffi --allow-env examples/hardware_watch.ts
 * ```
 *
 * @module
 */

import { watchPorts } from "../src/hardware/mod.ts";

try {
  const stop = new AbortController();
  Deno.addSignalListener("SIGINT", () => stop.abort());
  for await (
    const change of watchPorts({ existing: true, signal: stop.signal })
  ) {
    console.log(change.type, change.api, change.direction, change.name);
  }
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  Deno.exitCode = 1;
}
