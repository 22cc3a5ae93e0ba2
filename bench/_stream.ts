// The benchmark workload shared by bench/codec_bench.ts and
// bench/codec_compare.ts: a deterministic, realistic mixed MIDI stream.
//
// What a live performance plus a sequencer puts on a wire: mostly notes,
// controllers and pitch bend on a few channels (drums on channel 9), timing
// clock between messages, a little aftertouch, program changes, MTC quarter
// frames and song position, and a handful of sysex of real-world sizes (GM
// and GS resets, an identity reply, a Roland DT1 parameter set, a DX7 voice
// dump, a 1 KiB bulk dump). Every message is sent whole with its status byte,
// as mido sends, and never inside another one.

import { encodedLength, encodeInto, type Message, message } from "../mod.ts";

/** The default stream length, in messages. */
export const STREAM_MESSAGES = 10_000;

/** A small, fast, seeded PRNG (mulberry32), so every run sees one stream. */
export function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function sysexOf(length: number, seed: number): Message {
  const next = random(seed);
  const data = new Array<number>(length);
  for (let i = 0; i < length; i++) data[i] = Math.floor(next() * 128);
  return message("sysex", { data });
}

/** Sysex of sizes seen in the wild, in data bytes (without F0/F7). */
const SYSEX: readonly Message[] = [
  message("sysex", { data: [0x7e, 0x7f, 0x09, 0x01] }), // GM System On
  message("sysex", {
    data: [0x41, 0x10, 0x42, 0x12, 0x40, 0x00, 0x7f, 0x00, 0x41], // GS reset
  }),
  message("sysex", {
    data: [0x7e, 0x00, 0x06, 0x02, 0x41, 0x42, 0x00, 0x15, 0x00, 0, 1, 0, 0],
  }), // identity reply
  sysexOf(12, 1), // Roland DT1 parameter set
  sysexOf(161, 2), // Yamaha DX7 single voice dump
  sysexOf(1024, 3), // a bulk dump
];

/**
 * Makes the stream's messages: `count` of them, the same every time for the
 * same seed. Ten sysex are spread evenly through it.
 */
export function makeMessages(
  count: number = STREAM_MESSAGES,
  seed = 2024,
): Message[] {
  const next = random(seed);
  const int = (n: number) => Math.floor(next() * n);
  const channel = () => (next() < 0.15 ? 9 : int(4));
  const sysexEvery = Math.max(1, Math.floor(count / 10));
  const out: Message[] = [];
  for (let i = 0; i < count; i++) {
    if (i % sysexEvery === sysexEvery - 1) {
      out.push(SYSEX[(i / sysexEvery | 0) % SYSEX.length]);
      continue;
    }
    const r = next();
    const ch = channel();
    if (r < 0.28) {
      out.push(message("note_on", {
        channel: ch,
        note: 36 + int(60),
        velocity: 1 + int(127),
      }));
    } else if (r < 0.36) {
      // Keyboards release notes with velocity 0 more often than note_off.
      out.push(
        message("note_on", { channel: ch, note: 36 + int(60), velocity: 0 }),
      );
    } else if (r < 0.46) {
      out.push(message("note_off", {
        channel: ch,
        note: 36 + int(60),
        velocity: int(128),
      }));
    } else if (r < 0.66) {
      out.push(message("control_change", {
        channel: ch,
        control: [1, 7, 10, 11, 64, 74][int(6)],
        value: int(128),
      }));
    } else if (r < 0.76) {
      out.push(
        message("pitchwheel", { channel: ch, pitch: int(16384) - 8192 }),
      );
    } else if (r < 0.80) {
      out.push(message("aftertouch", { channel: ch, value: int(128) }));
    } else if (r < 0.82) {
      out.push(message("polytouch", {
        channel: ch,
        note: 36 + int(60),
        value: int(128),
      }));
    } else if (r < 0.83) {
      out.push(message("program_change", { channel: ch, program: int(128) }));
    } else if (r < 0.84) {
      out.push(message("quarter_frame", {
        frame_type: int(8),
        frame_value: int(16),
      }));
    } else if (r < 0.843) {
      out.push(message("songpos", { pos: int(16384) }));
    } else if (r < 0.845) {
      out.push(message("song_select", { song: int(128) }));
    } else if (r < 0.985) {
      out.push(message("clock"));
    } else if (r < 0.995) {
      out.push(message("active_sensing"));
    } else {
      out.push(message(["start", "stop", "continue"][int(3)] as "start"));
    }
  }
  return out;
}

/**
 * Makes a stream where running status pays, as a controller's output does:
 * runs of 2-16 messages of one type and channel (chords, controller sweeps,
 * pitch bends), with timing clock between them (realtime bytes keep running
 * status). Used to measure parsing with running status.
 */
export function makeBurstyMessages(
  count: number = STREAM_MESSAGES,
  seed = 7,
): Message[] {
  const next = random(seed);
  const int = (n: number) => Math.floor(next() * n);
  const out: Message[] = [];
  while (out.length < count) {
    const channel = int(4);
    const kind = int(3);
    const run = Math.min(2 + int(15), count - out.length);
    for (let i = 0; i < run; i++) {
      if (kind === 0) {
        out.push(message("note_on", {
          channel,
          note: 36 + int(60),
          velocity: int(128),
        }));
      } else if (kind === 1) {
        out.push(message("control_change", {
          channel,
          control: 74,
          value: int(128),
        }));
      } else {
        out.push(message("pitchwheel", { channel, pitch: int(16384) - 8192 }));
      }
    }
    if (out.length < count && next() < 0.5) out.push(message("clock"));
  }
  return out;
}

/** Encodes messages the way mido sends them: each whole, no running status. */
export function encodeStream(messages: readonly Message[]): Uint8Array {
  let size = 0;
  for (const msg of messages) size += encodedLength(msg);
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const msg of messages) offset = encodeInto(msg, bytes, offset);
  return bytes;
}

/**
 * Encodes messages with running status, as a hardware controller does: a
 * channel message's status byte is left out when it repeats the last one;
 * system common messages cancel running status, realtime ones do not.
 */
export function encodeRunningStatus(messages: readonly Message[]): Uint8Array {
  const full = encodeStream(messages);
  const out = new Uint8Array(full.length);
  let running = 0;
  let o = 0;
  let i = 0;
  for (const msg of messages) {
    const length = encodedLength(msg);
    const status = full[i];
    if (status < 0xf0 && status === running) {
      out.set(full.subarray(i + 1, i + length), o);
      o += length - 1;
    } else {
      out.set(full.subarray(i, i + length), o);
      o += length;
      if (status < 0xf0) running = status;
      else if (status < 0xf8) running = 0;
    }
    i += length;
  }
  return out.slice(0, o);
}

/** Counts messages by type, for the header of a report. */
export function describeStream(messages: readonly Message[]): string {
  const counts = new Map<string, number>();
  for (const msg of messages) {
    counts.set(msg.type, (counts.get(msg.type) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1])
    .map(([type, n]) => `${type} ${n}`).join(", ");
}
