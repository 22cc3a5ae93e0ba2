// The hub: routing by kind, held notes, policies, slow endpoints, fairness,
// events and counters. Most tests use in-process ports and a clock stepped
// by hand (tests/_clock.ts): what must not happen is shown by stepping the
// clock past the moment it would have, never by sleeping. Some use TCP.

import assert from "node:assert/strict";
import { setImmediate } from "node:timers";
import {
  connect,
  type Endpoint,
  FellBehindError,
  Hub,
  type HubEvent,
  HubLog,
  InputPortBase,
  type Message,
  message,
  NoteTracker,
  PortClosedError,
  PortServer,
  SINK,
  type Sink,
  systemClock,
} from "../mod.ts";
import { ManualClock } from "./_clock.ts";
import { spawn } from "./_cli.ts";
import {
  boundedTest,
  drain,
  LOOPBACK,
  netTest,
  take,
  until,
  within,
} from "./_net.ts";
import { Flood, RawReader } from "./_overload.ts";

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

/** An output whose sink takes batches and moves only when told to. */
class Stuck {
  readonly name = "stuck";
  closed = false;
  queued = 0;
  /** Its sink's progress count: bump it to say that it took something. */
  progress = 0;
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
      get progress() {
        return self.progress;
      },
      slow: "drop",
      drained: () => Promise.resolve(),
    };
  }
  /** Takes `bytes` of what waits. */
  take(bytes: number): void {
    this.queued = Math.max(0, this.queued - bytes);
    this.progress++;
  }
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * A remote reader the test reads for: what the hub writes waits, in order,
 * until `read(n)` takes it; `drained()` resolves when 4 KiB or less wait.
 */
class Reader {
  readonly name: string;
  closed = false;
  queued = 0;
  progress = 0;
  /** Every byte read so far, in order. */
  readonly got: number[] = [];
  #waiting: Uint8Array[] = [];
  #offset = 0;
  #drain: PromiseWithResolvers<void> | undefined;
  readonly [SINK]: Sink;
  constructor(name: string) {
    this.name = name;
    // deno-lint-ignore no-this-alias
    const self = this;
    this[SINK] = {
      write(batch) {
        if (self.closed) return false;
        if (self.queued === 0) self.progress++;
        self.#waiting.push(batch.bytes);
        self.queued += batch.bytes.length;
        return true;
      },
      get queuedBytes() {
        return self.queued;
      },
      get copiedBytes() {
        return 0;
      },
      get progress() {
        return self.progress;
      },
      slow: "drop",
      drained: () => {
        if (self.queued <= 4096) return Promise.resolve();
        self.#drain ??= Promise.withResolvers<void>();
        return self.#drain.promise;
      },
    };
  }
  /** Takes up to `bytes` of what waits. */
  read(bytes: number): void {
    while (bytes > 0 && this.#waiting.length > 0) {
      const head = this.#waiting[0];
      const n = Math.min(bytes, head.length - this.#offset);
      for (let i = 0; i < n; i++) this.got.push(head[this.#offset + i]);
      this.#offset += n;
      this.queued -= n;
      bytes -= n;
      if (this.#offset === head.length) {
        this.#waiting.shift();
        this.#offset = 0;
      }
    }
    this.progress++;
    if (this.queued <= 4096) {
      this.#drain?.resolve();
      this.#drain = undefined;
    }
  }
  close(): Promise<void> {
    this.closed = true;
    this.#drain?.resolve();
    return Promise.resolve();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

const note = (n: number, velocity = 64) =>
  message("note_on", { note: n, velocity });
const off = (n: number, channel = 0) =>
  message("note_off", { channel, note: n });

/** Sends a sentinel after everything else from `from`, and waits for it at `to`. */
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

/** One turn of the event loop: what is ready runs (no time passes). */
function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Notes on at a listener, after what it heard. */
function notesOn(heard: readonly Message[]): number {
  const notes = new NoteTracker();
  for (const msg of heard) notes.track(msg);
  return notes.size;
}

function hubTest(name: string, fn: () => Promise<void>): void {
  boundedTest(name, fn, { permissions: "none", ms: 20000 });
}

hubTest(
  "HubLog says the gate's warnings first, then transports' notices and warnings",
  async () => {
    await using hub = new Hub({ allow: ["10.1.2.3/8", "127.0.0.1"] });
    const said: string[] = [];
    const warned: string[] = [];
    using _log = new HubLog(hub, {
      say: (line) => said.push(line),
      warn: (line) => warned.push(line),
    });
    assert.deepEqual(warned, [
      'allow: address rule "10.1.2.3/8" has host bits set: it means the ' +
      "whole /8 range",
    ]);
    hub.notice("listening on 127.0.0.1:8080");
    hub.warn("something odd");
    assert.deepEqual(said, ["listening on 127.0.0.1:8080"]);
    assert.equal(warned[1], "something odd");
    await using plain = new Hub({ allow: ["127.0.0.1"] });
    assert.deepEqual(plain.gate.warnings, []);
  },
);

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
  const clock = new ManualClock();
  await using hub = new Hub({
    clock,
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
  // From a client: the long sysex is dropped, then the rate limit bites
  // (no time passes on the hub's clock: no token comes back).
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
  // A second later on the hub's clock, one token is back. The two messages
  // of the next read count as arrived over that second, evenly: the first
  // at half of it (half a token: dropped), the second at its end.
  clock.advance(1000);
  client.play(note(9), note(10));
  const endpoint = hub.endpoints.find((e) => e.name === "client")!;
  await until(() => endpoint.stats.dropped === 4);
  assert.equal(endpoint.stats.received, 4);
  assert.deepEqual(synth.heard.slice(3), [note(10)]);
});

hubTest(
  "a rate limit never drops the end of a note it let through: 300 notes at 100/100",
  async () => {
    const clock = new ManualClock();
    await using hub = new Hub({
      clock,
      rateLimit: { messages: 100, burst: 100 },
      releaseNotes: false,
    });
    const player = new Local("player", 1000);
    const listener = new Local("listener");
    const sentinel = new Local("sentinel");
    hub.add(player);
    hub.add(listener);
    hub.add(sentinel, { kind: "device" });
    // A burst: 300 notes on, then their 300 ends.
    const notes = Array.from({ length: 300 }, (_, i) => i);
    player.play(...notes.map((i) => message("note_on", { note: i % 128 })));
    player.play(...notes.map((i) => off(i % 128)));
    await settle(sentinel, [listener]);
    const ons = listener.heard.filter((m) => m.type === "note_on");
    const ends = listener.heard.filter((m) => m.type === "note_off");
    // The burst let 100 messages through, all of them notes on; every one
    // of those notes got its end, and nothing else did.
    assert.equal(ons.length, 100);
    assert.equal(notesOn(listener.heard), 0);
    assert.deepEqual(
      ends.map((m) => m.type === "note_off" && m.note),
      ons.map((m) => m.type === "note_on" && m.note),
    );
    const stats = hub.endpoints.find((e) => e.name === "player")!.stats;
    assert.equal(stats.dropped, 400);
    assert.equal(stats.heldNotes, 0);
  },
);

hubTest(
  "the controls that end notes pass a rate limit only when they end one",
  async () => {
    const clock = new ManualClock();
    await using hub = new Hub({
      clock,
      rateLimit: { messages: 1, burst: 4 },
      releaseNotes: false,
    });
    const player = new Local("player");
    const listener = new Local("listener");
    const sentinel = new Local("sentinel");
    hub.add(player);
    hub.add(listener);
    hub.add(sentinel, { kind: "device" });
    const cc = (channel: number, control: number) =>
      message("control_change", { channel, control });
    player.play(
      message("note_on", { channel: 1, note: 60 }),
      message("note_on", { channel: 2, note: 60 }),
      message("note_on", { channel: 3, note: 60 }),
      message("note_on", { channel: 4, note: 60 }),
      // Over the limit from here.
      cc(1, 121), // reset all controllers: ends nothing, dropped
      cc(1, 124), // omni off: ends channel 1's note
      cc(2, 127), // poly on: ends channel 2's note
      cc(2, 123), // all notes off: nothing left on channel 2, dropped
      cc(3, 120), // all sound off: ends channel 3's note
      cc(5, 123), // a channel with no notes: dropped
      message("reset"), // ends channel 4's note
      message("reset"), // nothing left: dropped
    );
    await settle(sentinel, [listener]);
    assert.deepEqual(listener.heard.slice(4), [
      cc(1, 124),
      cc(2, 127),
      cc(3, 120),
      message("reset"),
    ]);
    assert.equal(notesOn(listener.heard), 0);
  },
);

hubTest(
  "links have a limit of their own; devices none; a link's flood waits its turn",
  async () => {
    const clock = new ManualClock();
    assert.throws(
      () => new Hub({ linkRateLimit: { messages: 0 } }),
      /Link rate limit messages must be a positive number: got 0/,
    );
    await using hub = new Hub({
      clock,
      linkRateLimit: { messages: 10, burst: 10 },
    });
    const link = new Local("link", 200_000);
    const keys = new Local("keys");
    const listener = new Local("listener");
    hub.add(keys, { kind: "device" });
    hub.add(listener);
    // 20 notes and their ends from the link: 10 pass, and their ends.
    link.play(...Array.from({ length: 20 }, (_, i) => note(i)));
    link.play(...Array.from({ length: 20 }, (_, i) => off(i)));
    hub.add(link, { kind: "link" });
    await settle(keys, [listener]);
    assert.equal(listener.heard.length, 20);
    assert.equal(notesOn(listener.heard), 0);
    assert.equal(
      hub.endpoints.find((e) => e.name === "link")!.stats.dropped,
      20,
    );
    // The device has no limit.
    keys.play(...Array.from({ length: 50 }, (_, i) => note(i)));
    await settle(keys, [listener]);
    assert.equal(listener.heard.length, 70);
    // A flood from the link (a second later: 10 more tokens) delays a
    // device's message by one turn at most.
    clock.advance(1000);
    for (let i = 0; i < 100_000; i++) link.play(message("clock"));
    keys.play(note(0, 127));
    await until(() =>
      listener.heard.some((m) => m.type === "note_on" && m.velocity === 127)
    );
    const clocks = listener.heard.filter((m) => m.type === "clock").length;
    assert.ok(clocks <= 10, `${clocks} clocks passed the link's limit`);
  },
);

hubTest("active sensing from a client is answered, not relayed", async () => {
  const clock = new ManualClock();
  await using hub = new Hub({ clock });
  const a = new Local("a");
  const b = new Local("b");
  hub.add(a);
  hub.add(b);
  a.play(message("active_sensing"), note(1));
  await settle(a, [b]);
  assert.deepEqual(b.heard, [note(1)]);
  assert.deepEqual(a.heard, [message("active_sensing")]);
  // Answered at most every 100 ms of the hub's clock.
  a.play(message("active_sensing"));
  clock.advance(99);
  a.play(message("active_sensing"));
  clock.advance(1);
  a.play(message("active_sensing"));
  await settle(a, [b]);
  assert.deepEqual(a.heard, [
    message("active_sensing"),
    message("active_sensing"),
  ]);
});

hubTest("an endpoint that takes nothing is dropped", async () => {
  const clock = new ManualClock();
  const events: HubEvent[] = [];
  await using hub = new Hub({
    clock,
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
  await until(() => stuck.queued === 3);
  clock.advance(900);
  assert.ok(!events.some((e) => e.type === "leave"));
  player.play(message("sysex", { data: new Uint8Array(70_000) }));
  await until(() => stuck.queued > 70_000);
  // Half the bound waits: it is given maxLag, counted from the next check.
  clock.advance(250);
  assert.ok(!events.some((e) => e.type === "leave"));
  clock.advance(250);
  const leave = events.find((e) => e.type === "leave")!;
  assert.equal(leave.type === "leave" && leave.endpoint.name, "stuck");
  assert.ok(
    leave.type === "leave" && leave.reason instanceof FellBehindError &&
      leave.reason.stalled,
  );
  assert.equal(stuck.closed, true);
});

hubTest(
  "a reader that takes nothing while little waits is given up to 4 x maxLag",
  async () => {
    const clock = new ManualClock();
    const left: number[] = [];
    // 1 MiB bound: 70 KB waiting is far under half of it.
    await using hub = new Hub({
      clock,
      maxLag: 250,
      maxQueuedBytes: 1 << 20,
      onEvent: (e) => {
        if (e.type === "leave") left.push(clock.now());
      },
    });
    const player = new Local("player");
    const stuck = new Stuck();
    hub.add(player);
    hub.add(stuck);
    const started = clock.now();
    player.play(message("sysex", { data: new Uint8Array(70_000) }));
    await until(() => stuck.queued > 70_000);
    clock.advance(999);
    assert.deepEqual(left, []);
    clock.advance(1);
    assert.deepEqual(left, [started + 1000]);
    assert.equal(stuck.closed, true);
  },
);

hubTest(
  "past maxQueuedTotal, those taking nothing go first, until a quarter is free",
  async () => {
    const clock = new ManualClock();
    const left: HubEvent[] = [];
    await using hub = new Hub({
      clock,
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
    // Over one check, two take something and three take nothing.
    for (const i of [1, 4]) stuck[i].take(0);
    clock.advance(250);
    // Each is well under its own bound; together they are over the budget.
    player.play(message("sysex", { data: new Uint8Array(30_000) }));
    await until(() => left.length > 0, 5000);
    // 150 KB waited: the three that took nothing go; 60 KB are left, and
    // checks after that drop no one else.
    clock.advance(1000);
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
    await until(() => stuck[1].queued === 30_002 + 3);
    assert.equal(player.closed, false);
  },
);

hubTest("one big burst is not lag; staying behind is", async () => {
  const clock = new ManualClock();
  const left: Endpoint[] = [];
  await using hub = new Hub({
    clock,
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
  while (slow.queued > 0) {
    clock.advance(100);
    slow.take(1000);
  }
  clock.advance(1000);
  assert.equal(left.length, 0);
  // Now it stays over the bound: dropped after maxLag, at the check that
  // sees 400 ms of it (the second).
  player.play(message("sysex", { data: new Uint8Array(3000) }));
  await until(() => slow.queued > 1000);
  clock.advance(250);
  assert.equal(left.length, 0);
  clock.advance(250);
  assert.deepEqual(left.map((e) => e.name), ["stuck"]);
});

hubTest(
  "a reader that keeps taking holds a flood's senders back; a slow one is dropped",
  async () => {
    const clock = new ManualClock();
    const left: HubEvent[] = [];
    // Keeping up: 30,000 bytes every second (30 bytes a ms).
    await using hub = new Hub({
      clock,
      maxQueuedBytes: 30_000,
      maxLag: 1000,
      onEvent: (e) => {
        if (e.type === "leave") left.push(e);
      },
    });
    const reader = new Reader("reader");
    const slow = new Reader("slow");
    const player = new Local("player");
    hub.add(reader);
    hub.add(slow);
    hub.add(player, { output: false });
    // Over one check, the reader shows that it keeps up; the slow one that
    // it does not (it takes 100 bytes of 9000).
    player.play(...Array.from({ length: 3000 }, (_, i) => note(i % 128, 2)));
    await until(() => reader.queued === 9000 && slow.queued === 9000);
    reader.read(9000);
    slow.read(100);
    clock.advance(250);
    // Four senders flood: 150 KB each, far more than the readers take.
    const flooders = Array.from(
      { length: 4 },
      (_, i) => new Local(`f${i}`, 60_000),
    );
    for (const flooder of flooders) {
      for (let j = 0; j < 50_000; j++) flooder.play(note(j % 128, 1));
      hub.add(flooder, { output: false });
    }
    // Three seconds: the reader takes 10 KB every 50 ms (200 KB/s), the
    // slow one 50 bytes (1 KB/s). Half way, the player plays a note.
    let readAtNote = -1;
    let waitingAtNote = 0;
    let mostWaiting = 0;
    for (let ms = 0; ms < 3000; ms += 50) {
      if (ms === 1500) {
        readAtNote = reader.got.length;
        waitingAtNote = reader.queued;
        player.play(note(0, 127));
      }
      reader.read(10_000);
      slow.read(50);
      clock.advance(50);
      for (let i = 0; i < 4; i++) await turn();
      mostWaiting = Math.max(mostWaiting, reader.queued);
    }
    // The reader is still there; the slow one was dropped for its own lag.
    const names = left.map((e) => e.type === "leave" && e.endpoint.name);
    assert.deepEqual(names, ["slow"]);
    const reason = left[0].type === "leave" && left[0].reason;
    assert.ok(reason instanceof FellBehindError);
    // What waited for the reader stayed bounded: the senders waited.
    assert.ok(mostWaiting <= 15_000 + 4 * 4096 * 3, `${mostWaiting} waited`);
    const received = hub.endpoints
      .filter((e) => e.name.startsWith("f"))
      .map((e) => e.stats.received);
    assert.equal(received.length, 4);
    assert.ok(
      received.every((n) => n < 50_000),
      `the senders were not held back: ${received}`,
    );
    // Each sender got a fair share: one read a turn each.
    assert.ok(
      Math.max(...received) - Math.min(...received) <= 4096,
      `unfair shares: ${received}`,
    );
    assert.ok(reader.got.length >= 500_000, `read ${reader.got.length}`);
    // The player's note came after what waited then, and one turn at most.
    const at = findNote(reader.got, [0x90, 0, 127], readAtNote);
    assert.ok(at >= 0, "the player's note arrived");
    assert.ok(
      at - readAtNote <= waitingAtNote + 4 * 4096 * 3,
      `the note came ${at - readAtNote} bytes late`,
    );
  },
);

hubTest(
  "a link's flood is held back for local readers that keep up, like any input's",
  async () => {
    const clock = new ManualClock();
    const left: string[] = [];
    await using hub = new Hub({
      clock,
      maxQueuedBytes: 30_000,
      maxLag: 1000,
      onEvent: (e) => {
        if (e.type === "leave") left.push(e.endpoint.name);
      },
    });
    const reader = new Reader("reader");
    const keys = new Local("keys");
    const link = new Local("link", 200_000);
    hub.add(reader);
    const keyboard = hub.add(keys, { kind: "device", output: false });
    // A room floods in: 65,535 notes, as one big NATS frame brings them.
    for (let i = 0; i < 65_535; i++) link.play(note(i % 128, 1));
    const linked = hub.add(link, { kind: "link", output: false });
    // The local reader takes 10 KB every 50 ms (the flood is 196 KB); the
    // keyboard plays a note every 100 ms.
    let mostWaiting = 0;
    for (let ms = 0; ms < 3000; ms += 50) {
      if (ms % 100 === 0) {
        const played = keyboard.stats.received;
        keys.play(note(ms / 100, 127));
        await until(() => keyboard.stats.received === played + 1);
      }
      mostWaiting = Math.max(mostWaiting, reader.queued);
      reader.read(10_000);
      clock.advance(50);
      for (let i = 0; i < 4; i++) await turn();
    }
    // Nobody was dropped, nothing was lost: what waited for the reader
    // stayed under half its bound and one turn of the link.
    assert.deepEqual(left, []);
    assert.ok(mostWaiting <= 15_000 + 4096 * 3, `${mostWaiting} waited`);
    assert.equal(linked.stats.received, 65_535);
    assert.equal(keyboard.stats.received, 30);
    assert.equal(reader.got.length, (65_535 + 30) * 3);
  },
);

hubTest(
  "while a reader holds a flood back, inputs within their share go on",
  async () => {
    const clock = new ManualClock();
    await using hub = new Hub({ clock, maxQueuedBytes: 30_000, maxLag: 1000 });
    const reader = new Reader("reader");
    const flooder = new Local("flooder", 60_000);
    const player = new Local("player");
    hub.add(reader);
    const flooding = hub.add(flooder, { output: false });
    const playing = hub.add(player, { output: false });
    for (let j = 0; j < 50_000; j++) flooder.play(note(j % 128, 1));
    // Past half of its bound, the reader holds the flood back...
    await until(() => reader.queued > 15_000);
    const before = flooding.stats.received;
    assert.ok(before < 50_000);
    // ...but not the player, far within its share: its notes go through,
    // one read after another, and the flood has had no read since.
    player.play(note(0, 126));
    await until(() => playing.stats.received === 1);
    player.play(note(0, 127));
    await until(() => playing.stats.received === 2);
    assert.equal(flooding.stats.received, before);
    // Once the reader has caught up, the flood goes on.
    reader.read(reader.queued);
    await until(() => flooding.stats.received > before);
    assert.ok(
      findNote(reader.got, [0x90, 0, 127], 0) >= 0,
      "the player's note reached the reader",
    );
  },
);

/** Where the three bytes `part` start in `bytes`, from `from`, or -1. */
function findNote(bytes: number[], part: number[], from: number): number {
  for (let i = Math.max(0, from); i + 2 < bytes.length; i++) {
    if (
      bytes[i] === part[0] && bytes[i + 1] === part[1] &&
      bytes[i + 2] === part[2]
    ) {
      return i;
    }
  }
  return -1;
}

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
    const left: string[] = [];
    hub.add(player, { onLeave: () => left.push("player") });
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
    assert.deepEqual(left, ["player"]);
    const types: string[] = [];
    for await (const event of feed) types.push(event.type);
    assert.deepEqual(types.filter((t) => t === "leave").length, 3);
    assert.throws(() => hub.add(new Local("late")), PortClosedError);
    // A feed asked for after the close ends at once.
    assert.equal((await hub.events().next()).done, true);
  },
);

hubTest(
  "close waits two seconds of the hub's clock for ports, then aborts them",
  async () => {
    const clock = new ManualClock();
    const hub = new Hub({ clock });
    let aborted = false;
    const never = Promise.withResolvers<void>();
    // A port whose graceful close never ends, and that can be aborted.
    const port = Object.assign(new Local("slow to close"), {
      close: () => never.promise,
      abort: () => {
        aborted = true;
        never.resolve();
        return Promise.resolve();
      },
    });
    hub.add(port);
    let closed = false;
    const closing = hub.close().then(() => closed = true);
    await turn();
    clock.advance(1999);
    await turn();
    assert.equal(aborted, false);
    clock.advance(1);
    await within(closing, 5000, "the close");
    assert.ok(aborted && closed);
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
  assert.throws(
    () => new Hub({ maxSysexLength: -1 }),
    /maxSysexLength must be a non-negative integer: got -1/,
  );
  assert.throws(
    () => new Hub({ activeSensing: "maybe" as never }),
    /activeSensing must be "link" or "relay": got "maybe"/,
  );
  assert.throws(
    () => new Hub({ clock: { now: () => 0 } as never }),
    /clock must have now\(\) and setTimer\(\)/,
  );
  assert.throws(() => new Hub({ allow: ["10.0.0.300"] }), SyntaxError);
  assert.throws(() => hub.events({ queueSize: 0 }), /queueSize must be/);
  const a = new Local("a");
  const endpoint = hub.add(a);
  assert.throws(
    () => hub.inject(endpoint, [{ type: "nope" } as never]),
    TypeError,
  );
});

hubTest("a hub's options and their defaults, as it reports them", async () => {
  const clock = new ManualClock();
  await using hub = new Hub({ clock, sysexIn: 100 });
  assert.equal(hub.clock, clock);
  assert.equal(hub.maxSysexLength, 100);
  await using plain = new Hub();
  assert.equal(plain.clock, systemClock);
  assert.equal(plain.maxSysexLength, 1 << 20);
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
  const clock = new ManualClock();
  const left: string[] = [];
  await using hub = new Hub({
    clock,
    idleTimeout: 300,
    onEvent: (e) => {
      if (e.type === "leave") left.push(e.endpoint.name);
    },
  });
  const idle = new Local("idle");
  const busy = new Local("busy");
  hub.add(idle);
  hub.add(busy);
  // The busy one sends every 50 ms, and the idle one hears it (had it been
  // dropped, it would not); the idle one sends nothing. The check at 250 ms
  // finds both under the limit; the one at 500 ms drops the idle one.
  for (let ms = 0; ms < 500; ms += 50) {
    busy.play(message("clock"));
    const heard = idle.heard.length;
    await until(() => idle.heard.length === heard + 1);
    clock.advance(50);
  }
  await until(() => left.length > 0);
  assert.deepEqual(left, ["idle"]);
  assert.deepEqual(hub.endpoints.map((e) => e.name), ["busy"]);
});

hubTest(
  "a note tracker ends notes as MIDI 1.0 says: 120, 123-127, reset",
  () => {
    const notes = new NoteTracker();
    const on = (channel: number, n: number) =>
      notes.track(message("note_on", { channel, note: n }));
    const cc = (channel: number, control: number) =>
      notes.track(message("control_change", { channel, control }));
    for (let channel = 0; channel < 8; channel++) on(channel, 60);
    cc(0, 121); // reset all controllers ends nothing
    cc(0, 122); // local control neither
    assert.equal(notes.size, 8);
    [120, 123, 124, 125, 126, 127].forEach((control, i) => cc(i, control));
    assert.equal(notes.size, 2);
    notes.track(message("note_on", { channel: 6, note: 61, velocity: 0 }));
    assert.equal(notes.size, 2);
    notes.track(message("reset"));
    assert.equal(notes.size, 0);
    assert.deepEqual(notes.release(), []);
    return Promise.resolve();
  },
);

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

netTest(
  "over TCP, a rate limit of 100/100 leaves no note of a 300-note burst on",
  async () => {
    await using hub = new Hub({
      rateLimit: { messages: 100, burst: 100 },
      releaseNotes: false,
    });
    await using server = await hub.attach(new PortServer("127.0.0.1", 0));
    await using listener = await connect("127.0.0.1", server.port);
    await using other = await connect("127.0.0.1", server.port);
    const player = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.port,
    });
    await until(() => hub.endpoints.length === 3);
    const burst = new Uint8Array(300 * 6);
    for (let i = 0; i < 300; i++) {
      burst.set([0x90, i % 128, 100], i * 3);
      burst.set([0x80, i % 128, 0], 900 + i * 3);
    }
    const leave = hub.events();
    await player.write(burst);
    player.close();
    for await (const event of leave) if (event.type === "leave") break;
    // Everything the player sent was routed before it left: a sentinel now
    // comes after all of it.
    await other.send(message("song_select", { song: 1 }));
    const heard: Message[] = [];
    while (heard.at(-1)?.type !== "song_select") {
      heard.push(await within(listener.receive(), 5000, "the sentinel"));
    }
    const ons = heard.filter((m) => m.type === "note_on").length;
    assert.ok(ons >= 100 && ons < 300, `${ons} notes passed`);
    assert.equal(notesOn(heard), 0);
  },
);

boundedTest(
  "20 flooders do not get a reader that keeps reading dropped, and a held note is released to it",
  async () => {
    // The hub as serve runs it, in its own process; the flood in another.
    await using serve = spawn("serve", ["127.0.0.1:0"]);
    const port = await serve.listening();
    const reader = await RawReader.open(port, new Uint8Array([0x80, 60, 0]));
    // A player that reads (and drops) what it hears, and holds a note.
    const player = await RawReader.open(port, new Uint8Array([0xff, 0xff]));
    await serve.waitFor(/^connect .*\(2 clients\)/, 10000);
    await player.conn.write(new Uint8Array([0x90, 60, 100]));
    {
      await using flood = new Flood(port, 20);
      await flood.started;
      const readerName = `127.0.0.1:${reader.conn.localAddr.port}`;
      const dropped = () =>
        `the reader was dropped: ${
          serve.lines.find((l) => l.startsWith(`disconnect ${readerName} `))
        }`;
      // The reader is flooded...
      const from = reader.bytes;
      await until(
        () => reader.bytes > from + (4 << 20) || reader.closedAt !== undefined,
        10000,
        "the flood",
      );
      assert.equal(reader.closedAt, undefined, dropped());
      // ...and the player leaves while it lasts: its note is released to
      // the reader.
      player.close();
      await player.done;
      await within(reader.found, 10000, "the released note");
      // The flooders, which never read, are dropped; the reader stays.
      const playerName = `127.0.0.1:${player.conn.localAddr.port}`;
      const gone = () =>
        serve.lines.filter((l) =>
          l.startsWith("disconnect ") &&
          !l.startsWith(`disconnect ${readerName} `) &&
          !l.startsWith(`disconnect ${playerName} `)
        ).length;
      await until(() => gone() === 20, 20000, "the flooders dropped");
      assert.equal(reader.closedAt, undefined, dropped());
      assert.ok(
        serve.lines.filter((l) => / fell behind: /.test(l)).length >= 20,
        "the flooders fell behind",
      );
    }
    // Still served: a message from a new client reaches it.
    const at = reader.bytes;
    await using late = await connect("127.0.0.1", port);
    await late.send(message("tune_request"));
    await until(() => reader.bytes > at, 5000, "the reader served again");
    assert.equal(reader.closedAt, undefined);
    reader.close();
    await reader.done;
  },
  { permissions: { ...LOOPBACK, run: true, read: true }, ms: 60000 },
);
