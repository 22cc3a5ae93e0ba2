/**
 * The JACK doorbell: what lets idle inputs cost nothing and still hear the
 * first message after a silence at once.
 *
 * Every JACK port the polled inputs read from is also connected to one
 * more port, the doorbell (`midisock-wake:wake`, an RtMidi input). While
 * messages flow, the poller reads the inputs every millisecond and throws
 * away what the doorbell queued. Once all inputs have been silent a while,
 * the doorbell's RtMidi callback is installed and the poller sleeps. The
 * next message makes RtMidi call it: the callback (a thread-safe
 * `Deno.UnsafeCallback`, so JACK's thread waits for the JavaScript thread
 * that one time) removes itself at once, before returning, and wakes the
 * poller. So JACK's process thread waits for JavaScript once per silence,
 * never once per message; and messages themselves always come through the
 * inputs' own queues, in order.
 *
 * The callback is never closed: the doorbell lives as long as the process
 * (or its JACK server), and is unref'd so it keeps nothing alive. On exit
 * the callback is removed first, so no JACK thread calls into a runtime
 * that is going away.
 *
 * @module
 */

import { INPUT_CALLBACK } from "../../ffi/symbols.ts";
import { BELL_PATTERN, currentJackHelper, type JackHelper } from "./_jack.ts";
import { Lease, ringsReadable } from "./_native.ts";

/** The doorbell's client and port names. */
export const BELL_CLIENT = "midisock-wake";
export const BELL_PORT = "wake";

type State = "idle" | "arming" | "armed";

/** The doorbell of one JACK server; see the module doc. */
export class Doorbell {
  readonly #lease: Lease;
  readonly #helper: JackHelper;
  /** The doorbell port's full name. */
  readonly name: string;
  readonly #callback: Deno.UnsafeCallback<typeof INPUT_CALLBACK>;
  #state: State = "idle";
  #onRing: () => void = () => {};
  /** Connections being changed: one change at a time. */
  #syncing: Promise<void> = Promise.resolve();
  /** The sources last connected, as one string. */
  #synced = "";

  private constructor(lease: Lease, helper: JackHelper, name: string) {
    this.#lease = lease;
    this.#helper = helper;
    this.name = name;
    // threadSafe: JACK's thread calls it; it wakes the event loop (also
    // after unref, which only lets the process end).
    this.#callback = Deno.UnsafeCallback.threadSafe(INPUT_CALLBACK, () => {
      if (this.#state === "idle") return;
      // Still in JACK's process thread's call: remove the callback before
      // returning, so the rest of this cycle's messages go to the queue;
      // the poller reads the inputs once JACK's thread is released.
      this.#lease.disarmNow();
      this.#state = "idle";
      queueMicrotask(this.#onRing);
    });
    this.#callback.unref();
    globalThis.addEventListener("unload", () => this.#disarm());
  }

  /** Whether the doorbell's server is still there. */
  get alive(): boolean {
    return this.#helper.alive;
  }

  /** Whether the callback is installed. */
  get armed(): boolean {
    return this.#state !== "idle";
  }

  /**
   * Sets what a ring does.
   *
   * @param onRing Called on the JavaScript thread, once per ring.
   */
  onRing(onRing: () => void): void {
    this.#onRing = onRing;
  }

  /** Throws away what the doorbell's port queued while not armed. */
  drain(): void {
    if (this.#state === "idle") this.#lease.drain();
  }

  /**
   * Installs the callback: the next message rings.
   *
   * @returns A promise settled once it is installed (or has rung).
   */
  async arm(): Promise<void> {
    if (this.#state !== "idle") return;
    this.#lease.drain();
    this.#state = "arming";
    await this.#lease.arm(this.#callback.pointer);
    if (this.#state === "arming") this.#state = "armed";
  }

  /** Removes the callback, if installed. */
  disarm(): void {
    this.#disarm();
  }

  #disarm(): void {
    if (this.#state === "idle") return;
    this.#state = "idle";
    this.#lease.disarmNow();
  }

  /**
   * Connects the doorbell to exactly these ports.
   *
   * @param sources The full names of the ports the inputs read from.
   * @returns A promise settled once the connections are made.
   */
  sync(sources: ReadonlySet<string>): Promise<void> {
    const key = [...sources].sort().join("\n");
    if (key === this.#synced) return this.#syncing;
    this.#synced = key;
    this.#syncing = this.#syncing.then(async () => {
      const now = new Set(this.#helper.connections(this.name) ?? []);
      for (const source of sources) {
        if (!now.has(source)) await this.#helper.connect(source, this.name);
      }
      for (const source of now) {
        if (!sources.has(source)) {
          await this.#helper.disconnect(source, this.name);
        }
      }
    }).catch(() => {});
    return this.#syncing;
  }

  /**
   * Makes the doorbell of the current JACK server.
   *
   * @returns It, or `undefined` where it cannot be made.
   */
  static async make(): Promise<Doorbell | undefined> {
    const helper = currentJackHelper();
    if (helper === undefined) return undefined;
    // A send that finds RtMidi's ring full waits inside RtMidi, on the
    // JavaScript thread, for the process cycle; a ring then would wait for
    // that thread: only where the ring can be read (and so never fills
    // unseen) is a doorbell safe.
    if (!ringsReadable()) return undefined;
    const lease = await Lease.take("input", "jack", BELL_CLIENT);
    try {
      // RtMidi drops sysex, timing and active sensing by default: the first
      // sysex or clock after a silence must ring too. Active sensing (a
      // keep-alive every 300 ms, which inputs drop by default) must not.
      lease.ignoreTypes(false, false, true);
      const before = new Set(helper.ports("output", true).map((p) => p.name));
      await lease.openVirtual(BELL_PORT);
      const mine = helper.ports("output", true).map((p) => p.name).filter((
        name,
      ) => !before.has(name) && BELL_PATTERN.test(name));
      if (mine.length !== 1) {
        await lease.end();
        return undefined;
      }
      return new Doorbell(lease, helper, mine[0]);
    } catch {
      await lease.end();
      return undefined;
    }
  }
}
