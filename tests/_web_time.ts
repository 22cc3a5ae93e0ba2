// Helpers of the web timing tests: an input that plays with the time it
// chooses, and an output that carries time itself (what the hub gives a
// timed endpoint).

import type { Message } from "../mod.ts";
import { PlainEndpoint, TimedEndpoint } from "./_timed_ports.ts";

export { Player } from "./_timed_ports.ts";

/** An output that carries time itself: it hears at once, with `at`. */
export class TimedListener extends TimedEndpoint {
  readonly name = "timed";
  readonly heard: [string, number | undefined][] = [];
  /** What it heard, whole, with the time of each. */
  readonly messages: [Message, number | undefined][] = [];
  protected hear(msg: Message, at: number | undefined): void {
    this.heard.push([describe(msg), at]);
    this.messages.push([msg, at]);
  }
}

/** A plain output (the hub delays what it sends it) that notes when it heard what. */
export class PlainListener extends PlainEndpoint {
  readonly name = "plain";
  readonly heard: [string, number][] = [];
  /** What it heard, whole, with when (on the `now` clock). */
  readonly messages: [Message, number][] = [];
  readonly #now: () => number;
  constructor(now: () => number) {
    super();
    this.#now = now;
  }
  protected hear(msg: Message): void {
    this.heard.push([describe(msg), this.#now()]);
    this.messages.push([msg, this.#now()]);
  }
}

/** A message, shortly: `note_on 60`. */
export function describe(msg: Message): string {
  return msg.type === "note_on" || msg.type === "note_off"
    ? `${msg.type} ${msg.note}`
    : msg.type;
}
