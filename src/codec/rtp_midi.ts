/**
 * RTP-MIDI packets (RFC 6295): the RTP header, the MIDI command section
 * (B, J, Z and P flags, a 4 or 12-bit length, delta times of 1 to 4 bytes,
 * running status within the packet, realtime bytes anywhere, sysex split
 * into segments) and the recovery journal that follows it.
 *
 * Pure: no I/O. Decoding never throws anything but
 * {@linkcode RtpMidiDecodeError}.
 *
 * @module
 */

import { encodedLength, encodeInto } from "./encode.ts";
import { channelStatusOf } from "./_spec.ts";
import { checkMessage, type Message, type Sysex } from "./messages.ts";
import { SPEC_BY_STATUS } from "./_spec.ts";
import { RtpMidiDecodeError } from "./rtp_error.ts";
import {
  decodeJournal,
  encodeJournalInto,
  journalLength,
  type RecoveryJournal,
} from "./rtp_journal.ts";

/** The RTP payload type AppleMIDI peers use for RTP-MIDI: 97. */
export const RTP_MIDI_PAYLOAD_TYPE = 97;

/** RTP-MIDI's media clock: 10 kHz, ticks of 100 microseconds. */
export const RTP_MIDI_CLOCK_RATE = 10000;

/** The largest delta time a command can carry: 2^28 - 1 ticks. */
export const MAX_DELTA_TIME = 0x0fffffff;

/**
 * One piece of a sysex split across commands or packets (RFC 6295 section
 * 3.2): the first ends with F0, middle ones start with F7 and end with F0,
 * the last starts with F7 and ends with F7; a `cancel` segment (ending with
 * F4) abandons the sysex.
 */
export interface SysexSegment {
  /** Always `"sysex_segment"`. */
  readonly type: "sysex_segment";
  /** Which piece. */
  readonly position: "first" | "middle" | "last" | "cancel";
  /** Data bytes of this piece, 0-127 each, without F0/F7/F4. */
  readonly data: Uint8Array;
}

/** A command of the MIDI list and its delta time. */
export interface RtpMidiCommand {
  /** Ticks (1/10000 s) after the previous command (or the packet time). */
  readonly delta: number;
  /** A whole message or a sysex segment. */
  readonly message: Message | SysexSegment;
}

/** An RTP-MIDI packet. */
export interface RtpMidiPacket {
  /** RTP sequence number, 16 bits. */
  readonly sequence: number;
  /** RTP timestamp, 32 bits, in 10 kHz ticks. */
  readonly timestamp: number;
  /** The sender's synchronisation source, 32 bits. */
  readonly ssrc: number;
  /**
   * The RTP marker bit. When encoding, left out: set when the MIDI list is
   * not empty, as RFC 6295 asks.
   */
  readonly marker?: boolean;
  /** RTP payload type. @default {97} */
  readonly payloadType?: number;
  /**
   * The P flag: the first command's status byte was not in the sender's
   * stream (it used running status there).
   * @default {false}
   */
  readonly phantom?: boolean;
  /** The MIDI list. */
  readonly commands: readonly RtpMidiCommand[];
  /** The recovery journal, when the J flag is set. */
  readonly journal?: RecoveryJournal;
  /**
   * When decoding: why the journal (J flag set) could not be read; the
   * commands are still good.
   */
  readonly journalError?: RtpMidiDecodeError;
  /**
   * When decoding with `journal: false`: the journal's bytes (a view into
   * the packet), when the J flag is set.
   */
  readonly journalBytes?: Uint8Array;
}

/** Options for {@linkcode encodeRtpMidi}. */
export interface RtpMidiEncodeOptions {
  /**
   * Leave out the status byte of a channel message that has the same
   * status as the command just before it in the list.
   * @default {true}
   */
  runningStatus?: boolean;
  /**
   * Check each message first (`checkMessage`). Turn it off only for
   * messages checked already.
   * @default {true}
   */
  check?: boolean;
  /**
   * A journal encoded already (by `encodeJournal`), used instead of
   * `packet.journal`: for senders that write journals themselves.
   * @default {undefined}
   */
  journalBytes?: Uint8Array;
}

/** Options for {@linkcode decodeRtpMidi}. */
export interface RtpMidiDecodeOptions {
  /**
   * Decode the journal. When `false`, the packet carries the journal's
   * bytes as `journalBytes` instead, for a receiver that reads it only
   * after a loss.
   * @default {true}
   */
  journal?: boolean;
}

const TWO_32 = 2 ** 32;
const scratch = new Uint8Array(3);

function checkField(name: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(
      `RTP ${name} must be an integer in 0..${max}: got ${String(value)}`,
    );
  }
}

function deltaLength(delta: number): number {
  return delta < 0x80 ? 1 : delta < 0x4000 ? 2 : delta < 0x200000 ? 3 : 4;
}

function checkDelta(delta: unknown): number {
  if (
    typeof delta !== "number" || !Number.isInteger(delta) || delta < 0 ||
    delta > MAX_DELTA_TIME
  ) {
    throw new RangeError(
      `Delta time must be an integer in 0..${MAX_DELTA_TIME}: got ${
        String(delta)
      }`,
    );
  }
  return delta;
}

function segmentBytes(segment: SysexSegment): [number, number] {
  switch (segment.position) {
    case "first":
      return [0xf0, 0xf0];
    case "middle":
      return [0xf7, 0xf0];
    case "last":
      return [0xf7, 0xf7];
    case "cancel":
      return [0xf7, 0xf4];
    default:
      throw new TypeError(
        `Sysex segment position must be first, middle, last or cancel: got ${
          JSON.stringify((segment as SysexSegment).position)
        }`,
      );
  }
}

function checkSegment(segment: SysexSegment): void {
  segmentBytes(segment);
  if (!(segment.data instanceof Uint8Array)) {
    throw new TypeError("Sysex segment data must be a Uint8Array");
  }
  for (const byte of segment.data) {
    if (byte > 127) {
      throw new RangeError(
        `Sysex segment data bytes must be 0..127: got ${byte}`,
      );
    }
  }
}

function isSegment(value: Message | SysexSegment): value is SysexSegment {
  return value.type === "sysex_segment";
}

/** Bytes a command takes without its delta time, given running status. */
function commandLength(
  message: Message | SysexSegment,
  running: boolean,
): number {
  if (isSegment(message)) return message.data.length + 2;
  return encodedLength(message) - (running ? 1 : 0);
}

function statusOf(message: Message | SysexSegment): number {
  if (isSegment(message)) return 0xf0;
  // Any other system message cancels running status.
  return channelStatusOf(message) || (message.type === "sysex" ? 0xf0 : 0xf1);
}

/**
 * The bytes of the MIDI list of these commands (without the section
 * header), with running status as `encodeRtpMidi` applies it.
 *
 * @param commands The commands.
 * @param runningStatus Whether to use running status.
 * @returns The length in bytes.
 */
export function commandListLength(
  commands: readonly RtpMidiCommand[],
  runningStatus = true,
): number {
  let size = 0;
  let previous = 0;
  for (let i = 0; i < commands.length; i++) {
    const { delta, message } = commands[i];
    if (i > 0 || delta !== 0) size += deltaLength(delta);
    const status = statusOf(message);
    size += commandLength(
      message,
      runningStatus && status < 0xf0 && status === previous,
    );
    previous = status;
  }
  return size;
}

/**
 * Encodes an RTP-MIDI packet: 12-byte RTP header, command section, then the
 * journal if there is one. The first command gets a delta time only when
 * it is not 0 (the Z flag); every later command has one.
 *
 * @param packet The packet.
 * @param options Running status, checking.
 * @returns Its bytes.
 * @throws {TypeError} For a malformed message or segment.
 * @throws {RangeError} For a field out of range, a MIDI list longer than
 * 4095 bytes, or a journal that cannot be coded.
 *
 * @example A packet with two notes, the second in running status
 * ```ts
 * import assert from "node:assert/strict";
 * import { message } from "@x/midisock";
 * import { decodeRtpMidi, encodeRtpMidi } from "@x/midisock/rtp";
 *
 * const bytes = encodeRtpMidi({
 *   sequence: 1, timestamp: 0, ssrc: 42,
 *   commands: [
 *     { delta: 0, message: message("note_on", { note: 60 }) },
 *     { delta: 0, message: message("note_on", { note: 64 }) },
 *   ],
 * });
 * assert.deepEqual([...bytes.subarray(12)], [0x06, 0x90, 60, 64, 0, 64, 64]);
 * assert.equal(decodeRtpMidi(bytes).commands.length, 2);
 * ```
 */
export function encodeRtpMidi(
  packet: RtpMidiPacket,
  options: RtpMidiEncodeOptions = {},
): Uint8Array {
  const runningStatus = options.runningStatus ?? true;
  const check = options.check ?? true;
  checkField("sequence", packet.sequence, 0xffff);
  checkField("timestamp", packet.timestamp, TWO_32 - 1);
  checkField("ssrc", packet.ssrc, TWO_32 - 1);
  const payloadType = packet.payloadType ?? RTP_MIDI_PAYLOAD_TYPE;
  checkField("payloadType", payloadType, 127);
  const commands = packet.commands;
  if (check) {
    for (const { delta, message } of commands) {
      checkDelta(delta);
      if (message?.type === "sysex_segment") checkSegment(message);
      else checkMessage(message);
    }
  }
  const listLength = commandListLength(commands, runningStatus);
  if (listLength > 0x0fff) {
    throw new RangeError(
      `MIDI list must be at most 4095 bytes: got ${listLength}`,
    );
  }
  const long = listLength > 15;
  const journalBytes = options.journalBytes;
  const journal = journalBytes === undefined ? packet.journal : undefined;
  const hasJournal = journalBytes !== undefined || journal !== undefined;
  const size = 12 + (long ? 2 : 1) + listLength +
    (journalBytes?.length ?? (journal ? journalLength(journal) : 0));
  const bytes = new Uint8Array(size);
  const marker = packet.marker ?? listLength > 0;
  const { sequence, timestamp, ssrc } = packet;
  bytes[0] = 0x80;
  bytes[1] = (marker ? 0x80 : 0) | payloadType;
  bytes[2] = sequence >> 8;
  bytes[3] = sequence & 0xff;
  bytes[4] = timestamp >>> 24;
  bytes[5] = (timestamp >> 16) & 0xff;
  bytes[6] = (timestamp >> 8) & 0xff;
  bytes[7] = timestamp & 0xff;
  bytes[8] = ssrc >>> 24;
  bytes[9] = (ssrc >> 16) & 0xff;
  bytes[10] = (ssrc >> 8) & 0xff;
  bytes[11] = ssrc & 0xff;
  const flags = (hasJournal ? 0x40 : 0) |
    (commands.length > 0 && commands[0].delta !== 0 ? 0x20 : 0) |
    (packet.phantom ? 0x10 : 0);
  let at = 12;
  if (long) {
    bytes[at++] = 0x80 | flags | (listLength >> 8);
    bytes[at++] = listLength & 0xff;
  } else {
    bytes[at++] = flags | listLength;
  }
  let previous = 0;
  for (let i = 0; i < commands.length; i++) {
    const { delta, message } = commands[i];
    if (i > 0 || delta !== 0) {
      for (let shift = 7 * (deltaLength(delta) - 1); shift > 0; shift -= 7) {
        bytes[at++] = 0x80 | ((delta >> shift) & 0x7f);
      }
      bytes[at++] = delta & 0x7f;
    }
    const status = statusOf(message);
    if (isSegment(message)) {
      const [first, last] = segmentBytes(message);
      bytes[at++] = first;
      bytes.set(message.data, at);
      at += message.data.length;
      bytes[at++] = last;
    } else if (runningStatus && status < 0xf0 && status === previous) {
      // Channel messages are at most 3 bytes: write them aside, keep the data.
      const end = encodeInto(message, scratch, 0);
      bytes.set(scratch.subarray(1, end), at);
      at += end - 1;
    } else {
      at = encodeInto(message, bytes, at);
    }
    previous = status;
  }
  if (journalBytes) bytes.set(journalBytes, at);
  else if (journal) at = encodeJournalInto(journal, bytes, at);
  return bytes;
}

/**
 * Splits a sysex into segments whose data are at most `size` bytes, as a
 * sender does when a sysex does not fit one packet. A sysex that fits is
 * one segment list of `first` and `last` (or use it whole instead).
 *
 * @param msg The sysex.
 * @param size The most data bytes a segment carries, at least 1.
 * @returns The segments: `first`, any `middle`, `last`.
 * @throws {RangeError} If size is not a positive integer.
 *
 * @example Three segments
 * ```ts
 * import assert from "node:assert/strict";
 * import { message } from "@x/midisock";
 * import { splitSysex } from "@x/midisock/rtp";
 *
 * const parts = splitSysex(message("sysex", { data: [1, 2, 3, 4, 5] }), 2);
 * assert.deepEqual(parts.map((p) => p.position), ["first", "middle", "last"]);
 * ```
 */
export function splitSysex(msg: Sysex, size: number): SysexSegment[] {
  if (!Number.isSafeInteger(size) || size < 1) {
    throw new RangeError(
      `Segment size must be a positive integer: got ${String(size)}`,
    );
  }
  const data = msg.data;
  const segment = (
    position: SysexSegment["position"],
    from: number,
    to: number,
  ): SysexSegment => ({
    type: "sysex_segment",
    position,
    data: data.slice(from, to),
  });
  const out = [segment("first", 0, size)];
  let at = size;
  for (; data.length - at > size; at += size) {
    out.push(segment("middle", at, at + size));
  }
  out.push(segment("last", at, data.length));
  return out;
}

function fail(message: string, offset: number): never {
  throw new RtpMidiDecodeError(message, offset);
}

function realtime(byte: number): Message | undefined {
  const spec = SPEC_BY_STATUS[byte - 0x80];
  return spec?.make(byte, 0, 0);
}

/**
 * Decodes the MIDI list in `bytes[start..end)` into `out`.
 * Realtime bytes found inside a command or a sysex are given as commands
 * of their own, with delta 0, before the command they were in.
 */
function decodeList(
  bytes: Uint8Array,
  start: number,
  end: number,
  z: boolean,
  out: RtpMidiCommand[],
): void {
  let at = start;
  let running = 0;
  let first = true;
  while (at < end) {
    let delta = 0;
    if (!first || z) {
      let octets = 0;
      for (;;) {
        if (at >= end) fail("Delta time cut short", at);
        const byte = bytes[at++];
        delta = (delta << 7) | (byte & 0x7f);
        if ((byte & 0x80) === 0) break;
        if (++octets === 4) fail("Delta time longer than 4 bytes", at - 1);
      }
      if (at >= end) fail("Delta time without a command", at);
    }
    first = false;
    const status = bytes[at];
    if (status >= 0xf8) {
      const msg = realtime(status);
      if (msg) out.push({ delta, message: msg });
      at++;
      continue;
    }
    if (status === 0xf0 || status === 0xf7) {
      running = 0;
      at = decodeSysex(bytes, at, end, delta, out);
      continue;
    }
    let command = status;
    if (status < 0x80) {
      if (running === 0) fail("Data byte with no running status", at);
      command = running;
    } else {
      at++;
      running = status < 0xf0 ? status : 0;
    }
    if (command === 0xf4 || command === 0xf5) {
      // Undefined system common: its data bytes, if any, go with it.
      while (at < end && bytes[at] < 0x80) at++;
      continue;
    }
    const spec = SPEC_BY_STATUS[command - 0x80]!;
    const need = spec.size - 1;
    let d1 = 0;
    let d2 = 0;
    for (let i = 0; i < need; i++) {
      let byte: number;
      for (;;) {
        if (at >= end) fail(`${spec.type} cut short`, at);
        byte = bytes[at++];
        if (byte < 0xf8) break;
        const msg = realtime(byte);
        if (msg) out.push({ delta: 0, message: msg });
      }
      if (byte >= 0x80) fail(`Status byte inside ${spec.type}`, at - 1);
      if (i === 0) d1 = byte;
      else d2 = byte;
    }
    out.push({ delta, message: spec.make(command, d1, d2) });
  }
}

function decodeSysex(
  bytes: Uint8Array,
  start: number,
  end: number,
  delta: number,
  out: RtpMidiCommand[],
): number {
  const opener = bytes[start];
  let at = start + 1;
  const data: number[] = [];
  let closer = 0;
  while (at < end) {
    const byte = bytes[at++];
    if (byte < 0x80) {
      data.push(byte);
    } else if (byte >= 0xf8) {
      const msg = realtime(byte);
      if (msg) out.push({ delta: 0, message: msg });
    } else if (byte === 0xf0 || byte === 0xf7 || byte === 0xf4) {
      closer = byte;
      break;
    } else {
      fail(`Status byte 0x${byte.toString(16)} inside a sysex`, at - 1);
    }
  }
  if (closer === 0) fail("Sysex not terminated in the MIDI list", at);
  const payload = Uint8Array.from(data);
  let message: Message | SysexSegment;
  if (closer === 0xf4) {
    message = { type: "sysex_segment", position: "cancel", data: payload };
  } else if (opener === 0xf0 && closer === 0xf7) {
    message = { type: "sysex", data: payload, time: 0 };
  } else {
    message = {
      type: "sysex_segment",
      position: opener === 0xf0 ? "first" : closer === 0xf0 ? "middle" : "last",
      data: payload,
    };
  }
  out.push({ delta, message });
  return at;
}

/**
 * Decodes an RTP-MIDI packet. A journal that cannot be read does not make
 * the packet fail: the commands come back with `journalError` set.
 *
 * @param bytes One datagram.
 * @param options Whether to decode the journal.
 * @returns The packet; its messages have `time` 0.
 * @throws {RtpMidiDecodeError} For a packet too short, not RTP version 2,
 * whose lengths point past its end, or whose MIDI list holds a command
 * cut short, a data byte with no status, or a sysex with no end.
 *
 * @example A note from the wire
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeRtpMidi } from "@x/midisock/rtp";
 *
 * const packet = decodeRtpMidi(new Uint8Array([
 *   0x80, 0xe1, 0, 7, 0, 0, 0, 0, 0, 0, 0, 42, // RTP header, sequence 7
 *   0x03, 0x90, 60, 100, // command section: note on
 * ]));
 * assert.equal(packet.sequence, 7);
 * assert.deepEqual(packet.commands[0].message, {
 *   type: "note_on", channel: 0, note: 60, velocity: 100, time: 0,
 * });
 * ```
 */
export function decodeRtpMidi(
  bytes: Uint8Array,
  options: RtpMidiDecodeOptions = {},
): RtpMidiPacket {
  let end = bytes.length;
  if (end < 13) fail(`RTP-MIDI packet too short: ${end} bytes`, end);
  const b0 = bytes[0];
  if (b0 >> 6 !== 2) fail(`RTP version ${b0 >> 6} is not 2`, 0);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (b0 & 0x20) {
    const padding = bytes[end - 1];
    if (padding === 0 || padding > end - 12) {
      fail(`RTP padding of ${padding} bytes does not fit`, end - 1);
    }
    end -= padding;
  }
  let at = 12 + 4 * (b0 & 0x0f);
  if (b0 & 0x10) {
    if (end - at < 4) fail("RTP header extension cut short", at);
    at += 4 + 4 * view.getUint16(at + 2);
  }
  if (at >= end) fail("RTP-MIDI packet without a command section", at);
  const flags = bytes[at];
  let length = flags & 0x0f;
  if (flags & 0x80) {
    if (at + 1 >= end) fail("Command section header cut short", at);
    length = (length << 8) | bytes[at + 1];
    at += 2;
  } else {
    at += 1;
  }
  const listEnd = at + length;
  if (listEnd > end) {
    fail(`MIDI list of ${length} bytes does not fit the packet`, at);
  }
  const commands: RtpMidiCommand[] = [];
  decodeList(bytes, at, listEnd, (flags & 0x20) !== 0, commands);
  let journal: RecoveryJournal | undefined;
  let journalError: RtpMidiDecodeError | undefined;
  let journalBytes: Uint8Array | undefined;
  if ((flags & 0x40) && options.journal === false) {
    journalBytes = bytes.subarray(listEnd, end);
  } else if (flags & 0x40) {
    try {
      journal = decodeJournal(bytes, listEnd, end);
    } catch (error) {
      if (!(error instanceof RtpMidiDecodeError)) throw error;
      journalError = error;
    }
  }
  return {
    sequence: view.getUint16(2),
    timestamp: view.getUint32(4),
    ssrc: view.getUint32(8),
    marker: (bytes[1] & 0x80) !== 0,
    payloadType: bytes[1] & 0x7f,
    phantom: (flags & 0x10) !== 0,
    commands,
    ...(journal && { journal }),
    ...(journalError && { journalError }),
    ...(journalBytes && { journalBytes }),
  };
}
