/**
 * `RtpMidiSession`: an AppleMIDI / RTP-MIDI session (RFC 6295 and Apple's
 * MIDI Network Driver Protocol) on a UDP port pair, where each participant
 * is a port of its own, and a transport a hub attaches.
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
} from "../codec/apple_midi.ts";
import { PortClosedError } from "../errors.ts";
import { DEFAULT_QUEUE_SIZE } from "../port.ts";
import {
  type Address,
  checkPort,
  formatAddress,
  parsePeer,
} from "../address.ts";
import {
  Gate,
  type Peer as GatePeer,
  type Refusal,
  type Ticket,
} from "../gate.ts";
import type { Hub } from "../hub/mod.ts";
import { systemClock, type TimeSource } from "../clock.ts";
import type { Transport } from "../transport.ts";
import { callBack } from "../_call.ts";
import { atMost } from "../_time.ts";
import { InvitationError, ParticipantTimeoutError } from "./errors.ts";
import type { BonjourAdvertisement } from "./bonjour.ts";
import {
  type Link,
  Participant,
  type Peer,
  type RtpMidiParticipant,
  type RtpMidiParticipantStats,
  type RtpMidiWarning,
  samePeer,
} from "./_participant.ts";

export type { RtpMidiParticipant, RtpMidiParticipantStats, RtpMidiWarning };

/** Options for {@linkcode RtpMidiSession}. */
export interface RtpMidiSessionOptions {
  /**
   * Address to listen on: `""` for every interface (IPv6 and IPv4).
   * Anyone who can reach it may join unless `allow` (or the gate of the
   * hub it is attached to) says otherwise.
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
   * network but loopback, set this. Only for a session used alone: one
   * attached to a hub is admitted by the hub's gate (its `allow`).
   * @default {undefined} (everyone)
   */
  allow?: Iterable<string>;
  /**
   * Most participants at once; invitations beyond it get NO. Only for a
   * session used alone: in a hub, participants count against the hub's
   * `maxClients`.
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
   * are dropped. In a hub, the hub's `maxSysexLength` when that is lower.
   * @default {1048576}
   */
  maxSysexLength?: number;
  /**
   * Milliseconds between clock exchanges (CK) with each participant, once
   * it has been in the session for 10 s (until then, every 50 ms). They
   * map each peer's timestamps to this session's clock and prove that the
   * peer still receives. This session runs them with the peers it
   * invited; a peer that invited it runs its own, and is asked only when
   * those come less often than this (half as long again): Apple's come
   * every 10 s or so. Each is three packets of 36 bytes. At 250 ms the
   * mapping holds within about half a millisecond over Wi-Fi; less often,
   * it wanders more.
   * @default {250}
   */
  syncInterval?: number;
  /**
   * A participant that answers no clock synchronisation for this many
   * milliseconds is dropped: it no longer proves that it receives at its
   * address. Keep it well above `syncInterval` and the peers' own (Apple's
   * and rtpMIDI's is about 10 s).
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
   * The clock the session keeps time on: RTP timestamps and clock
   * exchanges read it. Attached to a hub, the session runs on the hub's
   * clock instead.
   * @default {systemClock}
   */
  clock?: TimeSource;
  /**
   * Called for each invitation refused (by the gate, or as malformed),
   * attached or not.
   */
  onRefuse?: (refusal: Refusal) => void;
  /**
   * Called with what is odd about a participant but does not stop it,
   * once per participant. Attached to a hub, it is also a `warning` event
   * of the hub.
   */
  onWarning?: (warning: RtpMidiWarning) => void;
  /**
   * Peers' sessions to invite once the session is attached to a hub and
   * bound (as `invite` does for each), each an address or its text
   * (`host:port`, `[ipv6]:port`); one that fails is a `warning` event of
   * the hub.
   * @default {[]}
   */
  invite?: readonly (Address | string)[];
  /**
   * Advertise the session over Bonjour once it is attached to a hub and
   * bound (see `advertiseRtpMidi`; npm multicast-dns is loaded only then),
   * and say goodbye when it closes. A session that cannot be advertised
   * (bound to loopback, say) is a `warning` event of the hub, not an error.
   * @default {false}
   */
  bonjour?: boolean;
}

/** Counters of a session. */
export interface RtpMidiSessionStats {
  /** Datagrams received on both ports. */
  datagrams: number;
  /** Datagrams that were not well-formed session or RTP-MIDI packets. */
  malformed: number;
  /**
   * Well-formed packets ignored: from no known participant, or from an
   * address that is not the participant's own, or clock answers to nothing
   * this session sent.
   */
  unknown: number;
  /** Invitations refused (gate, malformed). */
  refused: number;
}

/**
 * Receive buffer size asked of each socket. Deno's node:dgram reads every
 * datagram into a fresh buffer of twice this size (64 KiB by default, and
 * zeroing it is a good part of the cost of a receive). RTP-MIDI datagrams
 * fit a network MTU (a peer that packs its 12-bit MIDI list full sends
 * about 4 KiB), so 8 KiB is ample and much cheaper; a longer datagram is
 * cut short and counted as malformed.
 */
const RECEIVE_BUFFER = 4096;
/** How long closing waits for the BYs to go out (ms). */
const BYE_WAIT = 250;
/** An invitation repeated (its OK lost) is answered this many times. */
const REPEATED_ANSWERS = 4;

function randomUint32(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}

function checkPositive(name: string, value: number): number {
  if (typeof value !== "number" || !(value > 0) || !Number.isFinite(value)) {
    throw new RangeError(`${name} must be a positive number: got ${value}`);
  }
  return value;
}

function checkCount(name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new RangeError(`${name} must be a positive integer: got ${value}`);
  }
  return value;
}

const IPV4 =
  /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const HOST_NAME =
  /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*\.?$/;

/** A host `invite` accepts: an IP address or a DNS name. */
function checkHost(host: unknown): string {
  if (typeof host !== "string" || host === "") {
    throw new TypeError(
      `Host must be a non-empty string: got ${
        typeof host === "string" ? '""' : String(host)
      }`,
    );
  }
  const bare = host.startsWith("[") && host.endsWith("]")
    ? host.slice(1, -1)
    : host;
  if (IPV4.test(bare) || HOST_NAME.test(bare)) return bare;
  if (bare.includes(":") && /^[0-9A-Fa-f:.]+$/.test(bare)) return bare;
  throw new TypeError(
    `Host must be an IP address or a host name: got ${JSON.stringify(host)}`,
  );
}

/**
 * Where a peer is in its invitation: its control port was answered (OK),
 * its data port is awaited; then, as a participant, its proof that it
 * receives. It holds a pending ticket at the gate all the while.
 */
interface Admission {
  ticket: Ticket;
  ssrc: number;
  token: number;
  name: string;
  control: Peer;
  /** OKs sent for its invitation. */
  answers: number;
  /** Once its data port joined. */
  participant: Participant | undefined;
  /** When this session invited the peer. */
  invite: Invite | undefined;
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

interface Waiter {
  resolve(participant: RtpMidiParticipant): void;
  reject(error: unknown): void;
}

/** Whether an error is a bind failure because the address is in use. */
function inUse(error: unknown): boolean {
  return error instanceof Deno.errors.AddrInUse ||
    (error as { code?: unknown })?.code === "EADDRINUSE";
}

/**
 * An RTP-MIDI session: the AppleMIDI protocol that macOS and iOS
 * ("Network" in Audio MIDI Setup), rtpMIDI on Windows, rtpmidid on Linux
 * and many hardware interfaces speak, on a UDP port pair (control port,
 * then data port). Each peer that joins, by inviting this session or by
 * being invited with `invite`, becomes a {@linkcode RtpMidiParticipant}:
 * a port of its own.
 *
 * Attached to a hub (`await hub.attach(session)`), every participant joins
 * the hub as a client endpoint, admitted by the hub's gate, and the hub
 * closes the session when it closes. Used alone, take participants as
 * they join with `accept()` or `for await`; its own gate is made from
 * `allow` and `maxParticipants`.
 *
 * Admission: an invitation on the control port takes a pending place at
 * the gate (bounded overall and per address; the oldest is dropped to
 * make room); the invitation on the data port must follow from the same
 * host, and then the peer must answer a clock exchange (CK) from its data
 * address, with timestamps only a receiver of ours can know, all before
 * the gate's handshake deadline (the gate keeps it: it refuses what is
 * late, and the session drops it). Only then is it a participant: before
 * that no MIDI goes to it, and few packets of any kind, so that a forged
 * invitation cannot turn the session on a third party. It stays one while
 * it keeps proving that it receives (`timeout`). Session commands (BY, CK,
 * RS) count only from the participant's own addresses, BY only with its
 * token, and an invitation never takes the place of a participant from
 * another address.
 *
 * It keeps time: what a hub sends goes out with each batch's time as its
 * RTP timestamp (and delta times), and each packet from a peer comes into
 * the hub with the peer's timestamp and delta times read on the hub's
 * clock, through clock exchanges (CK) with each participant every 50 ms
 * for its first 10 s, then every `syncInterval`, whichever side runs them.
 * A hub with a playout delay (`latency`) then plays each message at its
 * time plus the delay.
 *
 * It answers clock synchronisation, sends receiver feedback, sends a
 * recovery journal with every packet (notes, controllers, program, pitch
 * wheel and channel aftertouch), repairs what lost packets carried from
 * the peer's journal so that no note stays on. Bad datagrams are counted
 * in `stats` and dropped.
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
 *
 * @example A session attached to a hub: its participants are clients
 * ```ts
 * import assert from "node:assert/strict";
 * import { Hub } from "@x/midisock";
 * import { RtpMidiSession } from "@x/midisock/rtp";
 *
 * await using hub = new Hub({ allow: ["127.0.0.1"] });
 * const session = await hub.attach(new RtpMidiSession({ port: 0 }));
 * await using peer = new RtpMidiSession({ port: 0, name: "peer" });
 * await peer.invite("127.0.0.1", session.port);
 * while (hub.endpoints.length === 0) {
 *   await new Promise((resolve) => setTimeout(resolve, 10));
 * }
 * assert.equal(hub.endpoints[0].transport, "rtp");
 * ```
 */
export class RtpMidiSession
  implements Transport, AsyncIterable<RtpMidiParticipant> {
  readonly #host: string;
  readonly #requestedPort: number;
  readonly #name: string;
  readonly #ownRules: boolean;
  readonly #queueSize: number;
  #maxSysexLength: number;
  readonly #timeout: number;
  readonly #inviteAttempts: number;
  readonly #inviteInterval: number;
  readonly #onRefuse: RtpMidiSessionOptions["onRefuse"];
  readonly #onWarning: RtpMidiSessionOptions["onWarning"];
  #gate: Gate;
  #hub: Hub | undefined;
  #clock: TimeSource;
  readonly #ssrc = randomUint32();
  readonly #ready: Promise<void>;
  readonly #invite: readonly Address[];
  readonly #bonjour: boolean;
  #advertisement: BonjourAdvertisement | undefined;
  readonly #link: Link;
  /** Participants by SSRC, those still proving themselves included. */
  readonly #participants = new Map<number, Participant>();
  /** Invitations answered on the control port, by SSRC. */
  readonly #pending = new Map<number, Admission>();
  /** Admissions of participants not admitted yet. */
  readonly #admissions = new Map<Participant, Admission>();
  /** Gate tickets of admitted participants. */
  readonly #tickets = new Map<Participant, Ticket>();
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
   * @param options Address, name, admission, bounds and timings.
   * @throws {TypeError | RangeError} For an option out of range.
   * @throws {SyntaxError} For an allow-list rule that is no address, or an
   * `invite` text that is not `host:port`.
   */
  constructor(options: RtpMidiSessionOptions = {}) {
    const host = options.host ?? "127.0.0.1";
    if (typeof host !== "string") {
      throw new TypeError(`Host must be a string: got ${String(host)}`);
    }
    const port = checkPort(options.port ?? 5004);
    if (port === 65535) {
      throw new RangeError(
        "port must leave room for the data port (port + 1): got 65535",
      );
    }
    const name = options.name ?? "midisock";
    if (typeof name !== "string") {
      throw new TypeError(`Session name must be a string: got ${String(name)}`);
    }
    // Throws for a name too long for a packet.
    encodeSessionPacket({
      command: "IN",
      version: APPLE_MIDI_VERSION,
      token: 0,
      ssrc: 0,
      name,
    });
    this.#queueSize = checkCount(
      "queueSize",
      options.queueSize ?? DEFAULT_QUEUE_SIZE,
    );
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
      options.syncInterval ?? 250,
    );
    this.#timeout = checkPositive("timeout", options.timeout ?? 30000);
    this.#inviteAttempts = checkCount(
      "inviteAttempts",
      options.inviteAttempts ?? 12,
    );
    this.#inviteInterval = checkPositive(
      "inviteInterval",
      options.inviteInterval ?? 1000,
    );
    this.#ownRules = options.allow !== undefined ||
      options.maxParticipants !== undefined;
    this.#clock = options.clock === undefined ? systemClock : options.clock;
    if (
      typeof this.#clock?.now !== "function" ||
      typeof this.#clock.setTimer !== "function"
    ) {
      throw new TypeError(
        `Clock must be a TimeSource (now and setTimer): got ${
          this.#clock === null ? "null" : typeof this.#clock
        }`,
      );
    }
    this.#gate = new Gate({
      allow: options.allow,
      maxClients: checkCount("maxParticipants", options.maxParticipants ?? 64),
      clock: this.#clock,
    });
    this.#host = host === "localhost" ? "127.0.0.1" : host;
    this.#requestedPort = port;
    this.#name = name;
    this.#onRefuse = options.onRefuse;
    this.#onWarning = options.onWarning;
    this.#link = {
      ssrc: this.#ssrc,
      sessionName: name,
      syncInterval,
      time: () => this.#clock.now(),
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
      proven: (participant) => this.#proven(participant),
      left: (participant, cause) => this.#left(participant, cause),
      warn: (warning) => this.#warn(warning),
    };
    this.#invite = [...(options.invite ?? [])].map((peer) => {
      if (typeof peer !== "string") {
        return { hostname: peer.hostname, port: checkPort(peer.port) };
      }
      return parsePeer(peer, "invite");
    });
    this.#bonjour = options.bonjour === true;
    this.#ready = this.#start();
    // A session nobody awaits must not crash the process when binding
    // fails; awaiting `ready` still reports it.
    this.#ready.catch(() => {});
  }

  /** Resolves once both ports are bound; rejects if binding failed. */
  get ready(): Promise<void> {
    return this.#ready;
  }

  /**
   * For people: `rtp` and the bound control address, as
   * `rtp 127.0.0.1:5004` (port 0 until `ready`).
   */
  get name(): string {
    return `rtp ${formatAddress(this.address)}`;
  }

  /** The session's name, as sent to peers. */
  get sessionName(): string {
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

  /** The participants now in the session (admitted ones). */
  get participants(): readonly RtpMidiParticipant[] {
    return [...this.#participants.values()].filter((p) => p.admitted);
  }

  /**
   * Attaches the session to a hub: from now on every participant joins it
   * as a client endpoint (transport `"rtp"`, named `rtp "host:port (name)"`),
   * admitted by the hub's gate, and `accept()` and iteration are no longer
   * for the caller. Called by {@linkcode Hub.attach}.
   *
   * @param hub The hub.
   * @returns A promise that resolves once both ports are bound.
   * @throws {TypeError} When the session has an `allow` list or
   * `maxParticipants` of its own (give them to the hub), or is attached
   * already.
   * @throws {PortClosedError} When the session is closed.
   * @throws {Deno.errors.AddrInUse} When a port is taken.
   */
  async attach(hub: Hub): Promise<void> {
    if (this.#hub !== undefined) {
      throw new TypeError(`${this.name} is attached to a hub already`);
    }
    if (this.#ownRules) {
      throw new TypeError(
        "An RTP-MIDI session in a hub is admitted by the hub's gate: give " +
          "allow and maxClients to the Hub, not allow or maxParticipants to " +
          "the session",
      );
    }
    if (this.#closing !== undefined) throw new PortClosedError(this.name);
    this.#hub = hub;
    this.#gate = hub.gate;
    if (hub.clock !== this.#clock) {
      this.#clock = hub.clock;
      // What was read of the peers' clocks was read against another.
      for (const participant of this.#participants.values()) {
        participant.clockChanged();
      }
    }
    this.#maxSysexLength = Math.min(this.#maxSysexLength, hub.maxSysexLength);
    const error = new TypeError(
      `${this.name} is attached to a hub: its participants join the hub`,
    );
    for (const waiter of this.#waiters.splice(0)) waiter.reject(error);
    for (const participant of this.#waiting.splice(0)) this.#join(participant);
    await this.#ready;
    const where = formatAddress(this.address);
    hub.notice(
      `RTP-MIDI session "${this.#name}" on ${where} (data ${this.port + 1})`,
    );
    const exposed = hub.gate.exposure(this.name, this.address.hostname);
    if (exposed !== undefined) hub.warn(exposed);
    if (hub.gate.wantsToken) {
      hub.warn(
        `${this.name}: RTP-MIDI carries no token, so the hub's token does ` +
          "not protect it (use an allow list)",
      );
    }
    if (this.#bonjour) {
      // Loaded only now: a session without Bonjour never loads mDNS.
      const { advertiseRtpMidi } = await import("./bonjour.ts");
      try {
        this.#advertisement = await advertiseRtpMidi(this);
        const { instance, host } = this.#advertisement;
        hub.notice(`advertising "${instance}" over Bonjour (host ${host})`);
      } catch (error) {
        if (error instanceof Deno.errors.NotCapable) throw error;
        hub.warn(`cannot advertise over Bonjour: ${(error as Error).message}`);
      }
    }
    for (const peer of this.#invite) {
      this.invite(peer.hostname, peer.port).catch((error) =>
        hub.warn(
          `rtp invitation to ${formatAddress(peer)} failed: ${
            (error as Error).message
          }`,
        )
      );
    }
  }

  /**
   * The session's Bonjour advertisement (with `bonjour: true`, once
   * attached), for its instance and host names.
   */
  get advertisement(): BonjourAdvertisement | undefined {
    return this.#advertisement;
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
    const where = (port: number) =>
      formatAddress({ hostname: bindAddress, port });
    let control: Socket | undefined;
    let data: Socket | undefined;
    if (this.#requestedPort !== 0) {
      const port = this.#requestedPort;
      try {
        control = await open(port);
      } catch (error) {
        if (!inUse(error)) throw error;
        throw new Deno.errors.AddrInUse(
          `UDP ${where(port)}, the RTP-MIDI control port, is already in use ` +
            "(another session?): choose another port pair",
          { cause: error },
        );
      }
      try {
        data = await open(port + 1);
      } catch (error) {
        control.close();
        if (!inUse(error)) throw error;
        throw new Deno.errors.AddrInUse(
          `UDP ${where(port + 1)}, the RTP-MIDI data port (the control port ` +
            `${port} + 1), is already in use: choose a control port whose ` +
            "next port is free too",
          { cause: error },
        );
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
    if (target === undefined) return Promise.resolve();
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
    const participant = this.#participants.get(packet.ssrc);
    // Session commands count only from the participant's own addresses.
    const own = participant !== undefined &&
      (samePeer(participant.control, from) ||
        samePeer(participant.dataPeer, from));
    switch (packet.command) {
      case "IN":
        if (kind === "control") this.#controlInvitation(packet, from);
        else this.#dataInvitation(packet, from);
        return;
      case "OK":
      case "NO":
        this.#answer(kind, packet, from);
        return;
      case "BY":
        this.#bye(packet, from);
        return;
      case "CK":
        if (
          kind !== "data" || participant === undefined ||
          !samePeer(participant.dataPeer, from) || !participant.clock(packet)
        ) {
          this.stats.unknown++;
        }
        return;
      case "RS":
        if (own) participant.feedback(packet.sequence);
        else this.stats.unknown++;
        return;
      case "RL":
        // A bitrate limit: nothing to do (and no sign of life either).
        if (!own) this.stats.unknown++;
        return;
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
      participant === undefined || !samePeer(participant.dataPeer, from)
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

  #gatePeer(from: Peer): GatePeer {
    return { transport: "rtp", hostname: from.host, port: from.port };
  }

  /** Counts a refusal and tells `onRefuse` (the gate told the hub). */
  #refused(refusal: Refusal): Refusal {
    this.stats.refused++;
    callBack(this.#onRefuse, refusal);
    return refusal;
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

  /** NO to an invitation, with the refusal counted and reported. */
  #refuse(
    kind: "control" | "data",
    packet: InvitationPacket,
    from: Peer,
    refusal: Refusal,
  ): void {
    this.#refused(refusal);
    this.#answerWith(kind, "NO", packet.token, from);
  }

  /** Refuses an invitation with an SSRC that `whose` holds. */
  #refuseImpostor(packet: InvitationPacket, from: Peer, whose: string): void {
    const refusal = this.#gate.refuse(
      this.#gatePeer(from),
      "protocol",
      `invitation with the SSRC of ${whose}`,
    );
    this.#refuse("control", packet, from, refusal);
  }

  #controlInvitation(packet: InvitationPacket, from: Peer): void {
    const existing = this.#participants.get(packet.ssrc);
    if (existing !== undefined) {
      if (!samePeer(existing.control, from)) {
        this.#refuseImpostor(packet, from, "a participant at another address");
        return;
      }
      if (existing.token === packet.token) {
        // A repeated invitation whose answer was lost.
        const admission = this.#admissions.get(existing);
        if (
          admission === undefined || admission.answers++ < REPEATED_ANSWERS
        ) {
          this.#answerWith("control", "OK", packet.token, from);
        }
        return;
      }
      // The same peer invites again with a new token: it started over.
      existing.leave();
    }
    const pending = this.#pending.get(packet.ssrc);
    if (pending !== undefined) {
      if (!samePeer(pending.control, from)) {
        this.#refuseImpostor(packet, from, "another address's invitation");
        return;
      }
      pending.token = packet.token;
      pending.name = packet.name;
      if (pending.answers++ < REPEATED_ANSWERS) {
        this.#answerWith("control", "OK", packet.token, from);
      }
      return;
    }
    if (this.#gate.full && this.#gate.allows(from.host)) {
      // Said now rather than after the peer proved itself; the gate still
      // decides when it enters.
      this.#refuse(
        "control",
        packet,
        from,
        this.#gate.refuse(this.#gatePeer(from), "full", "server full"),
      );
      return;
    }
    const admission: Admission = {
      ticket: undefined as unknown as Ticket,
      ssrc: packet.ssrc,
      token: packet.token,
      name: packet.name,
      control: from,
      answers: 1,
      participant: undefined,
      invite: undefined,
    };
    const ticket = this.#arrive(admission, from);
    if ("code" in ticket) {
      this.#refuse("control", packet, from, ticket);
      return;
    }
    this.#pending.set(packet.ssrc, admission);
    this.#answerWith("control", "OK", packet.token, from);
  }

  #dataInvitation(packet: InvitationPacket, from: Peer): void {
    const existing = this.#participants.get(packet.ssrc);
    if (
      existing !== undefined && existing.token === packet.token &&
      samePeer(existing.dataPeer, from)
    ) {
      // A repeated invitation whose answer was lost.
      const admission = this.#admissions.get(existing);
      if (admission !== undefined && admission.answers++ < REPEATED_ANSWERS) {
        this.#answerWith("data", "OK", packet.token, from);
      }
      return;
    }
    const admission = this.#pending.get(packet.ssrc);
    if (
      admission === undefined || admission.token !== packet.token ||
      admission.control.host !== from.host
    ) {
      this.#refuse(
        "data",
        packet,
        from,
        this.#gate.refuse(
          this.#gatePeer(from),
          "protocol",
          "invitation on the data port without one on the control port",
        ),
      );
      return;
    }
    this.#pending.delete(packet.ssrc);
    const participant = new Participant(this.#link, {
      peerName: admission.name,
      ssrc: packet.ssrc,
      token: packet.token,
      initiator: false,
      control: admission.control,
      data: from,
      queueSize: this.#queueSize,
      maxSysexLength: this.#maxSysexLength,
    });
    admission.participant = participant;
    admission.answers = 1;
    this.#owes(admission);
    this.#admissions.set(participant, admission);
    this.#participants.set(packet.ssrc, participant);
    this.#answerWith("data", "OK", packet.token, from);
  }

  /**
   * Arrives at the gate with a peer's invitation: its ticket's deadline
   * is the invitation's (the gate refuses it, and has it dropped here, when
   * the peer has not proved itself by then), and the gate may drop it to
   * make room for newer ones.
   */
  #arrive(admission: Admission, from: Peer): Ticket | Refusal {
    const ticket = this.#gate.arrive(this.#gatePeer(from), {
      long: true,
      close: (refusal) => {
        this.#refused(refusal);
        this.#drop(admission, refusal);
      },
    });
    if ("code" in ticket) return ticket;
    admission.ticket = ticket;
    this.#owes(admission);
    return ticket;
  }

  /** Tells the ticket what the peer owes next, for its timeout's reason. */
  #owes(admission: Admission): void {
    admission.ticket.owes(
      admission.participant === undefined
        ? "invitation on the data port"
        : "answer to the clock exchange from its data port",
    );
  }

  /** Forgets an admission that did not complete; nothing goes to the peer. */
  #drop(admission: Admission, refusal: Refusal): void {
    admission.ticket.leave();
    if (this.#pending.get(admission.ssrc) === admission) {
      this.#pending.delete(admission.ssrc);
    }
    const { invite, participant } = admission;
    admission.invite = undefined;
    if (participant !== undefined) participant.leave();
    invite?.reject(
      new InvitationError(this.#describe(invite.peer), "unanswered", {
        cause: refusal,
      }),
    );
  }

  /** A participant proved it receives: it enters through the gate. */
  #proven(participant: Participant): void {
    const admission = this.#admissions.get(participant);
    if (admission === undefined) return;
    this.#admissions.delete(participant);
    const refusal = admission.ticket.enter();
    const invite = admission.invite;
    if (refusal !== undefined) {
      this.#refused(refusal);
      void participant.bye();
      participant.leave();
      invite?.reject(
        new InvitationError(this.#describe(invite.peer), "not-admitted", {
          cause: refusal,
        }),
      );
      return;
    }
    this.#tickets.set(participant, admission.ticket);
    participant.admitted = true;
    this.#join(participant);
    invite?.resolve(participant);
  }

  #join(participant: Participant): void {
    const hub = this.#hub;
    if (hub !== undefined) {
      try {
        hub.add(participant, {
          kind: "client",
          transport: "rtp",
          name: `rtp ${JSON.stringify(participant.name)}`,
        });
      } catch {
        // The hub is closing.
        void participant.close();
      }
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter) waiter.resolve(participant);
    else this.#waiting.push(participant);
  }

  #left(participant: Participant, _cause: unknown): void {
    const admission = this.#admissions.get(participant);
    if (admission !== undefined) {
      // It left before it was admitted (a BY, or a new invitation).
      this.#admissions.delete(participant);
      admission.ticket.leave();
      const invite = admission.invite;
      invite?.reject(
        new InvitationError(this.#describe(invite.peer), "refused"),
      );
    }
    this.#tickets.get(participant)?.leave();
    this.#tickets.delete(participant);
    if (this.#participants.get(participant.ssrc) === participant) {
      this.#participants.delete(participant.ssrc);
    }
    const at = this.#waiting.indexOf(participant);
    if (at >= 0) this.#waiting.splice(at, 1);
  }

  #warn(warning: RtpMidiWarning): void {
    callBack(this.#onWarning, warning);
    this.#hub?.warn(warning.message);
  }

  #describe(peer: Peer): string {
    return formatAddress({ hostname: peer.host, port: peer.port });
  }

  #answer(
    kind: "control" | "data",
    packet: InvitationPacket,
    from: Peer,
  ): void {
    const invite = this.#invites.get(packet.token);
    if (
      invite === undefined || invite.phase !== kind ||
      from.host !== invite.peer.host ||
      (kind === "control" && from.port !== invite.peer.port)
    ) {
      this.stats.unknown++;
      return;
    }
    clearTimeout(invite.timer);
    const peer = this.#describe(invite.peer);
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
    const existing = this.#participants.get(invite.ssrc) ??
      this.#pending.get(invite.ssrc);
    const bye = () =>
      void this.#send(
        "control",
        encodeSessionPacket({
          command: "BY",
          version: APPLE_MIDI_VERSION,
          token: invite.token,
          ssrc: this.#ssrc,
          name: this.#name,
        }),
        invite.peer,
      );
    if (existing !== undefined) {
      if (!samePeer(existing.control, invite.peer)) {
        bye();
        invite.reject(
          new InvitationError(peer, "not-admitted", {
            cause: this.#refused(this.#gate.refuse(
              this.#gatePeer(invite.peer),
              "protocol",
              "its SSRC belongs to a participant at another address",
            )),
          }),
        );
        return;
      }
      // The same peer, started over.
      if (existing instanceof Participant) existing.leave();
      else {
        this.#drop(
          existing,
          this.#gate.refuse(
            this.#gatePeer(invite.peer),
            "protocol",
            "invited while inviting",
          ),
        );
      }
    }
    const admission: Admission = {
      ticket: undefined as unknown as Ticket,
      ssrc: invite.ssrc,
      token: invite.token,
      name: invite.name,
      control: invite.peer,
      answers: REPEATED_ANSWERS,
      participant: undefined,
      invite,
    };
    const ticket = this.#arrive(admission, invite.peer);
    if ("code" in ticket) {
      bye();
      invite.reject(
        new InvitationError(peer, "not-admitted", {
          cause: this.#refused(ticket),
        }),
      );
      return;
    }
    const participant = new Participant(this.#link, {
      peerName: invite.name,
      ssrc: invite.ssrc,
      token: invite.token,
      initiator: true,
      control: invite.peer,
      data: from,
      queueSize: this.#queueSize,
      maxSysexLength: this.#maxSysexLength,
    });
    admission.participant = participant;
    this.#owes(admission);
    this.#admissions.set(participant, admission);
    this.#participants.set(invite.ssrc, participant);
  }

  #attempt(invite: Invite): void {
    if (invite.attempts >= this.#inviteAttempts) {
      this.#invites.delete(invite.token);
      invite.reject(
        new InvitationError(this.#describe(invite.peer), "unanswered"),
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

  #bye(packet: InvitationPacket, from: Peer): void {
    const participant = this.#participants.get(packet.ssrc);
    if (
      participant !== undefined && participant.token === packet.token &&
      (samePeer(participant.control, from) ||
        samePeer(participant.dataPeer, from))
    ) {
      participant.leave();
      return;
    }
    const pending = this.#pending.get(packet.ssrc);
    if (
      pending !== undefined && pending.token === packet.token &&
      samePeer(pending.control, from)
    ) {
      pending.ticket.leave();
      this.#pending.delete(packet.ssrc);
      return;
    }
    this.stats.unknown++;
  }

  #sweep(): void {
    const now = this.#clock.now();
    for (const participant of [...this.#participants.values()]) {
      if (participant.admitted && participant.silence(now) > this.#timeout) {
        void participant.bye();
        participant.leave(
          new ParticipantTimeoutError(participant.name, this.#timeout),
        );
      }
    }
  }

  /**
   * Invites a peer: IN on its control port, then on its data port, each
   * sent up to `inviteAttempts` times, `inviteInterval` apart, as Apple's
   * implementation does. Once it accepts, this session runs the clock
   * synchronisation, and the peer joins once it has answered it (and the
   * gate let it in). The participant is also given by `accept()` and
   * iteration, like one that invited this session; in a session attached
   * to a hub it joins the hub instead (reach it through the hub: the hub
   * reads its input).
   *
   * @param host The peer's host name or IP address; a name is resolved
   * once, now.
   * @param port The peer's control port; its data port is the next one.
   * @returns The participant, once it joined.
   * @throws {InvitationError} When the host name does not resolve
   * (`"unresolved"`, at once), the peer answers NO (`"refused"`), never
   * answers (`"unanswered"`), or the gate refuses it (`"not-admitted"`).
   * @throws {PortClosedError} When the session closes first.
   * @throws {TypeError | RangeError} For a host that is no address or
   * name, or a port that is not 1-65534.
   * @throws {Deno.errors.NotCapable} When resolving the name needs a
   * permission not granted.
   */
  async invite(host: string, port: number): Promise<RtpMidiParticipant> {
    const bare = checkHost(host);
    checkPort(port);
    if (port === 0 || port === 65535) {
      throw new RangeError(
        `Port must be 1-65534 (the data port is the next one): got ${port}`,
      );
    }
    await this.#ready;
    if (this.#closing !== undefined) throw new PortClosedError(this.name);
    const target = await this.#resolve(bare, port);
    if (this.#closing !== undefined) throw new PortClosedError(this.name);
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
  async #resolve(host: string, port: number): Promise<string> {
    const ipv6 = this.#host === "" || this.#host.includes(":");
    const v6Only = ipv6 && this.#host !== "" && this.#host !== "::";
    let address = host;
    if (!IPV4.test(host) && !host.includes(":")) {
      const { lookup } = await import("node:dns/promises");
      try {
        ({ address } = await lookup(host, {
          family: v6Only ? 6 : ipv6 ? 0 : 4,
        }));
      } catch (error) {
        const code = (error as { code?: unknown }).code;
        if (code === "EPERM" || error instanceof Deno.errors.NotCapable) {
          throw new Deno.errors.NotCapable(
            `Resolving ${host} needs net permission for it (--allow-net)`,
            { cause: error },
          );
        }
        throw new InvitationError(
          formatAddress({ hostname: host, port }),
          "unresolved",
          { cause: error },
        );
      }
    }
    if (ipv6 && IPV4.test(address)) return `::ffff:${address}`;
    return address;
  }

  /**
   * Waits for the next participant to join (one that invited this session,
   * or one `invite` brought in).
   *
   * @returns The participant.
   * @throws {PortClosedError} Once the session is closed.
   * @throws {TypeError} When the session is attached to a hub (its
   * participants join the hub).
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
      return Promise.reject(new PortClosedError(this.name));
    }
    if (this.#hub !== undefined) {
      return Promise.reject(
        new TypeError(
          `${this.name} is attached to a hub: its participants join the hub`,
        ),
      );
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
    // Goodbye first, while the session still answers.
    await this.#advertisement?.close().catch(() => {});
    clearInterval(this.#housekeeping);
    const closed = new PortClosedError(this.name);
    for (const waiter of this.#waiters.splice(0)) waiter.reject(closed);
    for (const invite of this.#invites.values()) {
      clearTimeout(invite.timer);
      invite.reject(closed);
    }
    this.#invites.clear();
    for (const admission of this.#pending.values()) {
      admission.ticket.leave();
    }
    this.#pending.clear();
    for (const admission of this.#admissions.values()) {
      admission.invite?.reject(closed);
      admission.invite = undefined;
    }
    for (const participant of [...this.#participants.values()]) {
      if (participant.admitted) void participant.close();
      else participant.leave(undefined, true);
    }
    this.#waiting.length = 0;
    try {
      await this.#ready;
    } catch {
      return;
    }
    // Let the BYs go out (briefly) before the sockets close.
    await atMost(Promise.all(this.#sends), BYE_WAIT);
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
