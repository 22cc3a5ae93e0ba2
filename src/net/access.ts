/**
 * Who may connect and how much they may send: address allowlists (IPv4 and
 * IPv6 CIDR), a token bucket rate limit, and the shared-secret header.
 *
 * @module
 */

const V4_MAPPED = 0xffffn << 32n;

function parseV4(text: string): bigint | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part) || Number(part) > 255) return undefined;
    value = (value << 8n) | BigInt(Number(part));
  }
  return value;
}

function parseV6(text: string): bigint | undefined {
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  const last = text.lastIndexOf(":");
  if (last < 0) return undefined;
  const v4Tail: number[] = [];
  if (text.includes(".", last)) {
    const v4 = parseV4(text.slice(last + 1));
    if (v4 === undefined) return undefined;
    v4Tail.push(Number(v4 >> 16n), Number(v4 & 0xffffn));
    text = text.slice(0, last + 1);
    if (!text.endsWith("::")) text = text.slice(0, -1);
  }
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (part: string) => part === "" ? [] : part.split(":");
  const head = groups(halves[0]);
  const tail = halves.length === 2 ? groups(halves[1]) : [];
  if (![...head, ...tail].every((g) => /^[0-9a-f]{1,4}$/i.test(g))) {
    return undefined;
  }
  const count = head.length + tail.length + v4Tail.length;
  if (halves.length === 1 ? count !== 8 : count > 7) return undefined;
  const words = [
    ...head.map((g) => parseInt(g, 16)),
    ...new Array<number>(8 - count).fill(0),
    ...tail.map((g) => parseInt(g, 16)),
    ...v4Tail,
  ];
  return words.reduce((n, w) => (n << 16n) | BigInt(w), 0n);
}

/** An IP address as a 128-bit number, IPv4 mapped into ::ffff:0:0/96. */
function parseIp(text: string): bigint | undefined {
  const v4 = parseV4(text);
  if (v4 !== undefined) return V4_MAPPED | v4;
  return text.includes(":") ? parseV6(text) : undefined;
}

interface Range {
  base: bigint;
  mask: bigint;
}

const ALL = (1n << 128n) - 1n;

function parseRange(rule: string): Range {
  const bad = (): never => {
    throw new SyntaxError(
      `Invalid address rule ${
        JSON.stringify(rule)
      }: expected an IPv4 or IPv6 address, optionally with /prefix`,
    );
  };
  if (typeof rule !== "string") bad();
  const [address, prefixText, extra] = rule.trim().split("/");
  if (extra !== undefined) bad();
  const base = parseIp(address);
  if (base === undefined) bad();
  const isV4 = parseV4(address) !== undefined;
  const width = isV4 ? 32 : 128;
  let prefix = width;
  if (prefixText !== undefined) {
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > width) bad();
    prefix = Number(prefixText);
  }
  const bits = BigInt((isV4 ? 96 : 0) + prefix);
  const mask = (ALL << (128n - bits)) & ALL;
  return { base: base! & mask, mask };
}

/**
 * A list of IPv4 and IPv6 addresses and CIDR ranges that peers are checked
 * against. IPv4 peers seen through an IPv6 socket (`::ffff:10.0.0.1`) match
 * IPv4 rules.
 *
 * @example Allowing loopback and a LAN
 * ```ts
 * import { AddressList } from "@x/midisock";
 *
 * const list = new AddressList(["127.0.0.1", "::1", "192.168.1.0/24"]);
 * console.log(list.includes("192.168.1.20")); // true
 * console.log(list.includes("10.0.0.1")); // false
 * ```
 */
export class AddressList {
  readonly #ranges: Range[];
  /** The rules as given. */
  readonly rules: readonly string[];

  /**
   * Reads the rules.
   *
   * @param rules Addresses (`10.0.0.1`, `::1`) and ranges (`10.0.0.0/8`,
   * `fd00::/8`).
   * @throws {SyntaxError} For a rule that is neither, quoting it.
   */
  constructor(rules: Iterable<string>) {
    this.rules = [...rules];
    this.#ranges = this.rules.map(parseRange);
  }

  /**
   * Tells whether an address matches a rule.
   *
   * @param address An IP address; anything else never matches.
   * @returns Whether it is in the list.
   */
  includes(address: string): boolean {
    const ip = parseIp(address);
    if (ip === undefined) return false;
    return this.#ranges.some((r) => (ip & r.mask) === r.base);
  }

  /**
   * Tells whether an address is a loopback address (127.0.0.0/8, ::1).
   *
   * @param address An IP address or host name.
   * @returns `true` for loopback addresses and `localhost`.
   */
  static isLoopback(address: string): boolean {
    return address === "localhost" || LOOPBACK.includes(address);
  }
}

const LOOPBACK = new AddressList(["127.0.0.0/8", "::1"]);

/** A rate limit: `messages` per second, bursts of up to `burst`. */
export interface RateLimit {
  /** Messages per second, sustained. */
  messages: number;
  /**
   * How many messages may come at once above the sustained rate.
   * @default {messages}
   */
  burst?: number;
}

/** A token bucket: `take()` says whether one more message fits the limit. */
export class TokenBucket {
  #rate: number;
  #burst: number;
  #tokens: number;
  #last: number;

  /**
   * Makes a full bucket.
   *
   * @param limit The rate and burst.
   * @throws {RangeError} For a rate or burst that is not positive.
   */
  constructor(limit: RateLimit) {
    const burst = limit.burst ?? limit.messages;
    if (!(limit.messages > 0) || !Number.isFinite(limit.messages)) {
      throw new RangeError(
        `Rate limit messages must be a positive number: got ${limit.messages}`,
      );
    }
    if (!(burst >= 1) || !Number.isFinite(burst)) {
      throw new RangeError(`Rate limit burst must be at least 1: got ${burst}`);
    }
    this.#rate = limit.messages / 1000;
    this.#burst = burst;
    this.#tokens = burst;
    this.#last = performance.now();
  }

  /**
   * Takes one token if there is one.
   *
   * @returns Whether the message is within the limit.
   */
  take(): boolean {
    const now = performance.now();
    this.#tokens = Math.min(
      this.#burst,
      this.#tokens + (now - this.#last) * this.#rate,
    );
    this.#last = now;
    if (this.#tokens < 1) return false;
    this.#tokens -= 1;
    return true;
  }
}

/**
 * The header a client sends first when the server wants a token: one line of
 * 7-bit ASCII, which peers that expect none (mido among them) skip as stray
 * data bytes.
 */
export const TOKEN_PREFIX = "MIDISOCK-TOKEN ";

/** Checks a token: 1-200 printable ASCII characters, no spaces. */
export function checkToken(token: unknown): string {
  if (typeof token !== "string" || !/^[\x21-\x7e]{1,200}$/.test(token)) {
    throw new TypeError(
      "Token must be 1-200 printable ASCII characters without spaces",
    );
  }
  return token;
}

/** The header line for a token. */
export function tokenHeader(token: string): Uint8Array {
  return new TextEncoder().encode(`${TOKEN_PREFIX}${checkToken(token)}\n`);
}

/**
 * Compares two byte strings in time that does not depend on where they
 * differ (only on their length).
 */
export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
