// Live heap kept per RTP-MIDI join and leave (issue 21, item 11).
//
// Run:   deno run -A --v8-flags=--expose-gc bench/rtp_churn.ts [--cycles=20000]
//        [--warmup=2000] [--json]   (--json: one line of figures, for tests)
//
// A hub with an RTP-MIDI session attached, as `serve --rtp` runs it, and one
// raw AppleMIDI peer in the same process that joins and leaves over and
// over: IN on the control port, IN on the data port, a clock exchange it
// starts (CK0, our CK1, its CK2, as Apple's peers do), then BY. Each cycle
// waits until the hub has the participant and then until it has left.
// After a warm-up, V8's live heap is read after a forced collection, then
// again after `cycles` more; the difference per cycle is what each join
// leaves behind.

import dgram from "node:dgram";
import type { RemoteInfo, Socket } from "node:dgram";
import { parseArgs } from "node:util";
import { Hub, RtpMidiSession } from "../mod.ts";
import {
  decodeSessionPacket,
  encodeSessionPacket,
  isSessionPacket,
  type SessionPacket,
} from "../src/rtp/mod.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    cycles: { type: "string", default: "20000" },
    warmup: { type: "string", default: "2000" },
    json: { type: "boolean", default: false },
  },
});
const CYCLES = Number(values.cycles);
const WARMUP = Number(values.warmup);

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  console.error("run with --v8-flags=--expose-gc");
  Deno.exit(2);
}

function bind(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket("udp4");
    socket.once("error", reject);
    socket.bind(port, "127.0.0.1", () => resolve(socket));
  });
}

async function pair(): Promise<[Socket, Socket]> {
  for (;;) {
    const a = await bind(0);
    const port = a.address().port;
    if (port % 2 === 0) {
      try {
        return [a, await bind(port + 1)];
      } catch {
        // Taken: try another.
      }
    }
    a.close();
  }
}

/** A peer that joins and leaves, answering just enough. */
class Churner {
  readonly control: Socket;
  readonly data: Socket;
  #waiter: ((packet: SessionPacket) => boolean) | undefined;
  #wake: (() => void) | undefined;

  constructor([control, data]: [Socket, Socket]) {
    this.control = control;
    this.data = data;
    for (const socket of [control, data]) {
      socket.on("message", (msg: Uint8Array, _from: RemoteInfo) => {
        const bytes = new Uint8Array(msg);
        if (!isSessionPacket(bytes)) return;
        const packet = decodeSessionPacket(bytes);
        if (packet.command === "CK" && packet.count === 0) {
          // Answer a clock probe, as every peer does.
          this.data.send(
            encodeSessionPacket({
              command: "CK",
              ssrc: this.ssrc,
              count: 1,
              timestamps: [packet.timestamps[0], 1, 0],
            }),
            target + 1,
            "127.0.0.1",
          );
        }
        if (this.#waiter?.(packet)) {
          this.#waiter = undefined;
          this.#wake?.();
        }
      });
    }
  }

  ssrc = 1;

  wait(match: (packet: SessionPacket) => boolean): Promise<void> {
    return new Promise((resolve) => {
      this.#waiter = match;
      this.#wake = resolve;
    });
  }

  async cycle(token: number): Promise<void> {
    this.ssrc = (this.ssrc + 1) >>> 0;
    const ssrc = this.ssrc;
    const invitation = (socket: Socket, port: number) => {
      const ok = this.wait((p) => p.command === "OK");
      socket.send(
        encodeSessionPacket({
          command: "IN",
          version: 2,
          token,
          ssrc,
          name: "churner",
        }),
        port,
        "127.0.0.1",
      );
      return ok;
    };
    await invitation(this.control, target);
    await invitation(this.data, target + 1);
    // Clock exchange: CK0, the session's CK1, our CK2.
    const ck1 = new Promise<SessionPacket>((resolve) => {
      this.#waiter = (p) => {
        if (p.command === "CK" && p.count === 1) {
          resolve(p);
          return true;
        }
        return false;
      };
      this.#wake = () => {};
    });
    this.data.send(
      encodeSessionPacket({
        command: "CK",
        ssrc,
        count: 0,
        timestamps: [1, 0, 0],
      }),
      target + 1,
      "127.0.0.1",
    );
    const answer = await ck1;
    if (answer.command === "CK") {
      this.data.send(
        encodeSessionPacket({
          command: "CK",
          ssrc,
          count: 2,
          timestamps: [answer.timestamps[0], answer.timestamps[1], 2],
        }),
        target + 1,
        "127.0.0.1",
      );
    }
    await joined.next();
    this.control.send(
      encodeSessionPacket({
        command: "BY",
        version: 2,
        token,
        ssrc,
        name: "",
      }),
      target,
      "127.0.0.1",
    );
    await left.next();
  }
}

const hub = new Hub();
const session = new RtpMidiSession({ port: 0, name: "churn" });
// Each participant joins the hub as `serve --rtp` joins it.
await hub.attach(session);
const target = session.port;
const joins = hub.events();
const joined = (async function* () {
  for await (const event of joins) {
    if (event.type === "join") yield;
  }
})();
const leaves = hub.events();
const left = (async function* () {
  for await (const event of leaves) {
    if (event.type === "leave") yield;
  }
})();

const churner = new Churner(await pair());

function liveHeap(): number {
  for (let i = 0; i < 3; i++) gc!();
  return Deno.memoryUsage().heapUsed;
}

let token = 1;
for (let i = 0; i < WARMUP; i++) await churner.cycle(token++);
const before = liveHeap();
const started = performance.now();
for (let i = 0; i < CYCLES; i++) await churner.cycle(token++);
const seconds = (performance.now() - started) / 1000;
const after = liveHeap();
const grown = after - before;
if (values.json) {
  console.log(JSON.stringify({
    cycles: CYCLES,
    seconds,
    before,
    after,
    perCycle: grown / CYCLES,
  }));
} else {
  console.log(
    `${CYCLES} join/BY cycles in ${seconds.toFixed(1)} s: live heap ${
      (before / 2 ** 20).toFixed(1)
    } -> ${(after / 2 ** 20).toFixed(1)} MiB, ${
      (grown / 1024 / CYCLES).toFixed(3)
    } KiB per cycle (${(grown / 2 ** 20).toFixed(2)} MiB)`,
  );
  console.log(`hub endpoints left: ${hub.endpoints.length}`);
}
churner.control.close();
churner.data.close();
await hub.close();
