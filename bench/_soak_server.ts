// The server of bench/soak.ts (not meant to be run by hand): a PortServer
// used as a port, as a program would: it reads every client's messages,
// checking the numbered ones of the good clients, and broadcasts numbered
// messages to every client, paced. Prints "READY <port>"; when stdin closes
// it stops and prints one JSON line: what it got from each good client and
// lost, what it broadcast, and which clients it dropped.
//
//   deno run --allow-net=127.0.0.1 bench/_soak_server.ts GOOD

import { getHeapSpaceStatistics } from "node:v8";
import { watchStalls } from "./_stall.ts";
import { type Message, message, PortServer } from "../mod.ts";

const good = Number(Deno.args[0]);
const dropped: string[] = [];
const reasons = new Map<string, string>();
const server = new PortServer("127.0.0.1", 0, {
  maxSysexLength: 64 * 1024,
  onDisconnect: (client, reason) => {
    if (reason !== undefined) {
      dropped.push(client.name);
      reasons.set(client.name, String(reason));
    }
  },
});
console.log(`READY ${server.port}`);

function unmark(msg: Message): [number, number] | undefined {
  if (msg.type !== "sysex" || msg.data.length !== 6) return undefined;
  const d = msg.data;
  if (d[0] !== 0x7d || d[1] !== 0x55) return undefined;
  return [d[2], (d[3] << 14) | (d[4] << 7) | d[5]];
}

const fromGood = Array.from({ length: good }, () => ({ next: 0, lost: 0 }));
let other = 0;
const reading = (async () => {
  for await (const msg of server) {
    const mark = unmark(msg);
    if (mark === undefined || mark[0] >= good) {
      other++;
      continue;
    }
    const seen = fromGood[mark[0]];
    if (mark[1] !== seen.next) seen.lost += Math.abs(mark[1] - seen.next);
    seen.next = mark[1] + 1;
  }
})();

const stalls = watchStalls();
let running = true;
let broadcast = 0;
const broadcasting = (async () => {
  for (let n = 0; running; n++) {
    await server.send(message("sysex", {
      data: [0x7d, 0x55, 99, (n >> 14) & 127, (n >> 7) & 127, n & 127],
    }));
    broadcast = n + 1;
    if (n % 20 === 0) await new Promise((r) => setTimeout(r, 1));
  }
})();

for await (const _ of Deno.stdin.readable) { /* until stdin closes */ }
running = false;
await broadcasting;
const stalledMs = stalls();
// What is on its way still arrives.
await new Promise((r) => setTimeout(r, 1000));
// What the process still holds once collected (run with --expose-gc), and
// what V8 keeps committed for the young generation after the churn.
(globalThis as { gc?: () => void }).gc?.();
const { heapUsed, heapTotal, external } = Deno.memoryUsage();
const newSpace =
  getHeapSpaceStatistics().find((space) => space.space_name === "new_space")
    ?.space_size ?? 0;
console.log(JSON.stringify({
  stalledMs,
  heapMiB: heapUsed / 2 ** 20,
  heapTotalMiB: heapTotal / 2 ** 20,
  newSpaceMiB: newSpace / 2 ** 20,
  externalMiB: external / 2 ** 20,
  received: fromGood.map((s) => s.next),
  lost: fromGood.reduce((n, s) => n + s.lost, 0),
  broadcast,
  other,
  dropped,
  reasons: Object.fromEntries(reasons),
}));
await server.close();
await reading;
