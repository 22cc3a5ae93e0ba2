// RtpMidiSession on loopback: midisock sessions with each other and with a
// raw AppleMIDI peer scripted by the test (refusals, retries, silence,
// fuzzed datagrams).

import assert from "node:assert/strict";
import {
  Hub,
  type Message,
  message,
  PortClosedError,
  RtpMidiSession,
  type RtpMidiSessionOptions,
} from "../mod.ts";
import {
  encodeRtpMidi,
  encodeSessionPacket,
  InvitationError,
  ParticipantTimeoutError,
  type RtpMidiParticipant,
} from "../src/rtp/mod.ts";
import { netTest, take, until, within } from "./_net.ts";
import { RawPeer } from "./_rtp.ts";
import { between, random, randomMessage } from "./_util.ts";

function session(options: RtpMidiSessionOptions = {}): RtpMidiSession {
  return new RtpMidiSession({ port: 0, ...options });
}

/** `a` invites `b`; both ends of the link. */
async function join(
  a: RtpMidiSession,
  b: RtpMidiSession,
): Promise<[RtpMidiParticipant, RtpMidiParticipant]> {
  await b.ready;
  const [toB, fromA] = await Promise.all([
    a.invite("127.0.0.1", b.port),
    within(b.accept(), 5000, "accept"),
  ]);
  // The inviting side's own accept() gives the same participant.
  assert.equal(await a.accept(), toB);
  return [toB, fromA];
}

function notes(count: number, channel = 0): Message[] {
  return Array.from(
    { length: count },
    (_, i) =>
      message(i % 2 === 0 ? "note_on" : "note_off", {
        channel,
        note: (i >> 1) & 127,
        velocity: 1 + ((i >> 8) & 63),
      }),
  );
}

netTest(
  "a session binds an even control port and the data port after it",
  async () => {
    await using s = session();
    await s.ready;
    assert.equal(s.port % 2, 0);
    assert.deepEqual(s.address, { hostname: "127.0.0.1", port: s.port });
    await using taken = new RtpMidiSession({ port: s.port });
    await assert.rejects(taken.ready);
  },
);

netTest(
  "invite takes peers as addresses or host:port text, and says what is wrong",
  async () => {
    for (const text of ["nohostport", ":5004", "[::1]", "host:port"]) {
      assert.throws(
        () => session({ invite: [text] }),
        (error: Error) =>
          error instanceof SyntaxError &&
          error.message === `invite must be HOST:PORT: got ${text}`,
      );
    }
    await using b = session();
    await b.ready;
    await using hub = new Hub();
    await hub.attach(session({ invite: [`127.0.0.1:${b.port}`] }));
    const fromA = await within(b.accept(), 5000, "the invitation");
    assert.equal(fromA.peerName, "midisock");
    assert.equal(hub.endpoints.length, 1);
  },
);

netTest("two sessions exchange 1000 notes each way, in order", async () => {
  await using a = session({ name: "alpha" });
  await using b = session({ name: "beta" });
  const [toB, fromA] = await join(a, b);
  assert.equal(toB.peerName, "beta");
  assert.equal(fromA.peerName, "alpha");
  assert.equal(toB.name, `127.0.0.1:${b.port} (beta)`);
  assert.equal(toB.initiator, true);
  assert.equal(fromA.initiator, false);
  const sent = notes(1000);
  for (const m of sent) await toB.send(m);
  assert.deepEqual(await take(fromA, 1000), sent);
  const back = notes(1000, 9);
  for (const m of back) await fromA.send(m);
  assert.deepEqual(await take(toB, 1000), back);
  assert.equal(fromA.stats.received, 1000);
  assert.equal(toB.stats.sent, 1000);
  assert.equal(fromA.stats.lost, 0);
  // Clock synchronisation ran: both ends know the latency.
  await until(() => toB.latency !== undefined && fromA.latency !== undefined);
  assert.ok(toB.latency! < 100);
});

netTest("every message type and a 100 kB sysex cross a session", async () => {
  await using a = session();
  await using b = session();
  const [toB, fromA] = await join(a, b);
  const next = random(7);
  const sent = Array.from({ length: 300 }, () => randomMessage(next));
  sent.push(message("sysex", { data: new Array(100_000).fill(0x55) }));
  sent.push(message("stop"));
  for (const m of sent) await toB.send(m);
  assert.deepEqual(await take(fromA, sent.length), sent);
  assert.ok(toB.stats.packetsOut > 70, "the sysex went in many packets");
});

netTest("send goes to that participant only", async () => {
  await using hub = session({ name: "hub" });
  await using x = session({ name: "x" });
  await using y = session({ name: "y" });
  const [, hubX] = await join(x, hub);
  const [, hubY] = await join(y, hub);
  const [xFromHub] = x.participants;
  const [yFromHub] = y.participants;
  assert.equal(hub.participants.length, 2);
  await hubX.send(message("note_on", { note: 1 }));
  await hubY.send(message("note_on", { note: 2 }));
  assert.equal(((await xFromHub.receive()) as { note: number }).note, 1);
  assert.equal(((await yFromHub.receive()) as { note: number }).note, 2);
  // Sentinels: nothing else arrived before them.
  await hubX.send(message("stop"));
  await hubY.send(message("stop"));
  assert.equal((await xFromHub.receive()).type, "stop");
  assert.equal((await yFromHub.receive()).type, "stop");
});

netTest("an invitation from outside the allow list gets NO", async () => {
  const refused: string[] = [];
  await using guarded = session({
    allow: ["10.0.0.0/8", "::1"],
    onRefuse: (refusal) =>
      refused.push(`${refusal.peer.hostname} ${refusal.code}`),
  });
  await using a = session();
  await guarded.ready;
  const error = await a.invite("127.0.0.1", guarded.port).catch((e) => e);
  assert.ok(error instanceof InvitationError);
  assert.equal(error.reason, "refused");
  assert.equal(guarded.stats.refused, 1);
  assert.deepEqual(refused, ["127.0.0.1 not-allowed"]);
  assert.equal(guarded.participants.length, 0);
  // A raw peer sees the NO itself, with its token.
  const raw = await RawPeer.open();
  try {
    raw.sendPacket("control", {
      command: "IN",
      version: 2,
      token: 77,
      ssrc: raw.ssrc,
      name: "intruder",
    }, guarded.port);
    const no = await raw.command("control", "NO");
    assert.equal((no.packet as { token: number }).token, 77);
  } finally {
    await raw.close();
  }
});

netTest("a session full of participants refuses the next one", async () => {
  await using small = session({ maxParticipants: 1 });
  await using a = session();
  await using b = session();
  await join(a, small);
  await assert.rejects(b.invite("127.0.0.1", small.port), InvitationError);
  assert.equal(small.stats.refused, 1);
});

netTest(
  "invite sends IN again until answered, then on the data port",
  async () => {
    const raw = await RawPeer.open();
    await using a = session({ inviteInterval: 50 });
    try {
      const invited = a.invite("127.0.0.1", raw.port);
      const first = await raw.command("control", "IN");
      await raw.command("control", "IN"); // retried
      const token = (first.packet as { token: number }).token;
      raw.sendPacket("control", {
        command: "OK",
        version: 2,
        token,
        ssrc: raw.ssrc,
        name: "raw",
      }, first.from.port);
      const data = await raw.command("data", "IN");
      assert.equal(data.from.port, a.port + 1);
      raw.sendPacket("data", {
        command: "OK",
        version: 2,
        token,
        ssrc: raw.ssrc,
        name: "raw",
      }, data.from.port);
      // The initiator starts clock synchronisation; the peer joins once it
      // answered from its data port.
      await raw.answerClock(a.port);
      const participant = await invited;
      assert.equal(participant.peerName, "raw");
      assert.equal(participant.ssrc, raw.ssrc);
    } finally {
      await raw.close();
    }
  },
);

netTest("invite gives up after inviteAttempts unanswered INs", async () => {
  const raw = await RawPeer.open();
  await using a = session({ inviteAttempts: 3, inviteInterval: 30 });
  try {
    const error = await a.invite("127.0.0.1", raw.port).catch((e) => e);
    assert.ok(error instanceof InvitationError);
    assert.equal(error.reason, "unanswered");
    assert.equal(
      raw.received.filter((d) => d.packet?.command === "IN").length,
      3,
    );
  } finally {
    await raw.close();
  }
});

netTest("a participant that stops answering syncs is dropped", async () => {
  const raw = await RawPeer.open();
  await using a = session({ timeout: 600, inviteInterval: 50 });
  try {
    const invited = a.invite("127.0.0.1", raw.port);
    for (const kind of ["control", "data"] as const) {
      const { packet, from } = await raw.command(kind, "IN");
      raw.sendPacket(kind, {
        command: "OK",
        version: 2,
        token: (packet as { token: number }).token,
        ssrc: raw.ssrc,
        name: "mute",
      }, from.port);
    }
    // It answers the first clock exchange, then no other: dropped after
    // the timeout, with BY.
    await raw.answerClock(a.port);
    const participant = await invited;
    const error = await within(participant.receive().catch((e) => e), 5000);
    assert.ok(error instanceof PortClosedError);
    assert.ok(error.cause instanceof ParticipantTimeoutError);
    assert.equal(a.participants.length, 0);
    await raw.command("control", "BY");
  } finally {
    await raw.close();
  }
});

netTest("a peer that invited and went silent is dropped", async () => {
  const raw = await RawPeer.open();
  await using b = session({ timeout: 500 });
  await b.ready;
  try {
    await raw.join(b.port);
    const participant = await b.accept();
    await within(participant.finished, 5000, "drop");
    assert.equal(participant.closed, true);
    assert.equal(b.participants.length, 0);
  } finally {
    await raw.close();
  }
});

netTest("BY ends the participant on the other side, both ways", async () => {
  await using a = session();
  await using b = session();
  await using c = session();
  const [toB, fromA] = await join(a, b);
  await toB.close();
  assert.deepEqual(await within(Array.fromAsync(fromA), 5000, "end"), []);
  assert.equal(b.participants.length, 0);
  // Closing a session says BY to everyone in it.
  const [, fromC] = await join(c, b);
  await c.close();
  await within(fromC.finished, 5000, "BY");
  await assert.rejects(fromC.send(message("clock")), PortClosedError);
});

netTest(
  "iteration yields participants and ends when the session closes",
  async () => {
    const b = session();
    await using a = session();
    await b.ready;
    const seen: string[] = [];
    const loop = (async () => {
      for await (const p of b) seen.push(p.peerName);
    })();
    await a.invite("127.0.0.1", b.port);
    await until(() => seen.length === 1);
    await b.close();
    await within(loop, 5000, "iteration end");
    assert.deepEqual(seen, ["midisock"]);
    await assert.rejects(b.accept(), PortClosedError);
    assert.equal(b.accept({ block: false }), undefined);
  },
);

netTest("a session on IPv6 loopback works", async () => {
  await using a = session({ host: "::1" });
  await using b = session({ host: "::1" });
  await b.ready;
  const toB = await a.invite("::1", b.port);
  const fromA = await b.accept();
  await toB.send(message("note_on", { note: 3 }));
  assert.equal((await fromA.receive()).type, "note_on");
  assert.equal(fromA.address.hostname, "::1");
});

netTest(
  "100,000 fuzzed datagrams on both ports: counted, the session goes on",
  async () => {
    await using target = session({ maxSysexLength: 4096 });
    await using friend = session();
    const [toTarget, fromFriend] = await join(friend, target);
    const stranger = await RawPeer.open();
    const insider = await RawPeer.open();
    const next = random(99);
    try {
      await insider.join(target.port);
      const inside = await target.accept();
      const before = target.stats.datagrams;
      const valid = encodeRtpMidi({
        sequence: 1,
        timestamp: 0,
        ssrc: insider.ssrc,
        commands: [{ delta: 0, message: message("note_on", { note: 1 }) }],
        journal: {
          checkpoint: 1,
          channels: [{
            channel: 0,
            notes: { logs: [{ note: 2, velocity: 3 }], offs: [4] },
          }],
        },
      });
      const ck = encodeSessionPacket({
        command: "CK",
        ssrc: insider.ssrc,
        count: 0,
        timestamps: [1, 0, 0],
      });
      /**
       * A sentinel on the data port: a clock exchange the session answers
       * after everything sent there before it (sent again until answered,
       * in case the socket dropped it).
       */
      const settled = async (i: number) => {
        insider.received.length = 0;
        const t1 = 1e9 + i;
        const answered = insider.take(
          (d) =>
            d.kind === "data" && d.packet?.command === "CK" &&
            d.packet.count === 1 && d.packet.timestamps[0] === t1,
          10000,
          "the sentinel's answer",
        );
        const ask = () =>
          insider.sendPacket("data", {
            command: "CK",
            ssrc: insider.ssrc,
            count: 0,
            timestamps: [t1, 0, 0],
          }, target.port + 1);
        ask();
        const again = setInterval(ask, 100);
        try {
          await answered;
        } finally {
          clearInterval(again);
        }
      };
      const fuzz = async (from: number, to: number) => {
        for (let i = from; i < to; i++) {
          const choice = next();
          let bytes: Uint8Array;
          if (choice < 0.3) {
            bytes = Uint8Array.from(
              { length: between(next, 0, 80) },
              () => between(next, 0, 255),
            );
          } else {
            const out = [...(choice < 0.4 ? ck : valid)];
            out[2] = between(next, 0, 255); // any sequence number
            for (let m = between(next, 1, 3); m > 0; m--) {
              const at = between(next, 0, out.length - 1);
              const how = next();
              if (how < 0.4) out[at] = between(next, 0, 255);
              else if (how < 0.7) out.length = at; // truncated
              else out.splice(at, 0, between(next, 0, 255)); // lengths now lie
            }
            // Keep the insider's SSRC so that packets reach its participant.
            if (out.length >= 12 && choice >= 0.4) {
              out.splice(8, 4, ...valid.subarray(8, 12));
            }
            bytes = new Uint8Array(out);
          }
          const control = choice < 0.1;
          (choice < 0.15 ? stranger : insider).send(
            control ? "control" : "data",
            bytes,
            control ? target.port : target.port + 1,
          );
          // Pace: let the session take what was sent (UDP drops what
          // overflows its socket), however slow the machine is.
          if (i % 100 === 99) await settled(i);
        }
        // What the fuzz made the insider deliver is read, as a hub would.
        [...inside.iterPending()];
      };
      await fuzz(0, 25_000);
      const rssWarm = Deno.memoryUsage().rss;
      await fuzz(25_000, 100_000);
      await until(
        () => target.stats.datagrams >= before + 90_000,
        5000,
        "fuzz taken",
      );
      const grown = Deno.memoryUsage().rss - rssWarm;
      assert.ok(grown < 64 * 2 ** 20, `RSS grew ${grown} bytes`);
      assert.ok(
        target.stats.malformed > 5000,
        `malformed ${target.stats.malformed}`,
      );
      assert.ok(target.stats.unknown > 1000, `unknown ${target.stats.unknown}`);
      assert.ok(
        inside.stats.packetsIn > 10_000,
        `taken ${inside.stats.packetsIn}`,
      );
      // The honest participant still gets everything.
      const sent = notes(200);
      for (const m of sent) await toTarget.send(m);
      assert.deepEqual(await take(fromFriend, 200), sent);
    } finally {
      await stranger.close();
      await insider.close();
    }
  },
);
