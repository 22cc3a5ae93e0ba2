/**
 * Internal: the command line's flags, declared once by their help text,
 * and readers that turn a flag's text into what the library takes or one
 * line naming the flag.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { checkToken } from "../gate.ts";
import type { RateLimit } from "../_policy.ts";

/** Bad usage: exit code 2, with a pointer to `--help`. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** The arguments, parsed: each flag by name, and what stands alone. */
export class Args {
  readonly positionals: string[];
  /** Every valued flag in the order given (for `--send`/`--wait`). */
  readonly order: { name: string; value: string }[];
  readonly #values: Record<string, unknown>;

  constructor(
    values: Record<string, unknown>,
    positionals: string[],
    order: { name: string; value: string }[],
  ) {
    this.#values = values;
    this.positionals = positionals;
    this.order = order;
  }

  /** A valued flag's text, when given. */
  text(name: string): string | undefined {
    return this.#values[name] as string | undefined;
  }

  /** A repeatable flag's texts. */
  list(name: string): string[] {
    return (this.#values[name] as string[] | undefined) ?? [];
  }

  /** Whether a flag was given. */
  has(name: string): boolean {
    return this.#values[name] !== undefined && this.#values[name] !== false;
  }

  /** Reads a flag's text with `read`, when given. */
  read<T>(
    name: string,
    read: (flag: string, text: string) => T,
  ): T | undefined {
    const text = this.text(name);
    return text === undefined ? undefined : read(name, text);
  }

  /**
   * Checks how flags go together: `needs` maps a flag to the one it goes
   * with, `pairs` must come both or neither, `apart` never both.
   *
   * @throws {UsageError} Naming the flags.
   */
  check(rules: {
    needs?: Record<string, string>;
    pairs?: [string, string][];
    apart?: [string, string][];
  }): void {
    for (const [flag, main] of Object.entries(rules.needs ?? {})) {
      if (this.has(flag) && !this.has(main)) {
        throw new UsageError(`--${flag} goes with --${main}`);
      }
    }
    for (const [a, b] of rules.pairs ?? []) {
      if (this.has(a) !== this.has(b)) {
        throw new UsageError(`--${a} and --${b} go together`);
      }
    }
    for (const [a, b] of rules.apart ?? []) {
      if (this.has(a) && this.has(b)) {
        throw new UsageError(`--${a} and --${b} cannot be used together`);
      }
    }
  }
}

/**
 * Parses `args` against the flags an `Options:` help text declares: a line
 * `  -p, --port PORT   help` (or `      --port PORT`) is a flag; a value
 * written `NAME...` may be given more than once; a value that starts with
 * `-` and a digit (`--port -1`) is taken, so its reader can say what is
 * wrong with it.
 *
 * @throws {UsageError} For an unknown flag, a missing value, a value given
 * to a switch.
 */
export function parseFlags(args: string[], help: string): Args {
  const options: Record<
    string,
    { type: "string" | "boolean"; short?: string; multiple?: boolean }
  > = {};
  const valued = new Set<string>();
  for (const line of help.split("\n")) {
    const match = line.match(
      /^ {2}(?:-(\w), | {4})--([\w-]+)(?: (\[?[A-Z][\w:]*\]?)(\.\.\.)?)?/,
    );
    if (match === null) continue;
    const [, short, name, value, many] = match;
    options[name] = { type: value === undefined ? "boolean" : "string" };
    if (short !== undefined) options[name].short = short;
    if (many !== undefined) options[name].multiple = true;
    if (value !== undefined) {
      valued.add(`--${name}`);
      if (short !== undefined) valued.add(`-${short}`);
    }
  }
  const joined = args.flatMap((arg, i) =>
    /^-[\d.]/.test(arg) && valued.has(args[i - 1]) ? [] : valued.has(arg) &&
        /^-[\d.]/.test(args[i + 1] ?? "")
      ? [`${arg}${arg.startsWith("--") ? "=" : ""}${args[i + 1]}`]
      : [arg]
  );
  try {
    const { values, positionals, tokens } = parseArgs({
      args: joined,
      options,
      strict: true,
      allowPositionals: true,
      tokens: true,
    });
    const order = tokens.flatMap((token) =>
      token.kind === "option" && token.value !== undefined
        ? [{ name: token.name, value: token.value }]
        : []
    );
    return new Args(values, positionals, order);
  } catch (error) {
    const line = (error as Error).message.split(/\.( |$)/)[0];
    throw new UsageError(line.charAt(0).toLowerCase() + line.slice(1));
  }
}

/**
 * A whole number of at least `min`.
 *
 * @throws {UsageError} For anything else.
 */
export function count(flag: string, text: string, min = 0): number {
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
 * A positive number of seconds, as milliseconds.
 *
 * @throws {UsageError} For anything else.
 */
export function seconds(flag: string, text: string): number {
  if (!/^\d+(\.\d+)?$/.test(text) || !(Number(text) > 0)) {
    throw new UsageError(
      `--${flag} must be a positive number of seconds: got ${
        JSON.stringify(text)
      }`,
    );
  }
  return Number(text) * 1000;
}

/**
 * `MESSAGES` or `MESSAGES/BURST` a second.
 *
 * @throws {UsageError} For anything else, or a rate or burst under 1.
 */
export function rate(flag: string, text: string): RateLimit {
  const [, messages, burst = messages] = text.match(/^(\d+)(?:\/(\d+))?$/) ??
    [];
  if (!(Number(messages) >= 1) || !(Number(burst) >= 1)) {
    throw new UsageError(
      `--${flag} must be MESSAGES or MESSAGES/BURST a second, each at least 1: got ${
        JSON.stringify(text)
      }`,
    );
  }
  return { messages: Number(messages), burst: Number(burst) };
}

/**
 * Milliseconds from 0 to 10000, or `auto`.
 *
 * @throws {UsageError} For anything else.
 */
export function latency(flag: string, text: string): number | "auto" {
  if (text === "auto") return text;
  if (!/^\d+(\.\d+)?$/.test(text) || !(Number(text) <= 10_000)) {
    throw new UsageError(
      `--${flag} must be milliseconds (0 to 10000) or auto: got ${
        JSON.stringify(text)
      }`,
    );
  }
  return Number(text);
}

/**
 * The shared secret from `--token`, else from MIDISOCK_TOKEN (which keeps
 * it out of the process list), checked as a server checks it.
 *
 * @throws {UsageError} For a malformed token.
 */
export function token(text: string | undefined): string | undefined {
  const env = { name: "env", variable: "MIDISOCK_TOKEN" } as const;
  text ??= Deno.permissions.querySync(env).state === "granted"
    ? Deno.env.get("MIDISOCK_TOKEN")
    : undefined;
  try {
    return text === undefined ? undefined : checkToken(text);
  } catch (error) {
    throw new UsageError(
      `--token ${(error as Error).message.replace(/^Token /, "")}`,
    );
  }
}

/**
 * Makes a library object from options read from flags, turning what it
 * refuses into bad usage: `flags` maps a pattern of an option's name, as
 * the library's message says it, to its flag.
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
      !(error instanceof TypeError || error instanceof RangeError ||
        error instanceof SyntaxError)
    ) throw error;
    let text = error.message;
    for (const [option, flag] of Object.entries(flags)) {
      text = text.replace(new RegExp(option, "g"), flag);
    }
    throw new UsageError(text);
  }
}
