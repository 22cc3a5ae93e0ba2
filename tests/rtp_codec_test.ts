// The pure RTP-MIDI codecs: AppleMIDI session packets, RTP-MIDI packets,
// the recovery journal, and the sender/receiver state machines that pack,
// reassemble and repair. No permission at all.

import assert from "node:assert/strict";
import { type Message, message, NoteTracker } from "../mod.ts";
import {
  channelJournalLength,
  decodeJournal,
  decodeRtpMidi,
  decodeSessionPacket,
  encodeJournal,
  encodeRtpMidi,
  encodeSessionPacket,
  isSessionPacket,
  journalLength,
  RtpMidiDecodeError,
  type RtpMidiPacket,
  type SessionPacket,
  splitSysex,
} from "../src/rtp/mod.ts";
import { RtpMidiReceiver, RtpMidiSender } from "../src/rtp/_stream.ts";
import { between, pureTest, random, randomMessage } from "./_util.ts";

const note = (n: number, velocity = 100, channel = 0) =>
  message("note_on", { channel, note: n, velocity });
const off = (n: number, channel = 0) =>
  message("note_off", { channel, note: n, velocity: 0 });
const cc = (control: number, value: number, channel = 0) =>
  message("control_change", { channel, control, value });

function packet(
  commands: RtpMidiPacket["commands"],
  extra: Partial<RtpMidiPacket> = {},
): Uint8Array {
  return encodeRtpMidi({
    sequence: 1,
    timestamp: 2,
    ssrc: 3,
    commands,
    ...extra,
  });
}

function messagesOf(bytes: Uint8Array): unknown[] {
  return decodeRtpMidi(bytes).commands.map((c) => c.message);
}

// Session packets.

function nameOf(bytes: Uint8Array): string {
  const packet = decodeSessionPacket(bytes);
  assert.ok("name" in packet);
  return packet.name;
}

pureTest(
  "IN packets carry signature, command, version, token, SSRC and name",
  () => {
    const bytes = encodeSessionPacket({
      command: "IN",
      version: 2,
      token: 0xdeadbeef,
      ssrc: 0x01020304,
      name: "Studio ✓",
    });
    assert.deepEqual([...bytes.subarray(0, 16)], [
      0xff,
      0xff,
      0x49,
      0x4e,
      0,
      0,
      0,
      2,
      0xde,
      0xad,
      0xbe,
      0xef,
      1,
      2,
      3,
      4,
    ]);
    assert.equal(bytes.at(-1), 0, "name ends with NUL");
    assert.deepEqual(decodeSessionPacket(bytes), {
      command: "IN",
      version: 2,
      token: 0xdeadbeef,
      ssrc: 0x01020304,
      name: "Studio ✓",
    });
  },
);

pureTest("every session command survives a round trip", () => {
  const packets: SessionPacket[] = [
    { command: "OK", version: 2, token: 1, ssrc: 2, name: "peer" },
    { command: "NO", version: 2, token: 1, ssrc: 2, name: "" },
    { command: "BY", version: 2, token: 7, ssrc: 9, name: "bye" },
    {
      command: "CK",
      ssrc: 5,
      count: 2,
      timestamps: [1, 2 ** 40 + 3, Number.MAX_SAFE_INTEGER],
    },
    { command: "RS", ssrc: 6, sequence: 65535 },
    { command: "RL", ssrc: 6, limit: 31250 },
  ];
  for (const p of packets) {
    const bytes = encodeSessionPacket(p);
    assert.equal(isSessionPacket(bytes), true);
    assert.deepEqual(decodeSessionPacket(bytes), p);
  }
  assert.equal(encodeSessionPacket(packets[3]).length, 36);
  // RS: the sequence number is the upper half of a 32-bit field.
  assert.deepEqual(
    [
      ...encodeSessionPacket({ command: "RS", ssrc: 0, sequence: 0x1234 })
        .subarray(8),
    ],
    [0x12, 0x34, 0, 0],
  );
});

pureTest(
  "a session name without NUL and trailing bytes after it are read",
  () => {
    const bytes = encodeSessionPacket({
      command: "OK",
      version: 2,
      token: 1,
      ssrc: 2,
      name: "abc",
    });
    assert.equal(nameOf(bytes.subarray(0, 18)), "ab");
    const padded = new Uint8Array([...bytes, 0x41, 0x42]);
    assert.equal(nameOf(padded), "abc");
  },
);

pureTest(
  "bad session packets throw RtpMidiDecodeError, bad fields RangeError",
  () => {
    const cases = [
      [],
      [0xff, 0xff, 0x49],
      [0xfe, 0xff, 0x49, 0x4e, ...new Array(12).fill(0)],
      [0xff, 0xff, 0x41, 0x41, ...new Array(12).fill(0)],
      [0xff, 0xff, 0x49, 0x4e, 0, 0, 0, 2],
      [0xff, 0xff, 0x43, 0x4b, ...new Array(20).fill(0)],
      [0xff, 0xff, 0x43, 0x4b, 0, 0, 0, 0, 3, ...new Array(27).fill(0)],
      [0xff, 0xff, 0x52, 0x53, 0, 0],
    ];
    for (const bytes of cases) {
      assert.throws(
        () => decodeSessionPacket(new Uint8Array(bytes)),
        RtpMidiDecodeError,
        JSON.stringify(bytes),
      );
    }
    assert.throws(
      () =>
        encodeSessionPacket({
          command: "IN",
          version: 2,
          token: -1,
          ssrc: 0,
          name: "",
        }),
      RangeError,
    );
    assert.throws(
      () =>
        encodeSessionPacket({
          command: "IN",
          version: 2,
          token: 1,
          ssrc: 0,
          name: "a\0b",
        }),
      RangeError,
    );
    assert.throws(
      () => encodeSessionPacket({ command: "XX" } as unknown as SessionPacket),
      TypeError,
    );
  },
);

// RTP header and command section.

pureTest(
  "RTP header: version 2, marker when there are commands, type 97",
  () => {
    const bytes = packet([{ delta: 0, message: note(60) }], {
      sequence: 0xabcd,
      timestamp: 0x01020304,
      ssrc: 0xcafebabe,
    });
    assert.deepEqual([...bytes.subarray(0, 12)], [
      0x80,
      0xe1,
      0xab,
      0xcd,
      1,
      2,
      3,
      4,
      0xca,
      0xfe,
      0xba,
      0xbe,
    ]);
    assert.equal(packet([])[1], 0x61, "no marker on an empty list");
    const decoded = decodeRtpMidi(bytes);
    assert.equal(decoded.sequence, 0xabcd);
    assert.equal(decoded.timestamp, 0x01020304);
    assert.equal(decoded.ssrc, 0xcafebabe);
    assert.equal(decoded.payloadType, 97);
    assert.equal(decoded.marker, true);
  },
);

pureTest("short and long command sections (B flag) at the 15-byte edge", () => {
  const five = Array.from({ length: 5 }, (_, i) => ({
    delta: 0,
    message: note(i),
  }));
  // 3 + 4 * 3 (delta + running status) = 15 bytes: short header.
  const short = packet(five);
  assert.equal(short[12], 15);
  const six = [...five, { delta: 0, message: note(9) }];
  const long = packet(six);
  assert.equal(long[12] & 0x80, 0x80);
  assert.equal(((long[12] & 0x0f) << 8) | long[13], 18);
  assert.deepEqual(messagesOf(long), six.map((c) => c.message));
});

pureTest("delta times take 1 to 4 bytes and set Z on the first command", () => {
  const edges = [0, 127, 128, 16383, 16384, 2097151, 2097152, 0x0fffffff];
  for (const delta of edges) {
    const bytes = packet([
      { delta, message: message("clock") },
      { delta, message: message("start") },
    ]);
    const decoded = decodeRtpMidi(bytes);
    assert.equal((bytes[12] & 0x20) !== 0, delta !== 0, `Z for ${delta}`);
    assert.deepEqual(decoded.commands.map((c) => c.delta), [delta, delta]);
  }
  assert.throws(
    () => packet([{ delta: 2 ** 28, message: note(1) }]),
    RangeError,
  );
  // A fifth delta-time octet is malformed.
  assert.throws(
    () =>
      decodeRtpMidi(
        new Uint8Array([
          ...packet([]).subarray(0, 12),
          0x26,
          0x81,
          0x81,
          0x81,
          0x81,
          0x01,
          0xf8,
        ]),
      ),
    RtpMidiDecodeError,
  );
});

pureTest(
  "running status applies within a packet and system messages cancel it",
  () => {
    const bytes = packet([
      { delta: 0, message: note(60) },
      { delta: 0, message: note(61) },
      { delta: 0, message: message("clock") },
      { delta: 0, message: note(62) },
      { delta: 0, message: cc(7, 1) },
    ]);
    assert.equal(bytes[12], 0x80, "16 bytes: long header");
    assert.deepEqual([...bytes.subarray(14)], [
      0x90,
      60,
      100,
      0,
      61,
      100,
      0,
      0xf8,
      0,
      0x90,
      62,
      100,
      0,
      0xb0,
      7,
      1,
    ]);
    // Decoding: realtime keeps running status, system common ends it.
    const head = [...packet([]).subarray(0, 12)];
    const list = [0x90, 60, 1, 0, 0xf8, 0, 61, 2, 0, 0xf6, 0, 62, 3];
    assert.throws(
      () =>
        decodeRtpMidi(
          new Uint8Array([...head, 0x80 | 0, list.length, ...list]),
        ),
      RtpMidiDecodeError,
    );
    const ok = list.slice(0, 8);
    assert.deepEqual(
      messagesOf(new Uint8Array([...head, ok.length, ...ok])),
      [note(60, 1), message("clock"), note(61, 2)],
    );
    assert.deepEqual(
      [
        ...packet([{ delta: 0, message: note(1) }, {
          delta: 0,
          message: note(2),
        }], {})
          .subarray(13),
      ],
      [0x90, 1, 100, 0, 2, 100],
    );
    const plain = encodeRtpMidi({
      sequence: 0,
      timestamp: 0,
      ssrc: 0,
      commands: [{ delta: 0, message: note(1) }, {
        delta: 0,
        message: note(2),
      }],
    }, { runningStatus: false });
    assert.deepEqual([...plain.subarray(13)], [0x90, 1, 100, 0, 0x90, 2, 100]);
  },
);

pureTest(
  "realtime bytes inside a command or a sysex come out before it",
  () => {
    const head = [...packet([]).subarray(0, 12)];
    const list = [0x90, 60, 0xf8, 100, 0, 0xf0, 1, 0xfa, 2, 0xf7];
    assert.deepEqual(
      messagesOf(new Uint8Array([...head, list.length, ...list])),
      [
        message("clock"),
        note(60),
        message("start"),
        message("sysex", { data: [1, 2] }),
      ],
    );
  },
);

pureTest("undefined status bytes are skipped with their data", () => {
  const head = [...packet([]).subarray(0, 12)];
  const list = [0xf9, 0, 0xf4, 1, 2, 0, 0xfd, 0, 0xf1, 0x23];
  assert.deepEqual(
    messagesOf(new Uint8Array([...head, list.length, ...list])),
    [
      message("quarter_frame", { frame_type: 2, frame_value: 3 }),
    ],
  );
});

pureTest("malformed command sections throw RtpMidiDecodeError", () => {
  const head = [...packet([]).subarray(0, 12)];
  const lists = [
    [0x03, 60, 100, 1], // data byte with no status
    [0x03, 0x90, 60], // length says more than there is
    [0x02, 0x90, 60], // command cut short
    [0x03, 0x90, 60, 0x80], // status byte inside a note
    [0x03, 0xf0, 1, 2], // sysex with no end
    [0x04, 0xf0, 1, 0x90, 0xf7], // channel status inside a sysex
    [0x02, 0x90, 60, 100], // command cut by the list's end
    [0x23, 0x90, 60, 100], // Z: delta then nothing
  ];
  for (const list of lists) {
    assert.throws(
      () => decodeRtpMidi(new Uint8Array([...head, ...list])),
      RtpMidiDecodeError,
      JSON.stringify(list),
    );
  }
  for (const bytes of [[], [0x80, 0x61], [0x40, ...head.slice(1), 0]]) {
    assert.throws(
      () => decodeRtpMidi(new Uint8Array(bytes)),
      RtpMidiDecodeError,
    );
  }
});

pureTest("RTP padding, CSRCs and header extensions are stepped over", () => {
  const plain = packet([{ delta: 0, message: note(5) }]);
  const payload = [...plain.subarray(12)];
  const head = [...plain.subarray(0, 12)];
  const csrc = [head[0] | 2, ...head.slice(1), 0, 0, 0, 1, 0, 0, 0, 2];
  assert.deepEqual(messagesOf(new Uint8Array([...csrc, ...payload])), [
    note(5),
  ]);
  const ext = [head[0] | 0x10, ...head.slice(1), 0xbe, 0xde, 0, 1, 1, 2, 3, 4];
  assert.deepEqual(messagesOf(new Uint8Array([...ext, ...payload])), [note(5)]);
  const padded = [head[0] | 0x20, ...head.slice(1), ...payload, 0, 0, 3];
  assert.deepEqual(messagesOf(new Uint8Array(padded)), [note(5)]);
});

// Sysex segments.

pureTest("sysex segments: first, middle, last and cancel, both ways", () => {
  const segments = splitSysex(
    message("sysex", { data: [1, 2, 3, 4, 5, 6, 7] }),
    3,
  );
  assert.deepEqual(segments.map((s) => [s.position, [...s.data]]), [
    ["first", [1, 2, 3]],
    ["middle", [4, 5, 6]],
    ["last", [7]],
  ]);
  const bytes = packet([
    ...segments.map((message) => ({ delta: 0, message })),
    {
      delta: 0,
      message: {
        type: "sysex_segment",
        position: "cancel",
        data: new Uint8Array(),
      },
    },
  ]);
  assert.deepEqual([...bytes.subarray(14)], [
    0xf0,
    1,
    2,
    3,
    0xf0,
    0,
    0xf7,
    4,
    5,
    6,
    0xf0,
    0,
    0xf7,
    7,
    0xf7,
    0,
    0xf7,
    0xf4,
  ]);
  assert.deepEqual(
    decodeRtpMidi(bytes).commands.map((c) =>
      c.message.type === "sysex_segment" ? c.message.position : c.message.type
    ),
    ["first", "middle", "last", "cancel"],
  );
  assert.deepEqual(
    splitSysex(message("sysex", { data: [1] }), 4).map((s) => s.position),
    ["first", "last"],
  );
});

// The journal.

pureTest(
  "a journal with chapters P, C, W, N and T survives a round trip",
  () => {
    const journal = {
      s: false,
      checkpoint: 0xfffe,
      channels: [
        {
          channel: 0,
          s: false,
          program: { program: 5 },
          controllers: {
            logs: [{ control: 7, value: 100 }, {
              control: 64,
              value: 0,
              s: false,
            }],
          },
          pitch: { pitch: -8192 },
          notes: {
            logs: [{ note: 60, velocity: 90 }, {
              note: 61,
              velocity: 1,
              play: false,
            }],
            offs: [0, 7, 8, 127],
          },
          aftertouch: { pressure: 44 },
        },
        { channel: 15, pitch: { pitch: 8191 } },
      ],
    };
    const bytes = encodeJournal(journal);
    assert.equal(bytes.length, journalLength(journal));
    assert.equal(bytes[0], 0x21, "S=0, A=1, TOTCHAN=1");
    const decoded = decodeJournal(bytes);
    assert.equal(decoded.checkpoint, 0xfffe);
    const [first, last] = decoded.channels;
    assert.equal(first.channel, 0);
    assert.equal(first.s, false);
    assert.equal(first.program?.program, 5);
    assert.deepEqual(
      first.controllers?.logs.map((l) => [l.control, l.value, l.s]),
      [[7, 100, true], [64, 0, false]],
    );
    assert.equal(first.pitch?.pitch, -8192);
    assert.deepEqual(
      first.notes?.logs.map((l) => [l.note, l.velocity, l.play]),
      [[60, 90, true], [61, 1, false]],
    );
    assert.deepEqual(first.notes?.offs, [0, 7, 8, 127]);
    assert.equal(first.aftertouch?.pressure, 44);
    assert.equal(last.channel, 15);
    assert.equal(last.pitch?.pitch, 8191);
  },
);

pureTest(
  "chapter N: OFFBITS span LOW..HIGH, MSB first; 128 logs use LOW=15 HIGH=0",
  () => {
    const bytes = encodeJournal({
      checkpoint: 0,
      channels: [{ channel: 3, notes: { logs: [], offs: [36, 47] } }],
    });
    // header 3 + channel header 3 + chapter N header 2 + OFFBITS 2.
    assert.deepEqual([...bytes.subarray(6)], [0x80, 0x45, 0x08, 0x01]);
    assert.equal(bytes[3] >> 3 & 0x0f, 3);
    assert.equal(
      ((bytes[3] & 3) << 8) | bytes[4],
      7,
      "LENGTH counts the header",
    );
    const all = Array.from(
      { length: 128 },
      (_, n) => ({ note: n, velocity: 1 }),
    );
    const full = encodeJournal({
      checkpoint: 0,
      channels: [{ channel: 0, notes: { logs: all, offs: [] } }],
    });
    assert.deepEqual([...full.subarray(6, 8)], [0xff, 0xf0]);
    assert.equal(decodeJournal(full).channels[0].notes?.logs.length, 128);
    const none = encodeJournal({
      checkpoint: 0,
      channels: [{
        channel: 0,
        notes: { logs: [{ note: 1, velocity: 2 }], offs: [] },
      }],
    });
    assert.equal(none[7], 0xf1, "no OFFBITS: LOW=15 HIGH=1");
  },
);

pureTest(
  "chapters M, E, A and the system journal are skipped by their lengths",
  () => {
    const bytes = new Uint8Array([
      0xe1,
      0x00,
      0x10, // S Y A, TOTCHAN 1, checkpoint 16
      0x00,
      0x04,
      0xaa,
      0xbb, // system journal, 4 bytes
      0x00,
      0x11,
      0x35, // channel 0, LENGTH 17: M W E A
      0x00,
      0x04,
      0x11,
      0x22, // chapter M, 4 bytes
      0x80 | 0x10,
      0x40, // chapter W
      0x01,
      1,
      2,
      3,
      4, // chapter E, 2 logs
      0x00,
      9,
      9, // chapter A, 1 log
      0x08,
      0x03,
      0x02, // channel 1, LENGTH 3, nothing... but TOC says T
    ]);
    // The second channel's TOC claims T with no byte: malformed.
    assert.throws(() => decodeJournal(bytes), RtpMidiDecodeError);
    bytes[bytes.length - 1] = 0;
    const journal = decodeJournal(bytes);
    assert.equal(journal.system, true);
    assert.equal(journal.channels[0].skipped, "MEA");
    assert.equal(journal.channels[0].pitch?.pitch, (0x10 | (0x40 << 7)) - 8192);
    assert.equal(journal.channels[1].channel, 1);
  },
);

pureTest("journals whose lengths do not add up are malformed", () => {
  const good = encodeJournal({
    checkpoint: 1,
    channels: [{
      channel: 0,
      controllers: { logs: [{ control: 1, value: 2 }] },
    }],
  });
  const wrongLength = good.slice();
  wrongLength[4] += 1;
  const lowAboveHigh = encodeJournal({
    checkpoint: 1,
    channels: [{ channel: 0, notes: { logs: [], offs: [9] } }],
  });
  lowAboveHigh[7] = 0x21;
  for (
    const bytes of [
      good.subarray(0, 2),
      good.subarray(0, 7),
      wrongLength,
      lowAboveHigh,
    ]
  ) {
    assert.throws(() => decodeJournal(bytes), RtpMidiDecodeError);
  }
  // In a packet, a bad journal leaves the commands readable.
  const bytes = packet([{ delta: 0, message: note(1) }], {
    journal: { checkpoint: 0, channels: [] },
  });
  const cut = bytes.subarray(0, bytes.length - 1);
  const decoded = decodeRtpMidi(cut);
  assert.deepEqual(decoded.commands.map((c) => c.message), [note(1)]);
  assert.ok(decoded.journalError instanceof RtpMidiDecodeError);
  assert.equal(decoded.journal, undefined);
});

pureTest("journal fields out of range throw RangeError", () => {
  const bad = [
    { checkpoint: 70000, channels: [] },
    { checkpoint: 0, channels: [{ channel: 16 }] },
    { checkpoint: 0, channels: [{ channel: 2 }, { channel: 1 }] },
    { checkpoint: 0, channels: [{ channel: 0, controllers: { logs: [] } }] },
    {
      checkpoint: 0,
      channels: [{
        channel: 0,
        notes: { logs: [{ note: 1, velocity: 0 }], offs: [] },
      }],
    },
  ];
  for (const journal of bad) {
    assert.throws(() => encodeJournal(journal), RangeError);
  }
});

// Sender and receiver.

function link(seed = 1, sequence = 65530) {
  const sender = new RtpMidiSender({ ssrc: 9, sequence });
  const receiver = new RtpMidiReceiver({ maxSysexLength: 1 << 20 });
  const next = random(seed);
  let time = 0;
  return {
    sender,
    receiver,
    next,
    /** Packs and takes messages; `drop(i)` loses the i-th packet. */
    pass(messages: Message[], drop: (i: number) => boolean = () => false) {
      const out: Message[] = [];
      sender.packets(messages, time += 10).forEach((bytes, i) => {
        if (drop(i)) return;
        const got = receiver.receive(decodeRtpMidi(bytes));
        if (got) out.push(...got.messages);
      });
      return out;
    },
    guard() {
      return receiver.receive(decodeRtpMidi(sender.guard(time += 10)))
        ?.messages ??
        [];
    },
  };
}

pureTest(
  "messages go through in order, across the 16-bit sequence wrap",
  () => {
    const { pass } = link();
    const next = random(3);
    for (let i = 0; i < 20; i++) {
      const batch = Array.from({ length: 5 }, () => randomMessage(next));
      assert.deepEqual(pass(batch), batch);
    }
  },
);

pureTest(
  "a sysex too big for a packet is sent in segments and put back together",
  () => {
    const { sender, pass } = link();
    const data = Array.from({ length: 10_000 }, (_, i) => i & 0x7f);
    const big = message("sysex", { data });
    const before = sender.sent;
    const got = pass([note(1), big, note(2)]);
    assert.deepEqual(got, [note(1), big, note(2)]);
    assert.ok(sender.sent - before >= 8, "several packets");
  },
);

pureTest("receiver feedback trims the journal", () => {
  const { sender, receiver, pass } = link();
  pass([note(60), cc(7, 1), note(61, 90, 5)]);
  const journal = (bytes: Uint8Array) => decodeRtpMidi(bytes).journal!;
  const before = journal(sender.guard(0));
  assert.equal(before.channels.length, 2);
  sender.feedback(receiver.sequence);
  assert.equal(sender.unconfirmed, false);
  const after = journal(sender.guard(0));
  assert.equal(after.channels.length, 0);
});

pureTest("a lost note off is repaired: no note stays on", () => {
  const { receiver, pass } = link();
  pass([note(60)]);
  assert.deepEqual(pass([off(60)], () => true), []);
  assert.equal(receiver.held, 1);
  assert.deepEqual(pass([note(72)]), [off(60), note(72)]);
  assert.equal(receiver.lost, 1);
  assert.equal(receiver.repaired, 1);
});

pureTest("a lost note on is played from the journal while it is recent", () => {
  const { pass } = link();
  pass([note(1)]);
  pass([note(60, 77)], () => true);
  assert.deepEqual(pass([cc(1, 1)]), [note(60, 77), cc(1, 1)]);
});

pureTest(
  "a lost note off and note on of the same note are both repaired",
  () => {
    const { pass } = link();
    pass([note(60, 50)]);
    pass([off(60), note(60, 51)], () => true);
    assert.deepEqual(pass([cc(1, 1)]), [off(60), note(60, 51), cc(1, 1)]);
  },
);

pureTest(
  "controllers, program, pitch wheel and aftertouch are repaired",
  () => {
    const { pass, guard } = link();
    pass([cc(7, 1)]);
    const lost = [
      cc(7, 99),
      cc(64, 127, 2),
      message("program_change", { channel: 2, program: 9 }),
      message("pitchwheel", { channel: 2, pitch: -100 }),
      message("aftertouch", { channel: 2, value: 33 }),
    ];
    pass(lost, () => true);
    const repaired = guard();
    assert.deepEqual(
      repaired.map((m) => JSON.stringify(m)).sort(),
      lost.map((m) => JSON.stringify(m)).sort(),
    );
  },
);

pureTest("all notes off on the sender reaches a receiver that lost it", () => {
  const { receiver, pass } = link();
  pass([note(60), note(61), note(62, 1, 3)]);
  pass([cc(123, 0)], () => true);
  const got = pass([message("clock")]);
  assert.deepEqual(got, [off(60), off(61), message("clock")]);
  assert.equal(receiver.held, 1, "the other channel's note stays");
});

pureTest("late and repeated packets are dropped", () => {
  const { sender, receiver } = link();
  const [a] = sender.packets([note(1)], 0);
  const [b] = sender.packets([off(1)], 1);
  assert.equal(receiver.receive(decodeRtpMidi(b))?.messages.length, 1);
  assert.equal(receiver.receive(decodeRtpMidi(a)), undefined);
  assert.equal(receiver.receive(decodeRtpMidi(b)), undefined);
  assert.equal(receiver.late, 2);
});

pureTest(
  "a peer that repeats or restarts sequence numbers is still heard",
  () => {
    const receiver = new RtpMidiReceiver();
    const packet = (sequence: number, msg: Message) => {
      const bytes = encodeRtpMidi({
        sequence,
        timestamp: 0,
        ssrc: 1,
        commands: [{ delta: 0, message: msg }],
      });
      return receiver.receive(decodeRtpMidi(bytes), bytes)?.messages ?? [];
    };
    assert.deepEqual(packet(100, note(60)), [note(60)]);
    // The same number, other content: taken. The same bytes: a duplicate.
    assert.deepEqual(packet(100, off(60)), [off(60)]);
    assert.deepEqual(packet(100, off(60)), []);
    assert.equal(receiver.late, 1);
    assert.equal(receiver.repeated, 1);
    // Far behind the newest: the peer started again.
    assert.deepEqual(packet(5, note(61)), [note(61)]);
    assert.deepEqual(packet(6, off(61)), [off(61)]);
    assert.equal(receiver.repeated, 2);
    // A little behind: late, until the fourth in a row.
    assert.deepEqual(packet(3, note(62)), []);
    assert.deepEqual(packet(4, note(62)), []);
    assert.deepEqual(packet(5, note(62)), []);
    assert.deepEqual(packet(2, note(63)), [note(63)]);
    assert.equal(receiver.repeated, 3);
    assert.equal(receiver.late, 4);
    assert.equal(receiver.held, 1);
    // And on from there, with losses counted as usual.
    assert.deepEqual(packet(3, off(63)), [off(63)]);
    assert.equal(receiver.lost, 0);
  },
);

pureTest(
  "without a journal that reaches the loss, every held note is ended",
  () => {
    const receiver = new RtpMidiReceiver();
    const bare = (sequence: number, messages: Message[]) =>
      decodeRtpMidi(
        encodeRtpMidi({
          sequence,
          timestamp: 0,
          ssrc: 1,
          commands: messages.map((message) => ({ delta: 0, message })),
        }),
      );
    receiver.receive(bare(10, [note(60), note(61, 1, 9)]));
    assert.deepEqual(receiver.receive(bare(12, [note(5)]))?.messages, [
      off(60),
      off(61, 9),
      note(5),
    ]);
    // A journal whose checkpoint is after the loss does not cover it.
    const late = decodeRtpMidi(
      encodeRtpMidi({
        sequence: 20,
        timestamp: 0,
        ssrc: 1,
        commands: [],
        journal: { checkpoint: 19, channels: [] },
      }),
    );
    assert.deepEqual(receiver.receive(late)?.messages, [off(5)]);
  },
);

pureTest("a sysex cut by a lost segment is dropped, not half-delivered", () => {
  const { receiver, pass } = link();
  const big = message("sysex", { data: new Array(5000).fill(3) });
  const got = pass([big, note(1)], (i) => i === 1);
  assert.deepEqual(got, [note(1)]);
  assert.equal(receiver.dropped, 1);
});

pureTest("a guard packet repairs the loss of the last packet", () => {
  const { sender, receiver, pass, guard } = link();
  pass([note(60)]);
  pass([off(60)], () => true);
  assert.equal(sender.unconfirmed, true);
  assert.deepEqual(guard(), [off(60)]);
  assert.equal(receiver.held, 0);
});

pureTest("the journal stays bounded when no feedback comes", () => {
  const { sender } = link();
  const next = random(5);
  for (let i = 0; i < 3000; i++) {
    const batch = [
      note(
        between(next, 0, 127),
        1 + between(next, 0, 126),
        between(next, 0, 15),
      ),
      cc(between(next, 0, 119), between(next, 0, 127), between(next, 0, 15)),
    ];
    for (const bytes of sender.packets(batch, i)) {
      assert.ok(bytes.length <= 1400, `packet of ${bytes.length} bytes`);
    }
  }
});

pureTest(
  "after OFFBITS there are as many bytes as note logs, as Wireshark needs",
  () => {
    const { sender } = link();
    const next = random(21);
    let checked = 0;
    for (let i = 0; i < 2000; i++) {
      const channel = between(next, 12, 15);
      const batch: Message[] = [
        note(between(next, 0, 127), between(next, 1, 127), channel),
      ];
      if (next() < 0.3) batch.push(off(between(next, 0, 127), channel));
      if (next() < 0.2) {
        batch.push(message("aftertouch", { channel, value: 1 }));
      }
      for (const bytes of sender.packets(batch, i)) {
        const journal = decodeRtpMidi(bytes).journal!;
        // The journal ends the packet: walk its channel journals from the end.
        let after = 0;
        for (const channel of [...journal.channels].reverse()) {
          const notes = channel.notes;
          if (notes && notes.offs.length > 0) {
            const octets = notes.high! - notes.low! + 1;
            const rest = octets + (channel.aftertouch ? 1 : 0) + after;
            assert.ok(
              rest >= notes.logs.length,
              `${rest} < ${notes.logs.length}`,
            );
            checked++;
          }
          after += channelJournalLength(channel);
        }
      }
    }
    assert.ok(checked > 1000);
  },
);

pureTest("10,000 note pairs over a link that loses 5% leave no note on", () => {
  const { sender, receiver, next, pass, guard } = link(11);
  const tracker = new NoteTracker();
  const lossy = () => next() < 0.05;
  for (let i = 0; i < 10_000; i++) {
    const channel = between(next, 0, 15);
    const n = between(next, 0, 127);
    for (const m of pass([note(n, between(next, 1, 127), channel)], lossy)) {
      tracker.track(m);
    }
    for (const m of pass([off(n, channel)], lossy)) tracker.track(m);
    // Feedback, itself lost now and then.
    if (next() < 0.2 && !lossy()) sender.feedback(receiver.sequence);
  }
  for (let i = 0; i < 20 && sender.unconfirmed; i++) {
    if (lossy()) {
      sender.guard(0);
      continue;
    }
    for (const m of guard()) tracker.track(m);
    sender.feedback(receiver.sequence);
  }
  assert.ok(receiver.lost > 500, `lost ${receiver.lost}`);
  assert.equal(tracker.size, 0);
  assert.equal(receiver.held, 0);
});

// Fuzzing.

function mutate(bytes: Uint8Array, next: () => number): Uint8Array {
  const out = [...bytes];
  for (let m = between(next, 1, 4); m > 0; m--) {
    const at = between(next, 0, Math.max(0, out.length - 1));
    const choice = next();
    if (choice < 0.35) out[at] ^= 1 << between(next, 0, 7);
    else if (choice < 0.55) out[at] = between(next, 0, 255);
    else if (choice < 0.7) out.splice(at, between(next, 1, 4));
    else if (choice < 0.85) out.length = at; // truncated
    else out.splice(at, 0, between(next, 0, 255));
  }
  return new Uint8Array(out);
}

function randomJournalPacket(next: () => number): Uint8Array {
  const channels = [];
  for (let c = 0; c < 16; c++) {
    if (next() < 0.8) continue;
    channels.push({
      channel: c,
      controllers: {
        logs: Array.from({ length: between(next, 1, 5) }, () => ({
          control: between(next, 0, 127),
          value: between(next, 0, 127),
        })),
      },
      notes: {
        logs: Array.from({ length: between(next, 0, 5) }, () => ({
          note: between(next, 0, 127),
          velocity: between(next, 1, 127),
        })),
        offs: Array.from(
          { length: between(next, 0, 5) },
          () => between(next, 0, 127),
        ),
      },
      ...(next() < 0.5 && { pitch: { pitch: between(next, -8192, 8191) } }),
    });
  }
  return encodeRtpMidi({
    sequence: between(next, 0, 0xffff),
    timestamp: 0,
    ssrc: 1,
    commands: Array.from({ length: between(next, 0, 6) }, () => ({
      delta: next() < 0.5 ? 0 : between(next, 0, 1 << 20),
      message: randomMessage(next, undefined, 30),
    })),
    journal: { checkpoint: between(next, 0, 0xffff), channels },
  });
}

pureTest(
  "100,000 random and mutated packets: decoders throw only RtpMidiDecodeError",
  () => {
    const next = random(2024);
    const receiver = new RtpMidiReceiver({ maxSysexLength: 4096 });
    let malformed = 0;
    let taken = 0;
    const sessions = [
      encodeSessionPacket({
        command: "IN",
        version: 2,
        token: 1,
        ssrc: 2,
        name: "x",
      }),
      encodeSessionPacket({
        command: "CK",
        ssrc: 1,
        count: 1,
        timestamps: [1, 2, 3],
      }),
      encodeSessionPacket({ command: "RS", ssrc: 1, sequence: 9 }),
    ];
    for (let i = 0; i < 100_000; i++) {
      const kind = next();
      let bytes: Uint8Array;
      if (kind < 0.2) {
        bytes = Uint8Array.from(
          { length: between(next, 0, 64) },
          () => between(next, 0, 255),
        );
        if (next() < 0.5 && bytes.length > 0) {
          bytes[0] = 0x80 | (bytes[0] & 0x3f);
        }
      } else if (kind < 0.3) {
        bytes = mutate(sessions[between(next, 0, 2)], next);
      } else {
        const good = randomJournalPacket(next);
        bytes = kind < 0.45 ? good : mutate(good, next);
      }
      try {
        if (isSessionPacket(bytes)) {
          decodeSessionPacket(bytes);
          continue;
        }
        const packet = decodeRtpMidi(bytes);
        if (packet.journal) {
          // Re-encoding what was decoded must not throw either, unless a
          // field is out of range for the encoder (velocity 0 in a log).
          try {
            encodeJournal(packet.journal);
          } catch (error) {
            assert.ok(error instanceof RangeError);
          }
        }
        receiver.receive(packet);
        taken++;
      } catch (error) {
        if (!(error instanceof RtpMidiDecodeError)) throw error;
        malformed++;
      }
    }
    assert.ok(malformed > 10_000, `malformed ${malformed}`);
    assert.ok(taken > 30_000, `taken ${taken}`);
    assert.ok(receiver.held <= 16 * 128);
  },
);
