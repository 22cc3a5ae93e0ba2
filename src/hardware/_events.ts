/**
 * A queue of events read as an async iterator, for watchers and followers:
 * events wait until read, a reader waits until one comes, closing ends the
 * iteration (and breaking out of `for await` closes).
 *
 * @module
 */

/** A queue of events; see the module doc. */
export class EventQueue<T> implements AsyncIterableIterator<T> {
  #events: T[] = [];
  #takers: ((result: IteratorResult<T>) => void)[] = [];
  #ended = false;
  readonly #onWait: (waiting: boolean) => void;
  readonly #onReturn: () => Promise<void>;

  /**
   * Makes a queue.
   *
   * @param onWait Told when a reader starts (`true`) and stops waiting.
   * @param onReturn Called when the reader breaks out of its loop.
   */
  constructor(
    onWait: (waiting: boolean) => void,
    onReturn: () => Promise<void>,
  ) {
    this.#onWait = onWait;
    this.#onReturn = onReturn;
  }

  /** Whether the queue has ended. */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Adds an event, or hands it to a waiting reader.
   *
   * @param event The event.
   */
  push(event: T): void {
    if (this.#ended) return;
    const taker = this.#takers.shift();
    if (taker === undefined) this.#events.push(event);
    else {
      taker({ value: event, done: false });
      if (this.#takers.length === 0) this.#onWait(false);
    }
  }

  /** Ends the queue: readers get what is queued, then done. */
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    for (const taker of this.#takers.splice(0)) {
      taker({ value: undefined, done: true });
    }
    this.#onWait(false);
  }

  /**
   * Takes the next event, waiting for one.
   *
   * @returns The event, or done once the queue has ended and is empty.
   */
  next(): Promise<IteratorResult<T>> {
    if (this.#events.length > 0) {
      return Promise.resolve({ value: this.#events.shift()!, done: false });
    }
    if (this.#ended) return Promise.resolve({ value: undefined, done: true });
    if (this.#takers.length === 0) this.#onWait(true);
    return new Promise((resolve) => this.#takers.push(resolve));
  }

  /**
   * Stops reading (the reader broke out of its loop).
   *
   * @returns Done.
   */
  async return(): Promise<IteratorResult<T>> {
    await this.#onReturn();
    return { value: undefined, done: true };
  }

  /**
   * The queue itself.
   *
   * @returns The queue.
   */
  [Symbol.asyncIterator](): this {
    return this;
  }
}
