// RtpMidiSession with a real peer: npm rtpmidi 1.0.0 under Node, both as
// the one that invites and as the one invited, and a TCP client of the same
// process on the other side (what the hub will join).

import assert from "node:assert/strict";
import {
  connect,
  encode,
  Hub,
  type Message,
  message,
  NoteTracker,
  PortServer,
  RtpMidiSession,
} from "../mod.ts";
import type { RtpMidiParticipant } from "../src/rtp/mod.ts";
import { boundedTest, take, until, within } from "./_net.ts";
import { LossyProxy } from "./_rtp.ts";
import { NodePeer, RTPMIDI_MISSING } from "./_rtp_peers.ts";
import { between, random } from "./_util.ts";

const PERMISSIONS: Deno.PermissionOptionsObject = {
  net: ["127.0.0.1", "[::1]", "localhost"],
  run: ["node"],
  env: ["MIDISOCK_RTPMIDI_DIR", "MIDISOCK_REQUIRE_RTP"],
  read: true,
};

function rtpmidiTest(name: string, fn: () => Promise<void>): void {
  boundedTest(name, fn, {
    ignore: RTPMIDI_MISSING,
    permissions: PERMISSIONS,
    ms: 60000,
  });
}

/** 1000 notes whose order shows: note i % 128, velocity 1 + i / 128. */
function notes(count = 1000, channel = 0): Message[] {
  return Array.from(
    { length: count },
    (_, i) =>
      message(i % 3 === 2 ? "note_off" : "note_on", {
        channel,
        note: i & 127,
        velocity: 1 + (i >> 7),
      }),
  );
}

async function exchange(
  peer: NodePeer,
  hub: Hub,
  participant: RtpMidiParticipant,
): Promise<void> {
  // TCP client <-> hub <-> participant <-> rtpmidi.
  await using server = await hub.attach(new PortServer("127.0.0.1", 0));
  await using client = await connect("127.0.0.1", server.port);
  await until(() => hub.endpoints.length === 2);
  await peer.wait("synced", 15000);

  // rtpmidi -> midisock -> TCP client.
  const fromPeer = notes(1000, 1);
  await peer.command({
    cmd: "send",
    batch: 10,
    messages: fromPeer.map((m) => [...encode(m)]),
  });
  assert.deepEqual(await take(client, 1000, 15000), fromPeer);

  // TCP client -> midisock -> rtpmidi.
  const toPeer = notes(1000, 2);
  for (const m of toPeer) await client.send(m);
  await peer.wait("midi", 15000, 1000);
  assert.deepEqual(peer.midi(), toPeer.map((m) => [...encode(m)]));
  assert.equal(participant.stats.lost, 0);
  // rtpmidi stamps each packet with its session clock when it sends it
  // (the clock of its clock exchanges), and every delta time 0: its
  // packets are taken at the time it sent them, none at arrival.
  assert.equal(participant.stats.untimed, 0);
}

rtpmidiTest(
  "rtpmidi invites midisock: 1000 notes each way reach a TCP client in order",
  async () => {
    // As serve --rtp does it: the session attached to the hub.
    await using hub = new Hub();
    const session = await hub.attach(
      new RtpMidiSession({ port: 0, name: "midisock" }),
    );
    const peer = await NodePeer.start("invite", session.port);
    try {
      await until(() => hub.endpoints.length === 1, 15000, "invitation");
      const [endpoint] = hub.endpoints;
      assert.equal(endpoint.transport, "rtp");
      const participant = endpoint.port as RtpMidiParticipant;
      assert.equal(participant.peerName, "node-rtpmidi");
      assert.equal(participant.initiator, false);
      await exchange(peer, hub, participant);
      await hub.close();
      await peer.wait("left", 5000);
    } finally {
      await peer.close();
    }
  },
);

rtpmidiTest(
  "midisock invites rtpmidi: 1000 notes each way reach a TCP client in order",
  async () => {
    await using session = new RtpMidiSession({ port: 0, name: "midisock" });
    const peer = await NodePeer.start("listen");
    try {
      const participant = await session.invite("127.0.0.1", peer.port);
      assert.equal(participant.initiator, true);
      await peer.wait("joined");
      // A session used alone: its participant added to a hub by hand.
      await using hub = new Hub();
      hub.add(participant, { transport: "rtp" });
      await exchange(peer, hub, participant);
    } finally {
      await peer.close();
    }
  },
);

rtpmidiTest(
  "rtpmidi through a link losing 5%: after 10,000 note pairs no note stays on",
  async () => {
    await using session = new RtpMidiSession({ port: 0 });
    await session.ready;
    const proxy = await LossyProxy.open(session.port, 0.05, random(5));
    const peer = await NodePeer.start("invite", proxy.port);
    try {
      const participant = await within(session.accept(), 15000, "invitation");
      await peer.wait("synced", 15000);
      const tracker = new NoteTracker();
      let seen = 0;
      let sentinel = false;
      const reading = (async () => {
        for await (const msg of participant) {
          tracker.track(msg);
          seen++;
          if (msg.type === "control_change" && msg.control === 119) {
            sentinel = true;
          }
        }
      })();
      const next = random(8);
      const pairs: number[][] = [];
      for (let i = 0; i < 10_000; i++) {
        const status = between(next, 0, 15);
        const n = between(next, 0, 127);
        pairs.push([0x90 | status, n, between(next, 1, 127)]);
        pairs.push([0x80 | status, n, 0]);
      }
      proxy.lossy = true;
      await peer.command({ cmd: "send", batch: 10, messages: pairs });
      await peer.wait("sent", 30000);
      // rtpmidi sends no journal: the packet after a loss is how the
      // receiver learns of it. One more, not lost, ends the run.
      proxy.lossy = false;
      await peer.command({ cmd: "send", batch: 1, messages: [[0xb0, 119, 1]] });
      await until(() => sentinel, 10000, "sentinel");
      assert.ok(proxy.dropped > 50, `dropped ${proxy.dropped}`);
      assert.ok(participant.stats.lost > 0);
      assert.equal(tracker.size, 0, `${tracker.size} notes stuck on`);
      assert.ok(seen > 15_000, `only ${seen} messages`);
      await participant.close();
      await reading;
    } finally {
      await peer.close();
      await proxy.close();
    }
  },
);
