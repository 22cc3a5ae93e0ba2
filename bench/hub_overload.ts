// Overload: N flooders against `serve` (no --rate-limit), with a reader in
// a process of its own, a player that holds a note and plays a paced note
// every 100 ms, all on 127.0.0.1.
//
// Run:   deno run -A bench/hub_overload.ts [--flooders=20,50] [--seconds=3]
//
// Each round: serve starts; the reader (bench/_overload_reader.ts) connects
// and reads as fast as it can; a player (a raw connection that reads and
// discards) plays note_on 60 and keeps it held; N flooders start
// (tests/_flood.ts: writing as fast as the sockets take, never reading).
// For `seconds`, the player plays note 61 every 100 ms (its velocity a
// sequence number); then it closes, and the hub must release note 60 to the
// reader. Reported: whether the reader was dropped and when, what it read a
// second, how late the paced notes came (p50, p99, max, lost), how long the
// released note_off took, and how many flooders serve dropped.

import { parseArgs } from "node:util";
import { spawn } from "../tests/_cli.ts";
import { Flood } from "../tests/_overload.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    flooders: { type: "string", default: "20,50" },
    seconds: { type: "string", default: "3" },
  },
});
const counts = values.flooders!.split(",").map(Number);
const seconds = Number(values.seconds);
const root = new URL("../", import.meta.url);

/** The reader's process and what it printed. */
class Reader implements AsyncDisposable {
  readonly lines: string[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #reading: Promise<void>;
  constructor(port: number) {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--allow-net=127.0.0.1",
        "bench/_overload_reader.ts",
        String(port),
      ],
      cwd: root,
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#child = child;
    this.#reading = (async () => {
      let rest = "";
      for await (
        const text of child.stdout.pipeThrough(new TextDecoderStream())
      ) {
        rest += text;
        const parts = rest.split("\n");
        rest = parts.pop()!;
        this.lines.push(...parts);
      }
    })();
  }
  async until(pattern: RegExp, ms: number): Promise<string | undefined> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const line = this.lines.find((l) => pattern.test(l));
      if (line !== undefined) return line;
      await sleep(20);
    }
    return undefined;
  }
  get bytes(): number {
    const last = this.lines.findLast((l) => l.startsWith("bytes "));
    return last === undefined ? 0 : Number(last.split(" ")[1]);
  }
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#child.kill("SIGTERM");
    } catch {
      // Ended.
    }
    await this.#child.status;
    await this.#reading;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function round(flooders: number): Promise<string> {
  await using serve = spawn("serve", ["127.0.0.1:0"]);
  const port = await serve.listening();
  await using reader = new Reader(port);
  if (await reader.until(/^ready$/, 10000) === undefined) {
    throw new Error("the reader did not start");
  }
  const player = await Deno.connect({ hostname: "127.0.0.1", port });
  player.setNoDelay(true);
  const discard = (async () => {
    const buffer = new Uint8Array(256 * 1024);
    try {
      while (await player.read(buffer) !== null) { /* discard */ }
    } catch {
      // Closed.
    }
  })();
  await serve.waitFor(/^connect .*\(2 clients\)/, 10000);
  await player.write(new Uint8Array([0x90, 60, 100]));
  const sentAt = new Map<number, number>();
  let readerBytes = 0;
  let floodStart = 0;
  {
    await using flood = new Flood(port, flooders);
    await flood.started;
    floodStart = Date.now();
    const before = reader.bytes;
    let playerDropped = "";
    for (let i = 0; Date.now() - floodStart < seconds * 1000; i++) {
      const id = 1 + i % 127;
      sentAt.set(id, Date.now());
      try {
        await player.write(new Uint8Array([0x90, 61, id]));
      } catch {
        playerDropped = `; the player was DROPPED after ${
          Date.now() - floodStart
        } ms`;
        break;
      }
      await sleep(100);
    }
    readerBytes = reader.bytes - before;
    const closedAt = Date.now();
    try {
      player.close();
    } catch {
      // Closed by the hub.
    }
    await discard;
    const released = await reader.until(/^released /, 10000);
    const closed = reader.lines.find((l) => l.startsWith("closed "));
    const notes = reader.lines.filter((l) => l.startsWith("note "));
    const late = notes.map((l) => {
      const [, id, at] = l.split(" ").map(Number);
      return at - sentAt.get(id)!;
    }).sort((a, b) => a - b);
    const dropped = serve.lines.filter((l) => l.startsWith("disconnect "));
    const readerAt = closed === undefined
      ? "kept"
      : `DROPPED after ${Number(closed.split(" ")[1]) - floodStart} ms`;
    const paced = late.length === 0
      ? "none arrived"
      : `p50 ${percentile(late, 0.5)} ms, p99 ${
        percentile(late, 0.99)
      } ms, max ${late.at(-1)} ms, ${sentAt.size - late.length} lost`;
    return [
      `${flooders} flooders: reader ${readerAt}; read ${
        (readerBytes / 1e6 / seconds).toFixed(1)
      } MB/s${playerDropped}`,
      `  paced notes (every 100 ms): ${paced}`,
      `  held note released to the reader: ${
        released === undefined
          ? "NEVER (10 s)"
          : `${
            Number(released.split(" ")[1]) - closedAt
          } ms after the player left`
      }`,
      `  serve dropped ${dropped.length} clients (${
        dropped.filter((l) => /fell behind/.test(l)).length
      } as fell behind)`,
    ].join("\n");
  }
}

for (const flooders of counts) console.log(await round(flooders));
