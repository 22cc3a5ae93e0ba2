/**
 * Soak test of hardware ports through JACK: `--rate` messages per second
 * (10,000 by default) from a midisock output to a midisock input for
 * `--seconds` (60), each numbered (pitch wheel value and channel: 18 bits),
 * read by a `for await` loop that checks the numbers. Every 5 seconds it
 * prints what was sent and received, the gaps, resident memory and the
 * V8 heap. At the end: messages lost or out of order (must be 0), whether
 * memory stayed flat (the last third's peak against the first third's),
 * and exit code 1 if either check fails.
 *
 * ```sh
 * jackd --no-realtime -d dummy -r 48000 -p 1024 &
 * deno run -A --v8-flags=--expose-gc bench/hardware_soak.ts [--seconds 60] [--rate 10000]
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { message } from "../src/codec/messages.ts";
import { openInput, openOutput } from "../src/hardware/mod.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "60" },
    rate: { type: "string", default: "10000" },
  },
});
const SECONDS = Number(values.seconds);
const RATE = Number(values.rate);
const SPACE = 1 << 18;

function numbered(n: number) {
  const sequence = n % SPACE;
  return message("pitchwheel", {
    channel: sequence >> 14,
    pitch: (sequence & 0x3fff) - 8192,
  });
}

const name = `soak-${Deno.pid}`;
await using out = await openOutput(name, { virtual: true, api: "jack" });
await using input = await openInput(name, { api: "jack", queueSize: 1 << 16 });

let sent = 0;
let received = 0;
let gaps = 0;
let expected = 0;
const reading = (async () => {
  for await (const msg of input) {
    if (msg.type !== "pitchwheel") continue;
    const sequence = (msg.channel << 14) | (msg.pitch + 8192);
    if (sequence !== expected % SPACE) gaps++;
    expected = sequence + 1;
    received++;
  }
})();

const samples: { at: number; rss: number; heap: number }[] = [];
const gc = (globalThis as { gc?: () => void }).gc;
function sample(at: number): void {
  gc?.();
  const memory = Deno.memoryUsage();
  samples.push({ at, rss: memory.rss, heap: memory.heapUsed });
  console.log(
    `${
      String(Math.round(at)).padStart(3)
    } s  sent ${sent}  received ${received}  gaps ${gaps}  rss ${
      (memory.rss / 2 ** 20).toFixed(1)
    } MiB  heap ${(memory.heapUsed / 2 ** 20).toFixed(1)} MiB`,
  );
}

const start = performance.now();
const sends: Promise<void>[] = [];
let reporter: ReturnType<typeof setInterval> | undefined;
await new Promise<void>((done) => {
  const timer = setInterval(() => {
    const elapsed = (performance.now() - start) / 1000;
    const due = Math.min(Math.floor(elapsed * RATE), SECONDS * RATE);
    for (; sent < due; sent++) sends.push(out.send(numbered(sent)));
    // Keep the list of promises short: settled ones are done with.
    if (sends.length > 10_000) sends.splice(0, sends.length - 1000);
    if (sent >= SECONDS * RATE) {
      clearInterval(timer);
      done();
    }
  }, 10);
  let next = 5;
  reporter = setInterval(() => {
    const elapsed = (performance.now() - start) / 1000;
    if (elapsed >= next) {
      sample(elapsed);
      next += 5;
    }
  }, 100);
});
clearInterval(reporter);
await Promise.all(sends);
const deadline = performance.now() + 5000;
while (received < sent && performance.now() < deadline) {
  await new Promise((resolve) => setTimeout(resolve, 10));
}
sample((performance.now() - start) / 1000);
await input.close();
await reading;

const third = Math.max(1, Math.floor(samples.length / 3));
const early = Math.max(...samples.slice(0, third).map((s) => s.rss));
const late = Math.max(...samples.slice(-third).map((s) => s.rss));
const lost = sent - received;
const flat = late <= early * 1.1;
console.log(
  `sent ${sent}, received ${received}, lost ${lost}, out of order ${gaps}; ` +
    `input dropped ${input.dropped}; peak RSS, last third / first third: ${
      (late / early).toFixed(3)
    }x (${flat ? "flat" : "growing"})`,
);
if (lost !== 0 || gaps !== 0 || !flat) Deno.exitCode = 1;
