// The JACK output pacer (src/hardware/_pacer.ts) and the poller's back-off,
// against a simulated ring: no RtMidi, no JACK, no permission.

import assert from "node:assert/strict";
import {
  CHUNK,
  jackEvents,
  type PacedSink,
  Pacer,
  RING_CAPACITY,
} from "../src/hardware/_pacer.ts";
import {
  ACTIVE_HOLD,
  ACTIVE_INTERVAL,
  IDLE_INTERVAL,
  intervalAfter,
} from "../src/hardware/_poller.ts";
import { until } from "./_net.ts";
import { pureTest } from "./_util.ts";

/** A ring of RtMidi's size that a "process cycle" empties on demand. */
class FakeRing implements PacedSink {
  used = 0;
  readonly written: number[][] = [];
  readonly delivered: number[][] = [];
  #pending: number[][] = [];
  readable = true;
  /** Whether writing past the ring fails the test. */
  strict = true;
  /** When each write happened. */
  readonly times: number[] = [];
  alive = () => true;

  room(): number | undefined {
    return this.readable ? RING_CAPACITY - this.used : undefined;
  }

  write(bytes: Uint8Array): boolean {
    const need = bytes.length + 4;
    // RtMidi 4.0 would corrupt, 5.0 spin: the pacer must never get here.
    if (this.strict) {
      assert.ok(this.used + need <= RING_CAPACITY, "ring overflow");
    }
    this.times.push(performance.now());
    this.used += need;
    this.#pending.push([...bytes]);
    this.written.push([...bytes]);
    return true;
  }

  periodMs(): number {
    return 4;
  }

  /** One JACK cycle: everything in the ring goes out. */
  cycle(): void {
    this.delivered.push(...this.#pending);
    this.#pending = [];
    this.used = 0;
  }
}

function notes(count: number): Uint8Array<ArrayBuffer>[] {
  return Array.from(
    { length: count },
    (_, i) => new Uint8Array([0x90, i % 128, (i >> 7) % 128]),
  );
}

pureTest(
  "a long sysex is cut into ring-sized JACK events, F0 first, F7 last",
  () => {
    const sysex = new Uint8Array(65538);
    sysex[0] = 0xf0;
    for (let i = 1; i < sysex.length - 1; i++) sysex[i] = i % 128;
    sysex[sysex.length - 1] = 0xf7;
    const events = jackEvents(sysex);
    assert.equal(events.length, Math.ceil(sysex.length / CHUNK));
    assert.ok(events.every((e) => e.length <= CHUNK));
    assert.equal(events[0][0], 0xf0);
    assert.equal(events.at(-1)!.at(-1), 0xf7);
    const joined = new Uint8Array(sysex.length);
    let at = 0;
    for (const event of events) {
      joined.set(event, at);
      at += event.length;
    }
    assert.deepEqual(joined, sysex);
    // What fits the ring goes whole, as one event.
    const short = new Uint8Array(RING_CAPACITY - 4).fill(1);
    assert.deepEqual(jackEvents(short), [short]);
  },
);

pureTest(
  "a burst waits in order for room and never overflows the ring",
  async () => {
    const ring = new FakeRing();
    const pacer = new Pacer(ring, "queue");
    const burst = notes(10_000);
    const settled: number[] = [];
    const sends = burst.map((bytes, i) =>
      pacer.send(bytes).then(() => settled.push(i))
    );
    assert.ok(pacer.queued > 0, "more than one ring's worth waits");
    const timer = setInterval(() => ring.cycle(), 2);
    try {
      await Promise.all(sends);
      await pacer.flush();
    } finally {
      clearInterval(timer);
    }
    ring.cycle();
    assert.deepEqual(settled, burst.map((_, i) => i), "settled in order");
    assert.deepEqual(ring.delivered, burst.map((b) => [...b]), "sent in order");
    assert.equal(pacer.dropped, 0);
  },
);

pureTest('overflow "drop" keeps what fits and counts the rest', () => {
  const ring = new FakeRing();
  const pacer = new Pacer(ring, "drop");
  for (const bytes of notes(5000)) pacer.send(bytes);
  const fits = Math.floor(RING_CAPACITY / 7);
  assert.equal(ring.written.length, fits);
  assert.equal(pacer.dropped, 5000 - fits);
  assert.equal(pacer.queued, 0);
});

pureTest("a sysex longer than the ring waits even under drop", async () => {
  const ring = new FakeRing();
  const pacer = new Pacer(ring, "drop");
  const sysex = new Uint8Array(40_000).fill(5);
  sysex[0] = 0xf0;
  sysex[sysex.length - 1] = 0xf7;
  const sent = pacer.send(sysex);
  const timer = setInterval(() => ring.cycle(), 2);
  try {
    await sent;
  } finally {
    clearInterval(timer);
  }
  ring.cycle();
  assert.deepEqual(ring.delivered.flat(), [...sysex]);
  assert.equal(pacer.dropped, 0);
});

pureTest(
  "where the ring cannot be read, half of it goes per period",
  async () => {
    const ring = new FakeRing();
    ring.readable = false;
    // JACK empties its ring on its own thread; here only the pace is
    // checked, not the simulated ring (whose cycles run on late timers).
    ring.strict = false;
    const pacer = new Pacer(ring, "queue");
    const burst = notes(3000);
    await Promise.all(burst.map((bytes) => pacer.send(bytes)));
    assert.equal(ring.written.length, 3000);
    // In any window of one period and a millisecond (5 ms), at most half
    // the ring: 8192 bytes, 1170 of these 7-byte records.
    const times = ring.times;
    for (let i = 0, j = 0; i < times.length; i++) {
      while (times[i] - times[j] >= 5) j++;
      assert.ok((i - j + 1) * 7 <= 8192, `${i - j + 1} writes within 5 ms`);
    }
  },
);

pureTest("discarding rejects what waits and refuses more", async () => {
  const ring = new FakeRing();
  const pacer = new Pacer(ring, "queue");
  const sends = notes(5000).map((bytes) => pacer.send(bytes));
  const gone = new Error("gone");
  pacer.discard(gone);
  const results = await Promise.allSettled(sends);
  const rejected = results.filter((r) => r.status === "rejected");
  assert.ok(rejected.length > 0);
  assert.ok(
    rejected.every((r) => (r as PromiseRejectedResult).reason === gone),
  );
  await assert.rejects(pacer.send(notes(1)[0]), (e) => e === gone);
  await pacer.flush();
});

pureTest("a dead server's ring rejects what waits", async () => {
  const ring = new FakeRing();
  let alive = true;
  ring.alive = () => alive;
  const pacer = new Pacer(ring, "queue");
  const sends = notes(5000).map((bytes) => pacer.send(bytes));
  alive = false;
  const results = await Promise.allSettled(sends);
  await until(() => pacer.queued === 0, 1000, "the queue emptied");
  assert.ok(results.some((r) => r.status === "rejected"));
});

pureTest(
  "the poller looks every millisecond for a second, then backs off",
  () => {
    assert.equal(intervalAfter(0, IDLE_INTERVAL), ACTIVE_INTERVAL);
    assert.equal(
      intervalAfter(ACTIVE_HOLD - 1, IDLE_INTERVAL),
      ACTIVE_INTERVAL,
    );
    assert.ok(
      intervalAfter(ACTIVE_HOLD + 200, IDLE_INTERVAL) > ACTIVE_INTERVAL,
    );
    assert.equal(
      intervalAfter(ACTIVE_HOLD + 60_000, IDLE_INTERVAL),
      IDLE_INTERVAL,
    );
    let previous = 0;
    for (let silence = 0; silence < 5000; silence += 50) {
      const interval = intervalAfter(silence, IDLE_INTERVAL);
      assert.ok(interval >= previous, "never speeds up with more silence");
      previous = interval;
    }
  },
);
