/**
 * One timer reads every hardware input someone waits on, at a pace that
 * follows the traffic: every millisecond while messages come (what each
 * input did on its own before, so latency under traffic is unchanged).
 * After {@linkcode ACTIVE_HOLD} of silence:
 *
 * - where every input is on JACK, each input is armed (RtMidi's callback is
 *   installed on it, see `_native.ts`) and the poller sleeps: the first
 *   message rings its input's callback, which removes itself, delivers the
 *   message and wakes the poller back to full speed. A look one JACK period
 *   after arming, and then every quarter second, is the safety net: a
 *   message queued in the instant between the last read and the arming
 *   rang nothing, so where a queue holds something (or where that cannot be
 *   seen) the callback is removed, the queue read, and the callback
 *   installed again;
 * - elsewhere the interval grows with the silence, up to
 *   {@linkcode IDLE_INTERVAL}.
 *
 * Each wake-up of Deno's event loop was measured here at 40-200 µs of CPU
 * (the longer the sleep, the dearer the wake), so polling every millisecond
 * cost 4 idle inputs 0.4 CPU-seconds in 10 s. Without a ring, the first
 * message after a silence waits for the next look, at most
 * {@linkcode IDLE_INTERVAL}.
 *
 * @module
 */

import { currentJackHelper } from "./_jack.ts";

/** An input the poller reads. */
export interface Polled {
  /**
   * Moves what RtMidi queued into the port's queue (nothing while armed).
   *
   * @returns How many messages were moved.
   */
  pump(): number;
  /** Whether a reader waits on it: the poller lets go of it otherwise. */
  readonly waiting: boolean;
  /** Whether a ring can wake the poller for it (a JACK input). */
  readonly armable: boolean;
  /** Whether its ring callback is installed. */
  readonly armed: boolean;
  /**
   * Whether RtMidi's queue holds a message, read without a call into
   * RtMidi; `undefined` where that cannot be known.
   */
  readonly queued: boolean | undefined;
  /** Installs its ring callback. */
  arm(): void;
  /** Removes its ring callback, so that its queue can be read. */
  disarm(): void;
}

/** The interval while messages come, in milliseconds. */
export const ACTIVE_INTERVAL = 1;

/** How long after the last message the poller stays at full speed. */
export const ACTIVE_HOLD = 1000;

/**
 * The longest interval between looks when nothing comes and no input can
 * ring, in milliseconds.
 */
export const IDLE_INTERVAL = 40;

/** The safety-net interval while the inputs are armed. */
export const ARMED_INTERVAL = 250;

/**
 * The interval after `silence` milliseconds without a message, where no
 * input can ring: full speed for {@linkcode ACTIVE_HOLD}, then growing by a
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
  #asleep = false;
  #looks = 0;

  /** How many looks were taken so far (for tests and benchmarks). */
  get looks(): number {
    return this.#looks;
  }

  /** Ports being read now. */
  get size(): number {
    return this.#ports.size;
  }

  /** Whether every input is armed and the poller sleeps (for tests). */
  get sleeping(): boolean {
    return this.#asleep;
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
   * Stops reading a port. An armed port stays armed: its next message
   * still rings, and goes to its own queue.
   *
   * @param port The port.
   */
  delete(port: Polled): void {
    this.#ports.delete(port);
    if (this.#ports.size > 0) return;
    this.#asleep = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#due = Infinity;
  }

  /**
   * Looks at once and at full speed from now: a message is on its way (an
   * input rang, or a port was added).
   */
  wake(): void {
    this.#last = performance.now();
    this.#asleep = false;
    if (this.#ports.size > 0) this.#schedule(0);
  }

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
    return moved;
  }

  #tick = (): void => {
    this.#timer = undefined;
    this.#due = Infinity;
    this.#running = true;
    let next: number | undefined;
    try {
      next = this.#look();
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
  #look(): number | undefined {
    this.#looks++;
    const moved = this.#pump();
    const now = performance.now();
    if (moved > 0) {
      this.#last = now;
      this.#asleep = false;
    }
    if (this.#ports.size === 0) return undefined;
    const silence = now - this.#last;
    if (silence < ACTIVE_HOLD) return ACTIVE_INTERVAL;
    const ports = [...this.#ports];
    if (!ports.every((port) => port.armable)) {
      this.#asleep = false;
      return intervalAfter(silence, IDLE_INTERVAL);
    }
    // What reached a queue just before its callback was installed rang
    // nothing: read it now. Removing a callback from outside it races, by
    // a few nanoseconds, with a message entering it, so it is done only
    // where something waits (or where that cannot be seen).
    let late = 0;
    for (const port of ports) {
      if (!port.armed || port.queued === false) continue;
      port.disarm();
      late += port.pump();
    }
    if (late > 0) {
      this.wake();
      return ACTIVE_INTERVAL;
    }
    for (const port of ports) port.arm();
    if (this.#asleep) return ARMED_INTERVAL;
    // The first look after arming comes once every input's JACK client has
    // run a cycle: what came in the instant before the arming is read then.
    this.#asleep = true;
    const period = currentJackHelper()?.periodMs() ?? IDLE_INTERVAL;
    return Math.ceil(period) + 2;
  }
}

/** The poller of this process. */
export const poller: Poller = new Poller();
