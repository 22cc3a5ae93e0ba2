/**
 * One timer reads every hardware input someone waits on, at a pace that
 * follows the traffic: every millisecond while messages come (what the
 * inputs did before, so latency under traffic is unchanged), then less
 * often the longer all inputs stay silent, up to `idleInterval`.
 *
 * Each wake-up of Deno's event loop was measured here at 40-200 µs of CPU
 * (the longer the sleep, the dearer the wake), so polling every millisecond
 * cost 4 idle inputs 0.4 CPU-seconds in 10 s; one shared timer that backs
 * off costs a few hundredths. The price is the first message after a
 * silence: it waits for the next look, at most `idleInterval`. Where a
 * doorbell can ring (see `_doorbell.ts`), the poller sleeps much longer
 * and the doorbell wakes it at the first message instead.
 *
 * @module
 */

/** An input the poller reads. */
export interface Polled {
  /**
   * Moves what RtMidi queued into the port's queue.
   *
   * @returns How many messages were moved.
   */
  pump(): number;
}

/** The interval while messages come, in milliseconds. */
export const ACTIVE_INTERVAL = 1;

/** How long after the last message the poller stays at full speed. */
export const ACTIVE_HOLD = 1000;

/**
 * The longest interval between looks when nothing comes, without a
 * doorbell, in milliseconds.
 */
export const IDLE_INTERVAL = 40;

/** The same with a doorbell that wakes the poller: a safety net only. */
export const BELL_IDLE_INTERVAL = 1000;

/**
 * The interval after `silence` milliseconds without a message: full speed
 * for {@linkcode ACTIVE_HOLD}, then growing by a millisecond every 25 ms of
 * silence, up to `idle`.
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
  /** Set while a doorbell covers every polled input. */
  bell = false;

  /** Ports being read now. */
  get size(): number {
    return this.#ports.size;
  }

  /**
   * Reads a port until {@linkcode Poller.delete}: its reader waits.
   *
   * @param port The port.
   */
  add(port: Polled): void {
    this.#ports.add(port);
    this.#schedule(ACTIVE_INTERVAL);
  }

  /**
   * Stops reading a port.
   *
   * @param port The port.
   */
  delete(port: Polled): void {
    this.#ports.delete(port);
    if (this.#ports.size === 0) this.#cancel();
  }

  /**
   * Looks at once and at full speed from now: a message is on its way (a
   * doorbell rang, or a port was opened).
   */
  wake(): void {
    this.#last = performance.now();
    if (this.#ports.size > 0) this.#schedule(0);
  }

  #cancel(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#due = Infinity;
  }

  #schedule(ms: number): void {
    const due = performance.now() + ms;
    if (this.#timer !== undefined && this.#due <= due) return;
    clearTimeout(this.#timer);
    this.#due = due;
    this.#timer = setTimeout(this.#tick, ms);
  }

  #tick = (): void => {
    this.#timer = undefined;
    this.#due = Infinity;
    let moved = 0;
    for (const port of this.#ports) moved += port.pump();
    const now = performance.now();
    if (moved > 0) this.#last = now;
    if (this.#ports.size === 0) return;
    this.#schedule(
      intervalAfter(
        now - this.#last,
        this.bell ? BELL_IDLE_INTERVAL : IDLE_INTERVAL,
      ),
    );
  };
}

/** The poller of this process. */
export const poller: Poller = new Poller();
