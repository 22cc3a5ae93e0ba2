// NATS rooms under attack, against a real nats-server on loopback: forged
// frames with and without per-hub permissions, hubs that never were, and a
// flood of huge frames. Each test fails on the links as they were before
// (one subject per room, everything keyed on the origin inside the
// payload).

import assert from "node:assert/strict";
import { type Message, message, NatsLink } from "../mod.ts";
import { formatNatsLinkEvent, NatsLinkError } from "../src/nats/mod.ts";
import {
  encodeBeat,
  encodeBye,
  encodeMidiFrame,
  nameBytes,
} from "../src/nats/_frame.ts";
import { boundedTest, LOOPBACK, take, until, within } from "./_net.ts";
import {
  HubProcess,
  link,
  NATS_MISSING,
  NatsServer,
  type RawMessage,
  RawNatsClient,
  tempFile,
} from "./_nats.ts";

const note = (n: number, velocity = 64) =>
  message("note_on", { note: n, velocity });
const off = (n: number) => message("note_off", { note: n, velocity: 0 });

const PERMISSIONS: Deno.PermissionOptionsObject = {
  ...LOOPBACK,
  run: true,
  read: true,
  env: ["MIDISOCK_REQUIRE_NATS"],
};

function natsTest(name: string, fn: () => Promise<void>, ms = 30000): void {
  boundedTest(name, fn, { ignore: NATS_MISSING, permissions: PERMISSIONS, ms });
}

/** What an eavesdropper learns from a hub's beat: its instance and next number. */
function learn(beat: RawMessage): { instance: Uint8Array; seq: number } {
  const view = new DataView(beat.payload.buffer, beat.payload.byteOffset);
  return { instance: beat.payload.slice(4, 12), seq: view.getUint32(12) };
}

/** Ten distinct notes. */
const TEN: Message[] = Array.from({ length: 10 }, (_, i) => note(100 + i));

natsTest(
  "a forged goodbye ends a live hub's notes for a moment, and its next frame and beat bring it back",
  async () => {
    await using nats = await NatsServer.start();
    const { link: a } = await link(nats.url, { name: "A" });
    const { link: b, events } = await link(nats.url, { name: "B" });
    await using raw = await RawNatsClient.connect(nats.port);
    try {
      await raw.subscribe(`midisock.presence.test.${a.id}`);
      await until(() => b.remotes.length === 1);
      const { instance, seq } = learn(await raw.next());
      await a.send(note(60));
      assert.deepEqual(await take(b, 1), [note(60)]);
      await raw.publish(
        `midisock.presence.test.${a.id}`,
        encodeBye(instance, seq + 1),
      );
      await raw.flush();
      assert.deepEqual(await take(b, 1), [off(60)]);
      // A plays on and is heard, every message.
      const start = performance.now();
      for (const msg of TEN) await a.send(msg);
      assert.deepEqual(await take(b, 10, 3000), TEN);
      await until(() => b.remotes.length === 1, 2000, "A back in the room");
      assert.ok(performance.now() - start < 2000);
      assert.deepEqual(
        events.map((e) => e.type),
        ["joined", "left", "joined"],
      );
    } finally {
      await a.close();
      await b.close();
    }
  },
);

natsTest(
  "a frame numbered 2^31 ahead or behind never mutes the hub it claims to come from",
  async () => {
    await using nats = await NatsServer.start();
    const { link: a } = await link(nats.url, { name: "A" });
    const { link: b, events } = await link(nats.url, { name: "B" });
    await using raw = await RawNatsClient.connect(nats.port);
    try {
      await raw.subscribe(`midisock.presence.test.${a.id}`);
      await until(() => b.remotes.length === 1);
      const { instance, seq } = learn(await raw.next());
      for (const jump of [2 ** 31 - 1, 2 ** 31 + 5]) {
        await raw.publish(
          `midisock.room.test.${a.id}`,
          encodeMidiFrame(instance, (seq + jump) >>> 0, [note(1)]),
        );
        await raw.flush();
        // On an open server a forger can play; it cannot silence A.
        assert.deepEqual(await take(b, 1), [note(1)]);
        for (const msg of TEN) await a.send(msg);
        assert.deepEqual(await take(b, 10, 3000), TEN);
      }
      assert.ok(b.stats.jumps >= 2, `${b.stats.jumps} jumps`);
      assert.deepEqual(events.map((e) => e.type), ["joined"]);
    } finally {
      await a.close();
      await b.close();
    }
  },
);

natsTest(
  "20,000 hubs that never were: at most maxRemotes are kept, a few lines are told, answers are paced, and real hubs are still heard",
  async () => {
    await using nats = await NatsServer.start();
    const { link: a } = await link(nats.url, { name: "A" });
    const { link: b, events } = await link(nats.url, {
      name: "B",
      maxRemotes: 100,
    });
    await using raw = await RawNatsClient.connect(nats.port);
    try {
      await until(() => b.remotes.length === 1);
      await raw.subscribe(`midisock.presence.test.${b.id}`);
      raw.takeAll();
      const started = performance.now();
      const fakes = 20_000;
      const batch: Promise<void>[] = [];
      for (let i = 0; i < fakes; i++) {
        const instance = crypto.getRandomValues(new Uint8Array(8));
        batch.push(raw.publish(
          `midisock.presence.test.fake${i}`,
          encodeBeat(instance, 0, 60_000, nameBytes(`fake ${i}`)),
        ));
        if (batch.length === 500) await Promise.all(batch.splice(0));
      }
      await Promise.all(batch);
      await raw.flush();
      await until(
        () => b.stats.framesReceived >= fakes,
        10000,
        "B read every fake beat",
      );
      // A, in first, is still heard; a 100th hub got in, no more.
      await a.send(note(5));
      assert.deepEqual(await take(b, 1), [note(5)]);
      assert.equal(b.remotes.length, 100);
      assert.equal(b.stats.refused, fakes - 99);
      const elapsed = performance.now() - started;
      const beats = raw.takeAll().length;
      // Its own beats every 100 ms (A, in the room, compares clocks), and
      // at most one answer per 50 ms.
      const allowed = Math.ceil(elapsed / 100) + Math.ceil(elapsed / 50) + 2;
      assert.ok(beats <= allowed, `${beats} beats in ${elapsed} ms`);
      const joined = events.filter((e) => e.type === "joined").length;
      assert.ok(joined <= 20 + elapsed / 500 + 1, `${joined} joined lines`);
      assert.equal(events.filter((e) => e.type === "full").length, 1);
      // The 99 that got in and were not told one by one are summed up.
      await until(
        () =>
          events.filter((e) => e.type === "joined").length +
              events.reduce(
                (n, e) => n + (e.type === "unreported" ? e.joined : 0),
                0,
              ) === 100,
        3000,
        "every join told or summed up",
      );
      assert.ok(events.length < 60, `${events.length} events`);
    } finally {
      await a.close();
      await b.close();
    }
  },
);

/**
 * The config docs/scaling-out.md gives: users studio-1, studio-2 and
 * studio-3, each allowed to publish only under its own id in room "stage",
 * their passwords from the environment.
 */
async function documentedConfig(): Promise<string> {
  const doc = await Deno.readTextFile(
    new URL("../docs/scaling-out.md", import.meta.url),
  );
  const block = doc.match(/```conf\n([^]*?)```/);
  assert.ok(block, "docs/scaling-out.md has a ```conf block");
  return block[1];
}

const PASSWORDS = {
  STUDIO_1_PASSWORD: "one-secret",
  STUDIO_2_PASSWORD: "two-secret",
  STUDIO_3_PASSWORD: "three-secret",
};

natsTest(
  "with per-hub permissions, a member cannot speak for another hub: forged goodbyes, jumps and beats are refused, and a killed hub's notes end within 1 s",
  async () => {
    const conf = await tempFile("nats.conf", await documentedConfig());
    try {
      await using nats = await NatsServer.start(["-c", conf], PASSWORDS);
      const url = (user: number) =>
        `nats://studio-${user}:${
          Object.values(PASSWORDS)[user - 1]
        }@127.0.0.1:${nats.port}`;
      // A is a serve process, so that it can be killed.
      await using a = new HubProcess(url(1), "stage", "A", [
        "--nats-id",
        "studio-1",
      ]);
      const { link: b, events } = await link(url(2), {
        room: "stage",
        id: "studio-2",
        name: "B",
      });
      // Studio 3 is a member that tries to speak for studio 1.
      await using mallory = await RawNatsClient.connect(nats.port, {
        user: "studio-3",
        pass: PASSWORDS.STUDIO_3_PASSWORD,
      });
      try {
        const a1 = await a.client();
        await mallory.subscribe("midisock.presence.stage.studio-1");
        await until(() => b.remotes.length === 1, 10000, "A joined");
        const { instance, seq } = learn(await mallory.next());
        await a1.send(note(60));
        assert.deepEqual(await take(b, 1), [note(60)]);
        // Mallory tries everything under A's id: NATS refuses each.
        await mallory.publish(
          "midisock.presence.stage.studio-1",
          encodeBye(instance, seq),
        );
        await mallory.publish(
          "midisock.room.stage.studio-1",
          encodeMidiFrame(instance, (seq + 2 ** 31 - 1) >>> 0, [note(1)]),
        );
        await mallory.publish(
          "midisock.presence.stage.studio-1",
          encodeBeat(instance, seq, 60_000, nameBytes("A")),
        );
        await mallory.flush();
        assert.equal(mallory.errors.length, 3);
        assert.match(mallory.errors[0], /Permissions Violation for Publish/);
        // Under its own id, Mallory is heard as itself.
        await mallory.publish(
          "midisock.room.stage.studio-3",
          encodeMidiFrame(new Uint8Array(8), 0, [note(2), note(2, 0)]),
        );
        assert.deepEqual(await take(b, 2), [note(2), note(2, 0)]);
        // A was never muted, and never left.
        await a1.send(note(61));
        assert.deepEqual(await take(b, 1), [note(61)]);
        assert.equal(events.filter((e) => e.type === "left").length, 0);
        // Killed, A is gone within a second, whatever Mallory sends for it.
        const forging = setInterval(() => {
          mallory.publish(
            "midisock.presence.stage.studio-1",
            encodeBeat(instance, seq + 2, 60_000, nameBytes("A")),
          ).catch(() => {});
        }, 50);
        try {
          a.kill("SIGKILL");
          const killed = performance.now();
          const offs = await take(b, 2, 3000);
          const after = performance.now() - killed;
          assert.deepEqual(offs, [off(60), off(61)]);
          assert.ok(
            after > 500 && after < 1000,
            `note_off came ${after.toFixed(0)} ms after`,
          );
          assert.match(
            events.find((e) => e.type === "left")?.type === "left"
              ? formatNatsLinkEvent(events.find((e) => e.type === "left")!)
              : "",
            /^hub "A" \(studio-1\) left: missed its heartbeats; 2 notes ended$/,
          );
        } finally {
          clearInterval(forging);
          await a1.close();
        }
        // Nor can a member take another's id: its link fails at start.
        await assert.rejects(
          NatsLink.connect(url(2), { room: "stage", id: "studio-1" }),
          (error: unknown) =>
            error instanceof NatsLinkError &&
            /does not allow this user on the room's subjects .*midisock\.(room|presence)\.stage\.studio-1/
              .test(error.message),
        );
      } finally {
        await b.close();
      }
    } finally {
      await new Deno.Command("rm", {
        args: ["-rf", conf.slice(0, conf.lastIndexOf("/"))],
      }).output();
    }
  },
);

natsTest(
  "200 frames of 65,535 notes from one publisher: no hub misses a heartbeat, the other hub is still heard, and most of the flood is dropped unread",
  async () => {
    await using nats = await NatsServer.start();
    // What gets through the links reaches the hubs' clients at the hubs'
    // speed: room for it to wait, so that a test process starved of CPU
    // is not dropped as a slow reader (the hub's policy, not the link's).
    const room = ["--max-queued", String(256 << 20)];
    await using a = new HubProcess(nats.url, "r", "A", room);
    await using b = new HubProcess(nats.url, "r", "B", room);
    const a1 = await a.client();
    const b1 = await b.client();
    // A's client reads too: one that does not is dropped for falling
    // behind, flood or not.
    const draining = Array.fromAsync(a1).catch(() => []);
    try {
      await until(
        () => [a, b].every((h) => h.lines.some((l) => / joined/.test(l))),
        10000,
        "A and B joined",
      );
      // B's client reads everything: A's markers are program changes on
      // channel 16, which the flood never sends.
      const marks: number[] = [];
      let read = 0;
      const reading = (async () => {
        for await (const msg of b1) {
          read++;
          if (msg.type === "program_change" && msg.channel === 15) {
            marks.push(msg.program);
            if (msg.program === 127) return;
          }
        }
      })();
      await using raw = await RawNatsClient.connect(nats.port);
      const notes = Array.from(
        { length: 65_535 },
        (_, i) => note(i % 128, 1 + i % 127),
      );
      const instance = crypto.getRandomValues(new Uint8Array(8));
      const flooding = (async () => {
        for (let i = 0; i < 200; i++) {
          await raw.publish(
            "midisock.room.r.flood",
            encodeMidiFrame(instance, i, notes),
          );
        }
        await raw.flush();
      })();
      // A plays while the flood lasts, and after.
      let mark = 0;
      while (mark < 20) {
        await a1.send(
          message("program_change", { channel: 15, program: mark++ }),
        );
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await within(flooding, 30000, "the flood");
      await a1.send(message("program_change", { channel: 15, program: 127 }));
      await within(reading, 20000, "A's last mark at B's client");
      assert.deepEqual(
        marks,
        [...Array(20).keys(), 127],
        [...a.lines, ...b.lines].join("\n"),
      );
      assert.ok(read < 200 * 65_535 / 2, `${read} messages read`);
      for (const hub of [a, b]) {
        assert.deepEqual(
          hub.lines.filter((l) => /left|disconnect/.test(l)),
          [],
          hub.lines.join("\n"),
        );
      }
    } finally {
      await a1.close();
      await b1.close();
      await draining;
    }
  },
  60000,
);
