// Codec micro-benchmarks for `deno bench`.
//
// Run:   deno bench --no-check bench/codec_bench.ts      (or: deno task bench)
//
// Every benchmark handles one whole stream per iteration, so time/iter is the
// time for 10,000 messages (see bench/_stream.ts for the mix: notes,
// controllers, pitch bend, clock, a few sysex of real sizes; ~27.5 KB sent
// whole as mido sends, no running status). Divide 10,000 by time/iter for
// messages per second. Groups compare like with like; each group's baseline
// is the path a socket port takes. For midisock against mido on the same
// stream, run bench/codec_compare.ts.

import {
  checkMessage,
  encode,
  encodedLength,
  encodeInto,
  formatMessage,
  type Message,
  parseMessage,
  Parser,
} from "../mod.ts";
import {
  encodeRunningStatus,
  encodeStream,
  makeBurstyMessages,
  makeMessages,
  STREAM_MESSAGES,
} from "./_stream.ts";

const messages = makeMessages();
const stream = encodeStream(messages);
const bursty = makeBurstyMessages();
const burstyFull = encodeStream(bursty);
const burstyRunning = encodeRunningStatus(bursty);
const texts = messages.map(formatMessage);
const burst = new Uint8Array(stream.length);

/** Splits bytes into chunks of `size`, as successive socket reads. */
function chunks(bytes: Uint8Array, size: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += size) {
    out.push(bytes.subarray(i, i + size));
  }
  return out;
}
const reads16k = chunks(stream, 16 * 1024);
const reads3 = chunks(stream, 3);

// Results go somewhere observable, so no work can be optimised away.
let sink = 0;
function check(got: number, want: number): void {
  if (got !== want) throw new Error(`Expected ${want} messages, got ${got}`);
}

const N = STREAM_MESSAGES;

Deno.bench({
  name: `Parser.feed: mixed stream, one chunk (${N} msgs, ${stream.length} B)`,
  group: "parse",
  baseline: true,
  fn() {
    const out = new Parser().feed(stream);
    check(out.length, N);
    sink += out.length;
  },
});

Deno.bench({
  name: "Parser.feed: mixed stream, 16 KiB reads",
  group: "parse",
  fn() {
    const parser = new Parser();
    let count = 0;
    for (const chunk of reads16k) count += parser.feed(chunk).length;
    check(count, N);
    sink += count;
  },
});

Deno.bench({
  name: "Parser.feed: mixed stream, 3-byte reads",
  group: "parse",
  fn() {
    const parser = new Parser();
    let count = 0;
    for (const chunk of reads3) count += parser.feed(chunk).length;
    check(count, N);
    sink += count;
  },
});

Deno.bench({
  name:
    `Parser.feed: bursty stream, no running status (${burstyFull.length} B)`,
  group: "running status",
  baseline: true,
  fn() {
    const out = new Parser().feed(burstyFull);
    check(out.length, N);
    sink += out.length;
  },
});

Deno.bench({
  name:
    `Parser.feed: bursty stream, running status (${burstyRunning.length} B)`,
  group: "running status",
  fn() {
    const out = new Parser().feed(burstyRunning);
    check(out.length, N);
    sink += out.length;
  },
});

Deno.bench({
  name: "encode() each message (checks, new Uint8Array each)",
  group: "encode",
  baseline: true,
  fn() {
    let bytes = 0;
    for (const msg of messages) bytes += encode(msg).length;
    sink += bytes;
  },
});

Deno.bench({
  name: "checkMessage + encodeInto one buffer (SocketPort.sendAll path)",
  group: "encode",
  fn() {
    let offset = 0;
    for (const msg of messages) checkMessage(msg);
    for (const msg of messages) offset = encodeInto(msg, burst, offset);
    sink += offset;
  },
});

Deno.bench({
  name: "encodeInto one buffer, unchecked (burst)",
  group: "encode",
  fn() {
    let offset = 0;
    for (const msg of messages) offset = encodeInto(msg, burst, offset);
    sink += offset;
  },
});

Deno.bench({
  name: "encodedLength + encodeInto, unchecked, fresh buffer",
  group: "encode",
  fn() {
    let size = 0;
    for (const msg of messages) size += encodedLength(msg);
    const bytes = new Uint8Array(size);
    let offset = 0;
    for (const msg of messages) offset = encodeInto(msg, bytes, offset);
    sink += offset;
  },
});

Deno.bench({
  name: "formatMessage each message",
  group: "text",
  baseline: true,
  fn() {
    let length = 0;
    for (const msg of messages) length += formatMessage(msg).length;
    sink += length;
  },
});

Deno.bench({
  name: "parseMessage each message",
  group: "text",
  fn() {
    let parsed: Message | undefined;
    for (const text of texts) parsed = parseMessage(text);
    sink += parsed === undefined ? 0 : 1;
  },
});

globalThis.addEventListener("unload", () => {
  if (sink < 0) console.log(sink);
});
