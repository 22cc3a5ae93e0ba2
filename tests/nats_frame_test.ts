// The NATS link's pure parts: the frame codec (every cut, random and
// mutated payloads) and the room's bookkeeping (order, gaps, echoes,
// goodbyes, restarts, timeouts, released notes, the cap on hubs, the bound
// on what waits). No NATS server needed.

import assert from "node:assert/strict";
import { encode, type Message, message } from "../mod.ts";
import {
  beatExtensions,
  encodeBeat,
  encodeBye,
  encodeMidiFrame,
  FrameReader,
  idToHex,
  KIND_BEAT,
  KIND_BYE,
  KIND_MIDI,
  MAX_NAME_BYTES,
  nameBytes,
  randomId,
} from "../src/nats/_frame.ts";
import { type LeaveReason, Room } from "../src/nats/_room.ts";
import { between, concat, pureTest, random, randomMessage } from "./_util.ts";

const A = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
const B = new Uint8Array([9, 9, 9, 9, 9, 9, 9, 9]);
const ME = new Uint8Array([0xee, 0, 0, 0, 0, 0, 0, 1]);
const note = (n: number, velocity = 64) =>
  message("note_on", { note: n, velocity });

function withoutTime(messages: Message[]): Message[] {
  return messages.map((m) => ({ ...m, time: 0 }));
}

pureTest("a MIDI frame carries every message type whole and in order", () => {
  const next = random(14);
  const reader = new FrameReader();
  for (let round = 0; round < 500; round++) {
    const messages = Array.from(
      { length: between(next, 1, 40) },
      () => randomMessage(next, undefined, 300),
    );
    const frame = reader.read(encodeMidiFrame(A, round * 7919, messages));
    assert.ok(frame?.kind === KIND_MIDI, `round ${round}`);
    assert.equal(frame.instance, idToHex(A));
    assert.equal(frame.seq, (round * 7919) >>> 0);
    assert.deepEqual(frame.messages, withoutTime(messages));
  }
});

pureTest(
  "beat and bye frames carry the instance, number, interval, name and extensions",
  () => {
    const reader = new FrameReader();
    const beat = reader.read(encodeBeat(A, 42, 250, nameBytes("stage ♪")));
    assert.deepEqual(beat, {
      kind: KIND_BEAT,
      instance: "0102030405060708",
      seq: 42,
      interval: 250,
      name: "stage ♪",
      reads: 2,
    });
    const bye = reader.read(encodeBye(A, 0xffffffff));
    assert.deepEqual(bye, {
      kind: KIND_BYE,
      instance: "0102030405060708",
      seq: 0xffffffff,
    });
    // Extensions a later version adds after the time are skipped; a beat
    // without any reads version 1, a beat of version 1 says no time.
    const time = {
      sent: -12.5,
      answers: [{ instance: idToHex(B), t1: 3, t2: 4 }],
    };
    const later = reader.read(
      encodeBeat(
        A,
        1,
        250,
        nameBytes("x"),
        concat([beatExtensions(3, time), new Uint8Array([9, 9, 9])]),
      ),
    );
    assert.ok(later?.kind === KIND_BEAT);
    assert.deepEqual([later.name, later.reads, later.time], ["x", 3, time]);
    const bare = reader.read(
      encodeBeat(A, 1, 250, nameBytes("x"), new Uint8Array()),
    );
    assert.ok(bare?.kind === KIND_BEAT);
    assert.equal(bare.reads, 1);
    const old = reader.read(
      encodeBeat(A, 1, 250, nameBytes("x"), new Uint8Array([1])),
    );
    assert.ok(old?.kind === KIND_BEAT);
    assert.deepEqual([old.reads, old.time], [1, undefined]);
  },
);

pureTest("every cut of a valid frame is refused", () => {
  const reader = new FrameReader();
  const frames = [
    encodeMidiFrame(A, 1, [
      note(60),
      message("sysex", { data: [1, 2, 3] }),
      message("clock"),
      message("pitchwheel", { pitch: -8192 }),
    ]),
    encodeBeat(A, 1, 250, nameBytes("hub"), new Uint8Array()),
    encodeBye(A, 1),
  ];
  for (const frame of frames) {
    for (let length = 0; length < frame.length; length++) {
      assert.equal(
        reader.read(frame.subarray(0, length)),
        undefined,
        `kind ${frame[3]} cut at ${length} of ${frame.length}`,
      );
    }
    assert.notEqual(reader.read(frame), undefined);
  }
});

pureTest("frames that break the format are refused", () => {
  const reader = new FrameReader();
  const good = encodeMidiFrame(A, 0, [note(60), note(61)]);
  const variants: [string, (bytes: Uint8Array) => Uint8Array][] = [
    ["other magic", (b) => (b[0] = 0x4e, b)],
    ["version 3", (b) => (b[2] = 3, b)],
    ["unknown kind", (b) => (b[3] = 9, b)],
    ["count too high", (b) => (b[17] = 3, b)],
    ["count too low", (b) => (b[17] = 1, b)],
    ["count zero", (b) => (b[17] = 0, b)],
    // 90 3C 40 3D 40: the second note by running status, never sent so
    [
      "running status",
      (b) => concat([b.subarray(0, 21), new Uint8Array([61, 64])]),
    ],
    ["a stray data byte", (b) => concat([b, new Uint8Array([5])])],
    [
      "a stray byte first",
      (b) => concat([b.subarray(0, 18), new Uint8Array([5]), b.subarray(18)]),
    ],
    ["an unfinished sysex", (b) => concat([b, new Uint8Array([0xf0, 1, 2])])],
    [
      "a message cut by a status byte",
      (b) => concat([b.subarray(0, 19), b.subarray(21)]),
    ],
    ["bytes after a bye", () => concat([encodeBye(A, 0), new Uint8Array([0])])],
    [
      "a beat with a 5 ms interval",
      () => encodeBeat(A, 0, 5, new Uint8Array()),
    ],
    [
      "a beat whose name is longer than the bytes",
      () =>
        encodeBeat(A, 0, 250, nameBytes("ab"), new Uint8Array()).slice(0, -1),
    ],
    [
      "a beat that says it reads version 0",
      () => encodeBeat(A, 0, 250, nameBytes("ab"), new Uint8Array([0])),
    ],
    [
      "a beat whose name is not UTF-8",
      () => encodeBeat(A, 0, 250, new Uint8Array([0xff, 0xfe])),
    ],
  ];
  for (const [what, change] of variants) {
    assert.equal(reader.read(change(good.slice())), undefined, what);
  }
  // The reader is not left in a state that harms the next good frame.
  assert.deepEqual(
    (reader.read(good) as { messages: Message[] }).messages,
    [note(60), note(61)],
  );
});

pureTest("random and mutated payloads are refused or read whole", () => {
  const next = random(1414);
  const reader = new FrameReader();
  let accepted = 0;
  for (let round = 0; round < 20_000; round++) {
    let bytes: Uint8Array;
    if (next() < 0.5) {
      bytes = Uint8Array.from(
        { length: between(next, 0, 64) },
        () => between(next, 0, 255),
      );
      if (next() < 0.5 && bytes.length >= 4) bytes.set([0x4d, 0x53, 1], 0);
    } else {
      const messages = Array.from(
        { length: between(next, 1, 6) },
        () => randomMessage(next, undefined, 20),
      );
      bytes = encodeMidiFrame(A, round, messages);
      const at = between(next, 0, bytes.length - 1);
      const choice = next();
      if (choice < 0.4) bytes[at] ^= 1 << between(next, 0, 7);
      else if (choice < 0.7) bytes = bytes.subarray(0, at);
      else bytes = concat([bytes, encode(randomMessage(next)).subarray(1)]);
    }
    const frame = reader.read(bytes);
    if (frame === undefined) continue;
    accepted++;
    // Accepted: every byte of the body is in a whole message, as counted.
    if (frame.kind === KIND_MIDI) {
      const count = (bytes[16] << 8) | bytes[17];
      assert.equal(frame.messages.length, count);
      const length = frame.messages.reduce((n, m) => n + encode(m).length, 0);
      assert.equal(length, bytes.length - 18);
    }
  }
  // Flipping a bit inside a data byte keeps a frame valid: some pass.
  assert.ok(accepted > 0 && accepted < 10_000, `accepted ${accepted}`);
});

pureTest("names are cut at 255 bytes, never inside a character", () => {
  assert.equal(nameBytes("x".repeat(300)).length, MAX_NAME_BYTES);
  const cut = nameBytes("é".repeat(200)); // 2 bytes each
  assert.equal(cut.length, 254);
  assert.equal(new TextDecoder().decode(cut), "é".repeat(127));
  assert.equal(randomId().length, 8);
});

/** A room with its decisions written down and its messages taken at once. */
function room(
  {
    missed = 3,
    interval = 100,
    maxRemotes = 256,
    capacity = 65536,
    take = true,
  } = {},
) {
  const delivered: Message[] = [];
  const joined: string[] = [];
  const left: [string, LeaveReason, number][] = [];
  const told: string[] = [];
  const state: Room = new Room(
    {
      own: "me",
      ownInstance: idToHex(ME),
      interval,
      missed,
      maxRemotes,
      capacity,
    },
    {
      wake() {
        if (!take) return;
        for (let p = state.next(); p !== undefined; p = state.next()) {
          delivered.push(...p.messages);
        }
      },
      joined: (remote) => joined.push(`${remote.name}:${remote.id}`),
      left: (remote, reason, released) =>
        left.push([remote.id, reason, released]),
      full: () => told.push("full"),
      conflict: (instance) => told.push(`conflict ${instance}`),
    },
  );
  /** A payload under hub id `id`, on the subject its kind goes on. */
  const feed = (id: string, bytes: Uint8Array, now = 0) =>
    state.receive(id, bytes[3] !== KIND_MIDI, bytes, now);
  /** Takes what waits, as the link does when its input has room. */
  const drain = () => {
    for (let p = state.next(); p !== undefined; p = state.next()) {
      delivered.push(...p.messages);
    }
  };
  return { state, delivered, joined, left, told, feed, drain };
}

const notesOf = (messages: Message[]) =>
  messages.map((m) => (m as { note: number }).note);
const offs = (...notes: number[]) =>
  notes.map((n) => message("note_off", { note: n, velocity: 0 }));

pureTest("a room never delivers frames under its own id", () => {
  const r = room();
  r.feed("me", encodeBeat(ME, 0, 100, nameBytes("me")));
  r.feed("me", encodeMidiFrame(ME, 0, [note(1)]));
  r.feed("a", encodeMidiFrame(A, 0, [note(2)]));
  assert.deepEqual(notesOf(r.delivered), [2]);
  assert.deepEqual(r.joined, []);
  assert.deepEqual(r.told, []);
  // Another instance under our id: said, never delivered.
  r.feed("me", encodeMidiFrame(B, 0, [note(3)]));
  assert.deepEqual(r.told, [`conflict ${idToHex(B)}`]);
  assert.deepEqual(notesOf(r.delivered), [2]);
  assert.equal(r.state.counts.dropped, 3);
});

pureTest(
  "a room delivers each hub in order, counts gaps, late frames and jumps, and never mutes",
  () => {
    const r = room();
    r.feed("a", encodeBeat(A, 5, 100, nameBytes("a")));
    r.feed("a", encodeMidiFrame(A, 5, [note(1)]));
    r.feed("b", encodeMidiFrame(B, 70, [note(50)])); // first sight: no gap
    r.feed("a", encodeMidiFrame(A, 6, [note(2), note(3)]));
    r.feed("a", encodeMidiFrame(A, 9, [note(4)])); // 7 and 8 missing
    r.feed("a", encodeMidiFrame(A, 9, [note(5)])); // repeated: late
    r.feed("a", encodeMidiFrame(A, 3, [note(6)])); // older: late
    r.feed("b", encodeMidiFrame(B, 71, [note(51)]));
    r.feed("a", encodeBeat(A, 12, 100, nameBytes("a"))); // 10, 11 never came
    r.feed("a", encodeMidiFrame(A, 12 + 2 ** 31, [note(7)])); // a jump
    r.feed("a", encodeMidiFrame(A, 13, [note(8)])); // and back: a jump
    r.feed("a", encodeMidiFrame(A, 14, [note(9)]));
    r.feed("a", new Uint8Array([1, 2, 3]));
    r.feed("a.b", encodeMidiFrame(A, 15, [note(10)])); // not an id
    assert.deepEqual(notesOf(r.delivered), [1, 50, 2, 3, 4, 5, 6, 51, 7, 8, 9]);
    assert.deepEqual(r.state.counts, {
      frames: 14,
      dropped: 2,
      late: 2,
      gaps: 4,
      jumps: 2,
      refused: 0,
      overflowed: 0,
      syncs: 0,
    });
    assert.deepEqual(r.joined, ["a:a"]);
  },
);

pureTest("sequence numbers wrap around without a gap", () => {
  const r = room();
  r.feed("a", encodeMidiFrame(A, 0xffffffff, [note(1)]));
  r.feed("a", encodeMidiFrame(A, 0, [note(2)]));
  assert.deepEqual(notesOf(r.delivered), [1, 2]);
  assert.equal(r.state.counts.gaps, 0);
});

pureTest(
  "a goodbye releases the hub's notes; a frame or beat after it rejoins",
  () => {
    const r = room();
    r.feed("a", encodeBeat(A, 0, 100, nameBytes("a")));
    r.feed("a", encodeMidiFrame(A, 0, [note(60), note(62), note(64, 0)]));
    r.feed(
      "a",
      encodeMidiFrame(A, 1, [message("note_off", { note: 62 }), note(67)]),
    );
    r.feed("a", encodeBye(A, 2));
    assert.deepEqual(r.left, [["a", "goodbye", 2]]);
    assert.deepEqual(r.delivered.slice(-2), offs(60, 67));
    assert.equal(r.state.hubs.length, 0);
    // A second goodbye finds no one; a goodbye of another instance neither.
    r.feed("a", encodeBye(A, 2));
    r.feed("b", encodeBye(B, 0));
    assert.equal(r.state.counts.late, 2);
    // The goodbye was forged: the hub goes on, and is heard again at once.
    r.feed("a", encodeMidiFrame(A, 2, [note(70)]));
    assert.deepEqual(r.delivered.at(-1), note(70));
    r.feed("a", encodeBeat(A, 3, 100, nameBytes("a")));
    assert.deepEqual(r.joined, ["a:a", "a:a"]);
    assert.deepEqual(r.state.hubs.map((h) => h.id), ["a"]);
  },
);

pureTest("a new instance under a hub's id is the hub restarted", () => {
  const r = room();
  r.feed("a", encodeBeat(A, 0, 100, nameBytes("a")));
  r.feed("a", encodeMidiFrame(A, 0, [note(60)]));
  r.feed("a", encodeBeat(B, 0, 100, nameBytes("a again")));
  assert.deepEqual(r.left, [["a", "restart", 1]]);
  assert.deepEqual(r.joined, ["a:a", "a again:a"]);
  r.feed("a", encodeMidiFrame(B, 0, [note(61)]));
  assert.deepEqual(r.delivered, [note(60), ...offs(60), note(61)]);
  // The old instance's goodbye, late, changes nothing.
  r.feed("a", encodeBye(A, 1));
  assert.deepEqual(r.state.hubs.map((h) => h.name), ["a again"]);
});

pureTest(
  "a hub silent for its missed beats leaves; heard again, it rejoins",
  () => {
    const r = room({ missed: 3, interval: 100 });
    r.feed("a", encodeBeat(A, 0, 50, nameBytes("a")), 0);
    r.feed("a", encodeMidiFrame(A, 0, [note(60)]), 10);
    r.feed("b", encodeBeat(B, 0, 100, nameBytes("b")), 0);
    assert.deepEqual(r.state.overdue(160), []); // A: 150 ms allowed since 10
    const overdue = r.state.overdue(161);
    assert.deepEqual(overdue.map((o) => o.id), ["a"]);
    r.state.expire(overdue, 161);
    assert.deepEqual(r.left, [["a", "timeout", 1]]);
    assert.deepEqual(r.state.overdue(300), [], "B has 300 ms");
    r.state.expire(r.state.overdue(301), 301);
    assert.equal(r.left.length, 2);
    r.feed("a", encodeBeat(A, 9, 50, nameBytes("a")), 400);
    assert.deepEqual(r.joined.length, 3);
    assert.equal(
      r.state.counts.gaps,
      0,
      "a hub back after a timeout starts afresh",
    );
  },
);

pureTest(
  "a hub heard while its timeout was being confirmed stays",
  () => {
    const r = room({ missed: 3, interval: 100 });
    r.feed("a", encodeBeat(A, 0, 100, nameBytes("a")), 0);
    const overdue = r.state.overdue(301);
    assert.equal(overdue.length, 1);
    // Its beat was read behind a flood, before the ping's answer.
    r.feed("a", encodeBeat(A, 0, 100, nameBytes("a")), 305);
    r.state.expire(overdue, 301);
    assert.deepEqual(r.left, []);
    assert.deepEqual(r.state.hubs.map((h) => h.id), ["a"]);
  },
);

pureTest("a hub heard only through MIDI leaves without having joined", () => {
  const r = room({ missed: 3, interval: 100 });
  r.feed("a", encodeMidiFrame(A, 0, [note(60)]), 0);
  r.state.expire(r.state.overdue(301), 301);
  assert.deepEqual(r.joined, []);
  assert.deepEqual(r.left, [["a", "timeout", 1]]);
});

pureTest(
  "a room keeps at most maxRemotes hubs, says so once, and has room again when one leaves",
  () => {
    const r = room({ maxRemotes: 3 });
    const instance = (i: number) => new Uint8Array([0, 0, 0, 0, 0, 0, 0, i]);
    for (let i = 0; i < 1000; i++) {
      r.feed(`h${i}`, encodeBeat(instance(i), 0, 100, nameBytes(`h${i}`)));
    }
    assert.equal(r.state.size, 3);
    assert.equal(r.joined.length, 3);
    assert.equal(r.state.counts.refused, 997);
    assert.deepEqual(r.told, ["full"]);
    r.feed("h0", encodeBye(instance(0), 0));
    r.feed("late", encodeBeat(instance(99), 0, 100, nameBytes("late")));
    assert.deepEqual(r.state.hubs.map((h) => h.id), ["h1", "h2", "late"]);
    r.feed("more", encodeBeat(instance(98), 0, 100, nameBytes("more")));
    assert.deepEqual(r.told, ["full", "full"]);
  },
);

pureTest(
  "what waits is bounded: one hub fills half, a frame that does not fit is dropped unread and its hub's notes end",
  () => {
    const r = room({ capacity: 100, take: false });
    const burst = (from: number, n: number) =>
      Array.from({ length: n }, (_, i) => note((from + i) % 128));
    const range = (from: number, n: number) =>
      Array.from({ length: n }, (_, i) => from + i);
    r.feed("a", encodeMidiFrame(A, 0, burst(0, 30)));
    r.feed("b", encodeMidiFrame(B, 0, burst(100, 10)));
    // A has 30 waiting: 21 more would pass its half. Dropped unread, and
    // its notes end (after what it sent): the frame may have ended them.
    r.feed("a", encodeMidiFrame(A, 1, burst(30, 21)));
    assert.equal(r.state.counts.overflowed, 21);
    assert.equal(r.state.waiting, 30 + 10 + 30);
    r.feed("b", encodeMidiFrame(B, 1, burst(110, 20)));
    assert.equal(r.state.waiting, 90, "B had room in its half");
    r.feed("b", encodeMidiFrame(B, 2, burst(0, 11)));
    assert.equal(r.state.counts.overflowed, 32, "the whole is full");
    r.drain();
    assert.deepEqual(r.delivered, [
      ...burst(0, 30),
      ...offs(...range(0, 30)),
      ...burst(100, 10),
      ...burst(110, 20),
      ...offs(0, 1, ...range(100, 28)),
    ]);
    assert.equal(r.state.waiting, 0);
    // Empty, a frame of any size fits.
    r.feed("a", encodeMidiFrame(A, 2, burst(0, 1000)));
    assert.equal(r.state.waiting, 1000);
  },
);

pureTest("hubs with messages waiting take turns of 64", () => {
  const r = room({ take: false });
  const burst = (from: number, n: number) =>
    Array.from({ length: n }, (_, i) => note((from + i) % 128));
  r.feed("a", encodeMidiFrame(A, 0, burst(0, 100)));
  r.feed("b", encodeMidiFrame(B, 0, burst(0, 100)));
  r.drain();
  assert.equal(r.delivered.length, 200);
  assert.deepEqual(r.delivered.slice(0, 64), burst(0, 64));
  assert.deepEqual(r.delivered.slice(64, 128), burst(0, 64));
  assert.deepEqual(r.delivered.slice(128, 164), burst(64, 36));
  assert.deepEqual(r.delivered.slice(164), burst(64, 36));
});
