// What idle inputs cost, and what that costs the first message after a
// silence: the shared poller, and JACK inputs armed to ring at the first
// message (src/hardware/_poller.ts, src/hardware/_native.ts).

import { skip } from "./_skip.ts";
import assert from "node:assert/strict";
import { message } from "../src/codec/messages.ts";
import { openInput, openOutput } from "../src/hardware/mod.ts";
import type { Input } from "../src/hardware/_ports.ts";
import { ACTIVE_HOLD, poller } from "../src/hardware/_poller.ts";
import { until } from "./_net.ts";
import { openWhenListed, pyTest } from "./_pyrtmidi.ts";
import {
  API,
  assertAvailable,
  moduleUrl,
  RTMIDI_MISSING,
  runScript,
  sleep,
  uniqueName,
  within,
  withoutDbNoise,
} from "./_rtmidi.ts";

function jackTest(name: string, fn: () => Promise<void>): void {
  Deno.test({
    ...skip(
      name,
      RTMIDI_MISSING,
      API !== "jack" && "it needs JACK (MIDISOCK_RTMIDI_API=jack)",
    ),
    async fn() {
      assertAvailable();
      await within(fn(), 60_000, name);
    },
  });
}

/** Waits until the poller has armed the inputs and sleeps. */
async function asleep(): Promise<void> {
  await until(() => poller.sleeping, ACTIVE_HOLD + 5000, "the inputs armed");
}

jackTest(
  "idle JACK inputs let the poller sleep, and the first message wakes it at once",
  async () => {
    const name = uniqueName("bell");
    await using out = await openOutput(name, { virtual: true, api: API });
    const inputs = await Promise.all(
      [0, 1, 2, 3].map(() => openInput(name, { api: API })),
    );
    try {
      const got = inputs.map(() => 0);
      const readers = inputs.map((input, i) =>
        (async () => {
          for await (const _ of input) got[i]++;
        })()
      );
      const delays: number[] = [];
      for (let round = 0; round < 3; round++) {
        await asleep();
        // Asleep: a look every quarter second at most (1 ms before).
        const looks = poller.looks;
        await sleep(1500);
        assert.ok(poller.looks - looks <= 8, `${poller.looks - looks} looks`);
        const before = got.map((n) => n);
        const start = performance.now();
        await out.send(message("note_on", { note: 60 + round }));
        await until(
          () => got.every((n, i) => n === before[i] + 1),
          5000,
          "the note on every input",
        );
        delays.push(performance.now() - start);
      }
      // One JACK period (21 ms here) and the ring: well under what 40 ms
      // polling would add.
      const worst = Math.max(...delays);
      assert.ok(worst < 150, `first-message delays ${delays.join(", ")} ms`);
      await Promise.all(inputs.map((input) => input.close()));
      await Promise.all(readers);
    } finally {
      await Promise.all(inputs.map((input) => input.close()));
    }
  },
);

jackTest(
  "a sysex or a clock after a silence wakes the poller at once too",
  async () => {
    const name = uniqueName("bell-types");
    await using out = await openOutput(name, { virtual: true, api: API });
    await using input = await openInput(name, { api: API });
    let got = 0;
    const reader = (async () => {
      for await (const _ of input) got++;
    })();
    const delays: number[] = [];
    for (
      const msg of [
        message("sysex", { data: [1, 2, 3] }),
        message("clock"),
        message("sysex", { data: [4] }),
        message("clock"),
      ]
    ) {
      await asleep();
      // Past the look that follows arming: only a ring is quick now.
      await sleep(300);
      const before = got;
      const start = performance.now();
      await out.send(msg);
      await until(() => got === before + 1, 5000, msg.type);
      delays.push(performance.now() - start);
    }
    // A missed ring would wait for a safety look, up to 250 ms away.
    assert.ok(Math.max(...delays) < 100, `delays ${delays.join(", ")} ms`);
    await input.close();
    await reader;
  },
);

jackTest(
  "a virtual JACK input asleep hears a program that connects to it later",
  async () => {
    const name = uniqueName("bell-virtual");
    await using input = await openInput(name, { virtual: true, api: API });
    let got = 0;
    const reader = (async () => {
      for await (const _ of input) got++;
    })();
    await asleep();
    // Another program connects while the poller sleeps: the virtual input
    // itself rings, whoever sends to it.
    await using keys = await openOutput(name, { api: API });
    await sleep(400);
    const start = performance.now();
    await keys.send(message("start"));
    await until(() => got === 1, 5000, "the message");
    const delay = performance.now() - start;
    assert.ok(delay < 300, `${delay} ms`);
    await input.close();
    await reader;
  },
);

jackTest(
  "closing inputs while they ring, 100 times, neither hangs nor crashes",
  async () => {
    const name = uniqueName("bell-close");
    await using out = await openOutput(name, { virtual: true, api: API });
    for (let round = 0; round < 100; round++) {
      const input = await openInput(name, { api: API });
      const reader = (async () => {
        for await (const _ of input);
      })();
      if (round % 25 === 0) await asleep();
      const flood = (async () => {
        for (let i = 0; i < 50; i++) {
          await out.send(message("clock"));
          if (i % 10 === 0) await sleep(0);
        }
      })();
      await sleep(round % 3);
      await within(input.close(), 5000, "close");
      await within(reader, 5000, "the reader");
      await flood;
    }
  },
);

jackTest(
  "a process ends with its inputs armed while messages come in",
  async () => {
    for (let round = 0; round < 3; round++) {
      const name = uniqueName("bell-exit");
      const result = await runScript(
        `
        import { message } from "${moduleUrl("src/codec/messages.ts")}";
        import { openInput, openOutput } from "${
          moduleUrl("src/hardware/mod.ts")
        }";
        import { poller } from "${moduleUrl("src/hardware/_poller.ts")}";
        const out = await openOutput("${name}", { virtual: true, api: "jack" });
        const input = await openInput(out.name, { api: "jack" });
        (async () => { for await (const _ of input); })();
        while (!poller.sleeping) await new Promise((r) => setTimeout(r, 20));
        const timer = setInterval(() => out.send(message("clock")), 1);
        await new Promise((r) => setTimeout(r, ${20 + round * 7}));
        console.log("exiting");
        Deno.exit(0);
        `,
        ["--allow-ffi", "--allow-env"],
      );
      assert.equal(result.code, 0, result.stderr);
      assert.equal(result.stdout.trim(), "exiting");
      assert.equal(withoutDbNoise(result.stderr), "");
    }
  },
);

pyTest(
  "other programs see only the ports asked for: no internal port while inputs sleep",
  async (py) => {
    const keys = uniqueName("listed-keys");
    const virtual = uniqueName("listed-virtual");
    await py.command(["open", keys, "out"]);
    const before = await py.command(["list"]);
    const inputs = [
      await openWhenListed(() => openInput(keys, { api: API })),
      await openInput(keys, { api: API }),
      await openInput(virtual, { api: API, virtual: true }),
    ];
    try {
      const got = inputs.map(() => 0);
      const readers = inputs.map((input, i) =>
        (async () => {
          for await (const _ of input) got[i]++;
        })()
      );
      await asleep();
      const after = await py.command(["list"]);
      const added = (now: string[] = [], then: string[] = []) =>
        now.filter((name) => !then.includes(name)).sort();
      // Ports others can send to: the two inputs' own ends and the virtual
      // input, and nothing else (nothing of its own).
      for (
        const [now, then] of [
          [after.outputs, before.outputs],
          [after.midoOutputs, before.midoOutputs],
        ]
      ) {
        const ports = added(now, then);
        assert.equal(ports.length, 3, JSON.stringify(ports));
        assert.equal(ports.filter((p) => p.endsWith(":in")).length, 2);
        assert.equal(ports.filter((p) => p.endsWith(`:${virtual}`)).length, 1);
      }
      // midisock made no port that sends.
      assert.deepEqual(added(after.inputs, before.inputs), []);
      assert.deepEqual(added(after.midoInputs, before.midoInputs), []);
      // And asleep, the inputs still hear the first message at once.
      await py.command(["send", keys, "903c40"]);
      await until(
        () => got[0] === 1 && got[1] === 1,
        5000,
        "the note on both inputs",
      );
      await Promise.all(inputs.map((input) => input.close()));
      await Promise.all(readers);
    } finally {
      await Promise.all(inputs.map((input) => input.close()));
    }
  },
);

jackTest(
  "a message queued just before its input was armed is read by the next look",
  async () => {
    const name = uniqueName("bell-stuck");
    await using out = await openOutput(name, { virtual: true, api: API });
    const input = await openInput(name, { api: API }) as Input;
    try {
      // RtMidi's queue is seen without reading it (the layout is checked).
      assert.equal(input.queued, false);
      // Send until the note is there: a message can be lost on a loaded
      // machine (an xrun).
      const deadline = Date.now() + 5000;
      const queued = (): boolean | undefined => input.queued;
      while (queued() !== true) {
        if (Date.now() > deadline) throw new Error("nothing was queued");
        await out.send(message("note_on", { note: 61 }));
        await sleep(50);
      }
      // Armed now, with the note in the queue: it rang nothing.
      input.arm();
      assert.equal(input.armed, true);
      assert.equal(input.queued, true);
      const start = performance.now();
      const got = await within(
        input.receive(),
        ACTIVE_HOLD + 5000,
        "the queued note",
      );
      assert.equal(got.type, "note_on");
      // At most the second of silence before the safety look, and a look.
      const delay = performance.now() - start;
      assert.ok(delay < ACTIVE_HOLD + 1000, `${delay} ms`);
      assert.equal(input.queued, false);
    } finally {
      await input.close();
    }
  },
);
