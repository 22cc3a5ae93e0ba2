/**
 * Soak test of a live PortServer, on loopback only, for a bounded time.
 *
 *     deno run -A bench/soak.ts [--seconds 30] [--churners 300] [--good 10]
 *                               [--hogs 0]
 *
 * The server (bench/_soak_server.ts: a PortServer used as a port, reading
 * every client and broadcasting numbered messages to all), the well-behaved
 * clients (bench/_soak_good.ts: they send numbered messages and check the
 * broadcast) and hundreds of misbehaving ones (bench/_soak_churn.ts: they
 * come and go at random, send valid traffic, vanish mid-message, send giant
 * sysex, spray garbage, or connect and never read) each run in their own
 * process. This script samples the server's resident memory and open
 * descriptors from /proc.
 *
 * It reports what was lost between the server and the good clients (must be
 * 0), whether a good client was dropped (must not be), the server's RSS
 * before, at its peak and after the churn (goals: peak under 300 MiB, after
 * within 50 MiB of before), and its descriptors before and after (back to
 * the baseline).
 *
 * First, the same churners run against bare Deno sockets (bench/_soak_bare.ts:
 * accept, read into a 64 KiB buffer, throw away). What that server keeps
 * resident after the churn is the runtime's own (its allocator does not hand
 * freed memory back), and V8 keeps its heap committed (the young generation
 * stays at the size the churn grew it to); the check is that midisock keeps
 * less than 50 MiB beyond both. Exit code 1 if a check fails.
 *
 * `--hogs N` runs N busy loops beside both servers: a machine overloaded,
 * where the server cannot keep up with its input. Connections then pile up
 * by the thousand, and what bounds memory is the hub's budget for all
 * endpoints together (`maxQueuedTotal`). The good clients, starved too, may
 * be dropped there: the checks are then that nothing delivered was lost or
 * reordered and that descriptors return, and the figures are reported.
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "30" },
    churners: { type: "string", default: "300" },
    good: { type: "string", default: "10" },
    hogs: { type: "string", default: "0" },
  },
});
const root = new URL("../", import.meta.url);

function deno(args: string[], stdin: "piped" | "null" = "null") {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--allow-net=127.0.0.1", ...args],
    cwd: root,
    stdin,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
}

function rssMiB(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(status.match(/VmRSS:\s+(\d+)/)?.[1] ?? 0) / 1024;
}

function fds(pid: number): number {
  return [...Deno.readDirSync(`/proc/${pid}/fd`)].length;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A child's whole output, its last line parsed as JSON. */
async function report<T>(child: Deno.ChildProcess): Promise<T> {
  const out = (await new Response(child.stdout).text()).trim();
  return JSON.parse(out.split("\n").at(-1)!) as T;
}

interface Server {
  pid: number;
  port: number;
  /** Closes the server's stdin and resolves to its last line of output. */
  stop(): Promise<string>;
}

/** A server script in its own process, so its memory is its own. */
async function startServer(script: string, args: string[]): Promise<Server> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--allow-net=127.0.0.1",
      "--v8-flags=--expose-gc",
      script,
      ...args,
    ],
    cwd: root,
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const out = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/READY (\d+)\n/.test(text)) {
    const { value, done } = await out.read();
    if (done) throw new Error(`${script} ended before it listened`);
    text += value;
  }
  const rest = (async () => {
    let rest = text.replace(/^[^]*READY \d+\n/, "");
    for (;;) {
      const { value, done } = await out.read();
      if (done) return rest;
      rest += value;
    }
  })();
  return {
    pid: child.pid,
    port: Number(text.match(/READY (\d+)/)![1]),
    async stop() {
      await child.stdin.close();
      await child.status;
      return (await rest).trim().split("\n").at(-1)!;
    },
  };
}

interface Watch {
  rssBefore: number;
  rssPeak: number;
  rssAfter: number;
  fdsBefore: number;
  fdsPeak: number;
  fdsAfter: number;
}

/** Busy loops, one process each, until the returned function is called. */
function hog(count: number): () => Promise<void> {
  const hogs = Array.from(
    { length: count },
    () =>
      new Deno.Command(Deno.execPath(), {
        args: ["eval", "for (;;);"],
        stdout: "null",
        stderr: "null",
      }).spawn(),
  );
  return async () => {
    for (const child of hogs) child.kill("SIGKILL");
    await Promise.all(hogs.map((child) => child.status));
  };
}

/** Samples a server's RSS and descriptors before, while `load` runs, after. */
async function watch<T>(
  server: Server,
  load: () => Promise<T>,
): Promise<[T, Watch]> {
  await sleep(500);
  const w: Watch = {
    rssBefore: rssMiB(server.pid),
    rssPeak: 0,
    rssAfter: 0,
    fdsBefore: fds(server.pid),
    fdsPeak: 0,
    fdsAfter: 0,
  };
  w.rssPeak = w.rssBefore;
  w.fdsPeak = w.fdsBefore;
  let finished = false;
  const stopHogs = hog(Number(values.hogs));
  const done = load().finally(() => finished = true);
  while (!finished) {
    w.rssPeak = Math.max(w.rssPeak, rssMiB(server.pid));
    w.fdsPeak = Math.max(w.fdsPeak, fds(server.pid));
    await sleep(250);
  }
  const result = await done;
  await stopHogs();
  // Let the server settle, then look again.
  for (let i = 0; i < 20 && fds(server.pid) > w.fdsBefore; i++) {
    await sleep(250);
  }
  await sleep(2000);
  w.rssAfter = rssMiB(server.pid);
  w.fdsAfter = fds(server.pid);
  return [result, w];
}

const churnArgs = (port: number) => [
  "bench/_soak_churn.ts",
  String(port),
  values.seconds!,
  values.churners!,
];

// First the baseline: bare Deno sockets under the same churn.
const bareServer = await startServer("bench/_soak_bare.ts", []);
const [, bare] = await watch(
  bareServer,
  () => report<Record<string, number>>(deno(churnArgs(bareServer.port))),
);
await bareServer.stop();

// Then midisock.
const server = await startServer("bench/_soak_server.ts", [values.good!]);
const [[goodResult, churnResult], w] = await watch(server, () =>
  Promise.all([
    report<{
      clients: string[];
      sent: number[];
      heard: number;
      lost: number;
      closed: number;
      why: string;
      stalledMs: number;
    }>(
      deno([
        "bench/_soak_good.ts",
        String(server.port),
        values.seconds!,
        values.good!,
      ]),
    ),
    report<Record<string, number>>(deno(churnArgs(server.port))),
  ]));
const { rssBefore, rssPeak, rssAfter, fdsBefore, fdsPeak, fdsAfter } = w;
const serverResult = JSON.parse(await server.stop()) as {
  stalledMs: number;
  heapMiB: number;
  heapTotalMiB: number;
  newSpaceMiB: number;
  externalMiB: number;
  received: number[];
  lost: number;
  broadcast: number;
  other: number;
  dropped: string[];
  reasons: Record<string, string>;
};

const goodDropped = serverResult.dropped.filter((name) =>
  goodResult.clients.includes(name)
);
const sent = goodResult.sent.reduce((a, b) => a + b, 0);
const missing = goodResult.sent.reduce(
  (n, s, c) => n + s - serverResult.received[c],
  0,
);
// What stays resident after the churn, for midisock and for bare sockets.
const kept = rssAfter - rssBefore;
const bareKept = bare.rssAfter - bare.rssBefore;
// Beyond what bare sockets keep, V8 keeps its heap committed (its young
// generation stays at the size the churn grew it to, whatever is live):
// what is left beyond both is midisock's own.
const beyond = kept - bareKept - serverResult.heapTotalMiB;
const overloaded = Number(values.hogs) > 0;
const ok = serverResult.lost === 0 && goodResult.lost === 0 &&
  fdsAfter <= fdsBefore &&
  (overloaded || (missing === 0 && goodResult.closed === 0 &&
    goodDropped.length === 0 && rssPeak < 300 && beyond < 50));

console.log(
  `soak of a PortServer: ${values.seconds} s, ${values.good} good clients, ${values.churners} churners${
    overloaded ? `, ${values.hogs} busy loops beside (overloaded)` : ""
  }
  churner connections: ${JSON.stringify(churnResult)}
  good clients sent ${sent} messages; lost on the way: ${serverResult.lost}, missing at the end: ${missing}
  server broadcast ${serverResult.broadcast}; good clients heard ${goodResult.heard}, lost ${goodResult.lost}
  clients dropped by the server: ${serverResult.dropped.length} (good ones: ${goodDropped.length}); good connections closed: ${goodResult.closed}${
    goodResult.why ? ` (${goodResult.why})` : ""
  }
  other messages the server read (from churners): ${serverResult.other}
  longest event-loop stall: server ${serverResult.stalledMs} ms, good clients' process ${goodResult.stalledMs} ms
  server RSS: ${rssBefore.toFixed(0)} MiB before, ${
    rssPeak.toFixed(0)
  } MiB peak (goal < 300), ${rssAfter.toFixed(0)} MiB after: keeps ${
    kept.toFixed(0)
  } MiB (goal < 50: ${kept < 50 ? "met" : "not met"})
  bare Deno sockets under the same churn: ${
    bare.rssBefore.toFixed(0)
  } MiB before, ${bare.rssPeak.toFixed(0)} MiB peak, ${
    bare.rssAfter.toFixed(0)
  } MiB after: keeps ${bareKept.toFixed(0)} MiB; midisock keeps ${
    (kept - bareKept).toFixed(0)
  } MiB more, ${serverResult.heapTotalMiB.toFixed(0)} MiB of it V8's heap: ${
    beyond.toFixed(0)
  } MiB beyond both (goal < 50)
  server's JavaScript heap after a full collection: ${
    serverResult.heapMiB.toFixed(1)
  } MiB live of ${
    serverResult.heapTotalMiB.toFixed(0)
  } MiB V8 keeps (its young generation, grown under the churn: ${
    serverResult.newSpaceMiB.toFixed(0)
  } MiB), buffers ${serverResult.externalMiB.toFixed(1)} MiB
  server descriptors: ${fdsBefore} before, ${fdsPeak} peak, ${fdsAfter} after
  ${ok ? "OK" : "FAILED"}`,
);
for (const name of goodDropped.slice(0, 3)) {
  console.log(`  ${name} dropped: ${serverResult.reasons[name]}`);
}
if (!ok) Deno.exit(1);
