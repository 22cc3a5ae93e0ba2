/**
 * Internal: what the hub does when readers fall behind, and its periodic
 * check, all on the hub's clock.
 *
 * - Each input has a fair share of what one reader that keeps up takes
 *   (`maxQueuedBytes` every `maxLag`, split between the inputs, counted
 *   over each check interval). A remote reader with more than half of
 *   `maxQueuedBytes` waiting holds back every input past its share, until
 *   it is down to a quarter: a flood slows its senders (TCP slows them in
 *   turn) instead of costing the readers their connection, and inputs
 *   within their share (a player, a paced client) go on as if nothing
 *   happened. When the readers let go, every input held back gets one read
 *   in turn.
 * - A reader keeps up while it catches up within `maxLag` of holding the
 *   inputs back. One that does not holds nothing back until it has caught
 *   up again once (a reader that stopped reading holds the flood back for
 *   `maxLag` at most, once).
 * - A reader in this process (a `"wait"` sink) holds every input back until
 *   it has caught up, however slow it is: it must lose nothing.
 * - A reader that stays more than `maxQueuedBytes` behind for `maxLag`, or
 *   takes nothing while 64 KiB or more wait (after maxLag to 4 x maxLag,
 *   the less waits the longer), or is far over its bound at once, is
 *   dropped.
 * - Past `maxQueuedTotal` for everyone together, readers are shed: those
 *   that took nothing lately first, those that keep up last.
 * - Clients idle past `idleTimeout` are dropped.
 *
 * @module
 */

import type { ClockTimer, TimeSource } from "../clock.ts";
import { FellBehindError } from "../errors.ts";
import type { Batch, Sink } from "../sink.ts";
import type { Member } from "./_member.ts";
import type { HubSettings } from "./_options.ts";

/** How often the hub checks its endpoints, in ms. */
export const CHECK_MS = 250;
/** How late a check may run and still count in full. */
const LATE_MS = 50;
/** Bytes that must wait, unmoved, for a reader to count as stalled. */
const STALL_BYTES = 64 * 1024;
/** The most times maxLag a reader that takes nothing is given. */
const STALL_PATIENCE = 4;
/** How far past `maxQueuedBytes` an endpoint may go before it is dropped at once. */
const HARD_FACTOR = 8;
/** How often a reader that holds the inputs back is looked at, in ms. */
const POLL_MS = 5;

/** What the backpressure part needs of its hub. */
export interface BackpressureHost {
  /** The endpoints now. */
  members(): readonly Member[];
  /** Stops routing to an endpoint and closes its port. */
  drop(member: Member, reason: unknown): void;
}

/** Lag, stalls, the budget, holding inputs back, and idle clients. */
export class Backpressure {
  readonly #settings: HubSettings;
  readonly #host: BackpressureHost;
  readonly #clock: TimeSource;
  /** Waiting for a reader that keeps up starts past this... */
  readonly #holdAt: number;
  /** ...and ends at or under this. */
  readonly #resumeAt: number;
  /** Bytes a ms one reader that keeps up takes: `maxQueuedBytes / maxLag`. */
  readonly #keepUpRate: number;
  readonly #hardBound: number;
  readonly #copiedBound: number;
  /**
   * What waits for all endpoints, as last measured plus what was written
   * since: never less than the truth, so measuring again when it passes the
   * budget catches a flood between checks.
   */
  #estimate = 0;
  #shedding = false;
  #timer: ClockTimer | undefined;
  #checkedAt = 0;
  /**
   * Readers that hold inputs back: remote ones that keep up hold the
   * inputs that send more than their share; readers in this process
   * (`"wait"` sinks) hold every input.
   */
  readonly #holders = new Set<Member>();
  #waiters = 0;
  #paused: PromiseWithResolvers<void> | undefined;
  /**
   * An input's fair share of what a reader that keeps up takes in a check
   * interval: that, split between the inputs.
   */
  #shareBytes: number;
  #inputs = 0;
  #stopped = false;

  constructor(settings: HubSettings, host: BackpressureHost) {
    this.#settings = settings;
    this.#host = host;
    this.#clock = settings.clock;
    const bound = settings.maxQueuedBytes;
    this.#holdAt = bound / 2;
    this.#resumeAt = bound / 4;
    this.#keepUpRate = bound / settings.maxLag;
    this.#hardBound = bound * HARD_FACTOR;
    this.#copiedBound = bound * 2;
    this.#shareBytes = this.#keepUpRate * CHECK_MS;
  }

  /**
   * While readers hold `member`'s input back: a promise of the moment they
   * may let go (look again then); else undefined. An input that sent no
   * more than its share since the last check goes on, unless a reader in
   * this process holds every input.
   */
  pausedFor(member: Member): Promise<void> | undefined {
    const paused = this.#paused;
    if (
      paused === undefined ||
      (this.#waiters === 0 &&
        member.inputBytes - member.inputSeen <= this.#shareBytes)
    ) {
      return undefined;
    }
    return paused.promise;
  }

  /** Starts the periodic check (once). */
  start(): void {
    if (this.#timer !== undefined || this.#stopped) return;
    this.#checkedAt = this.#clock.now();
    this.#schedule();
  }

  #schedule(): void {
    this.#timer = this.#clock.setTimer(() => {
      if (this.#stopped) return;
      this.#check();
      this.#schedule();
    }, CHECK_MS);
  }

  /** Stops checking and lets every input go. */
  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#holders.clear();
    this.#waiters = 0;
    this.#resume();
  }

  /**
   * Takes note of a batch written to `to`'s sink (on every write: keep it
   * cheap), and acts when `to` is far behind.
   */
  wrote(to: Member, sink: Sink, share: Batch): void {
    if (sink.slow === "wait") {
      if (sink.queuedBytes > 0) this.#hold(to);
      return;
    }
    this.#estimate += share.bytes.length;
    const queued = sink.queuedBytes;
    if (queued <= this.#holdAt) return;
    if (queued > this.#hardBound || sink.copiedBytes > this.#copiedBound) {
      this.#host.drop(to, new FellBehindError(to.name, queued, 0));
    } else if (to.keepsUp) {
      this.#hold(to);
    }
  }

  /** After a batch went everywhere: checks the budget. */
  delivered(): void {
    if (this.#estimate > this.#settings.maxQueuedTotal) {
      const total = this.#queuedTotal();
      if (total > this.#settings.maxQueuedTotal) this.#shed(total);
    }
  }

  /** An endpoint joined: its input has a share from now on. */
  joined(member: Member): void {
    if (member.input !== undefined) this.#setInputs(this.#inputs + 1);
  }

  /** The endpoint is gone (or its output is): it holds nothing back. */
  forget(member: Member): void {
    this.#release(member);
  }

  /** The endpoint has left: its input has no share any more. */
  left(member: Member): void {
    this.#release(member);
    if (member.input !== undefined) this.#setInputs(this.#inputs - 1);
  }

  #setInputs(inputs: number): void {
    this.#inputs = inputs;
    this.#shareBytes = this.#keepUpRate * CHECK_MS / Math.max(1, inputs);
  }

  #hold(member: Member): void {
    if (this.#stopped || this.#holders.has(member)) return;
    this.#holders.add(member);
    if (member.sink!.slow === "wait") this.#waiters++;
    member.held = 0;
    this.#paused ??= Promise.withResolvers<void>();
    member.sink!.drained().then(
      () => this.#recheck(member),
      () => this.#release(member),
    );
  }

  /** Lets go of the inputs once `member` has caught up (or cannot hold). */
  #recheck(member: Member): void {
    if (!this.#holders.has(member)) return;
    const sink = member.sink!;
    if (
      sink.slow === "wait" || member.outputDead || !member.keepsUp ||
      sink.queuedBytes <= this.#resumeAt
    ) {
      return this.#release(member);
    }
    // Not there yet: the sink's own mark is higher, or it cannot tell.
    this.#clock.setTimer(() => this.#recheck(member), POLL_MS);
  }

  #release(member: Member): void {
    if (!this.#holders.delete(member)) return;
    if (member.sink?.slow === "wait") this.#waiters--;
    // Every waiting input looks again: it may go on now.
    this.#resume();
    if (this.#holders.size > 0) this.#paused = Promise.withResolvers<void>();
  }

  #resume(): void {
    const paused = this.#paused;
    this.#paused = undefined;
    paused?.resolve();
  }

  /** Drops endpoints that stay behind, stall, or idle past the limit. */
  #check(): void {
    const now = this.#clock.now();
    // Time counts against an endpoint only while the hub itself keeps up:
    // a hub too busy to run this check on time is also too busy to see its
    // writes complete, and the endpoint is not to blame for that.
    const counted = Math.min(now - this.#checkedAt, CHECK_MS + LATE_MS);
    this.#checkedAt = now;
    const { maxQueuedBytes, maxLag, idleTimeout } = this.#settings;
    const members = this.#host.members();
    for (const member of members) member.inputSeen = member.inputBytes;
    for (const member of members) {
      const sink = member.sink;
      if (sink !== undefined && sink.slow === "drop" && !member.outputDead) {
        const queued = sink.queuedBytes;
        const progress = sink.progress;
        const moved = progress !== member.progressSeen;
        member.progressSeen = progress;
        member.idle = !moved;
        // Whether it keeps up: it catches up within maxLag of holding the
        // inputs back (the hub then has time for it, whatever floods); once
        // it has not, when it has caught up again.
        if (this.#holders.has(member)) {
          member.held += counted;
          if (member.held >= maxLag) {
            member.keepsUp = false;
            this.#release(member);
          }
        } else if (queued <= this.#resumeAt) {
          member.keepsUp = true;
        }
        member.behind = queued > maxQueuedBytes ? member.behind + counted : 0;
        // A few bytes that do not move cost nothing: a reader counts as
        // stalled only with a real amount waiting.
        member.stalled = queued >= STALL_BYTES && !moved
          ? member.stalled + counted
          : 0;
        // The less a reader that takes nothing pins, the longer it is given:
        // a network dropout (TCP's retransmits back off to seconds) costs
        // little while it lasts. Half the bound or more waiting: maxLag.
        const patience = Math.min(
          STALL_PATIENCE,
          Math.max(1, maxQueuedBytes / (2 * queued)),
        );
        const stalled = member.stalled >= maxLag * patience;
        if (stalled || member.behind >= maxLag) {
          this.#host.drop(
            member,
            new FellBehindError(
              member.name,
              queued,
              Math.round(stalled ? member.stalled : member.behind),
              stalled,
            ),
          );
          continue;
        }
      }
      if (
        idleTimeout !== undefined && member.kind === "client" &&
        member.input !== undefined && !member.outputDead &&
        now - member.lastInput >= idleTimeout
      ) {
        this.#host.drop(
          member,
          new Error(`Idle for ${Math.round(idleTimeout / 1000)} s`),
        );
      }
    }
    const total = this.#queuedTotal();
    if (total > this.#settings.maxQueuedTotal) this.#shed(total);
  }

  /**
   * What waits for all endpoints that may be dropped, measured: what each
   * holds for itself alone (shared batches are held once, by reference).
   */
  #queuedTotal(): number {
    let total = 0;
    for (const member of this.#host.members()) {
      const sink = member.sink;
      if (sink !== undefined && sink.slow === "drop" && !member.outputDead) {
        total += sink.copiedBytes;
      }
    }
    this.#estimate = total;
    return total;
  }

  /**
   * Too much waits for all endpoints together: drops endpoints until a
   * quarter of the budget is free again. Those that took nothing since the
   * check before last go first, then those holding most; readers that keep
   * up go last.
   */
  #shed(total: number): void {
    // A drop can route (the note offs of an endpoint leaving): no shedding
    // inside shedding.
    if (this.#shedding) return;
    this.#shedding = true;
    const budget = this.#settings.maxQueuedTotal;
    try {
      const target = budget * 0.75;
      const candidates: [Member, number, number][] = [];
      for (const member of this.#host.members()) {
        const sink = member.sink;
        if (sink === undefined || sink.slow !== "drop" || member.outputDead) {
          continue;
        }
        const held = sink.copiedBytes;
        if (held === 0) continue;
        const idle = member.idle && sink.progress === member.progressSeen;
        candidates.push([member, held, idle ? 0 : member.keepsUp ? 2 : 1]);
      }
      candidates.sort(([, x, a], [, y, b]) => a - b || y - x);
      for (const [member, held] of candidates) {
        if (total <= target) break;
        if (member.outputDead) continue;
        total -= held;
        this.#host.drop(
          member,
          new FellBehindError(
            member.name,
            member.sink!.queuedBytes,
            0,
            false,
            budget,
          ),
        );
      }
    } finally {
      this.#shedding = false;
      this.#queuedTotal();
    }
  }
}
