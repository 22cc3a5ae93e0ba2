/**
 * Which notes are held, so that none is left sounding when a source goes
 * away.
 *
 * @module
 */

import type { Message, NoteOff } from "./codec/messages.ts";

/**
 * Follows a stream of messages and remembers which notes are on (a note_on
 * with velocity above 0 and no note_off since). `release()` gives the
 * note_off messages that end them all.
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
 * assert.ok(notes.has(9, 36) && !notes.has(0, 60));
 * assert.deepEqual(notes.release(), [
 *   message("note_off", { channel: 9, note: 36, velocity: 0 }),
 * ]);
 * assert.equal(notes.size, 0);
 * ```
 */
export class NoteTracker {
  /** One byte a note, indexed `channel * 128 + note`: 1 when held. */
  #held = new Uint8Array(16 * 128);
  #size = 0;

  /** How many notes are held now. */
  get size(): number {
    return this.#size;
  }

  /**
   * Takes one message into account. All notes off (control 123) and all
   * sounds off (control 120) end every note of their channel; a system
   * reset ends every note.
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
      const key = ((status & 15) << 7) | data1;
      const on = kind === 0x90 && data2 > 0 ? 1 : 0;
      this.#size += on - this.#held[key];
      this.#held[key] = on;
    } else if (kind === 0xb0) {
      if ((data1 === 123 || data1 === 120) && this.#size > 0) {
        const from = (status & 15) << 7;
        for (let key = from; key < from + 128; key++) {
          this.#size -= this.#held[key];
          this.#held[key] = 0;
        }
      }
    } else if (status === 0xff) {
      this.#held.fill(0);
      this.#size = 0;
    }
  }

  /**
   * Tells whether a note is held now.
   *
   * @param channel The channel, 0-15.
   * @param note The note, 0-127.
   * @returns Whether it is on.
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
    this.#size = 0;
    return out;
  }
}
