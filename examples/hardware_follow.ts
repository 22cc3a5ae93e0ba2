/**
 * Prints what a MIDI input plays, and keeps doing so when its device is
 * unplugged and plugged in again: the input is followed by name.
 *
 * ```sh
 * deno run --allow-ffi --allow-env examples/hardware_follow.ts keystation
 * ```
 *
 * @module
 */

import { followInput, type HardwareInput } from "../src/hardware/mod.ts";

const [name] = Deno.args;
if (name === undefined) {
  console.error("Usage: hardware_follow.ts <input>");
  Deno.exit(2);
}

async function print(input: HardwareInput): Promise<void> {
  for await (const msg of input) console.log(input.name, msg);
}

try {
  await using follower = await followInput(name);
  Deno.addSignalListener("SIGINT", () => follower.close());
  for await (const { type, port, name } of follower) {
    console.log(`${type} ${JSON.stringify(name)}`);
    if (type !== "lost") print(port);
  }
} catch (error) {
  console.error(error instanceof Error ? error.message : error);
  Deno.exitCode = 1;
}
