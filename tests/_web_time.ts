// Helpers of the web timing tests: an input that plays with the time it
// chooses, and an output that carries time itself (what the hub gives a
// timed endpoint).

import {
  type Batch,
  encode,
  type Message,
  type OutputPort,
  PortClosedError,
  SINK,
  type Sink,
  SOURCE,
  type Source,
} from "../mod.ts";

/** An input that hands the hub framed bytes with the time it chooses. */
export class Player {
  readonly name = "player";
  closed = false;
  #take: ((framed: Uint8Array, at?: number) => unknown) | undefined;
  #end: (() => void) | undefined;
  readonly [SOURCE]: Source;
  constructor() {
    this[SOURCE] = {
      attach: (take, end) => {
        this.#take = take;
        this.#end = end;
      },
    };
  }
  /** Plays `msg` as having happened at `at`. */
  play(msg: Message, at: number): void {
    this.#take!(encode(msg), at);
  }
  async *[Symbol.asyncIterator](): AsyncIterator<Message> {}
  poll(): undefined {
    return undefined;
  }
  close(): Promise<void> {
    this.closed = true;
    this.#end?.();
    return Promise.resolve();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** An output that carries time itself: it hears at once, with `at`. */
export class TimedListener {
  readonly name = "timed";
  readonly heard: [string, number | undefined][] = [];
  /** What it heard, whole, with the time of each. */
  readonly messages: [Message, number | undefined][] = [];
  closed = false;
  readonly [SINK]: Sink = {
    write: (batch: Batch) => {
      for (const msg of batch.messages) {
        this.heard.push([describe(msg), batch.at]);
        this.messages.push([msg, batch.at]);
      }
      return true;
    },
    queuedBytes: 0,
    copiedBytes: 0,
    progress: 0,
    slow: "drop",
    drained: () => Promise.resolve(),
    timed: true,
  };
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** A plain output (the hub delays what it sends it) that notes when it heard what. */
export class PlainListener implements OutputPort {
  readonly name = "plain";
  readonly heard: [string, number][] = [];
  /** What it heard, whole, with when (on the `now` clock). */
  readonly messages: [Message, number][] = [];
  closed = false;
  readonly #now: () => number;
  constructor(now: () => number) {
    this.#now = now;
  }
  send(msg: Message): Promise<void> {
    if (this.closed) return Promise.reject(new PortClosedError(this.name));
    this.heard.push([describe(msg), this.#now()]);
    this.messages.push([msg, this.#now()]);
    return Promise.resolve();
  }
  reset = (): Promise<void> => Promise.resolve();
  panic = (): Promise<void> => Promise.resolve();
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** A message, shortly: `note_on 60`. */
export function describe(msg: Message): string {
  return msg.type === "note_on" || msg.type === "note_off"
    ? `${msg.type} ${msg.note}`
    : msg.type;
}
