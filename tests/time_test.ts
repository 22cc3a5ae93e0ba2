// Keeping time: the scheduler, clock synchronisation and the playout delay,
// on clocks the tests step by hand or simulate (no permission needed), and
// the scheduler's precision on the system clock.

import assert from "node:assert/strict";
import { systemClock } from "../mod.ts";
import { ClockSync, Playout, Scheduler } from "../src/hub/mod.ts";
import { random } from "./_util.ts";
import { ManualClock } from "./_clock.ts";
import { Alarm } from "../src/time/_alarm.ts";

function timeTest(name: string, fn: () => void | Promise<void>): void {
  Deno.test({ name, permissions: "none", fn });
}

timeTest(
  "the scheduler calls in time order, ties in the order scheduled",
  () => {
    const clock = new ManualClock();
    const scheduler = new Scheduler({ clock });
    const heard: string[] = [];
    const t = clock.now();
    scheduler.at(t + 30, () => heard.push("d"));
    scheduler.at(t + 10, () => heard.push("a"));
    scheduler.at(t + 20, () => heard.push("b"));
    scheduler.at(t + 20, () => heard.push("c"));
    const cancelled = scheduler.at(t + 15, () => heard.push("never"));
    cancelled.cancel();
    clock.advance(9.9);
    assert.deepEqual(heard, []);
    clock.advance(10.1);
    assert.deepEqual(heard, ["a", "b", "c"]);
    clock.advance(100);
    assert.deepEqual(heard, ["a", "b", "c", "d"]);
    assert.equal(scheduler.size, 0);
  },
);

timeTest(
  "a call scheduled in the past runs at once; a throwing call stops nothing",
  () => {
    const clock = new ManualClock();
    const scheduler = new Scheduler({ clock });
    const heard: number[] = [];
    const reported: unknown[] = [];
    const onError = (event: ErrorEvent) => {
      event.preventDefault();
      reported.push(event.error);
    };
    globalThis.addEventListener("error", onError);
    try {
      scheduler.at(clock.now() - 5, () => {
        throw new Error("boom");
      });
      scheduler.at(clock.now() - 5, () => heard.push(1));
      clock.advance(0);
      assert.deepEqual(heard, [1]);
      assert.equal(reported.length, 1);
    } finally {
      globalThis.removeEventListener("error", onError);
    }
  },
);

timeTest("the scheduler refuses a negative earlyMs", () => {
  assert.throws(
    () => new Scheduler({ earlyMs: -1 }),
    /earlyMs must be a number of ms, 0 or more: got -1/,
  );
});

Deno.test("on the system clock the scheduler wakes within a fraction of a ms", async () => {
  using scheduler = new Scheduler();
  const late: number[] = [];
  for (let i = 0; i < 60; i++) {
    const due = systemClock.now() + 3 + (i % 7);
    await new Promise<void>((resolve) =>
      scheduler.at(due, () => {
        late.push(systemClock.now() - due);
        resolve();
      })
    );
  }
  late.sort((a, b) => a - b);
  assert.ok(late[0] >= 0, "never early");
  // The median only: a loaded machine can delay any single wake-up.
  assert.ok(late[30] < 0.5, `median lateness ${late[30].toFixed(3)} ms`);
});

timeTest(
  "the alarm rings once at its time, not when unset or reset, and closes",
  async () => {
    const rings: number[] = [];
    let heard = Promise.withResolvers<void>();
    const alarm = await Alarm.start(() => {
      rings.push(performance.now());
      heard.resolve();
    });
    assert.ok(alarm, "a worker thread can be made here");
    // The alarm keeps no process alive: this timer does, meanwhile.
    const awake = setInterval(() => {}, 1000);
    try {
      const setAt = performance.now();
      alarm.set(20);
      await heard.promise;
      assert.ok(rings[0] - setAt >= 20, "never early");
      // Unset, then set again further off: only the last time rings.
      heard = Promise.withResolvers<void>();
      alarm.set(5);
      alarm.cancel();
      const again = performance.now();
      alarm.set(40);
      await heard.promise;
      assert.equal(rings.length, 2);
      assert.ok(rings[1] - again >= 40, "the time set last");
      // Nothing more rings until it is set again.
      await new Promise((resolve) => setTimeout(resolve, 60));
      assert.equal(rings.length, 2);
      alarm.close();
      assert.ok(alarm.closed);
      alarm.set(1); // A closed alarm's worker is gone: nothing rings.
      await new Promise((resolve) => setTimeout(resolve, 30));
      assert.equal(rings.length, 2);
    } finally {
      alarm.close();
      clearInterval(awake);
    }
  },
);

Deno.test("a closed scheduler calls nothing that waited, and still takes calls on timers", async () => {
  const scheduler = new Scheduler();
  let called = 0;
  scheduler.at(systemClock.now() + 5, () => called++);
  scheduler.close();
  await new Promise((resolve) => setTimeout(resolve, 30));
  assert.equal(called, 0);
  const done = Promise.withResolvers<void>();
  scheduler.at(systemClock.now() + 5, () => done.resolve());
  await done.promise;
});

/**
 * Simulates exchanges between this clock and another, `offset` ms ahead and
 * `drift` fast, over a link with a base delay, exponential jitter each way
 * and stalls; returns the estimator and the true mapping.
 */
function simulate(options: {
  offset: number;
  drift: number;
  every: number;
  seconds: number;
  seed: number;
}) {
  const next = random(options.seed);
  const exp = (mean: number) => -mean * Math.log(1 - next());
  const remote = (local: number) =>
    options.offset + local * (1 + options.drift);
  const sync = new ClockSync();
  const errors: { at: number; error: number }[] = [];
  for (let t = 0; t < options.seconds * 1000; t += options.every) {
    const stall = () => next() < 0.05 ? 20 + 10 * next() : 0;
    const there = t + 4 + exp(2) + stall();
    const back = there + 0.05 + 4 + exp(2) + stall();
    sync.add({ t1: t, t2: remote(there), t3: remote(there + 0.05), t4: back });
    const probe = back + options.every / 2;
    errors.push({ at: back, error: sync.toLocal(remote(probe)) - probe });
  }
  return { sync, errors };
}

timeTest(
  "clocks 5 s apart and 200 ppm adrift agree within 1 ms after 2 s, and hold",
  () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const { sync, errors } = simulate({
        offset: 5000,
        drift: 200e-6,
        every: 100,
        seconds: 60,
        seed,
      });
      // What matters to a playout is how much the mapping wanders: a
      // constant error is a constant latency.
      const after = errors.filter((e) => e.at > 2000).map((e) => e.error);
      const median = [...after].sort((a, b) => a - b)[after.length >> 1];
      const worst = Math.max(...after.map((e) => Math.abs(e - median)));
      assert.ok(worst < 0.75, `seed ${seed}: wanders ${worst.toFixed(3)} ms`);
      assert.ok(Math.abs(median) < 0.5, `seed ${seed}: off by ${median} ms`);
      assert.ok(
        Math.abs(sync.drift - 200e-6) < 20e-6,
        `seed ${seed}: drift ${(sync.drift * 1e6).toFixed(1)} ppm`,
      );
    }
  },
);

timeTest(
  "the clock estimator ignores impossible exchanges and starts again on reset",
  () => {
    const sync = new ClockSync();
    assert.equal(sync.synced, false);
    assert.equal(sync.toLocal(123), 123);
    assert.equal(sync.add({ t1: 0, t2: 100, t3: 200, t4: 10 }), false);
    assert.equal(sync.add({ t1: 0, t2: 105, t3: 105, t4: 10 }), true);
    assert.equal(sync.offsetAt(5), 100);
    assert.equal(sync.roundTrip, 10);
    sync.reset();
    assert.equal(sync.synced, false);
    assert.throws(
      () => new ClockSync({ window: 1 }),
      /window must be an integer of 2 or more: got 1/,
    );
  },
);

timeTest(
  "a playout delivers at time + delay, in order per source, late ones at once",
  () => {
    const clock = new ManualClock();
    const heard: [string, number][] = [];
    const playout = new Playout<string>(
      (item) => heard.push([item, clock.now()]),
      { latency: 40, clock },
    );
    const t0 = clock.now();
    playout.push("a", t0, "a1");
    playout.push("b", t0 + 5, "b1");
    // Later in time but earlier due: waits for a1, its source's order.
    playout.push("a", t0 - 10, "a2");
    assert.equal(playout.waiting, 3);
    clock.advance(39);
    assert.deepEqual(heard, []);
    clock.advance(1);
    assert.deepEqual(heard, [["a1", t0 + 40], ["a2", t0 + 40]]);
    clock.advance(5);
    assert.deepEqual(heard.at(-1), ["b1", t0 + 45]);
    // Past due on arrival: at once, counted.
    playout.push("b", clock.now() - 50, "b2");
    assert.deepEqual(heard.at(-1), ["b2", clock.now()]);
    assert.deepEqual(playout.stats, {
      delivered: 4,
      late: 1,
      worstLateMs: 10,
      latency: 40,
    });
  },
);

timeTest(
  "a closed playout delivers nothing more; bad delays are refused",
  () => {
    const clock = new ManualClock();
    const heard: number[] = [];
    const playout = new Playout<number>((n) => heard.push(n), {
      latency: 10,
      clock,
    });
    playout.push(0, clock.now(), 1);
    playout.close();
    playout.push(0, clock.now() - 100, 2);
    clock.advance(20);
    assert.deepEqual(heard, []);
    for (const latency of [-1, NaN, Infinity, "fast"]) {
      assert.throws(
        () => new Playout(() => {}, { latency: latency as number }),
        /latency must be a number of ms \(0 or more\) or "auto"/,
      );
    }
  },
);

timeTest(
  "an automatic delay settles where under 0.1% are late, rises at once, falls slowly",
  () => {
    const clock = new ManualClock();
    const next = random(7);
    const exp = (mean: number) => -mean * Math.log(1 - next());
    const chosen: number[] = [];
    const playout = new Playout<number>(() => {}, {
      latency: "auto",
      clock,
      onLatency: (ms) => chosen.push(ms),
    });
    // 20,000 notes 10 ms apart over a link of 4 ms + jitter + stalls.
    let stallUntil = 0;
    const lateAt = (from: number) => playout.stats.late - from;
    let lateBefore = 0;
    for (let i = 0; i < 20_000; i++) {
      const sent = clock.now();
      if (i % 50 === 0) stallUntil = sent + 20 + 10 * next();
      const arrival = Math.max(
        sent + 4 + exp(2),
        stallUntil > sent ? stallUntil : 0,
      );
      if (i === 5000) lateBefore = playout.stats.late;
      clock.advance(arrival - sent);
      playout.push("s", sent, i);
      clock.advance(10 - (arrival - sent) > 0 ? 10 - (arrival - sent) : 0);
    }
    const settled = playout.latency;
    assert.ok(
      settled > 25 && settled < 45,
      `settled at ${settled.toFixed(1)} ms`,
    );
    const share = lateAt(lateBefore) / 15_000;
    assert.ok(share <= 0.001, `late share after settling ${share}`);
    assert.ok(chosen.length > 0, "the delay chosen is reported");
    // The link gets better: the delay comes down, a little at a time.
    const high = playout.latency;
    for (let i = 0; i < 6000; i++) {
      clock.advance(1);
      playout.push("s", clock.now() - 1, i);
      clock.advance(9);
    }
    assert.ok(playout.latency < high - 5, `came down to ${playout.latency}`);
    assert.ok(playout.latency >= 2);
  },
);
