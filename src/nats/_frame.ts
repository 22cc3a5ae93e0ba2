/**
 * The frames NATS links exchange: a pure codec, no I/O, so it can be fuzzed.
 *
 * Every integer is big-endian. A frame starts with a 16-byte header:
 *
 * | offset | size | field |
 * | --- | --- | --- |
 * | 0 | 2 | magic `4D 53` ("MS") |
 * | 2 | 1 | version: 1, or 2 for a MIDI frame with times |
 * | 3 | 1 | kind: 1 MIDI, 2 beat, 3 bye |
 * | 4 | 8 | instance: random for each link, new when a hub restarts |
 * | 12 | 4 | sequence: a MIDI frame's number (from 0, wrapping at 2^32); in beat and bye frames, the number of the next MIDI frame |
 *
 * then, by kind:
 * - MIDI, version 1: 2 bytes, the count of messages (1-65535), then the
 *   messages, each whole with its own status byte (no running status), as
 *   the codec's `encodeInto` writes them;
 * - MIDI, version 2: the count (2 bytes); the base time (8 bytes, an IEEE
 *   754 double: ms on the sending hub's clock); the number of runs (2
 *   bytes, 1 to the count); for each run, its time as a signed offset from
 *   the base in microseconds (4 bytes) and its message count (2 bytes, 1 or
 *   more; the runs' counts add up to the count); then the messages, as in
 *   version 1, the runs' in turn. A run is messages that happened at one
 *   time: a batch the hub routed;
 * - beat: 2 bytes, the heartbeat interval in ms; 1 byte, the length of the
 *   hub's name; the name in UTF-8; then extensions, which a reader skips
 *   when it does not know them: 1 byte, the highest MIDI frame version the
 *   hub reads (a beat without it means 1); then (version 2) the time: 8
 *   bytes, a double, the sender's clock as it sent the beat; 1 byte, a count
 *   of answers; each answer 24 bytes: the instance of a hub whose beat it
 *   answers (8), that beat's time (a double) and when that beat arrived
 *   here (a double, this hub's clock). A beat and its answer make an
 *   NTP-style exchange between two hubs;
 * - bye: nothing.
 *
 * Who sent a frame is not in it: it is the last token of the NATS subject
 * it came on, which NATS permissions can tie to one user.
 *
 * Versions: beats and byes are always written as version 1 (later fields go
 * in the beat's extensions), so hubs of every version see each other. A hub
 * writes MIDI frames in the highest version that every hub of the room
 * reads, as their beats say; a reader refuses a MIDI frame of a version it
 * does not know (whole, counted), never the hub that sent it.
 *
 * A frame that breaks any of this (other magic, cut short, a count that
 * does not match the bytes, a message cut or with a stray byte, a time that
 * is not a finite number, a time extension cut short) is refused whole.
 *
 * @module
 */

import { encodedLength, encodeInto } from "../codec/encode.ts";
import type { Message } from "../codec/messages.ts";
import { decodeFramed, FRAMED_SIZE } from "../codec/_framer.ts";

/** The highest MIDI frame version this codec writes and reads. */
export const FRAME_VERSION = 2;
/** The version of beats and byes, and of MIDI frames without times. */
export const PLAIN_VERSION = 1;
/** Bytes before a frame's body. */
export const HEADER_SIZE = 16;
/** Bytes before the MIDI bytes of a MIDI frame. */
export const MIDI_HEADER_SIZE = HEADER_SIZE + 2;
/** Bytes before the run table of a version 2 MIDI frame. */
export const TIMED_HEADER_SIZE = MIDI_HEADER_SIZE + 10;
/** Bytes of one entry of a version 2 frame's run table. */
export const RUN_SIZE = 6;
/** The most answers one beat carries. */
export const MAX_ANSWERS = 32;
/** Bytes of one answer in a beat. */
export const ANSWER_SIZE = 24;
/** The most messages one MIDI frame holds. */
export const MAX_FRAME_MESSAGES = 0xffff;
/** The longest hub name a beat carries, in UTF-8 bytes. */
export const MAX_NAME_BYTES = 255;
/** Bounds of the heartbeat interval a beat carries, in ms. */
export const MIN_INTERVAL = 10;
/** Upper bound of the heartbeat interval, in ms. */
export const MAX_INTERVAL = 60_000;

const MAGIC_0 = 0x4d;
const MAGIC_1 = 0x53;

/** Frame kinds. */
export const KIND_MIDI = 1;
/** A heartbeat: the hub is here. */
export const KIND_BEAT = 2;
/** A goodbye: the hub leaves for good. */
export const KIND_BYE = 3;

/** Length of a hub id in bytes. */
export const ID_SIZE = 8;

/** A frame's header, as read. */
export interface FrameHeader {
  /** The sender's instance, 16 lowercase hex digits. */
  instance: string;
  /** The sequence field. */
  seq: number;
}

/** Messages of a MIDI frame that happened at one time. */
export interface MidiRun {
  /** When, on the sender's clock (ms); undefined in a version 1 frame. */
  at: number | undefined;
  /** The messages, in order. */
  messages: Message[];
  /** Their bytes, each message whole (the reader's copy, to keep). */
  bytes: Uint8Array;
}

/** A MIDI frame, as read. */
export interface MidiFrame extends FrameHeader {
  kind: typeof KIND_MIDI;
  /** 1, or 2 with times. */
  version: number;
  /** The messages, in order. */
  messages: Message[];
  /** The same messages, by the time they happened (one run in version 1). */
  runs: MidiRun[];
}

/** One hub's answer to another's beat, carried in its own beat. */
export interface Answer {
  /** The instance of the hub whose beat is answered (16 hex digits). */
  instance: string;
  /** The time that beat carried (its sender's clock). */
  t1: number;
  /** When it arrived (the answering hub's clock). */
  t2: number;
}

/** What a beat of version 2 says of time. */
export interface BeatTime {
  /** The sender's clock as it sent the beat. */
  sent: number;
  /** Its answers to other hubs' beats. */
  answers: Answer[];
}

/** A heartbeat, as read. */
export interface BeatFrame extends FrameHeader {
  kind: typeof KIND_BEAT;
  /** The sender's heartbeat interval, ms. */
  interval: number;
  /** The sender's name. */
  name: string;
  /** The highest MIDI frame version the sender reads. */
  reads: number;
  /** Its time and answers, when it carries them. */
  time?: BeatTime;
}

/** A goodbye, as read. */
export interface ByeFrame extends FrameHeader {
  kind: typeof KIND_BYE;
}

/** Any frame. */
export type Frame = MidiFrame | BeatFrame | ByeFrame;

const HEX = Array.from(
  { length: 256 },
  (_, i) => i.toString(16).padStart(2, "0"),
);

/**
 * Makes a random hub id.
 *
 * @returns 8 random bytes.
 */
export function randomId(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(ID_SIZE));
}

/**
 * Spells an id in hex.
 *
 * @param bytes The id's bytes (or a frame, from `offset`).
 * @param offset Where the id starts.
 * @returns 16 lowercase hex digits.
 */
export function idToHex(bytes: Uint8Array, offset = 0): string {
  let out = "";
  for (let i = offset; i < offset + ID_SIZE; i++) out += HEX[bytes[i]];
  return out;
}

/**
 * Writes an id spelt in hex as bytes.
 *
 * @param hex 16 hex digits, as {@linkcode idToHex} spells them.
 * @param target Where to write.
 * @param offset Where in `target`.
 */
export function writeId(hex: string, target: Uint8Array, offset: number): void {
  for (let i = 0; i < ID_SIZE; i++) {
    target[offset + i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  }
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Writes a frame's header.
 *
 * @param target The frame's buffer.
 * @param kind The kind.
 * @param instance The sender's instance id.
 * @param seq The sequence field.
 * @param version The version (MIDI frames with times: 2).
 */
export function writeHeader(
  target: Uint8Array,
  kind: number,
  instance: Uint8Array,
  seq: number,
  version: number = PLAIN_VERSION,
): void {
  target[0] = MAGIC_0;
  target[1] = MAGIC_1;
  target[2] = version;
  target[3] = kind;
  target.set(instance, 4);
  view(target).setUint32(12, seq >>> 0);
}

/**
 * Encodes a whole MIDI frame of version 1 (no times).
 *
 * @param instance The sender's instance id.
 * @param seq The frame's number.
 * @param messages 1 to 65535 well-formed messages.
 * @returns The frame.
 */
export function encodeMidiFrame(
  instance: Uint8Array,
  seq: number,
  messages: readonly Message[],
): Uint8Array {
  let size = MIDI_HEADER_SIZE;
  for (const msg of messages) size += encodedLength(msg);
  const frame = new Uint8Array(size);
  writeHeader(frame, KIND_MIDI, instance, seq);
  writeCount(frame, messages.length);
  let offset = MIDI_HEADER_SIZE;
  for (const msg of messages) offset = encodeInto(msg, frame, offset);
  return frame;
}

/**
 * Encodes a whole MIDI frame of version 2: messages with their times.
 *
 * @param instance The sender's instance id.
 * @param seq The frame's number.
 * @param runs Messages by the time they happened (the sender's clock, ms):
 * 1 to 65535 well-formed messages in all, each run within 35 minutes of
 * the first.
 * @returns The frame.
 */
export function encodeTimedFrame(
  instance: Uint8Array,
  seq: number,
  runs: readonly { at: number; messages: readonly Message[] }[],
): Uint8Array {
  let size = 0;
  for (const run of runs) {
    for (const msg of run.messages) size += encodedLength(msg);
  }
  const builder = new FrameBuilder(
    TIMED_HEADER_SIZE + RUN_SIZE * runs.length + size,
  );
  for (const run of runs) {
    const bytes = new Uint8Array(
      run.messages.reduce((n, msg) => n + encodedLength(msg), 0),
    );
    let offset = 0;
    for (const msg of run.messages) offset = encodeInto(msg, bytes, offset);
    builder.push(bytes, 0, bytes.length, run.messages.length, run.at);
  }
  return builder.build(FRAME_VERSION, instance, seq);
}

/**
 * Writes a MIDI frame's message count.
 *
 * @param frame The frame.
 * @param count The count.
 */
export function writeCount(frame: Uint8Array, count: number): void {
  frame[HEADER_SIZE] = count >> 8;
  frame[HEADER_SIZE + 1] = count & 0xff;
}

/** The most a run's time may be from the base, in microseconds. */
const MAX_DELTA_US = 0x7fffffff;

/**
 * Builds one MIDI frame from messages as they come, each run with its time,
 * and writes it in the version asked for when it is done: a link's batch.
 */
export class FrameBuilder {
  readonly #limit: number;
  readonly #midi: Uint8Array;
  #length = 0;
  #count = 0;
  #base = 0;
  #deltas: number[] = [];
  #counts: number[] = [];

  /**
   * @param limit The most bytes a frame may take, in version 2 (version 1
   * takes less).
   */
  constructor(limit: number) {
    this.#limit = limit;
    this.#midi = new Uint8Array(Math.max(0, limit - TIMED_HEADER_SIZE));
  }

  /** Messages in the frame so far. */
  get count(): number {
    return this.#count;
  }

  /**
   * Whether `size` more bytes of `count` messages that happened at `at`
   * fit in the frame.
   */
  fits(size: number, count: number, at: number): boolean {
    if (this.#count + count > MAX_FRAME_MESSAGES) return false;
    let runs = this.#deltas.length + 1;
    if (this.#count > 0) {
      const delta = this.#delta(at);
      if (!(Math.abs(delta) <= MAX_DELTA_US)) return false;
      if (delta === this.#deltas[runs - 2]) runs--;
    }
    return TIMED_HEADER_SIZE + RUN_SIZE * runs + this.#length + size <=
      this.#limit;
  }

  #delta(at: number): number {
    return Math.round((at - this.#base) * 1000);
  }

  /**
   * Adds messages (checked to fit with `fits`): `bytes` from `start` to
   * `end`, `count` whole messages that happened at `at`.
   */
  push(
    bytes: Uint8Array,
    start: number,
    end: number,
    count: number,
    at: number,
  ): void {
    if (this.#count === 0) this.#base = at;
    const delta = this.#delta(at);
    const last = this.#deltas.length - 1;
    if (last >= 0 && this.#deltas[last] === delta) this.#counts[last] += count;
    else {
      this.#deltas.push(delta);
      this.#counts.push(count);
    }
    this.#midi.set(bytes.subarray(start, end), this.#length);
    this.#length += end - start;
    this.#count += count;
  }

  /**
   * Writes the frame (a new buffer).
   *
   * @param version 1 (no times) or 2.
   * @param instance The sender's instance id.
   * @param seq The frame's number.
   * @returns The frame.
   */
  build(version: number, instance: Uint8Array, seq: number): Uint8Array {
    const runs = this.#deltas.length;
    const start = version === PLAIN_VERSION
      ? MIDI_HEADER_SIZE
      : TIMED_HEADER_SIZE + RUN_SIZE * runs;
    const frame = new Uint8Array(start + this.#length);
    writeHeader(frame, KIND_MIDI, instance, seq, version);
    writeCount(frame, this.#count);
    if (version !== PLAIN_VERSION) {
      const data = view(frame);
      data.setFloat64(MIDI_HEADER_SIZE, this.#base);
      data.setUint16(MIDI_HEADER_SIZE + 8, runs);
      for (let i = 0; i < runs; i++) {
        data.setInt32(TIMED_HEADER_SIZE + RUN_SIZE * i, this.#deltas[i]);
        data.setUint16(TIMED_HEADER_SIZE + RUN_SIZE * i + 4, this.#counts[i]);
      }
    }
    frame.set(this.#midi.subarray(0, this.#length), start);
    return frame;
  }

  /** Empties it for the next frame. */
  clear(): void {
    this.#length = 0;
    this.#count = 0;
    this.#deltas = [];
    this.#counts = [];
  }
}

/**
 * Encodes a heartbeat.
 *
 * @param instance The sender's instance id.
 * @param seq The number of the sender's next MIDI frame.
 * @param interval The sender's heartbeat interval, ms.
 * @param name The sender's name, already cut to 255 UTF-8 bytes.
 * @param extensions What follows the name: by default, the highest MIDI
 * frame version this codec reads (and no time): see
 * {@linkcode beatExtensions}.
 * @returns The frame.
 */
export function encodeBeat(
  instance: Uint8Array,
  seq: number,
  interval: number,
  name: Uint8Array,
  extensions: Uint8Array = BEAT_EXTENSIONS,
): Uint8Array {
  const frame = new Uint8Array(
    HEADER_SIZE + 3 + name.length + extensions.length,
  );
  writeHeader(frame, KIND_BEAT, instance, seq);
  frame[HEADER_SIZE] = interval >> 8;
  frame[HEADER_SIZE + 1] = interval & 0xff;
  frame[HEADER_SIZE + 2] = name.length;
  frame.set(name, HEADER_SIZE + 3);
  frame.set(extensions, HEADER_SIZE + 3 + name.length);
  return frame;
}

const BEAT_EXTENSIONS = new Uint8Array([FRAME_VERSION]);

/**
 * A beat's extensions: the highest MIDI frame version the hub reads, then
 * its time and answers, when given.
 *
 * @param reads The version.
 * @param time The sender's clock now, and its answers (at most 255).
 * @returns The bytes.
 */
export function beatExtensions(reads: number, time?: BeatTime): Uint8Array {
  if (time === undefined) return new Uint8Array([reads]);
  const answers = time.answers;
  const out = new Uint8Array(10 + ANSWER_SIZE * answers.length);
  const data = view(out);
  out[0] = reads;
  data.setFloat64(1, time.sent);
  out[9] = answers.length;
  answers.forEach((answer, i) => {
    const at = 10 + ANSWER_SIZE * i;
    writeId(answer.instance, out, at);
    data.setFloat64(at + 8, answer.t1);
    data.setFloat64(at + 16, answer.t2);
  });
  return out;
}

/**
 * Encodes a goodbye.
 *
 * @param instance The sender's instance id.
 * @param seq The number of the MIDI frame the sender would have sent next.
 * @returns The frame.
 */
export function encodeBye(instance: Uint8Array, seq: number): Uint8Array {
  const frame = new Uint8Array(HEADER_SIZE);
  writeHeader(frame, KIND_BYE, instance, seq);
  return frame;
}

/**
 * Cuts a hub name to what a beat carries: at most 255 UTF-8 bytes, never
 * in the middle of a character.
 *
 * @param name The name.
 * @returns Its UTF-8 bytes.
 */
export function nameBytes(name: string): Uint8Array {
  const bytes = new TextEncoder().encode(name);
  if (bytes.length <= MAX_NAME_BYTES) return bytes;
  let end = MAX_NAME_BYTES;
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return bytes.slice(0, end);
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Reads frames, refusing any that is not exactly what the format says.
 */
export class FrameReader {
  /**
   * Reads one frame.
   *
   * @param bytes A NATS message's payload.
   * @returns The frame, or `undefined` when it is foreign or malformed.
   */
  read(bytes: Uint8Array): Frame | undefined {
    const kind = frameKind(bytes);
    if (kind === 0) return undefined;
    const instance = idToHex(bytes, 4);
    const seq = ((bytes[12] << 24) | (bytes[13] << 16) | (bytes[14] << 8) |
      bytes[15]) >>> 0;
    switch (kind) {
      case KIND_MIDI:
        return bytes[2] === PLAIN_VERSION
          ? this.#readMidi(bytes, instance, seq)
          : this.#readTimed(bytes, instance, seq);
      case KIND_BEAT:
        return readBeat(bytes, instance, seq);
      case KIND_BYE:
        return bytes.length === HEADER_SIZE
          ? { kind: KIND_BYE, instance, seq }
          : undefined;
      default:
        return undefined;
    }
  }

  #readMidi(
    bytes: Uint8Array,
    instance: string,
    seq: number,
  ): MidiFrame | undefined {
    if (bytes.length <= MIDI_HEADER_SIZE) return undefined;
    const count = (bytes[HEADER_SIZE] << 8) | bytes[HEADER_SIZE + 1];
    const midi = this.#midi(bytes.subarray(MIDI_HEADER_SIZE), count);
    if (midi === undefined) return undefined;
    const { messages } = midi;
    const run = { at: undefined, messages, bytes: midi.bytes };
    return {
      kind: KIND_MIDI,
      version: PLAIN_VERSION,
      instance,
      seq,
      messages,
      runs: [run],
    };
  }

  #readTimed(
    bytes: Uint8Array,
    instance: string,
    seq: number,
  ): MidiFrame | undefined {
    if (bytes.length < TIMED_HEADER_SIZE + RUN_SIZE + 1) return undefined;
    const data = view(bytes);
    const count = data.getUint16(HEADER_SIZE);
    const base = data.getFloat64(MIDI_HEADER_SIZE);
    const runCount = data.getUint16(MIDI_HEADER_SIZE + 8);
    const start = TIMED_HEADER_SIZE + RUN_SIZE * runCount;
    if (
      runCount === 0 || runCount > count || !Number.isFinite(base) ||
      bytes.length <= start
    ) {
      return undefined;
    }
    const counts: number[] = [];
    const times: number[] = [];
    let sum = 0;
    for (let i = 0; i < runCount; i++) {
      const entry = TIMED_HEADER_SIZE + RUN_SIZE * i;
      const n = data.getUint16(entry + 4);
      if (n === 0) return undefined;
      sum += n;
      counts.push(n);
      times.push(base + data.getInt32(entry) / 1000);
    }
    if (sum !== count) return undefined;
    const midi = this.#midi(bytes.subarray(start), count);
    if (midi === undefined) return undefined;
    const { messages, bytes: copy } = midi;
    const runs: MidiRun[] = [];
    let first = 0;
    let offset = 0;
    for (let i = 0; i < runCount; i++) {
      const these = messages.slice(first, first + counts[i]);
      let length = 0;
      for (const msg of these) length += encodedLength(msg);
      runs.push({
        at: times[i],
        messages: these,
        bytes: copy.subarray(offset, offset + length),
      });
      first += counts[i];
      offset += length;
    }
    return {
      kind: KIND_MIDI,
      version: FRAME_VERSION,
      instance,
      seq,
      messages,
      runs,
    };
  }

  /**
   * The messages of a frame's MIDI bytes, when they are exactly `count`
   * whole messages, each with its own status byte, and a copy of the bytes
   * (a plain `Uint8Array`, whatever the payload was: NATS gives Node
   * buffers, whose `slice` is a view), passed on as they are.
   */
  #midi(
    midi: Uint8Array,
    count: number,
  ): { messages: Message[]; bytes: Uint8Array } | undefined {
    if (count === 0 || wholeMessages(midi) !== count) return undefined;
    const bytes = new Uint8Array(midi);
    return { messages: decodeFramed(bytes, []), bytes };
  }
}

/**
 * Counts the messages of `bytes` when every byte belongs to a whole message
 * with its own status byte, as a sender writes them (no running status, no
 * stray or undefined byte, a sysex ended by F7 with only data bytes); else
 * -1.
 */
function wholeMessages(bytes: Uint8Array): number {
  const length = bytes.length;
  let count = 0;
  for (let i = 0; i < length; count++) {
    const status = bytes[i];
    if (status < 0x80) return -1;
    if (status === 0xf0) {
      let end = i + 1;
      while (end < length && bytes[end] < 0x80) end++;
      if (end === length || bytes[end] !== 0xf7) return -1;
      i = end + 1;
      continue;
    }
    const size = FRAMED_SIZE[status - 0x80];
    if (size <= 0 || i + size > length) return -1;
    for (let k = 1; k < size; k++) if (bytes[i + k] >= 0x80) return -1;
    i += size;
  }
  return count;
}

function readBeat(
  bytes: Uint8Array,
  instance: string,
  seq: number,
): BeatFrame | undefined {
  if (bytes.length < HEADER_SIZE + 3) return undefined;
  const interval = (bytes[HEADER_SIZE] << 8) | bytes[HEADER_SIZE + 1];
  const nameEnd = HEADER_SIZE + 3 + bytes[HEADER_SIZE + 2];
  if (
    interval < MIN_INTERVAL || interval > MAX_INTERVAL ||
    bytes.length < nameEnd
  ) {
    return undefined;
  }
  let name: string;
  try {
    name = utf8.decode(bytes.subarray(HEADER_SIZE + 3, nameEnd));
  } catch {
    return undefined;
  }
  // Extensions: the versions it reads, then its time (version 2), then
  // what later versions add.
  const reads = bytes.length > nameEnd ? bytes[nameEnd] : 1;
  if (reads < 1) return undefined;
  const beat: BeatFrame = {
    kind: KIND_BEAT,
    instance,
    seq,
    interval,
    name,
    reads,
  };
  const timeAt = nameEnd + 1;
  if (bytes.length <= timeAt) return beat;
  const time = readTime(bytes, timeAt);
  if (time === undefined) return undefined;
  beat.time = time;
  return beat;
}

/** A beat's time and answers, from `at`; undefined when malformed. */
function readTime(bytes: Uint8Array, at: number): BeatTime | undefined {
  if (bytes.length < at + 9) return undefined;
  const data = view(bytes);
  const sent = data.getFloat64(at);
  const count = bytes[at + 8];
  if (
    !Number.isFinite(sent) || bytes.length < at + 9 + ANSWER_SIZE * count
  ) {
    return undefined;
  }
  const answers: Answer[] = [];
  for (let i = 0; i < count; i++) {
    const entry = at + 9 + ANSWER_SIZE * i;
    const t1 = data.getFloat64(entry + 8);
    const t2 = data.getFloat64(entry + 16);
    if (!Number.isFinite(t1) || !Number.isFinite(t2)) return undefined;
    answers.push({ instance: idToHex(bytes, entry), t1, t2 });
  }
  return { sent, answers };
}

/**
 * The kind of a frame of a version this codec reads, from its header
 * alone: MIDI frames of version 1 or 2, beats and byes of version 1.
 *
 * @param bytes A payload.
 * @returns The kind, or 0 when the payload has no such header.
 */
export function frameKind(bytes: Uint8Array): number {
  if (
    bytes.length < HEADER_SIZE || bytes[0] !== MAGIC_0 || bytes[1] !== MAGIC_1
  ) {
    return 0;
  }
  const version = bytes[2];
  const kind = bytes[3];
  if (version === PLAIN_VERSION) return kind;
  return version === FRAME_VERSION && kind === KIND_MIDI ? kind : 0;
}

/**
 * The message count a MIDI frame announces, read before the frame is
 * parsed (to decide whether it is worth parsing).
 *
 * @param bytes A payload.
 * @returns The count, or 0 when the payload is no MIDI frame of a version
 * this codec reads.
 */
export function announcedCount(bytes: Uint8Array): number {
  if (bytes.length <= MIDI_HEADER_SIZE || frameKind(bytes) !== KIND_MIDI) {
    return 0;
  }
  return (bytes[HEADER_SIZE] << 8) | bytes[HEADER_SIZE + 1];
}
