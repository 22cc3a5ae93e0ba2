/**
 * The frames NATS links exchange: a pure codec, no I/O, so it can be fuzzed.
 *
 * Every integer is big-endian. A frame starts with a 16-byte header:
 *
 * | offset | size | field |
 * | --- | --- | --- |
 * | 0 | 2 | magic `4D 53` ("MS") |
 * | 2 | 1 | version: 1 |
 * | 3 | 1 | kind: 1 MIDI, 2 beat, 3 bye |
 * | 4 | 8 | instance: random for each link, new when a hub restarts |
 * | 12 | 4 | sequence: a MIDI frame's number (from 0, wrapping at 2^32); in beat and bye frames, the number of the next MIDI frame |
 *
 * then, by kind:
 * - MIDI: 2 bytes, the count of messages (1-65535), then the messages, each
 *   whole with its own status byte (no running status), as the codec's
 *   `encodeInto` writes them;
 * - beat: 2 bytes, the heartbeat interval in ms; 1 byte, the length of the
 *   hub's name; the name in UTF-8; then extensions, which a reader skips
 *   when it does not know them. Version 1 writes one: 1 byte, the highest
 *   MIDI frame version the hub reads (1). A beat without it means 1.
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
 * does not match the bytes, a message cut or with a stray byte) is refused
 * whole.
 *
 * @module
 */

import { encodedLength, encodeInto } from "../codec/encode.ts";
import type { Message } from "../codec/messages.ts";
import { Parser } from "../codec/parser.ts";

/** The version this codec writes and reads. */
export const FRAME_VERSION = 1;
/** Bytes before a frame's body. */
export const HEADER_SIZE = 16;
/** Bytes before the MIDI bytes of a MIDI frame. */
export const MIDI_HEADER_SIZE = HEADER_SIZE + 2;
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

/** A MIDI frame, as read. */
export interface MidiFrame extends FrameHeader {
  kind: typeof KIND_MIDI;
  /** The messages, in order. */
  messages: Message[];
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
 * Writes a frame's header.
 *
 * @param target The frame's buffer.
 * @param kind The kind.
 * @param instance The sender's instance id.
 * @param seq The sequence field.
 */
export function writeHeader(
  target: Uint8Array,
  kind: number,
  instance: Uint8Array,
  seq: number,
): void {
  target[0] = MAGIC_0;
  target[1] = MAGIC_1;
  target[2] = FRAME_VERSION;
  target[3] = kind;
  target.set(instance, 4);
  new DataView(target.buffer, target.byteOffset, target.byteLength)
    .setUint32(12, seq >>> 0);
}

/**
 * Encodes a whole MIDI frame (what a link builds piecewise in its batch).
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
 * Writes a MIDI frame's message count.
 *
 * @param frame The frame.
 * @param count The count.
 */
export function writeCount(frame: Uint8Array, count: number): void {
  frame[HEADER_SIZE] = count >> 8;
  frame[HEADER_SIZE + 1] = count & 0xff;
}

/**
 * Encodes a heartbeat.
 *
 * @param instance The sender's instance id.
 * @param seq The number of the sender's next MIDI frame.
 * @param interval The sender's heartbeat interval, ms.
 * @param name The sender's name, already cut to 255 UTF-8 bytes.
 * @param extensions What follows the name: by default, the highest MIDI
 * frame version this codec reads.
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
 * Reads frames, refusing any that is not exactly what the format says. One
 * reader keeps one parser, so reading allocates little.
 */
export class FrameReader {
  #parser = new Parser();

  /**
   * Reads one frame.
   *
   * @param bytes A NATS message's payload.
   * @returns The frame, or `undefined` when it is foreign or malformed.
   */
  read(bytes: Uint8Array): Frame | undefined {
    if (
      bytes.length < HEADER_SIZE || bytes[0] !== MAGIC_0 ||
      bytes[1] !== MAGIC_1 || bytes[2] !== FRAME_VERSION
    ) {
      return undefined;
    }
    const instance = idToHex(bytes, 4);
    const seq = ((bytes[12] << 24) | (bytes[13] << 16) | (bytes[14] << 8) |
      bytes[15]) >>> 0;
    switch (bytes[3]) {
      case KIND_MIDI:
        return this.#readMidi(bytes, instance, seq);
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
    if (count === 0 || bytes[MIDI_HEADER_SIZE] < 0x80) return undefined;
    // Each frame is parsed from a clean state: no running status or
    // unfinished message carries over from the one before.
    const parser = this.#parser;
    parser.reset();
    const dropped = parser.dropped;
    const messages = parser.feed(bytes.subarray(MIDI_HEADER_SIZE));
    // Whole messages only: nothing left unfinished or dropped, the count as
    // announced, and every byte accounted for (which refuses stray data
    // bytes and running status, both of which a sender never writes).
    if (
      parser.pending || parser.dropped !== dropped || messages.length !== count
    ) {
      return undefined;
    }
    let length = 0;
    for (const msg of messages) length += encodedLength(msg);
    if (length !== bytes.length - MIDI_HEADER_SIZE) return undefined;
    return { kind: KIND_MIDI, instance, seq, messages };
  }
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
  // Extensions: the versions it reads, then what later versions add.
  const reads = bytes.length > nameEnd ? bytes[nameEnd] : 1;
  if (reads < 1) return undefined;
  return { kind: KIND_BEAT, instance, seq, interval, name, reads };
}

/**
 * The kind of a frame of a version this codec reads, from its header
 * alone.
 *
 * @param bytes A payload.
 * @returns The kind, or 0 when the payload has no such header.
 */
export function frameKind(bytes: Uint8Array): number {
  return bytes.length >= HEADER_SIZE && bytes[0] === MAGIC_0 &&
      bytes[1] === MAGIC_1 && bytes[2] === FRAME_VERSION
    ? bytes[3]
    : 0;
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
  if (
    bytes.length <= MIDI_HEADER_SIZE || bytes[0] !== MAGIC_0 ||
    bytes[1] !== MAGIC_1 || bytes[2] !== FRAME_VERSION ||
    bytes[3] !== KIND_MIDI
  ) {
    return 0;
  }
  return (bytes[HEADER_SIZE] << 8) | bytes[HEADER_SIZE + 1];
}
