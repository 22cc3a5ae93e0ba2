// RtpMidiSession as a hub's transport, and who it lets in: the gate's
// ticket from the first invitation to the last BY, proof that a peer
// receives before anything is sent to it, session commands only from a
// participant's own addresses, pending invitations bounded and short, no
// live heap kept per join, and the errors a user meets (a taken port, a
// host that does not resolve, bad arguments). Peers are raw AppleMIDI
// sockets scripted by the test; where a test stands for an attacker that
// forges its source address, it sends from the victim's own sockets.

import assert from "node:assert/strict";
import {
  Hub,
  type HubEvent,
  type Message,
  message,
  RtpMidiSession,
} from "../mod.ts";
import {
  encodeRtpMidi,
  encodeSessionPacket,
  InvitationError,
  isSessionPacket,
  type RtpMidiWarning,
  type SessionPacket,
} from "../src/rtp/mod.ts";
import { boundedTest, LOOPBACK, netTest, take, until, within } from "./_net.ts";
import { RawPeer, socketPair } from "./_rtp.ts";

function session(
  options: ConstructorParameters<typeof RtpMidiSession>[0] = {},
): RtpMidiSession {
  return new RtpMidiSession({ port: 0, ...options });
}

/** Events of a hub, as they happen. */
function record(hub: Hub): HubEvent[] {
  const events: HubEvent[] = [];
  hub.listen((event) => events.push(event));
  return events;
}

/**
 * A sentinel on the control port: IN again with the participant's own token
 * is answered OK, after everything sent to that port before it.
 */
async function controlSentinel(
  peer: RawPeer,
  port: number,
  token = 1234,
): Promise<void> {
  peer.sendPacket("control", {
    command: "IN",
    version: 2,
    token,
    ssrc: peer.ssrc,
    name: "raw",
  }, port);
  await peer.command("control", "OK");
}

/** One RTP-MIDI packet from `peer` with these messages. */
function midi(
  peer: RawPeer,
  sequence: number,
  messages: Message[],
): Uint8Array {
  return encodeRtpMidi({
    sequence,
    timestamp: sequence,
    ssrc: peer.ssrc,
    commands: messages.map((msg) => ({ delta: 0, message: msg })),
  });
}

netTest(
  "a session on a hub with a token warns that the token does not cover it",
  async () => {
    for (const token of [undefined, "a-secret-of-16-chars"]) {
      await using hub = new Hub({ token });
      const events = record(hub);
      const rtp = await hub.attach(session());
      const warnings = events.flatMap((e) =>
        e.type === "warning" ? [e.message] : []
      );
      // On loopback there is no exposure to warn of; only the token.
      assert.deepEqual(
        warnings,
        token === undefined ? [] : [
          `${rtp.name}: RTP-MIDI carries no token, so the hub's token does ` +
          "not protect it (use an allow list)",
        ],
      );
    }
  },
);

netTest(
  "an attached session's participants are clients of the hub, which closes it",
  async () => {
    const hub = new Hub();
    const events = record(hub);
    const hubSide = session({ name: "hub" });
    assert.equal(await hub.attach(hubSide), hubSide);
    assert.equal(hubSide.name, `rtp 127.0.0.1:${hubSide.port}`);
    assert.equal(hubSide.sessionName, "hub");
    assert.deepEqual(hub.transports, [hubSide]);
    await using a = session({ name: "alpha" });
    await using b = session({ name: "beta" });
    const toHubA = await a.invite("127.0.0.1", hubSide.port);
    const toHubB = await b.invite("127.0.0.1", hubSide.port);
    await until(() => hub.endpoints.length === 2, 5000, "two clients");
    const names = hub.endpoints.map((e) => e.name).sort();
    assert.deepEqual(
      names,
      [
        `rtp "127.0.0.1:${a.port} (alpha)"`,
        `rtp "127.0.0.1:${b.port} (beta)"`,
      ].sort(),
    );
    for (const endpoint of hub.endpoints) {
      assert.equal(endpoint.transport, "rtp");
      assert.equal(endpoint.kind, "client");
    }
    // Clients hear each other through the hub.
    await toHubA.send(message("note_on", { note: 64 }));
    assert.deepEqual(await take(toHubB, 1), [message("note_on", { note: 64 })]);
    // Participants are the hub's, not the caller's.
    await assert.rejects(hubSide.accept(), TypeError);
    assert.equal(
      events.filter((e) => e.type === "join").length,
      2,
    );
    // Closing the hub closes its participants (the peers hear BY) and the
    // session.
    await hub.close();
    assert.equal(hubSide.closed, true);
    await within(toHubA.finished, 5000, "BY to alpha");
    await within(toHubB.finished, 5000, "BY to beta");
  },
);

netTest(
  "a session with an allow list of its own is refused by a hub",
  async () => {
    await using hub = new Hub();
    const own = session({ allow: ["127.0.0.1"] });
    await assert.rejects(hub.attach(own), TypeError);
    assert.equal(own.closed, true);
    const capped = session({ maxParticipants: 3 });
    await assert.rejects(hub.attach(capped), TypeError);
    assert.equal(hub.transports.length, 0);
  },
);

netTest(
  "the hub's gate admits participants: allow list and client bound, typed",
  async () => {
    await using hub = new Hub({ maxClients: 1, allow: ["127.0.0.1"] });
    const events = record(hub);
    const refused: string[] = [];
    const hubSide = await hub.attach(
      session({ onRefuse: (r) => refused.push(r.code) }),
    );
    await using a = session();
    await using b = session();
    await a.invite("127.0.0.1", hubSide.port);
    await until(() => hub.endpoints.length === 1);
    const error = await b.invite("127.0.0.1", hubSide.port).catch((e) => e);
    assert.ok(error instanceof InvitationError);
    assert.equal(error.reason, "refused");
    assert.deepEqual(refused, ["full"]);
    const refusals = events.flatMap((e) => e.type === "refuse" ? [e] : []);
    assert.deepEqual(refusals.map((e) => e.refusal.code), ["full"]);
    assert.equal(refusals[0].refusal.peer.transport, "rtp");
    assert.equal(hubSide.stats.refused, 1);
  },
);

netTest(
  "BY counts only from the participant's own address, with its token",
  async () => {
    await using target = session();
    await target.ready;
    const victim = await RawPeer.open();
    const attacker = await RawPeer.open();
    try {
      await victim.join(target.port);
      const participant = await target.accept();
      const by = (token: number) =>
        encodeSessionPacket({
          command: "BY",
          version: 2,
          token,
          ssrc: victim.ssrc,
          name: "",
        });
      // The right token from another address; a wrong one from its own.
      attacker.send("control", by(1234), target.port);
      attacker.send("data", by(1234), target.port);
      victim.send("control", by(999), target.port);
      await controlSentinel(victim, target.port);
      assert.equal(participant.closed, false);
      assert.equal(target.participants.length, 1);
      // Its own BY ends it.
      victim.send("control", by(1234), target.port);
      await within(participant.finished, 5000, "BY");
      assert.equal(target.participants.length, 0);
    } finally {
      await victim.close();
      await attacker.close();
    }
  },
);

netTest(
  "an invitation with a participant's SSRC from another address takes nothing over",
  async () => {
    await using target = session();
    await target.ready;
    const victim = await RawPeer.open();
    const attacker = await RawPeer.open();
    try {
      await victim.join(target.port);
      const participant = await target.accept();
      for (const kind of ["control", "data"] as const) {
        attacker.sendPacket(kind, {
          command: "IN",
          version: 2,
          token: 4321,
          ssrc: victim.ssrc,
          name: "impostor",
        }, kind === "control" ? target.port : target.port + 1);
        await attacker.command(kind, "NO");
      }
      await controlSentinel(victim, target.port);
      assert.equal(participant.closed, false);
      assert.deepEqual(
        target.participants.map((p) => p.peerName),
        ["raw"],
      );
      // MIDI from the victim still reaches its participant.
      victim.send(
        "data",
        midi(victim, 10, [message("note_on", { note: 1 })]),
        target.port + 1,
      );
      assert.deepEqual(await take(participant, 1), [
        message("note_on", { note: 1 }),
      ]);
    } finally {
      await victim.close();
      await attacker.close();
    }
  },
);

netTest(
  "RS, RL and CK from another address do not keep a silent participant",
  async () => {
    await using target = session({ timeout: 600 });
    await target.ready;
    const victim = await RawPeer.open();
    const attacker = await RawPeer.open();
    try {
      await victim.join(target.port);
      const participant = await target.accept();
      const started = performance.now();
      const packets: SessionPacket[] = [
        { command: "RS", ssrc: victim.ssrc, sequence: 1 },
        { command: "RL", ssrc: victim.ssrc, limit: 10000 },
        { command: "CK", ssrc: victim.ssrc, count: 0, timestamps: [5, 0, 0] },
        { command: "CK", ssrc: victim.ssrc, count: 2, timestamps: [5, 6, 7] },
      ];
      const keepAlive = setInterval(() => {
        for (const packet of packets) {
          attacker.sendPacket("control", packet, target.port);
          attacker.sendPacket("data", packet, target.port + 1);
        }
      }, 50);
      try {
        await within(participant.finished, 5000, "timeout");
      } finally {
        clearInterval(keepAlive);
      }
      const lasted = performance.now() - started;
      assert.ok(lasted < 2500, `dropped after ${lasted} ms`);
      assert.ok(target.stats.unknown > 0);
    } finally {
      await victim.close();
      await attacker.close();
    }
  },
);

netTest(
  "a forged join sends no MIDI to the address it names, only a few small packets",
  async () => {
    await using hub = new Hub({ handshakeTimeout: 800 });
    const events = record(hub);
    const hubSide = await hub.attach(session());
    // A player whose notes the hub relays to every client.
    await using player = session({ name: "player" });
    const toHub = await player.invite("127.0.0.1", hubSide.port);
    // The victim's sockets never answer; the attacker sends from them (as
    // a forged source address would), invitations and then keep-alives.
    const victim = await RawPeer.open();
    let forged = 0;
    const forge = (kind: "control" | "data", packet: SessionPacket) => {
      const bytes = encodeSessionPacket(packet);
      forged += bytes.length;
      victim.send(
        kind,
        bytes,
        kind === "control" ? hubSide.port : hubSide.port + 1,
      );
    };
    // Everything that reaches the victim, counted as it comes.
    const reached = { packets: 0, bytes: 0, midi: 0 };
    for (const socket of [victim.control, victim.data]) {
      socket.on("message", (msg: Uint8Array) => {
        reached.packets++;
        reached.bytes += msg.length;
        if (!isSessionPacket(new Uint8Array(msg))) reached.midi++;
      });
    }
    try {
      // Each invitation once its port is answered: the join gets as far as
      // a forged one can.
      for (const kind of ["control", "data"] as const) {
        forge(kind, {
          command: "IN",
          version: 2,
          token: 77,
          ssrc: victim.ssrc,
          name: "",
        });
        await victim.command(kind, "OK");
      }
      const keepAlive = setInterval(
        () => forge("control", { command: "RL", ssrc: victim.ssrc, limit: 1 }),
        50,
      );
      const notes = (async () => {
        for (let i = 0; i < 1000; i++) {
          await toHub.send(message("note_on", { note: i & 127 }));
          if (i % 10 === 9) await new Promise((r) => setTimeout(r, 2));
        }
      })();
      try {
        await until(
          () =>
            events.some((e) =>
              e.type === "refuse" && e.refusal.code === "timeout" &&
              e.refusal.peer.port === victim.port &&
              // The gate's deadline, with what the peer still owed.
              e.refusal.reason ===
                "no answer to the clock exchange from its data port within 800 ms"
            ),
          5000,
          "the forged invitation timed out",
        );
        await notes;
      } finally {
        clearInterval(keepAlive);
      }
      // Sentinel: one more note relayed... to nobody; then the counts.
      await toHub.send(message("stop"));
      assert.equal(
        events.filter((e) => e.type === "join").length,
        1,
        "only the player joined",
      );
      assert.equal(reached.midi, 0, "no RTP-MIDI packet reached the victim");
      assert.ok(
        reached.packets <= 8,
        `${reached.packets} packets to the victim`,
      );
      assert.ok(
        reached.bytes <= forged,
        `${reached.bytes} bytes out for ${forged} in`,
      );
    } finally {
      await victim.close();
    }
  },
);

netTest(
  "control-only invitations keep no good peer out and expire at the deadline",
  async () => {
    await using hub = new Hub({ handshakeTimeout: 400 });
    const events = record(hub);
    const hubSide = await hub.attach(session());
    const bad = await RawPeer.open();
    const good: RawPeer[] = [];
    try {
      for (let ssrc = 1; ssrc <= 64; ssrc++) {
        bad.sendPacket("control", {
          command: "IN",
          version: 2,
          token: ssrc,
          ssrc,
          name: "",
        }, hubSide.port);
      }
      await until(
        () => bad.received.length === 64,
        5000,
        "64 answers",
      );
      // Bounded per address: the oldest made room for the newest.
      assert.ok(hub.gate.pending <= 16, `${hub.gate.pending} pending`);
      for (let i = 0; i < 20; i++) {
        const peer = await RawPeer.open();
        good.push(peer);
        await peer.join(hubSide.port, 5000 + i, `good ${i}`);
      }
      await until(() => hub.endpoints.length === 20, 5000, "20 joined");
      // What never completed is gone by the deadline.
      await until(() => hub.gate.pending === 0, 3000, "pending expired");
      const refused = events.flatMap((e) =>
        e.type === "refuse" && e.refusal.peer.port === bad.port
          ? [e.refusal]
          : []
      );
      assert.equal(refused.length, 64, "each one refused once");
      assert.ok(refused.every((r) => r.code === "timeout"));
      // The oldest made room (for newer ones from this address, the good
      // peers' included); the rest expired at the gate's deadline.
      const reasons = new Set(refused.map((r) => r.reason));
      assert.deepEqual([...reasons].sort(), [
        "handshake too slow: closed to make room for a newer connection",
        "no invitation on the data port within 400 ms",
      ]);
    } finally {
      await bad.close();
      for (const peer of good) await peer.close();
    }
  },
);

netTest(
  "a peer that repeats sequence numbers is heard, and said so once",
  async () => {
    const warnings: RtpMidiWarning[] = [];
    await using hub = new Hub();
    const events = record(hub);
    const hubSide = await hub.attach(
      session({ onWarning: (w) => warnings.push(w) }),
    );
    await using listener = session({ name: "listener" });
    const ear = await listener.invite("127.0.0.1", hubSide.port);
    const peer = await RawPeer.open();
    try {
      await peer.join(hubSide.port);
      await until(() => hub.endpoints.length === 2);
      const on = midi(peer, 100, [message("note_on", { note: 60 })]);
      peer.send("data", on, hubSide.port + 1);
      peer.send("data", on, hubSide.port + 1); // a true duplicate: dropped
      peer.send(
        "data",
        midi(peer, 100, [message("note_off", { note: 60, velocity: 0 })]),
        hubSide.port + 1,
      );
      peer.send(
        "data",
        midi(peer, 100, [message("note_on", { note: 61 })]),
        hubSide.port + 1,
      );
      assert.deepEqual(await take(ear, 3), [
        message("note_on", { note: 60 }),
        message("note_off", { note: 60, velocity: 0 }),
        message("note_on", { note: 61 }),
      ]);
      await until(() => warnings.length === 1, 5000, "the warning");
      assert.equal(warnings[0].code, "repeated-sequence");
      assert.equal(warnings[0].count, 2);
      assert.match(warnings[0].message, /repeats sequence numbers \(2 packets/);
      const participant = hubSide.participants.find((p) =>
        p.peerName === "raw"
      )!;
      assert.equal(participant.stats.repeated, 2);
      assert.equal(participant.stats.late, 1);
      // More repeats are counted, not said again.
      peer.send(
        "data",
        midi(peer, 100, [message("note_off", { note: 61, velocity: 0 })]),
        hubSide.port + 1,
      );
      await take(ear, 1);
      peer.sendPacket("control", {
        command: "BY",
        version: 2,
        token: 1234,
        ssrc: peer.ssrc,
        name: "",
      }, hubSide.port);
      await until(() => hub.endpoints.length === 1, 5000, "the peer left");
      assert.equal(warnings.length, 1);
      assert.equal(
        events.filter((e) =>
          e.type === "warning" && e.message.includes("repeats sequence")
        ).length,
        1,
      );
    } finally {
      await peer.close();
    }
  },
);

netTest("invite refuses bad arguments at once", async () => {
  await using s = session();
  for (const host of ["", "a b", "host:5004", "[::1", "x".repeat(300)]) {
    await assert.rejects(s.invite(host, 5004), TypeError, host);
  }
  await assert.rejects(s.invite(42 as unknown as string, 5004), TypeError);
  await assert.rejects(s.invite("127.0.0.1", 1.5), TypeError);
  for (const port of [0, 65535, 70000, -1]) {
    await assert.rejects(s.invite("127.0.0.1", port), RangeError);
  }
});

boundedTest(
  "invite fails at once for a host name that does not resolve",
  async () => {
    // Without net permission for the name: said at once.
    await using s = session();
    const started = performance.now();
    await assert.rejects(
      s.invite("nosuchhost.invalid", 5004),
      Deno.errors.NotCapable,
    );
    // With it: a name-resolution error, in a process allowed to resolve.
    const script = `
      import { RtpMidiSession } from ${
      JSON.stringify(new URL("../mod.ts", import.meta.url).href)
    };
      await using s = new RtpMidiSession({ port: 0 });
      const t = performance.now();
      const e = await s.invite("nosuchhost.invalid", 5004).catch((e) => e);
      console.log(JSON.stringify({ name: e.name, reason: e.reason, message: e.message, ms: performance.now() - t }));
    `;
    const { stdout, success } = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        "--ext=ts",
        "--allow-net=127.0.0.1,nosuchhost.invalid",
        "--allow-read",
        script,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    assert.ok(success);
    const result = JSON.parse(new TextDecoder().decode(stdout).trim());
    assert.equal(result.name, "InvitationError");
    assert.equal(result.reason, "unresolved");
    assert.match(
      result.message,
      /^Cannot invite RTP-MIDI peer nosuchhost\.invalid:5004: its host name does not resolve/,
    );
    assert.ok(result.ms < 3000, `${result.ms} ms`);
    assert.ok(performance.now() - started < 10000);
  },
  {
    permissions: { ...LOOPBACK, run: [Deno.execPath()], read: true },
    ms: 20000,
  },
);

netTest("a taken control or data port is named, with what to do", async () => {
  const [control, data] = await socketPair();
  const port = control.address().port;
  try {
    await new Promise<void>((resolve) => control.close(() => resolve()));
    const error = await session({ port }).ready.catch((e) => e);
    assert.ok(error instanceof Deno.errors.AddrInUse);
    assert.equal(
      error.message,
      `UDP 127.0.0.1:${port + 1}, the RTP-MIDI data port (the control ` +
        `port ${port} + 1), is already in use: choose a control port whose ` +
        "next port is free too",
    );
  } finally {
    await new Promise<void>((resolve) => data.close(() => resolve()));
  }
  // The control port taken.
  await using first = session();
  await first.ready;
  const error = await session({ port: first.port }).ready.catch((e) => e);
  assert.ok(error instanceof Deno.errors.AddrInUse);
  assert.match(
    error.message,
    new RegExp(
      `^UDP 127\\.0\\.0\\.1:${first.port}, the RTP-MIDI control port, is already in use`,
    ),
  );
});

boundedTest(
  "join and leave cycles keep no live heap (bench/rtp_churn.ts)",
  async () => {
    const { stdout, success } = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net=127.0.0.1",
        "--allow-read",
        "--v8-flags=--expose-gc",
        new URL("../bench/rtp_churn.ts", import.meta.url).pathname,
        "--cycles=4000",
        "--warmup=500",
        "--json",
      ],
      stdout: "piped",
      stderr: "inherit",
    }).output();
    assert.ok(success);
    const result = JSON.parse(new TextDecoder().decode(stdout).trim());
    assert.equal(result.cycles, 4000);
    // Before: about 340 bytes a cycle (a reaction per endpoint on a promise
    // that lives as long as the hub).
    assert.ok(
      result.perCycle < 100,
      `${result.perCycle.toFixed(0)} bytes of live heap per cycle`,
    );
  },
  {
    permissions: { ...LOOPBACK, run: [Deno.execPath()], read: true },
    ms: 60000,
  },
);
