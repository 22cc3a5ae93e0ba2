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
 * import { message, NoteTracker } from "@x/midisock";
 *
 * const notes = new NoteTracker();
 * notes.track(message("note_on", { note: 60 }));
 * notes.track(message("note_on", { channel: 9, note: 36 }));
 * notes.track(message("note_off", { note: 60 }));
 * console.log(notes.release()); // [ { type: "note_off", channel: 9, note: 36, velocity: 0, time: 0 } ]
 * ```
 */
export class NoteTracker {
  #held = new Set<number>();

  /** How many notes are held now. */
  get size(): number {
    return this.#held.size;
  }

  /**
   * Takes one message into account. All notes off (control 123) and all
   * sounds off (control 120) end every note of their channel.
   *
   * @param msg The message, as it goes by.
   */
  track(msg: Message): void {
    switch (msg.type) {
      case "note_on":
        if (msg.velocity > 0) this.#held.add(msg.channel * 128 + msg.note);
        else this.#held.delete(msg.channel * 128 + msg.note);
        break;
      case "note_off":
        this.#held.delete(msg.channel * 128 + msg.note);
        break;
      case "control_change":
        if (msg.control === 123 || msg.control === 120) {
          for (const key of this.#held) {
            if (key >> 7 === msg.channel) this.#held.delete(key);
          }
        }
        break;
      case "reset":
        this.#held.clear();
        break;
    }
  }

  /**
   * Ends every held note: returns a note_off (velocity 0) for each, in
   * channel and note order, and forgets them.
   *
   * @returns The note_off messages.
   */
  release(): NoteOff[] {
    const keys = [...this.#held].sort((a, b) => a - b);
    this.#held.clear();
    return keys.map((key) => ({
      type: "note_off",
      channel: key >> 7,
      note: key & 127,
      velocity: 0,
      time: 0,
    }));
  }
}
