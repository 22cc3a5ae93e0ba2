// RTP-MIDI against midisock's TCP path, over loopback, in the same run.
//
// Run:   deno run -A bench/rtp_compare.ts [--rounds=5] [--rate=20000] [--seconds=5]
//
// Both paths run in this one process, sender and receiver alike, so they
// share one event loop the way a hub's endpoints do:
//   rtp  two RtpMidiSessions on 127.0.0.1 (port 0): one invites the other;
//        `await participant.send(msg)` on one side, `receive()` on the other.
//        Every packet carries its recovery journal; feedback and clock sync
//        run as usual.
//   tcp  PortServer + connect(): `await client.send(msg)`, `receive()` on the
//        connection the server's accept() gave.
//   udp  (latency only, the floor under rtp) two bare node:dgram sockets, as
//        the session sets them up; 3-byte datagrams, no codec at all.
//
// latency     one note at a time: the time from send() to receive() on the
//             other side (one way, same clock), LATENCY_COUNT timed notes per
//             round after a warm-up, rounds alternating between the paths;
//             p50 and p99 over all rounds, and their ratio rtp / tcp.
// sustained   notes at a fixed rate (default 20,000 a second, for 5 s),
//             scheduled against the clock in 1 ms steps; the receiver reads
//             all the while. Reports notes received, lost, out of order, and
//             the rate achieved.

import dgram from "node:dgram";
import { parseArgs } from "node:util";
import {
  connect,
  type InputPort,
  type Message,
  message,
  type OutputPort,
  PortServer,
  RtpMidiSession,
} from "../mod.ts";
import type { RtpMidiParticipant } from "../src/rtp/mod.ts";

const LATENCY_COUNT = 2000;
const LATENCY_WARMUP = 200;

interface Path {
  name: string;
  out: OutputPort;
  in: InputPort;
  close(): Promise<void>;
}

async function rtpPath(): Promise<Path> {
  const a = new RtpMidiSession({ port: 0, name: "bench-a" });
  const b = new RtpMidiSession({ port: 0, name: "bench-b" });
  await b.ready;
  const out = await a.invite("127.0.0.1", b.port);
  const inn = await b.accept();
  return {
    name: "rtp",
    out,
    in: inn,
    close: async () => {
      await a.close();
      await b.close();
    },
  };
}

async function tcpPath(): Promise<Path> {
  const server = new PortServer("127.0.0.1", 0);
  const client = await connect("127.0.0.1", server.port);
  const conn = await server.accept();
  return {
    name: "tcp",
    out: client,
    in: conn,
    close: async () => {
      await client.close();
      await conn.close();
      await server.close();
    },
  };
}

/** Bare node:dgram one-way latency: what any RTP-MIDI session stands on. */
async function udpFloor(count: number): Promise<number[]> {
  const open = () =>
    new Promise<dgram.Socket>((resolve) => {
      const socket = dgram.createSocket("udp4");
      socket.bind(0, "127.0.0.1", () => {
        socket.setRecvBufferSize(4096);
        resolve(socket);
      });
    });
  const [a, b] = [await open(), await open()];
  const port = b.address().port;
  let arrived = () => {};
  b.on("message", () => arrived());
  const bytes = new Uint8Array([0x90, 60, 100]);
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const start = performance.now();
    const received = new Promise<void>((resolve) => (arrived = resolve));
    a.send(bytes, port, "127.0.0.1");
    await received;
    out.push(performance.now() - start);
  }
  for (const socket of [a, b]) {
    await new Promise<void>((resolve) => socket.close(() => resolve()));
  }
  return out;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function latency(path: Path, count: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const msg = message("note_on", { note: i & 127, velocity: 1 + (i % 127) });
    const start = performance.now();
    const received = path.in.receive();
    await path.out.send(msg);
    await received;
    out.push(performance.now() - start);
  }
  return out;
}

async function sustained(
  path: Path,
  rate: number,
  seconds: number,
): Promise<{ sent: number; received: number; disorder: number; rate: number }> {
  const total = Math.round(rate * seconds);
  let received = 0;
  let disorder = 0;
  let last = performance.now();
  const reading = (async () => {
    let expected = 0;
    while (received < total) {
      const msg = await path.in.receive();
      const n = msg.type === "note_on" ? msg.note + 128 * msg.velocity : -1;
      if (n !== (expected & 0x3fff)) disorder++;
      expected = n + 1;
      received++;
      last = performance.now();
    }
  })();
  const start = performance.now();
  let sent = 0;
  while (sent < total) {
    const due = Math.min(
      total,
      Math.floor((performance.now() - start) * rate / 1000),
    );
    for (; sent < due; sent++) {
      const msg: Message = message("note_on", {
        note: sent & 127,
        velocity: (sent >> 7) & 127,
      });
      await path.out.send(msg);
    }
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  const timeout = new Promise((resolve) => setTimeout(resolve, 3000));
  await Promise.race([reading, timeout]);
  return {
    sent,
    received,
    disorder,
    rate: received / ((last - start) / 1000),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      rounds: { type: "string", default: "5" },
      rate: { type: "string", default: "20000" },
      seconds: { type: "string", default: "5" },
    },
  });
  const rounds = Number(values.rounds);
  const rate = Number(values.rate);
  const seconds = Number(values.seconds);
  const rtp = await rtpPath();
  const tcp = await tcpPath();
  const samples: Record<string, number[]> = { rtp: [], tcp: [], udp: [] };
  for (const path of [rtp, tcp]) await latency(path, LATENCY_WARMUP);
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? [rtp, tcp] : [tcp, rtp];
    for (const path of order) {
      samples[path.name].push(...await latency(path, LATENCY_COUNT));
    }
    samples.udp.push(...await udpFloor(LATENCY_COUNT));
  }
  const stats: Record<string, { p50: number; p99: number }> = {};
  console.log(
    `latency, one way, ${rounds} x ${LATENCY_COUNT} notes per path (ms):`,
  );
  for (const name of ["rtp", "tcp", "udp"]) {
    const sorted = samples[name].sort((a, b) => a - b);
    stats[name] = {
      p50: percentile(sorted, 0.5),
      p99: percentile(sorted, 0.99),
    };
    console.log(
      `  ${name}  p50 ${stats[name].p50.toFixed(3)}  p99 ${
        stats[name].p99.toFixed(3)
      }`,
    );
  }
  console.log(
    `  ratio rtp/tcp  p50 ${(stats.rtp.p50 / stats.tcp.p50).toFixed(2)}x  p99 ${
      (stats.rtp.p99 / stats.tcp.p99).toFixed(2)
    }x`,
  );
  console.log(
    `  ratio udp/tcp  p50 ${(stats.udp.p50 / stats.tcp.p50).toFixed(2)}x  p99 ${
      (stats.udp.p99 / stats.tcp.p99).toFixed(2)
    }x  (the floor: bare node:dgram)`,
  );
  console.log(`sustained, ${rate} notes/s for ${seconds} s:`);
  for (const path of [rtp, tcp]) {
    const result = await sustained(path, rate, seconds);
    console.log(
      `  ${path.name}  sent ${result.sent}  received ${result.received}  lost ${
        result.sent - result.received
      }  out of order ${result.disorder}  rate ${Math.round(result.rate)}/s`,
    );
  }
  const { packetsIn, received, lost } = (rtp.in as RtpMidiParticipant).stats;
  console.log(
    `  rtp: ${received} notes came in ${packetsIn} packets, ${lost} lost`,
  );
  await rtp.close();
  await tcp.close();
}

if (import.meta.main) await main();
