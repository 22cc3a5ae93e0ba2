/**
 * The RTP-MIDI recovery journal (RFC 6295, section 5 and appendix A): the
 * part of each packet that describes what the sender sent since a
 * checkpoint, so that a receiver that lost packets can repair its state.
 *
 * This codec reads and writes channel journals with chapters P (program
 * change), C (controllers), W (pitch wheel), N (note on and off) and T
 * (channel aftertouch). Chapters M, E and A and the system journal are
 * skipped by their length fields when read, and never written.
 *
 * Every `s` field is the structure's S bit: `true` (1, the default when
 * writing) when it says nothing about the packet just before this one,
 * `false` when it does (a receiver that lost only that packet must read it).
 *
 * @module
 */

import { RtpMidiDecodeError } from "./rtp_error.ts";

/** Chapter P: the most recent program change on the channel. */
export interface ProgramChapter {
  /** S bit. @default {true} */
  readonly s?: boolean;
  /** Program number, 0-127. */
  readonly program: number;
  /** B bit: whether `bankMsb` holds the bank select MSB. @default {false} */
  readonly b?: boolean;
  /** Bank select MSB, 0-127. @default {0} */
  readonly bankMsb?: number;
  /** X bit, set when a reset came between bank select and program change. @default {false} */
  readonly x?: boolean;
  /** Bank select LSB, 0-127. @default {0} */
  readonly bankLsb?: number;
}

/** One controller in chapter C. */
export interface ControllerLog {
  /** S bit. @default {true} */
  readonly s?: boolean;
  /** Controller number, 0-127. */
  readonly control: number;
  /**
   * The A bit: `false` when `value` is the controller's value (the value
   * tool), `true` when it is the toggle or count tool's 7 bits (T bit and
   * ALT field), which this codec passes through as they are.
   * @default {false}
   */
  readonly alternate?: boolean;
  /** The value, 0-127. */
  readonly value: number;
}

/** Chapter C: the most recent value of each controller that changed. */
export interface ControllerChapter {
  /** S bit of the chapter header. @default {true} */
  readonly s?: boolean;
  /** 1 to 128 logs. */
  readonly logs: readonly ControllerLog[];
}

/** Chapter W: the most recent pitch wheel position. */
export interface PitchChapter {
  /** S bit. @default {true} */
  readonly s?: boolean;
  /** Pitch, -8192..8191, as mido has it. */
  readonly pitch: number;
}

/** One note whose most recent command was a note on (chapter N). */
export interface NoteLog {
  /** S bit. @default {true} */
  readonly s?: boolean;
  /** Note number, 0-127. */
  readonly note: number;
  /** Velocity of that note on, 1-127. */
  readonly velocity: number;
  /**
   * The Y bit: whether a receiver that missed the note on should still
   * play it (it is recent), or only take it as state.
   * @default {true}
   */
  readonly play?: boolean;
}

/** Chapter N: notes whose most recent command was a note on or a note off. */
export interface NoteChapter {
  /** The B bit: the S bit of the note-off part. @default {true} */
  readonly b?: boolean;
  /** Notes now on: at most 128. */
  readonly logs: readonly NoteLog[];
  /** Note numbers whose most recent command was a note off. */
  readonly offs: readonly number[];
  /**
   * When encoding: the first OFFBITS octet (notes `8 * low` up), to code a
   * wider range than `offs` needs (the extra octets are zero).
   * @default {the lowest octet with a note off}
   */
  readonly low?: number;
  /**
   * When encoding: the last OFFBITS octet (up to note `8 * high + 7`).
   * @default {the highest octet with a note off}
   */
  readonly high?: number;
}

/** Chapter T: the most recent channel aftertouch. */
export interface AftertouchChapter {
  /** S bit. @default {true} */
  readonly s?: boolean;
  /** Pressure, 0-127. */
  readonly pressure: number;
}

/** What the journal says about one MIDI channel. */
export interface ChannelJournal {
  /** S bit of the channel journal header. @default {true} */
  readonly s?: boolean;
  /** Channel, 0-15. */
  readonly channel: number;
  /** Chapter P. */
  readonly program?: ProgramChapter;
  /** Chapter C. */
  readonly controllers?: ControllerChapter;
  /** Chapter W. */
  readonly pitch?: PitchChapter;
  /** Chapter N. */
  readonly notes?: NoteChapter;
  /** Chapter T. */
  readonly aftertouch?: AftertouchChapter;
  /**
   * When decoding: the letters of chapters that were present but skipped
   * (M, E, A), in order, or the empty string.
   */
  readonly skipped?: string;
  /**
   * When decoding: the H bit (enhanced chapter C encoding) of this channel.
   */
  readonly enhanced?: boolean;
}

/** A recovery journal. */
export interface RecoveryJournal {
  /** S bit of the journal header. @default {true} */
  readonly s?: boolean;
  /**
   * Sequence number (16 bits) of the checkpoint packet: the journal covers
   * the commands from that packet up to the one before this.
   */
  readonly checkpoint: number;
  /** Channel journals, at most one per channel. */
  readonly channels: readonly ChannelJournal[];
  /**
   * When decoding: whether a system journal was present (it is skipped).
   */
  readonly system?: boolean;
  /** When decoding: the H bit of the journal header. */
  readonly enhanced?: boolean;
}

function bad(message: string): never {
  throw new RangeError(message);
}

function check7(name: string, value: unknown, min = 0): number {
  if (
    typeof value !== "number" || !Number.isInteger(value) || value < min ||
    value > 127
  ) {
    bad(`${name} must be an integer in ${min}..127: got ${String(value)}`);
  }
  return value as number;
}

function sBit(s: boolean | undefined): number {
  return s === false ? 0 : 0x80;
}

/** Bytes chapter N takes, and its LOW and HIGH fields. */
function noteLayout(
  chapter: NoteChapter,
): { size: number; low: number; high: number } {
  const count = chapter.logs.length;
  if (count > 128) bad(`Chapter N holds at most 128 note logs: got ${count}`);
  let low = 15;
  let high = 0;
  for (const note of chapter.offs) {
    check7("Note off number", note);
    low = Math.min(low, note >> 3);
    high = Math.max(high, note >> 3);
  }
  if (chapter.low !== undefined || chapter.high !== undefined) {
    const wantLow = chapter.low ?? low;
    const wantHigh = chapter.high ?? high;
    for (const [name, value] of [["low", wantLow], ["high", wantHigh]]) {
      if (
        !Number.isInteger(value) || (value as number) < 0 ||
        (value as number) > 15
      ) {
        bad(
          `Chapter N ${name} must be an integer in 0..15: got ${String(value)}`,
        );
      }
    }
    if (wantLow > Math.min(low, wantHigh) || wantHigh < high) {
      bad(
        `Chapter N octets ${wantLow}..${wantHigh} must cover the note offs (octets ${low}..${high})`,
      );
    }
    low = wantLow;
    high = wantHigh;
  } else if (chapter.offs.length === 0) {
    return { size: 2 + 2 * count, low: 15, high: count === 128 ? 0 : 1 };
  }
  if (count === 128) {
    bad("Chapter N with 128 note logs can code no note off");
  }
  return { size: 2 + 2 * count + (high - low + 1), low, high };
}

function channelLength(journal: ChannelJournal): number {
  let size = 3;
  if (journal.program) size += 3;
  if (journal.controllers) {
    const count = journal.controllers.logs.length;
    if (count < 1 || count > 128) {
      bad(`Chapter C holds 1 to 128 logs: got ${count}`);
    }
    size += 1 + 2 * count;
  }
  if (journal.pitch) size += 2;
  if (journal.notes) size += noteLayout(journal.notes).size;
  if (journal.aftertouch) size += 1;
  return size;
}

/**
 * The number of bytes {@linkcode encodeJournal} writes for a journal.
 *
 * @param journal The journal.
 * @returns Its length in bytes.
 * @throws {RangeError} For chapters that cannot be coded (see
 * `encodeJournal`).
 *
 * @example An empty journal is its 3-byte header
 * ```ts
 * import assert from "node:assert/strict";
 * import { journalLength } from "@x/midisock/rtp";
 *
 * assert.equal(journalLength({ checkpoint: 1, channels: [] }), 3);
 * ```
 */
export function journalLength(journal: RecoveryJournal): number {
  let size = 3;
  for (const channel of journal.channels) size += channelLength(channel);
  return size;
}

/**
 * The number of bytes one channel journal takes, its header included.
 *
 * @param journal The channel journal.
 * @returns Its length in bytes.
 * @throws {RangeError} For chapters that cannot be coded.
 */
export function channelJournalLength(journal: ChannelJournal): number {
  return channelLength(journal);
}

/**
 * Writes a journal into `target` at `offset`.
 *
 * @param journal The journal.
 * @param target Where to write; needs {@linkcode journalLength} bytes.
 * @param offset Where to start.
 * @returns The offset just past the journal.
 * @throws {RangeError} As `encodeJournal` does.
 */
export function encodeJournalInto(
  journal: RecoveryJournal,
  target: Uint8Array,
  offset: number,
): number {
  const channels = journal.channels;
  if (channels.length > 16) {
    bad(`A journal holds at most 16 channel journals: got ${channels.length}`);
  }
  const checkpoint = journal.checkpoint;
  if (!Number.isInteger(checkpoint) || checkpoint < 0 || checkpoint > 0xffff) {
    bad(`Checkpoint must be an integer in 0..65535: got ${String(checkpoint)}`);
  }
  let previous = -1;
  for (const channel of channels) {
    if (
      !Number.isInteger(channel.channel) || channel.channel < 0 ||
      channel.channel > 15
    ) {
      bad(
        `Channel must be an integer in 0..15: got ${String(channel.channel)}`,
      );
    }
    if (channel.channel <= previous) {
      bad("Channel journals must be in ascending channel order, one a channel");
    }
    previous = channel.channel;
  }
  let at = offset;
  target[at++] = sBit(journal.s) | (channels.length > 0 ? 0x20 : 0) |
    (channels.length > 0 ? channels.length - 1 : 0);
  target[at++] = checkpoint >> 8;
  target[at++] = checkpoint & 0xff;
  for (const channel of channels) at = encodeChannel(channel, target, at);
  return at;
}

function encodeChannel(
  journal: ChannelJournal,
  target: Uint8Array,
  start: number,
): number {
  const length = channelLength(journal);
  if (length > 1023) {
    bad(`A channel journal takes at most 1023 bytes: this one needs ${length}`);
  }
  const toc = (journal.program ? 0x80 : 0) |
    (journal.controllers ? 0x40 : 0) | (journal.pitch ? 0x10 : 0) |
    (journal.notes ? 0x08 : 0) | (journal.aftertouch ? 0x02 : 0);
  target[start] = sBit(journal.s) | (journal.channel << 3) | (length >> 8);
  target[start + 1] = length & 0xff;
  target[start + 2] = toc;
  let at = start + 3;
  const program = journal.program;
  if (program) {
    target[at++] = sBit(program.s) | check7("Program", program.program);
    target[at++] = (program.b ? 0x80 : 0) |
      check7("Bank MSB", program.bankMsb ?? 0);
    target[at++] = (program.x ? 0x80 : 0) |
      check7("Bank LSB", program.bankLsb ?? 0);
  }
  const controllers = journal.controllers;
  if (controllers) {
    target[at++] = sBit(controllers.s) | (controllers.logs.length - 1);
    for (const log of controllers.logs) {
      target[at++] = sBit(log.s) | check7("Controller number", log.control);
      target[at++] = (log.alternate ? 0x80 : 0) |
        check7("Controller value", log.value);
    }
  }
  const pitch = journal.pitch;
  if (pitch) {
    const value = pitch.pitch;
    if (!Number.isInteger(value) || value < -8192 || value > 8191) {
      bad(`Pitch must be an integer in -8192..8191: got ${String(value)}`);
    }
    const unsigned = value + 8192;
    target[at++] = sBit(pitch.s) | (unsigned & 0x7f);
    target[at++] = unsigned >> 7;
  }
  const notes = journal.notes;
  if (notes) {
    const { low, high } = noteLayout(notes);
    const count = notes.logs.length;
    target[at++] = (notes.b === false ? 0 : 0x80) |
      (count === 128 ? 127 : count);
    target[at++] = (low << 4) | high;
    for (const log of notes.logs) {
      target[at++] = sBit(log.s) | check7("Note number", log.note);
      target[at++] = (log.play === false ? 0 : 0x80) |
        check7("Note velocity", log.velocity, 1);
    }
    if (low <= high) {
      const bits = target.subarray(at, at + high - low + 1);
      bits.fill(0);
      for (const note of notes.offs) {
        bits[(note >> 3) - low] |= 0x80 >> (note & 7);
      }
      at += bits.length;
    }
  }
  const aftertouch = journal.aftertouch;
  if (aftertouch) {
    target[at++] = sBit(aftertouch.s) | check7("Pressure", aftertouch.pressure);
  }
  return at;
}

/**
 * Encodes a recovery journal: the 3-byte header, then the channel journals
 * in ascending channel order.
 *
 * @param journal The journal.
 * @returns Its bytes.
 * @throws {RangeError} For a field out of range, more than 16 or unordered
 * channel journals, chapter C without logs or with more than 128, chapter N
 * with more than 128 logs, note velocity 0 in a note log, or a channel
 * journal longer than 1023 bytes.
 *
 * @example A journal saying note 60 is on and note 62 off on channel 0
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeJournal, encodeJournal } from "@x/midisock/rtp";
 *
 * const bytes = encodeJournal({
 *   checkpoint: 100,
 *   channels: [{
 *     channel: 0,
 *     notes: { logs: [{ note: 60, velocity: 90 }], offs: [62] },
 *   }],
 * });
 * const journal = decodeJournal(bytes);
 * assert.deepEqual(journal.channels[0].notes?.offs, [62]);
 * ```
 */
export function encodeJournal(journal: RecoveryJournal): Uint8Array {
  const bytes = new Uint8Array(journalLength(journal));
  encodeJournalInto(journal, bytes, 0);
  return bytes;
}

function fail(message: string, offset: number): never {
  throw new RtpMidiDecodeError(message, offset);
}

/**
 * Decodes a recovery journal from `bytes[offset..end)`. Chapters M, E and A
 * and the system journal are skipped by their lengths; every length is
 * checked against the bytes there are, and each channel journal must be
 * exactly as long as its LENGTH field says.
 *
 * @param bytes The bytes holding it (a whole packet, say).
 * @param offset Where it starts.
 * @param end Where the bytes it may use end.
 * @returns The journal. Bytes after it are ignored.
 * @throws {RtpMidiDecodeError} For a journal cut short or whose lengths do
 * not add up.
 *
 * @example Reading a journal's checkpoint
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeJournal } from "@x/midisock/rtp";
 *
 * assert.equal(decodeJournal(new Uint8Array([0x80, 0x01, 0x02])).checkpoint, 258);
 * ```
 */
export function decodeJournal(
  bytes: Uint8Array,
  offset = 0,
  end: number = bytes.length,
): RecoveryJournal {
  if (end - offset < 3) fail("Journal header cut short", offset);
  const header = bytes[offset];
  const checkpoint = (bytes[offset + 1] << 8) | bytes[offset + 2];
  let at = offset + 3;
  const system = (header & 0x40) !== 0;
  if (system) {
    if (end - at < 2) fail("System journal header cut short", at);
    const length = ((bytes[at] & 0x03) << 8) | bytes[at + 1];
    if (length < 2 || at + length > end) {
      fail(`System journal length ${length} does not fit`, at);
    }
    at += length;
  }
  const channels: ChannelJournal[] = [];
  if (header & 0x20) {
    const count = (header & 0x0f) + 1;
    for (let i = 0; i < count; i++) {
      const journal = decodeChannel(bytes, at, end);
      channels.push(journal.channel);
      at = journal.end;
    }
  }
  return {
    s: (header & 0x80) !== 0,
    checkpoint,
    channels,
    system,
    enhanced: (header & 0x10) !== 0,
  };
}

function decodeChannel(
  bytes: Uint8Array,
  start: number,
  limit: number,
): { channel: ChannelJournal; end: number } {
  if (limit - start < 3) fail("Channel journal header cut short", start);
  const b0 = bytes[start];
  const length = ((b0 & 0x03) << 8) | bytes[start + 1];
  const end = start + length;
  if (length < 3 || end > limit) {
    fail(`Channel journal length ${length} does not fit`, start);
  }
  const toc = bytes[start + 2];
  let at = start + 3;
  const need = (size: number, what: string) => {
    if (end - at < size) fail(`Chapter ${what} cut short`, at);
  };
  let skipped = "";
  let program: ProgramChapter | undefined;
  let controllers: ControllerChapter | undefined;
  let pitch: PitchChapter | undefined;
  let notes: NoteChapter | undefined;
  let aftertouch: AftertouchChapter | undefined;
  if (toc & 0x80) {
    need(3, "P");
    program = {
      s: (bytes[at] & 0x80) !== 0,
      program: bytes[at] & 0x7f,
      b: (bytes[at + 1] & 0x80) !== 0,
      bankMsb: bytes[at + 1] & 0x7f,
      x: (bytes[at + 2] & 0x80) !== 0,
      bankLsb: bytes[at + 2] & 0x7f,
    };
    at += 3;
  }
  if (toc & 0x40) {
    need(1, "C");
    const count = (bytes[at] & 0x7f) + 1;
    const s = (bytes[at] & 0x80) !== 0;
    at++;
    need(2 * count, "C");
    const logs: ControllerLog[] = [];
    for (let i = 0; i < count; i++, at += 2) {
      logs.push({
        s: (bytes[at] & 0x80) !== 0,
        control: bytes[at] & 0x7f,
        alternate: (bytes[at + 1] & 0x80) !== 0,
        value: bytes[at + 1] & 0x7f,
      });
    }
    controllers = { s, logs };
  }
  if (toc & 0x20) {
    need(2, "M");
    const size = ((bytes[at] & 0x03) << 8) | bytes[at + 1];
    if (size < 2) fail(`Chapter M length ${size} is too small`, at);
    need(size, "M");
    at += size;
    skipped += "M";
  }
  if (toc & 0x10) {
    need(2, "W");
    pitch = {
      s: (bytes[at] & 0x80) !== 0,
      pitch: ((bytes[at] & 0x7f) | ((bytes[at + 1] & 0x7f) << 7)) - 8192,
    };
    at += 2;
  }
  if (toc & 0x08) {
    need(2, "N");
    const b = (bytes[at] & 0x80) !== 0;
    let count = bytes[at] & 0x7f;
    const low = bytes[at + 1] >> 4;
    const high = bytes[at + 1] & 0x0f;
    let octets = 0;
    if (low <= high) octets = high - low + 1;
    else if (low !== 15 || high > 1) {
      fail(`Chapter N LOW ${low} above HIGH ${high}`, at + 1);
    }
    if (count === 127 && low === 15 && high === 0) count = 128;
    at += 2;
    need(2 * count + octets, "N");
    const logs: NoteLog[] = [];
    for (let i = 0; i < count; i++, at += 2) {
      logs.push({
        s: (bytes[at] & 0x80) !== 0,
        note: bytes[at] & 0x7f,
        play: (bytes[at + 1] & 0x80) !== 0,
        velocity: bytes[at + 1] & 0x7f,
      });
    }
    const offs: number[] = [];
    for (let i = 0; i < octets; i++, at++) {
      const bits = bytes[at];
      for (let bit = 0; bit < 8; bit++) {
        if (bits & (0x80 >> bit)) offs.push((low + i) * 8 + bit);
      }
    }
    notes = octets > 0 ? { b, logs, offs, low, high } : { b, logs, offs };
  }
  if (toc & 0x04) {
    need(1, "E");
    const size = 1 + 2 * ((bytes[at] & 0x7f) + 1);
    need(size, "E");
    at += size;
    skipped += "E";
  }
  if (toc & 0x02) {
    need(1, "T");
    aftertouch = { s: (bytes[at] & 0x80) !== 0, pressure: bytes[at] & 0x7f };
    at++;
  }
  if (toc & 0x01) {
    need(1, "A");
    const size = 1 + 2 * ((bytes[at] & 0x7f) + 1);
    need(size, "A");
    at += size;
    skipped += "A";
  }
  if (at !== end) {
    fail(
      `Channel journal length ${length} does not match its chapters (${
        at - start
      } bytes)`,
      start,
    );
  }
  const channel: ChannelJournal = {
    s: (b0 & 0x80) !== 0,
    channel: (b0 >> 3) & 0x0f,
    enhanced: (b0 & 0x04) !== 0,
    skipped,
    ...(program && { program }),
    ...(controllers && { controllers }),
    ...(pitch && { pitch }),
    ...(notes && { notes }),
    ...(aftertouch && { aftertouch }),
  };
  return { channel, end };
}
