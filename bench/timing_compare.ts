// Timing across an emulated Wi-Fi link: how far each note's arrival strays
// from when it was played, on every path midisock has between two places,
// with and without a playout delay, beside mido's own socket client.
//
// Run (root: it makes two network namespaces joined by a userspace TUN
// bridge, tests/_wan.ts, and deletes them at the end):
//   deno run -A bench/timing_compare.ts [--paths=tcp,rtp,nats,mido]
//     [--latency=40] [--seconds=20] [--every=10] [--model=wifi|none] [--skew]
//     [--dump=DIR]  (each path's send and arrival times as JSON, to study)
//
// The link (tests/_wan.ts WIFI): 4 ms one way, plus an exponential jitter
// of mean 2 ms, plus a stall of 20-30 ms about every 500 ms, in order, no
// loss. Side a (10.88.0.1) has the player and hub A; side b (10.88.0.2) the
// listener, through:
//   tcp   `connect 10.88.0.1:7001 --latency L` (a timed TCP link to hub A);
//         its printed lines are the arrivals
//   rtp   hub B (`serve --rtp 5004 --rtp-invite 10.88.0.1:5004 --latency L`)
//         and a plain TCP listener of hub B
//   nats  nats-server on side a, hub B (`serve --nats ... --latency L`) and
//         a plain TCP listener of hub B
//   mido  mido's own socket client (Debian's mido 1.2.10) straight to hub A
// Each path runs with the playout delay L and with none. A note every
// `every` ms for `seconds` s; a note's timing error is its arrival minus
// its send time, minus the median of that (a steady latency is no error).
// With --latency=auto the delay is learned from the notes themselves, so
// timing counts the notes after the first 5 s (late counts are whole-run).
// Late counts come from the receiving hub's own lines. With --skew, side b
// runs on a clock 5 s ahead and 200 ppm fast (library-built serve and
// connect, bench/_timing_node.ts); notes flow from the moment the hubs
// join, and timing counts those from 2 s after (the clocks must agree by
// then).

import { parseArgs } from "node:util";
import { readLines, type Side, WanLink, WIFI } from "../tests/_wan.ts";

const DENO = Deno.execPath();
const ROOT = new URL("../", import.meta.url).pathname;
const PYTHON = Deno.env.get("MIDISOCK_PYTHON") ?? "/usr/bin/python3";
const A_PORT = 7001;
const B_PORT = 7002;

const { values } = parseArgs({
  args: Deno.args,
  options: {
    paths: { type: "string", default: "tcp,rtp,nats,mido" },
    latency: { type: "string", default: "40" },
    seconds: { type: "string", default: "20" },
    every: { type: "string", default: "10" },
    model: { type: "string", default: "wifi" },
    skew: { type: "boolean", default: false },
    dump: { type: "string" },
  },
});
const SECONDS = Number(values.seconds);
const EVERY = Number(values.every);
const COUNT = Math.floor(SECONDS * 1000 / EVERY);
/** With --latency=auto: seconds of notes before timing is measured. */
const WARM_UP = 5;
/**
 * With --skew, notes flow from the moment the hubs join, and those of the
 * first 2 s (while the clocks converge) are not timed: the notes timed
 * are the COUNT after them.
 */
const JOIN_NOTES = values.skew ? Math.floor(2000 / EVERY) : 0;
const TOTAL = COUNT + JOIN_NOTES;

/** A process in a namespace, its output read line by line. */
class Proc {
  readonly name: string;
  readonly child: Deno.ChildProcess;
  readonly lines: string[] = [];
  readonly #times: number[] = [];
  readonly #input: WritableStreamDefaultWriter<Uint8Array>;
  #waiters: (() => void)[] = [];
  readonly done: Promise<void>;

  constructor(link: WanLink, side: Side, name: string, cmd: string[]) {
    this.name = name;
    this.child = link.command(side, cmd[0], cmd.slice(1), {
      cwd: ROOT,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#input = this.child.stdin.getWriter();
    const out = readLines(this.child.stdout);
    const err = readLines(this.child.stderr);
    const pump = async (lines: AsyncIterator<string>, prefix: string) => {
      for (
        let next = await lines.next();
        !next.done;
        next = await lines.next()
      ) {
        this.#times.push(performance.timeOrigin + performance.now());
        this.lines.push(prefix + next.value);
        for (const wake of this.#waiters.splice(0)) wake();
      }
    };
    this.done = Promise.all([pump(out, ""), pump(err, "! ")]).then(() => {
      for (const wake of this.#waiters.splice(0)) wake();
    });
  }

  /** The lines so far, with when each was read (wall-clock ms). */
  timed(): [string, number][] {
    return this.lines.map((line, i) => [line, this.#times[i]]);
  }

  async waitFor(pattern: RegExp, ms = 20_000): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const line = this.lines.find((l) => pattern.test(l));
      if (line !== undefined) return line;
      if (Date.now() > deadline) {
        throw new Error(
          `${this.name}: no line matching ${pattern} in ${ms} ms:\n${
            this.lines.join("\n")
          }`,
        );
      }
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        setTimeout(resolve, 200);
      });
    }
  }

  write(text: string): Promise<void> {
    return this.#input.write(new TextEncoder().encode(text));
  }

  async stop(): Promise<void> {
    try {
      this.child.kill("SIGTERM");
    } catch {
      // Gone already.
    }
    const timer = setTimeout(() => {
      try {
        this.child.kill("SIGKILL");
      } catch {
        // Gone.
      }
    }, 5000);
    await this.child.status;
    clearTimeout(timer);
    await this.#input.close().catch(() => {});
    await this.done;
  }
}

/**
 * serve or connect in a namespace; with --skew, side b's are built from
 * the library on a clock 5 s ahead and 200 ppm fast (bench/_timing_node.ts).
 */
function command(
  link: WanLink,
  side: Side,
  name: string,
  which: "serve" | "connect",
  args: string[],
): Proc {
  const skewed = values.skew && side === link.b;
  return new Proc(link, side, name, [
    DENO,
    "run",
    "-A",
    "--quiet",
    ...(skewed ? ["bench/_timing_node.ts", which] : [`src/cli/${which}.ts`]),
    ...args,
  ]);
}

function serve(link: WanLink, side: Side, name: string, args: string[]): Proc {
  return command(link, side, name, "serve", args);
}

interface Outcome {
  path: string;
  latency: number | "auto";
  /** With auto: the delay the receiving hub chose last. */
  chosen?: number;
  p50: number;
  p99: number;
  max: number;
  lost: number;
  reordered: number;
  late: number | undefined;
}

/** Timing errors of the notes that arrived, and what went wrong. */
function measure(
  sent: number[],
  arrived: [number, number][],
  from = 0,
): Omit<Outcome, "path" | "latency" | "late"> {
  const offsets: number[] = [];
  let reordered = 0;
  let highest = -1;
  const seen = new Set<number>();
  for (const [index, at] of arrived) {
    if (index < highest) reordered++;
    highest = Math.max(highest, index);
    if (seen.has(index) || sent[index] === undefined) continue;
    seen.add(index);
    if (index >= from) offsets.push(at - sent[index]);
  }
  const sorted = [...offsets].sort((a, b) => a - b);
  const median = sorted[sorted.length >> 1] ?? 0;
  const errors = offsets.map((o) => Math.abs(o - median)).sort((a, b) => a - b);
  const q = (p: number) =>
    errors[Math.min(errors.length - 1, Math.floor(p * errors.length))] ?? NaN;
  return {
    p50: q(0.5),
    p99: q(0.99),
    max: errors.at(-1) ?? NaN,
    lost: sent.length - seen.size,
    reordered,
  };
}

/** The late messages a hub said it had (its `late:` lines). */
function lateOf(hub: Proc): number {
  let late = 0;
  for (const line of hub.lines) {
    const match = line.match(/^late: ([\d,]+) message/);
    if (match) late += Number(match[1].replaceAll(",", ""));
  }
  return late;
}

async function runPath(
  link: WanLink,
  path: string,
  latency: number | "auto",
): Promise<Outcome> {
  const procs: Proc[] = [];
  const start = (proc: Proc) => (procs.push(proc), proc);
  const delay = ["--latency", String(latency)];
  try {
    const a = `${link.a.address}:${A_PORT}`;
    if (path === "nats") {
      // The server first: a link's first connect does not wait for it.
      const nats = start(
        new Proc(link, link.a, "nats-server", [
          "nats-server",
          "-a",
          link.a.address,
          "-p",
          "4222",
        ]),
      );
      await nats.waitFor(/Server is ready/);
    }
    const hubA = start(serve(link, link.a, "hub A", [
      a,
      ...(path === "rtp" ? ["--rtp", "5004"] : []),
      ...(path === "nats"
        ? ["--nats", `nats://${link.a.address}:4222`, "--room", "bench"]
        : []),
    ]));
    await hubA.waitFor(/^ready /);
    let hubB: Proc | undefined;
    let listener: Proc;
    if (path === "tcp") {
      listener = start(command(link, link.b, "connect", "connect", [
        a,
        ...delay,
      ]));
      await listener.waitFor(/^connected to /);
    } else if (path === "mido") {
      listener = start(
        new Proc(link, link.b, "mido", [
          PYTHON,
          "bench/_timing_mido.py",
          link.a.address,
          String(A_PORT),
          String(TOTAL),
        ]),
      );
      await listener.waitFor(/^ready$/);
    } else {
      const b = `${link.b.address}:${B_PORT}`;
      hubB = start(serve(link, link.b, "hub B", [
        b,
        ...delay,
        ...(path === "rtp"
          ? ["--rtp", "5004", "--rtp-invite", `${link.a.address}:5004`]
          : ["--nats", `nats://${link.a.address}:4222`, "--room", "bench"]),
      ]));
      await hubB.waitFor(/^ready /);
      await hubB.waitFor(path === "rtp" ? /^connect rtp/ : /joined/, 30_000);
      listener = start(
        new Proc(link, link.b, "listener", [
          DENO,
          "run",
          "-A",
          "bench/_timing_peer.ts",
          "listen",
          link.b.address,
          String(B_PORT),
          String(TOTAL),
        ]),
      );
      await listener.waitFor(/^ready$/);
    }
    const player = start(
      new Proc(link, link.a, "player", [
        DENO,
        "run",
        "-A",
        "bench/_timing_peer.ts",
        "send",
        link.a.address,
        String(A_PORT),
        String(TOTAL),
        String(EVERY),
      ]),
    );
    // Let the link and the clocks settle before the first note: drift is
    // fitted once 4 s of clock exchanges are in. With --skew, notes flow at
    // once: the clocks must agree within 2 s, when timing starts.
    if (!values.skew) await new Promise((resolve) => setTimeout(resolve, 5000));
    await player.write("go\n");
    const sentLine = await player.waitFor(/^\{"sent"/, SECONDS * 1000 + 30_000);
    const sent: number[] = JSON.parse(sentLine).sent;
    let arrived: [number, number][];
    if (path === "tcp") {
      // connect's lines: "TIME SOURCE note_on channel=0 note=N velocity=V time=0".
      await new Promise((resolve) => setTimeout(resolve, 4000));
      arrived = listener.timed().flatMap(([line, at]) => {
        const m = line.match(/note_on channel=0 note=(\d+) velocity=(\d+)/);
        return m ? [[Number(m[1]) + 128 * (Number(m[2]) - 1), at]] : [];
      });
    } else {
      const line = await listener.waitFor(/^\{"arrived"/, 30_000);
      arrived = JSON.parse(line).arrived;
    }
    for (const proc of procs) await proc.stop();
    if (values.dump !== undefined) {
      await Deno.writeTextFile(
        `${values.dump}/${path}-${latency}.json`,
        JSON.stringify({ sent, arrived, lines: hubB?.lines ?? [] }),
      );
    }
    const receiver = hubB ?? (path === "tcp" ? listener : undefined);
    const late = receiver && lateOf(receiver);
    const chosen = receiver?.lines.findLast((line) =>
      /^latency \d+ ms/.test(line)
    )
      ?.match(/^latency (\d+) ms/)?.[1];
    return {
      path,
      latency,
      chosen: chosen === undefined ? undefined : Number(chosen),
      // An automatic delay learns the link from the first notes: timing
      // is measured after it had WARM_UP seconds of them.
      ...measure(
        sent,
        arrived,
        Math.max(JOIN_NOTES, latency === "auto" ? WARM_UP * 1000 / EVERY : 0),
      ),
      late,
    };
  } finally {
    for (const proc of procs.reverse()) await proc.stop().catch(() => {});
  }
}

const model = values.model === "none" ? {} : WIFI;
await using link = await WanLink.open({ ...model, seed: 7 });
const outcomes: Outcome[] = [];
for (const path of values.paths!.split(",")) {
  const latencies = path === "mido"
    ? [0]
    : [values.latency === "auto" ? "auto" as const : Number(values.latency), 0];
  for (const latency of latencies) {
    console.error(`measuring ${path} with latency ${latency} ms...`);
    try {
      outcomes.push(await runPath(link, path, latency));
    } catch (error) {
      console.error(
        `${path} (latency ${latency}): ${(error as Error).message}`,
      );
    }
  }
}

const f = (n: number) => Number.isNaN(n) ? "-" : n.toFixed(2);
console.log(
  `\n${COUNT} notes ${EVERY} ms apart over the emulated link ` +
    `(${values.model})${
      values.skew
        ? ", the receiving side's clock 5 s ahead and 200 ppm fast, notes from joining, timed from 2 s after"
        : ""
    }; timing error = arrival - send - median, in ms\n`,
);
console.log(
  "path   latency   p50 err   p99 err   max err   lost  reordered  late",
);
for (const o of outcomes) {
  console.log(
    `${o.path.padEnd(6)} ${
      String(o.chosen === undefined ? o.latency : `${o.chosen} (auto)`)
        .padStart(7)
    } ${f(o.p50).padStart(9)} ${f(o.p99).padStart(9)} ${f(o.max).padStart(9)} ${
      String(o.lost).padStart(6)
    } ${String(o.reordered).padStart(10)} ${String(o.late ?? "-").padStart(5)}`,
  );
}
const timed = outcomes.filter((o) => o.latency !== 0);
const mido = outcomes.find((o) => o.path === "mido");
for (const o of timed) {
  const plain = outcomes.find((p) => p.path === o.path && p.latency === 0);
  const vs = [
    plain && `${(plain.p99 / o.p99).toFixed(0)}x better than no delay`,
    mido && `${(mido.p99 / o.p99).toFixed(0)}x better than mido`,
  ].filter(Boolean).join(", ");
  console.log(
    `${o.path}: p99 error ${f(o.p99)} ms with ${
      o.chosen === undefined ? o.latency : `auto (${o.chosen})`
    } ms of delay, ${o.late ?? 0} late of ${COUNT}` +
      (vs ? ` (${vs})` : ""),
  );
}
