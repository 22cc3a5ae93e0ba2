// midisock's TCP ports against mido's socket ports and raw sockets, over
// loopback, in the same run.
//
// Run:   deno run -A bench/net_compare.ts [--stacks=midisock,mido,denoraw,pyraw]
//        (MIDISOCK_PYTHON names a Python with mido, default /usr/bin/python3)
//
// Stacks (server and client are separate processes, both of the same stack,
// on 127.0.0.1 with port 0):
//   midisock  PortServer used as a port (merged input, broadcast send) and
//             connect(); one `await port.send(msg)` per message.
//   midisock-nowait  throughput only: the same, but the client calls send()
//             for every message and awaits them together (Promise.all), so
//             SocketPort joins queued writes: what a burst costs.
//   mido      mido 1.2.10's mido.sockets: PortServer.accept(), connect(),
//             SocketPort.send, BaseInput.receive (1 ms polling), broadcast by
//             PortServer.send. One method is patched: SocketPort._receive,
//             whose buffered read strands the last message of every burst
//             until more bytes arrive (so a ping-pong never returns); the
//             patch reads with recv() into mido's own Parser. See
//             bench/_mido_net.py.
//   denoraw   Deno.listen/Deno.connect with setNoDelay(true), bytes only: the
//             floor for a Deno program (bench/_net_peer.ts).
//   pyraw     Python sockets with TCP_NODELAY, bytes only.
// mido sets no TCP_NODELAY, so in `throughput` the kernel (Nagle) joins its
// 3-byte writes; every other stack sends one TCP segment per write.
//
// Scenarios (note_on messages, 3 bytes each):
//   throughput  the client sends COUNT messages, one send each; the server
//               counts them and answers with one `stop`; time from first send
//               to the answer; ROUNDS rounds on one connection, best reported.
//   rtt         the client sends one message and waits for the server's echo,
//               WARMUP times untimed then RTT_COUNT times timed; p50/p99.
//   fanout      FANOUT_CLIENTS connections from one client process; once all
//               are in, the server sends `start` to each; per round the client
//               sends `continue` on one connection and the server sends
//               FANOUT_COUNT messages to every client (one send per message);
//               time until every connection has them all (this includes one
//               one-way trip for the `continue`).
// Every wait is bounded: peers end themselves after 90 s, and this script
// kills a peer that overruns its timeout. Takes about a minute.

import { parseArgs } from "node:util";

const THROUGHPUT_COUNT = 100_000;
const THROUGHPUT_ROUNDS = 5;
const RTT_COUNT = 2_000;
const RTT_WARMUP = 200;
const FANOUT_CLIENTS = 100;
const FANOUT_COUNT = 1_000;
const FANOUT_ROUNDS = 3;
const READY_TIMEOUT_MS = 15_000;
const CLIENT_TIMEOUT_MS = 60_000;
const SERVER_EXIT_TIMEOUT_MS = 10_000;

const STACKS = [
  "midisock",
  "midisock-nowait",
  "mido",
  "denoraw",
  "pyraw",
] as const;
type Stack = typeof STACKS[number];
type Scenario = "throughput" | "rtt" | "fanout";

const LABELS: Record<Stack, string> = {
  midisock: "midisock",
  "midisock-nowait": "midisock, sends not awaited",
  mido: "mido 1.2.10 (patched _receive)",
  denoraw: "Deno raw TCP (nodelay)",
  pyraw: "Python raw socket (nodelay)",
};

const python = Deno.env.get("MIDISOCK_PYTHON") ?? "/usr/bin/python3";
const here = (file: string) => new URL(file, import.meta.url).pathname;

function command(stack: Stack, args: string[]): Deno.Command {
  const options = {
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  } as const;
  if (stack.startsWith("midisock") || stack === "denoraw") {
    return new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net=127.0.0.1",
        "--no-check",
        here("./_net_peer.ts"),
        stack,
        ...args,
      ],
      ...options,
    });
  }
  const pythonStack = stack === "mido" ? "mido" : "pyraw";
  return new Deno.Command(python, {
    args: [here("./_mido_net.py"), pythonStack, ...args],
    ...options,
  });
}

function timeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: over ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

async function readAll(stream: ReadableStream<Uint8Array>): Promise<string> {
  return await new Response(stream).text();
}

/** Runs one scenario: a server process, then a client process against it. */
async function run(
  stack: Stack,
  scenario: Scenario,
  count: number,
  rounds: number,
  clients: number,
): Promise<Record<string, number[]>> {
  const numbers = (
    port: number,
  ) => [String(port), String(count), String(rounds), String(clients)];
  const server = command(stack, ["server", scenario, ...numbers(0)]).spawn();
  const serverErr = readAll(server.stderr);
  const lines = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    let text = "";
    const port = await timeout(
      (async () => {
        for (;;) {
          const { value, done } = await lines.read();
          if (done) throw new Error(`server ended: ${await serverErr}`);
          text += value;
          const match = text.match(/READY (\d+)/);
          if (match) return Number(match[1]);
        }
      })(),
      READY_TIMEOUT_MS,
      `${stack} ${scenario} server start`,
    );
    const client = command(stack, ["client", scenario, ...numbers(port)])
      .spawn();
    let output: Deno.CommandOutput;
    try {
      output = await timeout(
        client.output(),
        CLIENT_TIMEOUT_MS,
        `${stack} ${scenario} client`,
      );
    } catch (error) {
      client.kill();
      await client.status;
      throw error;
    }
    const out = new TextDecoder().decode(output.stdout);
    if (!output.success) {
      throw new Error(
        `${stack} ${scenario} client failed: ${
          new TextDecoder().decode(output.stderr)
        }`,
      );
    }
    await timeout(server.status, SERVER_EXIT_TIMEOUT_MS, `${stack} server exit`)
      .catch(() => server.kill());
    return JSON.parse(out.trim().split("\n").at(-1)!);
  } finally {
    try {
      server.kill();
    } catch {
      // Exited already.
    }
    await server.status;
    await lines.cancel().catch(() => {});
    await serverErr.catch(() => {});
  }
}

interface Result {
  throughput?: { best: number; median: number };
  rtt?: { p50: number; p99: number; mean: number; min: number };
  fanout?: { best: number; median: number };
}

function sorted(values: number[]): number[] {
  return [...values].sort((a, b) => a - b);
}

function quantile(values: number[], q: number): number {
  const s = sorted(values);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

async function measure(stack: Stack): Promise<Result> {
  const result: Result = {};
  const t = await run(
    stack,
    "throughput",
    THROUGHPUT_COUNT,
    THROUGHPUT_ROUNDS,
    1,
  );
  const rates = sorted(t.times.map((s) => THROUGHPUT_COUNT / s));
  result.throughput = { best: rates.at(-1)!, median: quantile(rates, 0.5) };
  // The variant differs from midisock in the client's throughput sends only.
  if (stack === "midisock-nowait") return result;
  const r = await run(stack, "rtt", RTT_COUNT, RTT_WARMUP, 1);
  const us = r.samples.map((s) => s * 1e6);
  result.rtt = {
    p50: quantile(us, 0.5),
    p99: quantile(us, 0.99),
    mean: us.reduce((a, b) => a + b, 0) / us.length,
    min: sorted(us)[0],
  };
  const f = await run(
    stack,
    "fanout",
    FANOUT_COUNT,
    FANOUT_ROUNDS,
    FANOUT_CLIENTS,
  );
  const ms = sorted(f.times.map((s) => s * 1e3));
  result.fanout = { best: ms[0], median: quantile(ms, 0.5) };
  return result;
}

function fmt(value: number | undefined, digits = 0): string {
  if (value === undefined) return "-";
  return value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

const { values: flags } = parseArgs({
  args: Deno.args,
  options: { stacks: { type: "string", default: STACKS.join(",") } },
});
const chosen = flags.stacks.split(",").map((s) => s.trim()) as Stack[];
for (const stack of chosen) {
  if (!STACKS.includes(stack)) {
    console.error(
      `Unknown stack ${stack}: expected some of ${STACKS.join(",")}`,
    );
    Deno.exit(2);
  }
}

console.log(
  `Loopback 127.0.0.1, separate server and client processes per stack. ` +
    `Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} CPUs.`,
);
console.log(
  `throughput: ${THROUGHPUT_COUNT} note_on, ${THROUGHPUT_ROUNDS} rounds; ` +
    `rtt: ${RTT_COUNT} round trips after ${RTT_WARMUP} warm-up; ` +
    `fan-out: ${FANOUT_COUNT} messages to ${FANOUT_CLIENTS} clients, ` +
    `${FANOUT_ROUNDS} rounds.\n`,
);

const results = new Map<Stack, Result>();
for (const stack of chosen) {
  const started = performance.now();
  try {
    results.set(stack, await measure(stack));
    console.log(
      `  ${LABELS[stack]}: done in ${
        ((performance.now() - started) / 1000).toFixed(1)
      } s`,
    );
  } catch (error) {
    console.log(`  ${LABELS[stack]}: FAILED: ${(error as Error).message}`);
  }
}

const header = [
  "".padEnd(31),
  "msg/s best".padStart(12),
  "(median)".padStart(11),
  "RTT p50".padStart(9),
  "p99".padStart(8),
  "mean".padStart(8),
  "min".padStart(7),
  "fan-out".padStart(9),
  "(median)".padStart(9),
  "deliv/s".padStart(11),
].join("");
console.log(`\n${header}`);
console.log(
  `${"".padEnd(31)}${"".padStart(23)}${"µs".padStart(9)}${"µs".padStart(8)}${
    "µs".padStart(8)
  }${"µs".padStart(7)}${"ms best".padStart(9)}${"ms".padStart(9)}${
    "best".padStart(11)
  }`,
);
for (const [stack, r] of results) {
  console.log(
    [
      LABELS[stack].padEnd(31),
      fmt(r.throughput?.best).padStart(12),
      fmt(r.throughput?.median).padStart(11),
      fmt(r.rtt?.p50).padStart(9),
      fmt(r.rtt?.p99).padStart(8),
      fmt(r.rtt?.mean).padStart(8),
      fmt(r.rtt?.min).padStart(7),
      fmt(r.fanout?.best, 1).padStart(9),
      fmt(r.fanout?.median, 1).padStart(9),
      fmt(
        r.fanout && FANOUT_CLIENTS * FANOUT_COUNT / r.fanout.best * 1000,
      ).padStart(11),
    ].join(""),
  );
}

const ms = results.get("midisock");
const mido = results.get("mido");
const raw = results.get("denoraw");
console.log();
function ratio(
  what: string,
  value: number | undefined,
  target: number | undefined,
  better: "higher" | "lower" = "higher",
): void {
  if (value === undefined || !Number.isFinite(value)) return;
  let verdict = "";
  if (target !== undefined) {
    const met = better === "higher" ? value >= target : value <= target;
    verdict = `  (target ${better === "higher" ? ">=" : "<="} ${target}x: ${
      met ? "met" : "MISSED"
    })`;
  }
  console.log(`${what.padEnd(52)}${value.toFixed(2).padStart(8)}x${verdict}`);
}
if (ms && raw) {
  ratio("RTT p50, midisock / Deno raw", ms.rtt!.p50 / raw.rtt!.p50, 2, "lower");
}
if (ms && mido) {
  ratio(
    "RTT p50, mido / midisock (how much lower)",
    mido.rtt!.p50 / ms.rtt!.p50,
    10,
  );
  ratio(
    "throughput, midisock / mido",
    ms.throughput!.best / mido.throughput!.best,
    20,
  );
  const nowait = results.get("midisock-nowait");
  if (nowait) {
    ratio(
      "throughput, midisock sends not awaited / mido",
      nowait.throughput!.best / mido.throughput!.best,
      20,
    );
  }
  ratio(
    "fan-out time, mido / midisock",
    mido.fanout!.best / ms.fanout!.best,
    undefined,
  );
}
if (ms && raw) {
  ratio(
    "throughput, midisock / Deno raw",
    ms.throughput!.best / raw.throughput!.best,
    undefined,
  );
  ratio(
    "fan-out time, midisock / Deno raw",
    ms.fanout!.best / raw.fanout!.best,
    undefined,
  );
}
