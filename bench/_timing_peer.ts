// A player or a listener for bench/timing_compare.ts (not meant to be run by
// hand): raw TCP on the hub's plain MIDI port, so every path is measured
// the same way.
//
// deno run --allow-net bench/_timing_peer.ts send HOST PORT COUNT EVERY_MS
//   plays COUNT notes EVERY_MS apart once it reads a line on stdin, and
//   prints {"sent": [wall-clock ms of each note]} at the end;
// deno run --allow-net bench/_timing_peer.ts listen HOST PORT COUNT
//   prints "ready" once connected, then {"arrived": [[index, ms], ...]}
//   when COUNT notes came, or 3 s after the last one that did.
//
// Note i is note_on, note i % 128, velocity 1 + (i >> 7) % 127: a number
// each for 16,256 notes. Times are wall-clock milliseconds with
// microseconds (performance.timeOrigin + now), comparable across processes.

import { Parser } from "../mod.ts";

const [role, host, portText, countText, everyText] = Deno.args;
const port = Number(portText);
const count = Number(countText);
const wall = () => performance.timeOrigin + performance.now();

/** The note of index i, as bytes. */
function note(i: number): Uint8Array {
  return new Uint8Array([0x90, i % 128, 1 + (i >> 7) % 127]);
}

async function connect(): Promise<Deno.TcpConn> {
  for (let attempt = 0;; attempt++) {
    try {
      const conn = await Deno.connect({ hostname: host, port });
      conn.setNoDelay(true);
      return conn;
    } catch (error) {
      if (attempt > 100) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

const watchdog = setTimeout(() => Deno.exit(3), 120_000);
const conn = await connect();

if (role === "send") {
  const every = Number(everyText);
  // Go when told: the other side is ready.
  const stdin = Deno.stdin.readable.getReader();
  await stdin.read();
  stdin.releaseLock();
  const sent: number[] = [];
  const start = performance.now() + 50;
  // On a timer, without spinning to the exact time: a note's send time is
  // taken as it leaves, so a timer's slack moves the note, not its error,
  // and a spinning player would take one of this machine's two cores from
  // the processes measured, at the moments they deliver.
  for (let i = 0; i < count; i++) {
    const wait = start + i * every - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    sent.push(wall());
    await conn.write(note(i));
  }
  // Let the last notes leave before the connection closes.
  await new Promise((resolve) => setTimeout(resolve, 500));
  console.log(JSON.stringify({ sent }));
} else {
  console.log("ready");
  const parser = new Parser();
  const arrived: [number, number][] = [];
  const buffer = new Uint8Array(65536);
  let quiet: ReturnType<typeof setTimeout> | undefined;
  const done = () => conn.close();
  while (arrived.length < count) {
    let n: number | null;
    try {
      n = await conn.read(buffer);
    } catch {
      break;
    }
    if (n === null) break;
    const at = wall();
    for (const msg of parser.feed(buffer.subarray(0, n))) {
      if (msg.type !== "note_on") continue;
      arrived.push([msg.note + 128 * (msg.velocity - 1), at]);
    }
    clearTimeout(quiet);
    quiet = setTimeout(done, 3000);
  }
  clearTimeout(quiet);
  try {
    conn.close();
  } catch {
    // Closed by the quiet timer.
  }
  console.log(JSON.stringify({ arrived }));
}
clearTimeout(watchdog);
