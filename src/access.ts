/**
 * Who may connect: address allow lists (IPv4 and IPv6 CIDR) and the
 * shared-secret header.
 *
 * @module
 */

const V4_MAPPED = 0xffffn << 32n;

function parseV4(text: string): bigint | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  let value = 0n;
  for (const part of parts) {
    // No leading zeros: "010" reads as octal 8 in some tools, 10 in others.
    if (!/^(0|[1-9]\d{0,2})$/.test(part) || Number(part) > 255) {
      return undefined;
    }
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

function parseRange(rule: string, warnings: string[]): Range {
  const bad = (why: string): never => {
    throw new SyntaxError(
      `Invalid address rule ${JSON.stringify(rule)}: ${why}`,
    );
  };
  const expected = "expected an IPv4 or IPv6 address, optionally with /prefix";
  if (typeof rule !== "string") bad(expected);
  const trimmed = rule.trim();
  if (trimmed === "") bad("empty entry");
  if (trimmed.includes("%")) {
    bad("zone indexes (%eth0) are not allowed: give the address alone");
  }
  const [address, prefixText, extra] = trimmed.split("/");
  if (extra !== undefined) bad(expected);
  const base = parseIp(address);
  if (base === undefined) {
    bad(
      /(^|\.)0\d/.test(address)
        ? "leading zeros are not allowed (write 10.0.0.1, not 010.0.0.1)"
        : expected,
    );
  }
  const isV4 = parseV4(address) !== undefined;
  const width = isV4 ? 32 : 128;
  let prefix = width;
  if (prefixText !== undefined) {
    if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > width) {
      bad(`the prefix must be 0-${width}`);
    }
    prefix = Number(prefixText);
  }
  const bits = BigInt((isV4 ? 96 : 0) + prefix);
  const mask = (ALL << (128n - bits)) & ALL;
  if ((base! & mask) !== base!) {
    warnings.push(
      `address rule ${JSON.stringify(rule)} has host bits set: it means the ` +
        `whole /${prefix} range`,
    );
  }
  return { base: base! & mask, mask };
}

/**
 * A list of IPv4 and IPv6 addresses and CIDR ranges that peers are checked
 * against. IPv4 peers seen through an IPv6 socket (`::ffff:10.0.0.1`) match
 * IPv4 rules.
 *
 * @example Allowing loopback and a LAN
 * ```ts
 * import assert from "node:assert/strict";
 * import { AddressList } from "@x/midisock/hub";
 *
 * const list = new AddressList(["127.0.0.1", "::1", "192.168.1.0/24"]);
 * assert.ok(list.includes("192.168.1.20"));
 * assert.ok(list.includes("::ffff:127.0.0.1"));
 * assert.ok(!list.includes("10.0.0.1"));
 * ```
 */
export class AddressList {
  readonly #ranges: Range[];
  /** The rules as given. */
  readonly rules: readonly string[];
  /**
   * What looks like a mistake but is allowed: a range written with host
   * bits set (`10.1.2.3/8` means `10.0.0.0/8`).
   */
  readonly warnings: readonly string[];

  /**
   * Reads the rules.
   *
   * @param rules Addresses (`10.0.0.1`, `::1`) and ranges (`10.0.0.0/8`,
   * `fd00::/8`).
   * @throws {SyntaxError} For a rule that is neither, quoting it: an empty
   * entry, a zone index, leading zeros, a prefix out of range.
   */
  constructor(rules: Iterable<string>) {
    const warnings: string[] = [];
    this.rules = [...rules];
    this.#ranges = this.rules.map((rule) => parseRange(rule, warnings));
    this.warnings = warnings;
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
