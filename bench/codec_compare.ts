// midisock's codec against mido's, on the same stream, in the same run.
//
// Run:   deno run -A bench/codec_compare.ts
//        (needs only --allow-run, --allow-read, --allow-write for one temp file;
//        MIDISOCK_PYTHON names a Python with mido, default /usr/bin/python3)
//
// Measures, on one deterministic 10,000-message mixed stream (bench/_stream.ts:
// notes, controllers, pitch bend, clock, a few sysex; each message whole, no
// running status, as mido sends):
//   parse:  midisock `new Parser().feed(stream)` (whole stream, one chunk)
//           vs mido `mido.Parser().feed(data)` then draining every message;
//   encode: midisock `encode(msg)` per message (checks it, returns new bytes)
//           vs mido `msg.bytes()` per message (returns a new list);
//           plus midisock's `encodeInto` burst into one buffer, for reference.
// Method: each side is warmed up, then timed in RUNS runs; a run repeats the
// pass until it lasts at least MIN_RUN_MS; the best run is reported (the
// median beside it shows the noise). Python times itself with
// time.perf_counter in a subprocess started by this script, reading the same
// bytes from a temporary file. Both sides' message counts are checked.
// Takes about 10 seconds.

import { encode, encodeInto, Parser } from "../mod.ts";
import {
  describeStream,
  encodeStream,
  makeMessages,
  STREAM_MESSAGES,
} from "./_stream.ts";

const RUNS = 7;
const MIN_RUN_MS = 150;
const PYTHON_TIMEOUT_MS = 90_000;
const python = Deno.env.get("MIDISOCK_PYTHON") ?? "/usr/bin/python3";

interface Timing {
  /** Seconds per pass over the stream, best run. */
  best: number;
  /** Seconds per pass, median run. */
  median: number;
  reps: number;
}

/** Times `work` (one pass over the stream) as described in the header. */
function measure(work: () => number): Timing {
  let sink = 0;
  const warmUntil = performance.now() + 300;
  let once = Infinity;
  while (performance.now() < warmUntil) {
    const start = performance.now();
    sink += work();
    once = Math.min(once, performance.now() - start);
  }
  const reps = Math.max(1, Math.round(MIN_RUN_MS / Math.max(once, 1e-3)));
  const samples: number[] = [];
  for (let run = 0; run < RUNS; run++) {
    const start = performance.now();
    for (let i = 0; i < reps; i++) sink += work();
    samples.push((performance.now() - start) / reps / 1000);
  }
  if (sink === -1) console.log(sink);
  samples.sort((a, b) => a - b);
  return { best: samples[0], median: samples[samples.length >> 1], reps };
}

interface MidoResult {
  mido: string;
  python: string;
  parsed: number;
  encodedBytes: number;
  parse: Timing;
  encode: Timing;
}

async function runMido(stream: Uint8Array): Promise<MidoResult> {
  const file = await Deno.makeTempFile({ prefix: "midisock-bench-" });
  try {
    await Deno.writeFile(file, stream);
    const script = new URL("./_mido_codec.py", import.meta.url).pathname;
    const { success, stdout, stderr } = await new Deno.Command(python, {
      args: [script, file, String(RUNS), String(MIN_RUN_MS / 1000)],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(PYTHON_TIMEOUT_MS),
    }).output();
    if (!success) {
      throw new Error(`mido side failed: ${new TextDecoder().decode(stderr)}`);
    }
    return JSON.parse(new TextDecoder().decode(stdout));
  } finally {
    await Deno.remove(file);
  }
}

function row(
  name: string,
  t: Timing,
  messages: number,
  bytes: number,
): string {
  const rate = (messages / t.best / 1e6).toFixed(3).padStart(10);
  const mb = (bytes / t.best / 1e6).toFixed(2).padStart(9);
  const ns = (t.best / messages * 1e9).toFixed(1).padStart(10);
  const median = (t.median / messages * 1e9).toFixed(1).padStart(10);
  return `${name.padEnd(44)}${rate}${mb}${ns}${median}`;
}

function verdict(ratio: number, target: number): string {
  return `${ratio.toFixed(1)}x (target >= ${target}x: ${
    ratio >= target ? "met" : "MISSED"
  })`;
}

const messages = makeMessages();
const stream = encodeStream(messages);
const n = STREAM_MESSAGES;
console.log(`Stream: ${n} messages, ${stream.length} bytes`);
console.log(`  ${describeStream(messages)}`);

// midisock
const parsed = new Parser().feed(stream).length;
if (parsed !== n) throw new Error(`midisock parsed ${parsed} of ${n}`);
const parse = measure(() => new Parser().feed(stream).length);
const enc = measure(() => {
  let total = 0;
  for (const msg of messages) total += encode(msg).length;
  return total;
});
const burst = new Uint8Array(stream.length);
const encInto = measure(() => {
  let offset = 0;
  for (const msg of messages) offset = encodeInto(msg, burst, offset);
  return offset;
});

// mido
const mido = await runMido(stream);
if (mido.parsed !== n) throw new Error(`mido parsed ${mido.parsed} of ${n}`);
if (mido.encodedBytes !== stream.length) {
  throw new Error(`mido encoded ${mido.encodedBytes} of ${stream.length} B`);
}

console.log(
  `midisock: Deno ${Deno.version.deno} (V8 ${Deno.version.v8}); ` +
    `mido ${mido.mido} (Python ${mido.python})`,
);
console.log(
  `Best of ${RUNS} runs of >= ${MIN_RUN_MS} ms each, after warm-up.\n`,
);
console.log(
  `${"".padEnd(44)}${"Mmsg/s".padStart(10)}${"MB/s".padStart(9)}${
    "ns/msg".padStart(10)
  }${"(median)".padStart(10)}`,
);
console.log(row("midisock Parser.feed (one chunk)", parse, n, stream.length));
console.log(row("mido Parser.feed + drain", mido.parse, n, stream.length));
console.log(row("midisock encode() per message", enc, n, stream.length));
console.log(row("mido msg.bytes() per message", mido.encode, n, stream.length));
console.log(
  row("midisock encodeInto burst (ref., unchecked)", encInto, n, stream.length),
);
console.log();
console.log(
  `parse  midisock/mido: ${verdict(mido.parse.best / parse.best, 100)}`,
);
console.log(`encode midisock/mido: ${verdict(mido.encode.best / enc.best, 1)}`);
console.log(
  `       (median/median: parse ${
    (mido.parse.median / parse.median).toFixed(1)
  }x, encode ${(mido.encode.median / enc.median).toFixed(1)}x)`,
);
