/**
 * Internal: the command line's flags, each declared once with its help: the
 * table gives `parseArgs` its options and `--help` its lines, and the value
 * readers turn text into what the library takes, with one line naming the
 * flag when the text will not do.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { checkToken } from "../gate.ts";
import type { RateLimit } from "../_policy.ts";

/** A flag: its name, its letter, its value's name (none: a switch). */
export interface Flag {
  readonly name: string;
  readonly short?: string;
  readonly value?: string;
  readonly multiple: boolean;
}

/**
 * The flags of an `Options:` help text, which declares them: a line
 * `  -p, --port PORT   help` (or `      --port PORT`) is a flag, a value
 * written `NAME...` may be given more than once, and lines that start with
 * spaces only continue the help above.
 */
export function flagsOf(options: string): Flag[] {
  const flags: Flag[] = [];
  for (const line of options.split("\n")) {
    const match = line.match(
      /^ {2}(?:-(\w), | {4})--([\w-]+)(?: (\[?[A-Z][\w:]*\]?)(\.\.\.)?)?/,
    );
    if (match === null) continue;
    const [, short, name, value, many] = match;
    flags.push({ name, short, value, multiple: many !== undefined });
  }
  return flags;
}

/** Bad usage: exit code 2, with a pointer to `--help`. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** What parsing gave: each flag's value(s), and the positional arguments. */
export interface Parsed {
  readonly values: Record<string, string | string[] | boolean | undefined>;
  readonly positionals: string[];
  /** The flags in the order given (for `--send`/`--wait` sequences). */
  readonly order: { name: string; value: string }[];
}

/**
 * Parses `args` against `flags`. A value that starts with `-` and a digit
 * (`--port -1`) is taken as the flag's value, so its reader can say what
 * is wrong with it.
 *
 * @throws {UsageError} For an unknown flag, a missing value, a value given
 * to a switch.
 */
export function parseFlags(
  args: string[],
  flags: readonly Flag[],
): Parsed {
  const valued = new Set<string>();
  for (const flag of flags) {
    if (flag.value === undefined) continue;
    valued.add(`--${flag.name}`);
    if (flag.short !== undefined) valued.add(`-${flag.short}`);
  }
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const next = args[i + 1];
    if (valued.has(arg) && next !== undefined && /^-[\d.]/.test(next)) {
      joined.push(arg.startsWith("--") ? `${arg}=${next}` : `${arg}${next}`);
      i++;
    } else {
      joined.push(arg);
    }
  }
  const options: Record<
    string,
    { type: "string" | "boolean"; short?: string; multiple?: boolean }
  > = {};
  for (const flag of flags) {
    options[flag.name] = {
      type: flag.value === undefined ? "boolean" : "string",
      ...(flag.short === undefined ? {} : { short: flag.short }),
      ...(flag.multiple ? { multiple: true } : {}),
    };
  }
  let parsed;
  try {
    parsed = parseArgs({
      args: joined,
      options,
      strict: true,
      allowPositionals: true,
      tokens: true,
    });
  } catch (error) {
    throw new UsageError(
      (error as Error).message.split("\n")[0].replace(/\.$/, "")
        .replace(/^Unknown option/, "unknown option")
        .replace(/^Option/, "option"),
    );
  }
  const order = (parsed.tokens ?? []).flatMap((token) =>
    token.kind === "option" && token.value !== undefined
      ? [{ name: token.name, value: token.value }]
      : []
  );
  return {
    values: parsed.values as Parsed["values"],
    positionals: parsed.positionals,
    order,
  };
}

/**
 * Reads a whole number flag.
 *
 * @throws {UsageError} For anything else, or one below `min`.
 */
export function count(flag: string, text: string, min: number): number {
  if (!/^\d+$/.test(text) || Number(text) < min) {
    throw new UsageError(
      `--${flag} must be a whole number of at least ${min}: got ${
        JSON.stringify(text)
      }`,
    );
  }
  return Number(text);
}

/**
 * Reads a flag given in seconds, as milliseconds.
 *
 * @throws {UsageError} For anything but a positive number.
 */
export function seconds(flag: string, text: string): number {
  const value = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !(value > 0)) {
    throw new UsageError(
      `--${flag} must be a positive number of seconds: got ${
        JSON.stringify(text)
      }`,
    );
  }
  return value * 1000;
}

/**
 * Reads a rate flag, `MESSAGES` or `MESSAGES/BURST` a second.
 *
 * @throws {UsageError} For anything else, or a rate or burst under 1.
 */
export function rate(flag: string, text: string): RateLimit {
  const match = text.match(/^(\d+)(?:\/(\d+))?$/);
  if (match === null || Number(match[1]) < 1 || Number(match[2] ?? 1) < 1) {
    throw new UsageError(
      `--${flag} must be MESSAGES or MESSAGES/BURST, each at least 1 (per second): got ${
        JSON.stringify(text)
      }`,
    );
  }
  return { messages: Number(match[1]), burst: Number(match[2] ?? match[1]) };
}

/**
 * Reads `--latency`: milliseconds, or `auto`.
 *
 * @throws {UsageError} For anything else.
 */
export function latency(flag: string, text: string): number | "auto" {
  if (text === "auto") return "auto";
  const value = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !(value <= 10_000)) {
    throw new UsageError(
      `--${flag} must be milliseconds (0 to 10000) or auto: got ${
        JSON.stringify(text)
      }`,
    );
  }
  return value;
}

/**
 * The shared secret from `--token`, else from MIDISOCK_TOKEN (which keeps
 * it out of the process list), checked as a server checks it.
 *
 * @throws {UsageError} For a malformed token.
 */
export function token(flag: string | undefined): string | undefined {
  const text = flag ?? envToken();
  if (text === undefined) return undefined;
  try {
    return checkToken(text);
  } catch (error) {
    throw new UsageError(
      `--token ${(error as Error).message.replace(/^Token /, "")}`,
    );
  }
}

function envToken(): string | undefined {
  const query = { name: "env", variable: "MIDISOCK_TOKEN" } as const;
  if (Deno.permissions.querySync(query).state !== "granted") return undefined;
  return Deno.env.get("MIDISOCK_TOKEN");
}

/**
 * Runs a library constructor with options read from flags, and turns what
 * it refuses into bad usage naming the flag: `what` maps an option's name,
 * as the library says it, to its flag.
 *
 * @throws {UsageError} For a `TypeError`, `RangeError` or `SyntaxError`.
 */
export function asUsage<T>(
  make: () => T,
  flags: Readonly<Record<string, string>>,
): T {
  try {
    return make();
  } catch (error) {
    if (
      error instanceof TypeError || error instanceof RangeError ||
      error instanceof SyntaxError
    ) {
      let text = error.message;
      for (const [option, flag] of Object.entries(flags)) {
        text = text.replaceAll(option, flag);
      }
      throw new UsageError(text);
    }
    throw error;
  }
}
