// Two midisock sessions through a UDP proxy that drops 5% of the datagrams
// both ways (MIDI, journals, guard packets, receiver feedback, clock sync
// alike): the recovery journal leaves no note on at either receiver.

import assert from "node:assert/strict";
import { type Message, message, NoteTracker, RtpMidiSession } from "../mod.ts";
import type { RtpMidiParticipant } from "../src/rtp/mod.ts";
import { netTest, until, within } from "./_net.ts";
import { LossyProxy } from "./_rtp.ts";
import { between, random } from "./_util.ts";

/** Reads a participant into a note tracker until the sentinel comes. */
function watch(participant: RtpMidiParticipant) {
  const tracker = new NoteTracker();
  const state = { tracker, sentinel: false, messages: 0 };
  const done = (async () => {
    for await (const msg of participant) {
      tracker.track(msg);
      state.messages++;
      if (msg.type === "control_change" && msg.control === 119) {
        state.sentinel = true;
      }
    }
  })();
  return { state, done };
}

/** 10,000 note on/off pairs on random channels and notes, then a sentinel. */
async function play(to: RtpMidiParticipant, seed: number): Promise<void> {
  const next = random(seed);
  for (let i = 0; i < 10_000; i++) {
    const channel = between(next, 0, 15);
    const note = between(next, 0, 127);
    const batch: Message[] = [
      message("note_on", { channel, note, velocity: between(next, 1, 127) }),
      message("note_off", { channel, note, velocity: 0 }),
    ];
    // Now and then a controller, and notes that overlap the next pair.
    if (next() < 0.1) {
      batch.splice(
        1,
        0,
        message("control_change", { channel, control: 64, value: 127 }),
      );
      batch.push(message("control_change", { channel, control: 64, value: 0 }));
    }
    for (const m of batch) await to.send(m);
    if (i % 10 === 9) await new Promise((r) => setTimeout(r, 1));
  }
  await to.send(message("control_change", { control: 119, value: 1 }));
}

netTest(
  "10,000 note pairs each way through a link losing 5% leave no note on",
  async () => {
    await using a = new RtpMidiSession({ port: 0, name: "a" });
    await using b = new RtpMidiSession({ port: 0, name: "b" });
    await b.ready;
    const proxy = await LossyProxy.open(b.port, 0.05, random(1));
    try {
      const toB = await a.invite("127.0.0.1", proxy.port);
      const fromA = await within(b.accept(), 5000, "accept");
      const atB = watch(fromA);
      const atA = watch(toB);
      proxy.lossy = true;
      await Promise.all([play(toB, 2), play(fromA, 3)]);
      await until(
        () => atB.state.sentinel && atA.state.sentinel,
        10000,
        "sentinels (repaired from guard packets if lost)",
      );
      // Everything before the sentinel is settled once it is delivered.
      assert.equal(atB.state.tracker.size, 0, "notes stuck on at b");
      assert.equal(atA.state.tracker.size, 0, "notes stuck on at a");
      assert.ok(proxy.dropped > 100, `dropped ${proxy.dropped}`);
      assert.ok(fromA.stats.lost > 0 && toB.stats.lost > 0);
      assert.ok(fromA.stats.repaired > 0 && toB.stats.repaired > 0);
      proxy.lossy = false;
      await toB.close();
      await within(Promise.all([atB.done, atA.done]), 5000, "readers end");
    } finally {
      await proxy.close();
    }
  },
);
