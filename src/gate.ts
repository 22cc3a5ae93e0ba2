/**
 * Who may join a hub, over any transport: an address allow list, a bound on
 * clients, a bound on connections still proving who they are (overall and
 * per address), a deadline for each of them, a shared-secret token compared
 * in constant time, and a growing wait for addresses that keep failing it.
 *
 * @module
 */

import { AddressList } from "./access.ts";
import { positiveInteger, positiveMs } from "./_policy.ts";
import { callBack } from "./_call.ts";
import { type ClockTimer, systemClock, type TimeSource } from "./clock.ts";
import type { RefusalCode } from "./errors.ts";

export { REFUSAL_CODES, type RefusalCode } from "./errors.ts";

/** Options for {@linkcode Gate}. */
export interface GateOptions {
  /**
   * Addresses and CIDR ranges (IPv4 and IPv6) that may connect; anyone
   * else is refused. Leave it out to let in whoever can reach the bound
   * address, as mido does.
   * @default {undefined} (everyone)
   */
  allow?: Iterable<string>;
  /**
   * Most clients admitted at once (connections that passed every check).
   * @default {Infinity}
   */
  maxClients?: number;
  /**
   * A shared secret clients must present first (over TCP, the line
   * `MIDISOCK-TOKEN <token>`). It is compared in constant time. Without TLS
   * it crosses the network in clear text. Tokens under 16 characters can be
   * guessed: the gate warns once.
   * @default {undefined} (no token)
   */
  token?: string;
  /**
   * How long a connection has to finish its handshake (TLS and token), in
   * milliseconds, from when it arrives; then the gate refuses it (`timeout`)
   * and has it closed.
   * @default {5000}
   */
  handshakeTimeout?: number;
  /**
   * Most connections in their handshake at once, counted apart from
   * `maxClients`, so that connections that never authenticate cannot lock
   * out those that do. Past it, the oldest is closed to make room.
   * @default {128}
   */
  maxPending?: number;
  /**
   * Most connections in a long handshake (TLS or token) at once from one
   * address; past it, the oldest from there is closed to make room.
   * @default {16}
   */
  maxPendingPerAddress?: number;
  /**
   * Failed tokens an address may send before it must wait: the wait starts
   * at a second and doubles with each further failure, up to a minute (and
   * failures are forgotten a minute after the last wait ends). While an
   * address waits, a right token from it is still let in at once (a shared
   * address, behind NAT, is not locked out by one bad client); a wrong one
   * is answered only when the wait is over, and at most
   * {@linkcode WAITING_CHECKS_PER_SECOND} tokens a second from it are
   * checked at all (right ones included), so guessing stays slow.
   * @default {3}
   */
  failuresBeforeWait?: number;
  /**
   * The clock that handshake deadlines and waits run on.
   * @default {systemClock}
   */
  clock?: TimeSource;
  /** Called for each connection refused. */
  onRefuse?: (refusal: Refusal) => void;
}

/** Options for {@linkcode Gate.arrive}. */
export interface ArriveOptions {
  /**
   * Whether its handshake may take long (TLS, or a token to wait for): only
   * those count against `maxPendingPerAddress`.
   * @default {gate.wantsToken}
   */
  long?: boolean;
  /**
   * Closes the connection at once, told why. The gate calls it once, with
   * the refusal it reported: when the ticket is still pending at its
   * deadline (`timeout`), or when the ticket is closed to make room for a
   * newer connection past a bound. A ticket with it can be closed to make
   * room; one without cannot, and only times out (its slot is freed, and
   * `enter()` then returns the refusal).
   */
  close?: (refusal: Refusal) => void;
}

/** Who is knocking: the transport and the peer's address. */
export interface Peer {
  /** The transport: `"tcp"`, `"web"`, `"rtp"`, ... */
  readonly transport: string;
  /** The peer's IP address. */
  readonly hostname: string;
  /** The peer's port, where it has one. */
  readonly port?: number;
}

/** A refused connection. */
export interface Refusal {
  /** Who. */
  readonly peer: Peer;
  /** Why, in a word. */
  readonly code: RefusalCode;
  /**
   * Why, for people: `"wrong token"`, `"server full (8 clients)"`. It holds
   * no text the peer chose, so refusals can be grouped by it.
   */
  readonly reason: string;
  /**
   * What the peer sent that was refused, where that helps (an `Origin`, a
   * request line): made safe to print (control characters escaped) and cut
   * to {@linkcode MAX_DETAIL_LENGTH} characters. Never a secret.
   */
  readonly detail?: string;
}

/** The longest {@linkcode Refusal.detail}, in characters. */
export const MAX_DETAIL_LENGTH = 80;

/**
 * Makes text a peer chose safe to print: control and non-ASCII characters
 * escaped, cut to `max` characters (with an ellipsis).
 *
 * @param text The peer's text.
 * @param max The longest result.
 * @returns The text, safe to print on one line.
 *
 * @example Escaping a header value
 * ```ts
 * import assert from "node:assert/strict";
 * import { printable } from "@x/midisock/hub";
 *
 * assert.equal(printable("http://a\nb"), "http://a\\x0ab");
 * assert.equal(printable("x".repeat(100), 5), "xxxx…");
 * ```
 */
export function printable(text: string, max = MAX_DETAIL_LENGTH): string {
  const escaped = text.replace(
    /[^\x20-\x7e]/g,
    (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
  return escaped.length <= max ? escaped : `${escaped.slice(0, max - 1)}…`;
}

/** Tokens shorter than this draw a warning (and `serve` refuses them). */
export const MIN_TOKEN_LENGTH = 16;

/**
 * While an address waits after wrong tokens, how many tokens from it are
 * checked a second at most (in bursts of up to twice as many); past that,
 * connections from it are refused (`waiting`) without a check.
 */
export const WAITING_CHECKS_PER_SECOND = 5;
const WAITING_CHECKS_BURST = 2 * WAITING_CHECKS_PER_SECOND;

const FAILURE_RECORDS = 10_000;
const FIRST_WAIT_MS = 1000;
const LONGEST_WAIT_MS = 60_000;

/**
 * Tells whether text can be a token: 1-200 printable ASCII characters
 * without spaces (what fits in one line of the handshake).
 *
 * @param token The text.
 * @returns Whether it is a well-formed token.
 *
 * @example Checking tokens
 * ```ts
 * import assert from "node:assert/strict";
 * import { isToken } from "@x/midisock/hub";
 *
 * assert.ok(isToken("correct-horse-battery"));
 * assert.ok(!isToken("has space"));
 * assert.ok(!isToken(""));
 * ```
 */
export function isToken(token: unknown): token is string {
  return typeof token === "string" && /^[\x21-\x7e]{1,200}$/.test(token);
}

/**
 * Checks a token (see {@linkcode isToken}).
 *
 * @returns The token.
 * @throws {TypeError} For anything else.
 */
export function checkToken(token: unknown): string {
  if (!isToken(token)) {
    throw new TypeError(
      "Token must be 1-200 printable ASCII characters without spaces",
    );
  }
  return token;
}

type State = "pending" | "admitted" | "gone";

/** A connection at the gate, from arrival to leaving. */
interface Entry {
  readonly peer: Peer;
  readonly long: boolean;
  readonly close: ((refusal: Refusal) => void) | undefined;
  readonly deadline: number;
  /** Whether the gate keeps its deadline (not so in the older form). */
  readonly timed: boolean;
  state: State;
  /** Why the gate refused it, once it has. */
  refusal: Refusal | undefined;
  /** What it owes next, for the reason of a timeout. */
  owes: string;
  /** A wrong token's answer, held until its address's wait is over. */
  held: ClockTimer | undefined;
  /** Settles a `present()` under way. */
  settle: ((refusal: Refusal | undefined) => void) | undefined;
}

interface Failures {
  count: number;
  /** When the address may try again (clock ms). */
  until: number;
  /** Token checks left while it waits, and when they were counted. */
  checks: number;
  checkedAt: number;
}

const encoder = new TextEncoder();

/**
 * Decides who may join, for every transport of a hub. A connection first
 * `arrive`s (allow list, handshake bounds) and gets a {@linkcode Ticket};
 * the ticket owns its life from then on: it `present`s the token if one is
 * set, `enter`s (client bound), and finally `leave`s. A ticket still
 * pending at its deadline is refused (`timeout`) and its connection closed
 * through the `close` it arrived with, so transports need no timers of
 * their own.
 *
 * @example Checking peers against a gate
 * ```ts
 * import assert from "node:assert/strict";
 * import { Gate } from "@x/midisock";
 *
 * const gate = new Gate({ allow: ["127.0.0.1"], maxClients: 1 });
 * const ticket = gate.arrive({ transport: "tcp", hostname: "127.0.0.1" });
 * assert.ok(!("code" in ticket));
 * assert.equal(ticket.enter(), undefined);
 * const other = gate.arrive({ transport: "tcp", hostname: "127.0.0.1" });
 * assert.ok(!("code" in other));
 * assert.equal(other.enter()?.code, "full");
 * const stranger = gate.arrive({ transport: "tcp", hostname: "10.0.0.1" });
 * assert.equal("code" in stranger && stranger.code, "not-allowed");
 * ticket.leave();
 * ```
 *
 * @example A token, presented
 * ```ts
 * import assert from "node:assert/strict";
 * import { Gate } from "@x/midisock";
 *
 * const gate = new Gate({ token: "correct-horse-battery" });
 * const peer = { transport: "tcp", hostname: "127.0.0.1" };
 * const ticket = gate.arrive(peer, { close: () => {} });
 * if ("code" in ticket) throw new Error(ticket.reason);
 * assert.equal(await ticket.present("correct-horse-battery"), undefined);
 * assert.equal(ticket.enter(), undefined);
 * ticket.leave();
 * const guess = gate.arrive(peer, { close: () => {} });
 * if ("code" in guess) throw new Error(guess.reason);
 * assert.equal((await guess.present("guess"))?.code, "wrong-token");
 * ```
 */
export class Gate {
  readonly #allow: AddressList | undefined;
  readonly #maxClients: number;
  readonly #token: Uint8Array | undefined;
  readonly #handshakeTimeout: number;
  readonly #maxPending: number;
  readonly #maxPendingPerAddress: number;
  readonly #failuresBeforeWait: number;
  readonly #clock: TimeSource;
  readonly #onRefuse: ((refusal: Refusal) => void) | undefined;
  #clients = 0;
  /**
   * Connections in their handshake, oldest first: in deadline order too,
   * since every deadline is the same time after arrival.
   */
  readonly #pendingAll = new Set<Entry>();
  /** Those in a long handshake, by address, oldest first. */
  readonly #pendingBy = new Map<string, Entry[]>();
  readonly #failures = new Map<string, Failures>();
  /** The one timer for the oldest deadline. */
  #timer: ClockTimer | undefined;

  /**
   * Makes a gate.
   *
   * @param options The rules.
   * @throws {SyntaxError} For an allow rule that is not an address or range.
   * @throws {RangeError} For a bound that is not a positive integer.
   * @throws {TypeError} For a token that is not 1-200 printable ASCII
   * characters without spaces.
   */
  constructor(options: GateOptions = {}) {
    this.#allow = options.allow && new AddressList(options.allow);
    const maxClients = options.maxClients ?? Infinity;
    this.#maxClients = maxClients === Infinity
      ? Infinity
      : positiveInteger("maxClients", maxClients);
    if (options.token !== undefined) {
      this.#token = encoder.encode(checkToken(options.token));
      if (options.token.length < MIN_TOKEN_LENGTH) {
        console.warn(
          `midisock: a token of ${options.token.length} characters can be ` +
            `guessed; use at least ${MIN_TOKEN_LENGTH}`,
        );
      }
    }
    this.#handshakeTimeout = positiveMs(
      "handshakeTimeout",
      options.handshakeTimeout ?? 5000,
    );
    this.#maxPending = positiveInteger("maxPending", options.maxPending ?? 128);
    this.#maxPendingPerAddress = positiveInteger(
      "maxPendingPerAddress",
      options.maxPendingPerAddress ?? 16,
    );
    this.#failuresBeforeWait = positiveInteger(
      "failuresBeforeWait",
      options.failuresBeforeWait ?? 3,
    );
    this.#clock = options.clock ?? systemClock;
    this.#onRefuse = options.onRefuse;
  }

  /** Whether clients must present a token. */
  get wantsToken(): boolean {
    return this.#token !== undefined;
  }

  /** The token's length in bytes (what a transport reads at most). */
  get tokenLength(): number {
    return this.#token?.length ?? 0;
  }

  /** How long a handshake may take, in milliseconds. */
  get handshakeTimeout(): number {
    return this.#handshakeTimeout;
  }

  /** The clock deadlines run on. */
  get clock(): TimeSource {
    return this.#clock;
  }

  /** Whether an allow list is set. */
  get hasAllowList(): boolean {
    return this.#allow !== undefined;
  }

  /**
   * What is odd about the rules, though they work: an allow rule with host
   * bits set (it means the whole range). A `HubLog` says these first.
   */
  get warnings(): readonly string[] {
    return (this.#allow?.warnings ?? []).map((line) => `allow: ${line}`);
  }

  /**
   * The warning a transport gives when it listens beyond loopback while
   * this gate lets anyone in (no allow list), or undefined.
   *
   * @param where What listens, for people: `tcp 0.0.0.0:8080`.
   * @param hostname The address it is bound to.
   * @returns The warning, or undefined when there is nothing to warn of.
   *
   * @example A server on every interface, with and without an allow list
   * ```ts
   * import assert from "node:assert/strict";
   * import { Gate } from "@x/midisock";
   *
   * assert.match(
   *   new Gate().exposure("0.0.0.0:8080", "0.0.0.0") ?? "",
   *   /^listening beyond loopback on 0\.0\.0\.0:8080 with no allow list/,
   * );
   * assert.equal(new Gate({ allow: ["10.0.0.0/8"] }).exposure("x", "::"), undefined);
   * assert.equal(new Gate().exposure("x", "127.0.0.1"), undefined);
   * ```
   */
  exposure(where: string, hostname: string): string | undefined {
    if (this.hasAllowList || AddressList.isLoopback(hostname)) return undefined;
    return `listening beyond loopback on ${where} with no allow list: ` +
      "anyone who can reach it can play notes and send sysex to every " +
      "client and output";
  }

  /** Clients admitted now. */
  get clients(): number {
    return this.#clients;
  }

  /** Whether every client place is taken (`maxClients` reached). */
  get full(): boolean {
    return this.#clients >= this.#maxClients;
  }

  /** Connections in their handshake now. */
  get pending(): number {
    return this.#pendingAll.size;
  }

  /**
   * Tells whether an address passes the allow list (without taking a slot).
   *
   * @param hostname The address.
   * @returns Whether it may connect.
   */
  allows(hostname: string): boolean {
    return this.#allow === undefined || this.#allow.includes(hostname);
  }

  /**
   * A connection arrives: checks the allow list and the handshake bounds,
   * and starts its deadline.
   *
   * @param peer Who.
   * @param options Whether its handshake may take long, and how to close
   * it (see {@linkcode ArriveOptions}).
   * @returns A ticket, or the refusal (already reported to `onRefuse`).
   */
  arrive(peer: Peer, options?: ArriveOptions): Ticket | Refusal;
  /**
   * The older form of `arrive(peer, { long, close })`, for transports that
   * keep their handshake deadline themselves: the gate sets none for the
   * ticket, and calls `onEvict` only to make room.
   *
   * @param peer Who.
   * @param long Whether its handshake may take long.
   * @param onEvict How to close the connection at once, when it is closed
   * to make room.
   * @returns A ticket, or the refusal.
   */
  arrive(peer: Peer, long?: boolean, onEvict?: () => void): Ticket | Refusal;
  arrive(
    peer: Peer,
    options?: ArriveOptions | boolean,
    onEvict?: () => void,
  ): Ticket | Refusal {
    const timed = typeof options === "object" || options === undefined;
    const { long = this.wantsToken, close } = typeof options === "object"
      ? options
      : { long: options, close: onEvict && (() => onEvict()) };
    if (!this.allows(peer.hostname)) {
      return this.refuse(peer, "not-allowed", "address not in the allow list");
    }
    // Past a bound, the oldest connection still in its handshake that can
    // be closed makes room: a client that answers at once is never the
    // oldest for long, one that holds its slot without a word soon is.
    if (long) {
      const mine = this.#pendingOf(peer.hostname);
      if (mine.length >= this.#maxPendingPerAddress && !this.#evictOne(mine)) {
        return this.refuse(peer, "busy", "too many handshakes from here");
      }
    }
    if (
      this.#pendingAll.size >= this.#maxPending &&
      !this.#evictOne(this.#pendingAll)
    ) {
      return this.refuse(peer, "busy", "too many handshakes under way");
    }
    const entry: Entry = {
      peer,
      long,
      close,
      deadline: this.#clock.now() + this.#handshakeTimeout,
      timed,
      state: "pending",
      refusal: undefined,
      owes: this.wantsToken ? "token" : "handshake",
      held: undefined,
      settle: undefined,
    };
    this.#pendingAll.add(entry);
    if (long) this.#pendingOf(peer.hostname).push(entry);
    this.#arm();
    return this.#ticket(entry);
  }

  /** The long handshakes of one address, oldest first. */
  #pendingOf(hostname: string): Entry[] {
    let list = this.#pendingBy.get(hostname);
    if (list === undefined) this.#pendingBy.set(hostname, list = []);
    return list;
  }

  /** Closes the oldest entry that can be closed; false if none can. */
  #evictOne(entries: Iterable<Entry>): boolean {
    for (const entry of entries) {
      if (entry.close === undefined) continue;
      this.#end(
        entry,
        "timeout",
        "handshake too slow: closed to make room for a newer connection",
      );
      return true;
    }
    return false;
  }

  /** Sets the timer for the oldest deadline, unless one is set. */
  #arm(): void {
    if (this.#timer !== undefined) return;
    for (const entry of this.#pendingAll) {
      if (!entry.timed || entry.held !== undefined) continue;
      this.#timer = this.#clock.setTimer(() => {
        this.#timer = undefined;
        this.#expire();
      }, entry.deadline - this.#clock.now());
      return;
    }
  }

  /** Refuses every entry past its deadline, oldest first. */
  #expire(): void {
    const now = this.#clock.now();
    for (const entry of this.#pendingAll) {
      if (!entry.timed || entry.held !== undefined) continue;
      if (entry.deadline > now) break;
      this.#end(
        entry,
        "timeout",
        `no ${entry.owes} within ${this.#handshakeTimeout} ms`,
      );
    }
    this.#arm();
  }

  /** Refuses a pending entry and has its connection closed. */
  #end(entry: Entry, code: RefusalCode, reason: string): void {
    const refusal = this.#refuseEntry(entry, code, reason);
    callBack(entry.close, refusal);
  }

  /**
   * Reports a refusal to `onRefuse` and returns it.
   *
   * @param peer Who.
   * @param code Why, in a word.
   * @param reason Why, for people: no text the peer chose.
   * @param detail The peer's text that was refused, if it helps; it is
   * made safe with {@linkcode printable}.
   * @returns The refusal.
   */
  refuse(
    peer: Peer,
    code: RefusalCode,
    reason: string,
    detail?: string,
  ): Refusal {
    const refusal: Refusal = detail === undefined
      ? { peer, code, reason }
      : { peer, code, reason, detail: printable(detail) };
    callBack(this.#onRefuse, refusal);
    return refusal;
  }

  /**
   * Refuses an entry (pending or admitted) unless the gate has already:
   * reports it, gives the slot back, settles a `present()` under way.
   */
  #refuseEntry(
    entry: Entry,
    code: RefusalCode,
    reason: string,
    detail?: string,
  ): Refusal {
    if (entry.refusal !== undefined) return entry.refusal;
    if (entry.state === "gone") {
      // It left already: nothing to report, nothing to give back.
      return detail === undefined
        ? { peer: entry.peer, code, reason }
        : { peer: entry.peer, code, reason, detail: printable(detail) };
    }
    this.#release(entry);
    const refusal = this.refuse(entry.peer, code, reason, detail);
    entry.refusal = refusal;
    const settle = entry.settle;
    entry.settle = undefined;
    settle?.(refusal);
    return refusal;
  }

  /** Gives an entry's slot back, whatever its state. */
  #release(entry: Entry): void {
    if (entry.state === "admitted") this.#clients--;
    else if (entry.state === "pending") this.#unpend(entry);
    entry.state = "gone";
  }

  #unpend(entry: Entry): void {
    entry.held?.cancel();
    entry.held = undefined;
    if (!this.#pendingAll.delete(entry)) return;
    if (this.#pendingAll.size === 0) {
      this.#timer?.cancel();
      this.#timer = undefined;
    }
    if (!entry.long) return;
    const hostname = entry.peer.hostname;
    const list = this.#pendingBy.get(hostname) ?? [];
    const at = list.indexOf(entry);
    if (at >= 0) list.splice(at, 1);
    if (list.length === 0) this.#pendingBy.delete(hostname);
  }

  /** Compares a token in constant time; wrong ones count against the address. */
  #compare(hostname: string, candidate: Uint8Array | string): boolean {
    const bytes = typeof candidate === "string"
      ? encoder.encode(candidate)
      : candidate;
    // A right token does not clear the address's failures: on a shared
    // address (NAT, loopback) they may be someone else's guesses.
    const ok = timingSafeEqual(bytes, this.#token!);
    if (!ok) this.#fail(hostname);
    return ok;
  }

  /**
   * Whether a token from this address may be checked now: always, unless
   * it waits and has used its checks for the moment.
   */
  #mayCheck(hostname: string): boolean {
    const record = this.#failures.get(hostname);
    if (record === undefined || record.until <= this.#clock.now()) return true;
    const now = this.#clock.now();
    record.checks = Math.min(
      WAITING_CHECKS_BURST,
      record.checks + (now - record.checkedAt) * WAITING_CHECKS_PER_SECOND /
          1000,
    );
    record.checkedAt = now;
    if (record.checks < 1) return false;
    record.checks -= 1;
    return true;
  }

  #present(entry: Entry, candidate: Uint8Array | string): Promise<
    Refusal | undefined
  > {
    if (entry.refusal !== undefined) return Promise.resolve(entry.refusal);
    if (entry.state !== "pending" || entry.settle !== undefined) {
      throw new Error(
        `Ticket of ${entry.peer.hostname} is ${
          entry.state === "pending" ? "presenting already" : entry.state
        }`,
      );
    }
    if (this.#token === undefined) return Promise.resolve(undefined);
    const { hostname } = entry.peer;
    if (!this.#mayCheck(hostname)) {
      return Promise.resolve(this.#refuseEntry(
        entry,
        "waiting",
        `too many wrong tokens; retry in ${
          Math.ceil(this.#waitFor(hostname) / 1000)
        } s`,
      ));
    }
    if (this.#compare(hostname, candidate)) return Promise.resolve(undefined);
    const wait = this.#waitFor(hostname);
    if (wait <= 0) {
      return Promise.resolve(
        this.#refuseEntry(entry, "wrong-token", "wrong token"),
      );
    }
    // Answered when the wait is over, so that guesses stay slow; meanwhile
    // the connection still counts as pending and may be closed for room.
    const { promise, resolve } = Promise.withResolvers<Refusal | undefined>();
    entry.settle = resolve;
    entry.held = this.#clock.setTimer(() => {
      entry.held = undefined;
      this.#refuseEntry(entry, "wrong-token", "wrong token");
    }, wait);
    return promise;
  }

  #checkToken(entry: Entry, candidate: Uint8Array | string): boolean {
    if (this.#token === undefined) return true;
    const { hostname } = entry.peer;
    return this.#mayCheck(hostname) && this.#compare(hostname, candidate);
  }

  #enter(entry: Entry): Refusal | undefined {
    if (entry.refusal !== undefined) return entry.refusal;
    if (entry.state !== "pending" || entry.settle !== undefined) {
      throw new Error(
        `Ticket of ${entry.peer.hostname} is ${
          entry.state === "pending" ? "presenting its token" : entry.state
        }`,
      );
    }
    if (this.#clients >= this.#maxClients) {
      return this.#refuseEntry(
        entry,
        "full",
        `server full (${this.#maxClients} client${
          this.#maxClients === 1 ? "" : "s"
        })`,
      );
    }
    this.#unpend(entry);
    entry.state = "admitted";
    this.#clients++;
    return undefined;
  }

  #ticket(entry: Entry): Ticket {
    return {
      peer: entry.peer,
      deadline: entry.deadline,
      get state() {
        return entry.state;
      },
      get admitted() {
        return entry.state === "admitted";
      },
      get refusal() {
        return entry.refusal;
      },
      owes: (what) => {
        entry.owes = what;
      },
      present: (candidate) => this.#present(entry, candidate),
      checkToken: (candidate) => this.#checkToken(entry, candidate),
      enter: () => this.#enter(entry),
      refuse: (code, reason, detail) =>
        this.#refuseEntry(entry, code, reason, detail),
      leave: () => {
        // A wrong token held for its answer is refused now, not forgotten.
        if (entry.settle !== undefined) {
          this.#refuseEntry(entry, "wrong-token", "wrong token");
        } else this.#release(entry);
      },
    };
  }

  #waitFor(hostname: string): number {
    const record = this.#failures.get(hostname);
    if (record === undefined) return 0;
    return Math.max(0, record.until - this.#clock.now());
  }

  #fail(hostname: string): void {
    const now = this.#clock.now();
    let record = this.#failures.get(hostname);
    // Failures long past are forgotten.
    if (record === undefined || now - record.until > LONGEST_WAIT_MS) {
      record = {
        count: 0,
        until: 0,
        checks: WAITING_CHECKS_BURST,
        checkedAt: now,
      };
    }
    record.count++;
    const over = record.count - this.#failuresBeforeWait;
    if (over >= 0) {
      record.until = now + Math.min(FIRST_WAIT_MS * 2 ** over, LONGEST_WAIT_MS);
    }
    // Re-insert so the map stays in order of last failure; forget the
    // oldest addresses past the bound, so memory stays flat.
    this.#failures.delete(hostname);
    this.#failures.set(hostname, record);
    if (this.#failures.size > FAILURE_RECORDS) {
      this.#failures.delete(this.#failures.keys().next().value!);
    }
  }
}

/**
 * One connection's place at the gate, from {@linkcode Gate.arrive}: pending
 * until it `enter`s (or its deadline passes), admitted until it `leave`s.
 */
export interface Ticket {
  /** Who holds it. */
  readonly peer: Peer;
  /** When its handshake must be done (on the gate's clock, in ms). */
  readonly deadline: number;
  /** Where it is: in its handshake, admitted, or gone. */
  readonly state: "pending" | "admitted" | "gone";
  /** Whether the ticket is admitted (and has not left). */
  readonly admitted: boolean;
  /**
   * Why the gate refused it (a timeout, a wrong token, room made for a
   * newer connection, or a refusal of the transport), once it has.
   */
  readonly refusal: Refusal | undefined;
  /**
   * Says what the connection owes next, for the reason given when its
   * deadline passes: `no ${what} within N ms`.
   *
   * @param what As `"token"` or `"TLS handshake"`.
   */
  owes(what: string): void;
  /**
   * Presents a token. A right one resolves at once; a wrong one counts
   * against the address and resolves to the refusal, once the address's
   * wait (if the failure made it wait) is over. While the address waits,
   * only {@linkcode WAITING_CHECKS_PER_SECOND} tokens a second are checked;
   * past that, it resolves to a `waiting` refusal at once. Resolves to the
   * ticket's refusal if the gate refuses it meanwhile (deadline, room).
   *
   * @param candidate The token as presented.
   * @returns `undefined` when it is right (always when no token is set),
   * else the refusal (reported already; the slot is given back).
   * @throws {Error} When the ticket has entered or left, or is presenting
   * already.
   */
  present(candidate: Uint8Array | string): Promise<Refusal | undefined>;
  /**
   * Checks a token in constant time, at once: the older, synchronous form
   * of `present`. Wrong tokens count against the address; while it waits
   * and its checks for the moment are used, this returns `false` without
   * a check. Refusing is left to the caller.
   *
   * @param candidate The token as presented.
   * @returns Whether it is right (always `true` when no token is set).
   */
  checkToken(candidate: Uint8Array | string): boolean;
  /**
   * Passes the gate: takes a client slot.
   *
   * @returns `undefined` when admitted, else the refusal: the server is
   * full, or the gate refused the ticket already (the ticket is then
   * gone).
   * @throws {Error} When the ticket was already used, or is presenting a
   * token.
   */
  enter(): Refusal | undefined;
  /**
   * Refuses the connection, pending or admitted: reports it and gives the
   * slot back. When the gate has refused it already, returns that refusal;
   * after `leave()`, reports nothing.
   *
   * @param code Why, in a word.
   * @param reason Why, for people: no text the peer chose.
   * @param detail The peer's text that was refused, if it helps.
   * @returns The refusal.
   */
  refuse(code: RefusalCode, reason: string, detail?: string): Refusal;
  /** Gives the slot back (pending or admitted). Leaving twice does nothing. */
  leave(): void;
}

/**
 * Compares two byte strings in time that does not depend on where they
 * differ (only on their length).
 */
function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
