/**
 * What one link knows about the other hubs of its room: who is there, each
 * one's frame order, the notes each left on, and the messages of each that
 * wait for the hub. Pure: it reads payloads and the time it is given, and
 * says who joined and who left; the link takes the waiting messages.
 *
 * A hub is known by its id, the last token of the subjects it publishes on
 * (NATS permissions can tie that to one user). Its frames carry an
 * instance, random for each link: a new instance under the same id is the
 * hub restarted. Sequence numbers only count what was missed; they never
 * stop a frame from being delivered, so no frame, forged or not, can mute a
 * hub that goes on sending.
 *
 * Time: each hub's beats carry its clock and its answers to the others'
 * beats; a beat of ours answered in another hub's beat is one NTP-style
 * exchange with it, which feeds that hub's {@linkcode ClockSync}. What it
 * sends in frames of version 2 comes with the time it happened on its
 * clock, mapped to ours once an exchange has been made; messages of
 * version 1 frames (and of version 2 before the first exchange) carry the
 * time they arrived.
 *
 * @module
 */

import { encodeFramed } from "../codec/_framer.ts";
import { encodedLength } from "../codec/encode.ts";
import type { Message } from "../codec/messages.ts";
import { NoteTracker } from "../notes.ts";
import { ClockSync } from "../time/sync.ts";
import {
  announcedCount,
  type Answer,
  type BeatFrame,
  type Frame,
  FRAME_VERSION,
  frameKind,
  FrameReader,
  idToHex,
  KIND_BEAT,
  KIND_BYE,
  KIND_MIDI,
  PLAIN_VERSION,
} from "./_frame.ts";

/** Why a hub left the room. */
export type LeaveReason = "goodbye" | "timeout" | "restart";

/** Another hub of the room, as a link sees it. */
export interface RemoteHub {
  /** Its id: the last token of the subjects it publishes on. */
  readonly id: string;
  /** The name it announces (`""` until its first heartbeat). */
  readonly name: string;
  /** When it was first seen, in ms since the epoch. */
  readonly since: number;
}

/**
 * Messages for the hub that happened at one time: their framed bytes (each
 * message whole), the messages, and when (this hub's clock; undefined:
 * when handed on).
 */
export interface Piece {
  readonly messages: Message[];
  readonly bytes: Uint8Array;
  readonly at: number | undefined;
  /** The id of the hub it came from (set by `Room.next`). */
  readonly origin?: string;
}

/** What waits for the hub from one hub id, and the notes it holds. */
class Lane {
  readonly id: string;
  /** Notes on at our endpoints once what waits is delivered. */
  readonly notes = new NoteTracker();
  /** Pieces, oldest first; `#head`/`#taken`/`#offset` mark what is next. */
  #pieces: Piece[] = [];
  #head = 0;
  /** Messages and bytes of the head piece taken already. */
  #taken = 0;
  #offset = 0;
  waiting = 0;
  /** The hub using this lane now, if it is still in the room. */
  remote: Remote | undefined;
  /** Whether it is in the room's ring of lanes with messages waiting. */
  inRing = false;

  constructor(id: string) {
    this.id = id;
  }

  push(piece: Piece): void {
    if (piece.messages.length === 0) return;
    this.#pieces.push(piece);
    this.waiting += piece.messages.length;
  }

  /** The next piece, or its next `max` messages. */
  take(max: number): Piece | undefined {
    const piece = this.#pieces[this.#head];
    if (piece === undefined) return undefined;
    const total = piece.messages.length;
    let out = piece;
    if (this.#taken > 0 || total > max) {
      const end = Math.min(total, this.#taken + max);
      const messages = piece.messages.slice(this.#taken, end);
      let length = 0;
      for (const msg of messages) length += encodedLength(msg);
      out = {
        messages,
        bytes: piece.bytes.subarray(this.#offset, this.#offset + length),
        at: piece.at,
      };
      this.#offset += length;
      this.#taken = end;
      if (end < total) {
        this.waiting -= messages.length;
        return out;
      }
    }
    this.waiting -= out.messages.length;
    this.#taken = 0;
    this.#offset = 0;
    this.#pieces[this.#head++] = EMPTY;
    if (this.#head === this.#pieces.length) {
      this.#pieces = [];
      this.#head = 0;
    } else if (this.#head >= 64 && this.#head * 2 >= this.#pieces.length) {
      this.#pieces = this.#pieces.slice(this.#head);
      this.#head = 0;
    }
    return out;
  }

  clear(): void {
    this.#pieces = [];
    this.#head = 0;
    this.#taken = 0;
    this.#offset = 0;
    this.waiting = 0;
  }
}

const EMPTY: Piece = { messages: [], bytes: new Uint8Array(0), at: undefined };

/** A hub of the room, with what is tracked about it. */
export class Remote {
  readonly id: string;
  /** The instance of it this is (16 hex digits). */
  readonly instance: string;
  name = "";
  /** Its heartbeat interval, ms (ours until it says). */
  interval: number;
  /** When a frame of it last came, on the clock the room is given. */
  lastSeen: number;
  /** The number of its next MIDI frame. */
  nextSeq: number;
  /** Whether its heartbeat was seen (and `joined` told). */
  announced = false;
  /** The highest MIDI frame version it reads. */
  reads: number = PLAIN_VERSION;
  /** Whether its beats carry its clock (it takes part in exchanges). */
  timed = false;
  /** How its clock reads against ours. */
  readonly sync: ClockSync = new ClockSync();
  /** Its latest beat's time, and when it came: for our next beat to answer. */
  unanswered: { t1: number; t2: number } | undefined;
  /** The newest beat of ours it answered: an answer to an older one is old. */
  lastAnswered = -Infinity;
  readonly lane: Lane;
  readonly since: number = Date.now();

  constructor(
    id: string,
    instance: string,
    lane: Lane,
    interval: number,
    now: number,
    seq: number,
  ) {
    this.id = id;
    this.instance = instance;
    this.lane = lane;
    this.interval = interval;
    this.lastSeen = now;
    this.nextSeq = seq;
  }

  /** What it looks like from outside. */
  get hub(): RemoteHub {
    return Object.freeze({ id: this.id, name: this.name, since: this.since });
  }

  /**
   * A time of its clock, on ours: mapped once an exchange was made, and
   * never later than `arrival` (a time cannot be after it came); before
   * that, `arrival`.
   */
  toLocal(remote: number, arrival: number): number {
    if (!this.sync.synced) return arrival;
    const local = this.sync.toLocal(remote);
    return local < arrival ? local : arrival;
  }
}

/** Where a room's decisions go. */
export interface RoomSink {
  /** Messages wait: take them with `next`. */
  wake(): void;
  /** A hub announced itself for the first time. */
  joined(remote: Remote): void;
  /** A hub is gone; note_off messages for the `released` notes it left on wait. */
  left(remote: Remote, reason: LeaveReason, released: number): void;
  /** A new hub was refused: the room holds `maxRemotes` already. */
  full(): void;
  /** Frames came under this link's own id from another instance. */
  conflict(instance: string): void;
}

/** Counts a room keeps. */
export interface RoomCounts {
  /** Frames read (valid or not). */
  frames: number;
  /** Frames refused: foreign, malformed, or under this link's own id. */
  dropped: number;
  /** MIDI frames numbered at or up to 65,536 behind one already read (delivered all the same). */
  late: number;
  /** MIDI frames that never came, by the numbers of the ones that did. */
  gaps: number;
  /** Numbers that jumped more than 65,536 ahead or behind: the count restarts there. */
  jumps: number;
  /** Frames of new hubs refused because the room was full. */
  refused: number;
  /** Messages of frames dropped because their hub had too many waiting. */
  overflowed: number;
  /** Clock exchanges taken (answers to our beats). */
  syncs: number;
}

/** What a room is told at its start. */
export interface RoomOptions {
  /** Our own id: frames under it are never delivered. */
  own: string;
  /** Our own instance: frames under our id from another are a conflict. */
  ownInstance: string;
  /** Our heartbeat interval, assumed for hubs not heard yet. */
  interval: number;
  /** How many beats a hub may miss before it is gone. */
  missed: number;
  /** The most hubs the room keeps. */
  maxRemotes: number;
  /** The most messages waiting for the hub, all hubs together. */
  capacity: number;
}

/** A well-formed id: what `subjectPrefix`, `room` and a hub's `id` allow. */
export const TOKEN: RegExp = /^[A-Za-z0-9_-]{1,64}$/;

/** Our beats' times kept, to know an answer to one of them. */
const SENT_KEPT = 32;
/** Gaps above this are a jump, not losses. */
const MAX_GAP = 65_536;
/** Messages one lane gives before the next lane's turn. */
const QUANTUM = 64;

/** The room state of one link. */
export class Room {
  readonly #options: RoomOptions;
  readonly #sink: RoomSink;
  readonly #reader = new FrameReader();
  readonly #remotes = new Map<string, Remote>();
  readonly #lanes = new Map<string, Lane>();
  /** Lanes with messages waiting, served in turn. */
  #ring: Lane[] = [];
  #turn = 0;
  #given = 0;
  #waiting = 0;
  #full = false;
  /** Hubs that read only version 1 frames (or were not heard to read more). */
  #older = 0;
  /** Hubs whose beats carry their clock. */
  #timed = 0;
  /** Our newest beats' times. */
  readonly #sent: number[] = [];
  /** Where the next beat's answers start among the hubs. */
  #answerFrom = 0;
  readonly counts: RoomCounts = {
    frames: 0,
    dropped: 0,
    late: 0,
    gaps: 0,
    jumps: 0,
    refused: 0,
    overflowed: 0,
    syncs: 0,
  };

  constructor(options: RoomOptions, sink: RoomSink) {
    this.#options = options;
    this.#sink = sink;
  }

  /** The hubs that announced themselves and are still here. */
  get hubs(): RemoteHub[] {
    return [...this.#remotes.values()].filter((r) => r.announced).map((r) =>
      r.hub
    );
  }

  /** How many hubs are known now, announced or not. */
  get size(): number {
    return this.#remotes.size;
  }

  /** Messages waiting for the hub. */
  get waiting(): number {
    return this.#waiting;
  }

  /**
   * The MIDI frame version to write: the highest that every hub known reads
   * (a hub heard only through version 1 frames so far counts as reading
   * version 1).
   */
  get version(): number {
    return this.#older === 0 ? FRAME_VERSION : PLAIN_VERSION;
  }

  /** How many hubs' beats carry their clock: exchanges to keep up. */
  get timedHubs(): number {
    return this.#timed;
  }

  /** The hub known under `id` now, if any. */
  remote(id: string): Remote | undefined {
    return this.#remotes.get(id);
  }

  /**
   * Notes the time a beat of ours carries, to know answers to it.
   *
   * @param t1 The time, on our clock.
   */
  sent(t1: number): void {
    this.#sent.push(t1);
    if (this.#sent.length > SENT_KEPT) this.#sent.shift();
  }

  /**
   * The answers our next beat carries: for the hubs whose latest beat is
   * not answered yet, at most `max` (the next beat goes on from there).
   *
   * @param max How many at most.
   * @returns The answers.
   */
  answers(max: number): Answer[] {
    const out: Answer[] = [];
    const remotes = [...this.#remotes.values()];
    const n = remotes.length;
    for (let k = 0; k < n && out.length < max; k++) {
      const remote = remotes[(this.#answerFrom + k) % n];
      const beat = remote.unanswered;
      if (beat === undefined) continue;
      remote.unanswered = undefined;
      out.push({ instance: remote.instance, t1: beat.t1, t2: beat.t2 });
      if (out.length === max) this.#answerFrom = (this.#answerFrom + k + 1) % n;
    }
    return out;
  }

  /**
   * Takes one payload.
   *
   * @param id The last token of the subject it came on.
   * @param presence Whether it came on the presence subject (else MIDI's).
   * @param bytes The payload.
   * @param now The time, ms, on the clock `overdue` and `expire` get.
   * @param at The time on the hub's clock, ms: when it arrived.
   */
  receive(
    id: string,
    presence: boolean,
    bytes: Uint8Array,
    now: number,
    at: number = now,
  ): void {
    this.counts.frames++;
    const kind = frameKind(bytes);
    const count = kind === KIND_MIDI ? announcedCount(bytes) : 0;
    if (
      !TOKEN.test(id) ||
      (presence ? kind !== KIND_BEAT && kind !== KIND_BYE : count === 0)
    ) {
      // Not a frame, or one on the other subject (a beat among MIDI...).
      this.counts.dropped++;
      return;
    }
    const instance = idToHex(bytes, 4);
    if (id === this.#options.own) {
      this.counts.dropped++;
      if (instance !== this.#options.ownInstance) this.#sink.conflict(instance);
      return;
    }
    let remote = this.#remotes.get(id);
    if (kind === KIND_BYE && remote?.instance !== instance) {
      // A goodbye of a hub (or an instance of it) that is gone already.
      this.counts.late++;
      return;
    }
    if (remote !== undefined && remote.instance !== instance) {
      this.#leave(remote, "restart");
      remote = undefined;
    }
    if (
      remote === undefined && this.#remotes.size >= this.#options.maxRemotes
    ) {
      this.counts.refused++;
      if (!this.#full) {
        this.#full = true;
        this.#sink.full();
      }
      return;
    }
    if (count > 0) this.#midi(id, remote, instance, count, bytes, now, at);
    else this.#presence(id, remote, this.#reader.read(bytes), now, at);
  }

  #midi(
    id: string,
    known: Remote | undefined,
    instance: string,
    count: number,
    bytes: Uint8Array,
    now: number,
    at: number,
  ): void {
    const lane = known?.lane ?? this.#lanes.get(id);
    const { capacity } = this.#options;
    const waiting = lane?.waiting ?? 0;
    const fits = this.#waiting === 0 ||
      (this.#waiting + count <= capacity && waiting + count <= capacity / 2);
    if (!fits) {
      // Dropped unread: a flood costs a glance per frame. What was dropped
      // may have ended notes of this hub: end them all.
      this.counts.overflowed += count;
      if (known === undefined) return;
      known.lastSeen = now;
      this.#release(known.lane);
      return;
    }
    const frame = this.#reader.read(bytes);
    if (frame?.kind !== KIND_MIDI) {
      this.counts.dropped++;
      return;
    }
    const remote = known ?? this.#add(id, instance, frame.seq, now);
    remote.lastSeen = now;
    const ahead = (frame.seq - remote.nextSeq) >>> 0;
    if (ahead === 0) {
      remote.nextSeq = (frame.seq + 1) >>> 0;
    } else if (ahead <= MAX_GAP) {
      this.counts.gaps += ahead;
      remote.nextSeq = (frame.seq + 1) >>> 0;
    } else if (ahead >= 2 ** 32 - MAX_GAP) {
      this.counts.late++;
    } else {
      this.counts.jumps++;
      remote.nextSeq = (frame.seq + 1) >>> 0;
    }
    // A hub that writes a version reads it.
    if (frame.version > remote.reads) this.#setReads(remote, frame.version);
    const notes = remote.lane.notes;
    for (const msg of frame.messages) notes.track(msg);
    for (const run of frame.runs) {
      this.#queue(remote.lane, {
        messages: run.messages,
        bytes: run.bytes,
        at: run.at === undefined ? at : remote.toLocal(run.at, at),
      });
    }
  }

  #presence(
    id: string,
    known: Remote | undefined,
    frame: Frame | undefined,
    now: number,
    at: number,
  ): void {
    if (frame === undefined || frame.kind === KIND_MIDI) {
      this.counts.dropped++;
      return;
    }
    if (frame.kind === KIND_BYE) {
      if (known === undefined) {
        this.counts.late++;
        return;
      }
      const ahead = (frame.seq - known.nextSeq) >>> 0;
      if (ahead > 0 && ahead <= MAX_GAP) this.counts.gaps += ahead;
      this.#leave(known, "goodbye");
      return;
    }
    const remote = known ?? this.#add(id, frame.instance, frame.seq, now);
    remote.lastSeen = now;
    const ahead = (frame.seq - remote.nextSeq) >>> 0;
    if (ahead > 0 && ahead <= MAX_GAP) {
      this.counts.gaps += ahead;
      remote.nextSeq = frame.seq;
    } else if (ahead > MAX_GAP && ahead < 2 ** 32 - MAX_GAP) {
      this.counts.jumps++;
      remote.nextSeq = frame.seq;
    }
    remote.name = frame.name;
    remote.interval = frame.interval;
    this.#setReads(remote, frame.reads);
    this.#time(remote, frame, at);
    if (!remote.announced) {
      remote.announced = true;
      this.#sink.joined(remote);
    }
  }

  /** A beat's time: keep it to answer, and take the answer to ours. */
  #time(remote: Remote, beat: BeatFrame, at: number): void {
    const time = beat.time;
    if ((time !== undefined) !== remote.timed) {
      remote.timed = time !== undefined;
      this.#timed += remote.timed ? 1 : -1;
    }
    if (time === undefined) return;
    remote.unanswered = { t1: time.sent, t2: at };
    const own = this.#options.ownInstance;
    for (const answer of time.answers) {
      // Only an answer to one of our newest beats, each beat once: a
      // replayed or made-up answer gives nothing.
      if (
        answer.instance !== own || !(answer.t1 > remote.lastAnswered) ||
        !this.#sent.includes(answer.t1)
      ) {
        continue;
      }
      remote.lastAnswered = answer.t1;
      const used = remote.sync.add({
        t1: answer.t1,
        t2: answer.t2,
        t3: time.sent,
        t4: at,
      });
      if (used) this.counts.syncs++;
    }
  }

  #setReads(remote: Remote, reads: number): void {
    const older = remote.reads < FRAME_VERSION;
    remote.reads = reads;
    this.#older += (reads < FRAME_VERSION ? 1 : 0) - (older ? 1 : 0);
  }

  #add(id: string, instance: string, seq: number, now: number): Remote {
    let lane = this.#lanes.get(id);
    if (lane === undefined) {
      lane = new Lane(id);
      this.#lanes.set(id, lane);
    }
    const remote = new Remote(
      id,
      instance,
      lane,
      this.#options.interval,
      now,
      seq,
    );
    lane.remote = remote;
    this.#remotes.set(id, remote);
    this.#older++;
    return remote;
  }

  #leave(remote: Remote, reason: LeaveReason): void {
    this.#remotes.delete(remote.id);
    if (this.#remotes.size < this.#options.maxRemotes) this.#full = false;
    if (remote.reads < FRAME_VERSION) this.#older--;
    if (remote.timed) this.#timed--;
    const lane = remote.lane;
    lane.remote = undefined;
    const released = this.#release(lane);
    this.#dropIfIdle(lane);
    this.#sink.left(remote, reason, released);
  }

  /** Queues a note_off for each note the lane's hub holds; how many. */
  #release(lane: Lane): number {
    const notes: Message[] = lane.notes.release();
    if (notes.length > 0) {
      this.#queue(lane, {
        messages: notes,
        bytes: encodeFramed(notes),
        at: undefined,
      });
    }
    return notes.length;
  }

  #queue(lane: Lane, piece: Piece): void {
    const messages = piece.messages;
    if (messages.length === 0) return;
    lane.push(piece);
    this.#waiting += messages.length;
    if (!lane.inRing) {
      lane.inRing = true;
      this.#ring.push(lane);
    }
    this.#sink.wake();
  }

  #dropIfIdle(lane: Lane): void {
    if (lane.waiting === 0 && lane.remote === undefined) {
      this.#lanes.delete(lane.id);
    }
  }

  /**
   * The next messages for the hub that happened at one time, each hub in
   * turn (turns of at most 64 messages while several hubs have messages
   * waiting); `undefined` when none waits.
   *
   * @param max The most messages to take (1 or more).
   */
  next(max: number = Infinity): Piece | undefined {
    const ring = this.#ring;
    const lane = ring[this.#turn];
    if (lane === undefined) return undefined;
    const piece = lane.take(
      Math.min(max, ring.length > 1 ? QUANTUM - this.#given : Infinity),
    )!;
    this.#waiting -= piece.messages.length;
    if (lane.waiting === 0) {
      lane.inRing = false;
      ring.splice(this.#turn, 1);
      this.#given = 0;
      if (this.#turn >= ring.length) this.#turn = 0;
      this.#dropIfIdle(lane);
    } else if (
      ring.length > 1 && (this.#given += piece.messages.length) >= QUANTUM
    ) {
      this.#given = 0;
      this.#turn = (this.#turn + 1) % ring.length;
    }
    return { ...piece, origin: lane.id };
  }

  /** Forgets every waiting message (the link closed). */
  clear(): void {
    for (const lane of this.#ring) {
      lane.clear();
      lane.inRing = false;
      this.#dropIfIdle(lane);
    }
    this.#ring = [];
    this.#turn = 0;
    this.#waiting = 0;
  }

  /**
   * The hubs not heard for `missed` of their intervals.
   *
   * @param now The time, ms.
   * @returns Them.
   */
  overdue(now: number): Remote[] {
    const out: Remote[] = [];
    for (const remote of this.#remotes.values()) {
      if (now - remote.lastSeen > this.#options.missed * remote.interval) {
        out.push(remote);
      }
    }
    return out;
  }

  /**
   * Says goodbye for each of `remotes` still in the room and not heard
   * since `since`.
   *
   * @param remotes What `overdue` gave.
   * @param since The time, ms, from which a frame of them counts.
   */
  expire(remotes: Remote[], since: number): void {
    for (const remote of remotes) {
      if (
        this.#remotes.get(remote.id) === remote && remote.lastSeen <= since
      ) {
        this.#leave(remote, "timeout");
      }
    }
  }
}
