// The hub's playout delay: plain endpoints hear each message at its time
// plus the delay, timed endpoints at once with its time, late ones at once
// and counted, order kept per source; on a clock the test steps by hand.

import assert from "node:assert/strict";
import { Hub, type HubEvent, type Message, message } from "../mod.ts";
import { ManualClock } from "./_clock.ts";
import { PlainEndpoint, Player, TimedEndpoint } from "./_timed_ports.ts";

/** An output that notes when it heard what. */
class Listener extends PlainEndpoint {
  readonly name: string;
  readonly heard: [string, number][] = [];
  readonly #clock: ManualClock;
  constructor(name: string, clock: ManualClock) {
    super();
    this.name = name;
    this.#clock = clock;
  }
  protected hear(msg: Message): void {
    this.heard.push([describe(msg), this.#clock.now()]);
  }
}

/** A timed endpoint: hears each batch at once, with its time. */
class TimedListener extends TimedEndpoint {
  readonly name = "timed";
  readonly heard: [string, number | undefined][] = [];
  protected hear(msg: Message, at: number | undefined): void {
    this.heard.push([describe(msg), at]);
  }
}

function describe(msg: Message): string {
  return msg.type === "note_on" || msg.type === "note_off"
    ? `${msg.type} ${msg.note}`
    : msg.type;
}

const on = (note: number) => message("note_on", { note });

function timingTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, permissions: "none", fn });
}

/** Lets the hub's promise chains run (a plain port's sends are async). */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

timingTest(
  "plain endpoints hear each message at its time plus the delay; timed ones at once",
  async () => {
    const clock = new ManualClock();
    await using hub = new Hub({ clock, latency: 40 });
    const player = new Player("player");
    const plain = new Listener("plain", clock);
    const timed = new TimedListener();
    hub.add(player);
    hub.add(plain, { kind: "device" });
    hub.add(timed, { kind: "device" });
    const t0 = clock.now();
    // Sent 3 ms ago (the network took that long), and one now.
    player.play(on(60), t0 - 3);
    player.play(on(61));
    assert.deepEqual(timed.heard, [["note_on 60", t0 - 3], ["note_on 61", t0]]);
    await settle();
    assert.deepEqual(plain.heard, []);
    clock.advance(36.9);
    await settle();
    assert.deepEqual(plain.heard, []);
    clock.advance(0.1);
    await settle();
    assert.deepEqual(plain.heard, [["note_on 60", t0 + 37]]);
    clock.advance(3);
    await settle();
    assert.deepEqual(plain.heard.at(-1), ["note_on 61", t0 + 40]);
    assert.deepEqual(hub.timing, {
      delivered: 2,
      late: 0,
      worstLateMs: 0,
      latency: 40,
    });
  },
);

timingTest(
  "a message past its due time goes at once, counted late; a source's order holds",
  async () => {
    const clock = new ManualClock();
    await using hub = new Hub({ clock, latency: 20 });
    const a = new Player("a");
    const b = new Player("b");
    const plain = new Listener("plain", clock);
    hub.add(a);
    hub.add(b);
    hub.add(plain, { kind: "device" });
    const t0 = clock.now();
    a.play(on(1), t0);
    // Stalled on the way: due 5 ms ago, but a's first note still waits.
    a.play(on(2), t0 - 25);
    // Another source's late note does not wait for a's.
    b.play(on(3), t0 - 30);
    await settle();
    assert.deepEqual(plain.heard, [["note_on 3", t0]]);
    clock.advance(20);
    await settle();
    assert.deepEqual(plain.heard, [
      ["note_on 3", t0],
      ["note_on 1", t0 + 20],
      ["note_on 2", t0 + 20],
    ]);
    const timing = hub.timing!;
    assert.equal(timing.late, 2);
    assert.equal(timing.worstLateMs, 10);
  },
);

timingTest(
  "a time in the future is taken as now, and no delay means today's hub",
  async () => {
    const clock = new ManualClock();
    {
      await using hub = new Hub({ clock, latency: 10 });
      const player = new Player("p");
      const plain = new Listener("plain", clock);
      hub.add(player);
      hub.add(plain, { kind: "device" });
      const t0 = clock.now();
      player.play(on(5), t0 + 10_000);
      clock.advance(10);
      await settle();
      assert.deepEqual(plain.heard, [["note_on 5", t0 + 10]]);
    }
    await using hub = new Hub({ clock });
    assert.equal(hub.timing, undefined);
    const player = new Player("p");
    const plain = new Listener("plain", clock);
    hub.add(player);
    hub.add(plain, { kind: "device" });
    player.play(on(6), clock.now() - 50);
    await settle();
    assert.deepEqual(plain.heard, [["note_on 6", clock.now()]]);
  },
);

timingTest(
  "notes released when a source leaves come after its delayed notes",
  async () => {
    const clock = new ManualClock();
    await using hub = new Hub({ clock, latency: 30 });
    const player = new Player("p");
    const plain = new Listener("plain", clock);
    hub.add(player);
    hub.add(plain, { kind: "device" });
    const t0 = clock.now();
    player.play(on(60));
    player.leave();
    clock.advance(30);
    await settle();
    assert.deepEqual(plain.heard, [
      ["note_on 60", t0 + 30],
      ["note_off 60", t0 + 30],
    ]);
  },
);

timingTest(
  "closing the hub delivers what the delay holds before the ports close",
  async () => {
    const clock = new ManualClock();
    const hub = new Hub({ clock, latency: 500 });
    const player = new Player("p");
    const plain = new Listener("plain", clock);
    hub.add(player);
    hub.add(plain, { kind: "device" });
    player.play(message("control_change", { control: 7, value: 100 }));
    const closing = hub.close();
    // The hub's close deadline runs on its clock.
    for (let i = 0; i < 50 && plain.heard.length === 0; i++) await settle();
    clock.advance(3000);
    await closing;
    assert.deepEqual(plain.heard.map(([what]) => what), ["control_change"]);
    assert.ok(plain.closed);
  },
);

timingTest(
  "an automatic delay follows the delays measured and says what it chose",
  async () => {
    const clock = new ManualClock();
    const chosen: number[] = [];
    await using hub = new Hub({
      clock,
      latency: "auto",
      onEvent: (event: HubEvent) => {
        if (event.type === "latency") chosen.push(event.latency);
      },
    });
    const player = new Player("p");
    const plain = new Listener("plain", clock);
    hub.add(player);
    hub.add(plain, { kind: "device" });
    for (let i = 0; i < 600; i++) {
      // Every message took 12 ms, every 100th 25 ms.
      player.play(on(i % 128), clock.now() - (i % 100 === 99 ? 25 : 12));
      clock.advance(10);
    }
    await settle();
    assert.ok(chosen.length > 0);
    const latency = hub.timing!.latency;
    assert.ok(latency >= 25 && latency <= 30, `chose ${latency}`);
    assert.equal(chosen.at(-1), Math.round(latency));
  },
);

timingTest("a bad latency is refused, naming it", () => {
  for (const latency of [-1, NaN, "soon"]) {
    assert.throws(
      () => new Hub({ latency: latency as number }),
      /latency must be a number of ms \(0 or more\) or "auto"/,
    );
  }
  return Promise.resolve();
});
