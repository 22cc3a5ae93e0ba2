/**
 * `RtpMidiSession`: an AppleMIDI / RTP-MIDI session (RFC 6295 and Apple's
 * MIDI Network Driver Protocol) on a UDP port pair, where each participant
 * is a port of its own.
 *
 * @module
 */

import type { RemoteInfo, Socket } from "node:dgram";
import {
  APPLE_MIDI_VERSION,
  decodeSessionPacket,
  encodeSessionPacket,
  type InvitationPacket,
  isSessionPacket,
  type SessionPacket,
  type SyncPacket,
} from "../codec/apple_midi.ts";
import { checkMessage, type Message } from "../codec/messages.ts";
import { decodeRtpMidi } from "../codec/rtp_midi.ts";
import { RtpMidiReceiver, RtpMidiSender } from "./_stream.ts";
import { PortClosedError } from "../errors.ts";
import {
  DEFAULT_QUEUE_SIZE,
  InputPortBase,
  type IOPort,
  PANIC_MESSAGES,
  RESET_MESSAGES,
} from "../port.ts";
import { AddressList } from "../access.ts";
import { type Address, checkPort, formatAddress } from "../address.ts";
import { InvitationError, ParticipantTimeoutError } from "./errors.ts";
import type { Gate, Ticket } from "../gate.ts";
import { callBack } from "../_call.ts";

/** Options for {@linkcode RtpMidiSession}. */
export interface RtpMidiSessionOptions {
  /**
   * Address to listen on: `""` for every interface (IPv6 and IPv4).
   * Anyone who can reach it may join unless `allow` says otherwise.
   * @default {"127.0.0.1"}
   */
  host?: string;
  /**
   * The control port; the data port is the next one. 0 picks a free pair
   * with an even control port (some peers assume it is even).
   * @default {5004}
   */
  port?: number;
  /**
   * The session's name, as peers show it (Audio MIDI Setup's
   * "Participants" list).
   * @default {"midisock"}
   */
  name?: string;
  /**
   * Addresses and CIDR ranges (IPv4 and IPv6) whose invitations are
   * accepted; others get NO. RTP-MIDI has no authentication: on any
   * network but loopback, set this.
   * @default {undefined} (everyone)
   */
  allow?: Iterable<string> | AddressList;
  /**
   * Most participants at once; invitations beyond it get NO.
   * @default {64}
   */
  maxParticipants?: number;
  /**
   * How many received messages wait for each participant's reader. UDP
   * cannot slow a peer down: when a queue is full, messages are dropped
   * and counted in the participant's `stats.dropped`.
   * @default {4096}
   */
  queueSize?: number;
  /**
   * The longest sysex reassembled from a peer, in data bytes; longer ones
   * are dropped.
   * @default {1048576}
   */
  maxSysexLength?: number;
  /**
   * Milliseconds between clock synchronisations (CK) with the peers this
   * session invited, after the first few.
   * @default {10000}
   */
  syncInterval?: number;
  /**
   * A participant that sends nothing (no MIDI, no CK, no RS) for this many
   * milliseconds is dropped. Keep it above the peers' sync interval
   * (Apple's and rtpMIDI's is about 10 s).
   * @default {30000}
   */
  timeout?: number;
  /**
   * How many times `invite` sends IN on each port before giving up.
   * @default {12}
   */
  inviteAttempts?: number;
  /**
   * Milliseconds between those attempts.
   * @default {1000}
   */
  inviteInterval?: number;
  /**
   * Called for each invitation refused, with the peer's address and why.
   */
  onRefuse?: (peer: Address, reason: string) => void;
  /**
   * A hub's gate: when given, it decides who may join (its allow list, and
   * its client bound, which participants count against), and hears every
   * refusal, as the hub's other transports do. `allow` must then be left
   * out.
   */
  gate?: Gate;
}

/** Counters of one participant, updated as packets come and go. */
export interface RtpMidiParticipantStats {
  /** RTP-MIDI packets taken from the peer (late ones not counted). */
  packetsIn: number;
  /** RTP-MIDI packets sent to the peer, guard packets included. */
  packetsOut: number;
  /** Messages delivered from the peer, repairs included. */
  received: number;
  /** Messages sent to the peer. */
  sent: number;
  /** Packets from the peer found missing. */
  lost: number;
  /** Packets from the peer that came late or twice, dropped. */
  late: number;
  /** Messages made up from the peer's recovery journal after a loss. */
  repaired: number;
  /**
   * Messages from the peer dropped: input queue full, or a sysex cut by a
   * loss or longer than `maxSysexLength`.
   */
  dropped: number;
}

/** Counters of a session. */
export interface RtpMidiSessionStats {
  /** Datagrams received on both ports. */
  datagrams: number;
  /** Datagrams that were not well-formed session or RTP-MIDI packets. */
  malformed: number;
  /** Well-formed packets from no known participant, ignored. */
  unknown: number;
  /** Invitations refused (allow list, participant limit). */
  refused: number;
}

/**
 * One peer of an RTP-MIDI session, as a port: iterate it (or `receive()`)
 * for what the peer sends; `send` goes to this peer only. Closing it ends
 * the session with that peer (BY).
 *
 * Messages come in the order the peer sent them: packets are taken in
 * sequence order, and one that arrives after a newer one is dropped (and
 * counted as late), since the newer one's journal has repaired what it
 * carried. Messages repaired after a loss come before the messages of the
 * packet that revealed the loss.
 */
export interface RtpMidiParticipant extends IOPort {
  /** `host:port (peer name)`: the peer's control address and name. */
  readonly name: string;
  /** The name the peer gave in its invitation or answer. */
  readonly peerName: string;
  /** The peer's control port address; its data port is the next one. */
  readonly address: Address;
  /** The peer's RTP synchronisation source. */
  readonly ssrc: number;
  /** Whether this session invited the peer (`invite`), not the reverse. */
  readonly initiator: boolean;
  /**
   * One-way latency to the peer estimated by the last clock
   * synchronisation, in milliseconds, or `undefined` before one completed.
   */
  readonly latency: number | undefined;
  /** Live counters. */
  readonly stats: Readonly<RtpMidiParticipantStats>;
  /** Resolves once the participant has left (either side ended it). */
  readonly finished: Promise<void>;
}

const RESOLVED = Promise.resolve();
/** Messages waiting to be packed before `send` makes callers wait. */
const HIGH_WATER = 4096;
/** First guard packet after the last send, ms; each next one waits twice as long. */
const GUARD_FIRST = 100;
const GUARD_COUNT = 6;
/** Receiver feedback (RS) follows received data after this many ms. */
const FEEDBACK_DELAY = 50;
/** Clock synchronisations right after joining, this far apart (ms). */
const SYNC_BURST = 3;
const SYNC_BURST_INTERVAL = 250;
/**
 * Receive buffer size asked of each socket. Deno's node:dgram reads every
 * datagram into a fresh buffer of twice this size (64 KiB by default, and
 * zeroing it is a good part of the cost of a receive). RTP-MIDI datagrams
 * fit a network MTU (a peer that packs its 12-bit MIDI list full sends
 * about 4 KiB), so 8 KiB is ample and much cheaper; a longer datagram is
 * cut short and counted as malformed.
 */
const RECEIVE_BUFFER = 4096;
/** A CK0 unanswered for this long is sent again (ms). */
const SYNC_RETRY = 1000;

interface Peer {
  host: string;
  port: number;
}

/** What a participant needs from its session: the seam between the two. */
interface Link {
  readonly ssrc: number;
  readonly sessionName: string;
  readonly syncInterval: number;
  now(): number;
  send(socket: "control" | "data", bytes: Uint8Array, to: Peer): Promise<void>;
  /** Sends MIDI on the data port; `done` runs once it is handed over. */
  sendMidi(bytes: Uint8Array, to: Peer, done: () => void): void;
  left(participant: Participant): void;
}

function randomUint32(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}

class Participant extends InputPortBase implements RtpMidiParticipant {
  readonly peerName: string;
  readonly ssrc: number;
  readonly initiator: boolean;
  readonly token: number;
  readonly control: Peer;
  readonly dataPeer: Peer;
  readonly stats: RtpMidiParticipantStats = {
    packetsIn: 0,
    packetsOut: 0,
    received: 0,
    sent: 0,
    lost: 0,
    late: 0,
    repaired: 0,
    dropped: 0,
  };
  readonly #link: Link;
  readonly #name: string;
  readonly #sender: RtpMidiSender;
  readonly #receiver: RtpMidiReceiver;
  readonly #finished = Promise.withResolvers<void>();
  #out: Message[] = [];
  #queueFull = 0;
  #inFlight = 0;
  #drain: PromiseWithResolvers<void> | undefined;
  #lastHeard = performance.now();
  #lastSend = 0;
  #guardTimer: ReturnType<typeof setTimeout> | undefined;
  #guardDelay = GUARD_FIRST;
  #guards = 0;
  #feedbackTimer: ReturnType<typeof setTimeout> | undefined;
  #syncTimer: ReturnType<typeof setTimeout> | undefined;
  #syncs = 0;
  #latency: number | undefined;
  #left = false;

  constructor(
    link: Link,
    init: {
      peerName: string;
      ssrc: number;
      token: number;
      initiator: boolean;
      control: Peer;
      data: Peer;
      queueSize: number;
      maxSysexLength: number;
    },
  ) {
    super(init.queueSize);
    this.#link = link;
    this.peerName = init.peerName;
    this.ssrc = init.ssrc;
    this.token = init.token;
    this.initiator = init.initiator;
    this.control = init.control;
    this.dataPeer = init.data;
    const address = formatAddress({
      hostname: init.control.host,
      port: init.control.port,
    });
    this.#name = init.peerName === ""
      ? address
      : `${address} (${init.peerName})`;
    this.#sender = new RtpMidiSender({
      ssrc: link.ssrc,
      sequence: randomUint32() & 0xffff,
    });
    this.#receiver = new RtpMidiReceiver({
      maxSysexLength: init.maxSysexLength,
    });
    if (this.initiator) this.#sync();
  }

  get name(): string {
    return this.#name;
  }

  get address(): Address {
    return { hostname: this.control.host, port: this.control.port };
  }

  get latency(): number | undefined {
    return this.#latency;
  }

  get finished(): Promise<void> {
    return this.#finished.promise;
  }

  /** Milliseconds since the peer last sent anything. */
  silence(now: number): number {
    return now - this.#lastHeard;
  }

  heard(): void {
    this.#lastHeard = performance.now();
  }

  // Receiving.

  /** Takes one RTP-MIDI datagram from the peer. */
  take(bytes: Uint8Array): void {
    // The journal is read only after a loss: most packets never need it.
    const packet = decodeRtpMidi(bytes, { journal: false });
    this.heard();
    const result = this.#receiver.receive(packet);
    if (result === undefined) {
      this.stats.late = this.#receiver.late;
      return;
    }
    this.stats.packetsIn++;
    this.stats.lost = this.#receiver.lost;
    this.stats.repaired = this.#receiver.repaired;
    let dropped = this.#receiver.dropped;
    for (const msg of result.messages) {
      if (this.deliver(msg)) this.stats.received++;
      else if (!this.closed) this.#queueFull++;
    }
    dropped += this.#queueFull;
    this.stats.dropped = dropped;
    this.#feedbackTimer ??= setTimeout(() => {
      this.#feedbackTimer = undefined;
      this.#feedback();
    }, FEEDBACK_DELAY);
  }

  #feedback(): void {
    const sequence = this.#receiver.sequence;
    if (this.#left || sequence < 0) return;
    void this.#link.send(
      "control",
      encodeSessionPacket({ command: "RS", ssrc: this.#link.ssrc, sequence }),
      this.control,
    );
  }

  feedback(sequence: number): void {
    this.heard();
    this.#sender.feedback(sequence);
  }

  // Clock synchronisation.

  #sync(): void {
    if (this.#left) return;
    this.#ck(0, [this.#link.now(), 0, 0]);
    this.#syncs++;
    const wait = this.#syncs < SYNC_BURST
      ? SYNC_BURST_INTERVAL
      : this.#latency === undefined
      ? SYNC_RETRY
      : this.#link.syncInterval;
    this.#syncTimer = setTimeout(() => this.#sync(), wait);
  }

  #ck(count: 0 | 1 | 2, timestamps: [number, number, number]): void {
    void this.#link.send(
      "data",
      encodeSessionPacket({
        command: "CK",
        ssrc: this.#link.ssrc,
        count,
        timestamps,
      }),
      this.dataPeer,
    );
  }

  clock(packet: SyncPacket): void {
    this.heard();
    const now = this.#link.now();
    const [t1, t2, t3] = packet.timestamps;
    switch (packet.count) {
      case 0:
        this.#ck(1, [t1, now, 0]);
        break;
      case 1:
        // Our CK0 came back: close the exchange, measure the round trip.
        this.#ck(2, [t1, t2, now]);
        this.#measure(now - t1);
        break;
      case 2:
        this.#measure(t3 - t1);
        break;
    }
  }

  #measure(roundTrip: number): void {
    if (roundTrip >= 0 && roundTrip < 600_000_000) {
      this.#latency = roundTrip / 20;
    }
  }

  // Sending.

  send(msg: Message): Promise<void> {
    try {
      checkMessage(msg);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.closed || this.#left) {
      return Promise.reject(new PortClosedError(this.#name));
    }
    this.#out.push(msg);
    if (this.#inFlight === 0) this.#flush();
    if (this.#out.length < HIGH_WATER) return RESOLVED;
    this.#drain ??= Promise.withResolvers<void>();
    return this.#drain.promise;
  }

  #flush(): void {
    const messages = this.#out;
    this.#out = [];
    const packets = this.#sender.packets(messages, this.#link.now());
    this.stats.sent += messages.length;
    this.#transmit(packets);
    this.#lastSend = performance.now();
    this.#guardDelay = GUARD_FIRST;
    this.#guards = 0;
    this.#guardTimer ??= setTimeout(() => this.#guard(), GUARD_FIRST);
  }

  /** A packet went out: once all have, send what queued meanwhile. */
  readonly #sent = (): void => {
    if (--this.#inFlight > 0) return;
    if (this.#out.length > 0 && !this.#left) this.#flush();
    if (this.#out.length < HIGH_WATER && this.#drain) {
      this.#drain.resolve();
      this.#drain = undefined;
    }
  };

  #transmit(packets: Uint8Array[]): void {
    for (const bytes of packets) {
      this.#inFlight++;
      this.stats.packetsOut++;
      this.#link.sendMidi(bytes, this.dataPeer, this.#sent);
    }
  }

  /**
   * Guard packets: while the peer has not confirmed what the journal
   * holds, resend the journal alone after a pause, so that a loss of the
   * last packets is repaired too.
   */
  #guard(): void {
    this.#guardTimer = undefined;
    if (this.#left || !this.#sender.unconfirmed) return;
    const quiet = performance.now() - this.#lastSend;
    if (quiet < this.#guardDelay) {
      this.#guardTimer = setTimeout(
        () => this.#guard(),
        this.#guardDelay - quiet,
      );
      return;
    }
    if (this.#guards >= GUARD_COUNT) return;
    this.#guards++;
    this.#transmit([this.#sender.guard(this.#link.now())]);
    this.#lastSend = performance.now();
    this.#guardDelay *= 2;
    this.#guardTimer = setTimeout(() => this.#guard(), this.#guardDelay);
  }

  reset(): Promise<void> {
    return this.#sendSet(RESET_MESSAGES);
  }

  panic(): Promise<void> {
    return this.#sendSet(PANIC_MESSAGES);
  }

  async #sendSet(messages: readonly Message[]): Promise<void> {
    if (this.closed || this.#left) return;
    for (const msg of messages) await this.send(msg);
  }

  // Ending.

  /** Stops everything; `cause` says why when the peer went silent. */
  leave(cause?: unknown, discard = false): void {
    if (this.#left) return;
    this.#left = true;
    for (const timer of [this.#guardTimer, this.#feedbackTimer]) {
      clearTimeout(timer);
    }
    clearTimeout(this.#syncTimer);
    this.#out = [];
    this.#drain?.resolve();
    this.finish(cause, discard);
    this.#link.left(this);
    this.#finished.resolve();
  }

  bye(): Promise<void> {
    return this.#link.send(
      "control",
      encodeSessionPacket({
        command: "BY",
        version: APPLE_MIDI_VERSION,
        token: this.token,
        ssrc: this.#link.ssrc,
        name: this.#link.sessionName,
      }),
      this.control,
    );
  }

  close(): Promise<void> {
    if (this.#left) {
      this.finish(undefined, true);
      return RESOLVED;
    }
    const sent = this.bye();
    this.leave(undefined, true);
    return sent;
  }
}

interface Invite {
  token: number;
  peer: Peer;
  phase: "control" | "data";
  attempts: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  ssrc: number;
  name: string;
  resolve(participant: RtpMidiParticipant): void;
  reject(error: unknown): void;
}

interface Pending {
  token: number;
  name: string;
  control: Peer;
  since: number;
}

interface Waiter {
  resolve(participant: RtpMidiParticipant): void;
  reject(error: unknown): void;
}

function checkPositive(name: string, value: number): number {
  if (!(value > 0) || !Number.isFinite(value)) {
    throw new RangeError(`${name} must be a positive number: got ${value}`);
  }
  return value;
}

/**
 * An RTP-MIDI session: the AppleMIDI protocol that macOS and iOS
 * ("Network" in Audio MIDI Setup), rtpMIDI on Windows, rtpmidid on Linux
 * and many hardware interfaces speak, on a UDP port pair (control port,
 * then data port). Each peer that joins, by inviting this session or by
 * being invited with `invite`, becomes a {@linkcode RtpMidiParticipant}:
 * a port of its own.
 *
 * Take participants as they join with `accept()` or `for await`. It
 * answers clock synchronisation, sends receiver feedback, sends a recovery
 * journal with every packet (notes, controllers, program, pitch wheel and
 * channel aftertouch), repairs what lost packets carried from the peer's
 * journal so that no note stays on, and drops a peer that goes silent for
 * `timeout` ms. Bad datagrams are counted in `stats` and dropped.
 *
 * It binds when made; `ready` says when it is listening.
 *
 * @example Two sessions on loopback
 * ```ts
 * import assert from "node:assert/strict";
 * import { message } from "@x/midisock";
 * import { RtpMidiSession } from "@x/midisock/rtp";
 *
 * await using a = new RtpMidiSession({ port: 0, name: "a" });
 * await using b = new RtpMidiSession({ port: 0, name: "b" });
 * await b.ready;
 * const toB = await a.invite("127.0.0.1", b.port);
 * const fromA = await b.accept();
 * await toB.send(message("note_on", { note: 60 }));
 * assert.equal((await fromA.receive()).type, "note_on");
 * ```
 */
export class RtpMidiSession
  implements AsyncIterable<RtpMidiParticipant>, AsyncDisposable {
  readonly #host: string;
  readonly #requestedPort: number;
  readonly #name: string;
  readonly #allow: AddressList | undefined;
  readonly #maxParticipants: number;
  readonly #queueSize: number;
  readonly #maxSysexLength: number;
  readonly #timeout: number;
  readonly #inviteAttempts: number;
  readonly #inviteInterval: number;
  readonly #onRefuse: RtpMidiSessionOptions["onRefuse"];
  readonly #gate: Gate | undefined;
  /** Gate tickets of the participants that hold one. */
  readonly #tickets = new Map<Participant, Ticket>();
  readonly #ssrc = randomUint32();
  readonly #epoch = randomUint32() >>> 2;
  readonly #ready: Promise<void>;
  readonly #link: Link;
  readonly #participants = new Map<number, Participant>();
  readonly #pending = new Map<number, Pending>();
  readonly #invites = new Map<number, Invite>();
  readonly #waiting: Participant[] = [];
  readonly #waiters: Waiter[] = [];
  readonly #sends = new Set<Promise<void>>();
  /** Counters of bad and unknown packets and refused invitations. */
  readonly stats: RtpMidiSessionStats = {
    datagrams: 0,
    malformed: 0,
    unknown: 0,
    refused: 0,
  };
  #control: Socket | undefined;
  #data: Socket | undefined;
  #port = 0;
  #housekeeping: ReturnType<typeof setInterval> | undefined;
  #closing: Promise<void> | undefined;

  /**
   * Starts binding the control and data ports.
   *
   * @param options Address, name, allow list, bounds and timings.
   * @throws {TypeError | RangeError} For an option out of range.
   * @throws {SyntaxError} For an allow-list rule that is no address.
   */
  constructor(options: RtpMidiSessionOptions = {}) {
    const host = options.host ?? "127.0.0.1";
    if (typeof host !== "string") {
      throw new TypeError(`Host must be a string: got ${String(host)}`);
    }
    const port = checkPort(options.port ?? 5004);
    if (port === 65535) {
      throw new RangeError("Port must leave room for the data port: got 65535");
    }
    const name = options.name ?? "midisock";
    if (typeof name !== "string") {
      throw new TypeError(`Session name must be a string: got ${String(name)}`);
    }
    encodeSessionPacket({
      command: "IN",
      version: APPLE_MIDI_VERSION,
      token: 0,
      ssrc: 0,
      name,
    });
    const maxParticipants = options.maxParticipants ?? 64;
    if (!Number.isSafeInteger(maxParticipants) || maxParticipants < 1) {
      throw new RangeError(
        `maxParticipants must be a positive integer: got ${maxParticipants}`,
      );
    }
    const inviteAttempts = options.inviteAttempts ?? 12;
    if (!Number.isSafeInteger(inviteAttempts) || inviteAttempts < 1) {
      throw new RangeError(
        `inviteAttempts must be a positive integer: got ${inviteAttempts}`,
      );
    }
    this.#queueSize = options.queueSize ?? DEFAULT_QUEUE_SIZE;
    if (!Number.isSafeInteger(this.#queueSize) || this.#queueSize < 1) {
      throw new RangeError(
        `queueSize must be a positive integer: got ${this.#queueSize}`,
      );
    }
    this.#maxSysexLength = options.maxSysexLength ?? 1024 * 1024;
    if (
      !Number.isSafeInteger(this.#maxSysexLength) || this.#maxSysexLength < 0
    ) {
      throw new RangeError(
        `maxSysexLength must be a non-negative integer: got ${this.#maxSysexLength}`,
      );
    }
    const syncInterval = checkPositive(
      "syncInterval",
      options.syncInterval ?? 10000,
    );
    this.#timeout = checkPositive("timeout", options.timeout ?? 30000);
    this.#inviteInterval = checkPositive(
      "inviteInterval",
      options.inviteInterval ?? 1000,
    );
    this.#host = host === "localhost" ? "127.0.0.1" : host;
    this.#requestedPort = port;
    this.#name = name;
    this.#allow = options.allow === undefined
      ? undefined
      : options.allow instanceof AddressList
      ? options.allow
      : new AddressList(options.allow);
    if (options.gate !== undefined && options.allow !== undefined) {
      throw new TypeError(
        "Give the allow list to the gate's hub, not to a session that uses it",
      );
    }
    this.#gate = options.gate;
    this.#maxParticipants = maxParticipants;
    this.#inviteAttempts = inviteAttempts;
    this.#onRefuse = options.onRefuse;
    const epoch = this.#epoch;
    this.#link = {
      ssrc: this.#ssrc,
      sessionName: name,
      syncInterval,
      now: () => Math.floor(performance.now() * 10) + epoch,
      send: (socket, bytes, to) => this.#send(socket, bytes, to),
      sendMidi: (bytes, to, done) => {
        const data = this.#data;
        if (data === undefined) return done();
        try {
          data.send(bytes, to.port, to.host, done);
        } catch {
          done();
        }
      },
      left: (participant) => this.#left(participant),
    };
    this.#ready = this.#start();
    // A session nobody awaits must not crash the process when binding
    // fails; awaiting `ready` still reports it.
    this.#ready.catch(() => {});
  }

  /** Resolves once both ports are bound; rejects if binding failed. */
  get ready(): Promise<void> {
    return this.#ready;
  }

  /** The session's name, as sent to peers. */
  get name(): string {
    return this.#name;
  }

  /** The control port (0 until `ready`); the data port is `port + 1`. */
  get port(): number {
    return this.#port;
  }

  /** The bound control address (port 0 until `ready`). */
  get address(): Address {
    return { hostname: this.#host, port: this.#port };
  }

  /** Whether the session is closed. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** The participants now in the session. */
  get participants(): readonly RtpMidiParticipant[] {
    return [...this.#participants.values()];
  }

  async #start(): Promise<void> {
    const dgram = await import("node:dgram");
    const ipv6 = this.#host === "" || this.#host.includes(":");
    const bindAddress = this.#host === "" ? "::" : this.#host;
    const open = (port: number): Promise<Socket> =>
      new Promise((resolve, reject) => {
        const socket = dgram.createSocket({
          type: ipv6 ? "udp6" : "udp4",
          ipv6Only: false,
        });
        const failed = (error: Error) => {
          socket.close();
          reject(error);
        };
        socket.once("error", failed);
        socket.bind(port, bindAddress, () => {
          socket.off("error", failed);
          resolve(socket);
        });
      });
    let control: Socket | undefined;
    let data: Socket | undefined;
    if (this.#requestedPort !== 0) {
      control = await open(this.#requestedPort);
      try {
        data = await open(this.#requestedPort + 1);
      } catch (error) {
        control.close();
        throw error;
      }
    } else {
      // Any free even port whose successor is free too.
      for (let attempt = 0; data === undefined; attempt++) {
        const candidate = await open(0);
        const port = candidate.address().port;
        if (port % 2 === 0 && port < 65535) {
          try {
            data = await open(port + 1);
            control = candidate;
            break;
          } catch (error) {
            if (attempt >= 50) {
              candidate.close();
              throw error;
            }
          }
        }
        candidate.close();
        if (attempt >= 50) {
          throw new Error("Found no free UDP port pair for RTP-MIDI");
        }
      }
    }
    if (this.#closing !== undefined) {
      control!.close();
      data.close();
      return;
    }
    this.#control = control!;
    this.#data = data;
    this.#port = control!.address().port;
    for (const socket of [control!, data]) {
      try {
        socket.setRecvBufferSize(RECEIVE_BUFFER);
      } catch {
        // Not supported here: the default stays.
      }
    }
    for (
      const [socket, kind] of [[control!, "control"], [data, "data"]] as const
    ) {
      socket.on("message", (msg: Uint8Array, rinfo: RemoteInfo) => {
        try {
          this.#receive(kind, msg, rinfo);
        } catch {
          // A handler must never throw out of the socket: count and go on.
          this.stats.malformed++;
        }
      });
      socket.on("error", () => {
        // Send errors (a peer's port closed, ICMP unreachable) are not fatal
        // to a UDP session; silence will time the peer out.
      });
    }
    const tick = Math.min(1000, this.#timeout / 4);
    this.#housekeeping = setInterval(() => this.#sweep(), tick);
  }

  #send(
    socket: "control" | "data",
    bytes: Uint8Array,
    to: Peer,
  ): Promise<void> {
    const target = socket === "control" ? this.#control : this.#data;
    if (target === undefined) return RESOLVED;
    const sent = new Promise<void>((resolve) => {
      try {
        target.send(bytes, to.port, to.host, () => resolve());
      } catch {
        resolve();
      }
    });
    this.#sends.add(sent);
    sent.then(() => this.#sends.delete(sent));
    return sent;
  }

  #receive(kind: "control" | "data", msg: Uint8Array, rinfo: RemoteInfo): void {
    if (this.#closing !== undefined) return;
    this.stats.datagrams++;
    const bytes = new Uint8Array(msg.buffer, msg.byteOffset, msg.byteLength);
    const from: Peer = { host: rinfo.address, port: rinfo.port };
    if (!isSessionPacket(bytes)) {
      if (kind === "control") {
        this.stats.malformed++;
        return;
      }
      this.#midi(bytes, from);
      return;
    }
    let packet: SessionPacket;
    try {
      packet = decodeSessionPacket(bytes);
    } catch {
      this.stats.malformed++;
      return;
    }
    switch (packet.command) {
      case "IN":
        this.#invitation(kind, packet, from);
        break;
      case "OK":
      case "NO":
        this.#answer(kind, packet, from);
        break;
      case "BY":
        this.#bye(packet);
        break;
      case "CK": {
        const participant = this.#participants.get(packet.ssrc);
        if (participant && kind === "data") participant.clock(packet);
        else this.stats.unknown++;
        break;
      }
      case "RS": {
        const participant = this.#participants.get(packet.ssrc);
        if (participant) participant.feedback(packet.sequence);
        else this.stats.unknown++;
        break;
      }
      case "RL":
        this.#participants.get(packet.ssrc)?.heard();
        break;
    }
  }

  #midi(bytes: Uint8Array, from: Peer): void {
    if (bytes.length < 12) {
      this.stats.malformed++;
      return;
    }
    const ssrc = new DataView(bytes.buffer, bytes.byteOffset, 12).getUint32(8);
    const participant = this.#participants.get(ssrc);
    if (
      participant === undefined || participant.dataPeer.port !== from.port ||
      participant.dataPeer.host !== from.host
    ) {
      this.stats.unknown++;
      return;
    }
    try {
      participant.take(bytes);
    } catch {
      this.stats.malformed++;
    }
  }

  #allowed(host: string): boolean {
    if (this.#gate !== undefined) return this.#gate.allows(host);
    return this.#allow === undefined || this.#allow.includes(host);
  }

  /**
   * Takes a client slot at the gate, where there is one.
   *
   * @returns Why not, when the gate refuses (reported to it already).
   */
  #admit(participant: Participant, from: Peer): string | undefined {
    if (this.#gate === undefined) return undefined;
    const peer = { transport: "rtp", hostname: from.host, port: from.port };
    const ticket = this.#gate.arrive(peer, false);
    if ("code" in ticket) return ticket.reason;
    const refusal = ticket.enter();
    if (refusal !== undefined) return refusal.reason;
    this.#tickets.set(participant, ticket);
    return undefined;
  }

  #answerWith(
    kind: "control" | "data",
    command: "OK" | "NO",
    token: number,
    to: Peer,
  ): void {
    void this.#send(
      kind,
      encodeSessionPacket({
        command,
        version: APPLE_MIDI_VERSION,
        token,
        ssrc: this.#ssrc,
        name: this.#name,
      }),
      to,
    );
  }

  #refuse(
    kind: "control" | "data",
    packet: InvitationPacket,
    from: Peer,
    reason: string,
    reported = false,
  ): void {
    this.stats.refused++;
    this.#answerWith(kind, "NO", packet.token, from);
    callBack(this.#onRefuse, { hostname: from.host, port: from.port }, reason);
    if (this.#gate !== undefined && !reported) {
      const peer = { transport: "rtp", hostname: from.host, port: from.port };
      this.#gate.refuse(
        peer,
        reason === "not in the allow list" ? "not-allowed" : "full",
        reason === "not in the allow list"
          ? "address not in the allow list"
          : reason,
      );
    }
  }

  #invitation(
    kind: "control" | "data",
    packet: InvitationPacket,
    from: Peer,
  ): void {
    if (!this.#allowed(from.host)) {
      this.#refuse(kind, packet, from, "not in the allow list");
      return;
    }
    const existing = this.#participants.get(packet.ssrc);
    if (existing?.token === packet.token) {
      // A repeated invitation whose answer was lost.
      this.#answerWith(kind, "OK", packet.token, from);
      return;
    }
    if (kind === "control") {
      // A peer that invites again with a new token starts over.
      existing?.leave();
      if (
        this.#participants.size + this.#pending.size >= this.#maxParticipants &&
        !this.#pending.has(packet.ssrc)
      ) {
        this.#refuse(kind, packet, from, "too many participants");
        return;
      }
      this.#pending.set(packet.ssrc, {
        token: packet.token,
        name: packet.name,
        control: from,
        since: performance.now(),
      });
      this.#answerWith(kind, "OK", packet.token, from);
      return;
    }
    const pending = this.#pending.get(packet.ssrc);
    if (pending === undefined || pending.token !== packet.token) {
      this.#refuse(kind, packet, from, "no invitation on the control port");
      return;
    }
    this.#pending.delete(packet.ssrc);
    const participant = new Participant(this.#link, {
      peerName: pending.name,
      ssrc: packet.ssrc,
      token: packet.token,
      initiator: false,
      control: pending.control,
      data: from,
      queueSize: this.#queueSize,
      maxSysexLength: this.#maxSysexLength,
    });
    const refused = this.#admit(participant, from);
    if (refused !== undefined) {
      this.#refuse(kind, packet, from, refused, true);
      return;
    }
    this.#answerWith(kind, "OK", packet.token, from);
    this.#join(participant);
  }

  #join(participant: Participant): void {
    this.#participants.set(participant.ssrc, participant);
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve(participant);
    else this.#waiting.push(participant);
  }

  #left(participant: Participant): void {
    this.#tickets.get(participant)?.leave();
    this.#tickets.delete(participant);
    if (this.#participants.get(participant.ssrc) === participant) {
      this.#participants.delete(participant.ssrc);
    }
    const at = this.#waiting.indexOf(participant);
    if (at >= 0) this.#waiting.splice(at, 1);
  }

  #answer(
    kind: "control" | "data",
    packet: InvitationPacket,
    from: Peer,
  ): void {
    const invite = this.#invites.get(packet.token);
    if (invite === undefined || invite.phase !== kind) {
      this.stats.unknown++;
      return;
    }
    clearTimeout(invite.timer);
    const peer = formatAddress({
      hostname: invite.peer.host,
      port: invite.peer.port,
    });
    if (packet.command === "NO") {
      this.#invites.delete(packet.token);
      invite.reject(new InvitationError(peer, "refused"));
      return;
    }
    if (kind === "control") {
      invite.phase = "data";
      invite.attempts = 0;
      invite.ssrc = packet.ssrc;
      invite.name = packet.name;
      this.#attempt(invite);
      return;
    }
    this.#invites.delete(packet.token);
    if (
      this.#participants.size + this.#pending.size >= this.#maxParticipants
    ) {
      invite.reject(new InvitationError(peer, "refused"));
      return;
    }
    this.#participants.get(invite.ssrc)?.leave();
    const participant = new Participant(this.#link, {
      peerName: invite.name,
      ssrc: invite.ssrc,
      token: invite.token,
      initiator: true,
      control: invite.peer,
      data: { host: from.host, port: from.port },
      queueSize: this.#queueSize,
      maxSysexLength: this.#maxSysexLength,
    });
    const refused = this.#admit(participant, from);
    if (refused !== undefined) {
      participant.leave();
      invite.reject(new InvitationError(peer, "refused"));
      return;
    }
    this.#join(participant);
    invite.resolve(participant);
  }

  #attempt(invite: Invite): void {
    if (invite.attempts >= this.#inviteAttempts) {
      this.#invites.delete(invite.token);
      invite.reject(
        new InvitationError(
          formatAddress({ hostname: invite.peer.host, port: invite.peer.port }),
          "unanswered",
        ),
      );
      return;
    }
    invite.attempts++;
    const to = invite.phase === "control"
      ? invite.peer
      : { host: invite.peer.host, port: invite.peer.port + 1 };
    void this.#send(
      invite.phase,
      encodeSessionPacket({
        command: "IN",
        version: APPLE_MIDI_VERSION,
        token: invite.token,
        ssrc: this.#ssrc,
        name: this.#name,
      }),
      to,
    );
    invite.timer = setTimeout(
      () => this.#attempt(invite),
      this.#inviteInterval,
    );
  }

  #bye(packet: InvitationPacket): void {
    this.#pending.delete(packet.ssrc);
    const participant = this.#participants.get(packet.ssrc);
    if (participant === undefined) {
      this.stats.unknown++;
      return;
    }
    participant.leave();
  }

  #sweep(): void {
    const now = performance.now();
    for (const participant of [...this.#participants.values()]) {
      if (participant.silence(now) > this.#timeout) {
        void participant.bye();
        participant.leave(
          new ParticipantTimeoutError(participant.name, this.#timeout),
        );
      }
    }
    for (const [ssrc, pending] of this.#pending) {
      if (now - pending.since > this.#timeout) this.#pending.delete(ssrc);
    }
  }

  /**
   * Invites a peer: IN on its control port, then on its data port, each
   * sent up to `inviteAttempts` times, `inviteInterval` apart, as Apple's
   * implementation does. Once it accepts, this session runs the clock
   * synchronisation. The participant is also given by `accept()` and
   * iteration, like one that invited this session.
   *
   * @param host The peer's host name or IP address.
   * @param port The peer's control port; its data port is the next one.
   * @returns The participant, once both ports accepted.
   * @throws {InvitationError} When the peer answers NO or never answers.
   * @throws {PortClosedError} When the session closes first.
   * @throws {TypeError | RangeError} For a port that is not 0-65534.
   */
  async invite(host: string, port: number): Promise<RtpMidiParticipant> {
    checkPort(port);
    if (port === 65535) {
      throw new RangeError("Port must leave room for the data port: got 65535");
    }
    if (typeof host !== "string" || host === "") {
      throw new TypeError(
        `Host must be a non-empty string: got ${String(host)}`,
      );
    }
    await this.#ready;
    if (this.#closing !== undefined) throw new PortClosedError(this.#name);
    const target = this.#resolve(host);
    let token = randomUint32();
    while (this.#invites.has(token)) token = randomUint32();
    return new Promise<RtpMidiParticipant>((resolve, reject) => {
      const invite: Invite = {
        token,
        peer: { host: target, port },
        phase: "control",
        attempts: 0,
        timer: undefined,
        ssrc: 0,
        name: "",
        resolve,
        reject,
      };
      this.#invites.set(token, invite);
      this.#attempt(invite);
    });
  }

  /** The address to send to, in the family of our sockets. */
  #resolve(host: string): string {
    const ipv6 = this.#host === "" || this.#host.includes(":");
    if (host === "localhost") return ipv6 ? "::1" : "127.0.0.1";
    if (ipv6 && /^\d+\.\d+\.\d+\.\d+$/.test(host)) return `::ffff:${host}`;
    return host;
  }

  /**
   * Waits for the next participant to join (one that invited this session,
   * or one `invite` brought in).
   *
   * @returns The participant.
   * @throws {PortClosedError} Once the session is closed.
   */
  accept(): Promise<RtpMidiParticipant>;
  /**
   * Takes a participant that joined and was not taken yet, without
   * waiting.
   *
   * @param options `{ block: false }`.
   * @returns The participant, or `undefined` when none waits.
   */
  accept(options: { block: false }): RtpMidiParticipant | undefined;
  accept(
    options?: { block: false },
  ): Promise<RtpMidiParticipant> | RtpMidiParticipant | undefined {
    const waiting = this.#waiting.shift();
    if (options?.block === false) return waiting;
    if (waiting) return Promise.resolve(waiting);
    if (this.#closing !== undefined) {
      return Promise.reject(new PortClosedError(this.#name));
    }
    return new Promise((resolve, reject) =>
      this.#waiters.push({ resolve, reject })
    );
  }

  /**
   * Yields each participant as it joins, until the session closes.
   *
   * @returns An async iterator over participants.
   */
  async *[Symbol.asyncIterator](): AsyncIterableIterator<RtpMidiParticipant> {
    for (;;) {
      try {
        yield await this.accept();
      } catch (error) {
        if (error instanceof PortClosedError) return;
        throw error;
      }
    }
  }

  /**
   * Ends the session: BY to every participant (each one's input ends),
   * pending invitations fail, and the ports are closed. Closing twice does
   * nothing.
   *
   * @returns A promise that resolves once the ports are closed.
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    clearInterval(this.#housekeeping);
    const closed = new PortClosedError(this.#name);
    for (const waiter of this.#waiters.splice(0)) waiter.reject(closed);
    for (const invite of this.#invites.values()) {
      clearTimeout(invite.timer);
      invite.reject(closed);
    }
    this.#invites.clear();
    this.#pending.clear();
    for (const participant of [...this.#participants.values()]) {
      void participant.close();
    }
    this.#waiting.length = 0;
    try {
      await this.#ready;
    } catch {
      return;
    }
    // Let the BYs go out (briefly) before the sockets close.
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      Promise.all(this.#sends),
      new Promise((resolve) => (timer = setTimeout(resolve, 250))),
    ]);
    clearTimeout(timer);
    await Promise.all(
      [this.#control, this.#data].map((socket) =>
        new Promise<void>((resolve) => {
          if (socket === undefined) return resolve();
          try {
            socket.close(() => resolve());
          } catch {
            resolve();
          }
        })
      ),
    );
  }

  /** Closes the session, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
