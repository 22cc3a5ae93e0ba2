// Endpoints the timing tests put on a hub: a player that hands the hub
// messages with the time it chooses, a timed endpoint that hears each batch
// at once with its time, and a plain one that hears each message when the
// hub plays it out (a subclass says what it keeps of them).

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

/**
 * A sink that hands each batch the hub routes to `hear` at once and never
 * holds the hub back: what every recording endpoint of these tests is.
 */
export function hearingSink(hear: (batch: Batch) => void, timed = true): Sink {
  return {
    write: (batch: Batch) => {
      hear(batch);
      return true;
    },
    queuedBytes: 0,
    copiedBytes: 0,
    progress: 0,
    slow: "drop",
    drained: () => Promise.resolve(),
    timed,
  };
}

/** An input that hands the hub framed bytes with the time it chooses. */
export class Player {
  readonly name: string;
  closed = false;
  #take:
    | ((framed: Uint8Array, at?: number, origin?: string) => unknown)
    | undefined;
  #end: ((cause?: unknown) => void) | undefined;
  readonly [SOURCE]: Source;

  constructor(name = "player") {
    this.name = name;
    this[SOURCE] = {
      attach: (take, end) => {
        this.#take = take;
        this.#end = end;
      },
    };
  }

  /**
   * Plays messages (or their framed bytes) as having happened at `at` (or
   * now), from `origin`; nothing before the hub took the player.
   */
  play(
    what: Message | readonly Message[] | Uint8Array,
    at?: number,
    origin?: string,
  ): void {
    const framed = what instanceof Uint8Array
      ? what
      : Array.isArray(what)
      ? new Uint8Array(what.flatMap((msg) => [...encode(msg)]))
      : encode(what as Message);
    this.#take?.(framed, at, origin);
  }

  /** The peer goes away. */
  leave(): void {
    this.#end!();
  }

  // An input that is also iterable, as the hub checks.
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

/**
 * An endpoint that carries time on itself: the hub hands it each batch at
 * once, with the batch's time (with `timed` false, it is a plain endpoint
 * that hears when the playout delay says).
 */
export abstract class TimedEndpoint {
  abstract readonly name: string;
  closed = false;
  readonly [SINK]: Sink;

  constructor(timed = true) {
    this[SINK] = hearingSink((batch) => {
      for (const msg of batch.messages) this.hear(msg, batch.at);
    }, timed);
  }

  /** Keeps what the test needs of one message and its batch's time. */
  protected abstract hear(msg: Message, at: number | undefined): void;

  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * A plain output: the hub sends it each message when it plays it out (a
 * closed one refuses, as ports do).
 */
export abstract class PlainEndpoint implements OutputPort {
  abstract readonly name: string;
  closed = false;

  send(msg: Message): Promise<void> {
    if (this.closed) return Promise.reject(new PortClosedError(this.name));
    this.hear(msg);
    return Promise.resolve();
  }

  /** Keeps what the test needs of one message. */
  protected abstract hear(msg: Message): void;

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
