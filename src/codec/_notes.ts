/**
 * Internal: which notes are held, so that none is left sounding when a
 * source goes away, and so that no policy drops the message that ends one.
 * Pure, beside the codec, so that the hub (through src/notes.ts) and the
 * codec's own RTP-MIDI receiver share this one tracker and its one rule of
 * what ends a note.
 *
 * @module
 */

import type { Message, NoteOff } from "./messages.ts";

/** The controls that end every note of their channel (see `#endsAll`). */
const ENDS_ALL = new Uint8Array(128);
for (const control of [120, 123, 124, 125, 126, 127]) ENDS_ALL[control] = 1;

/**
 * Follows a stream of messages and remembers which notes are on (a note_on
 * with velocity above 0 and no note_off since). `release()` gives the
 * note_off messages that end them all.
 *
 * What ends a note, as MIDI 1.0 says: a note_off or a note_on of velocity 0
 * for it; on its channel, all sound off (control 120), all notes off
 * (control 123), and omni off, omni on, mono on and poly on (controls
 * 124-127), which a receiver must treat as all notes off too; and a system
 * reset, which ends every note. Reset all controllers (control 121) ends
 * none.
 *
 * @example Ending what a client left on
 * ```ts
 * import assert from "node:assert/strict";
 * import { message, NoteTracker } from "@x/midisock";
 *
 * const notes = new NoteTracker();
 * notes.track(message("note_on", { note: 60 }));
 * notes.track(message("note_on", { channel: 9, note: 36 }));
 * notes.track(message("note_off", { note: 60 }));
 * assert.deepEqual(notes.release(), [
 *   message("note_off", { channel: 9, note: 36, velocity: 0 }),
 * ]);
 * assert.equal(notes.size, 0);
 * ```
 */
export class NoteTracker {
  /** One byte a note, indexed `channel * 128 + note`: 1 when held. */
  #held = new Uint8Array(16 * 128);
  /** How many notes each channel holds. */
  #perChannel = new Uint8Array(16);
  #size = 0;

  /** How many notes are held now. */
  get size(): number {
    return this.#size;
  }

  /**
   * Takes one message into account (see the class doc for what ends a
   * note).
   *
   * @param msg The message, as it goes by.
   */
  track(msg: Message): void {
    switch (msg.type) {
      case "note_on":
        return this.trackBytes(0x90 | msg.channel, msg.note, msg.velocity);
      case "note_off":
        return this.trackBytes(0x80 | msg.channel, msg.note, msg.velocity);
      case "control_change":
        return this.trackBytes(0xb0 | msg.channel, msg.control, msg.value);
      case "reset":
        return this.trackBytes(0xff, 0, 0);
    }
  }

  /**
   * Takes one message into account, given as its status byte and data
   * bytes (as it goes by on the wire, without making a message of it).
   *
   * @param status The status byte.
   * @param data1 The first data byte (0 when there is none).
   * @param data2 The second data byte (0 when there is none).
   */
  trackBytes(status: number, data1: number, data2: number): void {
    const kind = status & 0xf0;
    if (kind === 0x90 || kind === 0x80) {
      const channel = status & 15;
      const key = (channel << 7) | data1;
      const on = kind === 0x90 && data2 > 0 ? 1 : 0;
      const change = on - this.#held[key];
      if (change !== 0) {
        this.#size += change;
        this.#perChannel[channel] += change;
        this.#held[key] = on;
      }
    } else if (kind === 0xb0) {
      if (ENDS_ALL[data1] === 1) this.#endChannel(status & 15);
    } else if (status === 0xff) {
      this.#held.fill(0);
      this.#perChannel.fill(0);
      this.#size = 0;
    }
  }

  /**
   * Tells whether a message would end a note held now (see the class doc),
   * without taking it into account: what a policy asks before dropping it.
   *
   * @param status The status byte.
   * @param data1 The first data byte (0 when there is none).
   * @param data2 The second data byte (0 when there is none).
   * @returns Whether it ends at least one held note.
   *
   * @example A note_off that ends a held note, and one that does not
   * ```ts
   * import assert from "node:assert/strict";
   * import { NoteTracker } from "@x/midisock";
   *
   * const notes = new NoteTracker();
   * notes.trackBytes(0x90, 60, 100);
   * assert.equal(notes.ends(0x80, 60, 0), true);
   * assert.equal(notes.ends(0x80, 61, 0), false);
   * assert.equal(notes.ends(0xb0, 123, 0), true); // all notes off
   * assert.equal(notes.ends(0xb1, 123, 0), false); // another channel
   * ```
   */
  ends(status: number, data1: number, data2: number): boolean {
    if (this.#size === 0) return false;
    const kind = status & 0xf0;
    if (kind === 0x80 || (kind === 0x90 && data2 === 0)) {
      return this.#held[((status & 15) << 7) | data1] === 1;
    }
    if (kind === 0xb0) {
      return ENDS_ALL[data1] === 1 && this.#perChannel[status & 15] > 0;
    }
    return status === 0xff;
  }

  /**
   * Tells whether a note is held now.
   *
   * @param channel The channel, 0-15.
   * @param note The note, 0-127.
   * @returns Whether it is on.
   *
   * @example A held note
   * ```ts
   * import assert from "node:assert/strict";
   * import { message, NoteTracker } from "@x/midisock";
   *
   * const notes = new NoteTracker();
   * notes.track(message("note_on", { channel: 9, note: 36 }));
   * assert.ok(notes.has(9, 36) && !notes.has(0, 36));
   * ```
   */
  has(channel: number, note: number): boolean {
    return this.#held[((channel & 15) << 7) | (note & 127)] === 1;
  }

  /**
   * Ends every held note: returns a note_off (velocity 0) for each, in
   * channel and note order, and forgets them.
   *
   * @returns The note_off messages.
   */
  release(): NoteOff[] {
    const out: NoteOff[] = [];
    if (this.#size === 0) return out;
    for (let key = 0; key < this.#held.length; key++) {
      if (this.#held[key] === 0) continue;
      this.#held[key] = 0;
      out.push({
        type: "note_off",
        channel: key >> 7,
        note: key & 127,
        velocity: 0,
        time: 0,
      });
    }
    this.#perChannel.fill(0);
    this.#size = 0;
    return out;
  }

  /**
   * Ends every note of a channel. MIDI 1.0 makes all sound off (120) and
   * all notes off (123) end the channel's notes, and a receiver that gets
   * omni off, omni on, mono on or poly on (124-127) must end them as all
   * notes off does: whatever sounds on that channel stops. The tracker
   * follows the receiver, so that it never counts as held a note the
   * receiver has ended (its note_off would then be released twice, and
   * let past a policy as if it ended something).
   */
  #endChannel(channel: number): void {
    if (this.#perChannel[channel] === 0) return;
    const from = channel << 7;
    this.#held.fill(0, from, from + 128);
    this.#size -= this.#perChannel[channel];
    this.#perChannel[channel] = 0;
  }
}
