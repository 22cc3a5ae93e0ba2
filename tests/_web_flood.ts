// Bad input for the web server, in a process of its own (run with
// --v8-flags=--expose-gc): pages that send garbage, unended sysex and frames
// over the bound, round after round, while a TCP client reads what passes.
// Prints the process's memory and what JavaScript holds, after a full GC,
// once warmed up and at the end, as JSON, for tests/web_test.ts.

import { encode, Hub, message, PortServer, WebServer } from "../mod.ts";
import { within } from "./_net.ts";
import { between, concat, random } from "./_util.ts";
import { openRaw } from "./_ws.ts";

/** Rounds before measuring, between the two measures, and in each. */
const WARM_ROUNDS = 20;
const MIDDLE_ROUNDS = 60;
const MEASURED_ROUNDS = 30;
const MEASURE_EVERY = 6;

const gc = (globalThis as unknown as { gc: () => void }).gc;

/** The process's memory, and what JavaScript holds, after a full GC. */
function memory(): { rss: number; held: number } {
  gc();
  const { rss, heapUsed, external } = Deno.memoryUsage();
  return { rss, held: heapUsed + external };
}

function endsWith(bytes: Uint8Array, tail: Uint8Array): boolean {
  return bytes.length >= tail.length &&
    tail.every((b, i) => bytes[bytes.length - tail.length + i] === b);
}

const hub = new Hub();
const server = await hub.attach(new PortServer("127.0.0.1", 0));
const web = await hub.attach(
  new WebServer({ port: 0, maxFrameBytes: 65536 }),
);
const tcp = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
const sentinel = encode(message("sysex", { data: [1, 2, 3, 4, 5, 6, 7] }));
let relayed = 0;
const draining = (async () => {
  const buffer = new Uint8Array(64 * 1024);
  let tail = new Uint8Array(0);
  for (;;) {
    const n = await tcp.read(buffer);
    if (n === null) return false;
    relayed += n;
    tail = concat([tail, buffer.subarray(0, n)]).slice(-64);
    if (endsWith(tail, sentinel)) return true;
  }
})();

const next = random(77);
const garbage = Uint8Array.from(
  { length: 60_000 },
  () => between(next, 0, 255),
);
const sysex = new Uint8Array(60_000).fill(0x11);
sysex[0] = 0xf0;
let input = 0;

async function round(): Promise<void> {
  const raw = await Deno.connect({ hostname: "127.0.0.1", port: web.port });
  const { socket } = await openRaw(raw, `127.0.0.1:${web.port}`);
  const page = socket!;
  for (;;) {
    const frame = await page.next();
    if (frame === undefined) throw new Error("Closed before the welcome");
    if (
      frame.opcode === 1 &&
      new TextDecoder().decode(frame.payload).includes("welcome")
    ) break;
  }
  // Text, garbage, unended sysex, then one frame over the bound.
  await page.send("x".repeat(10_000));
  for (let i = 0; i < 20; i++) await page.send(i % 2 ? garbage : sysex);
  await page.send(new Uint8Array(70_000));
  input += 10_000 + 20 * 60_000 + 70_000;
  const close = await page.closeFrame();
  if (close?.code !== 4009) throw new Error(`Closed with ${close?.code}`);
  page.close();
}

for (let i = 0; i < WARM_ROUNDS; i++) await round();
/**
 * The least memory seen over some rounds: what is really held (a GC leaves
 * some garbage, never less than what is held).
 */
async function measure(): Promise<{ rss: number; held: number }> {
  let least = { rss: Infinity, held: Infinity };
  for (let i = 0; i < MEASURED_ROUNDS; i++) {
    await round();
    if ((i + 1) % MEASURE_EVERY !== 0) continue;
    const now = memory();
    least = {
      rss: Math.min(least.rss, now.rss),
      held: Math.min(least.held, now.held),
    };
  }
  return least;
}

for (let i = 0; i < WARM_ROUNDS; i++) await round();
const warm = await measure();
for (let i = 0; i < MIDDLE_ROUNDS; i++) await round();
const end = await measure();

// The hub still relays, and the reader was never dropped.
const raw = await Deno.connect({ hostname: "127.0.0.1", port: web.port });
const { socket } = await openRaw(raw, `127.0.0.1:${web.port}`);
await socket!.next();
await socket!.send(sentinel);
if (!await within(draining, 10_000, "the sentinel")) {
  throw new Error("The reader was dropped");
}
socket!.close();
tcp.close();
await web.close();
await server.close();
await hub.close();
console.log(JSON.stringify({ warm, end, input, relayed }));
