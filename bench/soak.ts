/**
 * Soak test of a live PortServer, on loopback only, for a bounded time.
 *
 *     deno run -A bench/soak.ts [--seconds 30] [--churners 300] [--good 10]
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
 * the baseline). Exit code 1 if a check fails.
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    seconds: { type: "string", default: "30" },
    churners: { type: "string", default: "300" },
    good: { type: "string", default: "10" },
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

// The server, in its own process, so its memory is its own.
const server = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "--quiet",
    "--allow-net=127.0.0.1",
    "--v8-flags=--expose-gc",
    "bench/_soak_server.ts",
    values.good!,
  ],
  cwd: root,
  stdin: "piped",
  stdout: "piped",
  stderr: "inherit",
}).spawn();
const serverOut = server.stdout.pipeThrough(new TextDecoderStream())
  .getReader();
let text = "";
while (!/READY (\d+)\n/.test(text)) {
  const { value, done } = await serverOut.read();
  if (done) throw new Error("the soak server ended before it listened");
  text += value;
}
const port = Number(text.match(/READY (\d+)/)![1]);
const serverRest = (async () => {
  let rest = text.replace(/^[^]*READY \d+\n/, "");
  for (;;) {
    const { value, done } = await serverOut.read();
    if (done) return rest;
    rest += value;
  }
})();

await sleep(500);
const rssBefore = rssMiB(server.pid);
const fdsBefore = fds(server.pid);
let rssPeak = rssBefore;
let fdsPeak = fdsBefore;

const args = [String(port), values.seconds!];
const good = deno(["bench/_soak_good.ts", ...args, values.good!]);
const churn = deno(["bench/_soak_churn.ts", ...args, values.churners!]);
const done = Promise.all([
  report<{
    clients: string[];
    sent: number[];
    heard: number;
    lost: number;
    closed: number;
    why: string;
  }>(good),
  report<Record<string, number>>(churn),
]);
let finished = false;
done.finally(() => finished = true);
while (!finished) {
  rssPeak = Math.max(rssPeak, rssMiB(server.pid));
  fdsPeak = Math.max(fdsPeak, fds(server.pid));
  await sleep(250);
}
const [goodResult, churnResult] = await done;
// Let the server settle, then look again.
for (let i = 0; i < 20 && fds(server.pid) > fdsBefore; i++) await sleep(250);
await sleep(2000);
const rssAfter = rssMiB(server.pid);
const fdsAfter = fds(server.pid);
await server.stdin.close();
const serverResult = JSON.parse(
  (await serverRest).trim().split("\n").at(-1)!,
) as {
  heapMiB: number;
  externalMiB: number;
  received: number[];
  lost: number;
  broadcast: number;
  other: number;
  dropped: string[];
  reasons: Record<string, string>;
};
await server.status;

const goodDropped = serverResult.dropped.filter((name) =>
  goodResult.clients.includes(name)
);
const sent = goodResult.sent.reduce((a, b) => a + b, 0);
const missing = goodResult.sent.reduce(
  (n, s, c) => n + s - serverResult.received[c],
  0,
);
const ok = serverResult.lost === 0 && missing === 0 &&
  goodResult.lost === 0 && goodResult.closed === 0 &&
  goodDropped.length === 0 && fdsAfter <= fdsBefore && rssPeak < 300 &&
  rssAfter - rssBefore < 50;

console.log(
  `soak of a PortServer: ${values.seconds} s, ${values.good} good clients, ${values.churners} churners
  churner connections: ${JSON.stringify(churnResult)}
  good clients sent ${sent} messages; lost on the way: ${serverResult.lost}, missing at the end: ${missing}
  server broadcast ${serverResult.broadcast}; good clients heard ${goodResult.heard}, lost ${goodResult.lost}
  clients dropped by the server: ${serverResult.dropped.length} (good ones: ${goodDropped.length}); good connections closed: ${goodResult.closed}${
    goodResult.why ? ` (${goodResult.why})` : ""
  }
  other messages the server read (from churners): ${serverResult.other}
  server RSS: ${rssBefore.toFixed(0)} MiB before, ${
    rssPeak.toFixed(0)
  } MiB peak (goal < 300), ${
    rssAfter.toFixed(0)
  } MiB after (goal within 50 of before)
  server's JavaScript heap after a full collection: ${
    serverResult.heapMiB.toFixed(1)
  } MiB, buffers ${serverResult.externalMiB.toFixed(1)} MiB
  server descriptors: ${fdsBefore} before, ${fdsPeak} peak, ${fdsAfter} after
  ${ok ? "OK" : "FAILED"}`,
);
for (const name of goodDropped.slice(0, 3)) {
  console.log(`  ${name} dropped: ${serverResult.reasons[name]}`);
}
if (!ok) Deno.exit(1);
