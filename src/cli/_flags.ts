/**
 * Internal: the command line's flags, declared once by their help text,
 * and readers that turn a flag's text into what the library takes or one
 * line naming the flag.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { checkToken } from "../gate.ts";
import { checkApi, type HardwareApi } from "../hardware/_api.ts";
import type { RateLimit } from "../_policy.ts";

/** Bad usage: exit code 2, with a pointer to `--help`. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** The arguments, parsed: each flag by name, and what stands alone. */
export class Args {
  constructor(
    readonly values: Record<string, unknown>,
    readonly positionals: string[],
    /** Every valued flag in the order given (for `--send`/`--wait`). */
    readonly order: { name: string; value: string }[],
  ) {}

  /** A valued flag's text, when given. */
  text(name: string): string | undefined {
    return this.values[name] as string | undefined;
  }

  /** A repeatable flag's texts. */
  list(name: string): string[] {
    return (this.values[name] as string[] | undefined) ?? [];
  }

  /** Whether a flag was given. */
  has(name: string): boolean {
    return this.values[name] !== undefined && this.values[name] !== false;
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
   * with, `pairs` come both or neither, `apart` never both.
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
 * Parses `argv` against the flags an `Options:` help text declares: a line
 * `  -p, --port PORT   help` (or `      --port PORT`) is a flag, a value
 * written `NAME...` may be given more than once. A value that starts with
 * `-` and a digit (`--port -1`) is taken, so its reader can say what is
 * wrong with it.
 */
export function parseFlags(argv: string[], help: string): Args {
  const options: Record<string, {
    type: "string" | "boolean";
    short?: string;
    multiple?: boolean;
  }> = {};
  const valued = new Set<string>();
  for (const line of help.split("\n")) {
    const [, short, name, value, many] = line.match(
      /^ {2}(?:-(\w), | {4})--([\w-]+)(?: (\[?[A-Z][\w:]*\]?)(\.\.\.)?)?/,
    ) ?? [];
    if (name === undefined) continue;
    options[name] = { type: value ? "string" : "boolean", multiple: !!many };
    if (short) options[name].short = short;
    if (value) {
      for (const flag of [`--${name}`, `-${short}`]) valued.add(flag);
    }
  }
  const negative = (arg = "") => /^-[\d.]/.test(arg);
  const args = argv.flatMap((arg, i) =>
    negative(arg) && valued.has(argv[i - 1]) ? [] : valued.has(arg) &&
        negative(argv[i + 1])
      ? [`${arg}${arg.startsWith("--") ? "=" : ""}${argv[i + 1]}`]
      : [arg]
  );
  try {
    const parsed = parseArgs({
      args,
      options,
      strict: true,
      allowPositionals: true,
      tokens: true,
    });
    const order = parsed.tokens.flatMap((t) =>
      t.kind === "option" && t.value !== undefined
        ? [{ name: t.name, value: t.value }]
        : []
    );
    return new Args(parsed.values, parsed.positionals, order);
  } catch (error) {
    const line = (error as Error).message.split(/\.( |$)/)[0];
    throw new UsageError(line.charAt(0).toLowerCase() + line.slice(1));
  }
}

function must(flag: string, what: string, text: string): never {
  throw new UsageError(
    `--${flag} must be ${what}: got ${JSON.stringify(text)}`,
  );
}

/** A port number, 0 to `max`. */
export function port(flag: string, text: string, max = 65535): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > max) {
    must(flag, `a number in 0..${max}`, text);
  }
  return Number(text);
}

/** A whole number of at least `min`. */
export function count(flag: string, text: string, min = 0): number {
  if (!/^\d+$/.test(text) || Number(text) < min) {
    must(flag, `a whole number of at least ${min}`, text);
  }
  return Number(text);
}

/** A positive number of seconds, as milliseconds. */
export function seconds(flag: string, text: string): number {
  if (!/^\d+(\.\d+)?$/.test(text) || !(Number(text) > 0)) {
    must(flag, "a positive number of seconds", text);
  }
  return Number(text) * 1000;
}

/** `MESSAGES` or `MESSAGES/BURST` a second. */
export function rate(flag: string, text: string): RateLimit {
  const [, messages, burst = messages] = text.match(/^(\d+)(?:\/(\d+))?$/) ??
    [];
  if (!(Number(messages) >= 1) || !(Number(burst) >= 1)) {
    must(flag, "MESSAGES or MESSAGES/BURST a second, each at least 1", text);
  }
  return { messages: Number(messages), burst: Number(burst) };
}

/** Milliseconds from 0 to 10000, or `auto`. */
export function latency(flag: string, text: string): number | "auto" {
  if (text === "auto") return text;
  if (!/^\d+(\.\d+)?$/.test(text) || !(Number(text) <= 10_000)) {
    must(flag, "milliseconds (0 to 10000) or auto", text);
  }
  return Number(text);
}

/** A MIDI backend's name. */
export function api(flag: string, text: string): HardwareApi {
  return asUsage(() => checkApi(text, `--${flag}`)!);
}

/**
 * The shared secret from `--token`, else from MIDISOCK_TOKEN (which keeps
 * it out of the process list), checked as a server checks it.
 */
export function token(text: string | undefined): string | undefined {
  const env = { name: "env", variable: "MIDISOCK_TOKEN" } as const;
  if (Deno.permissions.querySync(env).state === "granted") {
    text ??= Deno.env.get("MIDISOCK_TOKEN");
  }
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
 */
export function asUsage<T>(
  make: () => T,
  flags: Readonly<Record<string, string>> = {},
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
