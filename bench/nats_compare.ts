// Hubs federated over NATS against a single hub, on one machine, in one run.
//
// Run:   deno run -A bench/nats_compare.ts
//        (needs Debian's nats-server; started here on a free loopback port)
//
// Hub processes are `serve --nats URL --room NAME`; the hubs of the rooms
// scenario are the same in this process (bench/_linked_hub.ts: a Hub, a
// PortServer whose clients join it, and a NatsLink). Clients are midisock
// TCP clients (connect()).
//
// Scenarios (note_on messages, 3 bytes each):
//   latency   hub processes A and B in one room; client X on A sends one
//             message at a time; client Y1 on A (the single-hub path) and
//             client Y2 on B (through NATS) both receive it; the next goes
//             once both have it. WARMUP untimed, then SAMPLES timed. Reports
//             p50/p99 of each path and of the added latency (Y2 - Y1, per
//             message). Goals: added p50 <= 0.5 ms, p99 <= 3 ms.
//   rooms     ROOMS rooms in this process, each with 2 hubs of 2 clients;
//             every client sends MESSAGES (one awaited send each), all at
//             once; each client must get the 3 x MESSAGES of the others,
//             each sender's in order. Reports lost and time.
//   rate      one room, one sender, paced (a slice every 5 ms) at each rate
//             of RATE_PLAN (the goal, 200,000 msg/s, for 3 s, then 2x and 4x
//             for 1 s): (a) a link in this process sends to a link in this
//             process (sendAll per slice); (b) client X on hub process A
//             sends to client Y on hub process B (sendAll per slice). Reports
//             the rate received, messages lost, and MIDI messages per NATS
//             message (batching). NATS core delivers at most once: a run
//             faster than the receiver loses messages (its input queue
//             overflows), it is not slowed down.
// Every wait is bounded; hub processes are killed at the end.

import {
  connect,
  type Message,
  message,
  NatsLink,
  type SocketPort,
} from "../mod.ts";
import { NatsServer, noNats } from "../tests/_nats.ts";
import { startLinkedHub } from "./_linked_hub.ts";

const WARMUP = 300;
const SAMPLES = 3000;
const ROOMS = 16;
const MESSAGES = 1000;
const RATE = 200_000;
/** Paced runs: [messages per second, seconds]; the goal first. */
const RATE_PLAN: [number, number][] = [
  [RATE, 3],
  [2 * RATE, 1],
  [4 * RATE, 1],
];
const SLICE_MS = 5;

if (noNats) {
  console.log("nats-server is not installed: apt-get install nats-server");
  Deno.exit(1);
}

function deadline<T>(
  promise: Promise<T>,
  ms: number,
  what: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: over ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** A hub process: the stand-in script, ready once it prints its port. */
class HubProcess {
  readonly #child: Deno.ChildProcess;
  readonly ready: Promise<number>;

  constructor(url: string, room: string, name: string) {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--allow-net=127.0.0.1",
        new URL("../src/cli/serve.ts", import.meta.url).pathname,
        "127.0.0.1:0",
        "--nats",
        url,
        "--room",
        room,
        "--nats-name",
        name,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#child = child;
    this.ready = (async () => {
      let text = "";
      const reader = child.stdout.pipeThrough(new TextDecoderStream())
        .getReader();
      // Ready once it says where it listens and that the link is up.
      const ready = () =>
        /^NATS link up: /m.test(text) && /^ready /m.test(text)
          ? text
          : undefined;
      while (ready() === undefined) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`hub ${name} ended`);
        text += value;
      }
      // Keep draining its event lines.
      (async () => {
        while (!(await reader.read()).done) { /* drain */ }
      })();
      return Number(text.match(/^listening on 127\.0\.0\.1:(\d+)$/m)![1]);
    })();
  }

  async stop(): Promise<void> {
    try {
      this.#child.kill("SIGTERM");
    } catch {
      // Gone.
    }
    await this.#child.status;
  }
}

/** Waits until `condition()` holds, for at most `ms`. */
async function until(condition: () => boolean, ms: number, what: string) {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`${what}: not met in ${ms} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

const nth = (i: number, channel = 0): Message =>
  message("note_on", {
    channel,
    note: i % 128,
    velocity: Math.floor(i / 128) % 128,
  });
const index = (m: Message) =>
  m.type === "note_on" ? m.velocity * 128 + m.note : -1;

async function latency(url: string): Promise<Record<string, number>> {
  const a = new HubProcess(url, "latency", "A");
  const b = new HubProcess(url, "latency", "B");
  const clients: SocketPort[] = [];
  try {
    const [portA, portB] = await deadline(
      Promise.all([a.ready, b.ready]),
      20000,
      "hubs starting",
    );
    const x = await connect("127.0.0.1", portA);
    const y1 = await connect("127.0.0.1", portA);
    const y2 = await connect("127.0.0.1", portB);
    clients.push(x, y1, y2);
    // Each hub takes its clients in after their hello: none misses a message.
    await Promise.all(clients.map((port) => port.admitted));
    const arrivals = [new Map<number, number>(), new Map<number, number>()];
    const readers = [y1, y2].map((port, which) =>
      (async () => {
        for await (const msg of port) {
          arrivals[which].set(index(msg), performance.now());
        }
      })()
    );
    // The rooms are joined once a probe crosses.
    const probe = message("note_on", { channel: 15, note: 0, velocity: 0 });
    await deadline(
      (async () => {
        while (!arrivals[1].has(-1) && !arrivals[1].has(index(probe))) {
          await x.send(probe);
          await new Promise((r) => setTimeout(r, 50));
        }
      })(),
      10000,
      "the room joined",
    );
    const single: number[] = [];
    const nats: number[] = [];
    const added: number[] = [];
    for (let i = 0; i < WARMUP + SAMPLES; i++) {
      const n = i % 16384;
      arrivals[0].delete(n);
      arrivals[1].delete(n);
      const sent = performance.now();
      await x.send(nth(n));
      await until(
        () => arrivals[0].has(n) && arrivals[1].has(n),
        5000,
        `message ${i}`,
      );
      if (i < WARMUP) continue;
      const t1 = arrivals[0].get(n)! - sent;
      const t2 = arrivals[1].get(n)! - sent;
      single.push(t1);
      nats.push(t2);
      added.push(t2 - t1);
    }
    for (const list of [single, nats, added]) list.sort((p, q) => p - q);
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all(readers);
    return {
      singleP50: quantile(single, 0.5),
      singleP99: quantile(single, 0.99),
      natsP50: quantile(nats, 0.5),
      natsP99: quantile(nats, 0.99),
      addedP50: quantile(added, 0.5),
      addedP99: quantile(added, 0.99),
    };
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all([a.stop(), b.stop()]);
  }
}

async function rooms(url: string): Promise<Record<string, number>> {
  const hubs = await Promise.all(
    Array.from(
      { length: ROOMS * 2 },
      (_, i) => startLinkedHub(url, `room${i >> 1}`, `hub${i}`),
    ),
  );
  const clients: SocketPort[][] = [];
  try {
    await until(
      () => hubs.every((h) => h.link.remotes.length === 1),
      10000,
      "rooms joined",
    );
    for (let room = 0; room < ROOMS; room++) {
      const four: SocketPort[] = [];
      for (let k = 0; k < 4; k++) {
        four.push(await connect("127.0.0.1", hubs[room * 2 + (k >> 1)].port));
      }
      clients.push(four);
    }
    // Each hub takes its clients in after their hello: until then a client
    // hears nothing, and the last one would miss what the others send first.
    await Promise.all(clients.flat().map((port) => port.admitted));
    // Every client's messages carry its number as the channel.
    const got = clients.map((four) => four.map(() => [0, 0, 0, 0]));
    let outOfOrder = 0;
    let received = 0;
    const expected = ROOMS * 4 * 3 * MESSAGES;
    const readers = clients.flatMap((four, room) =>
      four.map((port, k) =>
        (async () => {
          for await (const msg of port) {
            if (msg.type !== "note_on") continue;
            const from = msg.channel;
            if (index(msg) !== got[room][k][from]) outOfOrder++;
            got[room][k][from]++;
            received++;
          }
        })()
      )
    );
    const started = performance.now();
    await Promise.all(
      clients.flatMap((four) =>
        four.map(async (port, k) => {
          for (let i = 0; i < MESSAGES; i++) await port.send(nth(i, k));
        })
      ),
    );
    let lost = 0;
    try {
      await until(() => received >= expected, 30000, "every message");
    } catch {
      lost = expected - received;
    }
    const seconds = (performance.now() - started) / 1000;
    for (const four of clients) for (const port of four) await port.close();
    await Promise.all(readers);
    return { expected, received, lost, outOfOrder, seconds };
  } finally {
    for (const four of clients) for (const port of four) await port.close();
    await Promise.all(hubs.map((h) => h.close()));
  }
}

/** Sends `total` messages at `rate` per second, a slice every SLICE_MS. */
async function paced(
  total: number,
  rate: number,
  send: (from: number, count: number) => Promise<void>,
): Promise<number> {
  const perSlice = Math.round(rate * SLICE_MS / 1000);
  const started = performance.now();
  for (let sent = 0; sent < total;) {
    const count = Math.min(perSlice, total - sent);
    await send(sent, count);
    sent += count;
    const due = started + (sent / rate) * 1000;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  return (performance.now() - started) / 1000;
}

interface RateRun {
  /** Messages per second asked for. */
  rate: number;
  total: number;
  /** Messages per second received, first send to last arrival. */
  received: number;
  lost: number;
}

/**
 * Sends at each rate in turn through `send` and counts what `count()` says
 * arrived, waiting for stragglers between runs.
 */
async function rateRuns(
  plan: [rate: number, seconds: number][],
  send: (from: number, count: number) => Promise<void>,
  count: () => { received: number; lastAt: number },
): Promise<RateRun[]> {
  const runs: RateRun[] = [];
  for (const [rate, seconds] of plan) {
    const total = Math.round(rate * seconds);
    const before = count().received;
    const started = performance.now();
    await paced(total, rate, send);
    await until(() => count().received - before >= total, 5000, "paced")
      .catch(() => {});
    // Nothing more is coming: stragglers would count for the next run.
    let settled = count().received;
    for (;;) {
      await new Promise((r) => setTimeout(r, 100));
      if (count().received === settled) break;
      settled = count().received;
    }
    const { received, lastAt } = count();
    runs.push({
      rate,
      total,
      received: (received - before) / ((lastAt - started) / 1000),
      lost: total - (received - before),
    });
  }
  return runs;
}

const messages = Array.from({ length: 16384 }, (_, i) => nth(i));
function slice(from: number, count: number): Message[] {
  const out: Message[] = [];
  for (let i = from; i < from + count; i++) out.push(messages[i & 16383]);
  return out;
}

async function rateLinks(
  url: string,
): Promise<{ runs: RateRun[]; perFrame: number; gaps: number }> {
  const a = await NatsLink.connect(url, { room: "rate" });
  const b = await NatsLink.connect(url, { room: "rate" });
  try {
    await until(() => b.remotes.length === 1, 5000, "link joined");
    let received = 0;
    let lastAt = 0;
    const reader = (async () => {
      for await (const _ of b) {
        received++;
        lastAt = performance.now();
      }
    })();
    const runs = await rateRuns(
      RATE_PLAN,
      (from, count) => a.sendAll(slice(from, count)),
      () => ({ received, lastAt }),
    );
    const perFrame = a.stats.sent / a.stats.framesSent;
    const gaps = b.stats.gaps;
    await b.close();
    await reader;
    return { runs, perFrame, gaps };
  } finally {
    await a.close();
    await b.close();
  }
}

async function rateHubs(url: string): Promise<RateRun[]> {
  const a = new HubProcess(url, "ratehubs", "A");
  const b = new HubProcess(url, "ratehubs", "B");
  const clients: SocketPort[] = [];
  try {
    const [portA, portB] = await deadline(
      Promise.all([a.ready, b.ready]),
      20000,
      "hubs starting",
    );
    const x = await connect("127.0.0.1", portA);
    const y = await connect("127.0.0.1", portB);
    clients.push(x, y);
    await Promise.all(clients.map((port) => port.admitted));
    let received = 0;
    let lastAt = 0;
    const reader = (async () => {
      for await (const _ of y) {
        received++;
        lastAt = performance.now();
      }
    })();
    const probe = message("song_select", { song: 1 });
    await deadline(
      (async () => {
        while (received === 0) {
          await x.send(probe);
          await new Promise((r) => setTimeout(r, 50));
        }
      })(),
      10000,
      "the room joined",
    );
    await new Promise((r) => setTimeout(r, 200));
    const runs = await rateRuns(
      RATE_PLAN,
      (from, count) => x.sendAll(slice(from, count)),
      () => ({ received, lastAt }),
    );
    await Promise.all(clients.map((c) => c.close()));
    await reader;
    return runs;
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all([a.stop(), b.stop()]);
  }
}

const server = await NatsServer.start();
try {
  console.log(`nats-server on ${server.url}; ${Deno.build.target}\n`);

  const lat = await latency(server.url);
  const ms = (v: number) => `${v.toFixed(3)} ms`;
  console.log(`latency (${SAMPLES} messages, one at a time):`);
  console.log(
    `  single hub   X -> A -> Y1        p50 ${ms(lat.singleP50)}  p99 ${
      ms(lat.singleP99)
    }`,
  );
  console.log(
    `  over NATS    X -> A -> NATS -> B -> Y2  p50 ${ms(lat.natsP50)}  p99 ${
      ms(lat.natsP99)
    }`,
  );
  console.log(
    `  added by NATS (per message)     p50 ${ms(lat.addedP50)}  p99 ${
      ms(lat.addedP99)
    }  ` +
      `[goal p50 <= 0.5 ms: ${
        lat.addedP50 <= 0.5 ? "met" : "MISSED"
      }, p99 <= 3 ms: ${lat.addedP99 <= 3 ? "met" : "MISSED"}]`,
  );
  console.log(
    `  NATS path / single hub path: p50 ${
      (lat.natsP50 / lat.singleP50).toFixed(2)
    }x, p99 ${(lat.natsP99 / lat.singleP99).toFixed(2)}x\n`,
  );

  const r = await rooms(server.url);
  console.log(
    `rooms (${ROOMS} rooms x 4 clients x ${MESSAGES} messages, 2 hubs per room):`,
  );
  console.log(
    `  received ${r.received} of ${r.expected}, lost ${r.lost}, out of order ${r.outOfOrder}, ` +
      `in ${r.seconds.toFixed(2)} s (${
        Math.round(r.received / r.seconds)
      } deliveries/s)` +
      `  [goal none lost: ${
        r.lost === 0 && r.outOfOrder === 0 ? "met" : "MISSED"
      }]\n`,
  );

  const goal = (run: RateRun) =>
    run.rate === RATE
      ? `  [goal ${RATE}/s: ${
        run.received >= RATE * 0.98 && run.lost === 0 ? "met" : "MISSED"
      }]`
      : "";
  const line = (run: RateRun) =>
    `  paced at ${run.rate}/s for ${run.total} messages: ` +
    `${Math.round(run.received)} msg/s received (${
      (run.received / RATE).toFixed(2)
    }x the goal), lost ${run.lost}${goal(run)}`;
  const l = await rateLinks(server.url);
  console.log(`rate, one sender, link to link in one process:`);
  for (const run of l.runs) console.log(line(run));
  console.log(
    `  ${
      l.perFrame.toFixed(0)
    } MIDI messages per NATS message on average; gaps ${l.gaps}\n`,
  );
  const h = await rateHubs(server.url);
  console.log(
    `rate, one sender, TCP client -> hub process A -> NATS -> hub process B -> TCP client:`,
  );
  for (const run of h) console.log(line(run));
} finally {
  await server.stop();
}
