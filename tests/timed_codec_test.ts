// The timed stream's frames (time, ping, pong) between MIDI messages: what a
// plain parser makes of them, and how the splitter reads them across reads
// that end anywhere. No permission needed.

import assert from "node:assert/strict";
import { encode, message, Parser } from "../mod.ts";
import {
  pingFrame,
  pongFrame,
  type TimedEvent,
  TimedSplitter,
  timeFrame,
  unwrap,
  WRAP,
} from "../src/codec/_timed.ts";
import { concat, pureTest, random, randomMessage } from "./_util.ts";

/** Splits `stream` fed in the given pieces; returns what came out. */
function split(stream: Uint8Array, cuts: number[]) {
  const splitter = new TimedSplitter();
  const midi: { bytes: number[]; time: number }[] = [];
  const events: TimedEvent[] = [];
  let from = 0;
  for (const cut of [...cuts, stream.length]) {
    splitter.feed(
      stream.subarray(from, cut),
      (bytes, time) => {
        const last = midi.at(-1);
        if (last !== undefined && last.time === time) last.bytes.push(...bytes);
        else midi.push({ bytes: [...bytes], time });
      },
      (event) => events.push(event),
    );
    from = cut;
  }
  return { midi, events };
}

pureTest(
  "a plain MIDI parser reads a timed stream's MIDI and nothing else",
  () => {
    const next = random(11);
    const messages = Array.from({ length: 200 }, () => randomMessage(next));
    const parts: Uint8Array[] = [];
    messages.forEach((msg, i) => {
      if (i % 3 === 0) parts.push(timeFrame(i * 1_000_003));
      if (i % 7 === 0) parts.push(pingFrame(i));
      if (i % 11 === 0) parts.push(pongFrame(i, i * 17, i * 19, i * 23));
      parts.push(encode(msg));
    });
    const parsed = new Parser().feed(concat(parts));
    assert.deepEqual(parsed, messages);
  },
);

pureTest(
  "the splitter gives the same MIDI, times and frames however the reads are cut",
  () => {
    const next = random(5);
    const messages = Array.from({ length: 300 }, () => randomMessage(next));
    const parts: Uint8Array[] = [];
    const expected: { bytes: number[]; time: number }[] = [];
    const frames: TimedEvent[] = [];
    let time = -1;
    messages.forEach((msg, i) => {
      if (i % 4 === 1) {
        time = (i * 7_654_321) % WRAP;
        parts.push(timeFrame(time));
      }
      if (i % 9 === 0) {
        parts.push(pingFrame(i % 16384));
        frames.push({ type: "ping", id: i % 16384 });
      }
      if (i % 13 === 0) {
        const pong = {
          type: "pong",
          id: i,
          received: WRAP - 1 - i,
          sent: i * 3,
          count: i * 5,
        } as const;
        parts.push(pongFrame(pong.id, pong.received, pong.sent, pong.count));
        frames.push(pong);
      }
      parts.push(encode(msg));
      const bytes = [...encode(msg)];
      const last = expected.at(-1);
      if (last !== undefined && last.time === time) last.bytes.push(...bytes);
      else expected.push({ bytes, time });
    });
    const stream = concat(parts);
    const whole = split(stream, []);
    assert.deepEqual(whole.midi, expected);
    assert.deepEqual(whole.events, frames);
    for (let round = 0; round < 50; round++) {
      const cuts = Array.from(
        { length: 1 + Math.floor(next() * 40) },
        () => Math.floor(next() * stream.length),
      ).sort((a, b) => a - b);
      const pieces = split(stream, cuts);
      assert.deepEqual(pieces.midi, expected, `cuts ${cuts}`);
      assert.deepEqual(pieces.events, frames);
    }
    // One byte at a time.
    const bytewise = split(
      stream,
      Array.from({ length: stream.length }, (_, i) => i),
    );
    assert.deepEqual(bytewise.midi, expected);
  },
);

pureTest(
  "a frame cut short by a status byte is dropped and the byte read as MIDI",
  () => {
    const note = encode(message("note_on", { note: 60 }));
    const stream = concat([
      new Uint8Array([0xf4, 1, 2]), // a time frame cut short
      note,
      new Uint8Array([0xf5, 0x7f]), // an unknown control frame
      note,
      new Uint8Array([0xf5, 0x02, 0, 1, 5]), // a pong cut short
      note,
    ]);
    const { midi, events } = split(stream, [2, 5]);
    assert.deepEqual(events, []);
    assert.deepEqual(midi, [{ bytes: [...note, ...note, ...note], time: -1 }]);
  },
);

pureTest("35-bit fields unwrap to the value nearest the reference", () => {
  assert.equal(unwrap(10, 5), 10);
  assert.equal(unwrap(WRAP - 10, 5), -10);
  assert.equal(unwrap(10, WRAP - 5), WRAP + 10);
  assert.equal(unwrap(123, 3 * WRAP + 100), 3 * WRAP + 123);
  const frame = timeFrame(-1);
  const splitter = new TimedSplitter();
  splitter.feed(frame, () => {}, () => {});
  assert.equal(splitter.time, WRAP - 1);
});
