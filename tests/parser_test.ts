import assert from "node:assert/strict";
import {
  encode,
  type Message,
  message,
  MidiDecoderStream,
  MidiEncoderStream,
  Parser,
} from "../mod.ts";
import { between, concat, pureTest, random, randomMessage } from "./_util.ts";

function parse(bytes: number[], parser = new Parser()): Message[] {
  return parser.feed(new Uint8Array(bytes));
}

const on = (note: number, velocity = 64) =>
  message("note_on", { note, velocity });

pureTest("parser decodes whole messages of every type", () => {
  const next = random(7);
  const messages = Array.from({ length: 500 }, () => randomMessage(next));
  const out = new Parser().feed(concat(messages.map(encode)));
  assert.deepEqual(out, messages.map((m) => ({ ...m, time: 0 })));
});

pureTest("parser applies running status to repeated data bytes", () => {
  assert.deepEqual(parse([0x90, 60, 100, 62, 0, 64, 1]), [
    on(60, 100),
    on(62, 0),
    on(64, 1),
  ]);
  assert.deepEqual(
    parse([0xc3, 1, 2, 3]),
    [1, 2, 3].map((program) =>
      message("program_change", { channel: 3, program })
    ),
  );
});

pureTest("parser keeps running status across realtime bytes", () => {
  assert.deepEqual(parse([0x90, 60, 100, 0xf8, 62, 0xfe, 0]), [
    on(60, 100),
    message("clock"),
    message("active_sensing"),
    on(62, 0),
  ]);
});

pureTest(
  "parser delivers realtime inside a message without disturbing it",
  () => {
    assert.deepEqual(parse([0x90, 0xf8, 60, 0xfa, 100]), [
      message("clock"),
      message("start"),
      on(60, 100),
    ]);
  },
);

pureTest("parser delivers realtime inside a sysex and keeps the sysex", () => {
  assert.deepEqual(parse([0xf0, 1, 2, 0xf8, 3, 0xfc, 0xf7]), [
    message("clock"),
    message("stop"),
    message("sysex", { data: [1, 2, 3] }),
  ]);
});

pureTest("parser cancels running status after system common messages", () => {
  assert.deepEqual(parse([0x90, 60, 100, 0xf3, 5, 62, 0]), [
    on(60, 100),
    message("song_select", { song: 5 }),
  ]);
  assert.deepEqual(parse([0x90, 60, 100, 0xf0, 1, 0xf7, 62, 0]), [
    on(60, 100),
    message("sysex", { data: [1] }),
  ]);
  assert.deepEqual(parse([0x90, 60, 100, 0xf6, 62, 0]), [
    on(60, 100),
    message("tune_request"),
  ]);
});

pureTest("parser drops a message cut by a status byte", () => {
  const parser = new Parser();
  assert.deepEqual(parse([0x90, 60, 0x80, 61, 0], parser), [
    message("note_off", { note: 61, velocity: 0 }),
  ]);
  assert.deepEqual(parse([0xe0, 1, 0xf2, 0, 1], parser), [
    message("songpos", { pos: 128 }),
  ]);
  assert.equal(parser.dropped, 2);
});

pureTest("parser drops a sysex cut by a status byte", () => {
  const parser = new Parser();
  assert.deepEqual(parse([0xf0, 1, 2, 0x90, 60, 100], parser), [on(60, 100)]);
  assert.deepEqual(parse([0xf0, 1, 2, 0xf0, 3, 0xf7], parser), [
    message("sysex", { data: [3] }),
  ]);
  assert.equal(parser.dropped, 2);
});

pureTest(
  "parser skips stray data bytes, a lone F7 and undefined status bytes",
  () => {
    assert.deepEqual(parse([1, 2, 3, 0xf7, 4, 0xf8]), [message("clock")]);
    assert.deepEqual(parse([0xf4, 1, 2, 0xf5, 3, 0xf9, 0xfd, 0xfa]), [
      message("start"),
    ]);
    // An undefined status byte cancels running status: its data is not a note.
    assert.deepEqual(parse([0x90, 60, 100, 0xf5, 62, 0]), [on(60, 100)]);
    // Undefined realtime bytes leave a message in progress alone.
    assert.deepEqual(parse([0x90, 60, 0xf9, 100, 0xfd]), [on(60, 100)]);
  },
);

pureTest("parser keeps its state between chunks", () => {
  const parser = new Parser();
  assert.deepEqual(parse([0x90], parser), []);
  assert.equal(parser.pending, false);
  assert.deepEqual(parse([60], parser), []);
  assert.equal(parser.pending, true);
  assert.deepEqual(parse([100, 61], parser), [on(60, 100)]);
  assert.deepEqual(parse([0], parser), [on(61, 0)]);
  assert.deepEqual(parse([0xf0, 1], parser), []);
  assert.deepEqual(parse([2], parser), []);
  assert.deepEqual(parse([0xf7], parser), [message("sysex", { data: [1, 2] })]);
});

pureTest("parser drops a sysex past maxSysexLength and resynchronises", () => {
  const parser = new Parser({ maxSysexLength: 4 });
  assert.deepEqual(parse([0xf0, 1, 2, 3, 4, 0xf7], parser), [
    message("sysex", { data: [1, 2, 3, 4] }),
  ]);
  assert.deepEqual(parse([0xf0, 1, 2, 3], parser), []);
  assert.deepEqual(parse([4, 5, 6, 0xf8, 7, 0xf7, 0x90, 60, 100], parser), [
    message("clock"),
    on(60, 100),
  ]);
  assert.equal(parser.dropped, 1);
  assert.deepEqual(parse([0xf0, 0xf7], new Parser({ maxSysexLength: 0 })), [
    message("sysex"),
  ]);
});

pureTest("parser rejects a bad maxSysexLength", () => {
  for (const bad of [-1, 1.5, NaN]) {
    assert.throws(
      () => new Parser({ maxSysexLength: bad }),
      (e: unknown) =>
        e instanceof RangeError &&
        e.message ===
          `maxSysexLength must be a non-negative integer: got ${bad}`,
    );
  }
});

pureTest("parser gives the same messages for any chunking of a stream", () => {
  const next = random(42);
  for (let round = 0; round < 200; round++) {
    // Whole messages with realtime bytes sprinkled inside, running status and
    // garbage mixed in.
    const parts: number[] = [];
    for (let i = 0; i < 40; i++) {
      const bytes = [...encode(randomMessage(next))];
      if (next() < 0.3) {
        bytes.splice(between(next, 0, bytes.length), 0, 0xf8);
      }
      if (next() < 0.1) bytes.push(between(next, 0, 255));
      if (next() < 0.2 && bytes[0] < 0xf0 && bytes.length === 3) {
        bytes.push(between(next, 0, 127), between(next, 0, 127));
      }
      parts.push(...bytes);
    }
    const stream = new Uint8Array(parts);
    const whole = new Parser().feed(stream);
    const bytewise = new Parser();
    const oneByOne = [...stream].flatMap((b) =>
      bytewise.feed(new Uint8Array([b]))
    );
    assert.deepEqual(oneByOne, whole);
    for (let split = 0; split < 5; split++) {
      const parser = new Parser();
      const out: Message[] = [];
      let at = 0;
      while (at < stream.length) {
        const size = between(next, 0, 12);
        out.push(...parser.feed(stream.subarray(at, at + size)));
        at += size;
      }
      assert.deepEqual(out, whole);
    }
  }
});

pureTest(
  "parser never throws on random bytes and gives only valid messages",
  () => {
    const next = random(99);
    const parser = new Parser({ maxSysexLength: 64 });
    let count = 0;
    for (let round = 0; round < 2000; round++) {
      const chunk = Uint8Array.from(
        { length: between(next, 0, 64) },
        () => between(next, 0, 255),
      );
      for (const msg of parser.feed(chunk)) {
        count++;
        assert.deepEqual(new Parser().feed(encode(msg)), [msg]);
      }
    }
    assert.ok(count > 1000, `only ${count} messages`);
  },
);

pureTest("a never-ending sysex keeps memory bounded", () => {
  const parser = new Parser({ maxSysexLength: 1 << 16 });
  const chunk = new Uint8Array(1 << 16).fill(0x41);
  parser.feed(new Uint8Array([0xf0]));
  const before = Deno.memoryUsage().heapUsed + Deno.memoryUsage().external;
  for (let i = 0; i < 2000; i++) parser.feed(chunk); // 128 MiB of sysex data
  const after = Deno.memoryUsage().heapUsed + Deno.memoryUsage().external;
  assert.ok(after - before < 16 << 20, `grew by ${after - before} bytes`);
  assert.deepEqual(parse([0xf7, 0x90, 60, 100], parser), [on(60, 100)]);
  assert.equal(parser.dropped, 1);
});

pureTest("a 1 MiB sysex in 1 KiB chunks arrives whole", () => {
  const data = Uint8Array.from({ length: 1 << 20 }, (_, i) => i & 0x7f);
  const bytes = encode(message("sysex", { data }));
  const parser = new Parser();
  const out: Message[] = [];
  for (let at = 0; at < bytes.length; at += 1024) {
    out.push(...parser.feed(bytes.subarray(at, at + 1024)));
  }
  assert.equal(out.length, 1);
  assert.deepEqual(out[0], message("sysex", { data }));
});

pureTest("parser reset forgets a message in progress", () => {
  const parser = new Parser();
  parse([0x90, 60], parser);
  parser.reset();
  assert.deepEqual(parse([100, 0xf8], parser), [message("clock")]);
  assert.equal(parser.dropped, 1);
});

pureTest(
  "decoder and encoder streams carry messages through web streams",
  async () => {
    const next = random(3);
    const messages = Array.from({ length: 300 }, () => randomMessage(next));
    const bytes = concat(messages.map(encode));
    const chunks: Uint8Array[] = [];
    for (let at = 0; at < bytes.length; at += 7) {
      chunks.push(
        bytes.slice(at, at + 7),
      );
    }
    const decoded = await Array.fromAsync(
      ReadableStream.from(chunks).pipeThrough(new MidiDecoderStream()),
    );
    assert.deepEqual(decoded, messages);
    const encoded = await Array.fromAsync(
      ReadableStream.from(messages).pipeThrough(new MidiEncoderStream()),
    );
    assert.deepEqual(concat(encoded), bytes);
    await assert.rejects(
      ReadableStream.from([{ type: "note_on" } as Message])
        .pipeThrough(new MidiEncoderStream())
        .pipeTo(new WritableStream()),
      TypeError,
    );
  },
);
