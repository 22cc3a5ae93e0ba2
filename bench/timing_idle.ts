// What a playout delay costs a hub with no traffic: serve with `--latency
// 40` (and `auto`) beside serve without one, each with the same idle
// clients (5 plain TCP clients and one timed `connect --latency` client,
// whose clock pings are the only traffic), CPU time read from /proc over the
// same seconds, both hubs running at once so that the machine's load falls
// on both alike.
//
// Run: deno run -A bench/timing_idle.ts [SECONDS]

const SECONDS = Number(Deno.args[0] ?? 20);
const ROOT = new URL("../", import.meta.url).pathname;
const TICKS = 100; // clock ticks a second (getconf CLK_TCK)

interface Running {
  label: string;
  child: Deno.ChildProcess;
  port: number;
  clients: Deno.TcpConn[];
  monitor: Deno.ChildProcess | undefined;
}

/** CPU seconds a process used so far (user + system), from /proc. */
function cpu(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

async function start(label: string, args: string[]): Promise<Running> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", "src/cli/serve.ts", "127.0.0.1:0", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/listening on 127\.0\.0\.1:(\d+)/.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${label}: serve ended: ${text}`);
    text += value;
  }
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  const port = Number(text.match(/listening on 127\.0\.0\.1:(\d+)/)![1]);
  const clients = [];
  for (let i = 0; i < 5; i++) {
    clients.push(await Deno.connect({ hostname: "127.0.0.1", port }));
  }
  const monitor = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      "src/cli/connect.ts",
      `127.0.0.1:${port}`,
      "--latency",
      "40",
    ],
    cwd: ROOT,
    stdout: "null",
    stderr: "null",
  }).spawn();
  return { label, child, port, clients, monitor };
}

const hubs = [
  await start("no delay", []),
  await start("--latency 40", ["--latency", "40"]),
  await start("--latency auto", ["--latency", "auto"]),
];
// Let start-up and the clients' first clock pings settle.
await new Promise((resolve) => setTimeout(resolve, 3000));
const before = hubs.map((hub) => cpu(hub.child.pid));
await new Promise((resolve) => setTimeout(resolve, SECONDS * 1000));
const used = hubs.map((hub, i) => cpu(hub.child.pid) - before[i]);
for (const hub of hubs) {
  for (const client of hub.clients) client.close();
  hub.monitor?.kill("SIGTERM");
  await hub.monitor?.status;
  hub.child.kill("SIGTERM");
  await hub.child.status;
}
console.log(
  `\nidle hubs for ${SECONDS} s (5 plain clients and one timed client each)`,
);
for (const [i, hub] of hubs.entries()) {
  console.log(
    `${hub.label.padEnd(16)} ${used[i].toFixed(3)} CPU-s ` +
      `(${(used[i] / used[0]).toFixed(2)}x no delay)`,
  );
}
