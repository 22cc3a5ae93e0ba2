// One direction of an RTP-MIDI stream, as pure state machines: the sender
// packs messages into packets and keeps the recovery journal (trimmed by
// receiver feedback); the receiver puts packets back in order, reassembles
// sysex, and after a gap repairs its state from the journal so that no note
// stays on. No I/O, no clock: the caller passes timestamps in.

import {
  type ControlChange,
  isRealtime,
  type Message,
  type NoteOff,
  type NoteOn,
  type Sysex,
} from "../codec/messages.ts";
import { encodedLength } from "../codec/encode.ts";
import { channelStatusOf } from "../codec/_spec.ts";
import {
  encodeRtpMidi,
  MAX_DELTA_TIME,
  type RtpMidiCommand,
  type RtpMidiPacket,
  type SysexSegment,
} from "../codec/rtp_midi.ts";
import {
  type ChannelJournal,
  decodeJournal,
  type RecoveryJournal,
} from "../codec/rtp_journal.ts";
import { RtpMidiDecodeError } from "../codec/rtp_error.ts";
import { NoteTracker } from "../notes.ts";

/** Largest datagram a sender makes, header and journal included. */
export const DEFAULT_MAX_PACKET = 1400;
/** Largest journal a sender puts in a packet before it trims its history. */
export const DEFAULT_MAX_JOURNAL = 700;
/** Note logs younger than this (10 kHz ticks) ask the receiver to play. */
export const DEFAULT_PLAY_WINDOW = 10000;
/** The smallest piece of sysex worth starting in a nearly full packet. */
const MIN_SEGMENT = 16;
/** RTP header plus the longest command section header. */
const OVERHEAD = 14;

/** Bytes of a delta time. */
function deltaLength(delta: number): number {
  return delta < 0x80 ? 1 : delta < 0x4000 ? 2 : delta < 0x200000 ? 3 : 4;
}

export interface SenderOptions {
  /** Our synchronisation source. */
  ssrc: number;
  /** The first packet's sequence number (16 bits). */
  sequence: number;
  /** Largest datagram, bytes. */
  maxPacket?: number;
  /** Largest journal, bytes. */
  maxJournal?: number;
  /** Note logs younger than this many ticks get the Y (play) bit. */
  playWindow?: number;
}

interface Entry {
  /** Note or controller number (0 for the others). */
  key: number;
  /** Extended sequence number of the packet that carried it. */
  seq: number;
  /** Velocity (0: note off), controller value, program, pitch, pressure. */
  value: number;
  /** RTP timestamp of that packet. */
  time: number;
}

/** What one channel sent since the checkpoint, oldest first. */
class History {
  readonly notes = new Map<number, Entry>();
  readonly controls = new Map<number, Entry>();
  program: Entry | undefined;
  pitch: Entry | undefined;
  pressure: Entry | undefined;

  get empty(): boolean {
    return this.notes.size === 0 && this.controls.size === 0 &&
      this.program === undefined && this.pitch === undefined &&
      this.pressure === undefined;
  }

  /** Forgets entries of packets before `floor`. */
  trim(floor: number): void {
    for (const map of [this.notes, this.controls]) {
      // Maps keep insertion order, and entries are re-inserted when they
      // change, so the oldest come first.
      for (const entry of map.values()) {
        if (entry.seq >= floor) break;
        map.delete(entry.key);
      }
    }
    if (this.program && this.program.seq < floor) this.program = undefined;
    if (this.pitch && this.pitch.seq < floor) this.pitch = undefined;
    if (this.pressure && this.pressure.seq < floor) this.pressure = undefined;
  }

  seqs(into: number[]): void {
    for (const entry of this.notes.values()) into.push(entry.seq);
    for (const entry of this.controls.values()) into.push(entry.seq);
    for (const entry of [this.program, this.pitch, this.pressure]) {
      if (entry) into.push(entry.seq);
    }
  }
}

function put(map: Map<number, Entry>, entry: Entry): void {
  map.delete(entry.key);
  map.set(entry.key, entry);
}

/**
 * Packs messages into RTP-MIDI packets with a recovery journal (chapters
 * P, C, W, N, T) that covers everything the receiver has not confirmed.
 */
export class RtpMidiSender {
  readonly ssrc: number;
  readonly #maxPacket: number;
  readonly #maxJournal: number;
  readonly #playWindow: number;
  /** Extended sequence number of the next packet. */
  #next: number;
  /** Entries of packets before this one are confirmed or given up. */
  #floor: number;
  readonly #channels: (History | undefined)[] = new Array(16);
  /** Notes on as far as the sender knows: never trimmed. */
  readonly #sounding = new NoteTracker();
  /** A sysex being sent in pieces, and how much of it went out. */
  #sysex: Uint8Array | undefined;
  #sysexAt = 0;
  /** The time of that sysex (its remaining segments go at it). */
  #sysexTime = 0;
  #sent = 0;
  /** Where journals are written; reused, encodeRtpMidi copies it. */
  #buffer = new Uint8Array(1024);

  constructor(options: SenderOptions) {
    this.ssrc = options.ssrc;
    this.#next = options.sequence & 0xffff;
    this.#floor = this.#next;
    this.#maxPacket = options.maxPacket ?? DEFAULT_MAX_PACKET;
    this.#maxJournal = options.maxJournal ?? DEFAULT_MAX_JOURNAL;
    this.#playWindow = options.playWindow ?? DEFAULT_PLAY_WINDOW;
  }

  /** 16-bit sequence number of the last packet made, or -1 before any. */
  get sequence(): number {
    return this.#sent === 0 ? -1 : (this.#next - 1) & 0xffff;
  }

  /** How many packets were made. */
  get sent(): number {
    return this.#sent;
  }

  /** Whether the journal holds anything the receiver has not confirmed. */
  get unconfirmed(): boolean {
    for (const history of this.#channels) {
      if (history && !history.empty) return true;
    }
    return false;
  }

  /**
   * Takes receiver feedback (RS): everything up to that packet arrived, so
   * the journal need not cover it any more.
   */
  feedback(sequence: number): void {
    if (this.#sent === 0) return;
    const last = this.#next - 1;
    const confirmed = last - ((last - sequence) & 0xffff);
    if (confirmed + 1 <= this.#floor) return;
    this.#trim(confirmed + 1);
  }

  #trim(floor: number): void {
    this.#floor = floor;
    for (const history of this.#channels) history?.trim(floor);
  }

  /**
   * Packs messages (already checked) into as many packets as they need,
   * in order; a sysex too big for one packet is split into segments.
   *
   * @param times When the messages happened, in RTP timestamp ticks
   * (32 bits): one time for all, or each message's own. Each packet's
   * timestamp is its first command's time, and later commands carry the
   * ticks since the one before as their delta time; a message whose time
   * is before the one before it starts a new packet (a delta time is
   * never negative).
   */
  packets(
    messages: readonly Message[],
    times: number | readonly number[],
  ): Uint8Array[] {
    const out: Uint8Array[] = [];
    let index = 0;
    while (index < messages.length || this.#sysex !== undefined) {
      index = this.#packet(messages, index, times, out);
    }
    return out;
  }

  /** A packet with no commands, only the journal: a guard packet. */
  guard(timestamp: number): Uint8Array {
    const out: Uint8Array[] = [];
    this.#packet([], 0, timestamp, out);
    return out[0];
  }

  #packet(
    messages: readonly Message[],
    index: number,
    times: number | readonly number[],
    out: Uint8Array[],
  ): number {
    const timeOf = typeof times === "number"
      ? () => times
      : (i: number) => times[i];
    // A packet's time is its first command's: the rest of a split sysex,
    // or the next message.
    const timestamp =
      (this.#sysex !== undefined
        ? this.#sysexTime
        : index < messages.length
        ? timeOf(index)
        : typeof times === "number"
        ? times
        : 0) >>> 0;
    const journal = this.#journal(timestamp);
    const room = Math.min(
      0x0fff,
      Math.max(
        this.#maxPacket - OVERHEAD - journal.length,
        MIN_SEGMENT * 4,
      ),
    );
    const commands: RtpMidiCommand[] = [];
    let used = 0;
    let previous = 0;
    let time = timestamp;
    const add = (
      message: Message | SysexSegment,
      delta: number,
      size: number,
    ) => {
      commands.push({ delta, message });
      used += size;
    };
    if (this.#sysex !== undefined) {
      // The rest of a split sysex comes first: nothing else may come
      // between its segments.
      const data = this.#sysex;
      const piece = Math.min(data.length - this.#sysexAt, room - 2);
      const last = this.#sysexAt + piece === data.length;
      add(
        {
          type: "sysex_segment",
          position: last ? "last" : "middle",
          data: data.subarray(this.#sysexAt, this.#sysexAt + piece),
        },
        0,
        piece + 2,
      );
      this.#sysexAt += piece;
      if (last) this.#sysex = undefined;
      previous = 0xf0;
      if (!last) return this.#finish(commands, journal, timestamp, out, index);
    }
    for (; index < messages.length; index++) {
      const msg = messages[index];
      const at = timeOf(index) >>> 0;
      const delta = (at - time) >>> 0;
      // Earlier than the command before (or absurdly later): a new packet.
      // (The first command is at the packet's time: its delta is 0.)
      if (delta > MAX_DELTA_TIME && commands.length > 0) break;
      const deltaBytes = commands.length > 0 ? deltaLength(delta) : 0;
      const status = channelStatusOf(msg);
      const size = encodedLength(msg) -
        (status !== 0 && status === previous ? 1 : 0);
      if (used + deltaBytes + size <= room) {
        add(msg, delta, deltaBytes + size);
        time = at;
        previous = status === 0 ? 0xf0 : status;
        continue;
      }
      if (
        msg.type === "sysex" && room - used - deltaBytes - 2 >= MIN_SEGMENT
      ) {
        const piece = room - used - deltaBytes - 2;
        add(
          {
            type: "sysex_segment",
            position: "first",
            data: (msg as Sysex).data.subarray(0, piece),
          },
          delta,
          deltaBytes + piece + 2,
        );
        this.#sysex = (msg as Sysex).data;
        this.#sysexAt = piece;
        this.#sysexTime = at;
        index++;
      }
      break;
    }
    return this.#finish(commands, journal, timestamp, out, index);
  }

  #finish(
    commands: RtpMidiCommand[],
    journal: Uint8Array,
    timestamp: number,
    out: Uint8Array[],
    index: number,
  ): number {
    const seq = this.#next++;
    this.#sent++;
    out.push(encodeRtpMidi({
      sequence: seq & 0xffff,
      timestamp: timestamp >>> 0,
      ssrc: this.ssrc,
      commands,
    }, { check: false, journalBytes: journal }));
    let time = timestamp;
    for (const { delta, message } of commands) {
      time = (time + delta) >>> 0;
      if (message.type !== "sysex_segment") {
        this.#record(message, seq, time);
      }
    }
    return index;
  }

  #history(channel: number): History {
    return this.#channels[channel] ??= new History();
  }

  #record(msg: Message, seq: number, time: number): void {
    switch (msg.type) {
      case "note_on":
      case "note_off": {
        const history = this.#history(msg.channel);
        const velocity = msg.type === "note_on" ? msg.velocity : 0;
        put(history.notes, { key: msg.note, seq, value: velocity, time });
        this.#sounding.track(msg);
        break;
      }
      case "control_change":
        if (msg.control < 120) {
          put(this.#history(msg.channel).controls, {
            key: msg.control,
            seq,
            value: msg.value,
            time,
          });
        } else {
          // A channel mode message: the note tracker knows which end notes.
          this.#ending(msg, msg.channel, msg.channel + 1, seq, time);
        }
        break;
      case "program_change":
        this.#history(msg.channel).program = {
          key: 0,
          seq,
          value: msg.program,
          time,
        };
        break;
      case "pitchwheel":
        this.#history(msg.channel).pitch = {
          key: 0,
          seq,
          value: msg.pitch,
          time,
        };
        break;
      case "aftertouch":
        this.#history(msg.channel).pressure = {
          key: 0,
          seq,
          value: msg.value,
          time,
        };
        break;
      case "reset":
        this.#ending(msg, 0, 16, seq, time);
        break;
    }
  }

  /**
   * Tracks a message that may end notes on channels `from` to `to` - 1:
   * the journal codes each note it ended as a note off.
   */
  #ending(
    msg: Message,
    from: number,
    to: number,
    seq: number,
    time: number,
  ): void {
    const sounding = this.#sounding;
    if (sounding.size === 0) return;
    const before: number[] = [];
    for (let channel = from; channel < to; channel++) {
      for (let note = 0; note < 128; note++) {
        if (sounding.has(channel, note)) before.push((channel << 7) | note);
      }
    }
    sounding.track(msg);
    for (const key of before) {
      const channel = key >> 7;
      const note = key & 127;
      if (sounding.has(channel, note)) continue;
      put(this.#history(channel).notes, { key: note, seq, value: 0, time });
    }
  }

  /**
   * The journal for the next packet, written straight from the history (a
   * view into a buffer reused for the next one). Trims the history when it
   * would not fit.
   */
  #journal(timestamp: number): Uint8Array {
    // Sequence numbers are 16 bits: keep the checkpoint well within reach.
    if (this.#next - this.#floor > 30000) this.#trim(this.#next - 30000);
    for (;;) {
      const layouts = this.#layout();
      if (layouts !== undefined) {
        let size = 3;
        for (const layout of layouts) size += layout.size;
        if (layouts.length === 0 || size <= this.#maxJournal) {
          return this.#write(layouts, size, timestamp);
        }
      }
      // Too big: give up the older half of the history.
      const seqs: number[] = [];
      for (const history of this.#channels) history?.seqs(seqs);
      seqs.sort((a, b) => a - b);
      this.#trim(seqs[seqs.length >> 1] + 1);
    }
  }

  /** Sizes of the channel journals to write, or undefined if none fits. */
  #layout(): Layout[] | undefined {
    const last = this.#next - 1;
    const layouts: Layout[] = [];
    for (let channel = 0; channel < 16; channel++) {
      const history = this.#channels[channel];
      if (history === undefined || history.empty) continue;
      let recent = false;
      let logs = 0;
      let offs = 0;
      let low = 15;
      let high = 0;
      for (const entry of history.notes.values()) {
        if (entry.seq === last) recent = true;
        if (entry.value > 0) {
          logs++;
        } else {
          offs++;
          low = Math.min(low, entry.key >> 3);
          high = Math.max(high, entry.key >> 3);
        }
      }
      for (const entry of history.controls.values()) {
        if (entry.seq === last) recent = true;
      }
      for (const entry of [history.program, history.pitch, history.pressure]) {
        if (entry?.seq === last) recent = true;
      }
      let size = 3;
      if (history.program) size += 3;
      if (history.controls.size > 0) size += 1 + 2 * history.controls.size;
      if (history.pitch) size += 2;
      if (history.notes.size > 0) {
        size += 2 + 2 * logs + (offs > 0 ? high - low + 1 : 0);
      }
      if (history.pressure) size += 1;
      layouts.push({ channel, history, recent, logs, offs, low, high, size });
    }
    // Wireshark's RTP-MIDI dissector (up to 4.x at least) marks a packet
    // malformed when fewer bytes follow the start of a chapter N's OFFBITS
    // than the chapter has note logs (it sizes the OFFBITS subtree by the
    // log count). Well-formed as such packets are, midisock keeps captures
    // clean: it widens the OFFBITS with zero octets, which RFC 6295 allows,
    // from the last channel journal backwards; when 16 octets are not
    // enough, the caller trims its history.
    let after = 0;
    for (let i = layouts.length - 1; i >= 0; i--) {
      const layout = layouts[i];
      if (layout.offs > 0) {
        const need = layout.logs - after - (layout.history.pressure ? 1 : 0);
        if (need > 16) return undefined;
        while (layout.high - layout.low + 1 < need) {
          if (layout.high < 15) layout.high++;
          else layout.low--;
          layout.size++;
        }
      }
      after += layout.size;
    }
    return layouts;
  }

  #write(layouts: Layout[], size: number, timestamp: number): Uint8Array {
    if (this.#buffer.length < size) this.#buffer = new Uint8Array(size * 2);
    const out = this.#buffer;
    const last = this.#next - 1;
    const s = (entry: Entry) => entry.seq === last ? 0 : 0x80;
    out[0] = (layouts.some((l) => l.recent) ? 0 : 0x80) |
      (layouts.length > 0 ? 0x20 | (layouts.length - 1) : 0);
    out[1] = (this.#floor >> 8) & 0xff;
    out[2] = this.#floor & 0xff;
    let at = 3;
    for (const layout of layouts) {
      const history = layout.history;
      out[at] = (layout.recent ? 0 : 0x80) | (layout.channel << 3) |
        (layout.size >> 8);
      out[at + 1] = layout.size & 0xff;
      out[at + 2] = (history.program ? 0x80 : 0) |
        (history.controls.size > 0 ? 0x40 : 0) | (history.pitch ? 0x10 : 0) |
        (history.notes.size > 0 ? 0x08 : 0) | (history.pressure ? 0x02 : 0);
      at += 3;
      if (history.program) {
        out[at++] = s(history.program) | history.program.value;
        out[at++] = 0;
        out[at++] = 0;
      }
      if (history.controls.size > 0) {
        const header = at++;
        let chapterS = 0x80;
        for (const entry of history.controls.values()) {
          chapterS &= s(entry);
          out[at++] = s(entry) | entry.key;
          out[at++] = entry.value;
        }
        out[header] = chapterS | (history.controls.size - 1);
      }
      if (history.pitch) {
        const unsigned = history.pitch.value + 8192;
        out[at++] = s(history.pitch) | (unsigned & 0x7f);
        out[at++] = unsigned >> 7;
      }
      if (history.notes.size > 0) {
        const header = at;
        at += 2;
        let b = 0x80;
        for (const entry of history.notes.values()) {
          if (entry.value === 0) {
            b &= s(entry);
            continue;
          }
          out[at++] = s(entry) | entry.key;
          // Signed: an entry of a later time than this packet's (times
          // need not grow from packet to packet) is recent too.
          const play = ((timestamp - entry.time) | 0) < this.#playWindow;
          out[at++] = (play ? 0x80 : 0) | entry.value;
        }
        out[header] = b | (layout.logs === 128 ? 127 : layout.logs);
        if (layout.offs > 0) {
          out[header + 1] = (layout.low << 4) | layout.high;
          const octets = layout.high - layout.low + 1;
          out.fill(0, at, at + octets);
          for (const entry of history.notes.values()) {
            if (entry.value === 0) {
              out[at + (entry.key >> 3) - layout.low] |= 0x80 >>
                (entry.key & 7);
            }
          }
          at += octets;
        } else {
          out[header + 1] = layout.logs === 128 ? 0xf0 : 0xf1;
        }
      }
      if (history.pressure) {
        out[at++] = s(history.pressure) | history.pressure.value;
      }
    }
    return out.subarray(0, at);
  }
}

interface Layout {
  channel: number;
  history: History;
  /** Whether an entry comes from the packet before this one. */
  recent: boolean;
  /** Note logs, note offs, and the OFFBITS octet range. */
  logs: number;
  offs: number;
  low: number;
  high: number;
  /** Bytes of the channel journal. */
  size: number;
}

export interface ReceiverOptions {
  /** Longest sysex reassembled, data bytes; longer ones are dropped. */
  maxSysexLength?: number;
}

/** What one packet gave. */
export interface Received {
  /** Messages to deliver, repairs first. */
  messages: Message[];
  /** Packets found missing before this one. */
  lost: number;
  /** Messages made up from the journal (repairs). */
  repaired: number;
  /**
   * When a command's delta time put it after the packet's time: each
   * message's ticks after it (repairs at 0). Left out when all are at it.
   */
  offsets?: number[];
}

function noteOff(channel: number, note: number): NoteOff {
  return { type: "note_off", channel, note, velocity: 0, time: 0 };
}

function noteOn(channel: number, note: number, velocity: number): NoteOn {
  return { type: "note_on", channel, note, velocity, time: 0 };
}

function control(
  channel: number,
  controlNumber: number,
  value: number,
): ControlChange {
  return {
    type: "control_change",
    channel,
    control: controlNumber,
    value,
    time: 0,
  };
}

/**
 * A packet this far behind the newest (in sequence numbers) is not late:
 * the peer started its numbering again.
 */
const REORDER_WINDOW = 64;
/** This many packets behind the newest in a row: the peer started again. */
const BEHIND_IN_A_ROW = 4;

function sameBytes(a: Uint8Array, b: Uint8Array | undefined): boolean {
  if (b === undefined || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * The receiving end of one RTP-MIDI stream: drops late and duplicate
 * packets, reassembles sysex segments, tracks the state the stream set,
 * and after lost packets repairs it from the next packet's journal. Without
 * a journal that covers the loss, it ends every note it had let through.
 *
 * A peer that repeats sequence numbers (or starts them again) is not
 * silenced: a packet with the newest one's number but other bytes, one far
 * behind it, or the fourth behind it in a row, is taken as new and counted
 * in `repeated`.
 */
export class RtpMidiReceiver {
  readonly #maxSysex: number;
  /** Extended sequence number of the newest packet taken, or -1. */
  #ext = -1;
  /** The newest packet's bytes, when the caller gave them. */
  #last: Uint8Array | undefined;
  /** Packets behind the newest, in a row. */
  #behind = 0;
  /** Which notes the stream has on. */
  readonly #notes = new NoteTracker();
  /** For each note on (`channel << 7 | note`): its velocity and packet. */
  readonly #velocity = new Uint8Array(16 * 128);
  readonly #onSeq = new Float64Array(16 * 128);
  readonly #controls = new Map<number, number>();
  readonly #program: (number | undefined)[] = new Array(16);
  readonly #pitch: (number | undefined)[] = new Array(16);
  readonly #pressure: (number | undefined)[] = new Array(16);
  #sysex: Uint8Array[] | undefined;
  #sysexLength = 0;
  #sysexOverflow = false;
  /** The rest of a dropped sysex is ignored until its last segment. */
  #sysexSkip = false;
  /** Packets missing, over the stream. */
  lost = 0;
  /** Packets that came after a newer one (or twice), dropped. */
  late = 0;
  /** Messages made up from journals. */
  repaired = 0;
  /** Sysex dropped: cut by a loss or another command, or too long. */
  dropped = 0;
  /**
   * Packets taken though their sequence number did not move on: repeated
   * with other content, or started again.
   */
  repeated = 0;

  constructor(options: ReceiverOptions = {}) {
    this.#maxSysex = options.maxSysexLength ?? 1024 * 1024;
  }

  /** 16-bit sequence number of the newest packet taken, or -1. */
  get sequence(): number {
    return this.#ext < 0 ? -1 : this.#ext & 0xffff;
  }

  /** How many notes the stream has on now. */
  get held(): number {
    return this.#notes.size;
  }

  /**
   * Takes one packet.
   *
   * @param packet The packet, decoded.
   * @param bytes Its bytes, kept (not copied) until the next packet: with
   * them, a packet that repeats the newest one's sequence number is told
   * from a duplicate by its content. Without them, it is a duplicate.
   * @returns What to deliver, or `undefined` for a late or repeated packet.
   */
  receive(packet: RtpMidiPacket, bytes?: Uint8Array): Received | undefined {
    let lost = 0;
    if (this.#ext < 0) {
      this.#ext = packet.sequence;
    } else {
      const delta = ((packet.sequence - this.#ext + 0x8000) & 0xffff) - 0x8000;
      if (delta > 0) {
        lost = delta - 1;
        this.#ext += delta;
        this.#behind = 0;
      } else if (delta === 0) {
        if (bytes === undefined || sameBytes(bytes, this.#last)) {
          this.late++;
          return undefined;
        }
        // The same number on other content: a peer that does not count.
        this.repeated++;
      } else if (
        delta >= -REORDER_WINDOW && ++this.#behind < BEHIND_IN_A_ROW
      ) {
        this.late++;
        return undefined;
      } else {
        // The peer started its numbering again: go on from here, in a new
        // 16-bit cycle so that nothing taken before counts as newer.
        this.repeated++;
        this.#behind = 0;
        this.#ext = this.#ext - (this.#ext & 0xffff) + 0x10000 +
          packet.sequence;
      }
    }
    this.#last = bytes;
    const messages: Message[] = [];
    let repaired = 0;
    if (lost > 0) {
      this.lost += lost;
      if (this.#sysex !== undefined) this.#dropSysex();
      repaired = this.#repair(journalOf(packet), this.#ext - lost, messages);
      this.repaired += repaired;
    }
    let tick = 0;
    let offsets: number[] | undefined;
    for (const { delta, message } of packet.commands) {
      if (delta !== 0) {
        tick += delta;
        offsets ??= new Array<number>(messages.length).fill(0);
      }
      if (message.type === "sysex_segment") {
        this.#segment(message, messages);
      } else {
        if (this.#sysex !== undefined && !isRealtime(message)) {
          this.#dropSysex();
        }
        this.#track(message, this.#ext);
        messages.push(message);
      }
      if (offsets !== undefined) {
        while (offsets.length < messages.length) offsets.push(tick);
      }
    }
    return offsets === undefined
      ? { messages, lost, repaired }
      : { messages, lost, repaired, offsets };
  }

  /** Note offs for every note the stream left on; forgets them. */
  release(): NoteOff[] {
    return this.#notes.release();
  }

  #releaseAll(out: Message[]): number {
    const offs = this.#notes.release();
    for (const off of offs) out.push(off);
    return offs.length;
  }

  #dropSysex(): void {
    this.#sysex = undefined;
    this.#sysexLength = 0;
    this.#sysexOverflow = false;
    this.#sysexSkip = true;
    this.dropped++;
  }

  #segment(segment: SysexSegment, out: Message[]): void {
    switch (segment.position) {
      case "first":
        if (this.#sysex !== undefined) this.#dropSysex();
        this.#sysexSkip = false;
        this.#sysex = [];
        this.#sysexLength = 0;
        this.#sysexOverflow = false;
        this.#append(segment.data);
        return;
      case "middle":
      case "last":
        if (this.#sysex === undefined) {
          // The rest of one dropped already, or a piece with no start.
          if (!this.#sysexSkip) this.dropped++;
          if (segment.position === "last") this.#sysexSkip = false;
          return;
        }
        this.#append(segment.data);
        if (segment.position === "middle") return;
        if (this.#sysexOverflow) {
          this.#dropSysex();
          this.#sysexSkip = false;
          return;
        }
        {
          const data = new Uint8Array(this.#sysexLength);
          let at = 0;
          for (const part of this.#sysex) {
            data.set(part, at);
            at += part.length;
          }
          this.#sysex = undefined;
          this.#sysexLength = 0;
          out.push({ type: "sysex", data, time: 0 });
        }
        return;
      case "cancel":
        if (this.#sysex !== undefined) this.#dropSysex();
        this.#sysexSkip = false;
        return;
    }
  }

  #append(data: Uint8Array): void {
    if (this.#sysexOverflow) return;
    this.#sysexLength += data.length;
    if (this.#sysexLength > this.#maxSysex) {
      this.#sysexOverflow = true;
      this.#sysex = [];
      return;
    }
    this.#sysex!.push(data);
  }

  #track(msg: Message, seq: number): void {
    switch (msg.type) {
      case "note_on":
        this.#notes.track(msg);
        if (msg.velocity > 0) {
          const key = (msg.channel << 7) | msg.note;
          this.#velocity[key] = msg.velocity;
          this.#onSeq[key] = seq;
        }
        break;
      case "note_off":
        this.#notes.track(msg);
        break;
      case "control_change":
        this.#controls.set((msg.channel << 7) | msg.control, msg.value);
        this.#notes.track(msg);
        break;
      case "program_change":
        this.#program[msg.channel] = msg.program;
        break;
      case "pitchwheel":
        this.#pitch[msg.channel] = msg.pitch;
        break;
      case "aftertouch":
        this.#pressure[msg.channel] = msg.value;
        break;
      case "reset":
        this.#notes.track(msg);
        break;
    }
  }

  /**
   * Repairs after packets `firstLost` .. current-1 went missing.
   *
   * @returns How many messages it made.
   */
  #repair(
    journal: RecoveryJournal | undefined,
    firstLost: number,
    out: Message[],
  ): number {
    const current = this.#ext;
    const checkpoint = journal === undefined
      ? Infinity
      : current - ((current - journal.checkpoint) & 0xffff);
    if (checkpoint > firstLost) {
      // No journal, or one that does not reach back to the loss: nothing
      // tells what the lost packets held, so end every note rather than
      // leave one on for good.
      return this.#releaseAll(out);
    }
    const before = out.length;
    for (const channel of journal!.channels) {
      this.#repairChannel(channel, checkpoint, out);
    }
    return out.length - before;
  }

  #repairChannel(
    journal: ChannelJournal,
    checkpoint: number,
    out: Message[],
  ): void {
    const channel = journal.channel;
    const seq = this.#ext - 1;
    const emit = (msg: Message) => {
      out.push(msg);
      this.#track(msg, seq);
    };
    if (journal.program && this.#program[channel] !== journal.program.program) {
      emit({
        type: "program_change",
        channel,
        program: journal.program.program,
        time: 0,
      });
    }
    for (const log of journal.controllers?.logs ?? []) {
      // Only the value tool says what the value is; 120-127 are modes and
      // one-off commands whose effect on notes chapter N codes.
      if (log.alternate || log.control >= 120) continue;
      if (this.#controls.get((channel << 7) | log.control) !== log.value) {
        emit(control(channel, log.control, log.value));
      }
    }
    if (journal.pitch && this.#pitch[channel] !== journal.pitch.pitch) {
      emit({
        type: "pitchwheel",
        channel,
        pitch: journal.pitch.pitch,
        time: 0,
      });
    }
    const notes = journal.notes;
    const held = this.#notes;
    if (notes) {
      for (const note of notes.offs) {
        if (held.has(channel, note)) emit(noteOff(channel, note));
      }
      for (const log of notes.logs) {
        if (log.velocity === 0) {
          if (held.has(channel, log.note)) emit(noteOff(channel, log.note));
          continue;
        }
        if (held.has(channel, log.note)) {
          // On here too: if ours is older than the checkpoint, or another
          // velocity, the journal's note on is a newer one and a note off
          // went missing between them.
          const key = (channel << 7) | log.note;
          if (
            this.#onSeq[key] >= checkpoint &&
            this.#velocity[key] === log.velocity
          ) {
            continue;
          }
          emit(noteOff(channel, log.note));
        }
        if (log.play !== false) emit(noteOn(channel, log.note, log.velocity));
      }
    }
    if (
      journal.aftertouch &&
      this.#pressure[channel] !== journal.aftertouch.pressure
    ) {
      emit({
        type: "aftertouch",
        channel,
        value: journal.aftertouch.pressure,
        time: 0,
      });
    }
  }
}

/** The packet's journal, decoding it now if it was left as bytes. */
function journalOf(packet: RtpMidiPacket): RecoveryJournal | undefined {
  if (packet.journal || packet.journalBytes === undefined) {
    return packet.journal;
  }
  try {
    return decodeJournal(packet.journalBytes);
  } catch (error) {
    if (error instanceof RtpMidiDecodeError) return undefined;
    throw error;
  }
}
