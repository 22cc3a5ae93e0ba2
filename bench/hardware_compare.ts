/**
 * Round trip through JACK, midisock against python-rtmidi, in one run:
 * latency (p50/p99 of send -> receive on the same host, one message after
 * another), the latency of a message after a silence (midisock's inputs
 * sleep when idle and the first message rings them awake; python-rtmidi's
 * loop here never sleeps), and the highest send rate at which no message
 * is lost.
 *
 * Needs a running JACK server:
 *
 * ```sh
 * jackd --no-realtime -d dummy -r 48000 -p 1024 &
 * deno run -A bench/hardware_compare.ts
 * ```
 *
 * @module
 */

import { message } from "../src/codec/messages.ts";
import { openInput, openOutput } from "../src/hardware/mod.ts";

const PYTHON = Deno.env.get("MIDISOCK_PYTHON") ?? "/usr/bin/python3";
const ROUND_TRIPS = 500;
const RATES = [1_000, 2_000, 5_000, 10_000, 20_000, 50_000, 100_000];
const BURST = 2_000;

interface Result {
  p50: number;
  p99: number;
  maxRate: number;
  /** Round trips whose message JACK lost (not in p50/p99). */
  lost: number;
  /** Latency of a message sent after a silence: median and worst. */
  quietP50?: number;
  quietMax?: number;
}

/** Messages sent after a silence, and how long the silence is. */
const QUIET_SAMPLES = 8;
const QUIET_MS = 1500;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function midisock(): Promise<Result> {
  const name = `bench-${Deno.pid}`;
  await using out = await openOutput(name, { virtual: true, api: "jack" });
  await using input = await openInput(name, {
    api: "jack",
    queueSize: 1 << 16,
  });
  const note = message("note_on", { note: 60 });
  // A message JACK lost (an xrun on a loaded machine) is not waited for
  // forever: the round is counted lost, and the receive still waiting takes
  // the next round's message.
  let waiting: Promise<unknown> | undefined;
  let lost = 0;
  async function roundTrip(): Promise<number | undefined> {
    const start = performance.now();
    await out.send(note);
    waiting ??= input.receive();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const got = await Promise.race([
      waiting.then(() => true),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), 1000);
      }),
    ]);
    clearTimeout(timer);
    if (!got) {
      lost++;
      return undefined;
    }
    waiting = undefined;
    return performance.now() - start;
  }
  const times: number[] = [];
  for (let i = 0; i < ROUND_TRIPS; i++) {
    const time = await roundTrip();
    if (time !== undefined) times.push(time);
  }
  times.sort((a, b) => a - b);
  // After a silence, with a reader waiting all along (as a `for await`
  // loop does): the inputs' poller has gone to sleep by then.
  const quiet: number[] = [];
  for (let i = 0; i < QUIET_SAMPLES; i++) {
    waiting ??= input.receive();
    await sleep(QUIET_MS);
    const time = await roundTrip();
    if (time !== undefined) quiet.push(time);
  }
  quiet.sort((a, b) => a - b);
  await waiting;
  // Lossless rate: send BURST notes paced at `rate` while draining the input
  // as a live reader would (RtMidi's own input queue holds 1024 messages).
  let maxRate = 0;
  for (const rate of RATES) {
    const gap = 1000 / rate;
    let got = 0;
    const drain = () => {
      for (const _ of input.iterPending()) got++;
    };
    const start = performance.now();
    for (let i = 0; i < BURST;) {
      const due = Math.min(
        BURST,
        Math.floor((performance.now() - start) / gap) + 1,
      );
      for (; i < due; i++) {
        await out.send(message("note_on", { note: i % 128 }));
      }
      drain();
      await sleep(0);
    }
    const deadline = performance.now() + 500;
    while (got < BURST && performance.now() < deadline) {
      drain();
      await sleep(1);
    }
    drain();
    if (Deno.env.get("BENCH_DEBUG")) console.error(rate, got, BURST);
    if (got < BURST) break;
    maxRate = rate;
  }
  return {
    p50: percentile(times, 0.5),
    p99: percentile(times, 0.99),
    maxRate,
    lost,
    quietP50: percentile(quiet, 0.5),
    quietMax: quiet.at(-1),
  };
}

const PYTHON_BENCH = `
import time, json, rtmidi
ROUND_TRIPS = ${ROUND_TRIPS}
RATES = ${JSON.stringify(RATES)}
BURST = ${BURST}
out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "pybench")
out.open_virtual_port("v")
inp = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, "pybench-in")
inp.ignore_types(False, False, True)
for i in range(inp.get_port_count()):
    if inp.get_port_name(i).startswith("pybench:v"):
        inp.open_port(i)
time.sleep(0.2)
times = []
lost = 0
for _ in range(ROUND_TRIPS):
    start = time.perf_counter()
    out.send_message([0x90, 60, 64])
    while inp.get_message() is None:
        if time.perf_counter() - start > 1.0:
            lost += 1
            break
    else:
        times.append((time.perf_counter() - start) * 1000)
times.sort()
max_rate = 0
for rate in RATES:
    gap = 1.0 / rate
    start = time.perf_counter()
    got = 0
    for i in range(BURST):
        while time.perf_counter() - start < i * gap:
            while inp.get_message() is not None:
                got += 1
        out.send_message([0x90, i % 128, 64])
    deadline = time.perf_counter() + 0.5
    while got < BURST and time.perf_counter() < deadline:
        while inp.get_message() is not None:
            got += 1
        time.sleep(0.001)
    if got < BURST:
        break
    max_rate = rate
print(json.dumps({"p50": times[len(times) // 2], "p99": times[min(len(times) - 1, int(len(times) * 0.99))], "maxRate": max_rate, "lost": lost}))
`;

async function python(): Promise<Result> {
  const output = await new Deno.Command(PYTHON, {
    args: ["-c", PYTHON_BENCH],
    stdout: "piped",
    stderr: "null",
  }).output();
  return JSON.parse(new TextDecoder().decode(output.stdout));
}

const ours = await midisock();
const theirs = await python();
const row = (name: string, r: Result) =>
  `${name.padEnd(14)} p50 ${r.p50.toFixed(3)} ms  p99 ${
    r.p99.toFixed(3)
  } ms  lossless up to ${r.maxRate} msg/s  lost ${r.lost}${
    r.quietP50 === undefined
      ? ""
      : `  after ${QUIET_MS} ms of silence: p50 ${
        r.quietP50.toFixed(3)
      } ms, max ${r.quietMax!.toFixed(3)} ms`
  }`;
console.log(row("midisock", ours));
console.log(row("python-rtmidi", theirs));
console.log(
  `ratios (midisock / python-rtmidi): p50 ${
    (ours.p50 / theirs.p50).toFixed(2)
  }x, p99 ${(ours.p99 / theirs.p99).toFixed(2)}x, rate ${
    (ours.maxRate / Math.max(1, theirs.maxRate)).toFixed(2)
  }x; midisock after a silence / in a stream: p50 ${
    (ours.quietP50! / ours.p50).toFixed(2)
  }x`,
);
