// The hub under attack, bounded and on loopback: big messages that must not
// get readers dropped, handshakes that never finish, wrong tokens, TLS on a
// plain port, floods that must not starve paced clients, the descriptor
// limit, and links that silently die.

import assert from "node:assert/strict";
import {
  connect,
  Gate,
  Hub,
  type HubEvent,
  message,
  PortServer,
  ReconnectingPort,
  type Refusal,
  RefusedError,
  type Ticket,
} from "../mod.ts";
import { AddressList, WAITING_CHECKS_PER_SECOND } from "../src/hub/mod.ts";
import { OPENSSL_MISSING, testCertificates } from "./_tls.ts";
import { boundedTest, LOOPBACK, readAll, take, until, within } from "./_net.ts";
import { ManualClock } from "./_clock.ts";
import { pureTest } from "./_util.ts";
import { spawn } from "./_cli.ts";

const TOKEN = "correct-horse-battery";

function attackTest(
  name: string,
  fn: () => Promise<void>,
  options: { ignore?: string; permissions?: Deno.PermissionOptions } = {},
): void {
  boundedTest(name, fn, {
    ignore: options.ignore,
    permissions: options.permissions ?? LOOPBACK,
    ms: 60000,
  });
}

/** Hub events, kept for the assertions. */
function record(hub: Hub): HubEvent[] {
  const events: HubEvent[] = [];
  hub.listen((event) => events.push(event));
  return events;
}

function leaves(events: HubEvent[]): string[] {
  return events.flatMap((e) =>
    e.type === "leave" && e.reason !== undefined
      ? [`${e.endpoint.name}: ${e.reason}`]
      : []
  );
}

async function raw(port: number): Promise<Deno.TcpConn> {
  return await Deno.connect({ hostname: "127.0.0.1", port });
}

attackTest(
  "two 512 KiB sysex finishing at once drop no reader",
  async () => {
    await using hub = new Hub();
    const events = record(hub);
    await using server = await hub.attach(new PortServer("127.0.0.1", 0));
    const readers = await Promise.all(
      Array.from({ length: 5 }, () => connect("127.0.0.1", server.port)),
    );
    const senders = await Promise.all(
      Array.from({ length: 2 }, () => connect("127.0.0.1", server.port)),
    );
    await until(() => hub.endpoints.length === 7);
    const big = message("sysex", { data: new Uint8Array(512 * 1024).fill(7) });
    for (let round = 0; round < 3; round++) {
      await Promise.all(senders.map((s) => s.send(big)));
      for (const reader of readers) {
        const got = await take(reader, 2, 20000);
        assert.deepEqual(got.map((m) => m.type), ["sysex", "sysex"]);
      }
    }
    assert.deepEqual(leaves(events), []);
    await Promise.all([...readers, ...senders].map((p) => p.close()));
  },
);

attackTest(
  "connections that never send their token lock nobody out",
  async () => {
    await using hub = new Hub({
      token: TOKEN,
      maxClients: 3,
      handshakeTimeout: 5000,
      maxPendingPerAddress: 8,
    });
    const events = record(hub);
    await using server = await hub.attach(new PortServer("127.0.0.1", 0));
    // 20 silent connections, re-opened as the server closes them.
    const silent = new Set<Deno.TcpConn>();
    let opened = 0;
    let attacking = true;
    const attack = (async () => {
      while (attacking) {
        if (silent.size >= 20) {
          await new Promise((r) => setTimeout(r, 5));
          continue;
        }
        const conn = await raw(server.port).catch(() => undefined);
        if (conn === undefined) continue;
        opened++;
        silent.add(conn);
        readAll(conn, 30000).catch(() => {}).finally(() => silent.delete(conn));
      }
    })();
    await until(() => opened >= 40, 10000, "the attack under way");
    let served = 0;
    for (let i = 0; i < 20; i++) {
      const client = await connect("127.0.0.1", server.port, { token: TOKEN });
      served++;
      await client.close();
    }
    attacking = false;
    await attack;
    for (const conn of silent) {
      try {
        conn.close();
      } catch {
        // Closed by the server already.
      }
    }
    assert.equal(served, 20);
    assert.ok(
      events.some((e) =>
        e.type === "refuse" && /handshake too slow/.test(e.refusal.reason)
      ),
    );
  },
);

attackTest("stalled handshakes are closed at the deadline", async () => {
  const { cert, key } = await testCertificates();
  for (const tls of [undefined, { cert, key }]) {
    await using hub = new Hub({ token: TOKEN, handshakeTimeout: 300 });
    await using server = await hub.attach(
      new PortServer("127.0.0.1", 0, { tls }),
    );
    const conns = await Promise.all(
      Array.from({ length: 10 }, () => raw(server.port)),
    );
    await until(() => hub.gate.pending === 10);
    const started = performance.now();
    // The server closes them: each read ends.
    await Promise.all(conns.map((conn) => readAll(conn, 5000)));
    const took = performance.now() - started;
    assert.ok(took < 1500, `closed after ${Math.round(took)} ms`);
    await until(() => hub.gate.pending === 0, 2000);
  }
}, { ignore: OPENSSL_MISSING, permissions: { ...LOOPBACK, run: true } });

attackTest(
  "wrong tokens from a shared address lock no right token out",
  async () => {
    // As measured: about 50 wrong tokens in 40 s from one address (a NAT,
    // loopback), beside 80 good attempts from it. On a clock the test
    // moves, so the waits are real waits of the gate.
    const clock = new ManualClock();
    await using hub = new Hub({ token: TOKEN, failuresBeforeWait: 3, clock });
    const server = await hub.attach(new PortServer("127.0.0.1", 0));
    const wrong: Promise<unknown>[] = [];
    let admitted = 0;
    for (let i = 0; i < 130; i++) {
      // The wrong ones come in bursts of five.
      if (i % 13 < 5) {
        // A wrong token is answered once the wait is over: not awaited, but
        // given a moment, so that the server has read it before the next
        // attempt comes.
        const attempt = connect("127.0.0.1", server.port, {
          token: `guess-${i}`,
          handshakeTimeout: 30000,
        }).then(() => assert.fail("a wrong token was let in"), (e) => e);
        wrong.push(attempt);
        await Promise.race([attempt, new Promise((r) => setTimeout(r, 50))]);
      } else {
        const good = await connect("127.0.0.1", server.port, {
          token: TOKEN,
        });
        assert.deepEqual(await good.admitted, []);
        admitted++;
        await good.close();
      }
      clock.advance(40000 / 130);
    }
    assert.equal(admitted, 80);
    clock.advance(120_000);
    const refusals = await within(Promise.all(wrong), 10000, "the answers");
    for (const refusal of refusals) {
      assert.ok(refusal instanceof RefusedError, String(refusal));
      assert.ok(
        refusal.code === "wrong-token" || refusal.code === "timeout",
        refusal.message,
      );
    }
  },
);

/** A gate's ticket, asserted to be one. */
function ticketOf(ticket: Ticket | Refusal): Ticket {
  if ("code" in ticket) throw new Error(`refused: ${ticket.reason}`);
  return ticket;
}

/** What a promise has settled to so far, after pending callbacks ran. */
async function settled<T>(promise: Promise<T>): Promise<T | "pending"> {
  const marker = {};
  const result = await Promise.race([
    promise,
    new Promise((resolve) => setTimeout(() => resolve(marker), 0)),
  ]);
  return result === marker ? "pending" : result as T;
}

pureTest(
  "a wrong token is answered when the wait is over, and waits double",
  async () => {
    const clock = new ManualClock();
    const gate = new Gate({ token: TOKEN, failuresBeforeWait: 1, clock });
    const peer = { transport: "tcp", hostname: "10.0.0.1" };
    for (const wait of [1000, 2000, 4000]) {
      const ticket = ticketOf(gate.arrive(peer, { close: () => {} }));
      const answer = ticket.present("nope");
      clock.advance(wait - 1);
      assert.equal(await settled(answer), "pending", `${wait} ms`);
      clock.advance(1);
      assert.equal((await settled(answer) as Refusal).code, "wrong-token");
      assert.equal(ticket.state, "gone");
    }
    // Meanwhile another address is not affected.
    const other = ticketOf(
      gate.arrive({ transport: "tcp", hostname: "10.0.0.2" }),
    );
    assert.equal(await other.present(TOKEN), undefined);
    assert.equal(other.enter(), undefined);
    other.leave();
  },
);

pureTest(
  "while an address waits, a right token gets in at once and guesses are few",
  async () => {
    const clock = new ManualClock();
    const refused: string[] = [];
    const gate = new Gate({
      token: TOKEN,
      failuresBeforeWait: 1,
      clock,
      onRefuse: (r) => refused.push(r.code),
    });
    const peer = { transport: "tcp", hostname: "10.0.0.1" };
    const arrive = () => ticketOf(gate.arrive(peer, { close: () => {} }));
    const held = arrive().present("nope");
    // The address waits a second now; a right token still gets in.
    const good = arrive();
    assert.equal(await good.present(TOKEN), undefined);
    assert.equal(good.enter(), undefined);
    good.leave();
    // Guesses while it waits: a few a second are checked (and held), the
    // rest refused at once without a check.
    let guesses = 0;
    const answers: Promise<Refusal | undefined>[] = [];
    for (let i = 0; i < 30; i++) {
      const answer = arrive().present(`guess-${i}`);
      if (await settled(answer) === "pending") guesses++;
      answers.push(answer);
    }
    assert.equal(guesses, 2 * WAITING_CHECKS_PER_SECOND - 1);
    // Checks used up, a right token waits its turn like any other.
    assert.equal((await arrive().present(TOKEN))?.code, "waiting");
    clock.advance(1000 / WAITING_CHECKS_PER_SECOND);
    assert.equal(await arrive().present(TOKEN), undefined);
    assert.equal(await settled(held), "pending");
    clock.advance(61_000);
    for (const answer of [held, ...answers]) {
      const refusal = await settled(answer) as Refusal;
      assert.ok(
        ["wrong-token", "waiting", "timeout"].includes(refusal.code),
        refusal.code,
      );
    }
    assert.equal(
      refused.filter((c) => c === "waiting").length,
      30 - guesses + 1,
    );
    assert.equal(gate.pending, 0);
    assert.equal(clock.pending, 0, "no timer left behind");
  },
);

pureTest(
  "a ticket still pending at its deadline is refused and closed, once",
  async () => {
    const clock = new ManualClock();
    const refused: Refusal[] = [];
    const closed: unknown[] = [];
    const gate = new Gate({
      token: TOKEN,
      handshakeTimeout: 300,
      clock,
      onRefuse: (r) => refused.push(r),
    });
    const peer = { transport: "tcp", hostname: "10.0.0.1" };
    const ticket = ticketOf(
      gate.arrive(peer, { close: (r) => closed.push(r) }),
    );
    const quiet = ticketOf(gate.arrive(peer, { long: false }));
    // The older form: the transport keeps the deadline, the gate none.
    const own = ticketOf(gate.arrive(peer, false, () => closed.push(own)));
    clock.advance(299);
    assert.equal(closed.length, 0);
    clock.advance(1);
    assert.equal(closed.length, 1);
    assert.equal((closed[0] as Refusal).reason, "no token within 300 ms");
    // One without `close` times out too: its slot is free.
    assert.equal(gate.pending, 1);
    assert.equal(ticket.enter(), closed[0]);
    assert.equal(ticket.refuse("wrong-token", "late"), closed[0]);
    assert.equal(await ticket.present(TOKEN), closed[0]);
    assert.equal(quiet.enter()?.code, "timeout");
    assert.equal(refused.length, 2);
    assert.equal(clock.pending, 0);
    clock.advance(10_000);
    assert.equal(own.state, "pending");
    assert.equal(own.enter(), undefined);
    own.leave();
  },
);

pureTest(
  "tickets that cannot be closed never stop the gate making room",
  () => {
    // Each bound: all handshakes, and those of one address.
    for (const bound of ["maxPending", "maxPendingPerAddress"] as const) {
      const closed: string[] = [];
      const gate = new Gate({ token: TOKEN, [bound]: 2 });
      const peer = { transport: "tcp", hostname: "10.0.0.1" };
      // The oldest is a transport's that cannot be closed at once.
      const stuck = ticketOf(gate.arrive(peer, true));
      const a = ticketOf(gate.arrive(peer, { close: () => closed.push("a") }));
      const b = ticketOf(gate.arrive(peer, { close: () => closed.push("b") }));
      assert.deepEqual(closed, ["a"], bound);
      assert.equal(a.state, "gone");
      assert.equal(stuck.state, "pending");
      // Only tickets that cannot be closed left: the newest is refused.
      b.leave();
      const c = ticketOf(gate.arrive(peer, true));
      const refused = gate.arrive(peer, true);
      assert.equal("code" in refused && refused.code, "busy", bound);
      stuck.leave();
      c.leave();
      assert.equal(gate.pending, 0);
    }
  },
);

pureTest(
  "allow rules: leading zeros, zones and empty entries are refused",
  () => {
    assert.throws(() => new AddressList(["010.0.0.1"]), /leading zeros/);
    assert.throws(() => new AddressList(["fe80::1%eth0"]), /zone/);
    assert.throws(() => new AddressList(["10.0.0.1", ""]), /empty entry/);
    assert.throws(
      () => new AddressList(["10.0.0.0/33"]),
      /prefix must be 0-32/,
    );
    const list = new AddressList(["10.1.2.3/8", "192.168.1.0/24"]);
    assert.deepEqual(list.warnings, [
      'address rule "10.1.2.3/8" has host bits set: it means the whole /8 range',
    ]);
    assert.ok(list.includes("10.200.0.1"));
  },
);

/** The start of a TLS 1.2 ClientHello, high bytes and all. */
const TLS_HELLO = new Uint8Array([
  0x16,
  0x03,
  0x01,
  0x02,
  0x00,
  0x01,
  0x00,
  0x01,
  0xfc,
  0x03,
  0x03,
  ...Array.from({ length: 200 }, (_, i) => (i * 37 + 0x80) & 0xff),
]);

/** What a page posts to a port: headers, then a body of MIDI bytes. */
const POST = new Uint8Array([
  ...new TextEncoder().encode(
    "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n" +
      "Content-Length: 7\r\n\r\n",
  ),
  0x90,
  0x3c,
  0x7f,
  0xf0,
  0x01,
  0x02,
  0xf7,
]);

attackTest(
  "TLS hellos and HTTP requests are refused, and nothing of them is relayed",
  async () => {
    for (
      const [what, bytes, reply, reason] of [
        ["a TLS hello", TLS_HELLO, [0x15, 0x03], /TLS handshake to a port/],
        [
          "an HTTP POST",
          POST,
          [...new TextEncoder().encode("HTTP/1.1 400 ")],
          /HTTP request to a MIDI port/,
        ],
      ] as const
    ) {
      // At once, and once the server has taken the connection in as a
      // client that only listens.
      for (const late of [false, true]) {
        const name = `${what}${late ? ", late" : ""}`;
        await using hub = new Hub();
        const events = record(hub);
        const server = await hub.attach(new PortServer("127.0.0.1", 0));
        await using listener = await connect("127.0.0.1", server.port);
        await using other = await connect("127.0.0.1", server.port);
        await until(() => hub.endpoints.length === 2);
        const conn = await raw(server.port);
        if (late) await until(() => hub.endpoints.length === 3);
        await conn.write(bytes);
        const got = await readAll(conn);
        assert.deepEqual([...got.subarray(0, reply.length)], reply, name);
        const told = () =>
          events.some((e) =>
            (e.type === "refuse" && reason.test(e.refusal.reason)) ||
            (e.type === "leave" && reason.test(String(e.reason)))
          );
        await until(told, 5000, name);
        if (what === "an HTTP POST" && !late) {
          const refusal = events.find((e) => e.type === "refuse");
          if (refusal?.type === "refuse") {
            assert.equal(refusal.refusal.detail, "POST / HTTP/1.1", name);
          }
        }
        // The sentinel comes first: nothing of it reached the listener.
        await other.send(message("tune_request"));
        assert.deepEqual(
          await take(listener, 1),
          [message("tune_request")],
          name,
        );
      }
    }
  },
);

attackTest(
  "a paced client reaches another in order while others flood",
  async () => {
    // The hub in its own process, as serve runs; the flood in another.
    await using serve = spawn("serve", [
      "127.0.0.1:0",
      "--rate-limit",
      "5000/10000",
    ]);
    const port = await serve.listening();
    await using b = await connect("127.0.0.1", port);
    await using a = await connect("127.0.0.1", port);
    await using flood = new Flood(port, 6);
    await flood.started;
    const sent = Array.from(
      { length: 8000 },
      (_, i) =>
        message("note_on", { note: i % 128, velocity: 1 + (i >> 7) % 127 }),
    );
    // A: 4000 notes a second, within its limit, for two seconds.
    const started = performance.now();
    const sending = (async () => {
      for (let i = 0; i < sent.length; i += 40) {
        await a.sendAll(sent.slice(i, i + 40));
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const got = [];
    while (got.length < sent.length) {
      const msg = await within(b.receive(), 10000, "the paced notes");
      if (msg.type === "note_on") got.push(msg);
    }
    const took = performance.now() - started;
    await sending;
    assert.deepEqual(got, sent, "every note, in order");
    assert.ok(took < 6000, `took ${Math.round(took)} ms`);
    assert.ok(
      !serve.lines.some((l) =>
        l.startsWith(`disconnect 127.0.0.1:${b.localAddr.port} `)
      ),
    );
  },
  { permissions: { ...LOOPBACK, run: true, read: true } },
);

attackTest(
  "SIGTERM during a flood: note_offs delivered and exit 0 within 3 s",
  async () => {
    await using serve = spawn("serve", ["127.0.0.1:0"]);
    const port = await serve.listening();
    await using listener = await connect("127.0.0.1", port);
    await using player = await connect("127.0.0.1", port);
    await player.send(message("note_on", { note: 60 }));
    await using flood = new Flood(port, 40);
    await flood.started;
    // Past the note: what the flood relays comes after it.
    for (;;) {
      const msg = await within(listener.receive(), 10000, "the note");
      if (msg.type === "note_on") break;
    }
    const started = performance.now();
    serve.kill("SIGTERM");
    const { code } = await serve.finished(10000);
    const took = performance.now() - started;
    assert.equal(code, 0);
    assert.ok(took < 3000, `exited after ${Math.round(took)} ms`);
    const rest = await within(Array.fromAsync(listener), 10000, "the rest");
    assert.ok(
      rest.some((m) => m.type === "note_off" && m.note === 60),
      "the held note was released",
    );
  },
  { permissions: { ...LOOPBACK, run: true, read: true } },
);

attackTest(
  "at the descriptor limit serve waits, says so once, and serves again",
  async () => {
    const port = await new Promise<number>((resolve) => {
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      resolve(listener.addr.port);
      listener.close();
    });
    const child = new Deno.Command("sh", {
      args: [
        "-c",
        `ulimit -n 64 && exec "$0" run --quiet --allow-net=127.0.0.1 ` +
        `src/cli/serve.ts 127.0.0.1:${port}`,
        Deno.execPath(),
      ],
      cwd: new URL("../", import.meta.url),
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const stderr = child.stderr.pipeThrough(new TextDecoderStream());
    let errors = "";
    const reading = (async () => {
      for await (const text of stderr) errors += text;
    })();
    try {
      let conns: Deno.TcpConn[] = [];
      for (let attempt = 0; conns.length === 0; attempt++) {
        try {
          conns.push(await raw(port));
        } catch (error) {
          if (attempt > 200) throw error;
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      for (let i = 0; i < 99; i++) conns.push(await raw(port));
      await until(() => /no file descriptors left/.test(errors), 5000);
      // /proc needs --allow-all in Deno: read it through cat.
      const cpu = async () => {
        const { stdout } = await new Deno.Command("cat", {
          args: [`/proc/${child.pid}/stat`],
        }).output();
        const fields = new TextDecoder().decode(stdout).split(") ")[1]
          .split(" ");
        return (Number(fields[11]) + Number(fields[12])) / 100;
      };
      const before = await cpu();
      await new Promise((r) => setTimeout(r, 2000));
      const used = await cpu() - before;
      assert.ok(used < 0.1, `${used} CPU-seconds in 2 s at the limit`);
      for (const conn of conns) conn.close();
      conns = [];
      // Served again: a message goes from one client to another.
      await using a = await connect("127.0.0.1", port);
      await using b = await connect("127.0.0.1", port);
      const next = b.receive();
      let got;
      for (let i = 0; got === undefined && i < 100; i++) {
        await a.send(message("clock"));
        got = await Promise.race([
          next,
          new Promise<undefined>((r) => setTimeout(() => r(undefined), 50)),
        ]);
      }
      assert.deepEqual(got, message("clock"));
      assert.equal(errors.match(/no file descriptors left/g)?.length, 1);
    } finally {
      child.kill("SIGTERM");
      await child.status;
      await reading;
    }
  },
  { permissions: { ...LOOPBACK, run: true, read: true } },
);

/** A flood from another process (tests/_flood.ts). */
class Flood implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly started: Promise<void>;

  constructor(port: number, connections: number) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--allow-net=127.0.0.1",
        new URL("./_flood.ts", import.meta.url).pathname,
        String(port),
        String(connections),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = this.#child.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    this.started = within(
      reader.read().then(() => {
        // Keep reading, so the child never blocks on a full pipe.
        (async () => {
          while (!(await reader.read()).done) { /* drain */ }
        })().catch(() => {});
      }),
      10000,
      "the flood starting",
    );
    this.started.catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#child.stdin.close().catch(() => {});
    const timer = setTimeout(() => this.#child.kill("SIGKILL"), 5000);
    await this.#child.status;
    clearTimeout(timer);
  }
}

attackTest(
  "a reconnecting port with a heartbeat notices a link that silently died",
  async () => {
    // A hub answers heartbeats (a plain PortServer passes them on, as mido).
    await using hub = new Hub();
    await using server = await hub.attach(new PortServer("127.0.0.1", 0));
    server.poll();
    // A proxy that can stop forwarding without closing anything.
    let blackHole = false;
    const proxy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const pipes: Promise<void>[] = [];
    const sockets: Deno.Conn[] = [];
    const pipe = async (from: Deno.Conn, to: Deno.Conn) => {
      const buffer = new Uint8Array(4096);
      try {
        for (;;) {
          const n = await from.read(buffer);
          if (n === null) break;
          if (!blackHole) await to.write(buffer.subarray(0, n));
        }
      } catch {
        // Closed.
      }
    };
    const accepting = (async () => {
      for await (const conn of proxy) {
        const upstream = await raw(server.port);
        sockets.push(conn, upstream);
        pipes.push(pipe(conn, upstream), pipe(upstream, conn));
      }
    })();
    const lost: number[] = [];
    await using client = new ReconnectingPort(
      "127.0.0.1",
      (proxy.addr as Deno.NetAddr).port,
      {
        heartbeat: 100,
        minDelay: 50,
        onEvent: (event) =>
          event.type === "disconnect" && lost.push(event.unconfirmed),
      },
    );
    await until(() => client.connected);
    await client.send(message("note_on", { note: 1 }));
    assert.deepEqual(await take(server, 1), [message("note_on", { note: 1 })]);
    // Wait for an answered heartbeat, then cut the link silently.
    await until(() => client.unconfirmed === 0);
    blackHole = true;
    const cut = performance.now();
    for (let i = 0; i < 5; i++) await client.send(message("clock"));
    await until(() => lost.length === 1, 5000, "the dead link noticed");
    const noticed = performance.now() - cut;
    assert.ok(noticed < 1000, `noticed after ${Math.round(noticed)} ms`);
    assert.equal(
      lost[0],
      5,
      "the messages sent into the dead link are counted",
    );
    blackHole = false;
    await until(() => client.connected, 5000, "reconnected");
    await client.send(message("note_on", { note: 2 }));
    const next = await take(server, 1);
    assert.deepEqual(next, [message("note_on", { note: 2 })]);
    await client.close();
    proxy.close();
    await accepting.catch(() => {});
    for (const socket of sockets) {
      try {
        socket.close();
      } catch {
        // Closed.
      }
    }
    await Promise.all(pipes);
  },
);
