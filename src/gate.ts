/**
 * Who may join a hub, over any transport: an address allow list, a bound on
 * clients, a bound on connections still proving who they are (overall and
 * per address), a shared-secret token compared in constant time, and a
 * growing wait for addresses that keep failing it.
 *
 * @module
 */

import { AddressList } from "./access.ts";
import { checkToken, positiveInteger, positiveMs } from "./_policy.ts";
import { callBack } from "./_call.ts";

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
   * milliseconds; then it is closed.
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
   * at a second and doubles with each further failure, up to a minute.
   * @default {3}
   */
  failuresBeforeWait?: number;
  /** Called for each connection refused. */
  onRefuse?: (refusal: Refusal) => void;
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

/** Why a connection was refused, in a word. */
export type RefusalCode =
  | "not-allowed"
  | "full"
  | "busy"
  | "wrong-token"
  | "no-token"
  | "timeout"
  | "waiting"
  | "protocol"
  | "closing";

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
 * import { printable } from "@x/midisock";
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

const FAILURE_RECORDS = 10_000;
const FIRST_WAIT_MS = 1000;
const LONGEST_WAIT_MS = 60_000;

/** A connection in its handshake. */
interface Pending {
  readonly peer: Peer;
  readonly long: boolean;
  readonly onEvict: (() => void) | undefined;
  /** Set when it was closed to make room. */
  evicted: Refusal | undefined;
}

interface Failures {
  count: number;
  until: number;
}

const encoder = new TextEncoder();

/**
 * Decides who may join, for every transport of a hub. A connection first
 * `arrive`s (allow list, handshake bounds), then proves the token if one is
 * set, then `enter`s (client bound), and finally `leave`s.
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
 */
export class Gate {
  readonly #allow: AddressList | undefined;
  readonly #maxClients: number;
  readonly #token: Uint8Array | undefined;
  readonly #handshakeTimeout: number;
  readonly #maxPending: number;
  readonly #maxPendingPerAddress: number;
  readonly #failuresBeforeWait: number;
  readonly #onRefuse: ((refusal: Refusal) => void) | undefined;
  #clients = 0;
  /** Connections in their handshake, oldest first. */
  readonly #pendingAll = new Set<Pending>();
  /** Those in a long handshake, by address, oldest first. */
  readonly #pendingBy = new Map<string, Pending[]>();
  readonly #failures = new Map<string, Failures>();

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

  /** Whether an allow list is set. */
  get hasAllowList(): boolean {
    return this.#allow !== undefined;
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
   * A connection arrives: checks the allow list, the handshake bounds and
   * whether its address must wait after failed tokens.
   *
   * @param peer Who.
   * @param long Whether its handshake may take long (TLS, or a token to
   * wait for): only those count against `maxPendingPerAddress`. Defaults
   * to whether the gate wants a token.
   * @param onEvict How to close the connection at once: when given, a
   * bound reached closes the oldest connection still in its handshake
   * (reported as a refusal) instead of refusing the newest.
   * @returns A ticket, or the refusal (already reported to `onRefuse`).
   */
  arrive(
    peer: Peer,
    long: boolean = this.wantsToken,
    onEvict?: () => void,
  ): Ticket | Refusal {
    if (!this.allows(peer.hostname)) {
      return this.refuse(peer, "not-allowed", "address not in the allow list");
    }
    const wait = this.#waitFor(peer.hostname);
    if (wait > 0) {
      return this.refuse(
        peer,
        "waiting",
        `too many wrong tokens; retry in ${Math.ceil(wait / 1000)} s`,
      );
    }
    // Past a bound, the oldest connection still in its handshake makes room:
    // a client that answers at once is never the oldest for long, one that
    // holds its slot without a word soon is.
    if (long) {
      const mine = this.#pendingOf(peer.hostname);
      if (mine.length >= this.#maxPendingPerAddress) {
        if (!this.#evict(mine[0])) {
          return this.refuse(peer, "busy", "too many handshakes from here");
        }
      }
    }
    if (this.#pendingAll.size >= this.#maxPending) {
      const oldest = this.#pendingAll.values().next().value;
      if (oldest === undefined || !this.#evict(oldest)) {
        return this.refuse(peer, "busy", "too many handshakes under way");
      }
    }
    const entry: Pending = { peer, long, onEvict, evicted: undefined };
    this.#pendingAll.add(entry);
    if (long) this.#pendingOf(peer.hostname).push(entry);
    return this.#ticket(entry);
  }

  /** The long handshakes of one address, oldest first. */
  #pendingOf(hostname: string): Pending[] {
    let list = this.#pendingBy.get(hostname);
    if (list === undefined) this.#pendingBy.set(hostname, list = []);
    return list;
  }

  /** Closes a pending connection to make room; false if it cannot be. */
  #evict(entry: Pending): boolean {
    if (entry.onEvict === undefined) return false;
    this.#unpend(entry);
    entry.evicted = this.refuse(
      entry.peer,
      "timeout",
      "handshake too slow: closed to make room for a newer connection",
    );
    callBack(entry.onEvict);
    return true;
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

  #checkToken(peer: Peer, candidate: Uint8Array | string): boolean {
    const expected = this.#token;
    if (expected === undefined) return true;
    const bytes = typeof candidate === "string"
      ? encoder.encode(candidate)
      : candidate;
    const ok = timingSafeEqual(bytes, expected);
    if (ok) this.#failures.delete(peer.hostname);
    else this.#fail(peer.hostname);
    return ok;
  }

  #enter(entry: Pending): Refusal | undefined {
    this.#unpend(entry);
    if (this.#clients >= this.#maxClients) {
      return this.refuse(
        entry.peer,
        "full",
        `server full (${this.#maxClients} client${
          this.#maxClients === 1 ? "" : "s"
        })`,
      );
    }
    this.#clients++;
    return undefined;
  }

  #unpend(entry: Pending): void {
    if (!this.#pendingAll.delete(entry) || !entry.long) return;
    const hostname = entry.peer.hostname;
    const list = this.#pendingBy.get(hostname) ?? [];
    const at = list.indexOf(entry);
    if (at >= 0) list.splice(at, 1);
    if (list.length === 0) this.#pendingBy.delete(hostname);
  }

  #ticket(entry: Pending): Ticket {
    const { peer } = entry;
    let state: "pending" | "admitted" | "gone" = "pending";
    const leave = (): void => {
      if (state === "admitted") this.#clients--;
      else if (state === "pending") this.#unpend(entry);
      state = "gone";
    };
    return {
      peer,
      deadline: performance.now() + this.#handshakeTimeout,
      get admitted() {
        return state === "admitted";
      },
      checkToken: (candidate) => this.#checkToken(peer, candidate),
      enter: () => {
        if (entry.evicted !== undefined) return entry.evicted;
        if (state !== "pending") {
          throw new Error(`Ticket of ${peer.hostname} is ${state}`);
        }
        const refusal = this.#enter(entry);
        state = refusal === undefined ? "admitted" : "gone";
        return refusal;
      },
      refuse: (code, reason, detail) => {
        if (entry.evicted !== undefined) return entry.evicted;
        leave();
        return this.refuse(peer, code, reason, detail);
      },
      leave,
    };
  }

  #waitFor(hostname: string): number {
    const record = this.#failures.get(hostname);
    if (record === undefined) return 0;
    return Math.max(0, record.until - performance.now());
  }

  #fail(hostname: string): void {
    const record = this.#failures.get(hostname) ?? { count: 0, until: 0 };
    record.count++;
    const over = record.count - this.#failuresBeforeWait;
    if (over >= 0) {
      record.until = performance.now() +
        Math.min(FIRST_WAIT_MS * 2 ** over, LONGEST_WAIT_MS);
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
 * until it `enter`s, admitted until it `leave`s.
 */
export interface Ticket {
  /** Who holds it. */
  readonly peer: Peer;
  /** When its handshake must be done (`performance.now()` ms). */
  readonly deadline: number;
  /** Whether the ticket is admitted (and has not left). */
  readonly admitted: boolean;
  /**
   * Checks a presented token in constant time. Wrong tokens count against
   * the address: past `failuresBeforeWait` it must wait before trying
   * again.
   *
   * @param candidate The token as presented.
   * @returns Whether it is right (always `true` when no token is set).
   */
  checkToken(candidate: Uint8Array | string): boolean;
  /**
   * Passes the gate: takes a client slot.
   *
   * @returns `undefined` when admitted, else the refusal (the ticket is then
   * gone).
   * @throws {Error} When the ticket was already used.
   */
  enter(): Refusal | undefined;
  /**
   * Refuses the connection: reports it and gives the slot back.
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
