/**
 * What one link knows about the other hubs of its room: who is there, each
 * one's frame order, and the notes each left on. Pure: it reads frames and
 * the time it is given, and says what to deliver, who joined and who left.
 *
 * @module
 */

import type { Message, NoteOff } from "../codec/messages.ts";
import { NoteTracker } from "../notes.ts";
import { type Frame, KIND_BEAT, KIND_BYE, KIND_MIDI } from "./_frame.ts";

/** Why a hub left the room. */
export type LeaveReason = "goodbye" | "timeout";

/** Another hub of the room, as a link sees it. */
export interface RemoteHub {
  /** Its random id: 16 hex digits, new each time a link is made. */
  readonly id: string;
  /** The name it announces (`""` until its first heartbeat). */
  readonly name: string;
  /** When it was first seen, in ms since the epoch. */
  readonly since: number;
}

/** A hub of the room, with what is tracked about it. */
export class Remote {
  readonly id: string;
  name = "";
  /** Its heartbeat interval, ms (ours until it says). */
  interval: number;
  /** When a frame of it last came, on the clock the room is given. */
  lastSeen: number;
  /** The number of its next MIDI frame. */
  nextSeq: number;
  /** Whether its heartbeat was seen (and `joined` told). */
  announced = false;
  /** Notes it left on at our endpoints: what was delivered of it. */
  readonly notes = new NoteTracker();
  readonly since: number = Date.now();

  constructor(id: string, interval: number, now: number, seq: number) {
    this.id = id;
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
  /** Messages of a hub, in its order, to give to our endpoints. */
  deliver(from: Remote, messages: Message[]): void;
  /** A hub announced itself for the first time. */
  joined(remote: Remote): void;
  /** A hub is gone: `notes` end what it left on. */
  left(remote: Remote, reason: LeaveReason, notes: NoteOff[]): void;
}

/** Counts a room keeps. */
export interface RoomCounts {
  /** Frames read (valid or not). */
  frames: number;
  /** Frames refused: foreign or malformed. */
  dropped: number;
  /** Frames that came too late: a repeated or older number, or from a hub that said goodbye. */
  late: number;
  /** MIDI frames that never came, by the numbers of the ones that did. */
  gaps: number;
}

const DEPARTED_KEPT = 1024;
const HALF_RANGE = 2 ** 31;

/** The room state of one link. */
export class Room {
  readonly #own: string;
  readonly #interval: number;
  readonly #missed: number;
  readonly #sink: RoomSink;
  readonly #remotes = new Map<string, Remote>();
  readonly #departed = new Set<string>();
  readonly counts: RoomCounts = { frames: 0, dropped: 0, late: 0, gaps: 0 };

  /**
   * @param own Our own id: frames with it are ours, never delivered.
   * @param interval Our heartbeat interval, assumed for hubs not heard yet.
   * @param missed How many beats a hub may miss before it is gone.
   * @param sink Where decisions go.
   */
  constructor(own: string, interval: number, missed: number, sink: RoomSink) {
    this.#own = own;
    this.#interval = interval;
    this.#missed = missed;
    this.#sink = sink;
  }

  /** The hubs that announced themselves and are still here. */
  get hubs(): RemoteHub[] {
    return [...this.#remotes.values()].filter((r) => r.announced).map((r) =>
      r.hub
    );
  }

  /**
   * Takes one frame (or a refused one: `undefined`).
   *
   * @param frame What the frame reader made of a payload.
   * @param now The time, ms, on the clock `sweep` gets.
   */
  receive(frame: Frame | undefined, now: number): void {
    this.counts.frames++;
    if (frame === undefined) {
      this.counts.dropped++;
      return;
    }
    if (frame.origin === this.#own) return;
    if (this.#departed.has(frame.origin)) {
      this.counts.late++;
      return;
    }
    let remote = this.#remotes.get(frame.origin);
    if (remote === undefined) {
      remote = new Remote(frame.origin, this.#interval, now, frame.seq);
      this.#remotes.set(frame.origin, remote);
    }
    remote.lastSeen = now;
    const ahead = (frame.seq - remote.nextSeq) >>> 0;
    switch (frame.kind) {
      case KIND_MIDI:
        if (ahead >= HALF_RANGE) {
          this.counts.late++;
          return;
        }
        this.counts.gaps += ahead;
        remote.nextSeq = (frame.seq + 1) >>> 0;
        this.#sink.deliver(remote, frame.messages);
        return;
      case KIND_BEAT:
        if (ahead > 0 && ahead < HALF_RANGE) {
          this.counts.gaps += ahead;
          remote.nextSeq = frame.seq;
        }
        remote.name = frame.name;
        remote.interval = frame.interval;
        if (!remote.announced) {
          remote.announced = true;
          this.#sink.joined(remote);
        }
        return;
      case KIND_BYE:
        if (ahead > 0 && ahead < HALF_RANGE) this.counts.gaps += ahead;
        this.#remotes.delete(remote.id);
        this.#departed.add(remote.id);
        if (this.#departed.size > DEPARTED_KEPT) {
          this.#departed.delete(this.#departed.values().next().value!);
        }
        this.#sink.left(remote, "goodbye", remote.notes.release());
        return;
    }
  }

  /**
   * Says goodbye for every hub not heard for `missed` of its intervals.
   *
   * @param now The time, ms.
   */
  sweep(now: number): void {
    for (const remote of [...this.#remotes.values()]) {
      if (now - remote.lastSeen > this.#missed * remote.interval) {
        this.#remotes.delete(remote.id);
        this.#sink.left(remote, "timeout", remote.notes.release());
      }
    }
  }
}
