// The two ends of the TCP tests over an emulated link (tests/_wan.ts), each
// run as its own process inside a network namespace:
//
//   hub     a hub with a PortServer (as `serve` makes it) on --host:--port
//           (0: any). It prints `ready PORT`, then plays --notes notes, one
//           every --every ms, from a local device once a client is in
//           (each stamped with when it was played), --after ms after the
//           first client came in, and records what the
//           clients send (numbered sysex markers). On "quit" (stdin), or at
//           the end of stdin, it prints one JSON line: what it played and
//           when, and which markers it received.
//   client  a hub with a playout delay (--latency) and the server as a
//           timed link endpoint, a local device that notes when it played
//           each note and one that notes each note's time on the hub (the
//           time carried); after --notes notes (or --seconds) it prints one
//           JSON line.
//   sender  a ReconnectingPort (--heartbeat) that sends --rate numbered
//           sysex markers a second for --seconds, prints each connect and
//           disconnect as a JSON line as it happens, then one JSON line of
//           what it sent and held.
//
// Times are wall-clock ms (performance.timeOrigin + performance.now()), so
// that two processes can be compared.

import { parseArgs } from "node:util";
import {
  connect,
  type Endpoint,
  Hub,
  type Message,
  message,
  PortServer,
  ReconnectingPort,
  SINK,
  type Sink,
} from "../mod.ts";
import { hearingSink, PlainEndpoint, Player } from "./_timed_ports.ts";

const wall = (): number => performance.timeOrigin + performance.now();

function say(value: unknown): void {
  console.log(typeof value === "string" ? value : JSON.stringify(value));
}

/** A device that notes what it heard, and when. */
class Recorder extends PlainEndpoint {
  readonly name = "recorder";
  readonly heard: { message: Message; at: number }[] = [];
  protected hear(msg: Message): void {
    this.heard.push({ message: msg, at: wall() });
  }
}

/** A timed device: notes each note's time on the hub, at once. */
class TimeRecorder {
  readonly name = "time recorder";
  closed = false;
  readonly times: [number, number][] = [];
  readonly [SINK]: Sink = hearingSink((batch) => {
    for (const msg of batch.messages) {
      const i = indexOf(msg);
      if (i !== undefined) {
        this.times.push([i, performance.timeOrigin + batch.at!]);
      }
    }
  });
  close(): Promise<void> {
    this.closed = true;
    return Promise.resolve();
  }
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Note number `i` as a note_on: note and velocity hold 14 bits. */
function numbered(i: number): Uint8Array {
  return new Uint8Array([0x90, i & 127, ((i >> 7) & 127) || 0]);
}

function indexOf(msg: Message): number | undefined {
  if (msg.type === "note_on") return msg.note + 128 * msg.velocity;
  if (msg.type === "sysex" && msg.data.length === 4 && msg.data[0] === 0x7d) {
    return msg.data[1] * 16384 + msg.data[2] * 128 + msg.data[3];
  }
  return undefined;
}

function marker(i: number): Message {
  return message("sysex", {
    data: [0x7d, (i >> 14) & 127, (i >> 7) & 127, i & 127],
  });
}

async function lines(): Promise<AsyncIterator<string>> {
  const { readLines } = await import("./_wan.ts");
  return readLines(Deno.stdin.readable);
}

async function runHub(args: Record<string, string | undefined>) {
  const notes = Number(args.notes ?? 0);
  const every = Number(args.every ?? 10);
  await using hub = new Hub({ latency: 0 });
  const server = await hub.attach(
    new PortServer(args.host ?? "127.0.0.1", Number(args.port ?? 0), {
      timed: args.timed !== "false",
    }),
  );
  const player = new Player();
  const recorder = new Recorder();
  hub.add(player, { kind: "device", transport: "test" });
  hub.add(recorder, { kind: "device", transport: "test" });
  const played: number[] = [];
  let clients = 0;
  const joined = Promise.withResolvers<void>();
  hub.listen((event) => {
    if (event.type === "join" && event.endpoint.transport === "tcp") {
      clients++;
      joined.resolve();
    }
  });
  say(`ready ${server.port}`);
  const playing = (async () => {
    if (notes === 0) return;
    await joined.promise;
    // Let the client's clock exchange settle first.
    const after = Number(args.after ?? 0);
    await new Promise((resolve) => setTimeout(resolve, after));
    // Each note is stamped with when it is played, whenever the timer
    // fires: its time is what counts, not the spacing.
    const start = hub.clock.now();
    for (let i = 0; i < notes; i++) {
      const wait = start + i * every - hub.clock.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      played.push(wall());
      player.play(numbered(i), hub.clock.now());
    }
  })();
  const input = await lines();
  for (;;) {
    const { value, done } = await input.next();
    if (done || value === "quit") break;
  }
  await playing;
  const markers = recorder.heard.map((h) => indexOf(h.message)).filter((
    i,
  ): i is number => i !== undefined);
  say({ played, markers, clients });
}

async function runClient(args: Record<string, string | undefined>) {
  const notes = Number(args.notes ?? 0);
  const latency = Number(args.latency ?? 0);
  await using hub = new Hub({ latency });
  const link = await connect(args.host!, Number(args.port), {
    timed: args.timed !== "false",
    clock: hub.clock,
  });
  const recorder = new Recorder();
  const times = new TimeRecorder();
  hub.add(recorder, { kind: "device", transport: "test" });
  hub.add(times, { kind: "device", transport: "test" });
  const endpoint: Endpoint = hub.add(link, { kind: "link", transport: "tcp" });
  const deadline = wall() + Number(args.seconds ?? 60) * 1000;
  while (recorder.heard.length < notes && wall() < deadline && !link.closed) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  // What is still held for its time.
  await new Promise((resolve) => setTimeout(resolve, latency + 50));
  const heard = recorder.heard.flatMap((h) => {
    const i = indexOf(h.message);
    return i === undefined ? [] : [[i, h.at]];
  });
  say({
    heard,
    times: times.times,
    features: link.features,
    timing: hub.timing,
    roundTrip: link.timing?.roundTrip,
    received: endpoint.stats.received,
  });
}

async function runSender(args: Record<string, string | undefined>) {
  const rate = Number(args.rate ?? 100);
  const seconds = Number(args.seconds ?? 10);
  let sent = 0;
  let refused = 0;
  /** Markers sent on each connection, in order (-1: while down). */
  let connection = -1;
  const written: number[][] = [];
  const port = new ReconnectingPort(args.host!, Number(args.port), {
    heartbeat: Number(args.heartbeat ?? 500),
    timed: args.timed !== "false",
    minDelay: 100,
    maxDelay: 500,
    onEvent: (event) => {
      if (event.type === "connect") {
        connection++;
        written.push([]);
        const at = wall();
        event.socket.admitted.then(
          (features) => say({ event: "connect", at, features }),
          () => say({ event: "connect", at, features: null }),
        );
      } else if (event.type === "disconnect") {
        const { reason, unconfirmed } = event;
        say({
          event: "disconnect",
          at: wall(),
          unconfirmed,
          reason: reason instanceof Error ? reason.message : String(reason),
        });
      }
    },
  });
  const start = performance.now();
  for (let i = 0; performance.now() - start < seconds * 1000; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const held = port.pending;
    const up = port.connected;
    try {
      await port.send(marker(i));
      sent++;
      // Written on the connection now, or held for the next one.
      if (up && port.pending === held) written[connection]?.push(i);
    } catch {
      refused++;
    }
  }
  // Let what is held go out, then close (which flushes).
  const until = performance.now() + 10_000;
  while (port.pending > 0 && performance.now() < until) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const pending = port.pending;
  await port.close();
  say({ event: "done", sent, refused, pending, written });
}

if (import.meta.main) {
  const names = [
    "host",
    "port",
    "notes",
    "every",
    "timed",
    "latency",
    "seconds",
    "rate",
    "heartbeat",
    "after",
  ];
  const { positionals, values } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: Object.fromEntries(
      names.map((name) => [name, { type: "string" as const }]),
    ),
  });
  const args = values as Record<string, string | undefined>;
  switch (positionals[0]) {
    case "hub":
      await runHub(args);
      break;
    case "client":
      await runClient(args);
      break;
    case "sender":
      await runSender(args);
      break;
    default:
      throw new Error(`unknown role ${positionals[0]}`);
  }
}
