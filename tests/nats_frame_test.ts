// The NATS link's pure parts: the frame codec (every cut, random and
// mutated payloads) and the room's bookkeeping (order, gaps, echoes,
// goodbyes, timeouts, released notes). No NATS server needed.

import assert from "node:assert/strict";
import { encode, type Message, message, type NoteOff } from "../mod.ts";
import {
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
import { type LeaveReason, type Remote, Room } from "../src/nats/_room.ts";
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
    assert.equal(frame.origin, idToHex(A));
    assert.equal(frame.seq, (round * 7919) >>> 0);
    assert.deepEqual(frame.messages, withoutTime(messages));
  }
});

pureTest(
  "beat and bye frames carry the origin, number, interval and name",
  () => {
    const reader = new FrameReader();
    const beat = reader.read(encodeBeat(A, 42, 250, nameBytes("stage ♪")));
    assert.deepEqual(beat, {
      kind: KIND_BEAT,
      origin: "0102030405060708",
      seq: 42,
      interval: 250,
      name: "stage ♪",
    });
    const bye = reader.read(encodeBye(A, 0xffffffff));
    assert.deepEqual(bye, {
      kind: KIND_BYE,
      origin: "0102030405060708",
      seq: 0xffffffff,
    });
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
    encodeBeat(A, 1, 250, nameBytes("hub")),
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
    ["version 2", (b) => (b[2] = 2, b)],
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
      "a beat whose name is longer than said",
      () =>
        concat([
          encodeBeat(A, 0, 250, nameBytes("ab")),
          new Uint8Array([0x61]),
        ]),
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

/** A room with its decisions written down. */
function room(missed = 3, interval = 100) {
  const delivered: [string, Message[]][] = [];
  const joined: string[] = [];
  const left: [string, LeaveReason, NoteOff[]][] = [];
  const state = new Room(idToHex(ME), interval, missed, {
    deliver(from: Remote, messages: Message[]) {
      delivered.push([from.id, messages]);
      for (const msg of messages) from.notes.track(msg);
    },
    joined: (remote: Remote) => joined.push(`${remote.name}:${remote.id}`),
    left: (remote: Remote, reason: LeaveReason, notes: NoteOff[]) =>
      left.push([remote.id, reason, notes]),
  });
  const reader = new FrameReader();
  const feed = (bytes: Uint8Array, now = 0) =>
    state.receive(reader.read(bytes), now);
  return { state, delivered, joined, left, feed };
}

const notesOf = (delivered: [string, Message[]][]) =>
  delivered.flatMap(([, ms]) => ms.map((m) => (m as { note: number }).note));

pureTest("a room never delivers frames of its own id", () => {
  const r = room();
  r.feed(encodeBeat(ME, 0, 100, nameBytes("me")));
  r.feed(encodeMidiFrame(ME, 0, [note(1)]));
  r.feed(encodeMidiFrame(A, 0, [note(2)]));
  assert.deepEqual(notesOf(r.delivered), [2]);
  assert.deepEqual(r.joined, []);
  assert.deepEqual(r.state.hubs.map((h) => h.id), []);
});

pureTest(
  "a room delivers each hub in order and counts gaps and late frames",
  () => {
    const r = room();
    r.feed(encodeBeat(A, 5, 100, nameBytes("a")));
    r.feed(encodeMidiFrame(A, 5, [note(1)]));
    r.feed(encodeMidiFrame(B, 70, [note(50)])); // first sight: no gap
    r.feed(encodeMidiFrame(A, 6, [note(2), note(3)]));
    r.feed(encodeMidiFrame(A, 9, [note(4)])); // 7 and 8 missing
    r.feed(encodeMidiFrame(A, 9, [note(5)])); // repeated: late
    r.feed(encodeMidiFrame(A, 3, [note(6)])); // older: late
    r.feed(encodeMidiFrame(B, 71, [note(51)]));
    r.feed(encodeBeat(A, 12, 100, nameBytes("a"))); // 10 and 11 never came
    r.feed(new Uint8Array([1, 2, 3]));
    assert.deepEqual(notesOf(r.delivered), [1, 50, 2, 3, 4, 51]);
    assert.deepEqual(r.state.counts, {
      frames: 10,
      dropped: 1,
      late: 2,
      gaps: 4,
    });
    assert.deepEqual(r.joined, ["a:0102030405060708"]);
  },
);

pureTest("sequence numbers wrap around without a gap", () => {
  const r = room();
  r.feed(encodeMidiFrame(A, 0xffffffff, [note(1)]));
  r.feed(encodeMidiFrame(A, 0, [note(2)]));
  assert.deepEqual(notesOf(r.delivered), [1, 2]);
  assert.equal(r.state.counts.gaps, 0);
});

pureTest("a goodbye releases the hub's notes and later frames are late", () => {
  const r = room();
  r.feed(encodeBeat(A, 0, 100, nameBytes("a")));
  r.feed(encodeMidiFrame(A, 0, [note(60), note(62), note(64, 0)]));
  r.feed(encodeMidiFrame(A, 1, [message("note_off", { note: 62 }), note(67)]));
  r.feed(encodeBye(A, 2));
  r.feed(encodeMidiFrame(A, 2, [note(70)]));
  assert.equal(r.left.length, 1);
  const [id, reason, notes] = r.left[0];
  assert.equal(id, idToHex(A));
  assert.equal(reason, "goodbye");
  assert.deepEqual(notes.map((n) => n.note), [60, 67]);
  assert.equal(r.state.counts.late, 1);
  assert.deepEqual(r.state.hubs, []);
});

pureTest(
  "a hub silent for its missed beats leaves; heard again, it rejoins",
  () => {
    const r = room(3, 100);
    r.feed(encodeBeat(A, 0, 50, nameBytes("a")), 0);
    r.feed(encodeMidiFrame(A, 0, [note(60)]), 10);
    r.feed(encodeBeat(B, 0, 100, nameBytes("b")), 0);
    r.state.sweep(160); // A: 150 ms allowed since 10
    assert.equal(r.left.length, 0);
    r.state.sweep(161);
    assert.deepEqual(r.left.map(([id, why, n]) => [id, why, n.length]), [
      [idToHex(A), "timeout", 1],
    ]);
    r.state.sweep(300);
    assert.equal(r.left.length, 1, "B has 300 ms");
    r.state.sweep(301);
    assert.equal(r.left.length, 2);
    r.feed(encodeBeat(A, 9, 50, nameBytes("a")), 400);
    assert.deepEqual(r.joined.length, 3);
    assert.equal(
      r.state.counts.gaps,
      0,
      "a hub back after a timeout starts afresh",
    );
  },
);

pureTest("a hub heard only through MIDI leaves without having joined", () => {
  const r = room(3, 100);
  r.feed(encodeMidiFrame(A, 0, [note(60)]), 0);
  r.state.sweep(301);
  assert.deepEqual(r.joined, []);
  assert.deepEqual(r.left.map(([, why, n]) => [why, n.length]), [[
    "timeout",
    1,
  ]]);
});
