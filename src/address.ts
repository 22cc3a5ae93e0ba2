/**
 * `host:port` addresses as people type them, with IPv6 literals in brackets.
 *
 * @module
 */

/** A host and a port, as {@linkcode parseAddress} reads them. */
export interface Address {
  /** Host name or IP address; `""` means every interface. */
  hostname: string;
  /** TCP port, 0-65535 (0: any free port, for a server). */
  port: number;
}

/** Checks a TCP port number, naming what was wrong. */
export function checkPort(port: unknown): number {
  if (typeof port !== "number" || !Number.isInteger(port)) {
    throw new TypeError(
      `Port must be an integer in 0..65535: got ${
        typeof port === "string" ? JSON.stringify(port) : String(port)
      }`,
    );
  }
  if (port < 0 || port > 65535) {
    throw new RangeError(`Port must be an integer in 0..65535: got ${port}`);
  }
  return port;
}

/**
 * Reads `host:port`, `[ipv6]:port` or `:port` (every interface). A bare
 * `host` or `[ipv6]` takes `defaultPort`.
 *
 * @param text The address.
 * @param defaultPort The port when the text names none.
 * @returns The host and port.
 * @throws {SyntaxError} For text that is no address, quoting it.
 *
 * @example Reading addresses
 * ```ts
 * import assert from "node:assert/strict";
 * import { parseAddress } from "@x/midisock";
 *
 * assert.deepEqual(parseAddress("localhost:8080"), {
 *   hostname: "localhost",
 *   port: 8080,
 * });
 * assert.deepEqual(parseAddress("[::1]:9000"), { hostname: "::1", port: 9000 });
 * assert.deepEqual(parseAddress(":8080"), { hostname: "", port: 8080 });
 * ```
 */
export function parseAddress(text: string, defaultPort?: number): Address {
  const bad = (why: string): never => {
    throw new SyntaxError(
      `Invalid address ${JSON.stringify(text)}: ${why}`,
    );
  };
  if (typeof text !== "string") bad("expected host:port");
  let hostname: string;
  let portText: string | undefined;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) bad("missing ] after an IPv6 address");
    hostname = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (rest !== "" && !rest.startsWith(":")) bad("expected :port after ]");
    portText = rest === "" ? undefined : rest.slice(1);
    if (!hostname.includes(":")) bad("brackets are for IPv6 addresses");
  } else {
    const colon = text.lastIndexOf(":");
    if (colon >= 0 && text.indexOf(":") !== colon) {
      bad("put an IPv6 address in brackets, as [::1]:8080");
    }
    hostname = colon < 0 ? text : text.slice(0, colon);
    portText = colon < 0 ? undefined : text.slice(colon + 1);
    if (/\s/.test(hostname)) bad("the host has spaces");
  }
  if (portText === undefined) {
    if (defaultPort === undefined) bad("no port (expected host:port)");
    return { hostname, port: checkPort(defaultPort) };
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
    bad("the port must be a number in 0..65535");
  }
  return { hostname, port: Number(portText) };
}

/**
 * Reads the address of a peer to reach: `host:port` or `[ipv6]:port`, both
 * given.
 *
 * @param text The address.
 * @param what What the address is, for the error.
 * @returns The host and port.
 * @throws {SyntaxError} `WHAT must be HOST:PORT: got TEXT`.
 */
export function parsePeer(text: string, what = "address"): Address {
  let address: Address | undefined;
  try {
    address = parseAddress(text);
  } catch {
    // Said below, in the words every caller uses.
  }
  if (!address?.hostname || !address.port) {
    throw new SyntaxError(`${what} must be HOST:PORT: got ${text}`);
  }
  return address;
}

/**
 * An IPv4 address seen through an IPv6 socket (`::ffff:127.0.0.1`, what a
 * dual-stack server sees of IPv4 peers) as plain IPv4; any other address as
 * it is.
 *
 * @param hostname An IP address or host name.
 * @returns The address, IPv4-mapped ones as IPv4.
 *
 * @example Unmapping a dual-stack peer
 * ```ts
 * import assert from "node:assert/strict";
 * import { unmapAddress } from "@x/midisock/net";
 *
 * assert.equal(unmapAddress("::ffff:127.0.0.1"), "127.0.0.1");
 * assert.equal(unmapAddress("::1"), "::1");
 * ```
 */
export function unmapAddress(hostname: string): string {
  const mapped = /^(?:0{0,4}:){0,5}:?ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(
    hostname,
  );
  return mapped === null ? hostname : mapped[1];
}

/**
 * Writes an address back as text: `host:port`, `[ipv6]:port`, `:port`.
 * IPv4 peers of a dual-stack server show as IPv4 (`127.0.0.1:60448`, not
 * `[::ffff:127.0.0.1]:60448`).
 *
 * @param address The host and port (a `Deno.NetAddr` will do).
 * @returns The text.
 *
 * @example Printing where a server listens
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatAddress } from "@x/midisock";
 *
 * assert.equal(formatAddress({ hostname: "::1", port: 8080 }), "[::1]:8080");
 * assert.equal(
 *   formatAddress({ hostname: "::ffff:10.0.0.2", port: 60448 }),
 *   "10.0.0.2:60448",
 * );
 * ```
 */
export function formatAddress(address: Address): string {
  const { port } = address;
  const hostname = unmapAddress(address.hostname);
  return hostname.includes(":")
    ? `[${hostname}]:${port}`
    : `${hostname}:${port}`;
}
