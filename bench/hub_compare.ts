// Three hubs, the same raw clients, one run: midisock's `serve`; the limit,
// a raw Deno relay that forwards each client's bytes unparsed to every other
// client (bench/_raw_relay.ts); and the hub a mido user would write
// (bench/_mido_hub.py: mido 1.2.10's PortServer with accept() in a thread,
// iter_pending() over clients, a 1 ms sleep when idle, _receive patched as
// mido 1.3 reads, backlog 128).
//
// Run:   deno run -A bench/hub_compare.ts [--hubs=midisock,raw,mido]
//        (MIDISOCK_PYTHON names a Python with mido, default /usr/bin/python3)
//
// Each hub is its own process on 127.0.0.1, port 0. The clients are raw Deno
// TCP connections with TCP_NODELAY in this process, writing and counting
// bytes (3-byte note_on messages), so every hub is measured the same way:
//   latency  one sender, one receiver: 2000 messages, spaced 1 to 3 ms apart
//            as a player's notes are (after 200 untimed), one-way time from
//            write to arrival; p50 and p99.
//   flood    one sender writes 200,000 note_on as fast as the socket takes
//            them; one receiver; messages per second, first write to last
//            byte received; median of 5 rounds (the first warms up).
//   fanout   one sender, 50 receivers: 2000 messages in one write; time
//            until every receiver has them all; median of 5 rounds.
//   memory   (midisock only) 200 clients that never read while one client
//            floods for 10 s: the hub's peak and final resident memory.
// Every wait is bounded; hubs that overrun are killed.

import { parseArgs } from "node:util";

const HUBS = ["midisock", "raw", "mido"] as const;
type HubKind = typeof HUBS[number];

const LATENCY_COUNT = 2000;
const LATENCY_WARMUP = 200;
const FLOOD_COUNT = 200_000;
const FLOOD_ROUNDS = 5;
const FANOUT_CLIENTS = 50;
const FANOUT_COUNT = 2000;
const FANOUT_ROUNDS = 5;
const MEMORY_IDLERS = 200;
const MEMORY_SECONDS = 10;
const STEP_TIMEOUT_MS = 60_000;

const python = Deno.env.get("MIDISOCK_PYTHON") ?? "/usr/bin/python3";
const root = new URL("../", import.meta.url);

interface RunningHub {
  kind: HubKind;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

async function startHub(kind: HubKind): Promise<RunningHub> {
  const deno = (args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", "--allow-net=127.0.0.1", ...args],
      cwd: root,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    });
  const command = kind === "midisock"
    ? deno(["src/cli/serve.ts", "127.0.0.1:0"])
    : kind === "raw"
    ? deno(["bench/_raw_relay.ts"])
    : new Deno.Command(python, {
      args: ["bench/_mido_hub.py"],
      cwd: root,
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    });
  const child = command.spawn();
  const lines = child.stdout.pipeThrough(new TextDecoderStream());
  const reader = lines.getReader();
  let text = "";
  let port = 0;
  const deadline = Date.now() + 15_000;
  while (port === 0) {
    if (Date.now() > deadline) throw new Error(`${kind} hub did not start`);
    const { value, done } = await reader.read();
    if (done) throw new Error(`${kind} hub ended before it listened`);
    text += value;
    const match = text.match(/READY (\d+)|listening on 127\.0\.0\.1:(\d+)/);
    if (match) port = Number(match[1] ?? match[2]);
  }
  // Keep reading what it prints, so it never blocks on a full pipe.
  (async () => {
    while (!(await reader.read()).done) { /* discard */ }
  })();
  const stdin = child.stdin.getWriter();
  return {
    kind,
    port,
    pid: child.pid,
    async stop() {
      await stdin.close().catch(() => {});
      try {
        child.kill("SIGTERM");
      } catch {
        // Ended already.
      }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // Ended.
        }
      }, 5000);
      await child.status;
      clearTimeout(timer);
    },
  };
}

/** A raw client: writes bytes, counts and watches what arrives. */
class Client {
  readonly conn: Deno.TcpConn;
  received = 0;
  onData: ((chunk: Uint8Array, at: number) => void) | undefined;
  #waiters: { bytes: number; resolve: () => void }[] = [];
  readonly done: Promise<void>;

  constructor(conn: Deno.TcpConn, read = true) {
    this.conn = conn;
    conn.setNoDelay(true);
    this.done = read ? this.#read() : Promise.resolve();
  }

  static async open(port: number, read = true): Promise<Client> {
    return new Client(
      await Deno.connect({ hostname: "127.0.0.1", port }),
      read,
    );
  }

  async #read(): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await this.conn.read(buffer);
        if (n === null) break;
        const at = performance.now();
        this.received += n;
        this.onData?.(buffer.subarray(0, n), at);
        this.#waiters = this.#waiters.filter((w) => {
          if (this.received < w.bytes) return true;
          w.resolve();
          return false;
        });
      }
    } catch {
      // Closed.
    }
  }

  /** Resolves once `bytes` in all have arrived. */
  until(bytes: number): Promise<void> {
    if (this.received >= bytes) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ bytes, resolve }));
  }

  async write(bytes: Uint8Array): Promise<void> {
    for (let offset = 0; offset < bytes.length;) {
      offset += await this.conn.write(bytes.subarray(offset));
    }
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // Closed.
    }
  }
}

function bounded<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${what} took more than ${STEP_TIMEOUT_MS} ms`)),
        STEP_TIMEOUT_MS,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Connects a sender and receivers, and waits until the hub relays from the
 * sender to every receiver (a hub may take a moment to admit connections).
 */
async function connectAll(
  port: number,
  receivers: number,
): Promise<{ sender: Client; readers: Client[] }> {
  const sender = await Client.open(port);
  const readers = await Promise.all(
    Array.from({ length: receivers }, () => Client.open(port)),
  );
  const clock = new Uint8Array([0xf8]);
  await bounded(
    (async () => {
      while (readers.some((r) => r.received === 0)) {
        await sender.write(clock);
        await sleep(50);
      }
    })(),
    "connecting",
  );
  await sleep(200);
  for (const reader of readers) reader.received = 0;
  sender.received = 0;
  return { sender, readers };
}

function closeAll(clients: Client[]): Promise<void> {
  for (const client of clients) client.close();
  return sleep(300).then(() => {});
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function latency(port: number): Promise<{ p50: number; p99: number }> {
  const { sender, readers: [reader] } = await connectAll(port, 1);
  const sentAt = new Float64Array(LATENCY_COUNT + LATENCY_WARMUP);
  const took: number[] = [];
  let pending = new Uint8Array(0);
  let seen = 0;
  reader.onData = (chunk, at) => {
    const bytes = new Uint8Array(pending.length + chunk.length);
    bytes.set(pending);
    bytes.set(chunk, pending.length);
    let i = 0;
    for (; i + 3 <= bytes.length; i += 3) {
      const id = (bytes[i + 1] << 7) | bytes[i + 2];
      if (id >= LATENCY_WARMUP) took.push(at - sentAt[id]);
      seen++;
    }
    pending = bytes.slice(i);
  };
  const total = LATENCY_COUNT + LATENCY_WARMUP;
  await bounded(
    (async () => {
      for (let id = 0; id < total; id++) {
        const bytes = new Uint8Array([0x90, id >> 7, id & 127]);
        sentAt[id] = performance.now();
        await sender.write(bytes);
        await sleep(1 + Math.floor(Math.random() * 3));
      }
      while (seen < total) await sleep(5);
    })(),
    "latency",
  );
  await closeAll([sender, reader]);
  took.sort((a, b) => a - b);
  return { p50: percentile(took, 0.5), p99: percentile(took, 0.99) };
}

function notes(count: number): Uint8Array {
  const bytes = new Uint8Array(count * 3);
  for (let i = 0; i < count; i++) {
    bytes[i * 3] = 0x90 | (i & 15);
    bytes[i * 3 + 1] = i & 127;
    bytes[i * 3 + 2] = 1 + (i % 127);
  }
  return bytes;
}

async function flood(port: number): Promise<number> {
  const { sender, readers: [reader] } = await connectAll(port, 1);
  const bytes = notes(FLOOD_COUNT);
  const rates: number[] = [];
  for (let round = 1; round <= FLOOD_ROUNDS; round++) {
    const start = performance.now();
    await bounded(
      Promise.all([sender.write(bytes), reader.until(bytes.length * round)]),
      "flood",
    );
    rates.push(FLOOD_COUNT / ((performance.now() - start) / 1000));
    await sleep(100);
  }
  await closeAll([sender, reader]);
  rates.sort((a, b) => a - b);
  return rates[Math.floor(rates.length / 2)];
}

async function fanout(port: number): Promise<number> {
  const { sender, readers } = await connectAll(port, FANOUT_CLIENTS);
  const bytes = notes(FANOUT_COUNT);
  const times: number[] = [];
  for (let round = 1; round <= FANOUT_ROUNDS; round++) {
    const start = performance.now();
    await bounded(
      Promise.all([
        sender.write(bytes),
        ...readers.map((r) => r.until(bytes.length * round)),
      ]),
      "fanout",
    );
    times.push(performance.now() - start);
    await sleep(100);
  }
  await closeAll([sender, ...readers]);
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

function rssMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kb = Number(status.match(/VmRSS:\s+(\d+)/)?.[1] ?? 0);
  return kb / 1024;
}

async function memory(hub: RunningHub): Promise<string> {
  const before = rssMiB(hub.pid);
  const idlers = await Promise.all(
    Array.from({ length: MEMORY_IDLERS }, () => Client.open(hub.port, false)),
  );
  const flooder = await Client.open(hub.port);
  const chunk = notes(20_000);
  let peak = before;
  let flooding = true;
  const writing = (async () => {
    while (flooding) await flooder.write(chunk).catch(() => flooding = false);
  })();
  const end = Date.now() + MEMORY_SECONDS * 1000;
  while (Date.now() < end) {
    peak = Math.max(peak, rssMiB(hub.pid));
    await sleep(100);
  }
  flooding = false;
  flooder.close();
  await writing;
  await closeAll(idlers);
  await sleep(1000);
  const after = rssMiB(hub.pid);
  return `RSS ${before.toFixed(0)} MiB before, peak ${peak.toFixed(0)} MiB, ${
    after.toFixed(0)
  } MiB after (${MEMORY_IDLERS} clients not reading, one flooding for ${MEMORY_SECONDS} s)`;
}

const { values } = parseArgs({
  args: Deno.args,
  options: { hubs: { type: "string", default: HUBS.join(",") } },
});
const chosen = values.hubs!.split(",") as HubKind[];
for (const kind of chosen) {
  if (!HUBS.includes(kind)) throw new Error(`unknown hub ${kind}`);
}

interface Result {
  p50: number;
  p99: number;
  flood: number;
  fanout: number;
}
const results = new Map<HubKind, Result>();
let memoryLine = "";
for (const kind of chosen) {
  console.error(`measuring the ${kind} hub...`);
  const hub = await startHub(kind);
  try {
    const { p50, p99 } = await latency(hub.port);
    const rate = await flood(hub.port);
    const fan = await fanout(hub.port);
    results.set(kind, { p50, p99, flood: rate, fanout: fan });
    if (kind === "midisock") memoryLine = await memory(hub);
  } finally {
    await hub.stop();
  }
}

const ms = (x: number) => `${x.toFixed(3)} ms`;
console.log(
  "\nhub              latency p50   latency p99   flood msg/s   fan-out",
);
for (const [kind, r] of results) {
  console.log(
    `${kind.padEnd(16)} ${ms(r.p50).padStart(11)}   ${
      ms(r.p99).padStart(11)
    }   ${Math.round(r.flood).toLocaleString("en-US").padStart(11)}   ${
      ms(r.fanout).padStart(10)
    }`,
  );
}
const m = results.get("midisock");
const raw = results.get("raw");
const mido = results.get("mido");
if (m && raw) {
  console.log("\nmidisock / raw relay (goal):");
  console.log(`  latency p50  ${(m.p50 / raw.p50).toFixed(2)}x (<= 1.25x)`);
  console.log(`  latency p99  ${(m.p99 / raw.p99).toFixed(2)}x (<= 1.5x)`);
  console.log(`  flood msg/s  ${(m.flood / raw.flood).toFixed(3)}x (>= 0.25x)`);
  console.log(`  fan-out time ${(m.fanout / raw.fanout).toFixed(2)}x (<= 2x)`);
}
if (m && mido) {
  console.log("midisock / mido hub (goal):");
  console.log(`  flood msg/s  ${(m.flood / mido.flood).toFixed(1)}x (>= 50x)`);
  console.log(`  latency p50  ${(mido.p50 / m.p50).toFixed(1)}x lower`);
  console.log(`  fan-out time ${(mido.fanout / m.fanout).toFixed(1)}x shorter`);
}
if (memoryLine) console.log(`\nmidisock memory: ${memoryLine}`);
