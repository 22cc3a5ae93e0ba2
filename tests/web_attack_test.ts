// The web port under attack, bounded and on loopback: huge and endless
// frames before the token, clients that reset before the 101, idle and
// trickling connections by the thousand, the descriptor limit, stalled
// WebSocket handshakes, and refusals keyed by what the attacker sends.
// serve runs in a process of its own where memory, descriptors and its
// survival are measured; attacks that need a reset or a chosen source
// address come from tests/_web_attack.py.

import assert from "node:assert/strict";
import { connect, Hub, type HubEvent, PortServer, WebServer } from "../mod.ts";
import { MAX_DETAIL_LENGTH } from "../src/hub/mod.ts";
import { boundedTest, LOOPBACK, until, within } from "./_net.ts";
import { openRaw, type RawWebSocket } from "./_ws.ts";

const TOKEN = "a-token-of-twenty-chars";
const ROOT = new URL("../", import.meta.url);
const ATTACK = new URL("./_web_attack.py", import.meta.url).pathname;
const decoder = new TextDecoder();

function attackTest(name: string, fn: () => Promise<void>): void {
  boundedTest(name, fn, {
    permissions: { ...LOOPBACK, run: true },
    ms: 90_000,
  });
}

/** serve in a process of its own, with at most `files` descriptors. */
class Serve implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly lines: string[] = [];
  stderr = "";
  bytes = 0;
  readonly #reading: Promise<void>;
  exited = false;

  constructor(args: string[], files = 4096) {
    const child = new Deno.Command("sh", {
      args: [
        "-c",
        `ulimit -n ${files} && exec "$0" run --quiet ` +
        `--allow-net=127.0.0.1 src/cli/serve.ts "$@"`,
        Deno.execPath(),
        ...args,
      ],
      cwd: ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.child = child;
    child.status.then(() => this.exited = true);
    this.#reading = Promise.all([
      (async () => {
        let rest = "";
        for await (const chunk of child.stdout) {
          this.bytes += chunk.length;
          rest += decoder.decode(chunk, { stream: true });
          const parts = rest.split("\n");
          rest = parts.pop()!;
          this.lines.push(...parts);
        }
      })(),
      (async () => {
        for await (const chunk of child.stderr) {
          this.stderr += decoder.decode(chunk, { stream: true });
        }
      })(),
    ]).then(() => {});
  }

  /** The TCP port and the page's port, once serve says them. */
  async ready(): Promise<{ tcp: number; web: number }> {
    await until(
      () => this.lines.some((l) => l.startsWith("web page on ")) || this.exited,
      20_000,
      "serve starting",
    );
    assert.ok(!this.exited, this.stderr);
    const tcp = Number(this.lines[0].match(/:(\d+)$/)![1]);
    const web = Number(
      this.lines.find((l) => l.startsWith("web page on "))!.match(
        /:(\d+)\//,
      )![1],
    );
    return { tcp, web };
  }

  /** Reads a file of /proc about serve (through cat: Deno needs -A). */
  async #proc(what: string): Promise<string> {
    const { stdout } = await new Deno.Command("sh", {
      args: ["-c", what.replaceAll("PID", String(this.child.pid))],
      stderr: "null",
    }).output();
    return decoder.decode(stdout);
  }

  /** Its resident memory now and at its peak, in bytes. */
  async memory(): Promise<{ rss: number; peak: number }> {
    const status = await this.#proc("cat /proc/PID/status");
    const kib = (name: string) =>
      Number(status.match(new RegExp(`${name}:\\s+(\\d+) kB`))![1]) * 1024;
    return { rss: kib("VmRSS"), peak: kib("VmHWM") };
  }

  /** Its open descriptors. */
  async descriptors(): Promise<number> {
    return Number(await this.#proc("ls /proc/PID/fd | wc -l"));
  }

  /** CPU seconds it used so far. */
  async cpu(): Promise<number> {
    const fields = (await this.#proc("cat /proc/PID/stat")).split(") ")[1]
      .split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.child.kill("SIGKILL");
    } catch {
      // Ended already.
    }
    await this.child.status;
    await this.#reading;
  }
}

/** tests/_web_attack.py, running until disposed. */
class Attacker implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  output = "";
  readonly #reading: Promise<void>;

  constructor(args: string[]) {
    const child = new Deno.Command("python3", {
      args: [ATTACK, ...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.child = child;
    this.#reading = (async () => {
      for await (const chunk of child.stdout) {
        this.output += decoder.decode(chunk);
      }
    })();
  }

  async said(word: string, ms = 30_000): Promise<void> {
    await until(() => this.output.includes(word), ms, `the attacker's ${word}`);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.child.stdin.close().catch(() => {});
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 10_000);
    await this.child.status;
    clearTimeout(timer);
    await this.#reading;
  }
}

/** A raw WebSocket to the page's port, or why not. */
async function rawSocket(port: number): Promise<RawWebSocket> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const { status, socket } = await openRaw(conn, `127.0.0.1:${port}`);
  assert.equal(status, 101);
  return socket!;
}

/** Opens a page (sending the token when asked) and waits for its welcome. */
async function join(port: number, token?: string): Promise<RawWebSocket> {
  const socket = await rawSocket(port);
  for (;;) {
    const frame = await socket.next();
    if (frame === undefined) throw new Error("Closed before the welcome");
    if (frame.opcode === 8) {
      throw new Error(`Refused: ${decoder.decode(frame.payload.subarray(2))}`);
    }
    if (frame.opcode !== 1) continue;
    const { type } = JSON.parse(decoder.decode(frame.payload));
    if (type === "token") {
      await socket.send(JSON.stringify({ type: "token", token }));
    }
    if (type === "welcome") return socket;
  }
}

/** Whether a page is served and its WebSocket admitted, within `ms`. */
async function served(port: number, token?: string, ms = 10_000) {
  try {
    return await within(
      (async () => {
        // A new visitor: a connection of its own.
        using client = Deno.createHttpClient({});
        const page = await fetch(`http://127.0.0.1:${port}/`, { client });
        if (page.status !== 200) return false;
        await page.body?.cancel();
        (await join(port, token)).close();
        return true;
      })(),
      ms,
      "a good page",
    );
  } catch {
    return false;
  }
}

/** A masked frame header (mask key 0, so the payload goes as it is). */
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

type Hog = "huge" | "fragments" | "wrong-token" | "pings";

/**
 * One socket of the memory attack, again (100 ms after it is closed) until
 * `stop`, never reading: before the token (or right after a wrong one), a
 * frame that announces 64 MiB and sends it, a text message in 100-byte
 * fragments without end, or pings without end.
 */
async function hog(
  port: number,
  kind: Hog,
  stop: () => boolean,
): Promise<number> {
  const data = new Uint8Array(64 * 1024).fill(0x61);
  const fragments = new Uint8Array(106 * 600);
  for (let at = 0; at < fragments.length; at += 106) {
    fragments.set(header(0, 100, false), at);
    fragments.fill(0x61, at + 6, at + 106);
  }
  const pings = new Uint8Array(6 * 10_000);
  for (let at = 0; at < pings.length; at += 6) {
    pings.set(header(9, 0), at);
  }
  let rounds = 0;
  while (!stop()) {
    rounds++;
    let conn: Deno.TcpConn;
    try {
      conn = await Deno.connect({ hostname: "127.0.0.1", port });
    } catch {
      continue;
    }
    try {
      // The request, and at once what follows: nothing is read.
      await writeAll(conn, upgradeRequest(port));
      if (kind === "wrong-token") {
        const token = new TextEncoder().encode('{"type":"token","token":"x"}');
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
      // Closed by the server: open another, soon.
    } finally {
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return rounds;
}

/** Writes all of `bytes` (a write may take only part). */
async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) {
    at += await conn.write(bytes.subarray(at));
  }
}

function upgradeRequest(port: number): Uint8Array {
  return new TextEncoder().encode(
    `GET /midi HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` +
      "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
      "Sec-WebSocket-Version: 13\r\n\r\n",
  );
}

attackTest(
  "24 sockets sending huge or endless fragmented frames before the token: serve stays under +64 MiB",
  async () => {
    await using serve = new Serve([
      "127.0.0.1:0",
      "--web",
      "127.0.0.1:0",
      "--token",
      TOKEN,
      "--handshake-timeout",
      "2",
    ]);
    const { web } = await serve.ready();
    assert.ok(await served(web, TOKEN));
    const before = await serve.memory();
    let stopped = false;
    const kinds: Hog[] = ["huge", "fragments", "wrong-token", "pings"];
    const hogs = Array.from(
      { length: 24 },
      (_, i) => hog(web, kinds[i % 4], () => stopped),
    );
    // Four seconds of it: twice the handshake timeout.
    const started = Date.now();
    await until(() => Date.now() - started > 4000, 10_000, "the attack");
    stopped = true;
    const rounds = await Promise.all(hogs);
    const { peak } = await serve.memory();
    assert.ok(!serve.exited, serve.stderr);
    const grown = peak - before.rss;
    assert.ok(
      grown < 64 << 20,
      `serve grew by ${grown >> 20} MiB (rounds ${rounds.join(",")})`,
    );
    // Closed, not kept: every socket was closed by the server (the pings at
    // the deadline), and opened again.
    assert.ok(rounds.every((n) => n > 1), `rounds ${rounds.join(",")}`);
    // The page is still served, and the socket answers (this address sent
    // wrong tokens: it is told to wait).
    const page = await fetch(`http://127.0.0.1:${web}/`);
    assert.equal(page.status, 200);
    await page.body?.cancel();
    const socket = await rawSocket(web);
    const close = await socket.closeFrame();
    assert.match(close!.reason, /too many wrong tokens|token/);
    socket.close();
  },
);

attackTest(
  "400 clients that reset before the 101 leave no descriptor behind and lock nobody out",
  async () => {
    await using serve = new Serve([
      "127.0.0.1:0",
      "--web",
      "127.0.0.1:0",
      "--token",
      TOKEN,
      "--handshake-timeout",
      "1",
    ]);
    const { tcp, web } = await serve.ready();
    assert.ok(await served(web, TOKEN));
    const baseline = await serve.descriptors();
    await using resets = new Attacker(["resets", String(web), "400"]);
    await resets.said("done");
    const done = performance.now();
    // Within a second of the handshake timeout, descriptors are back.
    let now = Infinity;
    while (performance.now() - done < 2000) {
      now = await serve.descriptors();
      if (now <= baseline) break;
    }
    assert.ok(now <= baseline, `${now} descriptors, ${baseline} before`);
    // New clients of both kinds get in.
    const client = await within(
      connect("127.0.0.1", tcp, { token: TOKEN }),
      5000,
      "a TCP client",
    );
    await client.close();
    assert.ok(await served(web, TOKEN));
    assert.ok(!serve.exited);
  },
);

attackTest(
  "thousands of resets at the descriptor limit never make serve exit",
  async () => {
    // About 20,000 resets ran a descriptor table of 20,000 out; here the
    // table holds 256, and 2,000 resets do the same to a server that leaks.
    await using serve = new Serve(
      ["127.0.0.1:0", "--web", "127.0.0.1:0"],
      256,
    );
    const { web } = await serve.ready();
    await using resets = new Attacker(["resets", String(web), "2000"]);
    await resets.said("done", 60_000);
    assert.ok(await served(web));
    assert.ok(!serve.exited, serve.stderr);
  },
);

attackTest(
  "3000 idle and 2000 trickling connections keep no page out",
  async () => {
    // Fewer descriptors than the attack's connections: a server that holds
    // them runs out.
    await using serve = new Serve(
      ["127.0.0.1:0", "--web", "127.0.0.1:0", "--handshake-timeout", "5"],
      4096,
    );
    const { web } = await serve.ready();
    await using idle = new Attacker([
      "hold",
      String(web),
      "idle",
      "3000",
      "127.0.0.1",
    ]);
    await using trickle = new Attacker([
      "hold",
      String(web),
      "trickle",
      "2000",
      "127.0.0.1",
    ]);
    await idle.said("ready");
    await trickle.said("ready");
    // Good pages, one every 100 ms, from the attackers' own address.
    const attempts = await Promise.all(
      Array.from({ length: 40 }, async (_, i) => {
        await new Promise((r) => setTimeout(r, i * 100));
        return await served(web, undefined, 10_000);
      }),
    );
    const ok = attempts.filter(Boolean).length;
    assert.ok(ok >= 38, `${ok} of 40 pages served`);
    // The attackers' connections are not held.
    const held = await serve.descriptors();
    assert.ok(held < 1000, `${held} descriptors open`);
    assert.ok(!serve.exited, serve.stderr);
  },
);

attackTest(
  "at the descriptor limit the web port waits, says so once, and serves again",
  async () => {
    await using serve = new Serve(
      ["127.0.0.1:0", "--web", "127.0.0.1:0"],
      64,
    );
    const { web } = await serve.ready();
    // Pages, each a client the hub keeps (idle connections would be closed
    // to make room for newer ones long before the table runs out).
    let conns: Deno.TcpConn[] = [];
    for (let i = 0; i < 100; i++) {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: web });
      await writeAll(conn, upgradeRequest(web));
      conns.push(conn);
    }
    await until(
      () => /no file descriptors left/.test(serve.stderr),
      5000,
      "the warning",
    );
    const before = await serve.cpu();
    const start = Date.now();
    await until(() => Date.now() - start >= 2000, 5000, "two seconds");
    const used = await serve.cpu() - before;
    assert.ok(used < 0.2, `${used} CPU-seconds in 2 s at the limit`);
    for (const conn of conns) conn.close();
    conns = [];
    assert.ok(await served(web));
    assert.ok(!serve.exited, serve.stderr);
    assert.equal(serve.stderr.match(/no file descriptors left/g)?.length, 1);
  },
);

/** A hub with TCP and web, for the handshake attacks. */
async function tokenHub(
  fn: (ports: { tcp: number; web: number }, hub: Hub) => Promise<void>,
) {
  await using hub = new Hub({ token: TOKEN });
  const server = await hub.attach(new PortServer("127.0.0.1", 0));
  const web = await hub.attach(new WebServer({ port: 0 }));
  try {
    await fn({ tcp: server.port, web: web.port }, hub);
  } finally {
    await server.close();
  }
}

/** 40 good attempts, web and TCP in turn; how many got in. */
async function goodAttempts(ports: { tcp: number; web: number }) {
  let admitted = 0;
  for (let i = 0; i < 40; i++) {
    try {
      if (i % 2 === 0) {
        (await within(join(ports.web, TOKEN), 5000, "a page")).close();
      } else {
        const client = await within(
          connect("127.0.0.1", ports.tcp, { token: TOKEN }),
          5000,
          "a TCP client",
        );
        await client.close();
      }
      admitted++;
    } catch {
      // Refused.
    }
  }
  return admitted;
}

attackTest(
  "16 stalled web handshakes from one address refuse none of its good clients",
  async () => {
    await tokenHub(async (ports, hub) => {
      await using stall = new Attacker([
        "hold",
        String(ports.web),
        "stall",
        "16",
        "127.0.0.1",
      ]);
      await stall.said("ready");
      await until(() => hub.gate.pending === 16, 5000, "16 stalled");
      assert.equal(await goodAttempts(ports), 40);
      assert.ok(hub.gate.pending >= 15, `${hub.gate.pending} stalled`);
    });
  },
);

attackTest(
  "16 stalled web handshakes on each of 8 addresses refuse no good client",
  async () => {
    await tokenHub(async (ports, hub) => {
      await using stall = new Attacker([
        "hold",
        String(ports.web),
        "stall",
        "16",
        ...Array.from({ length: 8 }, (_, i) => `127.0.0.${i + 2}`),
      ]);
      await stall.said("ready");
      await until(() => hub.gate.pending === 128, 5000, "128 stalled");
      assert.equal(await goodAttempts(ports), 40);
      assert.ok(hub.gate.pending >= 127, `${hub.gate.pending} stalled`);
    });
  },
);

attackTest(
  "refusals keyed by a page's Origin make one line, with the origin cut and escaped",
  async () => {
    await using serve = new Serve(["127.0.0.1:0", "--web", "127.0.0.1:0"]);
    const { web } = await serve.ready();
    const before = serve.lines.length;
    // 3000 WebSocket requests from foreign pages, 100 on each connection
    // (as many as one is answered).
    await Promise.all(Array.from({ length: 30 }, async (_, c) => {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: web });
      let requests = "";
      for (let i = 0; i < 100; i++) {
        requests += `GET /midi HTTP/1.1\r\nHost: 127.0.0.1:${web}\r\n` +
          "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
          "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
          "Sec-WebSocket-Version: 13\r\n" +
          `Origin: http://evil-${c}-${i}.example/${
            "x".repeat(300)
          }\t\xff\r\n\r\n`;
      }
      const bytes = Uint8Array.from(requests, (ch) => ch.charCodeAt(0));
      const writing = (async () => {
        for (let at = 0; at < bytes.length;) {
          at += await conn.write(bytes.subarray(at, at + 65536));
        }
      })();
      const buffer = new Uint8Array(65536);
      let answers = 0;
      let text = "";
      while (answers < 100) {
        const n = await conn.read(buffer);
        if (n === null) break;
        text += decoder.decode(buffer.subarray(0, n));
        const parts = text.split("HTTP/1.1 403 ");
        answers += parts.length - 1;
        text = parts.at(-1)!;
      }
      await writing;
      conn.close();
      assert.equal(answers, 100);
    }));
    // A page connects after them: its line is the sentinel.
    (await join(web)).close();
    await until(
      () => serve.lines.some((l) => /^connect web /.test(l)),
      5000,
      "the page's line",
    );
    const refusals = serve.lines.slice(before).filter((l) =>
      l.startsWith("refused")
    );
    assert.deepEqual(refusals.length, 1, refusals.join("\n"));
    assert.ok(serve.bytes < 4096, `${serve.bytes} bytes of output`);
    // In the library, the origin is the refusal's detail, made safe.
    const events: HubEvent[] = [];
    await using hub = new Hub({ onEvent: (e) => events.push(e) });
    const server = await hub.attach(new WebServer({ port: 0 }));
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.port,
    });
    const { status } = await openRaw(
      conn,
      `127.0.0.1:${server.port}`,
      "/midi",
      {
        Origin: `http://evil.example/\té${"y".repeat(200)}`,
      },
    );
    assert.equal(status, 403);
    const refusal = events.find((e) => e.type === "refuse");
    assert.ok(refusal?.type === "refuse");
    assert.equal(
      refusal.refusal.reason,
      "a page from another origin may not connect",
    );
    assert.equal(refusal.refusal.detail!.length, MAX_DETAIL_LENGTH);
    assert.match(
      refusal.refusal.detail!,
      /^http:\/\/evil\.example\/\\x09\\xc3\\xa9y+…$/,
    );
  },
);
