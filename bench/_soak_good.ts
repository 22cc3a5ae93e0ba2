// Well-behaved clients for bench/soak.ts (not meant to be run by hand):
// each sends numbered messages (a sysex no churner sends) to the server for
// SECONDS, paced, and checks the server's numbered broadcast: every one, in
// order, from the first it sees. Prints one JSON line: the clients' names
// (as the server sees them), how many each sent, broadcasts lost, and how
// many connections the server closed.
//
//   deno run --allow-net=127.0.0.1 bench/_soak_good.ts PORT SECONDS COUNT

import { watchStalls } from "./_stall.ts";
import { connect, type Message, message, type SocketPort } from "../mod.ts";

const [port, seconds, count] = Deno.args.map(Number);
const deadline = Date.now() + seconds * 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function unmark(msg: Message): [number, number] | undefined {
  if (msg.type !== "sysex" || msg.data.length !== 6) return undefined;
  const d = msg.data;
  if (d[0] !== 0x7d || d[1] !== 0x55) return undefined;
  return [d[2], (d[3] << 14) | (d[4] << 7) | d[5]];
}

const stalls = watchStalls();
let lost = 0;
let heard = 0;
let closed = 0;
let why = "";
const sent = new Array<number>(count).fill(0);
const readers: Promise<void>[] = [];

async function read(client: SocketPort): Promise<void> {
  let next = -1;
  for await (const msg of client) {
    const mark = unmark(msg);
    if (mark === undefined || mark[0] !== 99) continue;
    if (next !== -1 && mark[1] !== next) lost += Math.abs(mark[1] - next);
    next = mark[1] + 1;
    heard++;
  }
}

async function write(client: SocketPort, c: number): Promise<void> {
  try {
    for (let n = 0; Date.now() < deadline; n++) {
      await client.send(message("sysex", {
        data: [0x7d, 0x55, c, (n >> 14) & 127, (n >> 7) & 127, n & 127],
      }));
      sent[c] = n + 1;
      if (n % 20 === 0) await sleep(1);
    }
  } catch (error) {
    closed++;
    why ||= String((error as Error).cause ?? error);
  }
}

// Each client reads as soon as it is connected, as a real one does: under
// the churn a connect can wait seconds in the server's full accept queue
// (SYN retransmits), and a client that waited for the others before reading
// would leave the server's messages unread all that time.
const clients: SocketPort[] = [];
const senders = Array.from({ length: count }, async (_, c) => {
  const client = await connect("127.0.0.1", port);
  clients[c] = client;
  readers.push(read(client));
  await write(client, c);
});
await Promise.all(senders);
await sleep(500);
await Promise.all(clients.map((client) => client.close()));
await Promise.all(readers);
const stalledMs = stalls();
console.log(JSON.stringify({
  stalledMs,
  clients: clients.map((client) => `127.0.0.1:${client.localAddr.port}`),
  sent,
  heard,
  lost,
  closed,
  why,
}));
