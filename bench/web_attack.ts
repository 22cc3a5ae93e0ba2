/**
 * The web port under attack, measured: `serve --web` in a process of its
 * own, its memory and descriptors read from /proc. On loopback only.
 *
 *     deno run -A bench/web_attack.ts [--root DIR] [--only NAME]
 *
 * - `readers`: 200 WebSockets that never read while a TCP client sends
 *   1 KiB sysex as fast as the hub takes it, for 6 s; then the same with
 *   200 TCP clients that never read. Peak RSS of serve above its start.
 * - `hogs`: 24 sockets, each again 100 ms after it is closed, that send
 *   frames announcing 64 MiB, endless 100-byte fragments, a wrong token and
 *   then 64 MiB, or endless pings, before the token, for 6 s. Peak RSS above
 *   the start.
 * - `resets`: 20,000 clients that send a WebSocket request and reset
 *   before the answer (tests/_web_attack.py). Whether serve is still
 *   there, its descriptors before and after, and a page served after.
 *
 * `--root DIR` runs the serve of another checkout (to compare with an
 * older version). Figures go to stdout, one line each.
 */
import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    root: { type: "string" },
    only: { type: "string" },
  },
});
const root = values.root === undefined
  ? new URL("../", import.meta.url).pathname
  : values.root;
const ATTACK = new URL("../tests/_web_attack.py", import.meta.url).pathname;
const TOKEN = "a-token-of-twenty-chars";
const encoder = new TextEncoder();

/** serve, its pid, and the ports it said. */
async function serve(args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--quiet",
      "--allow-net=127.0.0.1",
      "src/cli/serve.ts",
      ...args,
    ],
    cwd: root,
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!/web page on http:\/\/127\.0\.0\.1:\d+\//.test(text)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`serve ended: ${text}`);
    text += value;
  }
  // Keep reading, so serve never blocks on a full pipe.
  (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })().catch(() => {});
  const tcp = Number(text.match(/listening on 127\.0\.0\.1:(\d+)/)![1]);
  const web = Number(text.match(/web page on http:\/\/127\.0\.0\.1:(\d+)/)![1]);
  let ended = false;
  child.status.then(() => ended = true);
  return {
    tcp,
    web,
    pid: child.pid,
    get ended() {
      return ended;
    },
    async stop() {
      try {
        child.kill("SIGKILL");
      } catch {
        // Ended already.
      }
      await child.status;
    },
  };
}

function memory(pid: number): { rss: number; peak: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const mib = (name: string) =>
    Number(status.match(new RegExp(`${name}:\\s+(\\d+) kB`))![1]) / 1024;
  return { rss: mib("VmRSS"), peak: mib("VmHWM") };
}

function descriptors(pid: number): number {
  return [...Deno.readDirSync(`/proc/${pid}/fd`)].length;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) {
    at += await conn.write(bytes.subarray(at));
  }
}

function upgrade(port: number): Uint8Array {
  return encoder.encode(
    `GET /midi HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
      "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
      "Sec-WebSocket-Version: 13\r\n\r\n",
  );
}

/** A masked frame header (mask key 0). */
function header(opcode: number, length: number, fin = true): Uint8Array {
  const head = [(fin ? 0x80 : 0) | opcode];
  if (length < 126) head.push(0x80 | length);
  else if (length < 65536) head.push(0x80 | 126, length >> 8, length & 255);
  else {
    head.push(0x80 | 127, 0, 0, 0, 0);
    head.push(length >>> 24, (length >> 16) & 255, (length >> 8) & 255);
    head.push(length & 255);
  }
  head.push(0, 0, 0, 0);
  return new Uint8Array(head);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Peak RSS of serve while 200 readers that never read are sent to. */
async function readers(kind: "web" | "tcp"): Promise<string> {
  const server = await serve(["127.0.0.1:0", "--web", "127.0.0.1:0"]);
  await sleep(500);
  const start = memory(server.pid).rss;
  const conns: Deno.Conn[] = [];
  for (let i = 0; i < 200; i++) {
    const port = kind === "web" ? server.web : server.tcp;
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    if (kind === "web") await writeAll(conn, upgrade(port));
    conns.push(conn);
  }
  await sleep(500);
  const sender = await Deno.connect({
    hostname: "127.0.0.1",
    port: server.tcp,
  });
  const sysex = new Uint8Array(1026).fill(0x11);
  sysex[0] = 0xf0;
  sysex[1025] = 0xf7;
  const burst = new Uint8Array(sysex.length * 64);
  for (let i = 0; i < 64; i++) burst.set(sysex, i * sysex.length);
  let sent = 0;
  const until = performance.now() + 6000;
  while (performance.now() < until) {
    await writeAll(sender, burst);
    sent += burst.length;
  }
  await sleep(500);
  const { peak } = memory(server.pid);
  for (const conn of [...conns, sender]) {
    try {
      conn.close();
    } catch {
      // Closed by serve.
    }
  }
  await server.stop();
  return `200 ${kind} clients that never read, ${
    (sent / 2 ** 20).toFixed(0)
  } MiB sent in 6 s: peak +${(peak - start).toFixed(0)} MiB`;
}

type Hog = "huge" | "fragments" | "wrong-token" | "pings";

async function hog(port: number, kind: Hog, stop: () => boolean) {
  const data = new Uint8Array(64 * 1024).fill(0x61);
  const fragments = new Uint8Array(106 * 600);
  for (let at = 0; at < fragments.length; at += 106) {
    fragments.set(header(0, 100, false), at);
  }
  const pings = new Uint8Array(6 * 10_000);
  for (let at = 0; at < pings.length; at += 6) pings.set(header(9, 0), at);
  while (!stop()) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      try {
        await writeAll(conn, upgrade(port));
        if (kind === "wrong-token") {
          const token = encoder.encode('{"type":"token","token":"x"}');
          await writeAll(conn, header(1, token.length));
          await writeAll(conn, token);
        }
        if (kind === "huge" || kind === "wrong-token") {
          await writeAll(conn, header(2, 64 << 20));
        } else if (kind === "fragments") {
          await writeAll(conn, header(1, 0, false));
        }
        const stream = kind === "pings"
          ? pings
          : kind === "fragments"
          ? fragments
          : data;
        while (!stop()) await writeAll(conn, stream);
      } catch {
        // Closed by serve.
      } finally {
        try {
          conn.close();
        } catch {
          // Closed already.
        }
      }
    } catch {
      // Refused: try again.
    }
    await sleep(100);
  }
}

async function hogs(): Promise<string> {
  const server = await serve([
    "127.0.0.1:0",
    "--web",
    "127.0.0.1:0",
    "--token",
    TOKEN,
    "--handshake-timeout",
    "2",
  ]);
  await sleep(500);
  const start = memory(server.pid).rss;
  let stopped = false;
  const kinds: Hog[] = ["huge", "fragments", "wrong-token", "pings"];
  const running = Array.from(
    { length: 24 },
    (_, i) => hog(server.web, kinds[i % 4], () => stopped),
  );
  await sleep(6000);
  stopped = true;
  await Promise.all(running);
  const { peak } = memory(server.pid);
  const alive = !server.ended;
  await server.stop();
  return `24 sockets sending 64 MiB frames, endless fragments or pings ` +
    `before the token, 6 s: peak +${(peak - start).toFixed(0)} MiB, ` +
    `serve ${alive ? "running" : "ENDED"}`;
}

async function resets(): Promise<string> {
  const server = await serve(["127.0.0.1:0", "--web", "127.0.0.1:0"]);
  await sleep(500);
  const before = descriptors(server.pid);
  const { success } = await new Deno.Command("python3", {
    args: [ATTACK, "resets", String(server.web), "20000"],
    stdout: "null",
  }).output();
  const done = performance.now();
  let after = descriptors(server.pid);
  while (after > before && performance.now() - done < 10_000) {
    await sleep(100);
    after = server.ended ? -1 : descriptors(server.pid);
  }
  let served = false;
  try {
    const page = await fetch(`http://127.0.0.1:${server.web}/`);
    served = page.status === 200;
    await page.body?.cancel();
  } catch {
    served = false;
  }
  const alive = !server.ended;
  await server.stop();
  return `20,000 resets before the 101${
    success ? "" : " (attacker failed)"
  }: ` +
    `serve ${alive ? "running" : "ENDED"}, descriptors ${before} before, ` +
    `${after} after, page ${served ? "served" : "NOT served"}`;
}

const runs: Record<string, () => Promise<string>> = {
  readers: async () => `${await readers("web")}\n${await readers("tcp")}`,
  hogs,
  resets,
};
for (const [name, run] of Object.entries(runs)) {
  if (values.only !== undefined && values.only !== name) continue;
  console.log(await run());
}
