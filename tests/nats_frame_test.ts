// The NATS link's pure parts: the frame codec (every cut, random and
// mutated payloads) and the room's bookkeeping (order, gaps, echoes,
// goodbyes, restarts, timeouts, released notes, the cap on hubs, the bound
// on what waits). No NATS server needed.

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { encode, type Message, message } from "../mod.ts";
import {
  type Answer,
  beatExtensions,
  encodeBeat,
  encodeBye,
  encodeMidiFrame,
  encodeTimedFrame,
  FrameBuilder,
  FrameReader,
  idToHex,
  KIND_BEAT,
  KIND_BYE,
  KIND_MIDI,
  MAX_NAME_BYTES,
  nameBytes,
  randomId,
} from "../src/nats/_frame.ts";
import { type LeaveReason, type Piece, Room } from "../src/nats/_room.ts";
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
      // ...and exactly as a sender writes them.
      assert.deepEqual(
        concat(frame.messages.map((m) => encode(m))),
        bytes.subarray(18),
      );
    }
  }
  // Flipping a bit inside a data byte keeps a frame valid: some pass.
  assert.ok(accepted > 0 && accepted < 10_000, `accepted ${accepted}`);
});

/** Runs of random messages at random times around `base` (ms). */
function randomRuns(next: () => number, base: number) {
  return Array.from({ length: between(next, 1, 6) }, () => ({
    // Earlier or later than the first run, to the microsecond.
    at: base + between(next, -5_000_000, 5_000_000) / 1000,
    messages: Array.from(
      { length: between(next, 1, 8) },
      () => randomMessage(next, undefined, 40),
    ),
  }));
}

pureTest(
  "a version 2 frame carries each run's time to the microsecond, and its messages whole and in order",
  () => {
    const next = random(2020);
    const reader = new FrameReader();
    for (let round = 0; round < 500; round++) {
      const base = (next() - 0.5) * 1e9;
      const runs = randomRuns(next, base);
      const bytes = encodeTimedFrame(A, round, runs);
      assert.equal(bytes[2], 2);
      const frame = reader.read(bytes);
      assert.ok(frame?.kind === KIND_MIDI, `round ${round}`);
      assert.equal(frame.version, 2);
      assert.deepEqual(
        frame.messages,
        withoutTime(runs.flatMap((run) => run.messages)),
      );
      // Runs at the same microsecond as the one before are one run.
      const expected: { delta: number; at: number; messages: Message[] }[] = [];
      for (const run of runs) {
        const delta = Math.round((run.at - runs[0].at) * 1000);
        const last = expected.at(-1);
        if (last?.delta === delta) last.messages.push(...run.messages);
        else expected.push({ delta, at: run.at, messages: [...run.messages] });
      }
      assert.equal(frame.runs.length, expected.length);
      frame.runs.forEach((run, k) => {
        assert.ok(Math.abs(run.at! - expected[k].at) < 0.001, `round ${round}`);
        assert.deepEqual(run.messages, withoutTime(expected[k].messages));
        assert.deepEqual(run.bytes, concat(run.messages.map((m) => encode(m))));
      });
    }
  },
);

pureTest(
  "a frame builder writes the same messages as version 1 or 2, within its limit",
  () => {
    const builder = new FrameBuilder(64);
    const notes = encodeMidiFrame(A, 0, [note(1), note(2)]).subarray(18);
    assert.ok(builder.fits(6, 2, 100));
    builder.push(notes, 0, 6, 2, 100);
    // 28 + 6 + 6: a second run costs 6 more bytes, the same time none.
    assert.ok(builder.fits(24, 8, 100));
    assert.ok(!builder.fits(25, 8, 100));
    assert.ok(builder.fits(18, 6, 101));
    assert.ok(!builder.fits(19, 6, 101));
    // A run more than 35 minutes away starts another frame.
    assert.ok(!builder.fits(3, 1, 100 + 36 * 60_000));
    builder.push(notes, 3, 6, 1, 99.5);
    const reader = new FrameReader();
    const plain = reader.read(builder.build(1, A, 7));
    const timed = reader.read(builder.build(2, A, 7));
    assert.ok(plain?.kind === KIND_MIDI && timed?.kind === KIND_MIDI);
    assert.deepEqual(plain.messages, [note(1), note(2), note(2)]);
    assert.deepEqual(timed.messages, plain.messages);
    assert.deepEqual(plain.runs.map((r) => r.at), [undefined]);
    assert.deepEqual(timed.runs.map((r) => [r.at, r.messages.length]), [
      [100, 2],
      [99.5, 1],
    ]);
    builder.clear();
    assert.equal(builder.count, 0);
    assert.ok(builder.fits(30, 10, 5e9), "an empty builder takes any time");
  },
);

pureTest(
  "every cut of a version 2 frame or of a beat with times is refused",
  () => {
    const reader = new FrameReader();
    const frames = [
      encodeTimedFrame(A, 1, [
        { at: 5, messages: [note(60), message("sysex", { data: [1, 2, 3] })] },
        { at: 4.5, messages: [message("clock")] },
      ]),
      encodeBeat(
        A,
        1,
        250,
        nameBytes("hub"),
        beatExtensions(2, {
          sent: 1234.5,
          answers: [{ instance: idToHex(B), t1: 1, t2: 2 }],
        }),
      ),
    ];
    for (const frame of frames) {
      // A beat cut after its name or the version it reads is one without time.
      const whole = frame[3] === KIND_BEAT ? [22, 23] : [];
      for (let length = 0; length < frame.length; length++) {
        if (whole.includes(length)) continue;
        assert.equal(
          reader.read(frame.subarray(0, length)),
          undefined,
          `kind ${frame[3]} cut at ${length} of ${frame.length}`,
        );
      }
      assert.notEqual(reader.read(frame), undefined);
    }
  },
);

pureTest("version 2 frames and times that break the format are refused", () => {
  const reader = new FrameReader();
  const good = encodeTimedFrame(A, 0, [
    { at: 10, messages: [note(60)] },
    { at: 11, messages: [note(61)] },
  ]);
  // 16 header, 2 count, 8 base, 2 runs, 2 x (4 delta, 2 count), 6 notes.
  const variants: [string, (bytes: Uint8Array) => Uint8Array][] = [
    ["no runs", (b) => (b[27] = 0, b)],
    ["more runs than messages", (b) => (b[27] = 3, b)],
    ["a run of no message", (b) => (b[33] = 0, b)],
    ["runs that count more", (b) => (b[39] = 2, b)],
    ["a base that is not a number", (b) => (b.fill(0xff, 18, 26), b)],
    ["an infinite base", (b) => (b.set([0x7f, 0xf0, 0, 0, 0, 0, 0, 0], 18), b)],
    ["the count one less", (b) => (b[17] = 1, b)],
    ["a stray data byte", (b) => concat([b, new Uint8Array([5])])],
    [
      "a beat whose time is not a number",
      () =>
        encodeBeat(
          A,
          0,
          250,
          nameBytes("a"),
          beatExtensions(2, { sent: NaN, answers: [] }),
        ),
    ],
    [
      "a beat whose answer is not a number",
      () =>
        encodeBeat(
          A,
          0,
          250,
          nameBytes("a"),
          beatExtensions(2, {
            sent: 1,
            answers: [{ instance: idToHex(B), t1: Infinity, t2: 2 }],
          }),
        ),
    ],
    [
      "a beat that says more answers than it has",
      () => {
        const beat = encodeBeat(
          A,
          0,
          250,
          nameBytes("a"),
          beatExtensions(2, { sent: 1, answers: [] }),
        );
        beat[beat.length - 1] = 1;
        return beat;
      },
    ],
    [
      "a beat or bye of version 2",
      () => {
        const beat = encodeBeat(A, 0, 250, nameBytes("a"));
        beat[2] = 2;
        return beat;
      },
    ],
  ];
  for (const [what, change] of variants) {
    assert.equal(reader.read(change(good.slice())), undefined, what);
  }
  const frame = reader.read(good);
  assert.ok(frame?.kind === KIND_MIDI);
  assert.deepEqual(frame.runs.map((r) => r.at), [10, 11]);
});

pureTest(
  "random and mutated version 2 frames are refused or read whole",
  () => {
    const next = random(2121);
    const reader = new FrameReader();
    let accepted = 0;
    for (let round = 0; round < 20_000; round++) {
      let bytes = encodeTimedFrame(A, round, randomRuns(next, next() * 1e6));
      const at = between(next, 0, bytes.length - 1);
      const choice = next();
      if (choice < 0.5) bytes[at] ^= 1 << between(next, 0, 7);
      else if (choice < 0.8) bytes = bytes.subarray(0, at);
      else bytes = concat([bytes, encode(randomMessage(next)).subarray(1)]);
      const frame = reader.read(bytes);
      if (frame === undefined) continue;
      accepted++;
      assert.ok(frame.kind === KIND_MIDI);
      // Accepted: the runs hold every message once, in order, with a time.
      assert.equal(frame.messages.length, (bytes[16] << 8) | bytes[17]);
      assert.deepEqual(frame.runs.flatMap((r) => r.messages), frame.messages);
      assert.deepEqual(
        concat(frame.runs.map((r) => r.bytes)),
        concat(frame.messages.map((m) => encode(m))),
      );
      for (const run of frame.runs) assert.ok(Number.isFinite(run.at));
    }
    // A flipped bit in a time or a data byte keeps a frame valid: some pass.
    assert.ok(accepted > 0 && accepted < 10_000, `accepted ${accepted}`);
  },
);

pureTest(
  "a payload in a Node buffer is copied: what was read stays when the buffer is reused",
  () => {
    const reader = new FrameReader();
    const sysex = message("sysex", { data: [1, 2, 3] });
    for (
      const frame of [
        encodeMidiFrame(A, 0, [note(60), sysex]),
        encodeTimedFrame(A, 0, [{ at: 1, messages: [note(60), sysex] }]),
      ]
    ) {
      const payload = Buffer.from(frame);
      const read = reader.read(payload);
      payload.fill(0);
      assert.ok(read?.kind === KIND_MIDI);
      assert.deepEqual(read.messages, [note(60), sysex]);
      const [run] = read.runs;
      assert.equal(Object.getPrototypeOf(run.bytes), Uint8Array.prototype);
      assert.deepEqual(run.bytes, concat([encode(note(60)), encode(sysex)]));
    }
  },
);

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

/** A room under id `own`, whose pieces are kept as they come. */
function timedRoom(own: string, instance: Uint8Array) {
  const pieces: Piece[] = [];
  const state: Room = new Room(
    {
      own,
      ownInstance: idToHex(instance),
      interval: 100,
      missed: 3,
      maxRemotes: 256,
      capacity: 65536,
    },
    {
      wake() {
        for (let p = state.next(); p !== undefined; p = state.next()) {
          pieces.push(p);
        }
      },
      joined: () => {},
      left: () => {},
      full: () => {},
      conflict: () => {},
    },
  );
  /** Our beat now (`sent`: our clock), answering what came. */
  const beat = (sent: number) => {
    state.sent(sent);
    return encodeBeat(
      instance,
      0,
      100,
      nameBytes(own),
      beatExtensions(2, { sent, answers: state.answers(32) }),
    );
  };
  return { state, pieces, beat };
}

pureTest(
  "two rooms that answer each other's beats map each other's times, 5 s apart and drifting 200 ppm, within 0.5 ms from 2 s on and 0.1 ms once the drift is known",
  () => {
    const next = random(77);
    // True time t; X's clock reads t, Y's 5 s ahead and 200 ppm fast.
    const cx = (t: number) => t;
    const cy = (t: number) => 5000 + t * (1 + 200e-6);
    const x = timedRoom("x", A);
    const y = timedRoom("y", B);
    // 2 ms each way, plus up to 1 ms more.
    const way = () => 2 + next();
    for (let t = 0; t <= 6000; t += 100) {
      const toY = t + way();
      y.state.receive("x", true, x.beat(cx(t)), toY, cy(toY));
      const back = t + 50;
      const toX = back + way();
      x.state.receive("y", true, y.beat(cy(back)), toX, cx(toX));
      if (t < 2000) continue;
      // From 2 s on, a time of Y's reads on X's clock within 0.5 ms (the
      // drift is not known yet: 200 ppm is 0.2 ms a second), and within
      // 0.1 ms once it is (from 4 s of exchanges on).
      const bound = t < 5000 ? 0.5 : 0.1;
      const remote = x.state.remote("y")!;
      const error = remote.toLocal(cy(t + 20), Infinity) - cx(t + 20);
      assert.ok(Math.abs(error) < bound, `${error} ms at ${t} ms`);
      const mine = y.state.remote("x")!;
      const other = mine.toLocal(cx(t + 20), Infinity) - cy(t + 20);
      assert.ok(Math.abs(other) < bound, `${other} ms at ${t} ms (Y)`);
    }
    assert.ok(Math.abs(x.state.remote("y")!.sync.drift - 200e-6) < 20e-6);
    assert.ok(x.state.counts.syncs >= 60 && y.state.counts.syncs >= 60);
    // What Y plays goes to X's hub with its time on X's clock, and never
    // later than it came.
    y.state.sent(0);
    x.state.receive(
      "y",
      false,
      encodeTimedFrame(B, 0, [
        { at: cy(7000), messages: [note(1)] },
        { at: cy(7001.5), messages: [note(2), note(3)] },
      ]),
      7004,
      cx(7004),
    );
    const [early, later] = x.pieces;
    assert.deepEqual(early.messages, [note(1)]);
    assert.ok(Math.abs(early.at! - 7000) < 0.1, `${early.at}`);
    assert.ok(Math.abs(later.at! - 7001.5) < 0.1, `${later.at}`);
    assert.deepEqual(later.bytes, concat([encode(note(2)), encode(note(3))]));
    x.state.receive(
      "y",
      false,
      encodeTimedFrame(B, 1, [{ at: cy(7100), messages: [note(4)] }]),
      7050,
      cx(7050),
    );
    assert.equal(x.pieces[2].at, 7050, "a time after arrival is arrival");
  },
);

pureTest(
  "before any exchange, and in version 1 frames, messages carry the time they arrived",
  () => {
    const x = timedRoom("x", A);
    x.state.receive(
      "y",
      false,
      encodeTimedFrame(B, 0, [{ at: 123456, messages: [note(1)] }]),
      10,
      1000,
    );
    x.state.receive("z", false, encodeMidiFrame(ME, 0, [note(2)]), 11, 1001);
    assert.deepEqual(x.pieces.map((p) => [p.messages, p.at]), [
      [[note(1)], 1000],
      [[note(2)], 1001],
    ]);
  },
);

pureTest(
  "a room writes version 2 while every hub reads it, version 1 while one does not",
  () => {
    const x = timedRoom("x", A);
    assert.equal(x.state.version, 2);
    const old = new Uint8Array([7, 7, 7, 7, 7, 7, 7, 7]);
    x.state.receive("new", true, encodeBeat(B, 0, 100, nameBytes("new")), 0);
    assert.equal(x.state.version, 2);
    x.state.receive(
      "old",
      true,
      encodeBeat(old, 0, 100, nameBytes("old"), new Uint8Array([1])),
      0,
    );
    assert.equal(x.state.version, 1);
    x.state.receive("old", true, encodeBye(old, 0), 0);
    assert.equal(x.state.version, 2);
    // Heard through a version 1 frame first: taken for a version 1 reader
    // until its beat says more; a version 2 frame says it reads 2.
    x.state.receive("m", false, encodeMidiFrame(ME, 0, [note(1)]), 0);
    assert.equal(x.state.version, 1);
    x.state.receive("m", true, encodeBeat(ME, 1, 100, nameBytes("m")), 0);
    assert.equal(x.state.version, 2);
    const q = new Uint8Array([5, 5, 5, 5, 5, 5, 5, 5]);
    x.state.receive(
      "q",
      false,
      encodeTimedFrame(q, 0, [{ at: 1, messages: [note(1)] }]),
      0,
    );
    assert.equal(x.state.version, 2);
    // A hub that times out takes its version with it.
    x.state.receive(
      "old",
      true,
      encodeBeat(old, 0, 100, nameBytes("old"), new Uint8Array([1])),
      0,
    );
    assert.equal(x.state.version, 1);
    x.state.expire(x.state.overdue(10_000), 10_000);
    assert.equal(x.state.version, 2);
    assert.equal(x.state.size, 0);
    assert.equal(x.state.timedHubs, 0);
  },
);

pureTest(
  "answers to beats never sent, to another hub, or given twice are not exchanges",
  () => {
    const x = timedRoom("x", A);
    const y = timedRoom("y", B);
    const beatOfY = (sent: number, answers: Answer[]) =>
      encodeBeat(
        B,
        0,
        100,
        nameBytes("y"),
        beatExtensions(2, { sent, answers }),
      );
    x.state.sent(100);
    x.state.sent(200);
    const mine = idToHex(A);
    const cases: [string, Answer][] = [
      ["never sent", { instance: mine, t1: 150, t2: 5150 }],
      ["another hub's", { instance: idToHex(ME), t1: 200, t2: 5200 }],
    ];
    for (const [what, answer] of cases) {
      x.state.receive("y", true, beatOfY(5210, [answer]), 0, 211);
      assert.equal(x.state.counts.syncs, 0, what);
    }
    x.state.receive(
      "y",
      true,
      beatOfY(5210, [{ instance: mine, t1: 200, t2: 5201 }]),
      0,
      211,
    );
    assert.equal(x.state.counts.syncs, 1);
    // The same again, or an older beat of ours after it: nothing.
    x.state.receive(
      "y",
      true,
      beatOfY(5220, [{ instance: mine, t1: 200, t2: 5201 }]),
      0,
      221,
    );
    x.state.receive(
      "y",
      true,
      beatOfY(5230, [{ instance: mine, t1: 100, t2: 5101 }]),
      0,
      231,
    );
    assert.equal(x.state.counts.syncs, 1);
    assert.equal(x.state.timedHubs, 1);
    // Y's beats wait for an answer in ours: the latest, once.
    const answers = x.state.answers(32);
    assert.deepEqual(answers, [{ instance: idToHex(B), t1: 5230, t2: 231 }]);
    assert.deepEqual(x.state.answers(32), []);
    void y;
  },
);

pureTest(
  "a beat answers at most 32 hubs, and the next goes on from there",
  () => {
    const x = timedRoom("x", A);
    for (let i = 0; i < 40; i++) {
      const instance = new Uint8Array([1, 0, 0, 0, 0, 0, 0, i]);
      x.state.receive(
        `h${i}`,
        true,
        encodeBeat(
          instance,
          0,
          100,
          nameBytes(`h${i}`),
          beatExtensions(2, { sent: i, answers: [] }),
        ),
        0,
      );
    }
    const first = x.state.answers(32);
    assert.equal(first.length, 32);
    const second = x.state.answers(32);
    assert.deepEqual(second.map((a) => a.t1), [32, 33, 34, 35, 36, 37, 38, 39]);
    assert.equal(x.state.timedHubs, 40);
  },
);
