/**
 * Internal: a hub's events, to callbacks (`listen`) and to bounded feeds
 * (`events()`), which report what a slow reader missed instead of holding
 * memory.
 *
 * @module
 */

import { callBack } from "../_call.ts";
import { positiveInteger } from "../_policy.ts";
import type { EventFeed, EventOptions, HubEvent } from "./types.ts";

/** Events a feed keeps for a reader that falls behind, by default. */
const DEFAULT_FEED_SIZE = 10000;

/** A bounded feed of events. */
class Feed implements EventFeed {
  readonly #capacity: number;
  readonly #stop: () => void;
  #items: HubEvent[] = [];
  #missed = 0;
  #waiting: ((result: IteratorResult<HubEvent>) => void) | undefined;
  #done = false;

  constructor(capacity: number, stop: () => void) {
    this.#capacity = capacity;
    this.#stop = stop;
  }

  push(event: HubEvent): void {
    if (this.#done) return;
    const waiting = this.#waiting;
    if (waiting !== undefined) {
      this.#waiting = undefined;
      return waiting({ value: event, done: false });
    }
    if (this.#items.length >= this.#capacity) {
      this.#missed++;
      return;
    }
    this.#items.push(event);
  }

  next(): Promise<IteratorResult<HubEvent>> {
    if (this.#missed > 0) {
      const count = this.#missed;
      this.#missed = 0;
      return Promise.resolve({ value: { type: "missed", count }, done: false });
    }
    const event = this.#items.shift();
    if (event !== undefined) {
      return Promise.resolve({ value: event, done: false });
    }
    if (this.#done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => this.#waiting = resolve);
  }

  return(): Promise<IteratorResult<HubEvent>> {
    this.close();
    return Promise.resolve({ value: undefined, done: true });
  }

  close(): void {
    this.#items = [];
    this.end();
  }

  /** Takes nothing more; what is queued is still read. */
  end(): void {
    if (this.#done) return;
    this.#done = true;
    this.#stop();
    this.#waiting?.({ value: undefined, done: true });
    this.#waiting = undefined;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<HubEvent> {
    return this;
  }
}

interface Listener {
  readonly fn: (event: HubEvent) => void;
  readonly messages: boolean;
}

/** Who hears a hub's events, and how. */
export class Events {
  readonly #listeners = new Set<Listener>();
  readonly #feeds = new Set<Feed>();
  #messageListeners = 0;
  #ended = false;

  /** Whether anyone asked for `message` events (they cost a message each). */
  get wantMessages(): boolean {
    return this.#messageListeners > 0;
  }

  /** Calls every listener that wants this event. */
  emit(event: HubEvent): void {
    for (const listener of this.#listeners) {
      if (event.type === "message" && !listener.messages) continue;
      callBack(listener.fn, event);
    }
  }

  /** See `Hub.listen`. */
  listen(
    listener: (event: HubEvent) => void,
    options: { messages?: boolean } = {},
  ): () => void {
    const entry: Listener = {
      fn: listener,
      messages: options.messages ?? false,
    };
    this.#listeners.add(entry);
    if (entry.messages) this.#messageListeners++;
    return () => {
      if (this.#listeners.delete(entry) && entry.messages) {
        this.#messageListeners--;
      }
    };
  }

  /** See `Hub.events`. */
  feed(options: EventOptions = {}): EventFeed {
    const capacity = positiveInteger(
      "queueSize",
      options.queueSize ?? DEFAULT_FEED_SIZE,
    );
    let stop = () => {};
    const feed = new Feed(capacity, () => {
      stop();
      this.#feeds.delete(feed);
    });
    stop = this.listen((event) => feed.push(event), options);
    this.#feeds.add(feed);
    if (this.#ended) feed.end();
    return feed;
  }

  /** Ends every feed (what they hold is still read), now and to come. */
  end(): void {
    this.#ended = true;
    for (const feed of [...this.#feeds]) feed.end();
  }
}
