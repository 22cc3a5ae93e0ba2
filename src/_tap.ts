/**
 * Internal: how an input port hands what it reads to a hub. Until a hub
 * takes the input over (through the port's {@linkcode Source}), messages go
 * to the port's own queue, waiting only while it is full; from then on
 * framed bytes go to the hub as they are, the queue's messages first. The
 * input's end is kept for a hub that comes after it.
 *
 * @module
 */

import type { Message } from "./codec/messages.ts";
import { decodeFramed, encodeFramed } from "./codec/_framer.ts";
import type { Source } from "./sink.ts";

/** What a hub's `take` is (see {@linkcode Source.attach}). */
export type Take = (framed: Uint8Array, at?: number) => void | Promise<void>;

/** The port's own queue, as the tap uses it. */
export interface TapQueue {
  /** The port's name, for errors. */
  readonly name: string;
  /** Whether the port is closed: then what arrives is dropped. */
  closed(): boolean;
  /** Takes the messages queued so far (for the hub, which goes on). */
  pending(): Iterable<Message>;
  /** Queues a message; `false` when the queue is full. */
  deliver(msg: Message): boolean;
  /** Resolves when the queue has room again. */
  room(): Promise<void>;
}

/** An input port's hand-over to a hub. */
export class InputTap {
  /** The hub's `take`, once a hub took the input over. */
  take: Take | undefined;
  #end: ((cause?: unknown) => void) | undefined;
  #ended: { cause: unknown } | undefined;
  readonly #queue: TapQueue;

  /** What the port offers under `SOURCE`. */
  readonly source: Source;

  constructor(queue: TapQueue) {
    this.#queue = queue;
    this.source = {
      attach: (take, end) => {
        if (this.take !== undefined) {
          throw new Error(`The input of ${queue.name} is taken already`);
        }
        const queued = [...queue.pending()];
        this.take = take;
        this.#end = end;
        if (queued.length > 0) take(encodeFramed(queued));
        if (this.#ended !== undefined) end(this.#ended.cause);
      },
    };
  }

  /** Whether the input ended. */
  get ended(): boolean {
    return this.#ended !== undefined;
  }

  /** The input ended, with `cause` when it was an error. Once only. */
  end(cause?: unknown): void {
    if (this.#ended !== undefined) return;
    this.#ended = { cause };
    this.#end?.(cause);
  }

  /**
   * Hands on framed bytes (a copy of them: the caller may reuse its
   * buffer) that happened `at`, when known.
   *
   * @returns A promise while the reader takes no more: read nothing more
   * until it settles.
   */
  give(framed: Uint8Array, at?: number): void | Promise<void> {
    const take = this.take;
    if (take !== undefined) return take(framed.slice(), at);
    return this.giveMessages(decodeFramed(framed, []), at);
  }

  /** Hands on messages, as {@linkcode InputTap.give} does framed bytes. */
  giveMessages(messages: Message[], at?: number): void | Promise<void> {
    for (let i = 0; i < messages.length; i++) {
      if (!this.#queue.deliver(messages[i])) {
        // After a close on this side, read on (until the peer closes too)
        // but keep nothing.
        if (this.#queue.closed()) return;
        return this.#giveSlowly(messages, i, at);
      }
    }
  }

  async #giveSlowly(
    messages: Message[],
    from: number,
    at?: number,
  ): Promise<void> {
    for (let i = from; i < messages.length && !this.#queue.closed(); i++) {
      for (;;) {
        // A hub took the input over meanwhile (it read what was queued):
        // the rest goes to it.
        const take = this.take;
        if (take !== undefined) {
          return take(encodeFramed(messages.slice(i)), at);
        }
        if (this.#queue.deliver(messages[i]) || this.#queue.closed()) break;
        await this.#queue.room();
      }
    }
  }
}
