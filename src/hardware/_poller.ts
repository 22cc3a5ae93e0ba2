/**
 * One timer reads every hardware input someone waits on, at a pace that
 * follows the traffic: every millisecond while messages come (what each
 * input did on its own before, so latency under traffic is unchanged).
 * After {@linkcode ACTIVE_HOLD} of silence:
 *
 * - where every input is on JACK, the doorbell (`_doorbell.ts`) is armed
 *   and the poller sleeps, looking only every quarter second (a safety net:
 *   a doorbell that misses a cycle, under xruns, misses its ring; and a
 *   virtual input's connections may change): the first message rings and
 *   the poller is back at full speed;
 * - elsewhere the interval grows with the silence, up to
 *   {@linkcode IDLE_INTERVAL}.
 *
 * Each wake-up of Deno's event loop was measured here at 40-200 µs of CPU
 * (the longer the sleep, the dearer the wake), so polling every millisecond
 * cost 4 idle inputs 0.4 CPU-seconds in 10 s. Without a doorbell, the first
 * message after a silence waits for the next look, at most
 * {@linkcode IDLE_INTERVAL}.
 *
 * @module
 */

import { Doorbell } from "./_doorbell.ts";
import { currentJackHelper } from "./_jack.ts";

/** What a polled input says the doorbell must listen to. */
export interface BellSources {
  /**
   * The full names of the JACK ports the input reads from now (for a
   * virtual port, whatever is connected to it: the doorbell's connections
   * are brought up to date at each look).
   */
  readonly sources: readonly string[];
}

/** An input the poller reads. */
export interface Polled {
  /**
   * Moves what RtMidi queued into the port's queue.
   *
   * @returns How many messages were moved.
   */
  pump(): number;
  /**
   * What the doorbell must listen to for this input, or `undefined` when
   * it cannot (not JACK, or its ports unknown).
   */
  bellSources(): BellSources | undefined;
  /** Whether a reader waits on it: the poller lets go of it otherwise. */
  readonly waiting: boolean;
}

/** The interval while messages come, in milliseconds. */
export const ACTIVE_INTERVAL = 1;

/** How long after the last message the poller stays at full speed. */
export const ACTIVE_HOLD = 1000;

/**
 * The longest interval between looks when nothing comes and no doorbell
 * can ring, in milliseconds.
 */
export const IDLE_INTERVAL = 40;

/** The safety-net interval while the doorbell is armed. */
export const BELL_INTERVAL = 250;

/** After the doorbell could not be made, how long before trying again. */
const BELL_RETRY_MS = 10_000;

/**
 * The interval after `silence` milliseconds without a message, with no
 * doorbell: full speed for {@linkcode ACTIVE_HOLD}, then growing by a
 * millisecond every 25 ms of silence, up to `idle`.
 *
 * @param silence Milliseconds since the last message.
 * @param idle The longest interval.
 * @returns The interval, in whole milliseconds.
 */
export function intervalAfter(silence: number, idle: number): number {
  if (silence < ACTIVE_HOLD) return ACTIVE_INTERVAL;
  return Math.min(
    idle,
    ACTIVE_INTERVAL + Math.floor((silence - ACTIVE_HOLD) / 25),
  );
}

/** Reads the inputs that have a reader waiting; see the module doc. */
class Poller {
  readonly #ports = new Set<Polled>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #due = Infinity;
  #last = -Infinity;
  #running = false;
  #pending: number | undefined;
  #bell: Doorbell | undefined;
  #making: Promise<Doorbell | undefined> | undefined;
  #bellFailed = -Infinity;
  #looks = 0;

  /** How many looks were taken so far (for tests and benchmarks). */
  get looks(): number {
    return this.#looks;
  }

  /** Ports being read now. */
  get size(): number {
    return this.#ports.size;
  }

  /** Whether the doorbell is armed now (for tests and benchmarks). */
  get sleeping(): boolean {
    return this.#bell?.armed ?? false;
  }

  /**
   * Reads a port while a reader waits on it: until a look finds none, or
   * {@linkcode Poller.delete}. Adding a port already read does nothing, so
   * a reader may come and go between messages at no cost.
   *
   * @param port The port.
   */
  add(port: Polled): void {
    if (this.#ports.has(port)) return;
    this.#ports.add(port);
    this.wake();
  }

  /**
   * Stops reading a port.
   *
   * @param port The port.
   */
  delete(port: Polled): void {
    this.#ports.delete(port);
    if (this.#ports.size > 0) return;
    this.#idle();
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#due = Infinity;
  }

  /**
   * No port to read: the doorbell stops listening (no one would empty its
   * queue, and RtMidi prints a line for each message a full queue drops).
   */
  #idle(): void {
    this.#bell?.disarm();
    this.#bell?.sync(new Set());
  }

  /**
   * Looks at once and at full speed from now: a message is on its way (the
   * doorbell rang, or a port was added).
   */
  wake(): void {
    this.#last = performance.now();
    this.#bell?.disarm();
    if (this.#ports.size > 0) this.#schedule(0);
  }

  /**
   * The doorbell rang: the message is in an input's queue by now (the
   * inputs' JACK clients ran in the same cycle, while the doorbell's waited
   * for this thread), so it is read at once, not a timer tick later.
   */
  #ring = (): void => {
    this.wake();
    if (!this.#running) this.#pump();
  };

  #schedule(ms: number): void {
    if (this.#running) {
      this.#pending = Math.min(this.#pending ?? Infinity, ms);
      return;
    }
    const due = performance.now() + ms;
    if (this.#timer !== undefined && this.#due <= due) return;
    clearTimeout(this.#timer);
    this.#due = due;
    this.#timer = setTimeout(this.#tick, ms);
  }

  #pump(): number {
    let moved = 0;
    for (const port of this.#ports) {
      moved += port.pump();
      if (!port.waiting) this.#ports.delete(port);
    }
    if (this.#ports.size === 0) this.#idle();
    return moved;
  }

  #tick = async (): Promise<void> => {
    this.#timer = undefined;
    this.#due = Infinity;
    this.#running = true;
    let next: number | undefined;
    try {
      next = await this.#look();
    } catch {
      next = ACTIVE_INTERVAL;
    } finally {
      this.#running = false;
    }
    const pending = this.#pending;
    this.#pending = undefined;
    if (this.#ports.size === 0) return;
    this.#schedule(Math.min(next ?? Infinity, pending ?? Infinity));
  };

  /** One look; returns when to look next. */
  async #look(): Promise<number | undefined> {
    this.#looks++;
    const moved = this.#pump();
    const bell = this.#bell;
    bell?.drain();
    const now = performance.now();
    if (moved > 0) this.#last = now;
    if (this.#ports.size === 0) return undefined;
    const silence = now - this.#last;
    if (silence < ACTIVE_HOLD) return ACTIVE_INTERVAL;
    const wanted = this.#sources();
    const doorbell = wanted === undefined ? undefined : await this.#doorbell();
    if (wanted === undefined || doorbell === undefined) {
      return intervalAfter(silence, IDLE_INTERVAL);
    }
    await doorbell.sync(wanted.sources);
    if (!doorbell.armed) {
      await doorbell.arm();
      // What came while the doorbell was being armed did not ring it: look
      // again once every input's JACK client has run a cycle after it.
      if (this.#pump() > 0) {
        this.wake();
        return ACTIVE_INTERVAL;
      }
      const period = currentJackHelper()?.periodMs() ?? IDLE_INTERVAL;
      return Math.ceil(period) + 2;
    }
    return BELL_INTERVAL;
  }

  /** What the doorbell must listen to, or `undefined` when it cannot. */
  #sources(): { sources: Set<string> } | undefined {
    const sources = new Set<string>();
    for (const port of this.#ports) {
      const wanted = port.bellSources();
      if (wanted === undefined) return undefined;
      for (const source of wanted.sources) sources.add(source);
    }
    return { sources };
  }

  async #doorbell(): Promise<Doorbell | undefined> {
    if (this.#bell?.alive) return this.#bell;
    this.#bell = undefined;
    if (performance.now() - this.#bellFailed < BELL_RETRY_MS) return undefined;
    this.#making ??= Doorbell.make().finally(() => this.#making = undefined);
    const bell = await this.#making;
    if (bell === undefined) {
      this.#bellFailed = performance.now();
      return undefined;
    }
    bell.onRing(this.#ring);
    this.#bell = bell;
    return bell;
  }
}

/** The poller of this process. */
export const poller: Poller = new Poller();
