/**
 * Internal: an alarm on another thread, for the scheduler. A worker thread
 * blocks in `Atomics.wait` until the time it was set for, then posts one
 * message. Waiting costs the process nothing (no CPU, no garbage on the
 * main thread), and the message wakes the main thread's event loop within
 * about 0.1-0.3 ms, where a timer fires a millisecond or more late. The
 * worker does not keep the process alive: whoever sets the alarm keeps a
 * timer of its own for that.
 *
 * @module
 */

/**
 * The worker's code (a CommonJS script): the shared memory holds a
 * generation (bumped at every change), a closed flag, and the time to ring
 * at, on the scale `performance.timeOrigin + performance.now()` that both
 * threads share.
 */
const WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
const state = new Int32Array(workerData, 0, 2);
const target = new Float64Array(workerData, 8, 1);
for (;;) {
  const generation = Atomics.load(state, 0);
  if (Atomics.load(state, 1) !== 0) break;
  const left = target[0] - (performance.timeOrigin + performance.now());
  if (left > 0) {
    Atomics.wait(state, 0, generation, left);
    continue;
  }
  parentPort.postMessage(generation);
  Atomics.wait(state, 0, generation);
}

`;

/** The shared memory's layout. */
const GENERATION = 0;
const CLOSED = 1;

/** An alarm that rings on the main thread at the time it was set for. */
export class Alarm {
  readonly #state: Int32Array;
  readonly #target: Float64Array;
  readonly #worker: { terminate(): unknown };

  private constructor(
    state: Int32Array,
    target: Float64Array,
    worker: { terminate(): unknown },
  ) {
    this.#state = state;
    this.#target = target;
    this.#worker = worker;
  }

  /**
   * Starts the worker; undefined where no worker thread can be made (the
   * caller then keeps to timers).
   *
   * @param ring Called on the main thread when the alarm rings.
   */
  static async start(ring: () => void): Promise<Alarm | undefined> {
    try {
      const { Worker } = await import("node:worker_threads");
      const memory = new SharedArrayBuffer(16);
      const state = new Int32Array(memory, 0, 2);
      const target = new Float64Array(memory, 8, 1);
      target[0] = Infinity;
      const worker = new Worker(WORKER, { eval: true, workerData: memory });
      worker.unref();
      const alarm = new Alarm(state, target, worker);
      worker.on("message", (generation: number) => {
        // A ring for a time since changed is stale.
        if (generation === Atomics.load(state, GENERATION)) ring();
      });
      worker.on("error", () => alarm.close());
      return alarm;
    } catch {
      return undefined;
    }
  }

  /** Whether it was closed (by its owner, or because the worker failed). */
  get closed(): boolean {
    return Atomics.load(this.#state, CLOSED) !== 0;
  }

  /**
   * Sets the alarm `delay` ms from now (on `performance.now()`'s scale),
   * replacing any time set before.
   */
  set(delay: number): void {
    this.#target[0] = performance.timeOrigin + performance.now() + delay;
    this.#change();
  }

  /** Unsets the alarm. */
  cancel(): void {
    this.#target[0] = Infinity;
    this.#change();
  }

  /** Stops the worker. */
  close(): void {
    if (this.closed) return;
    Atomics.store(this.#state, CLOSED, 1);
    this.#change();
    this.#worker.terminate();
  }

  #change(): void {
    Atomics.add(this.#state, GENERATION, 1);
    Atomics.notify(this.#state, GENERATION);
  }
}
