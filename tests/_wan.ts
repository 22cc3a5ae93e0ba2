// An emulated network link for tests and benchmarks: two network namespaces
// this process makes (and deletes), each with a TUN device, joined by a
// userspace bridge (tests/_wan.py) that delays, stalls or loses packets as a
// model says. This kernel has no sch_netem; this is how delay, jitter and a
// dead link are made. Linux and root only; `wanUnavailable()` says why not.
//
// Side "a" has 10.88.0.1, side "b" 10.88.0.2; nothing else is reachable from
// either namespace (loopback aside), so nothing here ever leaves the machine.

const BRIDGE = new URL("./_wan.py", import.meta.url).pathname;
const PYTHON = "/usr/bin/python3";

/** How the link treats packets (the same model both ways). */
export interface LinkModel {
  /** One-way base delay, ms. */
  delayMs?: number;
  /** Mean of an exponential extra delay, ms. */
  jitterMs?: number;
  /** About how often the link stalls, ms (0: never). */
  stallEveryMs?: number;
  /** How long a stall lasts, ms, uniformly between the two. */
  stallMs?: [number, number];
  /** Probability that a packet is lost. */
  loss?: number;
  /** Seed of the model's random numbers. */
  seed?: number;
}

/** The Wi-Fi of issue 20: 4 ms, exponential jitter of mean 2 ms, a 20-30 ms stall about every 500 ms. */
export const WIFI: LinkModel = {
  delayMs: 4,
  jitterMs: 2,
  stallEveryMs: 500,
  stallMs: [20, 30],
};

/** One end of the link. */
export interface Side {
  /** The namespace's name. */
  readonly ns: string;
  /** Its address on the link. */
  readonly address: string;
}

/** Counts from the bridge. */
export interface LinkStats {
  a_to_b: { passed: number; lost: number };
  b_to_a: { passed: number; lost: number };
  dropped_down: number;
  down: boolean;
}

let made = 0;

function ip(...args: string[]): { ok: boolean; error: string } {
  try {
    const out = new Deno.Command("ip", {
      args,
      stdout: "null",
      stderr: "piped",
    })
      .outputSync();
    return { ok: out.success, error: new TextDecoder().decode(out.stderr) };
  } catch (error) {
    return { ok: false, error: String(error) };
  }
}

/** Why an emulated link cannot be made here, or undefined when it can. */
export function wanUnavailable(): string | undefined {
  if (Deno.build.os !== "linux") return "network namespaces are Linux only";
  if (!ip("-V").ok) return "iproute2 (ip) is not installed";
  try {
    Deno.statSync("/dev/net/tun");
  } catch (error) {
    // Deno lets only --allow-all look at devices: then the bridge tells.
    if (!(error instanceof Deno.errors.NotCapable)) {
      return "there is no /dev/net/tun";
    }
  }
  try {
    Deno.statSync(PYTHON);
  } catch {
    return `${PYTHON} is missing`;
  }
  const probe = `msw-probe-${Deno.pid}`;
  const made = ip("netns", "add", probe);
  ip("netns", "del", probe);
  if (!made.ok) return "cannot make network namespaces here (needs root)";
  return undefined;
}

/**
 * Why tests that need the link are skipped here (or undefined); throws
 * when MIDISOCK_REQUIRE_NETNS=1 and they cannot run.
 */
export function wanSkip(_what?: string): string | undefined {
  const reason = wanUnavailable();
  if (reason === undefined) return undefined;
  if (Deno.env.get("MIDISOCK_REQUIRE_NETNS") === "1") {
    throw new Error(`${reason}, but MIDISOCK_REQUIRE_NETNS=1`);
  }
  return `${reason} (an emulated network link needs network namespaces)`;
}

/** Two namespaces joined by the emulated link. */
export class WanLink implements AsyncDisposable {
  readonly a: Side;
  readonly b: Side;
  readonly #bridge: Deno.ChildProcess;
  readonly #input: WritableStreamDefaultWriter<Uint8Array>;
  readonly #lines: AsyncIterator<string>;
  #closed = false;

  private constructor(
    a: Side,
    b: Side,
    bridge: Deno.ChildProcess,
    lines: AsyncIterator<string>,
  ) {
    this.a = a;
    this.b = b;
    this.#bridge = bridge;
    this.#input = bridge.stdin.getWriter();
    this.#lines = lines;
  }

  /** Makes the namespaces and starts the bridge with `model`. */
  static async open(model: LinkModel = {}): Promise<WanLink> {
    const n = `${Deno.pid}-${made++}`;
    const a: Side = { ns: `msw-a-${n}`, address: "10.88.0.1" };
    const b: Side = { ns: `msw-b-${n}`, address: "10.88.0.2" };
    const tunA = `mwa${n}`.slice(0, 15);
    const tunB = `mwb${n}`.slice(0, 15);
    const bridge = new Deno.Command(PYTHON, {
      args: [
        BRIDGE,
        tunA,
        tunB,
        JSON.stringify({
          delay_ms: model.delayMs ?? 0,
          jitter_ms: model.jitterMs ?? 0,
          stall_every_ms: model.stallEveryMs ?? 0,
          stall_ms: model.stallMs ?? [0, 0],
          loss: model.loss ?? 0,
          seed: model.seed ?? 1,
        }),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const lines = readLines(bridge.stdout);
    const link = new WanLink(a, b, bridge, lines);
    try {
      const first = await link.#line(5000);
      if (first !== "ready") throw new Error(`bridge said ${first}`);
      const steps: string[][] = [
        ["netns", "add", a.ns],
        ["netns", "add", b.ns],
        ["link", "set", tunA, "netns", a.ns],
        ["link", "set", tunB, "netns", b.ns],
        ["-n", a.ns, "addr", "add", a.address, "peer", b.address, "dev", tunA],
        ["-n", b.ns, "addr", "add", b.address, "peer", a.address, "dev", tunB],
      ];
      for (const [ns, dev] of [[a.ns, tunA], [b.ns, tunB]]) {
        steps.push(
          ["-n", ns, "link", "set", "lo", "up"],
          ["-n", ns, "link", "set", dev, "up"],
        );
      }
      for (const step of steps) {
        const result = ip(...step);
        if (!result.ok) {
          throw new Error(`ip ${step.join(" ")}: ${result.error.trim()}`);
        }
      }
    } catch (error) {
      await link.close();
      throw error;
    }
    return link;
  }

  /** A command run inside a side's namespace. */
  command(
    side: Side,
    program: string,
    args: string[],
    options: Omit<Deno.CommandOptions, "args"> = {},
  ): Deno.Command {
    return new Deno.Command("ip", {
      ...options,
      args: ["netns", "exec", side.ns, program, ...args],
    });
  }

  /** Cuts the link: every packet is lost until `up()`. */
  down(): Promise<void> {
    return this.#send("down");
  }

  /** Mends the link. */
  up(): Promise<void> {
    return this.#send("up");
  }

  /** The bridge's counts. */
  async stats(): Promise<LinkStats> {
    await this.#send("stats");
    return JSON.parse(await this.#line(2000)) as LinkStats;
  }

  #send(command: string): Promise<void> {
    return this.#input.write(new TextEncoder().encode(`${command}\n`));
  }

  async #line(ms: number): Promise<string> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      const next = await Promise.race([
        this.#lines.next(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`the link bridge said nothing in ${ms} ms`)),
            ms,
          );
        }),
      ]);
      if (next.done) throw new Error("the link bridge stopped");
      return next.value;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops the bridge and deletes both namespaces. Twice does nothing. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      await this.#input.close();
    } catch {
      // It stopped already.
    }
    const stopped = await Promise.race([
      this.#bridge.status.then(() => true),
      new Promise<false>((resolve) => {
        const timer = setTimeout(() => resolve(false), 2000);
        this.#bridge.status.finally(() => clearTimeout(timer));
      }),
    ]);
    if (!stopped) {
      try {
        this.#bridge.kill("SIGKILL");
      } catch {
        // Gone.
      }
      await this.#bridge.status;
    }
    await this.#lines.return?.();
    ip("netns", "del", this.a.ns);
    ip("netns", "del", this.b.ns);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Lines of a stream, as they come. */
export function readLines(
  stream: ReadableStream<Uint8Array>,
): AsyncIterator<string> {
  return stream.pipeThrough(new TextDecoderStream()).pipeThrough(
    new TransformStream<string, string>(
      {
        buffer: "",
        transform(chunk, controller) {
          this.buffer += chunk;
          const parts = this.buffer.split("\n");
          this.buffer = parts.pop()!;
          for (const part of parts) controller.enqueue(part);
        },
      } as Transformer<string, string> & { buffer: string },
    ),
  )[Symbol.asyncIterator]();
}
