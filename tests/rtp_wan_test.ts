// RTP-MIDI between two hubs over the emulated Wi-Fi link of issue 20 (4 ms
// each way, exponential jitter of mean 2 ms, a 20-30 ms stall about every
// 500 ms): a hub process in each namespace (tests/_rtp_wan.ts); the first
// plays a note every 10 ms, the second has a TCP client that notes when
// each arrives. With a 40 ms playout delay on the second hub, every note
// arrives at its send time + a constant, none lost, none out of order, the
// link's jitter gone (how close, bench/timing_compare.ts measures);
// without one, the link's jitter is heard.

import assert from "node:assert/strict";
import { boundedTest } from "./_net.ts";
import { readLines, WanLink, wanSkip, WIFI } from "./_wan.ts";

const SCRIPT = new URL("./_rtp_wan.ts", import.meta.url).pathname;
const NOTES = 500;
const EVERY_MS = 10;

/** A hub process in a namespace, speaking JSON lines. */
class HubProcess {
  readonly #child: Deno.ChildProcess;
  readonly #lines: AsyncIterator<string>;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #said: Record<string, unknown>[] = [];

  constructor(link: WanLink, side: "a" | "b", options: object) {
    this.#child = link.command(link[side], Deno.execPath(), [
      "run",
      "--quiet",
      "--allow-net=10.88.0.1,10.88.0.2,127.0.0.1",
      SCRIPT,
      JSON.stringify(options),
    ], { stdin: "piped", stdout: "piped", stderr: "inherit" }).spawn();
    this.#lines = readLines(this.#child.stdout);
    this.#stdin = this.#child.stdin.getWriter();
  }

  /** Waits for a line with this key (within `ms`), and returns it. */
  async line(key: string, ms = 15000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.#said.find((line) => key in line);
      if (found !== undefined) {
        this.#said.splice(this.#said.indexOf(found), 1);
        return found;
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const next = await Promise.race([
        this.#lines.next(),
        new Promise<"late">((resolve) => {
          timer = setTimeout(
            () => resolve("late"),
            Math.max(0, deadline - Date.now()),
          );
        }),
      ]);
      clearTimeout(timer);
      if (next === "late") throw new Error(`no ${key} in ${ms} ms`);
      if (next.done) throw new Error(`the hub ended before ${key}`);
      this.#said.push(JSON.parse(next.value));
    }
  }

  /** Waits for a line with this key, and returns its value. */
  async wait(key: string, ms = 15000): Promise<unknown> {
    return (await this.line(key, ms))[key];
  }

  say(line: string): Promise<void> {
    return this.#stdin.write(new TextEncoder().encode(`${line}\n`));
  }

  /** Closes its stdin: the hub closes and reports. */
  async end(): Promise<void> {
    try {
      await this.#stdin.close();
    } catch {
      // It ended already.
    }
  }

  /** Ends it (killed if it does not end within 3 s). */
  async close(): Promise<void> {
    await this.end();
    const done = await Promise.race([
      this.#child.status.then(() => true),
      new Promise<false>((resolve) => setTimeout(() => resolve(false), 3000)),
    ]);
    if (!done) {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // Gone.
      }
      await this.#child.status;
    }
    await this.#lines.return?.();
  }
}

interface Run {
  /** Arrival at the TCP client minus send time, minus their median, ms. */
  errors: number[];
  /**
   * The note's time on the second hub (what RTP carried) minus its send
   * time, minus their median, ms.
   */
  carried: number[];
  lost: number;
  reordered: number;
  late: number;
  untimed: number;
}

const quantile = (values: number[], q: number) =>
  [...values].sort((x, y) => x - y)[Math.floor(q * (values.length - 1))];

/** Plays NOTES notes on side a's hub to a TCP client of side b's. */
async function run(latency: number): Promise<Run> {
  await using link = await WanLink.open(WIFI);
  const hubs: HubProcess[] = [];
  try {
    const b = new HubProcess(link, "b", {
      host: link.b.address,
      latency,
      listen: NOTES,
      trace: true,
    });
    hubs.push(b);
    await b.wait("tcp");
    assert.equal(await b.wait("join"), "tcp");
    const a = new HubProcess(link, "a", {
      host: link.a.address,
      invite: `${link.b.address}:5004`,
      play: NOTES,
      every: EVERY_MS,
    });
    hubs.push(a);
    assert.equal(await a.wait("join"), "rtp");
    assert.equal(await b.wait("join"), "rtp");
    // The clocks agree within 2 s of joining: the notes start then.
    await new Promise((resolve) => setTimeout(resolve, 2000));
    await a.say("go");
    const sent = await a.wait("sent", 30000) as number[];
    const heard = await b.wait("heard", 30000) as [number, number][];
    await b.end();
    const report = await b.line("timing");
    const timing = report.timing as { late: number } | null;
    const [rtp] = report.rtp as { untimed: number }[];
    const offsets: number[] = [];
    let reordered = 0;
    let last = -1;
    for (const [index, time] of heard) {
      if (index < last) reordered++;
      last = Math.max(last, index);
      offsets.push(time - sent[index]);
    }
    const median = quantile(offsets, 0.5);
    // Where the time goes: the note's time on b's hub, when b's hub wrote
    // it to its plain endpoints, when the TCP client had it.
    const at = new Map(report.at as [number, number][]);
    const written = new Map(report.written as [number, number][]);
    const show = (name: string, values: number[]) =>
      `${name} p50 ${quantile(values, 0.5).toFixed(3)} p99 ${
        quantile(values, 0.99).toFixed(3)
      } max ${Math.max(...values).toFixed(3)}`;
    console.log(
      `latency ${latency}: ` + [
        show("time - sent", heard.map(([i]) => at.get(i)! - sent[i])),
        show(
          "written - time",
          heard.map(([i]) => written.get(i)! - at.get(i)!),
        ),
        show("heard - written", heard.map(([i, t]) => t - written.get(i)!)),
      ].join("; "),
    );
    const carried = heard.map(([i]) => at.get(i)! - sent[i]);
    const carriedMedian = quantile(carried, 0.5);
    return {
      errors: offsets.map((o) => o - median),
      carried: carried.map((c) => c - carriedMedian),
      lost: NOTES - new Set(heard.map(([index]) => index)).size,
      reordered,
      late: timing?.late ?? 0,
      untimed: rtp.untimed,
    };
  } finally {
    for (const hub of hubs.reverse()) await hub.close();
  }
}

const ignore = wanSkip("the RTP-MIDI timing test over the emulated Wi-Fi");

const p99 = (errors: number[]) => quantile(errors.map(Math.abs), 0.99);

function report(name: string, result: Run): void {
  console.log(
    `playout ${name}: error p99 ${p99(result.errors).toFixed(3)} ms ` +
      `(time carried: p99 ${p99(result.carried).toFixed(3)} ms), ` +
      `lost ${result.lost}, reordered ${result.reordered}, ` +
      `late ${result.late}, untimed ${result.untimed}`,
  );
}

boundedTest(
  "over Wi-Fi, a 40 ms playout delay hears every note at its carried time + a constant, the link's jitter gone",
  async () => {
    // How close to 1 ms the playout keeps time is measured by
    // bench/timing_compare.ts, not asserted here: a test cannot tell the
    // hub's error from the machine's stalls. Asserted: nothing lost, order
    // and every timestamp kept, the time carried right, and the jitter the
    // link adds (tens of ms) gone.
    const timed = await run(40);
    report("40 ms", timed);
    assert.equal(timed.lost, 0);
    assert.equal(timed.reordered, 0);
    assert.equal(timed.untimed, 0);
    assert.ok(p99(timed.carried) < 1, `carried p99 ${p99(timed.carried)} ms`);
    assert.ok(timed.late <= NOTES / 100, `late ${timed.late}`);
    const plain = await run(0);
    report("none", plain);
    assert.equal(plain.lost, 0);
    assert.ok(p99(plain.errors) > 5, `p99 ${p99(plain.errors)} ms`);
    assert.ok(
      p99(timed.errors) < p99(plain.errors) / 4,
      `p99 ${p99(timed.errors)} ms with the delay, ${
        p99(plain.errors)
      } without`,
    );
  },
  {
    ignore,
    permissions: { run: true, read: true, env: ["MIDISOCK_REQUIRE_NETNS"] },
    ms: 150000,
  },
);
