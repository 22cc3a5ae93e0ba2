/**
 * Internal: one peer of an RTP-MIDI session, as a port. It runs the clock
 * exchange (CK) by which a peer proves, again and again, that it receives
 * what is sent to its address, and which maps the peer's clock to ours;
 * the recovery journal and receiver feedback (RS); and hands its input to a
 * hub as framed bytes with the time the peer gave them, and takes the hub's
 * batches, with theirs, without a promise per message.
 *
 * @module
 */

import {
  APPLE_MIDI_VERSION,
  encodeSessionPacket,
  type SyncPacket,
} from "../codec/apple_midi.ts";
import { checkMessage, type Message } from "../codec/messages.ts";
import { encodedLength } from "../codec/encode.ts";
import { decodeRtpMidi } from "../codec/rtp_midi.ts";
import { encodeFramed } from "../codec/_framer.ts";
import { PortClosedError } from "../errors.ts";
import {
  InputPortBase,
  type IOPort,
  PANIC_MESSAGES,
  RESET_MESSAGES,
} from "../port.ts";
import { type Address, formatAddress } from "../address.ts";
import { printable } from "../gate.ts";
import { type Batch, SINK, type Sink, SOURCE, type Source } from "../sink.ts";
import { ClockSync } from "../time/sync.ts";
import { RtpMidiReceiver, RtpMidiSender } from "./_stream.ts";

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
  /**
   * Packets from the peer taken though their sequence number did not move
   * on: the number of the packet before with other content, or a number
   * far behind (the peer started counting again). See
   * {@linkcode RtpMidiWarning}.
   */
  repeated: number;
  /** Messages made up from the peer's recovery journal after a loss. */
  repaired: number;
  /**
   * Messages from the peer dropped: input queue full, or a sysex cut by a
   * loss or longer than `maxSysexLength`.
   */
  dropped: number;
  /**
   * Packets from the peer (with messages) whose time was not taken from
   * their RTP timestamp but from their arrival: before the first clock exchange
   * with the peer, or with a timestamp that does not read as a time
   * within a second or two of it (a peer that does not keep time). Only
   * counted when a hub reads the participant.
   */
  untimed: number;
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
 *
 * In a hub, each message comes with its time: the packet's RTP timestamp
 * and the command's delta time, read on the hub's clock through the clock
 * exchanges with the peer (at arrival when they do not read as a time near
 * it; see `stats.untimed`); and what the hub sends goes out with each
 * batch's time as its timestamp, for the peer to play out.
 */
export interface RtpMidiParticipant extends IOPort {
  /**
   * `host:port (peer name)`: the peer's control address and name (its
   * control characters escaped, cut short).
   */
  readonly name: string;
  /** The name the peer gave in its invitation or answer, as it gave it. */
  readonly peerName: string;
  /** The peer's control port address. */
  readonly address: Address;
  /** The peer's data port address. */
  readonly dataAddress: Address;
  /** The peer's RTP synchronisation source. */
  readonly ssrc: number;
  /** Whether this session invited the peer (`invite`), not the reverse. */
  readonly initiator: boolean;
  /**
   * One-way latency to the peer estimated by the last clock exchange (half
   * its round trip), in milliseconds, or `undefined` before one completed.
   */
  readonly latency: number | undefined;
  /** Live counters. */
  readonly stats: Readonly<RtpMidiParticipantStats>;
  /** Resolves once the participant has left (either side ended it). */
  readonly finished: Promise<void>;
}

/**
 * Something odd about a participant that does not stop it, said once per
 * participant: its packets repeat sequence numbers (a peer that does not
 * count them, or starts again without a new SSRC). They are taken in the
 * order they come, not dropped as duplicates.
 */
export interface RtpMidiWarning {
  /** What, in a word. */
  readonly code: "repeated-sequence";
  /** Who. */
  readonly participant: RtpMidiParticipant;
  /** How many packets so far. */
  readonly count: number;
  /** What, for people (no text the peer chose beyond its escaped name). */
  readonly message: string;
}

/** An address and port to send to. */
export interface Peer {
  readonly host: string;
  readonly port: number;
}

/** Whether two peers are the same address and port. */
export function samePeer(a: Peer, b: Peer): boolean {
  return a.port === b.port && a.host === b.host;
}

/** What a participant needs from its session: the seam between the two. */
export interface Link {
  readonly ssrc: number;
  readonly sessionName: string;
  /** Ms between clock exchanges once a participant is no longer young. */
  readonly syncInterval: number;
  /** The session's clock (its hub's, when attached), in ms. */
  time(): number;
  send(socket: "control" | "data", bytes: Uint8Array, to: Peer): Promise<void>;
  /** Sends MIDI on the data port; `done` runs once it is handed over. */
  sendMidi(bytes: Uint8Array, to: Peer, done: () => void): void;
  /** The peer answered a clock exchange from its data address, first time. */
  proven(participant: Participant): void;
  left(participant: Participant, cause: unknown): void;
  warn(warning: RtpMidiWarning): void;
}

const RESOLVED = Promise.resolve();
/** Messages waiting to be packed before `send` makes callers wait. */
const HIGH_WATER = 4096;
/** First guard packet after the last send, ms; each next one waits twice as long. */
const GUARD_FIRST = 100;
const GUARD_COUNT = 6;
/** Receiver feedback (RS) follows received data after this many ms. */
const FEEDBACK_DELAY = 50;
/**
 * Until the peer has first answered: clock exchanges this far apart (ms),
 * then every `SYNC_RETRY`.
 */
const SYNC_BURST = 3;
const SYNC_BURST_INTERVAL = 250;
/** A CK0 unanswered for this long is sent again (ms). */
const SYNC_RETRY = 1000;
/**
 * Clock exchanges this far apart (ms) for the first `YOUNG_MS` after the
 * peer first answered, then every `syncInterval`. The estimate of the
 * peer's clock takes each way's least delay over the newest exchanges and
 * fits the drift once they span 4 s. Simulated over Wi-Fi (4 ms +
 * exp(2 ms) each way, stalls of 20-30 ms) with a drift of 200 ppm, from
 * 2 to 10 s after joining: 50 ms apart it wanders within 0.45 ms (peak to
 * peak), 100 ms apart within 1.1 ms; later, 250 ms apart holds it within
 * 0.35 ms (500 ms apart: 1.4 ms). An exchange is three packets of 36
 * bytes: 60 packets a second for 10 s, then 12.
 */
const YOUNG_SYNC_INTERVAL = 50;
const YOUNG_MS = 10_000;
/**
 * A peer's timestamp read as a time further than this before or after
 * the packet's arrival is not believed: the packet is taken at its arrival
 * (ms).
 */
const MAX_AGE_MS = 2000;
const MAX_AHEAD_MS = 1000;
/**
 * An exchange this far from the estimate (ms): the peer's clock jumped (a
 * stall of the link shifts one by half its length at most).
 */
const JUMP_MS = 5000;
const TWO_31 = 2 ** 31;
const TWO_32 = 2 ** 32;
/**
 * A peer that invited us usually starts the clock exchange itself; if it
 * has not proved it receives this long after joining, we ask (ms).
 */
const PROBE_DELAY = 500;
/** CK0s answered before the peer has proved it receives: a cap on echoes. */
const UNPROVEN_ANSWERS = 8;
/**
 * Our timestamps remembered, to recognise an answer to them: 3.2 s of
 * exchanges 50 ms apart.
 */
const REMEMBERED = 64;
/** Repeated sequence numbers are reported this long after the first (ms). */
const REPEAT_REPORT_DELAY = 1000;
/** The longest peer name shown in a participant's name. */
const NAME_LENGTH = 64;

function randomUint32(): number {
  return crypto.getRandomValues(new Uint32Array(1))[0];
}

/** Notes a timestamp we sent and the time (ms) it stands for. */
function remember(list: number[], ticks: number, ms: number): void {
  list.push(ticks, ms);
  if (list.length > 2 * REMEMBERED) list.splice(0, 2);
}

/** The time (ms) a timestamp we sent stood for, if we sent it. */
function recall(list: number[], ticks: number): number | undefined {
  for (let i = list.length - 2; i >= 0; i -= 2) {
    if (list[i] === ticks) return list[i + 1];
  }
  return undefined;
}

/** How a participant starts. */
export interface ParticipantInit {
  peerName: string;
  ssrc: number;
  token: number;
  initiator: boolean;
  control: Peer;
  data: Peer;
  queueSize: number;
  maxSysexLength: number;
}

/**
 * One peer of a session. It joins its session (and hub) only once it has
 * proved it receives at its data address: it answered a clock exchange
 * with timestamps only a receiver of ours could know. Before that nothing
 * but session packets goes to it, and few of those.
 */
export class Participant extends InputPortBase implements RtpMidiParticipant {
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
    repeated: 0,
    repaired: 0,
    dropped: 0,
    untimed: 0,
  };
  /** Set by the session once the gate let it in. */
  admitted = false;
  readonly #link: Link;
  readonly #name: string;
  readonly #queueSize: number;
  readonly #sender: RtpMidiSender;
  readonly #receiver: RtpMidiReceiver;
  readonly #finished = Promise.withResolvers<void>();
  /**
   * Added to the session's clock in every timestamp sent to this peer
   * (CK and RTP alike): random, so that only a peer that receives what we
   * send can echo our timestamps back.
   */
  readonly #offset = randomUint32() >>> 2;
  /**
   * Our CK0 timestamps (t1) and CK1 timestamps (t2), newest last, each
   * with the time it stands for (ms, unrounded).
   */
  readonly #asked: number[] = [];
  readonly #answered: number[] = [];
  #unprovenAnswers = 0;
  /** When the peer last proved it receives (the session's clock, ms). */
  #provenAt = -Infinity;
  /** When it first did: the clock exchanges are frequent for a while. */
  #joinedAt = -Infinity;
  /** The peer's clock read against ours, from every exchange. */
  readonly #sync = new ClockSync();
  /** When the last exchange (either side's) ended, and we last asked. */
  #syncedAt = -Infinity;
  #askedAt = -Infinity;
  // Input.
  #take:
    | ((framed: Uint8Array, at?: number) => void | Promise<void>)
    | undefined;
  #end: ((cause?: unknown) => void) | undefined;
  #blocked = false;
  #backlog: Message[] = [];
  #queueFull = 0;
  // Output.
  #out: Message[] = [];
  /**
   * When the messages waiting happened, in RTP ticks: one time for all
   * (`#outTime`), or, once they differ, each one's (`#outTimes`).
   */
  #outTime = 0;
  #outTimes: number[] | undefined;
  #outBytes = 0;
  #inFlight = 0;
  #inFlightBytes = 0;
  /** Moves each time bytes leave, and when a write finds nothing waiting. */
  #progress = 0;
  #drain: PromiseWithResolvers<void> | undefined;
  #lastSend = 0;
  #sink: Sink | undefined;
  // Timers.
  #guardTimer: ReturnType<typeof setTimeout> | undefined;
  #guardDelay = GUARD_FIRST;
  #guards = 0;
  #feedbackTimer: ReturnType<typeof setTimeout> | undefined;
  #syncTimer: ReturnType<typeof setTimeout> | undefined;
  #repeatTimer: ReturnType<typeof setTimeout> | undefined;
  #repeatReported = false;
  #syncs = 0;
  #latency: number | undefined;
  #left = false;
  #cause: unknown;

  constructor(link: Link, init: ParticipantInit) {
    super(init.queueSize);
    this.#link = link;
    this.#queueSize = init.queueSize;
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
      : `${address} (${printable(init.peerName, NAME_LENGTH)})`;
    this.#sender = new RtpMidiSender({
      ssrc: link.ssrc,
      sequence: randomUint32() & 0xffff,
    });
    this.#receiver = new RtpMidiReceiver({
      maxSysexLength: init.maxSysexLength,
    });
    // The initiator runs the clock exchange; the other side asks only if
    // the peer has not proved itself a moment later.
    this.#syncTimer = setTimeout(
      this.#tick,
      this.initiator ? 0 : PROBE_DELAY,
    );
  }

  get name(): string {
    return this.#name;
  }

  get address(): Address {
    return { hostname: this.control.host, port: this.control.port };
  }

  get dataAddress(): Address {
    return { hostname: this.dataPeer.host, port: this.dataPeer.port };
  }

  get latency(): number | undefined {
    return this.#latency;
  }

  get finished(): Promise<void> {
    return this.#finished.promise;
  }

  /** Whether the peer has ever proved it receives. */
  get proven(): boolean {
    return this.#provenAt > -Infinity;
  }

  /** Whether it has left. */
  get left(): boolean {
    return this.#left;
  }

  /** Milliseconds since the peer last proved it receives. */
  silence(now: number): number {
    return now - this.#provenAt;
  }

  /** A time of the session's clock (ms) in this peer's view of it: ticks. */
  #ticks(ms: number): number {
    return Math.round(ms * 10) + this.#offset;
  }

  /** Now, in this peer's view of our clock. */
  #now(): number {
    return this.#ticks(this.#link.time());
  }

  // Receiving.

  /** Takes one RTP-MIDI datagram from the peer's data address. */
  take(bytes: Uint8Array): void {
    // The journal is read only after a loss: most packets never need it.
    const packet = decodeRtpMidi(bytes, { journal: false });
    if (this.#left) return;
    const receiver = this.#receiver;
    const result = receiver.receive(packet, bytes);
    if (result === undefined) {
      this.stats.late = receiver.late;
      return;
    }
    this.stats.packetsIn++;
    this.stats.lost = receiver.lost;
    this.stats.repaired = receiver.repaired;
    if (receiver.repeated !== this.stats.repeated) {
      this.stats.repeated = receiver.repeated;
      this.#repeatTimer ??= setTimeout(
        () => this.#reportRepeats(),
        REPEAT_REPORT_DELAY,
      );
    }
    if (this.#take === undefined || result.messages.length === 0) {
      this.#emit(result.messages, true);
    } else {
      this.#emit(
        result.messages,
        true,
        this.#when(packet.timestamp),
        result.offsets,
      );
    }
    this.stats.dropped = receiver.dropped + this.#queueFull;
    this.#feedbackTimer ??= setTimeout(() => {
      this.#feedbackTimer = undefined;
      this.#feedback();
    }, FEEDBACK_DELAY);
  }

  /**
   * When a packet's messages happened, on the session's clock: its RTP
   * timestamp read through the clock exchanges, or `undefined` (now) when
   * that cannot be read as a time near now.
   */
  #when(timestamp: number): number | undefined {
    const sync = this.#sync;
    if (!sync.synced) {
      this.stats.untimed++;
      return undefined;
    }
    const now = this.#link.time();
    // The timestamp is the low 32 bits of the peer's clock: the time
    // nearest to the peer's now that has them.
    const expected = sync.toRemote(now) * 10;
    let d = timestamp - (((expected % TWO_32) + TWO_32) % TWO_32);
    if (d >= TWO_31) d -= TWO_32;
    else if (d < -TWO_31) d += TWO_32;
    const at = sync.toLocal((expected + d) / 10);
    if (!(at > now - MAX_AGE_MS && at < now + MAX_AHEAD_MS)) {
      this.stats.untimed++;
      return undefined;
    }
    return at;
  }

  /**
   * Hands messages to the hub (at `at`, and each `offsets[i]` ticks
   * later), or queues them for a reader.
   */
  #emit(
    messages: Message[],
    arriving: boolean,
    at?: number,
    offsets?: number[],
  ): void {
    if (messages.length === 0) return;
    const take = this.#take;
    if (take !== undefined && !this.#blocked) {
      if (offsets !== undefined && at !== undefined) {
        // Messages at different times go to the hub apart, in order.
        let from = 0;
        for (let i = 1; i <= messages.length; i++) {
          if (i < messages.length && offsets[i] === offsets[from]) continue;
          this.#emit(
            messages.slice(from, i),
            arriving,
            at + offsets[from] / 10,
          );
          from = i;
        }
        return;
      }
      if (arriving) this.stats.received += messages.length;
      const wait = take(encodeFramed(messages), at);
      if (wait !== undefined) {
        // The hub waits for a reader: hold what comes meanwhile (bounded;
        // UDP cannot make the peer wait).
        this.#blocked = true;
        const resume = () => {
          this.#blocked = false;
          const backlog = this.#backlog;
          this.#backlog = [];
          if (!this.#left) this.#emit(backlog, false);
        };
        wait.then(resume, resume);
      }
      return;
    }
    for (const msg of messages) {
      const kept = take === undefined
        ? this.deliver(msg)
        : this.#backlog.length < this.#queueSize && !!this.#backlog.push(msg);
      if (kept) {
        if (arriving) this.stats.received++;
      } else if (!this.closed) {
        this.#queueFull++;
      }
    }
  }

  /**
   * What a hub reads from: the input as framed bytes, in place of the
   * queue (messages queued already go first).
   */
  get [SOURCE](): Source {
    return {
      attach: (take, end) => {
        if (this.#take !== undefined) {
          throw new Error(`The input of ${this.#name} is taken already`);
        }
        const queued = [...this.iterPending()];
        this.#take = take;
        this.#end = end;
        this.#emit(queued, false);
        if (this.#left) {
          this.#end = undefined;
          end(this.#cause);
        }
      },
    };
  }

  #feedback(): void {
    const sequence = this.#receiver.sequence;
    // Nothing but the clock exchange goes to a peer not proved yet.
    if (this.#left || !this.proven || sequence < 0) return;
    void this.#link.send(
      "control",
      encodeSessionPacket({ command: "RS", ssrc: this.#link.ssrc, sequence }),
      this.control,
    );
  }

  /** Receiver feedback from the peer: what it has of ours. */
  feedback(sequence: number): void {
    this.#sender.feedback(sequence);
  }

  #reportRepeats(): void {
    clearTimeout(this.#repeatTimer);
    if (this.#repeatReported) return;
    this.#repeatReported = true;
    const count = this.stats.repeated;
    this.#link.warn({
      code: "repeated-sequence",
      participant: this,
      count,
      message: `RTP-MIDI participant ${this.#name} repeats sequence numbers ` +
        `(${count} packet${count === 1 ? "" : "s"} so far): its packets are ` +
        "taken as they come, not dropped as duplicates",
    });
  }

  // Clock synchronisation, and proof that the peer receives.

  /**
   * Sends CK0 when due. Until the peer first answers: the initiator asks
   * a few times 250 ms apart, then every second; for a peer that invited
   * us (and runs the exchange itself) we ask only if it has not proved
   * itself a moment later, and less and less often (it may be a forged
   * address). Then every exchange, whichever side starts it, maps the
   * peer's clock: the initiator asks every 50 ms for the first 10 s,
   * then every `syncInterval`; the other side asks only when the peer's
   * own exchanges come less often than that (half as long again), as
   * Apple's do (every 10 s or so).
   */
  readonly #tick = (): void => {
    this.#syncTimer = undefined;
    if (this.#left) return;
    const now = this.#link.time();
    let wait: number;
    if (!this.proven) {
      this.#ask(now);
      wait = !this.initiator
        ? PROBE_DELAY * 2 ** this.#syncs
        : this.#syncs < SYNC_BURST
        ? SYNC_BURST_INTERVAL
        : SYNC_RETRY;
    } else {
      const interval = this.#interval(now);
      if (this.initiator) {
        this.#ask(now);
        wait = interval;
      } else {
        const due = interval * 1.5;
        const since = now - this.#syncedAt;
        if (since >= due) {
          this.#ask(now);
          wait = due;
        } else {
          wait = due - since;
        }
      }
      // An exchange unanswered for long is asked again soon.
      if (now - this.#syncedAt > SYNC_RETRY) wait = Math.min(wait, SYNC_RETRY);
    }
    this.#syncTimer = setTimeout(this.#tick, wait);
  };

  /** How far apart clock exchanges are now. */
  #interval(now: number): number {
    return now - this.#joinedAt < YOUNG_MS
      ? YOUNG_SYNC_INTERVAL
      : this.#link.syncInterval;
  }

  /** Sends CK0. */
  #ask(now: number): void {
    const t1 = this.#ticks(now);
    remember(this.#asked, t1, now);
    this.#ck(0, [t1, 0, 0]);
    this.#askedAt = now;
    this.#syncs++;
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

  /**
   * A CK from the peer's data address. An answer that carries one of our
   * timestamps proves the peer receives there, and is one more reading of
   * its clock against ours: a CK1 answers our CK0, a CK2 our CK1.
   *
   * @returns Whether it was taken (not an answer to nothing we sent).
   */
  clock(packet: SyncPacket): boolean {
    if (this.#left) return false;
    const now = this.#link.time();
    const [t1, t2, t3] = packet.timestamps;
    switch (packet.count) {
      case 0: {
        if (!this.proven && ++this.#unprovenAnswers > UNPROVEN_ANSWERS) {
          return false;
        }
        const mine = this.#ticks(now);
        remember(this.#answered, mine, now);
        this.#ck(1, [t1, mine, 0]);
        return true;
      }
      case 1: {
        // Our CK0 came back: close the exchange.
        const asked = recall(this.#asked, t1);
        if (asked === undefined) return false;
        this.#ck(2, [t1, t2, this.#ticks(now)]);
        this.#sample(asked, t2, now);
        this.#prove(now);
        return true;
      }
      case 2: {
        const answered = recall(this.#answered, t2);
        if (answered === undefined) return false;
        this.#sample(answered, t3, now);
        this.#prove(now);
        return true;
      }
    }
  }

  /** The session's clock changed: what was read against the old is void. */
  clockChanged(): void {
    this.#sync.reset();
    this.#asked.length = 0;
    this.#answered.length = 0;
    this.#syncedAt = -Infinity;
  }

  /**
   * One exchange: we sent at `sent` (ms), the peer answered at `remote`
   * (its ticks), the answer came `now`.
   */
  #sample(sent: number, remote: number, now: number): void {
    const there = remote / 10;
    const sync = this.#sync;
    if (
      sync.synced &&
      Math.abs(there - (sent + now) / 2 - sync.offsetAt((sent + now) / 2)) >
        JUMP_MS
    ) {
      // The peer's clock jumped (it started again): start over.
      sync.reset();
    }
    if (sync.add({ t1: sent, t2: there, t3: there, t4: now })) {
      this.#syncedAt = now;
      this.#latency = (now - sent) / 2;
    }
  }

  #prove(now: number): void {
    const first = !this.proven;
    this.#provenAt = now;
    if (!first || this.#left) return;
    this.#joinedAt = now;
    // From now on, the clock exchanges of a participant.
    clearTimeout(this.#syncTimer);
    this.#syncTimer = setTimeout(
      this.#tick,
      YOUNG_SYNC_INTERVAL * (this.initiator ? 1 : 1.5),
    );
    this.#link.proven(this);
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
    this.#queue([msg], encodedLength(msg), this.#link.time());
    if (this.#out.length < HIGH_WATER) return RESOLVED;
    return this.#drained();
  }

  /**
   * What the hub writes to: its batches, queued without a promise. It is
   * timed: each batch goes at once, with its time as the RTP timestamp
   * (the peer plays it out).
   */
  get [SINK](): Sink {
    return this.#sink ??= this.#makeSink();
  }

  #makeSink(): Sink {
    // deno-lint-ignore no-this-alias
    const self = this;
    return {
      write: (batch: Batch): boolean => {
        if (this.#left) return false;
        if (this.#outBytes + this.#inFlightBytes === 0) this.#progress++;
        this.#queue(
          batch.messages,
          batch.bytes.length,
          batch.at ?? this.#link.time(),
        );
        return true;
      },
      get queuedBytes() {
        return self.#outBytes + self.#inFlightBytes;
      },
      get copiedBytes() {
        return self.#outBytes;
      },
      get progress() {
        return self.#progress;
      },
      slow: "drop",
      drained: () => this.#drained(),
      timed: true,
    };
  }

  #drained(): Promise<void> {
    if (this.#out.length < HIGH_WATER || this.#left) return RESOLVED;
    this.#drain ??= Promise.withResolvers<void>();
    return this.#drain.promise;
  }

  /** Queues messages that happened at `at` (ms) to go to the peer. */
  #queue(messages: readonly Message[], bytes: number, at: number): void {
    const out = this.#out;
    const time = this.#ticks(at) >>> 0;
    if (out.length === 0) this.#outTime = time;
    else if (this.#outTimes !== undefined || time !== this.#outTime) {
      this.#outTimes ??= new Array<number>(out.length).fill(this.#outTime);
      for (let i = 0; i < messages.length; i++) this.#outTimes.push(time);
    }
    for (const msg of messages) out.push(msg);
    this.#outBytes += bytes;
    if (this.#inFlight === 0) this.#flush();
  }

  #flush(): void {
    const messages = this.#out;
    const times = this.#outTimes ?? this.#outTime;
    this.#out = [];
    this.#outTimes = undefined;
    this.#outBytes = 0;
    const packets = this.#sender.packets(messages, times);
    this.stats.sent += messages.length;
    this.#transmit(packets);
    this.#lastSend = this.#link.time();
    this.#guardDelay = GUARD_FIRST;
    this.#guards = 0;
    this.#guardTimer ??= setTimeout(() => this.#guard(), GUARD_FIRST);
  }

  #transmit(packets: Uint8Array[]): void {
    for (const bytes of packets) {
      this.#inFlight++;
      this.#inFlightBytes += bytes.length;
      this.stats.packetsOut++;
      this.#link.sendMidi(bytes, this.dataPeer, () => this.#sent(bytes.length));
    }
  }

  /** A packet went out: once all have, send what queued meanwhile. */
  #sent(length: number): void {
    this.#inFlightBytes -= length;
    this.#progress++;
    if (--this.#inFlight > 0) return;
    if (this.#out.length > 0 && !this.#left) this.#flush();
    if (this.#out.length < HIGH_WATER && this.#drain) {
      this.#drain.resolve();
      this.#drain = undefined;
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
    const quiet = this.#link.time() - this.#lastSend;
    if (quiet < this.#guardDelay) {
      this.#guardTimer = setTimeout(
        () => this.#guard(),
        this.#guardDelay - quiet,
      );
      return;
    }
    if (this.#guards >= GUARD_COUNT) return;
    this.#guards++;
    this.#transmit([this.#sender.guard(this.#now())]);
    this.#lastSend = this.#link.time();
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
    if (this.#repeatTimer !== undefined) this.#reportRepeats();
    this.#left = true;
    this.#cause = cause;
    for (const timer of [this.#guardTimer, this.#feedbackTimer]) {
      clearTimeout(timer);
    }
    clearTimeout(this.#syncTimer);
    this.#out = [];
    this.#outTimes = undefined;
    this.#outBytes = 0;
    this.#backlog = [];
    this.#drain?.resolve();
    this.#drain = undefined;
    this.finish(cause, discard);
    const end = this.#end;
    this.#end = undefined;
    end?.(cause);
    this.#link.left(this, cause);
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
