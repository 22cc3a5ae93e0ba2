import assert from "node:assert/strict";
import {
  checkMessage,
  copy,
  decode,
  DecodeError,
  encode,
  encodedLength,
  encodeInto,
  equals,
  formatMessage,
  isChannelMessage,
  isRealtime,
  type Message,
  message,
  MESSAGE_TYPES,
  type MessageType,
  parseMessage,
} from "../mod.ts";
import { FIELDS, SPECS } from "../src/codec/_spec.ts";
import { pureTest, random, randomMessage } from "./_util.ts";

pureTest("message fills mido's defaults for every type", () => {
  assert.deepEqual(message("note_on"), {
    type: "note_on",
    channel: 0,
    note: 0,
    velocity: 64,
    time: 0,
  });
  assert.deepEqual(message("note_off").velocity, 64);
  assert.deepEqual(message("pitchwheel"), {
    type: "pitchwheel",
    channel: 0,
    pitch: 0,
    time: 0,
  });
  assert.deepEqual(message("sysex"), {
    type: "sysex",
    data: new Uint8Array(0),
    time: 0,
  });
  assert.deepEqual(message("clock"), { type: "clock", time: 0 });
  assert.equal(MESSAGE_TYPES.length, 18);
});

pureTest("message rejects an unknown type naming the allowed ones", () => {
  assert.throws(
    () => message("note_of" as MessageType),
    (e: unknown) =>
      e instanceof TypeError && /"note_of"/.test(e.message) &&
      /note_on/.test(e.message),
  );
});

pureTest("message rejects an unknown field naming the allowed ones", () => {
  assert.throws(
    // @ts-expect-error: pitch is not a note_on field
    () => message("note_on", { pitch: 3 }),
    /note_on has no field "pitch": expected channel, note, velocity, time/,
  );
});

pureTest("every range edge is accepted and one past it is a RangeError", () => {
  for (const type of MESSAGE_TYPES) {
    for (const name of SPECS[type].fields) {
      const { min, max } = FIELDS[name];
      for (const ok of [min, max]) {
        const msg = message(type, { [name]: ok });
        assert.equal((msg as unknown as Record<string, number>)[name], ok);
        assert.deepEqual(decode(encode(msg)), msg);
      }
      for (const bad of [min - 1, max + 1, min + 0.5]) {
        assert.throws(
          () => message(type, { [name]: bad }),
          (e: unknown) =>
            e instanceof RangeError &&
            e.message ===
              `${type} ${name} must be an integer in ${min}..${max}: got ${bad}`,
        );
      }
      assert.throws(
        () => message(type, { [name]: "1" }),
        (e: unknown) => e instanceof TypeError && e.message.endsWith(`got "1"`),
      );
    }
  }
});

pureTest("sysex data is checked byte by byte", () => {
  assert.deepEqual(
    message("sysex", { data: new Set([1, 127]) }).data,
    new Uint8Array([1, 127]),
  );
  assert.throws(
    () => message("sysex", { data: [1, 128] }),
    /sysex data\[1\] must be an integer in 0..127: got 128/,
  );
  assert.throws(
    () => message("sysex", { data: [1, "x"] as unknown as number[] }),
    TypeError,
  );
  assert.throws(
    () => message("sysex", { data: 5 as unknown as number[] }),
    /sysex data must be a list of integers in 0..127: got 5/,
  );
});

pureTest("time must be a finite number", () => {
  assert.equal(message("clock", { time: 0.25 }).time, 0.25);
  assert.throws(() => message("clock", { time: NaN }), /time must be a finite/);
  assert.throws(
    () => message("clock", { time: "1" as unknown as number }),
    TypeError,
  );
});

pureTest("encode gives mido's bytes for every type", () => {
  const cases: [Message, number[]][] = [
    [message("note_off", { channel: 1, note: 60, velocity: 3 }), [0x81, 60, 3]],
    [message("note_on", { channel: 15, note: 127 }), [0x9f, 127, 64]],
    [message("polytouch", { note: 1, value: 2 }), [0xa0, 1, 2]],
    [message("control_change", { control: 7, value: 9 }), [0xb0, 7, 9]],
    [message("program_change", { channel: 2, program: 5 }), [0xc2, 5]],
    [message("aftertouch", { value: 100 }), [0xd0, 100]],
    [message("pitchwheel", { pitch: -8192 }), [0xe0, 0, 0]],
    [message("pitchwheel", { pitch: 0 }), [0xe0, 0, 64]],
    [message("pitchwheel", { pitch: 8191 }), [0xe0, 127, 127]],
    [message("sysex", { data: [1, 2, 3] }), [0xf0, 1, 2, 3, 0xf7]],
    [message("quarter_frame", { frame_type: 7, frame_value: 15 }), [
      0xf1,
      0x7f,
    ]],
    [message("songpos", { pos: 16383 }), [0xf2, 127, 127]],
    [message("songpos", { pos: 128 }), [0xf2, 0, 1]],
    [message("song_select", { song: 9 }), [0xf3, 9]],
    [message("tune_request"), [0xf6]],
    [message("clock"), [0xf8]],
    [message("start"), [0xfa]],
    [message("continue"), [0xfb]],
    [message("stop"), [0xfc]],
    [message("active_sensing"), [0xfe]],
    [message("reset"), [0xff]],
  ];
  assert.equal(new Set(cases.map(([m]) => m.type)).size, 18);
  for (const [msg, bytes] of cases) {
    assert.deepEqual(encode(msg), new Uint8Array(bytes), msg.type);
    assert.equal(encodedLength(msg), bytes.length);
    assert.deepEqual(decode(new Uint8Array(bytes)), msg);
  }
});

pureTest("encode returns bytes the caller owns, whole buffer and all", () => {
  const a = encode(message("note_on", { note: 60 }));
  const b = encode(message("note_off", { note: 60 }));
  assert.notEqual(a.buffer, b.buffer);
  assert.equal(a.byteOffset, 0);
  assert.equal(a.buffer.byteLength, 3);
  // Transferring one result's buffer leaves every other result intact.
  structuredClone(a, { transfer: [a.buffer as ArrayBuffer] });
  assert.equal(a.length, 0);
  assert.deepEqual(b, new Uint8Array([0x80, 60, 64]));
});

pureTest("encode checks hand-made objects before writing anything", () => {
  assert.throws(
    () => encode({ type: "note_on", channel: 0, note: 60 } as Message),
    /note_on velocity must be an integer in 0..127: got undefined/,
  );
  assert.throws(
    () =>
      encode(
        { type: "clock", time: 0, extra: 1 } as unknown as Message,
      ),
    /clock has no field "extra"/,
  );
  assert.throws(() => encode(null as unknown as Message), TypeError);
  assert.throws(
    () => encode({ type: "sysex", data: new Uint8Array([200]) } as Message),
    RangeError,
  );
});

pureTest("encodeInto writes a burst into one buffer", () => {
  const burst = [
    message("note_on", { note: 1 }),
    message("sysex"),
    message("stop"),
  ];
  const buffer = new Uint8Array(6);
  let offset = 0;
  for (const msg of burst) offset = encodeInto(msg, buffer, offset);
  assert.equal(offset, 6);
  assert.deepEqual(buffer, new Uint8Array([0x90, 1, 64, 0xf0, 0xf7, 0xfc]));
});

pureTest("decode reports what is wrong and where", () => {
  const cases: [number[], RegExp, number][] = [
    [[], /No bytes to decode/, 0],
    [[60, 64], /Expected a status byte \(0x80-0xff\), got data byte 0x3c/, 0],
    [[0xf4], /Status byte 0xf4 starts no MIDI message/, 0],
    [[0xf9], /Status byte 0xf9 starts no MIDI message/, 0],
    [[0xf7], /Status byte 0xf7 starts no MIDI message/, 0],
    [[0x90, 60], /note_on takes 3 bytes, got 2/, 2],
    [[0x90, 60, 64, 1], /note_on takes 3 bytes, got 4/, 3],
    [[0x90, 0x80, 1], /note_on expects data bytes \(0x00-0x7f\), got 0x80/, 1],
    [[0xf0, 1, 2], /sysex must end with 0xf7/, 3],
    [[0xf0, 1, 0xf8, 0xf7], /sysex expects data bytes/, 2],
  ];
  for (const [bytes, pattern, offset] of cases) {
    assert.throws(
      () => decode(new Uint8Array(bytes)),
      (e: unknown) =>
        e instanceof DecodeError && e instanceof SyntaxError &&
        pattern.test(e.message) && e.offset === offset &&
        e.message.endsWith(`(at offset ${offset})`),
      String(bytes),
    );
  }
});

pureTest("text form is mido's str() for every type", () => {
  const cases: [Message, string][] = [
    [
      message("note_on", { note: 60 }),
      "note_on channel=0 note=60 velocity=64 time=0",
    ],
    [
      message("note_off", { channel: 3, time: 0.5 }),
      "note_off channel=3 note=0 velocity=64 time=0.5",
    ],
    [message("polytouch"), "polytouch channel=0 note=0 value=0 time=0"],
    [
      message("control_change", { control: 7 }),
      "control_change channel=0 control=7 value=0 time=0",
    ],
    [message("program_change"), "program_change channel=0 program=0 time=0"],
    [message("aftertouch"), "aftertouch channel=0 value=0 time=0"],
    [
      message("pitchwheel", { pitch: -8192 }),
      "pitchwheel channel=0 pitch=-8192 time=0",
    ],
    [message("sysex", { data: [1, 2, 3] }), "sysex data=(1,2,3) time=0"],
    [message("sysex", { data: [1] }), "sysex data=(1) time=0"],
    [message("sysex"), "sysex data=() time=0"],
    [
      message("quarter_frame"),
      "quarter_frame frame_type=0 frame_value=0 time=0",
    ],
    [message("songpos", { pos: 5 }), "songpos pos=5 time=0"],
    [message("song_select"), "song_select song=0 time=0"],
    [message("tune_request"), "tune_request time=0"],
    [message("continue", { time: 1e-5 }), "continue time=1e-05"],
    [message("clock", { time: 0.001 }), "clock time=0.001"],
  ];
  for (const [msg, text] of cases) {
    assert.equal(formatMessage(msg), text);
    const back = parseMessage(text);
    assert.ok(equals(back, msg), text);
    assert.equal(back.time, msg.time);
  }
});

pureTest("every type round-trips through bytes and text", () => {
  const next = random(1);
  for (let i = 0; i < 2000; i++) {
    const msg = randomMessage(next, MESSAGE_TYPES[i % 18]);
    assert.deepEqual(decode(encode(msg)), msg);
    assert.deepEqual(parseMessage(formatMessage(msg)), msg);
  }
});

pureTest("parseMessage fills defaults and accepts spaces and any order", () => {
  assert.deepEqual(
    parseMessage("  note_on   velocity=3 note=60  "),
    message("note_on", { note: 60, velocity: 3 }),
  );
  assert.deepEqual(
    parseMessage("sysex data=( 1, 2 ,3 )"),
    message("sysex", { data: [1, 2, 3] }),
  );
  assert.equal(parseMessage("clock time=1e-3").time, 0.001);
});

pureTest("parseMessage quotes the bad part of the text", () => {
  const cases: [string, RegExp][] = [
    ["", /no message type in ""/],
    ["note_of note=60", /unknown message type in "note_of"/],
    ["note_on note=sixty", /note must be an integer in "note=sixty"/],
    ["note_on note=60 note=61", /repeated field in "note=61"/],
    ["note_on note", /expected name=value in "note"/],
    ["note_on pitch=1", /note_on has no field "pitch" in "pitch=1"/],
    ["note_on note=128", /must be an integer in 0..127: got 128 in "note=128"/],
    ["clock time=soon", /time must be a finite number in "time=soon"/],
    ["clock time=1e999", /time must be a finite number in "time=1e999"/],
    ["sysex data=1,2", /expected data=\(n,n,...\) in "data=1,2"/],
    ["sysex data=(1,200)", /data\[1\] must be an integer in 0..127: got 200/],
  ];
  for (const [text, pattern] of cases) {
    assert.throws(
      () => parseMessage(text),
      (e: unknown) => e instanceof SyntaxError && pattern.test(e.message),
      text,
    );
  }
  assert.throws(
    () => parseMessage("note_on note=128"),
    (e: unknown) => e instanceof SyntaxError && e.cause instanceof RangeError,
  );
  assert.throws(() => parseMessage(5 as unknown as string), TypeError);
});

pureTest("equals ignores time; copy replaces and checks fields", () => {
  const a = message("note_on", { note: 60, time: 1 });
  assert.ok(equals(a, message("note_on", { note: 60 })));
  assert.ok(!equals(a, message("note_on", { note: 61 })));
  assert.ok(!equals(a, message("note_off", { note: 60 })));
  assert.ok(
    equals(message("sysex", { data: [1] }), message("sysex", { data: [1] })),
  );
  assert.ok(
    !equals(message("sysex", { data: [1] }), message("sysex", { data: [2] })),
  );
  assert.ok(
    !equals(
      message("sysex", { data: [1] }),
      message("sysex", { data: [1, 1] }),
    ),
  );
  const b = copy(a, { note: 72 });
  assert.deepEqual(b, {
    type: "note_on",
    channel: 0,
    note: 72,
    velocity: 64,
    time: 1,
  });
  assert.equal(a.note, 60);
  assert.throws(() => copy(a, { note: 128 }), RangeError);
  assert.throws(
    () => copy(a, { type: "note_off" } as never),
    /Cannot change a message's type from note_on to "note_off"/,
  );
  const s = message("sysex", { data: [1, 2] });
  assert.notEqual(copy(s).data, s.data);
});

pureTest("isRealtime and isChannelMessage classify every type", () => {
  const realtime = MESSAGE_TYPES.filter((t) => isRealtime(message(t)));
  assert.deepEqual(realtime, [
    "clock",
    "start",
    "continue",
    "stop",
    "active_sensing",
    "reset",
  ]);
  const channel = MESSAGE_TYPES.filter((t) => isChannelMessage(message(t)));
  assert.deepEqual(channel, [
    "note_off",
    "note_on",
    "polytouch",
    "control_change",
    "program_change",
    "aftertouch",
    "pitchwheel",
  ]);
});

pureTest("checkMessage accepts messages from JSON and rejects the rest", () => {
  assert.equal(
    checkMessage(
      JSON.parse('{"type":"note_on","channel":0,"note":1,"velocity":2}'),
    ).type,
    "note_on",
  );
  assert.doesNotThrow(() => checkMessage({ type: "sysex", data: [1, 2] }));
  assert.throws(
    () => checkMessage("clock"),
    /Expected a message object: got "clock"/,
  );
  assert.throws(
    () => encode({ type: "sysex", data: new Set([1]) } as never),
    /sysex data must be a Uint8Array or an array of integers/,
  );
  // ... and a refused message leaves the encoder working.
  assert.deepEqual(encode(message("clock")), new Uint8Array([0xf8]));
});
