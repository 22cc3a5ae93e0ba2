// A hub process of the RTP-MIDI timing test over the emulated Wi-Fi link
// (tests/rtp_wan_test.ts), run inside a namespace: a hub with a playout
// delay, an RTP-MIDI session on the link's address (inviting the other
// side's, if asked) and a TCP port on loopback, as
// `serve --rtp 5004 --host ADDRESS --latency MS` makes it; and, as asked:
//
// - a player: an input of the hub that plays `count` notes, one every
//   `every` ms from the line `go` on stdin, each with the time it was
//   played;
// - a listener: a TCP client of the hub's port that notes when each note
//   arrives;
// - tracers: outputs of the hub that note each note's time as the hub has
//   it, and when the hub wrote it to its plain endpoints.
//
// It prints JSON lines: `{"tcp": port}`, `{"join": "rtp" | "tcp"}` for
// each such endpoint, `{"sent": [times]}` once the player is done,
// `{"heard": [[index, time]]}` once the listener has `count` notes; when
// stdin closes it closes the hub and prints `{"timing": ..., "rtp": stats,
// "at": [[index, time]], "written": [[index, time]]}`.
//
// Times are the system's wall clock in ms (`performance.timeOrigin +
// performance.now()`): the same for every process of the machine, to
// within a constant that the test takes out with the median.

import {
  connect,
  encode,
  Hub,
  type Message,
  message,
  PortServer,
  RtpMidiSession,
  SINK,
  SOURCE,
  type Source,
} from "../mod.ts";
import type { RtpMidiParticipant } from "../src/rtp/mod.ts";
import { hearingSink } from "./_timed_ports.ts";

interface Options {
  /** The RTP-MIDI session's address. */
  host: string;
  latency?: number;
  /** `HOST:PORT` of a session to invite. */
  invite?: string;
  /** Play this many notes. */
  play?: number;
  every?: number;
  /** Listen for this many notes. */
  listen?: number;
  trace?: boolean;
}

const options = JSON.parse(Deno.args[0]) as Options;
const print = (value: unknown) => console.log(JSON.stringify(value));
const wall = () => performance.timeOrigin + performance.now();

/** Note `i` says its index: note i % 128, velocity 1 + i / 128. */
const note = (i: number) =>
  message("note_on", { note: i & 127, velocity: 1 + (i >> 7) });
const indexOf = (msg: Message) =>
  msg.type === "note_on" && msg.velocity > 0
    ? msg.note + 128 * (msg.velocity - 1)
    : -1;

/** An output that notes each note's time (timed) or when it was written. */
function tracer(timed: boolean, seen: Map<number, number>) {
  const sink = hearingSink((batch) => {
    const now = wall();
    for (const msg of batch.messages) {
      const index = indexOf(msg);
      if (index < 0) continue;
      seen.set(index, timed ? performance.timeOrigin + batch.at! : now);
    }
  }, timed);
  return {
    name: timed ? "trace at" : "trace written",
    closed: false,
    [SINK]: sink,
    close: () => Promise.resolve(),
    [Symbol.asyncDispose]: () => Promise.resolve(),
  };
}

/** An input of the hub that plays notes with their own time. */
function player() {
  let take: ((framed: Uint8Array, at?: number) => unknown) | undefined;
  let end: (() => void) | undefined;
  const source: Source = {
    attach: (t, e) => {
      take = t;
      end = e;
    },
  };
  return {
    name: "player",
    closed: false,
    [SOURCE]: source,
    async *[Symbol.asyncIterator]() {},
    poll: () => undefined,
    play(msg: Message, at: number) {
      take!(encode(msg), at);
    },
    close() {
      end?.();
      return Promise.resolve();
    },
    [Symbol.asyncDispose]() {
      return this.close();
    },
  };
}

const hub = new Hub({ latency: options.latency ?? 0 });
const events = hub.events();
(async () => {
  for await (const event of events) {
    const transport = event.type === "join" && event.endpoint.transport;
    if (transport === "rtp" || transport === "tcp") print({ join: transport });
  }
})();
const session = await hub.attach(
  new RtpMidiSession({ host: options.host, port: 5004 }),
);
const server = await hub.attach(new PortServer("127.0.0.1", 0));
const at = new Map<number, number>();
const written = new Map<number, number>();
if (options.trace) {
  hub.add(tracer(true, at), { kind: "device" });
  hub.add(tracer(false, written), { kind: "device" });
}
print({ tcp: server.port });

const stdin = Deno.stdin.readable.getReader();

if (options.invite !== undefined) {
  const [host, port] = options.invite.split(":");
  await session.invite(host, Number(port));
}

if (options.listen !== undefined) {
  const count = options.listen;
  const client = await connect("127.0.0.1", server.port);
  (async () => {
    const heard: [number, number][] = [];
    for await (const msg of client) {
      const time = wall();
      const index = indexOf(msg);
      if (index < 0) continue;
      heard.push([index, time]);
      if (heard.length === count) break;
    }
    print({ heard });
  })();
}

if (options.play !== undefined) {
  const notes = player();
  hub.add(notes, { kind: "device" });
  await stdin.read(); // "go"
  const every = options.every ?? 10;
  const sent: number[] = [];
  const start = performance.now();
  for (let i = 0; i < options.play; i++) {
    // Each note in its own slot, whatever the timers did to the last.
    const wait = start + i * every - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const now = hub.clock.now();
    sent.push(performance.timeOrigin + now);
    notes.play(note(i), now);
  }
  print({ sent });
}

// Runs until stdin closes.
while (!(await stdin.read()).done) {
  // Nothing more is said on stdin.
}
const rtp = session.participants.map((p: RtpMidiParticipant) => ({
  ...p.stats,
  latency: p.latency,
}));
const timing = hub.timing ?? null;
events.close();
await hub.close();
print({ timing, rtp, at: [...at], written: [...written] });
