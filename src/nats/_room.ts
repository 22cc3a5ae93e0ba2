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
 * @module
 */

import type { Message } from "../codec/messages.ts";
import { NoteTracker } from "../notes.ts";
import {
  announcedCount,
  type Frame,
  frameKind,
  FrameReader,
  idToHex,
  KIND_BEAT,
  KIND_BYE,
  KIND_MIDI,
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

/** What waits for the hub from one hub id, and the notes it holds. */
class Lane {
  readonly id: string;
  /** Notes on at our endpoints once what waits is delivered. */
  readonly notes = new NoteTracker();
  /** Frames' messages, oldest first; `#head`/`#at` mark the next one. */
  #chunks: Message[][] = [];
  #head = 0;
  #at = 0;
  waiting = 0;
  /** The hub using this lane now, if it is still in the room. */
  remote: Remote | undefined;
  /** Whether it is in the room's ring of lanes with messages waiting. */
  inRing = false;

  constructor(id: string) {
    this.id = id;
  }

  push(messages: Message[]): void {
    if (messages.length === 0) return;
    this.#chunks.push(messages);
    this.waiting += messages.length;
  }

  peek(): Message | undefined {
    return this.#chunks[this.#head]?.[this.#at];
  }

  shift(): void {
    this.waiting--;
    if (++this.#at < this.#chunks[this.#head].length) return;
    this.#at = 0;
    this.#chunks[this.#head++] = [];
    if (this.#head === this.#chunks.length) {
      this.#chunks = [];
      this.#head = 0;
    } else if (this.#head >= 64 && this.#head * 2 >= this.#chunks.length) {
      this.#chunks = this.#chunks.slice(this.#head);
      this.#head = 0;
    }
  }

  clear(): void {
    this.#chunks = [];
    this.#head = 0;
    this.#at = 0;
    this.waiting = 0;
  }
}

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
  reads = 1;
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
}

/** Where a room's decisions go. */
export interface RoomSink {
  /** Messages wait: take them with `peek`/`shift`. */
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
  readonly counts: RoomCounts = {
    frames: 0,
    dropped: 0,
    late: 0,
    gaps: 0,
    jumps: 0,
    refused: 0,
    overflowed: 0,
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
   * Takes one payload.
   *
   * @param id The last token of the subject it came on.
   * @param presence Whether it came on the presence subject (else MIDI's).
   * @param bytes The payload.
   * @param now The time, ms, on the clock `overdue` and `expire` get.
   */
  receive(id: string, presence: boolean, bytes: Uint8Array, now: number): void {
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
    if (count > 0) this.#midi(id, remote, instance, count, bytes, now);
    else this.#presence(id, remote, this.#reader.read(bytes), now);
  }

  #midi(
    id: string,
    known: Remote | undefined,
    instance: string,
    count: number,
    bytes: Uint8Array,
    now: number,
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
      this.#queue(known.lane, known.lane.notes.release());
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
    const notes = remote.lane.notes;
    for (const msg of frame.messages) notes.track(msg);
    this.#queue(remote.lane, frame.messages);
  }

  #presence(
    id: string,
    known: Remote | undefined,
    frame: Frame | undefined,
    now: number,
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
    remote.reads = frame.reads;
    if (!remote.announced) {
      remote.announced = true;
      this.#sink.joined(remote);
    }
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
    return remote;
  }

  #leave(remote: Remote, reason: LeaveReason): void {
    this.#remotes.delete(remote.id);
    if (this.#remotes.size < this.#options.maxRemotes) this.#full = false;
    const lane = remote.lane;
    lane.remote = undefined;
    const notes = lane.notes.release();
    this.#queue(lane, notes);
    this.#dropIfIdle(lane);
    this.#sink.left(remote, reason, notes.length);
  }

  #queue(lane: Lane, messages: Message[]): void {
    if (messages.length === 0) return;
    lane.push(messages);
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
   * The next message for the hub, each hub in turn; `undefined` when none
   * waits. Take it with `shift`.
   */
  peek(): Message | undefined {
    const lane = this.#ring[this.#turn];
    return lane?.peek();
  }

  /** Takes the message `peek` gave. */
  shift(): void {
    const lane = this.#ring[this.#turn];
    lane.shift();
    this.#waiting--;
    if (lane.waiting === 0) {
      lane.inRing = false;
      this.#ring.splice(this.#turn, 1);
      this.#given = 0;
      if (this.#turn >= this.#ring.length) this.#turn = 0;
      this.#dropIfIdle(lane);
    } else if (++this.#given >= QUANTUM) {
      this.#given = 0;
      this.#turn = (this.#turn + 1) % this.#ring.length;
    }
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
