// Helpers for RTP-MIDI tests: a scriptable raw AppleMIDI peer, a UDP proxy
// that loses packets, free even port pairs, and an input that plays into a
// hub at the times it chooses. The external peers (npm rtpmidi, tshark)
// are in _rtp_peers.ts.

import type { RemoteInfo, Socket } from "node:dgram";
import dgram from "node:dgram";

import {
  decodeSessionPacket,
  encodeSessionPacket,
  isSessionPacket,
  type SessionPacket,
  type SyncPacket,
} from "../src/rtp/mod.ts";
import { within } from "./_net.ts";

function bind(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = dgram.createSocket("udp4");
    socket.once("error", (error) => {
      socket.close();
      reject(error);
    });
    socket.bind(port, "127.0.0.1", () => {
      socket.removeAllListeners("error");
      socket.on("error", () => {});
      resolve(socket);
    });
  });
}

function close(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve();
    }
  });
}

/** Two bound sockets on ports N and N + 1, N even. */
export async function socketPair(): Promise<[Socket, Socket]> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const first = await bind(0);
    const port = first.address().port;
    if (port % 2 === 0 && port < 65535) {
      try {
        return [first, await bind(port + 1)];
      } catch {
        // Taken: try another.
      }
    }
    await close(first);
  }
  throw new Error("No free even UDP port pair");
}

/** A free even port N with N + 1 free too (for a peer that binds itself). */
export async function freePortPair(): Promise<number> {
  const [a, b] = await socketPair();
  const port = a.address().port;
  await close(a);
  await close(b);
  return port;
}

export interface Datagram {
  kind: "control" | "data";
  bytes: Uint8Array;
  from: RemoteInfo;
  packet?: SessionPacket;
}

/**
 * A minimal AppleMIDI peer driven by the test: it answers nothing by
 * itself; the test reads what arrives and sends what it wants.
 */
export class RawPeer {
  readonly ssrc = crypto.getRandomValues(new Uint32Array(1))[0];
  readonly control: Socket;
  readonly data: Socket;
  readonly received: Datagram[] = [];
  #waiters: (() => void)[] = [];

  private constructor(control: Socket, data: Socket) {
    this.control = control;
    this.data = data;
    for (
      const [socket, kind] of [[control, "control"], [data, "data"]] as const
    ) {
      socket.on("message", (msg: Uint8Array, from: RemoteInfo) => {
        const bytes = new Uint8Array(msg);
        let packet: SessionPacket | undefined;
        if (isSessionPacket(bytes)) {
          try {
            packet = decodeSessionPacket(bytes);
          } catch {
            // Left undefined.
          }
        }
        this.received.push({ kind, bytes, from, packet });
        for (const wake of this.#waiters.splice(0)) wake();
      });
    }
  }

  static async open(): Promise<RawPeer> {
    const [control, data] = await socketPair();
    return new RawPeer(control, data);
  }

  get port(): number {
    return this.control.address().port;
  }

  send(kind: "control" | "data", bytes: Uint8Array, port: number): void {
    (kind === "control" ? this.control : this.data).send(
      bytes,
      port,
      "127.0.0.1",
    );
  }

  sendPacket(
    kind: "control" | "data",
    packet: SessionPacket,
    port: number,
  ): void {
    this.send(kind, encodeSessionPacket(packet), port);
  }

  /** Takes (removes) the first datagram that matches, waiting up to `ms`. */
  take(
    match: (d: Datagram) => boolean,
    ms = 5000,
    what = "datagram",
  ): Promise<Datagram> {
    return within(
      (async () => {
        for (;;) {
          const at = this.received.findIndex(match);
          if (at >= 0) return this.received.splice(at, 1)[0];
          await new Promise<void>((resolve) => this.#waiters.push(resolve));
        }
      })(),
      ms,
      `waiting for ${what}`,
    );
  }

  /** Takes the next session packet with this command on this socket. */
  async command(
    kind: "control" | "data",
    command: SessionPacket["command"],
    ms = 5000,
  ): Promise<Datagram & { packet: SessionPacket }> {
    return await this.take(
      (d) => d.kind === kind && d.packet?.command === command,
      ms,
      `${command} on the ${kind} port`,
    ) as Datagram & { packet: SessionPacket };
  }

  /** Invites a session (both ports) and waits for its OKs. */
  async invite(port: number, token = 1234, name = "raw"): Promise<void> {
    for (const kind of ["control", "data"] as const) {
      this.sendPacket(kind, {
        command: "IN",
        version: 2,
        token,
        ssrc: this.ssrc,
        name,
      }, kind === "control" ? port : port + 1);
      await this.command(kind, "OK");
    }
  }

  /**
   * Proves to a session that this peer receives at its data port: a clock
   * exchange it starts (CK0, the session's CK1, its CK2), as Apple's
   * initiators do.
   */
  async prove(port: number, t1 = 1): Promise<void> {
    this.sendPacket("data", {
      command: "CK",
      ssrc: this.ssrc,
      count: 0,
      timestamps: [t1, 0, 0],
    }, port + 1);
    const answer = await this.take(
      (d) =>
        d.kind === "data" && d.packet?.command === "CK" &&
        d.packet.count === 1 && d.packet.timestamps[0] === t1,
      5000,
      "CK1",
    );
    const [, t2] = (answer.packet as SyncPacket).timestamps;
    this.sendPacket("data", {
      command: "CK",
      ssrc: this.ssrc,
      count: 2,
      timestamps: [t1, t2, t1 + 1],
    }, port + 1);
  }

  /** Answers the next CK0 the session sends, as every peer does. */
  async answerClock(port: number): Promise<void> {
    const ck0 = await this.command("data", "CK");
    const [t1] = (ck0.packet as SyncPacket).timestamps;
    this.sendPacket("data", {
      command: "CK",
      ssrc: this.ssrc,
      count: 1,
      timestamps: [t1, 7, 0],
    }, port + 1);
  }

  /** Invites a session and proves it receives: it joins. */
  async join(port: number, token = 1234, name = "raw"): Promise<void> {
    await this.invite(port, token, name);
    await this.prove(port);
  }

  async close(): Promise<void> {
    for (const wake of this.#waiters.splice(0)) wake();
    await close(this.control);
    await close(this.data);
  }
}

/**
 * A UDP relay that stands for a session on a network that loses packets:
 * a peer talks to the proxy's port pair as if it were the target; each
 * datagram, either way, is dropped with probability `loss` once `lossy`
 * is set.
 */
export class LossyProxy {
  readonly front: [Socket, Socket];
  readonly back: [Socket, Socket];
  readonly target: number;
  loss: number;
  lossy = false;
  dropped = 0;
  passed = 0;
  readonly #next: () => number;
  #client: (RemoteInfo | undefined)[] = [undefined, undefined];

  private constructor(
    front: [Socket, Socket],
    back: [Socket, Socket],
    target: number,
    loss: number,
    next: () => number,
  ) {
    this.front = front;
    this.back = back;
    this.target = target;
    this.loss = loss;
    this.#next = next;
    for (const i of [0, 1]) {
      front[i].on("message", (msg: Uint8Array, from: RemoteInfo) => {
        this.#client[i] = from;
        this.#relay(back[i], msg, target + i);
      });
      back[i].on("message", (msg: Uint8Array) => {
        const client = this.#client[i];
        if (client) this.#relay(front[i], msg, client.port);
      });
    }
  }

  static async open(
    target: number,
    loss: number,
    next: () => number,
  ): Promise<LossyProxy> {
    return new LossyProxy(
      await socketPair(),
      await socketPair(),
      target,
      loss,
      next,
    );
  }

  /** The port a peer should invite. */
  get port(): number {
    return this.front[0].address().port;
  }

  #relay(socket: Socket, msg: Uint8Array, port: number): void {
    if (this.lossy && this.#next() < this.loss) {
      this.dropped++;
      return;
    }
    this.passed++;
    socket.send(msg, port, "127.0.0.1");
  }

  async close(): Promise<void> {
    for (const socket of [...this.front, ...this.back]) await close(socket);
  }
}

export { Player } from "./_timed_ports.ts";
