// Running the command-line entry points as subprocesses, with bounded waits
// only: every process is killed and awaited when the test ends.

import { API, UNAVAILABLE } from "./_rtmidi.ts";

const ROOT = new URL("../", import.meta.url);

/** The loopback-only network permission the CLI subprocesses get. */
export const NET = "--allow-net=127.0.0.1,[::1],localhost";

/** The flags hardware runs need. */
export const HARDWARE = [
  "--allow-ffi",
  "--allow-env=MIDISOCK_RTMIDI_PATH,MIDISOCK_RTMIDI_API",
];

/** Which command: `src/cli/<name>.ts`. */
export type Command = "serve" | "connect" | "ports";

/** What a finished command did. */
export interface Result {
  code: number;
  signal: Deno.Signal | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to its end (killed after `ms`). */
export async function run(
  command: Command,
  args: string[],
  flags: string[] = [NET],
  env: Record<string, string> = {},
): Promise<Result> {
  await using cli = spawn(command, args, flags, env);
  return await cli.finished(20000);
}

/** A running command with its output read line by line. */
export class Cli implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly lines: string[] = [];
  #stderr = "";
  #waiters = new Set<() => void>();
  #reading: Promise<void>;
  #status: Promise<Deno.CommandStatus>;
  #done = false;

  constructor(
    command: Command,
    args: string[],
    flags: string[],
    env: Record<string, string> = {},
  ) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--quiet", ...flags, `src/cli/${command}.ts`, ...args],
      cwd: ROOT,
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.child = child;
    this.#status = child.status;
    this.#reading = Promise.all([
      this.#readLines(),
      (async () => {
        for await (
          const text of child.stderr.pipeThrough(new TextDecoderStream())
        ) {
          this.#stderr += text;
        }
      })(),
    ]).then(() => {});
  }

  async #readLines(): Promise<void> {
    let rest = "";
    for await (
      const text of this.child.stdout.pipeThrough(new TextDecoderStream())
    ) {
      rest += text;
      const parts = rest.split("\n");
      rest = parts.pop()!;
      this.lines.push(...parts);
      this.#wake();
    }
    if (rest !== "") this.lines.push(rest);
    this.#done = true;
    this.#wake();
  }

  #wake(): void {
    for (const wake of this.#waiters) wake();
  }

  /** What the command wrote to stderr so far. */
  get stderr(): string {
    return this.#stderr;
  }

  /**
   * Waits for a stdout line matching `pattern` (after line `from`) and
   * returns its match; fails after `ms`, quoting what came instead.
   */
  async waitFor(
    pattern: RegExp,
    ms = 10000,
    from = 0,
  ): Promise<RegExpMatchArray> {
    const deadline = Date.now() + ms;
    for (;;) {
      for (let i = from; i < this.lines.length; i++) {
        const match = this.lines[i].match(pattern);
        if (match) return match;
      }
      const left = deadline - Date.now();
      if (this.#done || left <= 0) {
        throw new Error(
          `no line matching ${pattern} ${
            this.#done ? "before the process ended" : `in ${ms} ms`
          }; stdout: ${JSON.stringify(this.lines)}; stderr: ${
            JSON.stringify(this.#stderr)
          }`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(left, 500));
        function done() {
          clearTimeout(timer);
          waiters.delete(done);
          resolve();
        }
        const waiters = this.#waiters;
        waiters.add(done);
      });
    }
  }

  /**
   * Waits until serve is ready (every transport started) and returns the
   * port it listens on.
   */
  async listening(ms = 15000): Promise<number> {
    const match = await this.waitFor(/^listening on \S+:(\d+)\b/, ms);
    await this.waitFor(/^ready /, ms);
    return Number(match[1]);
  }

  /** Sends a signal (if still running). */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    try {
      this.child.kill(signal);
    } catch {
      // Already ended.
    }
  }

  /** Waits for the end (killing it after `ms`) and returns what it did. */
  async finished(ms = 10000): Promise<Result> {
    const timer = setTimeout(() => this.kill("SIGKILL"), ms);
    try {
      const status = await this.#status;
      await this.#reading;
      return {
        code: status.code,
        signal: status.signal,
        stdout: this.lines.join("\n"),
        stderr: this.#stderr,
      };
    } finally {
      clearTimeout(timer);
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.kill("SIGKILL");
    await this.#status;
    await this.#reading;
  }
}

/** Starts a command; `await using` it so it always ends with the test. */
export function spawn(
  command: Command,
  args: string[],
  flags: string[] = [NET],
  env: Record<string, string> = {},
): Cli {
  return new Cli(command, args, flags, env);
}

/** A TCP port that was free a moment ago, on 127.0.0.1. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/**
 * Why JACK tests cannot run here, or undefined when they can: exactly what
 * is missing, as `_rtmidi.ts` finds it (the library, JACK in it, a server).
 */
export const noJack: string | undefined = API === "jack"
  ? UNAVAILABLE
  : `the tests' backend is ${API} (MIDISOCK_RTMIDI_API), not jack`;
