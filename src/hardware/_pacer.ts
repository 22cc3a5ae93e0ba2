/**
 * Sends to a JACK output at the pace JACK takes them. RtMidi's JACK output
 * writes each message into a 16 KiB ring that its process callback empties
 * once per cycle; a message longer than the ring (less a 4-byte header) is
 * silently dropped, a full ring makes `sendMessage` spin until the next
 * cycle (5.0 and later: the JavaScript thread stalls) or overflow and
 * corrupt what follows (4.0). So every message waits here, in order, until
 * it fits: where the ring can be read, until it has room; elsewhere, until
 * the bytes written in the last period (plus a millisecond) leave room. A
 * sysex longer than the ring goes as several JACK events, which RtMidi
 * (and every receiver that follows JACK's convention) joins again.
 *
 * @module
 */

import { RtMidiError } from "./errors.ts";

/** What a pacer writes to. */
export interface PacedSink {
  /**
   * The bytes the ring has room for now, or `undefined` when it cannot be
   * read (then the pacer counts what it wrote per period).
   */
  room(): number | undefined;
  /**
   * Writes one JACK event's bytes.
   *
   * @returns Whether RtMidi took them.
   */
  write(bytes: Uint8Array<ArrayBuffer>): boolean;
  /** JACK's period in milliseconds, or `undefined` when unknown. */
  periodMs(): number | undefined;
  /** Whether the ring is still emptied: false once the server has gone. */
  alive(): boolean;
}

/** What a full ring does to a send: wait in order, or drop the message. */
export type OverflowPolicy = "queue" | "drop";

/** RtMidi's JACK ring (`JACK_RINGBUFFER_SIZE`) holds this many bytes at most. */
export const RING_CAPACITY = 16383;

/** Each message takes its length as a 4-byte `int` in the ring. */
const HEADER = 4;

/** A sysex longer than the ring is cut into events of this size. */
export const CHUNK = 8192;

/**
 * Where the ring cannot be read, at most this many bytes are written per
 * period: half the ring, so a cycle may come a whole period late.
 */
const WINDOW_BYTES = 8192;

/** ... and at most this many messages (4.0's ring of lengths holds 4095). */
const WINDOW_MESSAGES = 2048;

/** The period assumed when JACK cannot be asked. */
const FALLBACK_PERIOD_MS = 50;

interface Pending {
  readonly bytes: Uint8Array<ArrayBuffer>;
  /** Settles the send: set on the last event of a message. */
  readonly done?: { resolve(): void; reject(error: unknown): void };
}

/**
 * Splits a message into JACK events: itself, or for a sysex longer than
 * the ring, pieces of {@linkcode CHUNK} bytes (the first starts with F0,
 * the last ends with F7).
 *
 * @param bytes One complete message.
 * @returns The events, in order.
 */
export function jackEvents(
  bytes: Uint8Array<ArrayBuffer>,
): Uint8Array<ArrayBuffer>[] {
  if (bytes.length + HEADER <= RING_CAPACITY) return [bytes];
  const events: Uint8Array<ArrayBuffer>[] = [];
  for (let start = 0; start < bytes.length; start += CHUNK) {
    events.push(bytes.slice(start, start + CHUNK));
  }
  return events;
}

/** Paces one JACK output's sends; see the module doc. */
export class Pacer {
  readonly #sink: PacedSink;
  readonly #policy: OverflowPolicy;
  #queue: Pending[] = [];
  #head = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #dropped = 0;
  #closed: unknown;
  #drained: (() => void)[] = [];
  // Bytes and messages written in the current and previous window slot,
  // where the ring cannot be read.
  #slot = -1;
  #bytes = [0, 0];
  #messages = [0, 0];

  /**
   * Makes a pacer.
   *
   * @param sink Where events go.
   * @param policy What a send that does not fit now does.
   */
  constructor(sink: PacedSink, policy: OverflowPolicy) {
    this.#sink = sink;
    this.#policy = policy;
  }

  /** Messages lost to a full ring under the `"drop"` policy. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Events waiting for room. */
  get queued(): number {
    return this.#queue.length - this.#head;
  }

  /**
   * Sends one message, now if it fits, else after those before it.
   *
   * @param bytes One complete message.
   * @returns A promise settled once RtMidi took the whole message (or, under
   * `"drop"`, dropped it).
   */
  send(bytes: Uint8Array<ArrayBuffer>): Promise<void> {
    if (this.#closed !== undefined) return Promise.reject(this.#closed);
    const events = jackEvents(bytes);
    if (this.queued === 0 && events.length === 1 && this.#fits(bytes)) {
      return this.#write(bytes)
        ? Promise.resolve()
        : Promise.reject(writeFailed());
    }
    // A sysex too long for the ring waits whatever the policy: it could
    // never go otherwise.
    if (this.#policy === "drop" && events.length === 1) {
      this.#dropped++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      for (let i = 0; i < events.length - 1; i++) {
        this.#queue.push({ bytes: events[i] });
      }
      this.#queue.push({ bytes: events.at(-1)!, done: { resolve, reject } });
      this.#drain();
    });
  }

  /**
   * Waits until every queued event has been written.
   *
   * @returns A promise of that moment (at once when nothing waits).
   */
  flush(): Promise<void> {
    if (this.queued === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drained.push(resolve));
  }

  /**
   * Drops what waits, rejecting its sends, and refuses further sends.
   *
   * @param error What the sends are rejected with.
   */
  discard(error: unknown): void {
    this.#closed ??= error;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const left = this.#queue.slice(this.#head);
    this.#queue = [];
    this.#head = 0;
    for (const item of left) item.done?.reject(error);
    for (const done of this.#drained.splice(0)) done();
  }

  #fits(bytes: Uint8Array): boolean {
    const need = bytes.length + HEADER;
    const room = this.#sink.room();
    if (room !== undefined) return room >= need;
    this.#advance();
    const bytesUsed = this.#bytes[0] + this.#bytes[1];
    const messagesUsed = this.#messages[0] + this.#messages[1];
    if (messagesUsed >= WINDOW_MESSAGES) return false;
    // A long event goes alone, into an empty window.
    return bytesUsed === 0 || bytesUsed + need <= WINDOW_BYTES;
  }

  #periodMs(): number {
    const period = this.#sink.periodMs();
    return period !== undefined && period > 0 ? period : FALLBACK_PERIOD_MS;
  }

  /** Moves the window to now: slots one period and a millisecond long. */
  #advance(): void {
    const slot = Math.floor(performance.now() / (this.#periodMs() + 1));
    if (slot === this.#slot) return;
    // [previous slot, current slot]
    const next = slot === this.#slot + 1;
    this.#bytes = [next ? this.#bytes[1] : 0, 0];
    this.#messages = [next ? this.#messages[1] : 0, 0];
    this.#slot = slot;
  }

  #write(bytes: Uint8Array<ArrayBuffer>): boolean {
    if (this.#sink.room() === undefined) {
      this.#advance();
      this.#bytes[1] += bytes.length + HEADER;
      this.#messages[1]++;
    }
    return this.#sink.write(bytes);
  }

  #drain = (): void => {
    this.#timer = undefined;
    if (!this.#sink.alive()) {
      this.discard(
        new RtMidiError("out_send_message", "The JACK server went away"),
      );
      return;
    }
    while (this.#head < this.#queue.length) {
      const item = this.#queue[this.#head];
      if (!this.#fits(item.bytes)) break;
      this.#head++;
      const ok = this.#write(item.bytes);
      if (ok) item.done?.resolve();
      else item.done?.reject(writeFailed());
    }
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
      for (const done of this.#drained.splice(0)) done();
      return;
    }
    if (this.#head >= 1024) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
    // The ring empties at the next cycle: look again a quarter period on.
    const wait = Math.min(5, Math.max(1, Math.floor(this.#periodMs() / 4)));
    this.#timer ??= setTimeout(this.#drain, wait);
  };
}

function writeFailed(): RtMidiError {
  return new RtMidiError("out_send_message", "RtMidi could not send a message");
}
