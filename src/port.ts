/**
 * What every port shares, network or hardware: the input and output
 * interfaces (mido's vocabulary made async), the bounded message queue that
 * feeds inputs, and mido's reset and panic message sets.
 *
 * @module
 */

import type { ControlChange, Message } from "./codec/messages.ts";
import { PortClosedError } from "./errors.ts";

/** What every port has. */
export interface Port extends AsyncDisposable {
  /** A name for people: `host:port` for sockets, the device name for hardware. */
  readonly name: string;
  /** Whether the port is closed, by the user or by the other end. */
  readonly closed: boolean;
  /** Closes the port. Closing twice does nothing. */
  close(): Promise<void>;
  /**
   * Optional: closes the port at once, dropping what waits to be sent (a
   * peer that stopped reading is not waited for). A hub uses it for the
   * endpoints it drops; a port without it is closed with `close()`.
   *
   * @param reason Why, for the port's own records.
   */
  abort?(reason?: unknown): Promise<void>;
  /**
   * Optional: how many messages the port dropped on its own since it opened
   * (unfinished, oversized or malformed input, a full queue, its own
   * policies). A hub adds it to the endpoint's `stats.dropped`.
   */
  readonly dropped?: number;
}

/**
 * A port messages come from. Iterate it with `for await`; iteration ends
 * when the port closes (after the messages that arrived before).
 */
export interface InputPort extends Port, AsyncIterable<Message> {
  /**
   * Waits for the next message. A `receive()` you stop waiting for (one
   * that lost a `Promise.race` against a timeout) still takes the next
   * message when it comes: to wait with a deadline, keep that promise for
   * the next round, or use `poll()`.
   * @throws {PortClosedError} Once the port is closed and nothing is pending.
   */
  receive(): Promise<Message>;
  /** Returns the next pending message, or `undefined`, without waiting. */
  poll(): Message | undefined;
  /** Yields the messages that are pending now, without waiting. */
  iterPending(): IterableIterator<Message>;
}

/** A port messages go to. */
export interface OutputPort extends Port {
  /**
   * Sends one message. Ports may queue it and resolve at once, but keep
   * order and apply backpressure: a sender that awaits each send never
   * runs far ahead of the other end.
   * @throws {TypeError | RangeError} For a malformed message.
   * @throws {PortClosedError} When the port is closed.
   */
  send(msg: Message): Promise<void>;
  /**
   * Optional: sends several messages at once, in order (on a socket, in one
   * write). A hub hands a port that has it everything that waits for it in
   * one call; others get one `send` per message.
   * @throws {TypeError | RangeError} For a malformed message (none is sent).
   * @throws {PortClosedError} When the port is closed.
   */
  sendAll?(messages: Iterable<Message>): Promise<void>;
  /**
   * Sends mido's reset set: on each channel, all notes off (control 123)
   * then reset all controllers (control 121). Does nothing on a closed port.
   */
  reset(): Promise<void>;
  /**
   * Sends mido's panic set: all sounds off (control 120) on each channel.
   * Does nothing on a closed port.
   */
  panic(): Promise<void>;
}

/** A port that is both an input and an output. */
export interface IOPort extends InputPort, OutputPort {}

function controlOnEachChannel(controls: number[]): readonly ControlChange[] {
  const out: ControlChange[] = [];
  for (let channel = 0; channel < 16; channel++) {
    for (const control of controls) {
      out.push({ type: "control_change", channel, control, value: 0, time: 0 });
    }
  }
  return Object.freeze(out);
}

/** mido's `reset()` set: controls 123 then 121, value 0, on channels 0-15. */
export const RESET_MESSAGES: readonly ControlChange[] = controlOnEachChannel([
  123,
  121,
]);

/** mido's `panic()` set: control 120 value 0 on channels 0-15. */
export const PANIC_MESSAGES: readonly ControlChange[] = controlOnEachChannel([
  120,
]);

interface Taker<T> {
  resolve(value: T | undefined): void;
}

/**
 * A bounded first-in first-out queue with waiting readers: what feeds every
 * input port. `push` refuses past the capacity (the producer then waits with
 * `waitForSpace` or drops, as its policy says), `end` lets readers drain what
 * is queued and then tells them there is no more.
 *
 * @typeParam T What it holds.
 *
 * @example A queue between a producer and a reader
 * ```ts
 * import assert from "node:assert/strict";
 * import { MessageQueue } from "@x/midisock";
 *
 * const queue = new MessageQueue<number>(2);
 * assert.ok(queue.push(1));
 * queue.end();
 * assert.equal(queue.push(2), false);
 * assert.equal(await queue.next(), 1);
 * assert.equal(await queue.next(), undefined);
 * ```
 */
export class MessageQueue<T> {
  #items: T[] = [];
  #head = 0;
  #capacity: number;
  #ended = false;
  #takers: Taker<T>[] = [];
  #spaceWaiters: (() => void)[] = [];

  /**
   * Makes an empty queue.
   *
   * @param capacity How many items it holds at most.
   * @throws {RangeError} If capacity is not a positive integer.
   */
  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(
        `Queue capacity must be a positive integer: got ${capacity}`,
      );
    }
    this.#capacity = capacity;
  }

  /** How many items are waiting. */
  get size(): number {
    return this.#items.length - this.#head;
  }

  /** How many items it holds at most. */
  get capacity(): number {
    return this.#capacity;
  }

  /** Whether `end()` was called: nothing more will be accepted. */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Adds an item, or hands it straight to a waiting reader.
   *
   * @param item The item.
   * @returns `false` if the queue is full or ended (the item is not kept).
   */
  push(item: T): boolean {
    if (this.#ended) return false;
    const taker = this.#takers.shift();
    if (taker !== undefined) {
      taker.resolve(item);
      return true;
    }
    if (this.size >= this.#capacity) return false;
    this.#items.push(item);
    return true;
  }

  /**
   * Takes the next item without waiting.
   *
   * @returns The item, or `undefined` when none is queued.
   */
  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined as T;
    if (this.#head === this.#items.length) {
      this.#items.length = 0;
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    // Producers wake once half the queue is free, not at every item taken:
    // they then fill it in one go instead of one item per wake-up.
    if (this.#spaceWaiters.length > 0 && this.size <= this.#capacity >> 1) {
      this.#wakeProducers();
    }
    return item;
  }

  /**
   * Waits for the next item.
   *
   * @returns The item, or `undefined` once the queue has ended and is empty.
   */
  next(): Promise<T | undefined> {
    if (this.#head < this.#items.length) return Promise.resolve(this.shift());
    if (this.#ended) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#takers.push({ resolve }));
  }

  /**
   * Resolves once there is room for an item, or the queue has ended. A full
   * queue lets its producers go on once half of it is free.
   *
   * @returns A promise of that moment.
   */
  waitForSpace(): Promise<void> {
    if (this.size < this.#capacity || this.#ended) return Promise.resolve();
    return new Promise((resolve) => this.#spaceWaiters.push(resolve));
  }

  /**
   * Accepts nothing more: readers get what is queued, then `undefined`.
   * Ending twice does nothing.
   */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    for (const taker of this.#takers.splice(0)) taker.resolve(undefined);
    this.#wakeProducers();
  }

  /** Drops every queued item. */
  clear(): void {
    this.#items = [];
    this.#head = 0;
    this.#wakeProducers();
  }

  #wakeProducers(): void {
    for (const wake of this.#spaceWaiters.splice(0)) wake();
  }
}

/** Queue capacity of inputs when no option says otherwise. */
export const DEFAULT_QUEUE_SIZE = 4096;

/**
 * The input half every port shares: a bounded queue of received messages and
 * mido's ways of reading it. Subclasses feed it with `deliver` and say when
 * nothing more will come with `finish`.
 *
 * @example A port fed by hand
 * ```ts
 * import assert from "node:assert/strict";
 * import { InputPortBase, message } from "@x/midisock";
 *
 * class ManualPort extends InputPortBase {
 *   readonly name = "manual";
 *   feed() {
 *     this.deliver(message("start"));
 *     this.finish();
 *   }
 *   close(): Promise<void> {
 *     this.finish(undefined, true);
 *     return Promise.resolve();
 *   }
 * }
 * const port = new ManualPort();
 * port.feed();
 * assert.deepEqual(await Array.fromAsync(port), [message("start")]);
 * ```
 */
export abstract class InputPortBase implements InputPort {
  #queue: MessageQueue<Message>;
  #closedBy: unknown;
  #userClosed = false;

  /** The port's name. */
  abstract readonly name: string;

  /**
   * Makes the input side.
   *
   * @param queueSize How many received messages wait for the reader at most.
   */
  constructor(queueSize: number = DEFAULT_QUEUE_SIZE) {
    this.#queue = new MessageQueue(queueSize);
  }

  /** Whether the port is closed, by the user or by the other end. */
  get closed(): boolean {
    return this.#queue.ended;
  }

  /**
   * Queues a received message for the reader.
   *
   * @param msg The message.
   * @returns `false` when the queue is full or the port closed (not kept).
   */
  protected deliver(msg: Message): boolean {
    return this.#queue.push(msg);
  }

  /**
   * Resolves once the queue has room again (or the port closed): how a
   * producer that can wait applies backpressure.
   *
   * @returns A promise of that moment.
   */
  protected roomForMore(): Promise<void> {
    return this.#queue.waitForSpace();
  }

  /**
   * Says nothing more will arrive. Messages already queued are still read
   * unless `discard` is set (a user's close discards them).
   *
   * @param cause Why, when it was an error; `receive()` reports it as the
   * `cause` of its {@linkcode PortClosedError}.
   * @param discard Drop what is queued.
   */
  protected finish(cause?: unknown, discard = false): void {
    if (!this.#queue.ended) this.#closedBy = cause;
    if (discard) {
      this.#userClosed = true;
      this.#queue.clear();
    }
    this.#queue.end();
  }

  /**
   * Waits for the next message.
   *
   * @returns The message.
   * @throws {PortClosedError} Once the port is closed and nothing is pending.
   */
  async receive(): Promise<Message> {
    const msg = await this.#queue.next();
    if (msg === undefined) {
      throw new PortClosedError(
        this.name,
        this.#closedBy === undefined || this.#userClosed
          ? undefined
          : { cause: this.#closedBy },
      );
    }
    return msg;
  }

  /**
   * Returns the next pending message without waiting.
   *
   * @returns The message, or `undefined` when none is pending.
   */
  poll(): Message | undefined {
    return this.#queue.shift();
  }

  /**
   * Yields the messages pending now, without waiting.
   *
   * @returns An iterator over them.
   */
  *iterPending(): IterableIterator<Message> {
    for (let msg = this.poll(); msg !== undefined; msg = this.poll()) {
      yield msg;
    }
  }

  /**
   * Yields each message as it arrives, until the port closes. Breaking out
   * of the loop leaves the port open.
   *
   * @returns An async iterator over the messages.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<Message> {
    // Written out rather than as an async generator: when messages are
    // queued, each step is one resolved promise.
    const queue = this.#queue;
    const ended: IteratorResult<Message> = { value: undefined, done: true };
    const step = (value: Message | undefined): IteratorResult<Message> =>
      value === undefined ? ended : { value, done: false };
    const iterator: AsyncIterableIterator<Message> = {
      next(): Promise<IteratorResult<Message>> {
        const value = queue.shift();
        return value === undefined
          ? queue.next().then(step)
          : Promise.resolve({ value, done: false });
      },
      return(): Promise<IteratorResult<Message>> {
        return Promise.resolve(ended);
      },
      [Symbol.asyncIterator](): AsyncIterableIterator<Message> {
        return iterator;
      },
    };
    return iterator;
  }

  /** Closes the port. Closing twice does nothing. */
  abstract close(): Promise<void>;

  /** Closes the port, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
