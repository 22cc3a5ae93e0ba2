// RTP-MIDI keeps time: a participant sends each batch's time as its RTP
// timestamp (and delta times), reads the peer's through the clock
// exchanges, and hands the hub the peer's time mapped to the hub's clock;
// between hubs whose clocks are seconds apart and drift, whoever invited
// whom. A peer whose timestamps do not read as times is taken at arrival.

import assert from "node:assert/strict";
import {
  Hub,
  type Message,
  message,
  RtpMidiSession,
  systemClock,
  type TimeSource,
} from "../mod.ts";
import {
  decodeRtpMidi,
  encodeRtpMidi,
  type RtpMidiParticipant,
} from "../src/rtp/mod.ts";
import { boundedTest, until } from "./_net.ts";
import { Player, RawPeer } from "./_rtp.ts";
import { TimedEndpoint } from "./_timed_ports.ts";

/** A clock `offset` ms ahead of the system's and `drift` fast. */
function skewed(offset: number, drift: number): TimeSource {
  return {
    now: () => offset + systemClock.now() * (1 + drift),
    setTimer: (callback, delay, keepAlive) =>
      systemClock.setTimer(callback, delay / (1 + drift), keepAlive),
  };
}

/** What a listener heard: the note, its time, and when it was heard. */
interface Heard {
  note: number;
  at: number | undefined;
  when: number;
}

/** A timed endpoint: hears each batch at once, with its time. */
class TimedListener extends TimedEndpoint {
  readonly name = "timed";
  readonly heard: Heard[] = [];
  readonly #clock: TimeSource;
  constructor(clock: TimeSource, timed = true) {
    super(timed);
    this.#clock = clock;
  }
  protected hear(msg: Message, at: number | undefined): void {
    if (msg.type === "note_on") {
      this.heard.push({ note: msg.note, at, when: this.#clock.now() });
    }
  }
}

const PERMISSIONS: Deno.PermissionOptionsObject = {
  net: ["127.0.0.1"],
};

function timingTest(name: string, fn: () => Promise<void>, ms = 30000) {
  boundedTest(name, fn, { permissions: PERMISSIONS, ms });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/**
 * Two hubs joined by an RTP-MIDI session; `a`'s clock is 5 s ahead of
 * `b`'s (the system's) and 200 ppm fast. (A hub on the system's clock
 * plays out to within a fraction of a ms; on another, to within its
 * timers.)
 */
async function twoHubs(
  inviter: "a" | "b",
  latency = 0,
): Promise<{ a: Hub; b: Hub; close: () => Promise<void> }> {
  const a = new Hub({ clock: skewed(5000, 200e-6) });
  const b = new Hub({ clock: systemClock, latency });
  const sa = await a.attach(new RtpMidiSession({ port: 0, name: "a" }));
  const sb = await b.attach(new RtpMidiSession({ port: 0, name: "b" }));
  if (inviter === "a") await sa.invite("127.0.0.1", sb.port);
  else await sb.invite("127.0.0.1", sa.port);
  await until(
    () => a.endpoints.length === 1 && b.endpoints.length === 1,
    5000,
    "both joined",
  );
  return {
    a,
    b,
    close: async () => {
      await a.close();
      await b.close();
    },
  };
}

/** The time on `b`'s clock (the system's) of an instant `a`'s read as `t`. */
const onB = (t: number) => (t - 5000) / (1 + 200e-6);
/** The time on `a`'s clock of an instant `b`'s read as `t`. */
const onA = (t: number) => 5000 + t * (1 + 200e-6);

// When a invites, for 13 s: past the first 10 s, when the clock exchanges
// go from 50 ms apart to 250 ms.
for (const [inviter, seconds] of [["a", 13], ["b", 4]] as const) {
  timingTest(
    `hubs 5 s apart and 200 ppm adrift agree on each note's time within 2 s, both ways, and hold it for ${seconds} s (${inviter} invites)`,
    async () => {
      const { a, b, close } = await twoHubs(inviter);
      try {
        const fromA = new Player("player a");
        const fromB = new Player("player b");
        const atA = new TimedListener(a.clock);
        const atB = new TimedListener(b.clock);
        a.add(fromA, { kind: "device" });
        b.add(fromB, { kind: "device" });
        a.add(atA, { kind: "device" });
        b.add(atB, { kind: "device" });
        const joined = systemClock.now();
        // A note every 20 ms each way, each played as having happened
        // 20 ms before (an input of its own time): arrival would be 20 ms
        // off.
        const sentA: number[] = [];
        const sentB: number[] = [];
        const count = seconds * 50;
        for (let i = 0; i < count; i++) {
          const tA = a.clock.now() - 20;
          sentA.push(tA);
          fromA.play([message("note_on", { note: i & 127 })], tA);
          const tB = b.clock.now() - 20;
          sentB.push(tB);
          fromB.play([message("note_on", { note: i & 127 })], tB);
          await sleep(20);
        }
        await until(
          () => atA.heard.length === count && atB.heard.length === count,
          5000,
          "every note",
        );
        const errors = (
          heard: Heard[],
          sent: number[],
          map: (t: number) => number,
          sentClock: (t: number) => number,
        ) =>
          heard.map((h, i) => ({
            // How long after joining it was sent (on the system's clock).
            since: sentClock(sent[i]) - joined,
            error: h.at! - map(sent[i]),
          }));
        const toB = errors(atB.heard, sentA, onB, onB);
        const toA = errors(atA.heard, sentB, onA, (t) => t);
        for (
          const [what, list] of [["a to b", toB], ["b to a", toA]] as const
        ) {
          const settled = list.filter((e) => e.since >= 2000).map((e) =>
            Math.abs(e.error)
          );
          assert.ok(settled.length > 80, `${what}: ${settled.length} notes`);
          const worst = Math.max(...settled);
          const later = list.filter((e) => e.since >= 10_500).map((e) =>
            Math.abs(e.error)
          );
          console.log(
            `${what}: after 2 s, |error| p50 ${
              quantile(settled, 0.5).toFixed(3)
            } ms, max ${worst.toFixed(3)} ms` +
              (later.length > 0
                ? `; after 10.5 s, max ${Math.max(...later).toFixed(3)} ms`
                : ""),
          );
          assert.ok(
            worst < 0.5,
            `${what}: off by up to ${worst.toFixed(3)} ms`,
          );
        }
      } finally {
        await close();
      }
    },
  );
}

timingTest(
  "with a playout delay, plain endpoints hear each note at its sender's time plus the delay",
  async () => {
    const { a, b, close } = await twoHubs("a", 30);
    try {
      const player = new Player("player");
      const plain = new TimedListener(b.clock, false);
      a.add(player, { kind: "device" });
      b.add(plain, { kind: "device" });
      const joined = systemClock.now();
      const sent: number[] = [];
      for (let i = 0; i < 150; i++) {
        const t = a.clock.now();
        sent.push(t);
        player.play([message("note_on", { note: i & 127 })], t);
        await sleep(20);
      }
      await until(() => plain.heard.length === 150, 5000, "every note");
      const errors = plain.heard
        .map((h, i) => ({
          since: onB(sent[i]) - joined,
          error: h.when - (onB(sent[i]) + 30),
        }))
        .filter((e) => e.since >= 2000)
        .map((e) => e.error);
      const median = quantile(errors, 0.5);
      console.log(
        `heard after send + 30 ms: min ${Math.min(...errors).toFixed(3)}, ` +
          `p50 ${median.toFixed(3)}, p90 ${
            quantile(errors, 0.9).toFixed(3)
          } ms`,
      );
      // Never early (beyond what the clocks' agreement allows); on time as
      // a rule (a loaded machine may wake any one delivery late).
      assert.ok(
        Math.min(...errors) > -0.5,
        `early by ${-Math.min(...errors)} ms`,
      );
      assert.ok(Math.abs(median) < 0.5, `median ${median} ms`);
      assert.equal(b.timing?.late, 0);
    } finally {
      await close();
    }
  },
);

/** An RTP-MIDI packet from a raw peer. */
function packet(
  peer: RawPeer,
  sequence: number,
  timestamp: number,
  commands: { delta: number; message: Message }[],
): Uint8Array {
  return encodeRtpMidi({
    sequence,
    timestamp: ((timestamp % 2 ** 32) + 2 ** 32) % 2 ** 32,
    ssrc: peer.ssrc,
    commands,
  });
}

const on = (note: number) => message("note_on", { note });

timingTest(
  "a peer's delta times and timestamp give each message its own time",
  async () => {
    await using hub = new Hub();
    const session = await hub.attach(new RtpMidiSession({ port: 0 }));
    const timed = new TimedListener(hub.clock);
    hub.add(timed, { kind: "device" });
    const peer = await RawPeer.open();
    try {
      // The peer's clock: the hub's, in ticks, plus a base of its own; it
      // proves itself with a clock exchange that says so.
      const base = 123_456_789;
      const peerNow = () => Math.round(hub.clock.now() * 10) + base;
      await peer.invite(session.port);
      await peer.prove(session.port, peerNow());
      await until(() => hub.endpoints.length === 2, 5000, "joined");
      // Played 20 ms ago, then 5 ms later (twice), then 15 ms after the first.
      const stamp = peerNow() - 200;
      peer.send(
        "data",
        packet(peer, 1, stamp, [
          { delta: 0, message: on(1) },
          { delta: 50, message: on(2) },
          { delta: 0, message: on(3) },
          { delta: 100, message: on(4) },
        ]),
        session.port + 1,
      );
      await until(() => timed.heard.length === 4, 5000, "four notes");
      const [first, ...rest] = timed.heard;
      const arrival = first.when;
      assert.ok(
        Math.abs(first.at! - (arrival - 20)) < 2,
        `the first note's time is ${arrival - first.at!} ms before its arrival`,
      );
      assert.deepEqual(
        rest.map((h) => Math.round((h.at! - first.at!) * 1000) / 1000),
        [5, 5, 15],
      );
      const participant = hub.endpoints.find((e) => e.transport === "rtp")!
        .port as RtpMidiParticipant;
      assert.equal(participant.stats.untimed, 0);
    } finally {
      await peer.close();
    }
  },
);

timingTest(
  "a peer whose timestamps are no time it kept is heard at arrival",
  async () => {
    await using hub = new Hub();
    const session = await hub.attach(new RtpMidiSession({ port: 0 }));
    const timed = new TimedListener(hub.clock);
    hub.add(timed, { kind: "device" });
    const peer = await RawPeer.open();
    try {
      await peer.join(session.port);
      await until(() => hub.endpoints.length === 2, 5000, "joined");
      // Timestamps half the 32-bit range away from its clock, then
      // 10 s ahead of it: neither reads as a time near now.
      peer.send(
        "data",
        packet(peer, 1, 2 ** 31, [{ delta: 0, message: on(1) }]),
        session.port + 1,
      );
      peer.send(
        "data",
        packet(peer, 2, 100_000, [{ delta: 0, message: on(2) }]),
        session.port + 1,
      );
      await until(() => timed.heard.length === 2, 5000, "two notes");
      for (const h of timed.heard) {
        assert.ok(Math.abs(h.when - h.at!) < 1, `${h.when - h.at!} ms`);
      }
      const participant = hub.endpoints.find((e) => e.transport === "rtp")!
        .port as RtpMidiParticipant;
      assert.equal(participant.stats.untimed, 2);
      assert.equal(participant.stats.received, 2);
    } finally {
      await peer.close();
    }
  },
);

timingTest(
  "batches go out with their times: one packet while times grow, delta times between",
  async () => {
    await using hub = new Hub();
    const session = await hub.attach(new RtpMidiSession({ port: 0 }));
    const player = new Player("player");
    hub.add(player, { kind: "device" });
    const peer = await RawPeer.open();
    try {
      await peer.join(session.port);
      await until(() => hub.endpoints.length === 2, 5000, "joined");
      const t = Math.round(hub.clock.now()) - 50;
      // The first goes at once; the rest wait for it to be sent, and go
      // together.
      player.play([on(1)], t);
      player.play([on(2), on(3)], t + 3);
      player.play([on(4)], t + 7);
      player.play([on(5)], t - 5);
      const times = new Map<number, number>();
      let packets = 0;
      await until(
        () => {
          for (const d of peer.received.splice(0)) {
            if (d.kind !== "data" || d.packet !== undefined) continue;
            packets++;
            const rtp = decodeRtpMidi(d.bytes);
            let time = rtp.timestamp;
            for (const { delta, message } of rtp.commands) {
              time += delta;
              if (message.type === "note_on") times.set(message.note, time);
            }
          }
          return times.size === 5;
        },
        5000,
        "five notes",
      );
      const first = times.get(1)!;
      assert.deepEqual(
        [2, 3, 4, 5].map((note) => (times.get(note)! - first) | 0),
        [30, 30, 70, -50],
      );
      assert.equal(
        packets,
        3,
        "one for the first, one for notes 2-4, one for the earlier 5",
      );
    } finally {
      await peer.close();
    }
  },
);

timingTest("a session's clock must be a TimeSource", () => {
  for (const clock of [null, {}, { now: () => 0 }]) {
    assert.throws(
      () => new RtpMidiSession({ clock: clock as unknown as TimeSource }),
      {
        name: "TypeError",
        message: /^Clock must be a TimeSource \(now and setTimer\): got /,
      },
    );
  }
  return Promise.resolve();
});
