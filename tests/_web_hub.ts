// A hub with its web page, run as a program (for tests/_web_wan.ts, inside
// a network namespace): it plays notes on command, each stamped with when
// it played it, and notes when what the pages play happened.
//
//   deno run --allow-net tests/_web_hub.ts HOSTNAME LATENCY
//
// It prints one JSON line when it serves: {"url", "timeOrigin"}; then reads
// commands, one JSON line each, and answers each with one JSON line:
// - {"op":"play","count":N,"every":MS}: plays N notes, one every MS ms (note
//   i is note i % 128 on channel floor(i / 128) % 16), then answers
//   {"played":[at...]}, each note's time on the hub's clock;
// - {"op":"forget"}: forgets what it heard so far;
// - {"op":"heard"}: answers {"heard":[[channel, note, at]...],"delivered":
//   [...]}, the note_ons the pages played, with the time each came with, and
//   when a plain endpoint of the hub heard each (at that time plus the
//   delay);
// - {"op":"timing"}: answers the hub's playout counts;
// - end of input: closes the hub and ends.

import { Hub, type Message, message, WebServer } from "../mod.ts";
import { PlainListener, Player, TimedListener } from "./_web_time.ts";
import { readLines } from "./_wan.ts";

const [hostname = "127.0.0.1", latency = "40"] = Deno.args;
const hub = new Hub({ latency: Number(latency) });
const web = await hub.attach(new WebServer({ hostname, port: 0 }));
const player = new Player();
hub.add(player, { name: "player" });
const listener = new TimedListener();
hub.add(listener, { name: "listener" });
const plain = new PlainListener(() => hub.clock.now());
hub.add(plain, { name: "plain" });

const encoder = new TextEncoder();
function say(value: unknown): void {
  Deno.stdout.writeSync(encoder.encode(`${JSON.stringify(value)}\n`));
}

/** Plays `count` notes `every` ms apart, at their times as near as can be. */
async function play(count: number, every: number): Promise<number[]> {
  const played: number[] = [];
  const start = hub.clock.now();
  for (let i = 0; i < count; i++) {
    const due = start + i * every;
    const wait = due - hub.clock.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const at = hub.clock.now();
    player.play(
      message("note_on", { channel: (i >> 7) % 16, note: i % 128 }),
      at,
    );
    played.push(at);
  }
  return played;
}

say({ url: web.url, timeOrigin: performance.timeOrigin });
const lines = readLines(Deno.stdin.readable);
for (let line = await lines.next(); !line.done; line = await lines.next()) {
  const command = JSON.parse(line.value);
  if (command.op === "play") {
    say({ played: await play(command.count, command.every) });
  } else if (command.op === "forget") {
    listener.messages.length = 0;
    plain.messages.length = 0;
    say({ forgot: true });
  } else if (command.op === "heard") {
    const notes = (heard: [Message, number | undefined][]) =>
      heard.flatMap(([msg, at]) =>
        msg.type === "note_on" ? [[msg.channel, msg.note, at]] : []
      );
    say({
      heard: notes(listener.messages),
      delivered: notes(plain.messages),
    });
  } else if (command.op === "timing") {
    say({ timing: hub.timing ?? null });
  }
}
await hub.close();
