// The timed mode between midisock programs over TCP: how the two ends agree
// on it (and what older peers see: exactly today's stream), time carried
// from hub to hub across clocks that are seconds apart and drift, and the
// playout delay over an emulated Wi-Fi link (network namespaces made and
// deleted here).

import assert from "node:assert/strict";
import {
  connect,
  encode,
  Hub,
  type Message,
  message,
  Parser,
  PortServer,
  systemClock,
  type TimeSource,
} from "../mod.ts";
import { helloLine, okLine } from "../src/net/_hello.ts";
import { pingFrame, PONG_FRAME_BYTES } from "../src/codec/_timed.ts";
import { ManualClock } from "./_clock.ts";
import { MIDO_MISSING, python } from "./_mido.ts";
import {
  boundedTest,
  LOOPBACK,
  netTest,
  readAll,
  take,
  until,
  within,
} from "./_net.ts";
import { concat } from "./_util.ts";
import { readLines, WanLink, wanSkip, WIFI } from "./_wan.ts";
import { PlainEndpoint, Player, TimedEndpoint } from "./_timed_ports.ts";

const note = (n: number) => message("note_on", { note: n });

/** Reads from a raw connection until `length` bytes came, within 5 s. */
async function readBytes(
  conn: Deno.Conn,
  length: number,
  ms = 5000,
): Promise<Uint8Array> {
  return await within(
    (async () => {
      const parts: Uint8Array[] = [];
      let have = 0;
      const buffer = new Uint8Array(4096);
      while (have < length) {
        const n = await conn.read(buffer);
        if (n === null) break;
        parts.push(buffer.slice(0, n));
        have += n;
      }
      return concat(parts);
    })(),
    ms,
    `reading ${length} bytes`,
  );
}

/** A timed endpoint: hears each batch at once, with its time. */
class TimedListener extends TimedEndpoint {
  readonly name = "timed listener";
  readonly heard: [number, number][] = [];
  protected hear(msg: Message, at: number | undefined): void {
    if (msg.type === "note_on") this.heard.push([msg.note, at!]);
  }
}

/** A plain endpoint: notes when (on `clock`) it heard each note. */
class Listener extends PlainEndpoint {
  readonly name = "listener";
  readonly heard: [number, number][] = [];
  readonly #clock: TimeSource;
  constructor(clock: TimeSource) {
    super();
    this.#clock = clock;
  }
  protected hear(msg: Message): void {
    if (msg.type === "note_on") this.heard.push([msg.note, this.#clock.now()]);
  }
}

/**
 * The system's clock seen `offset` ms ahead and running `rate` times as
 * fast, from `origin` (a system time).
 */
function skewed(origin: number, offset: number, rate: number): TimeSource {
  return {
    now: () => origin + offset + (systemClock.now() - origin) * rate,
    setTimer: (callback, delay, keepAlive) =>
      systemClock.setTimer(callback, delay / rate, keepAlive),
  };
}

netTest(
  "a timed client and a server agree on the timed mode; one that does not take it, or a client that does not ask, speak the plain stream",
  async () => {
    await using server = new PortServer("127.0.0.1", 0);
    server.poll();
    await using timed = await connect("127.0.0.1", server.port, {
      timed: true,
    });
    assert.deepEqual(await timed.admitted, ["timed"]);
    await until(() => timed.timing?.answeredAt !== undefined, 5000, "a pong");
    assert.ok(timed.timing!.roundTrip >= 0 && timed.timing!.roundTrip < 1000);
    // The same, asked for by its feature word, with a token.
    await using hub = new Hub({ token: "correct-horse-battery" });
    const guarded = await hub.attach(new PortServer("127.0.0.1", 0));
    await using worded = await connect("127.0.0.1", guarded.port, {
      features: ["timed"],
      token: "correct-horse-battery",
    });
    assert.deepEqual(worded.features, ["timed"]);
    await until(() => worded.timing?.answeredAt !== undefined, 5000, "a pong");
    // A client that does not ask.
    await using plain = await connect("127.0.0.1", server.port);
    assert.deepEqual(await plain.admitted, []);
    assert.equal(plain.timing, undefined);
    // A server that does not take it.
    await using untimed = new PortServer("127.0.0.1", 0, { timed: false });
    untimed.poll();
    await using asked = await connect("127.0.0.1", untimed.port, {
      timed: true,
    });
    assert.deepEqual(await asked.admitted, []);
    assert.equal(asked.timing, undefined);
    await asked.send(note(1));
    assert.deepEqual(await take(untimed, 1), [note(1)]);
    await until(() => untimed.clients.length === 1);
    await untimed.send(note(2));
    assert.deepEqual(await take(asked, 1), [note(2)]);
    // Bad clocks are refused, naming the option.
    await assert.rejects(
      connect("127.0.0.1", server.port, { clock: {} as TimeSource }),
      /clock must have now\(\) and setTimer\(\)/,
    );
    assert.throws(
      () => new PortServer("127.0.0.1", 0, { clock: {} as TimeSource }),
      /clock must have now\(\) and setTimer\(\)/,
    );
  },
);

netTest(
  "a server that answers no hello gets the hello and plain MIDI from a client that asked for the timed mode, and no ping",
  async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const accepted = listener.accept();
    const clock = new ManualClock();
    await using port = await connect("127.0.0.1", listener.addr.port, {
      timed: true,
      clock,
    });
    using conn = await accepted;
    listener.close();
    await port.send(note(1));
    clock.advance(1000); // ten ping intervals
    await port.send(note(2));
    const hello = helloLine(["timed"]);
    assert.deepEqual(
      await readBytes(conn, hello.length + 6),
      concat([hello, encode(note(1)), encode(note(2))]),
    );
    // It speaks MIDI: a mido server, as the port takes it.
    await conn.write(encode(note(3)));
    assert.deepEqual(await take(port, 1), [note(3)]);
    assert.deepEqual(port.features, []);
    assert.equal(port.timing, undefined);
    assert.equal(port.greeted, false);
    clock.advance(1000);
    await port.send(note(4)); // the sentinel: nothing came before it
    assert.deepEqual(await readBytes(conn, 3), encode(note(4)));
  },
);

netTest(
  "on a hub with timed clients, plain and untimed clients get exactly the plain stream; a client that asks gets time frames",
  async () => {
    await using hub = new Hub();
    const server = await hub.attach(new PortServer("127.0.0.1", 0));
    const bare = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.port,
    });
    const hello = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.port,
    });
    await hello.write(helloLine([]));
    const asking = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.port,
    });
    await asking.write(helloLine(["timed"]));
    await until(() => hub.endpoints.length === 3, 5000, "three clients");
    await using timed = await connect("127.0.0.1", server.port, {
      timed: true,
    });
    await until(() => hub.endpoints.length === 4, 5000, "the timed client");
    // Pings answered, and time frames on what it sends.
    const first = timed.timing?.answeredAt;
    await until(
      () => (timed.timing?.answeredAt ?? -1) > (first ?? -1),
      5000,
      "two pongs",
    );
    const notes = [60, 61, 62].map(note);
    for (const msg of notes) await timed.send(msg);
    const plain = concat(notes.map(encode));
    const sentinel = encode(note(127));
    const expect = concat([plain, sentinel]);
    // Let pings and pongs go on for a while, then the sentinel.
    const answered = timed.timing!.answeredAt!;
    await until(
      () => timed.timing!.answeredAt! >= answered + 250,
      5000,
      "pongs for 250 ms",
    );
    await timed.send(note(127));
    assert.deepEqual(await readBytes(bare, expect.length), expect);
    const ok = okLine([]);
    assert.deepEqual(
      await readBytes(hello, ok.length + expect.length),
      concat([ok, expect]),
    );
    const okTimed = okLine(["timed"]);
    const stream = await readBytes(asking, okTimed.length + expect.length + 6);
    assert.deepEqual(stream.subarray(0, okTimed.length), okTimed);
    assert.equal(stream[okTimed.length], 0xf4, "a time frame first");
    const rest = stream.subarray(okTimed.length);
    assert.deepEqual(new Parser().feed(rest), [...notes, note(127)]);
    for (const conn of [bare, hello, asking]) conn.close();
  },
);

boundedTest(
  "a mido client on a hub with a timed client gets exactly the plain stream, and is heard by it",
  async () => {
    await using hub = new Hub();
    const server = await hub.attach(new PortServer("127.0.0.1", 0));
    const notes = [60, 61, 62, 63].map(note);
    const plain = concat([...notes, note(127)].map(encode));
    const peer = new Deno.Command(python, {
      args: [
        "-c",
        `
import sys, mido
from mido.sockets import connect
client = connect("127.0.0.1", int(sys.argv[1]))
print("ready", flush=True)
want = int(sys.argv[2])
data = b""
while len(data) < want:
    chunk = client._socket.recv(65536)
    if not chunk:
        break
    data += chunk
print(data.hex(), flush=True)
client.send(mido.Message("note_on", note=99, velocity=1))
sys.stdin.read()
client.close()
`,
        String(server.port),
        String(plain.length),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const lines = readLines(peer.stdout);
    try {
      assert.equal((await within(lines.next(), 10000, "mido")).value, "ready");
      await until(() => hub.endpoints.length === 1, 5000, "mido's client");
      await using timed = await connect("127.0.0.1", server.port, {
        timed: true,
        clock: hub.clock,
      });
      await until(() => timed.timing?.answeredAt !== undefined, 5000, "pong");
      for (const msg of notes) await timed.send(msg);
      const answered = timed.timing!.answeredAt!;
      await until(
        () => timed.timing!.answeredAt! >= answered + 250,
        5000,
        "pongs for 250 ms",
      );
      await timed.send(note(127));
      const hex = (await within(lines.next(), 10000, "mido's bytes")).value;
      assert.equal(
        hex,
        Array.from(plain, (b) => b.toString(16).padStart(2, "0")).join(""),
      );
      assert.deepEqual(await take(timed, 1), [
        message("note_on", { note: 99, velocity: 1 }),
      ]);
    } finally {
      await peer.stdin.close();
      await peer.status;
      await lines.return?.();
    }
  },
  { ignore: MIDO_MISSING, permissions: { ...LOOPBACK, run: true }, ms: 30000 },
);

netTest(
  "used alone, a timed port sends and reads plain messages, and the server's count confirms what it sent",
  async () => {
    await using server = new PortServer("127.0.0.1", 0);
    server.poll();
    await using port = await connect("127.0.0.1", server.port, {
      timed: true,
    });
    const sent = Array.from({ length: 100 }, (_, i) => note(i));
    for (const msg of sent) await port.send(msg);
    assert.deepEqual(await take(server, 100), sent);
    await until(() => server.clients.length === 1);
    await server.send(note(1));
    await server.send(note(2));
    assert.deepEqual(await take(port, 2), [note(1), note(2)]);
    await until(
      () => port.timing?.unconfirmed === 0,
      5000,
      "the server's count",
    );
    assert.equal(port.timing!.sent, 100);
    // A sentinel: nothing but what the server sent was read.
    await server.send(note(3));
    assert.deepEqual(await take(port, 1), [note(3)]);
  },
);

boundedTest(
  "time crosses two hubs whose clocks are 5 s apart and drift 200 ppm: within 2 s it is mapped to within 1 ms, and played out at its time plus the delay",
  async () => {
    const origin = systemClock.now();
    const serverClock = skewed(origin, 0, 1);
    const rate = 1 + 200e-6;
    const clientClock = skewed(origin, 5000, rate);
    // The same instant on the other clock, as the test knows it.
    const toClient = (at: number) => origin + 5000 + (at - origin) * rate;
    const toServer = (at: number) => origin + (at - origin - 5000) / rate;
    await using serving = new Hub({ clock: serverClock });
    const server = await serving.attach(new PortServer("127.0.0.1", 0));
    const serverPlayer = new Player();
    const serverHears = new TimedListener();
    serving.add(serverPlayer, { kind: "device" });
    serving.add(serverHears, { kind: "device" });
    const latency = 40;
    await using client = new Hub({ clock: clientClock, latency });
    const clientPlayer = new Player();
    const clientHears = new TimedListener();
    const clientPlays = new Listener(clientClock);
    client.add(clientPlayer, { kind: "device" });
    client.add(clientHears, { kind: "device" });
    client.add(clientPlays, { kind: "device" });
    const link = await connect("127.0.0.1", server.port, {
      timed: true,
      clock: clientClock,
    });
    client.add(link, { kind: "link", transport: "tcp" });
    await until(() => serving.endpoints.length === 3, 5000, "the link");
    const start = systemClock.now();
    const played = new Map<number, number>(); // note -> server time
    const sent = new Map<number, number>(); // note -> client time
    for (let i = 0; systemClock.now() - start < 3500; i++) {
      await new Promise((resolve) => setTimeout(resolve, 30));
      const n = i % 128;
      const at = serverClock.now();
      played.set(n, at);
      serverPlayer.play(note(n), at);
      const back = clientClock.now();
      sent.set(n, back);
      clientPlayer.play(note(n), back);
    }
    const end = serverClock.now();
    await until(
      () => clientPlays.heard.at(-1)?.[0] === [...played.keys()].at(-1),
      5000,
      "the last note played",
    );
    // After 2 s: each time, mapped both ways, within 1 ms of the truth.
    const settled = start + 2000;
    const errors: number[] = [];
    for (const [n, at] of clientHears.heard) {
      const truth = toClient(played.get(n)!);
      if (played.get(n)! >= settled && played.get(n)! <= end) {
        errors.push(Math.abs(at - truth));
      }
    }
    for (const [n, at] of serverHears.heard) {
      const truth = toServer(sent.get(n)!);
      if (at >= settled && at <= end) errors.push(Math.abs(at - truth));
    }
    assert.ok(errors.length > 50, `${errors.length} notes measured`);
    const worst = Math.max(...errors);
    assert.ok(worst < 1, `worst error ${worst.toFixed(3)} ms`);
    // Played out at its time plus the delay: never early, and none late.
    const times = new Map(clientHears.heard);
    const lateness = clientPlays.heard.map(([n, heardAt]) =>
      heardAt - (times.get(n)! + latency)
    );
    assert.ok(
      Math.min(...lateness) > -0.1,
      `early by ${-Math.min(...lateness)}`,
    );
    lateness.sort((a, b) => a - b);
    const median = lateness[Math.floor(lateness.length / 2)];
    assert.ok(median < 3, `median lateness ${median.toFixed(2)} ms`);
    assert.equal(client.timing?.late, 0);
    console.log(
      `clock mapping: worst ${worst.toFixed(3)} ms over ${errors.length}; ` +
        `playout lateness p50 ${median.toFixed(2)} ms`,
    );
  },
  { permissions: LOOPBACK, ms: 30000 },
);

/** One run over the emulated link. */
interface WanRun {
  /** Each note's arrival minus its send time, minus the median of that. */
  errors: number[];
  /** Each note's time on the client's hub minus its send time, the same. */
  carried: number[];
  lost: number;
  reordered: number;
  late: number;
  roundTrip: number;
}

const PEER = new URL("./_tcp_peer.ts", import.meta.url).pathname;

/**
 * A peer process in a namespace, run at a raised priority (as root can),
 * so that other work on the machine takes fewer of its turns.
 */
function peer(
  link: WanLink,
  side: "a" | "b",
  args: string[],
  options: Omit<Deno.CommandOptions, "args"> = {},
): Deno.Command {
  return link.command(link[side], "nice", [
    "-n",
    "-10",
    Deno.execPath(),
    "run",
    "--quiet",
    "--allow-net=10.88.0.1,10.88.0.2",
    PEER,
    ...args,
  ], options);
}

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))];
}

/** Each value minus the median of them. */
function centred(values: number[]): number[] {
  const median = quantile(values, 0.5);
  return values.map((value) => value - median);
}

const p99 = (errors: number[]) => quantile(errors.map(Math.abs), 0.99);

/** The machine's load average over the last minute, as Linux says it. */
function loadAverage(): string {
  try {
    return Deno.readTextFileSync("/proc/loadavg").split(" ")[0];
  } catch {
    return "unknown";
  }
}

/**
 * A hub in namespace a plays `notes` notes 10 ms apart to a client hub in
 * namespace b (playout delay `latency`), 2 s after the client came in.
 */
async function timedOverWifi(latency: number, notes: number): Promise<WanRun> {
  await using link = await WanLink.open(WIFI);
  const hub = peer(link, "a", [
    "hub",
    "--host",
    link.a.address,
    "--notes",
    String(notes),
    "--every",
    "10",
    "--after",
    "2000",
  ], { stdin: "piped", stdout: "piped", stderr: "inherit" }).spawn();
  const hubLines = readLines(hub.stdout);
  const writer = hub.stdin.getWriter();
  try {
    const ready = (await within(hubLines.next(), 20000, "the hub")).value;
    const port = /^ready (\d+)$/.exec(ready ?? "")?.[1];
    assert.ok(port, `the hub said ${ready}`);
    const client = await peer(link, "b", [
      "client",
      "--host",
      link.a.address,
      "--port",
      port,
      "--latency",
      String(latency),
      "--notes",
      String(notes),
      "--seconds",
      "30",
    ], { stdout: "piped", stderr: "inherit" }).output();
    assert.ok(client.success, "the client failed");
    const heard = JSON.parse(
      new TextDecoder().decode(client.stdout).trim().split("\n").at(-1)!,
    );
    await writer.write(new TextEncoder().encode("quit\n"));
    const result = JSON.parse(
      (await within(hubLines.next(), 10000, "the hub's result")).value!,
    );
    const played: number[] = result.played;
    const arrivals = heard.heard as [number, number][];
    let reordered = 0;
    let last = -1;
    for (const [i] of arrivals) {
      if (i < last) reordered++;
      last = Math.max(last, i);
    }
    const times = heard.times as [number, number][];
    return {
      errors: centred(arrivals.map(([i, at]) => at - played[i])),
      carried: centred(times.map(([i, at]) => at - played[i])),
      lost: played.length - new Set(arrivals.map(([i]) => i)).size,
      reordered,
      late: heard.timing?.late ?? 0,
      roundTrip: heard.roundTrip,
    };
  } finally {
    await writer.close().catch(() => {});
    await hub.status;
    await hubLines.return?.();
  }
}

function describe(run: WanRun): string {
  const show = (values: number[]) => {
    const errors = values.map(Math.abs);
    return `p50 ${quantile(errors, 0.5).toFixed(3)} p99 ${
      quantile(errors, 0.99).toFixed(3)
    } max ${Math.max(...errors).toFixed(3)} ms`;
  };
  return `error ${show(run.errors)} (time carried: ${show(run.carried)}), ` +
    `lost ${run.lost}, reordered ${run.reordered}, late ${run.late}, ` +
    `round trip ${run.roundTrip.toFixed(2)} ms`;
}

boundedTest(
  "over emulated Wi-Fi, a 40 ms playout delay on the client hub plays each note at its carried time + a constant, the link's jitter gone",
  async () => {
    // How close to 1 ms the playout keeps time is measured by
    // bench/timing_compare.ts, not asserted here: a test cannot tell the
    // hub's error from the machine's stalls. Asserted: nothing lost, order
    // kept, the time carried right, and the link's jitter (tens of ms) gone.
    const notes = 400;
    const timed = await timedOverWifi(40, notes);
    console.log(`latency 40: ${describe(timed)}`);
    assert.equal(timed.lost, 0);
    assert.equal(timed.reordered, 0);
    assert.ok(
      p99(timed.carried) < 1,
      `carried p99 ${p99(timed.carried)} ms (load ${loadAverage()})`,
    );
    assert.ok(timed.late <= notes / 100, `late ${timed.late}`);
    const bare = await timedOverWifi(0, notes);
    console.log(`latency 0: ${describe(bare)}`);
    assert.equal(bare.lost, 0);
    assert.ok(p99(bare.errors) > 5, `p99 ${p99(bare.errors)} ms`);
    assert.ok(
      p99(timed.errors) < p99(bare.errors) / 4,
      `p99 ${p99(timed.errors)} ms with the delay, ${
        p99(bare.errors)
      } without (load ${loadAverage()})`,
    );
  },
  {
    ignore: wanSkip("timed TCP over an emulated Wi-Fi link"),
    permissions: { ...LOOPBACK, run: true, read: true },
    ms: 150000,
  },
);

netTest(
  "a client that pings in a flood gets at most one answer every 5 ms",
  async () => {
    await using server = new PortServer("127.0.0.1", 0);
    const accepting = server.accept();
    const raw = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.port,
    });
    const started = performance.now();
    const pings = new Uint8Array(4 * 50_000);
    for (let i = 0; i < 50_000; i++) pings.set(pingFrame(i & 0x3fff), 4 * i);
    const writing = (async () => {
      await raw.write(helloLine(["timed"]));
      for (let at = 0; at < pings.length;) {
        at += await raw.write(pings.subarray(at));
      }
      await raw.write(encode(note(1)));
    })();
    await using accepted = await accepting;
    // The sentinel: every ping before it was read.
    assert.deepEqual(await take(accepted, 1), [note(1)]);
    const elapsed = performance.now() - started;
    await writing;
    const reading = readAll(raw, 10000);
    await accepted.close();
    const answer = await reading;
    const ok = okLine(["timed"]);
    assert.deepEqual(answer.subarray(0, ok.length), ok);
    const pongs = (answer.length - ok.length) / PONG_FRAME_BYTES;
    assert.ok(Number.isInteger(pongs), `${answer.length} bytes`);
    assert.ok(
      pongs >= 1 && pongs <= elapsed / 5 + 2,
      `${pongs} pongs in ${elapsed.toFixed(0)} ms`,
    );
  },
);
