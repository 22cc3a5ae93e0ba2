/**
 * Internal: the sink the hub gives any output port that has none of its
 * own (hardware, a page's fallback, a program's port): a queue, sent one
 * message at a time, or all that waits at once to a port with `sendAll`.
 *
 * @module
 */

import type { Message } from "../codec/messages.ts";
import { encodedLength } from "../codec/encode.ts";
import { PortClosedError } from "../errors.ts";
import type { OutputPort } from "../port.ts";
import type { Batch, Sink } from "../sink.ts";

/** A sink for any `OutputPort`: a queue, sent one message at a time. */
export class PortSink implements Sink {
  readonly #port: OutputPort;
  readonly #onClosed: (reason: unknown) => void;
  readonly #onError: (error: unknown) => void;
  #queue: Message[] = [];
  #head = 0;
  #bytes = 0;
  #progress = 0;
  #pumping: Promise<void> | undefined;
  #closed = false;
  #drain: PromiseWithResolvers<void> | undefined;
  readonly slow = "drop" as const;

  /**
   * @param port The port.
   * @param onClosed Called once when the port turns out closed.
   * @param onError Called with what a send threw (the sink goes on).
   */
  constructor(
    port: OutputPort,
    onClosed: (reason: unknown) => void,
    onError: (error: unknown) => void,
  ) {
    this.#port = port;
    this.#onClosed = onClosed;
    this.#onError = onError;
  }

  get queuedBytes(): number {
    return this.#bytes;
  }

  get copiedBytes(): number {
    return this.#bytes;
  }

  get progress(): number {
    return this.#progress;
  }

  write(batch: Batch): boolean {
    if (this.#closed) return false;
    if (this.#bytes === 0) this.#progress++;
    for (const msg of batch.messages) {
      this.#queue.push(msg);
      this.#bytes += encodedLength(msg);
    }
    this.#pumping ??= this.#pump();
    return true;
  }

  drained(): Promise<void> {
    if (this.#bytes === 0 || this.#closed) return Promise.resolve();
    this.#drain ??= Promise.withResolvers<void>();
    return this.#drain.promise;
  }

  async #pump(): Promise<void> {
    const port = this.#port;
    while (this.#head < this.#queue.length && !this.#closed) {
      // A port that takes many at once gets all that wait; others one by one.
      const messages = port.sendAll !== undefined
        ? this.#queue.slice(this.#head)
        : [this.#queue[this.#head]];
      this.#head += messages.length;
      try {
        await (messages.length === 1
          ? port.send(messages[0])
          : port.sendAll!(messages));
      } catch (error) {
        if (error instanceof PortClosedError || port.closed) {
          this.#closed = true;
          this.#onClosed(error);
          break;
        }
        this.#onError(error);
      }
      for (const msg of messages) this.#bytes -= encodedLength(msg);
      this.#progress++;
      if (this.#head === this.#queue.length) {
        this.#queue = [];
        this.#head = 0;
      }
    }
    this.#queue = [];
    this.#head = 0;
    this.#bytes = 0;
    this.#pumping = undefined;
    this.#drain?.resolve();
    this.#drain = undefined;
  }

  close(): void {
    this.#closed = true;
  }
}
