// The hub: routing by kind, held notes, policies, slow endpoints, fairness,
// events and counters. Most tests use in-process ports; some use TCP.

import assert from "node:assert/strict";
import {
  connect,
  type Endpoint,
  FellBehindError,
  Hub,
  type HubEvent,
  InputPortBase,
  type Message,
  message,
  PortClosedError,
  PortServer,
  SINK,
  type Sink,
} from "../mod.ts";
import { boundedTest, drain, netTest, take, until } from "./_net.ts";

/** An in-process port: `play` is what it sends, `heard` what it got. */
class Local extends InputPortBase {
  readonly name: string;
  readonly heard: Message[] = [];
  closes = 0;
  constructor(name: string, queueSize?: number) {
    super(queueSize);
    this.name = name;
  }
  play(...messages: Message[]): void {
    for (const msg of messages) assert.ok(this.deliver(msg), "queue full");
  }
  /** Ends its input, as a peer going away does. */
  leave(): void {
    this.finish();
  }
  send(msg: Message): Promise<void> {
    if (this.closed) return Promise.reject(new PortClosedError(this.name));
    this.heard.push(msg);
    return Promise.resolve();
  }
  reset(): Promise<void> {
    return Promise.resolve();
  }
  panic(): Promise<void> {
    return Promise.resolve();
  }
  close(): Promise<void> {
    this.closes++;
    this.finish(undefined, true);
    return Promise.resolve();
  }
}

/** An output whose sink takes batches and never makes progress. */
class Stuck {
  readonly name = "stuck";
  closed = false;
  queued = 0;
  progressAt = performance.now();
  readonly [SINK]: Sink;
  /** @param copies Whether it holds its own copies (or shares batches). */
  constructor(copies = false) {
    // deno-lint-ignore no-this-alias
    const self = this;
    this[SINK] = {
      write(batch) {
        if (self.closed) return false;
        self.queued += batch.bytes.length;
        return true;
      },
      get queuedBytes() {
        return self.queued;
      },
      get copiedBytes() {
        return copies ? self.queued : 0;
      },
      get progressAt() {
        return self.progressAt;
      },
      slow: "drop",
      drained: () => Promise.resolve(),
    };
  }
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

const note = (n: number, velocity = 64) =>
  message("note_on", { note: n, velocity });

/** Sends `last` after everything else from `from`, and waits for it at `to`. */
async function settle(from: Local, to: Local[]): Promise<void> {
  const sentinel = message("song_select", { song: 127 });
  from.play(sentinel);
  await until(
    () => to.every((port) => port.heard.some((m) => m.type === "song_select")),
    5000,
    "the sentinel",
  );
  for (const port of to) {
    const i = port.heard.findIndex((m) => m.type === "song_select");
    port.heard.splice(i, 1);
  }
}

/** Lets the hub's checks run for `ms`. */
function settleTicks(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function hubTest(name: string, fn: () => Promise<void>): void {
  boundedTest(name, fn, { permissions: "none", ms: 20000 });
}

hubTest("clients hear each other, never their own messages", async () => {
  await using hub = new Hub();
  const [a, b, c] = ["a", "b", "c"].map((n) => new Local(n));
  for (const port of [a, b, c]) hub.add(port);
  a.play(note(1));
  b.play(note(2));
  await settle(c, [a, b]);
  await settle(a, [b, c]);
  assert.deepEqual(a.heard, [note(2)]);
  assert.deepEqual(b.heard, [note(1)]);
  assert.deepEqual(c.heard, [note(1), note(2)]);
});

hubTest("without relay, clients reach devices only", async () => {
  await using hub = new Hub({ relay: false });
  const a = new Local("a");
  const b = new Local("b");
  const synth = new Local("synth");
  hub.add(a);
  hub.add(b);
  hub.add(synth, { kind: "device" });
  a.play(note(1));
  await settle(a, [synth]);
  assert.deepEqual(synth.heard, [note(1)]);
  // The device reaches every client; the sentinel went to no client.
  synth.play(note(9));
  await settle(synth, [a, b]);
  assert.deepEqual(a.heard, [note(9)]);
  assert.deepEqual(b.heard, [note(9)]);
});

hubTest("devices do not hear devices, links do not hear links", async () => {
  await using hub = new Hub();
  const keys = new Local("keys");
  const synth = new Local("synth");
  const north = new Local("north");
  const south = new Local("south");
  const client = new Local("client");
  hub.add(keys, { kind: "device" });
  hub.add(synth, { kind: "device" });
  hub.add(north, { kind: "link" });
  hub.add(south, { kind: "link" });
  hub.add(client);
  keys.play(note(1));
  north.play(note(2));
  await settle(keys, [client, north, south]);
  await settle(north, [client, synth]);
  assert.deepEqual(synth.heard, [note(2)]);
  assert.deepEqual(south.heard, [note(1)]);
  assert.deepEqual(client.heard, [note(1), note(2)]);
});

hubTest("a route option decides who hears whom", async () => {
  const routes: string[] = [];
  await using hub = new Hub({
    route: (from, to) => {
      routes.push(`${from.name}>${to.name}`);
      return to.name !== "deaf";
    },
  });
  const a = new Local("a");
  const deaf = new Local("deaf");
  const b = new Local("b");
  for (const port of [a, deaf, b]) hub.add(port);
  a.play(note(5));
  await settle(a, [b]);
  assert.deepEqual(deaf.heard, []);
  assert.deepEqual(b.heard, [note(5)]);
  assert.ok(routes.includes("a>deaf"));
});

hubTest(
  "a leaving endpoint's held notes are released where they went",
  async () => {
    const events: HubEvent[] = [];
    await using hub = new Hub({ onEvent: (e) => events.push(e) });
    const player = new Local("player");
    const listener = new Local("listener");
    hub.add(player);
    hub.add(listener);
    player.play(
      note(60),
      note(64),
      message("note_off", { note: 60 }),
      message("note_on", { channel: 3, note: 40 }),
      message("control_change", { channel: 3, control: 123 }),
      note(67),
    );
    player.leave();
    await until(() => events.some((e) => e.type === "leave"));
    assert.deepEqual(listener.heard.slice(6), [
      message("note_off", { note: 64, velocity: 0 }),
      message("note_off", { note: 67, velocity: 0 }),
    ]);
    const leave = events.find((e) => e.type === "leave");
    assert.equal(leave?.type === "leave" && leave.released, 2);
    assert.equal(player.closes, 1);
  },
);

hubTest("releaseNotes: false leaves notes as they are", async () => {
  await using hub = new Hub({ releaseNotes: false });
  const player = new Local("player");
  const listener = new Local("listener");
  const sentinel = new Local("sentinel");
  hub.add(player);
  hub.add(listener);
  hub.add(sentinel);
  player.play(note(60));
  player.leave();
  await until(() => hub.endpoints.length === 2);
  await settle(sentinel, [listener]);
  assert.deepEqual(listener.heard, [note(60)]);
});

hubTest("sysex and rate policies apply to clients, not devices", async () => {
  await using hub = new Hub({
    sysexIn: 4,
    sysexOut: "drop",
    rateLimit: { messages: 1, burst: 3 },
  });
  const client = new Local("client");
  const other = new Local("other");
  const keys = new Local("keys");
  const synth = new Local("synth");
  hub.add(client);
  hub.add(other);
  hub.add(keys, { kind: "device" });
  hub.add(synth, { kind: "device" });
  const small = message("sysex", { data: [1, 2] });
  const big = message("sysex", { data: [1, 2, 3, 4, 5] });
  // From a client: the long sysex is dropped, then the rate limit bites.
  client.play(small, big, note(1), note(2), note(3), note(4));
  await until(() => synth.heard.length === 3);
  assert.deepEqual(synth.heard, [small, note(1), note(2)]);
  // Sysex never goes out to clients; devices send as they like.
  keys.play(big, note(5), note(6), note(7), note(8));
  await until(() => other.heard.length === 6);
  assert.deepEqual(other.heard, [
    note(1),
    note(2),
    note(5),
    note(6),
    note(7),
    note(8),
  ]);
  const stats = hub.endpoints.find((e) => e.name === "client")!.stats;
  assert.equal(stats.received, 3);
  assert.equal(stats.dropped, 3);
});

hubTest("active sensing from a client is answered, not relayed", async () => {
  await using hub = new Hub();
  const a = new Local("a");
  const b = new Local("b");
  hub.add(a);
  hub.add(b);
  a.play(message("active_sensing"), note(1));
  await settle(a, [b]);
  assert.deepEqual(b.heard, [note(1)]);
  assert.deepEqual(a.heard, [message("active_sensing")]);
});

hubTest("an endpoint that takes nothing is dropped", async () => {
  const events: HubEvent[] = [];
  await using hub = new Hub({
    maxLag: 300,
    maxQueuedBytes: 140_000,
    onEvent: (e) => events.push(e),
  });
  const player = new Local("player");
  const stuck = new Stuck();
  hub.add(player);
  hub.add(stuck);
  // A few bytes that do not move are let be; 64 KiB are not.
  player.play(note(1));
  await settleTicks(900);
  assert.ok(!events.some((e) => e.type === "leave"));
  player.play(message("sysex", { data: new Uint8Array(70_000) }));
  await until(() => events.some((e) => e.type === "leave"), 5000);
  const leave = events.find((e) => e.type === "leave")!;
  assert.equal(leave.type === "leave" && leave.endpoint.name, "stuck");
  assert.ok(
    leave.type === "leave" && leave.reason instanceof FellBehindError,
  );
  assert.equal(stuck.closed, true);
});

hubTest(
  "a reader that takes nothing while little waits is given up to 4 x maxLag",
  async () => {
    const left: number[] = [];
    // 1 MiB bound: 70 KB waiting is far under half of it.
    await using hub = new Hub({
      maxLag: 250,
      maxQueuedBytes: 1 << 20,
      onEvent: (e) => {
        if (e.type === "leave") left.push(performance.now());
      },
    });
    const player = new Local("player");
    const stuck = new Stuck();
    hub.add(player);
    hub.add(stuck);
    const started = performance.now();
    player.play(message("sysex", { data: new Uint8Array(70_000) }));
    await until(() => left.length === 1, 5000);
    const waited = left[0] - started;
    // Counted time never runs ahead of the clock: not before 4 x maxLag.
    assert.ok(waited >= 1000, `dropped after ${waited} ms`);
    assert.equal(stuck.closed, true);
  },
);

hubTest(
  "past maxQueuedTotal, those taking nothing go first, until a quarter is free",
  async () => {
    const left: HubEvent[] = [];
    await using hub = new Hub({
      maxQueuedBytes: 100_000,
      maxQueuedTotal: 100_000,
      onEvent: (e) => {
        if (e.type === "leave") left.push(e);
      },
    });
    assert.throws(
      () => new Hub({ maxQueuedTotal: 0 }),
      /maxQueuedTotal must be a positive/,
    );
    assert.throws(
      () => new Hub({ maxQueuedBytes: 2000, maxQueuedTotal: 1000 }),
      /maxQueuedTotal must be at least maxQueuedBytes \(2000\): got 1000/,
    );
    const player = new Local("player");
    hub.add(player);
    const stuck = Array.from({ length: 5 }, () => new Stuck(true));
    stuck.forEach((port, i) => hub.add(port, { name: `s${i}` }));
    // One that holds what it is sent by reference, shared: it counts nothing.
    const sharing = new Stuck(false);
    hub.add(sharing, { name: "sharing" });
    // Each is well under its own bound; together they are over the budget.
    // Three took nothing for a while; two keep taking.
    for (const [i, ago] of [[0, 900], [2, 700], [3, 800]]) {
      stuck[i].progressAt = performance.now() - ago;
    }
    for (const i of [1, 4]) stuck[i].progressAt = performance.now() + 60_000;
    player.play(message("sysex", { data: new Uint8Array(30_000) }));
    await until(() => left.length > 0, 5000);
    await settleTicks(600);
    // 150 KB waited: the three that took nothing go; 60 KB are left.
    const names = left.map((e) => e.type === "leave" && e.endpoint.name);
    assert.deepEqual(names.sort(), ["s0", "s2", "s3"]);
    for (const e of left) {
      const reason = e.type === "leave" && e.reason;
      assert.ok(reason instanceof FellBehindError);
      assert.equal(reason.budget, 100_000);
      assert.match(
        reason.message,
        /dropped to bring what waits for all endpoints under 100000 bytes/,
      );
    }
    const kept = stuck.filter((port) => !port.closed);
    assert.deepEqual(kept, [stuck[1], stuck[4]]);
    assert.equal(sharing.closed, false);
    assert.ok(kept.reduce((n, port) => n + port.queued, 0) <= 75_000);
    // The hub goes on routing to the rest.
    player.play(note(1));
    await settleTicks(300);
    assert.equal(player.closed, false);
  },
);

hubTest("one big burst is not lag; staying behind is", async () => {
  const left: Endpoint[] = [];
  await using hub = new Hub({
    maxQueuedBytes: 1000,
    maxLag: 400,
    onEvent: (e) => {
      if (e.type === "leave") left.push(e.endpoint);
    },
  });
  const player = new Local("player");
  // Behind by more than the bound, but taking bytes: not dropped while it
  // catches up within maxLag.
  const slow = new Stuck();
  hub.add(player);
  hub.add(slow);
  player.play(message("sysex", { data: new Uint8Array(3000) }));
  await until(() => slow.queued > 1000);
  const started = performance.now();
  const drainer = setInterval(() => {
    slow.queued = Math.max(0, slow.queued - 1000);
    (slow as unknown as { progressAt: number }).progressAt = performance.now();
  }, 50);
  await until(() => slow.queued === 0);
  clearInterval(drainer);
  assert.ok(performance.now() - started < 400);
  assert.equal(left.length, 0);
  // Now it stays over the bound: dropped within about maxLag.
  player.play(message("sysex", { data: new Uint8Array(3000) }));
  await until(() => left.length === 1, 5000);
  assert.equal(left[0].name, "stuck");
});

hubTest(
  "a flood from one endpoint delays another's message by a turn at most",
  async () => {
    await using hub = new Hub();
    const flooder = new Local("flooder", 200_000);
    const player = new Local("player");
    const listener = new Local("listener");
    hub.add(listener);
    for (let i = 0; i < 100_000; i++) flooder.play(note(i % 128, 1));
    hub.add(flooder);
    hub.add(player);
    player.play(note(0, 127));
    await until(() =>
      listener.heard.some((m) => m.type === "note_on" && m.velocity === 127)
    );
    const at = listener.heard.findIndex((m) =>
      m.type === "note_on" && m.velocity === 127
    );
    // The flood's first turn may come first; the rest waits behind.
    assert.ok(at <= 4096, `the player's note came after ${at} flood messages`);
    await until(() => listener.heard.length === 100_001, 10000);
  },
);

hubTest("events: join, leave, message and a bounded feed", async () => {
  await using hub = new Hub();
  const feed = hub.events({ messages: true });
  const small = hub.events({ queueSize: 1 });
  const a = new Local("a");
  const b = new Local("b");
  hub.add(a);
  hub.add(b);
  a.play(note(1));
  a.leave();
  const got: string[] = [];
  for await (const event of feed) {
    got.push(
      event.type === "message"
        ? `message ${event.endpoint.name} ${event.message.type}`
        : `${event.type} ${"endpoint" in event ? event.endpoint?.name : ""}`,
    );
    if (event.type === "leave") break;
  }
  assert.deepEqual(got, ["join a", "join b", "message a note_on", "leave a"]);
  // The small feed kept one event and counted the rest as missed.
  const first = await small.next();
  const second = await small.next();
  assert.equal(first.value?.type, "missed");
  assert.equal(second.value?.type, "join");
  small.close();
  assert.equal((await small.next()).done, true);
});

hubTest(
  "close releases held notes, closes every port, and ends feeds",
  async () => {
    const hub = new Hub();
    const feed = hub.events();
    const player = new Local("player");
    const listener = new Local("listener");
    const kept = new Local("kept");
    hub.add(player);
    hub.add(listener);
    hub.add(kept, { close: false });
    player.play(note(60));
    await until(() => listener.heard.length === 1);
    await hub.close();
    await hub.close();
    assert.deepEqual(listener.heard, [
      note(60),
      message("note_off", { note: 60, velocity: 0 }),
    ]);
    assert.equal(player.closed && listener.closed, true);
    assert.equal(kept.closed, false);
    assert.equal(hub.endpoints.length, 0);
    const types: string[] = [];
    for await (const event of feed) types.push(event.type);
    assert.deepEqual(types.filter((t) => t === "leave").length, 3);
    assert.throws(() => hub.add(new Local("late")), PortClosedError);
  },
);

hubTest("bad endpoints and options are refused clearly", async () => {
  await using hub = new Hub();
  assert.throws(
    () => hub.add({ name: "nothing" } as never),
    /Cannot add "nothing" to a hub: it is neither an input/,
  );
  assert.throws(() => new Hub({ maxLag: 0 }), /maxLag must be a positive/);
  assert.throws(() => new Hub({ sysexIn: -2 }), /sysexIn must be/);
  assert.throws(() => new Hub({ allow: ["10.0.0.300"] }), SyntaxError);
  const a = new Local("a");
  const endpoint = hub.add(a);
  assert.throws(
    () => hub.inject(endpoint, [{ type: "nope" } as never]),
    TypeError,
  );
});

hubTest("inject routes from an endpoint; remove closes it", async () => {
  await using hub = new Hub();
  const a = new Local("a");
  const b = new Local("b");
  const ea = hub.add(a);
  hub.add(b);
  hub.inject(ea, [note(3)]);
  hub.inject(ea, [note(4)]);
  // Injected in one turn, routed together.
  await until(() => b.heard.length === 2);
  assert.deepEqual(b.heard, [note(3), note(4)]);
  await hub.remove(ea, new Error("enough"));
  assert.equal(a.closed, true);
  assert.throws(() => hub.inject(ea, [note(5)]), PortClosedError);
  assert.deepEqual(hub.endpoints.map((e) => e.name), ["b"]);
});

hubTest("idle clients are dropped after idleTimeout", async () => {
  const left: string[] = [];
  await using hub = new Hub({
    idleTimeout: 300,
    onEvent: (e) => {
      if (e.type === "leave") left.push(e.endpoint.name);
    },
  });
  const idle = new Local("idle");
  const busy = new Local("busy");
  hub.add(idle);
  hub.add(busy);
  const timer = setInterval(() => busy.play(message("clock")), 50);
  await until(() => left.length === 1, 5000);
  clearInterval(timer);
  assert.deepEqual(left, ["idle"]);
});

netTest(
  "a reader of the server itself is waited for, not dropped",
  async () => {
    await using server = new PortServer("127.0.0.1", 0, { queueSize: 16 });
    server.poll();
    await using client = await connect("127.0.0.1", server.port);
    const sent = Array.from(
      { length: 5000 },
      (_, i) => note(i % 128, 1 + i % 127),
    );
    await client.sendAll(sent);
    // Nobody reads for a while: the server's queue is full, and it waits.
    await until(() => server.hub.endpoints.length === 2);
    assert.deepEqual(await take(server, 5000, 10000), sent);
  },
);

netTest(
  "2000 clients come and go: the hub keeps no trace of them",
  async () => {
    await using server = new PortServer("127.0.0.1", 0, { releaseNotes: true });
    server.poll();
    for (let round = 0; round < 40; round++) {
      const clients = await Promise.all(
        Array.from({ length: 50 }, () => connect("127.0.0.1", server.port)),
      );
      await Promise.all(clients.map((c) => c.send(note(round % 128))));
      await Promise.all(clients.map((c) => c.close()));
    }
    await until(() => server.hub.endpoints.length === 1, 10000, "all gone");
    assert.equal(server.clients.length, 0);
    assert.equal(server.hub.gate.clients, 0);
    assert.equal(server.hub.gate.pending, 0);
    // Each sent a note and left: 2000 notes and 2000 releases.
    const got = await take(server, 4000, 10000);
    assert.equal(got.filter((m) => m.type === "note_off").length, 2000);
    assert.equal(server.poll(), undefined);
  },
);

netTest("a dropped TCP client's own messages still go through", async () => {
  await using hub = new Hub({ maxLag: 200 });
  await using server = await hub.attach(new PortServer("127.0.0.1", 0));
  await using listener = await connect("127.0.0.1", server.port);
  // A raw client that sends, then never reads while a flood goes to it.
  const raw = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  await until(() => hub.endpoints.length === 2);
  await raw.write(new Uint8Array([0x90, 60, 64]));
  assert.deepEqual(await take(listener, 1), [note(60)]);
  const big = message("sysex", { data: new Uint8Array(60_000) });
  const left = hub.events();
  for (let i = 0; i < 200; i++) await listener.send(big);
  for await (const event of left) if (event.type === "leave") break;
  // The note it held is released to the listener as it leaves.
  assert.deepEqual(await take(listener, 1), [
    message("note_off", { note: 60, velocity: 0 }),
  ]);
  raw.close();
  await listener.close();
  assert.deepEqual(await drain(listener), []);
});
