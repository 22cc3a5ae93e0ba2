/**
 * Soak test of a live PortServer, on loopback only, for a bounded time.
 *
 *     deno run -A --v8-flags=--expose-gc bench/soak.ts [--seconds 30] [--churners 200]
 *
 * While well-behaved clients send numbered messages to the server and the
 * server broadcasts numbered messages to them, hundreds of other clients come
 * and go at random: they send valid traffic, vanish mid-message, send giant
 * sysex, spray garbage, or connect and never read (so the server must drop
 * them at its queue bound). At the end it reports what the well-behaved
 * clients lost (must be 0), peak RSS, and open file descriptors before,
 * during and after (must return to the baseline). Exit code 1 if either
 * check fails.
 */
import { parseArgs } from "node:util";
import { connect, encode, type Message, message, PortServer } from "../mod.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "30" },
    churners: { type: "string", default: "200" },
    good: { type: "string", default: "10" },
  },
});
const SECONDS = Number(values.seconds);
const CHURNERS = Number(values.churners);
const GOOD = Number(values.good);
const HOST = "127.0.0.1";

function fdTargets(): string[] {
  return [...Deno.readDirSync("/proc/self/fd")].map((entry) => {
    try {
      return Deno.readLinkSync(`/proc/self/fd/${entry.name}`);
    } catch {
      return "(gone)";
    }
  });
}

function openFds(): number {
  return fdTargets().length;
}

/** Open descriptors that are TCP sockets (IPv4 or IPv6). */
function tcpSockets(): number {
  const tcp = new Set<string>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of Deno.readTextFileSync(table).split("\n").slice(1)) {
      const inode = line.trim().split(/\s+/)[9];
      if (inode !== undefined) tcp.add(inode);
    }
  }
  return fdTargets().filter((t) =>
    tcp.has(t.match(/^socket:\[(\d+)\]$/)?.[1] ?? "")
  )
    .length;
}

function rssMiB(): number {
  return Deno.memoryUsage().rss / 2 ** 20;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Message n of good client c: a sysex no random client will send. */
function marked(c: number, n: number): Message {
  return message("sysex", {
    data: [0x7d, 0x55, c, (n >> 14) & 127, (n >> 7) & 127, n & 127],
  });
}

function unmark(msg: Message): [number, number] | undefined {
  if (msg.type !== "sysex" || msg.data.length !== 6) return undefined;
  const d = msg.data;
  if (d[0] !== 0x7d || d[1] !== 0x55) return undefined;
  return [d[2], (d[3] << 14) | (d[4] << 7) | d[5]];
}

// Warm up first, so that what the runtime opens once (its event loop's
// descriptors) is part of the baseline.
{
  await using warm = new PortServer(HOST, 0);
  await (await connect(HOST, warm.port)).close();
}
await sleep(100);
(globalThis as { gc?: () => void }).gc?.();
const heapBefore = Deno.memoryUsage().heapUsed / 2 ** 20;
const fdsBefore = openFds();
const tcpBefore = tcpSockets();
const targetsBefore = fdTargets();
const rssBefore = rssMiB();
let rssPeak = rssBefore;
let heapPeak = 0;
let externalPeak = 0;
let fdsPeak = fdsBefore;

const dropped: string[] = [];
const server = new PortServer(HOST, 0, {
  maxSysexLength: 64 * 1024,
  onDisconnect: (client, reason) => {
    if (reason !== undefined) dropped.push(client.name);
  },
});
const deadline = Date.now() + SECONDS * 1000;
const running = () => Date.now() < deadline;

// What the server received from each good client, in order.
const fromGood = Array.from({ length: GOOD }, () => ({ next: 0, lost: 0 }));
let otherMessages = 0;
const serverReading = (async () => {
  for await (const msg of server) {
    const mark = unmark(msg);
    if (mark === undefined || mark[0] >= GOOD) {
      otherMessages++;
      continue;
    }
    const seen = fromGood[mark[0]];
    if (mark[1] !== seen.next) seen.lost += Math.abs(mark[1] - seen.next);
    seen.next = mark[1] + 1;
  }
})();

// Good clients: send a numbered stream, read the server's numbered stream.
let sentByGood = 0;
let broadcastSent = 0;
const goodClients = await Promise.all(
  Array.from({ length: GOOD }, () => connect(HOST, server.port)),
);
const goodNames = new Set(
  goodClients.map((c) => `${HOST}:${c.localAddr.port}`),
);
const goodReceived = goodClients.map(() => ({ next: -1, lost: 0 }));
const goodReaders = goodClients.map(async (client, c) => {
  for await (const msg of client) {
    const mark = unmark(msg);
    if (mark === undefined || mark[0] !== 99) continue;
    // A client that joined late starts at the broadcast it joined at.
    const seen = goodReceived[c];
    if (seen.next === -1) seen.next = mark[1];
    if (mark[1] !== seen.next) seen.lost += Math.abs(mark[1] - seen.next);
    seen.next = mark[1] + 1;
  }
});
const goodSenders = goodClients.map(async (client, c) => {
  for (let n = 0; running(); n++) {
    await client.send(marked(c, n));
    sentByGood++;
    if (n % 20 === 0) await sleep(1);
  }
});
const broadcaster = (async () => {
  for (let n = 0; running(); n++) {
    await server.send(marked(99, n));
    broadcastSent = n + 1;
    if (n % 20 === 0) await sleep(1);
  }
})();

// Churners: misbehaving and short-lived clients.
const behaviours = {
  valid: 0,
  vanish: 0,
  giant: 0,
  garbage: 0,
  stall: 0,
};
async function churn(seed: number): Promise<void> {
  let state = seed;
  const rand = () =>
    (state = (state * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  while (running()) {
    const pick = rand();
    let conn: Deno.TcpConn;
    try {
      conn = await Deno.connect({ hostname: HOST, port: server.port });
    } catch {
      await sleep(10);
      continue;
    }
    try {
      if (pick < 0.35) {
        behaviours.valid++;
        const notes = Array.from(
          { length: 20 },
          (_, i) => encode(message("note_on", { note: i, velocity: 0 })),
        );
        for (const bytes of notes) await conn.write(bytes);
      } else if (pick < 0.6) {
        behaviours.vanish++;
        await conn.write(
          new Uint8Array([0x90, 60, 100, 0xf0, 1, 2, 3, 0x90, 61]),
        );
      } else if (pick < 0.7) {
        behaviours.giant++;
        const giant = new Uint8Array(256 * 1024).fill(0x41);
        giant[0] = 0xf0;
        await conn.write(giant); // past maxSysexLength, never terminated
      } else if (pick < 0.85) {
        behaviours.garbage++;
        await conn.write(
          Uint8Array.from({ length: 512 }, () => Math.floor(rand() * 256)),
        );
      } else {
        behaviours.stall++;
        await sleep(500 + rand() * 1500); // never reads the broadcasts
      }
    } catch {
      // The server may drop a misbehaving client first: that is the point.
    }
    try {
      conn.close();
    } catch {
      // Closed already.
    }
    await sleep(rand() * 20);
  }
}
const churners = Array.from({ length: CHURNERS }, (_, i) => churn(i + 1));

const sampler = (async () => {
  while (running()) {
    rssPeak = Math.max(rssPeak, rssMiB());
    const { heapUsed, external } = Deno.memoryUsage();
    heapPeak = Math.max(heapPeak, heapUsed / 2 ** 20);
    externalPeak = Math.max(externalPeak, external / 2 ** 20);
    fdsPeak = Math.max(fdsPeak, openFds());
    await sleep(250);
  }
})();

await Promise.all([...churners, ...goodSenders, broadcaster, sampler]);
// Let the last messages arrive, then close everything.
await sleep(500);
await Promise.all(goodClients.map((c) => c.close()));
await Promise.all(goodReaders);
await server.close();
await serverReading;
await sleep(200);

const lostFromGood = fromGood.reduce((n, s) => n + s.lost, 0);
const lostToGood = goodReceived.reduce((n, s) => n + s.lost, 0);
// With --expose-gc, collect so that "after" shows what is still held.
const gc = (globalThis as { gc?: () => void }).gc;
gc?.();
const heapAfter = Deno.memoryUsage().heapUsed / 2 ** 20;
const fdsAfter = openFds();
const tcpAfter = tcpSockets();
const goodDropped = dropped.filter((name) => goodNames.has(name)).length;
const ok = lostFromGood === 0 && lostToGood === 0 && goodDropped === 0 &&
  tcpAfter <= tcpBefore;

console.log(`soak: ${SECONDS} s, ${GOOD} good clients, ${CHURNERS} churners
  churner connections: ${JSON.stringify(behaviours)}
  good clients sent ${sentByGood} messages; lost on the way: ${lostFromGood}
  server broadcast ${broadcastSent}; lost on the way to good clients: ${lostToGood}
  clients dropped by the server: ${dropped.length} (good ones: ${goodDropped})
  other messages parsed from churners: ${otherMessages}
  RSS: ${rssBefore.toFixed(1)} MiB before, ${rssPeak.toFixed(1)} peak, ${
  rssMiB().toFixed(1)
} after
  JS heap: ${heapBefore.toFixed(1)} MiB before, ${heapPeak.toFixed(1)} peak, ${
  heapAfter.toFixed(1)
} after${
  gc ? " a full GC" : " (run with --v8-flags=--expose-gc to collect first)"
}; peak external (buffers) ${externalPeak.toFixed(1)} MiB
  open fds: ${fdsBefore} before, ${fdsPeak} peak, ${fdsAfter} after; TCP sockets ${tcpBefore} before, ${tcpAfter} after
  ${ok ? "OK" : "FAILED"}`);
if (fdsAfter > fdsBefore) {
  const before = [...targetsBefore];
  const extra = fdTargets().filter((t) => {
    const i = before.indexOf(t);
    if (i < 0) return true;
    before.splice(i, 1);
    return false;
  });
  console.log(
    `  other descriptors opened meanwhile (the runtime's own): ${
      extra.join(", ")
    }`,
  );
}
if (!ok) Deno.exit(1);
