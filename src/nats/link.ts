/**
 * Hubs federated over NATS: a {@linkcode NatsLink} is one endpoint of a hub
 * that stands for every other hub of the same room, on any machine that
 * reaches the same NATS server or cluster.
 *
 * What a hub's endpoints send goes out to the room's subject, several
 * messages to a NATS message under bursts; what other hubs send comes in as
 * the link's input, each hub's messages in its order, never a hub's own.
 * Hubs announce themselves on a heartbeat subject; when one is gone (3
 * missed beats, or its goodbye), the link ends every note it left on.
 *
 * The NATS client (`npm:@nats-io/transport-node`) is loaded only when a
 * link is made: importing this module costs nothing and needs no
 * permission. A link needs `--allow-net` to the NATS servers, and
 * `--allow-read` for a creds file or TLS files.
 *
 * @module
 */

import { encodedLength, encodeInto } from "../codec/encode.ts";
import { checkMessage, type Message, type NoteOff } from "../codec/messages.ts";
import { checkMessages } from "../codec/_check.ts";
import { PortClosedError } from "../errors.ts";
import { callBack } from "../_call.ts";
import { NoteTracker } from "../notes.ts";
import {
  InputPortBase,
  type IOPort,
  PANIC_MESSAGES,
  RESET_MESSAGES,
} from "../port.ts";
import {
  type ClientSettings,
  connectNats,
  type NatsClient,
  type NatsConnection,
  type NextTurn,
  parseNatsUrls,
  type TlsMaterial,
} from "./_client.ts";
import {
  encodeBeat,
  encodeBye,
  encodeMidiFrame,
  FrameReader,
  idToHex,
  KIND_MIDI,
  MAX_FRAME_MESSAGES,
  MAX_INTERVAL,
  MIDI_HEADER_SIZE,
  MIN_INTERVAL,
  nameBytes,
  randomId,
  writeCount,
  writeHeader,
} from "./_frame.ts";
import { type LeaveReason, type Remote, Room } from "./_room.ts";

export type { LeaveReason, RemoteHub } from "./_room.ts";
import type { RemoteHub } from "./_room.ts";

/** Files for TLS to the NATS servers, in PEM. */
export interface NatsTlsOptions {
  /**
   * The certificate authority that signed the servers' certificates.
   * @default {the system's trusted authorities}
   */
  caFile?: string;
  /**
   * This hub's certificate, for servers that verify clients (with `keyFile`).
   * @default {none}
   */
  certFile?: string;
  /**
   * The private key of `certFile`.
   * @default {none}
   */
  keyFile?: string;
}

/** Options for {@linkcode NatsLink.connect}. */
export interface NatsLinkOptions {
  /**
   * The room: hubs in the same room share their traffic. Letters, digits,
   * `_` and `-`, at most 64.
   */
  room: string;
  /**
   * The name this hub announces to the others.
   * @default {"hub-" and the first 6 digits of its id}
   */
  name?: string;
  /**
   * First token of every subject: MIDI goes on `PREFIX.room.ROOM`,
   * heartbeats on `PREFIX.presence.ROOM`. Letters, digits, `_` and `-`.
   * @default {"midisock"}
   */
  subjectPrefix?: string;
  /**
   * Heartbeat interval, in ms (10-60000).
   * @default {250}
   */
  heartbeat?: number;
  /**
   * How many beats a hub may miss before it counts as gone.
   * @default {3}
   */
  missedBeats?: number;
  /**
   * User name (with `pass`); a URL's `user:password@` does the same.
   * @default {none}
   */
  user?: string;
  /**
   * Password of `user`.
   * @default {none}
   */
  pass?: string;
  /**
   * Token; a URL's `token@` does the same.
   * @default {none}
   */
  token?: string;
  /**
   * A NATS creds file (user JWT and nkey seed, as `nsc` writes them).
   * @default {none}
   */
  credsFile?: string;
  /**
   * TLS: `true` requires it (the system's authorities), an object names
   * files; a `tls://` URL requires it too. Otherwise TLS is used when the
   * server offers it.
   * @default {false}
   */
  tls?: boolean | NatsTlsOptions;
  /**
   * Wait between reconnection attempts, in ms (up to 100 ms of jitter is
   * added).
   * @default {250}
   */
  reconnectWait?: number;
  /**
   * How long the first connection may take, in ms.
   * @default {5000}
   */
  connectTimeout?: number;
  /**
   * Interval of the client's pings, in ms: two unanswered pings mean the
   * connection is dead even if TCP did not say so.
   * @default {2000}
   */
  pingInterval?: number;
  /**
   * Largest NATS message the link publishes, in bytes: a burst longer than
   * this is cut into several (a single longer sysex goes alone).
   * @default {8192}
   */
  maxFrameBytes?: number;
  /**
   * Received messages waiting for the hub, at most; past it they are
   * counted in `stats.overflowed` and dropped.
   * @default {65536}
   */
  queueSize?: number;
  /**
   * Called for each event: another hub joined or left, the link to NATS
   * went down or came back, or the client gave up. An error it throws is
   * reported, never stops the link.
   * @default {none}
   */
  onEvent?: (event: NatsLinkEvent) => void;
}

/** Something that happened to a link; {@linkcode formatNatsLinkEvent} words it. */
export type NatsLinkEvent =
  | {
    /** Another hub announced itself in the room. */
    readonly type: "joined";
    readonly hub: RemoteHub;
  }
  | {
    /** Another hub is gone: it said goodbye, or missed its beats. */
    readonly type: "left";
    readonly hub: RemoteHub;
    readonly reason: LeaveReason;
    /** How many notes it left on were ended (note_off delivered). */
    readonly released: number;
  }
  | {
    /** The connection to NATS broke; the client reconnects by itself. */
    readonly type: "disconnected";
    readonly server: string;
  }
  | {
    /** The connection to NATS is back. */
    readonly type: "reconnected";
    readonly server: string;
  }
  | {
    /** The client gave up (credentials refused on reconnect, say): the link is closed. */
    readonly type: "failed";
    readonly error?: Error;
  };

/** Counts of a link, from its start. */
export interface NatsLinkStats {
  /** MIDI messages published. */
  sent: number;
  /** NATS messages of MIDI published. */
  framesSent: number;
  /** MIDI messages not published: NATS was down, or a message was longer than the server's `max_payload`. */
  unsent: number;
  /** MIDI messages delivered from other hubs. */
  received: number;
  /** NATS messages read from the room's subjects. */
  framesReceived: number;
  /** Payloads refused: foreign or malformed, never delivered in part. */
  dropped: number;
  /** Frames that came too late: repeated, older, or from a hub that said goodbye. */
  late: number;
  /** Frames of other hubs that never came (NATS delivers at most once). */
  gaps: number;
  /** Received messages dropped because the input queue was full. */
  overflowed: number;
  /** note_off messages delivered for hubs that left. */
  released: number;
}

/**
 * Thrown by {@linkcode NatsLink.connect} when NATS cannot be joined: no
 * server answers, the credentials are refused, TLS fails, or a creds or TLS
 * file cannot be read.
 *
 * @example Telling a NATS failure apart
 * ```ts
 * import assert from "node:assert/strict";
 * import { NatsLinkError } from "@x/midisock";
 *
 * const error: Error = new NatsLinkError("nats://127.0.0.1:4222", "Authorization Violation");
 * assert.ok(error instanceof NatsLinkError);
 * assert.equal(error.message, "Cannot join NATS at nats://127.0.0.1:4222: Authorization Violation");
 * ```
 */
export class NatsLinkError extends Error {
  /** The server URLs, with any password or token masked. */
  readonly url: string;

  /**
   * Makes the error.
   *
   * @param url The URLs, masked.
   * @param reason What went wrong, for people.
   * @param options `cause`: the client's error.
   */
  constructor(url: string, reason: string, options?: ErrorOptions) {
    super(`Cannot join NATS at ${url}: ${reason}`, options);
    this.name = "NatsLinkError";
    this.url = url;
  }
}

const TOKEN = /^[A-Za-z0-9_-]{1,64}$/;
const HIGH_WATER = 1 << 18;
const DONE: Promise<void> = Promise.resolve();
const CLOSE_FLUSH_MS = 1000;

interface Settings {
  room: string;
  name: string;
  dataSubject: string;
  presenceSubject: string;
  heartbeat: number;
  missedBeats: number;
  maxFrameBytes: number;
  onEvent?: (event: NatsLinkEvent) => void;
}

function integer(
  name: string,
  value: number | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  const n = value ?? fallback;
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new (typeof n === "number" ? RangeError : TypeError)(
      `${name} must be an integer in ${min}..${max}: got ${value}`,
    );
  }
  return n;
}

function token(name: string, value: unknown): string {
  if (typeof value !== "string" || !TOKEN.test(value)) {
    throw new (typeof value === "string" ? RangeError : TypeError)(
      `${name} must be 1-64 letters, digits, _ or -: got ${
        JSON.stringify(value)
      }`,
    );
  }
  return value;
}

function optionalString(name: string, value: unknown): string | undefined {
  if (value !== undefined && typeof value !== "string") {
    throw new TypeError(`${name} must be a string: got ${typeof value}`);
  }
  return value;
}

/** Reads a file for the client, or fails the way `connect` fails. */
async function readFile(
  url: string,
  what: string,
  path: string,
): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (error) {
    throw new NatsLinkError(
      url,
      `cannot read the ${what} ${path}: ${(error as Error).message}`,
      { cause: error },
    );
  }
}

/** Says why the client could not connect, in one line. */
function describeFailure(
  error: unknown,
  client: ClientSettings,
): string {
  if (!(error instanceof Error)) return String(error);
  const name = error.name;
  const text = error.message.split("\n")[0];
  if (name === "AuthorizationError" || /authoriz/i.test(text)) {
    return `the server refused the credentials (${text})`;
  }
  if (name === "PermissionViolationError") {
    return `the server does not allow this user on the room's subjects (${text})`;
  }
  if (name === "TimeoutError") {
    const tls = client.tls === undefined
      ? ""
      : " (a server that verifies clients drops one without a certificate: see tls.certFile)";
    return `no answer within ${client.connectTimeout} ms${tls}`;
  }
  const cause = error.cause instanceof Error
    ? `: ${error.cause.message.split("\n")[0]}`
    : "";
  return `${text}${cause}`;
}

/**
 * One endpoint of a hub that links it with the other hubs of a room over
 * NATS. Make it with {@linkcode NatsLink.connect}.
 *
 * - `send(msg)`: a message from a local endpoint. It is published on the
 *   room's subject; messages sent in one burst (before the event loop
 *   turns) share one NATS message, so an idle link adds no delay and a
 *   busy one publishes few, large messages.
 * - input (`for await`, `receive()`, ...): what the other hubs' endpoints
 *   sent, each hub's messages in its order, whole messages only, never this
 *   hub's own. When a hub leaves (goodbye, or `missedBeats` beats missed),
 *   a note_off comes for each note it left on.
 * - While NATS is unreachable the link stays open: `send` drops messages
 *   (counted in `stats.unsent`), the client reconnects by itself, and
 *   `onEvent` hears `disconnected` then `reconnected`. On reconnecting, the
 *   link first ends the notes it had published as on (their note_off may
 *   have been lost).
 *
 * The frame format (a version byte, the origin hub's id, a sequence number
 * per origin, then the MIDI bytes) is described in the package's
 * `docs/scaling-out.md`.
 *
 * @example Two hubs in one room
 * ```ts ignore
 * import { message, NatsLink } from "@x/midisock";
 *
 * await using a = await NatsLink.connect("nats://127.0.0.1:4222", { room: "studio" });
 * await using b = await NatsLink.connect("nats://127.0.0.1:4222", { room: "studio" });
 * await a.send(message("note_on", { note: 60 }));
 * console.log(await b.receive()); // { type: "note_on", channel: 0, note: 60, velocity: 64, time: 0 }
 * ```
 */
export class NatsLink extends InputPortBase implements IOPort {
  readonly #nc: NatsConnection;
  readonly #settings: Settings;
  readonly #display: string;
  readonly #id: Uint8Array;
  readonly #idHex: string;
  readonly #reader = new FrameReader();
  readonly #room: Room;
  readonly #published = new NoteTracker();
  readonly #stats: NatsLinkStats = {
    sent: 0,
    framesSent: 0,
    unsent: 0,
    received: 0,
    framesReceived: 0,
    dropped: 0,
    late: 0,
    gaps: 0,
    overflowed: 0,
    released: 0,
  };
  #connected = true;
  #server: string;
  #seq = 0;
  #batch: Uint8Array;
  #batchLength = MIDI_HEADER_SIZE;
  #batchCount = 0;
  readonly #nextTurn: NextTurn;
  #flushQueued = false;
  #busy = false;
  #cancelTurn: (() => void) | undefined;
  #unflushed = 0;
  #flushing: Promise<void> | undefined;
  #owed: NoteOff[] = [];
  #paying = false;
  #beatTimer: ReturnType<typeof setInterval> | undefined;
  #sweepTimer: ReturnType<typeof setInterval> | undefined;
  #watching: Promise<void> | undefined;
  /** A permission the server refused, as the link started. */
  #denied: Error | undefined;
  #closing: Promise<void> | undefined;

  /**
   * Joins a room: connects to NATS, subscribes to the room's subjects and
   * announces this hub.
   *
   * @param url The server: `nats://host:port`, with `user:password@` or
   * `token@` before the host if the server wants them, `tls://` to require
   * TLS; several servers of a cluster as an array or separated by commas.
   * @param options The room, name, credentials, TLS, timings and events.
   * @returns A promise of the link.
   * @throws {SyntaxError} For a URL that does not parse.
   * @throws {TypeError | RangeError} For a bad option.
   * @throws {NatsLinkError} When NATS cannot be joined (no server, refused
   * credentials, TLS failure, unreadable creds or TLS file).
   *
   * @example Joining a room with a user and password
   * ```ts ignore
   * import { NatsLink } from "@x/midisock";
   *
   * await using link = await NatsLink.connect("nats://hub:secret@nats.local:4222", {
   *   room: "classroom-3",
   *   name: "teacher",
   *   onEvent: (event) => console.log(event.type),
   * });
   * ```
   */
  static async connect(
    url: string | readonly string[],
    options: NatsLinkOptions,
  ): Promise<NatsLink> {
    if (typeof options !== "object" || options === null) {
      throw new TypeError(
        `NatsLink options must be an object with a room: got ${options}`,
      );
    }
    const urls = parseNatsUrls(url);
    const room = token("room", options.room);
    const prefix = token(
      "subjectPrefix",
      options.subjectPrefix ?? "midisock",
    );
    const id = randomId();
    const name = optionalString("name", options.name) ??
      `hub-${idToHex(id).slice(0, 6)}`;
    const settings: Settings = {
      room,
      name,
      dataSubject: `${prefix}.room.${room}`,
      presenceSubject: `${prefix}.presence.${room}`,
      heartbeat: integer(
        "heartbeat",
        options.heartbeat,
        250,
        MIN_INTERVAL,
        MAX_INTERVAL,
      ),
      missedBeats: integer("missedBeats", options.missedBeats, 3, 1, 1000),
      maxFrameBytes: integer(
        "maxFrameBytes",
        options.maxFrameBytes,
        8192,
        64,
        1 << 20,
      ),
      onEvent: options.onEvent,
    };
    if (
      options.onEvent !== undefined && typeof options.onEvent !== "function"
    ) {
      throw new TypeError(
        `onEvent must be a function: got ${typeof options.onEvent}`,
      );
    }
    const queueSize = integer(
      "queueSize",
      options.queueSize,
      65536,
      1,
      1 << 24,
    );
    const client: ClientSettings = {
      urls,
      name: `midisock ${name}`,
      user: optionalString("user", options.user),
      pass: optionalString("pass", options.pass),
      token: optionalString("token", options.token),
      reconnectWait: integer(
        "reconnectWait",
        options.reconnectWait,
        250,
        1,
        600_000,
      ),
      connectTimeout: integer(
        "connectTimeout",
        options.connectTimeout,
        5000,
        1,
        600_000,
      ),
      pingInterval: integer(
        "pingInterval",
        options.pingInterval,
        2000,
        10,
        3_600_000,
      ),
    };
    const credsFile = optionalString("credsFile", options.credsFile);
    const tls = options.tls;
    if (
      tls !== undefined && typeof tls !== "boolean" &&
      (typeof tls !== "object" || tls === null)
    ) {
      throw new TypeError(
        `tls must be a boolean or { caFile, certFile, keyFile }: got ${tls}`,
      );
    }
    const files = typeof tls === "object" ? tls : {};
    const caFile = optionalString("tls.caFile", files.caFile);
    const certFile = optionalString("tls.certFile", files.certFile);
    const keyFile = optionalString("tls.keyFile", files.keyFile);
    if ((certFile === undefined) !== (keyFile === undefined)) {
      throw new TypeError("tls.certFile and tls.keyFile go together");
    }
    const text = new TextDecoder();
    if (credsFile !== undefined) {
      client.creds = await readFile(urls.display, "creds file", credsFile);
    }
    if (tls !== undefined && tls !== false) {
      const material: TlsMaterial = {};
      if (caFile !== undefined) {
        material.ca = text.decode(
          await readFile(urls.display, "CA file", caFile),
        );
      }
      if (certFile !== undefined && keyFile !== undefined) {
        material.cert = text.decode(
          await readFile(urls.display, "certificate file", certFile),
        );
        material.key = text.decode(
          await readFile(urls.display, "key file", keyFile),
        );
      }
      client.tls = material;
    }
    let nc: NatsClient;
    try {
      nc = await connectNats(client);
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable) throw error;
      throw new NatsLinkError(urls.display, describeFailure(error, client), {
        cause: error,
      });
    }
    const link = new NatsLink(nc, settings, urls.display, id, queueSize);
    try {
      await link.#start();
    } catch (error) {
      await link.close();
      throw new NatsLinkError(urls.display, describeFailure(error, client), {
        cause: error,
      });
    }
    return link;
  }

  private constructor(
    { nc, nextTurn }: NatsClient,
    settings: Settings,
    display: string,
    id: Uint8Array,
    queueSize: number,
  ) {
    super(queueSize);
    this.#nc = nc;
    this.#nextTurn = nextTurn;
    this.#settings = settings;
    this.#display = display;
    this.#id = id;
    this.#idHex = idToHex(id);
    this.#server = nc.getServer();
    // A batch never outgrows what the server takes in one message.
    const limit = nc.info?.max_payload ?? settings.maxFrameBytes;
    this.#batch = new Uint8Array(
      Math.max(MIDI_HEADER_SIZE + 3, Math.min(settings.maxFrameBytes, limit)),
    );
    this.#room = new Room(
      this.#idHex,
      settings.heartbeat,
      settings.missedBeats,
      {
        deliver: (from, messages) => this.#deliverFrom(from, messages),
        joined: (remote) => {
          // Answer a newcomer at once, so it need not wait for our beat.
          this.#beat();
          this.#emit({ type: "joined", hub: remote.hub });
        },
        left: (remote, reason, notes) => this.#left(remote, reason, notes),
      },
    );
  }

  async #start(): Promise<void> {
    const nc = this.#nc;
    const { dataSubject, presenceSubject, heartbeat } = this.#settings;
    const onFrame =
      (kind: "data" | "presence") =>
      (error: Error | null, msg: { data: Uint8Array }): void => {
        if (error !== null) {
          this.#denied ??= error;
          return;
        }
        const frame = this.#reader.read(msg.data);
        const fits = frame === undefined ||
          (frame.kind === KIND_MIDI) === (kind === "data");
        this.#room.receive(fits ? frame : undefined, performance.now());
      };
    nc.subscribe(dataSubject, { callback: onFrame("data") });
    nc.subscribe(presenceSubject, { callback: onFrame("presence") });
    this.#watching = this.#watch();
    this.#beat();
    await nc.flush();
    // The server answers a refused subscription or publication before the
    // flush's pong; its status event reaches #watch a few microtasks later.
    await new Promise<void>((resolve) => this.#nextTurn(resolve));
    if (this.#denied !== undefined) throw this.#denied;
    this.#beatTimer = setInterval(() => this.#beat(), heartbeat);
    const sweepEvery = Math.max(5, Math.floor(heartbeat / 10));
    this.#sweepTimer = setInterval(
      () => this.#room.sweep(performance.now()),
      sweepEvery,
    );
  }

  async #watch(): Promise<void> {
    const nc = this.#nc;
    const closed = nc.closed().then((error) => {
      if (this.#closing === undefined) this.#fail(error ?? undefined);
    });
    for await (const status of nc.status()) {
      if (this.#closing !== undefined) break;
      if (status.type === "error") {
        if (status.error.name === "PermissionViolationError") {
          this.#denied ??= status.error;
        }
      } else if (status.type === "disconnect") {
        if (!this.#connected) continue;
        this.#connected = false;
        this.#stats.unsent += this.#batchCount;
        this.#resetBatch();
        // Nothing is published while down: no backpressure to wait for.
        this.#unflushed = 0;
        this.#emit({ type: "disconnected", server: status.server });
      } else if (status.type === "reconnect") {
        if (this.#connected) continue;
        this.#server = status.server;
        this.#connected = true;
        this.#beat();
        // A note_off sent while down was lost: end what others may still
        // hold of ours.
        const ends = this.#published.release();
        if (ends.length > 0) this.sendAll(ends).catch(() => {});
        this.#emit({ type: "reconnected", server: status.server });
      }
    }
    await closed;
  }

  #fail(error: Error | undefined): void {
    if (this.#closing !== undefined || this.closed) return;
    this.#stopTimers();
    this.#connected = false;
    this.finish(error);
    this.#emit({ type: "failed", error });
  }

  #emit(event: NatsLinkEvent): void {
    callBack(this.#settings.onEvent, event);
  }

  /** `nats://host:port/ROOM`: the servers (credentials masked) and the room. */
  get name(): string {
    return `${this.#display}/${this.#settings.room}`;
  }

  /** The server URL or URLs, with any password or token masked. */
  get url(): string {
    return this.#display;
  }

  /** The room. */
  get room(): string {
    return this.#settings.room;
  }

  /** This hub's id in the room: 16 hex digits, random for each link. */
  get id(): string {
    return this.#idHex;
  }

  /** The name this hub announces. */
  get hubName(): string {
    return this.#settings.name;
  }

  /** Whether the connection to NATS is up now. */
  get connected(): boolean {
    return this.#connected && !this.closed;
  }

  /** `host:port` of the NATS server the link is (or was last) connected to. */
  get server(): string {
    return this.#server;
  }

  /** The other hubs of the room that announced themselves and are here now. */
  get remotes(): RemoteHub[] {
    return this.#room.hubs;
  }

  /** Payloads refused as foreign or malformed: `stats.dropped`. */
  get dropped(): number {
    return this.#room.counts.dropped;
  }

  /** A snapshot of the link's counts. */
  get stats(): NatsLinkStats {
    const counts = this.#room.counts;
    return {
      ...this.#stats,
      framesReceived: counts.frames,
      dropped: counts.dropped,
      late: counts.late,
      gaps: counts.gaps,
    };
  }

  #deliverFrom(from: Remote, messages: Message[]): void {
    const notes = from.notes;
    for (const msg of messages) {
      if (this.deliver(msg)) {
        notes.track(msg);
        this.#stats.received++;
      } else if (!this.closed) {
        this.#stats.overflowed++;
      }
    }
  }

  #left(remote: Remote, reason: LeaveReason, notes: NoteOff[]): void {
    this.#stats.released += notes.length;
    this.#owed.push(...notes);
    this.#payOwed();
    if (remote.announced) {
      this.#emit({
        type: "left",
        hub: remote.hub,
        reason,
        released: notes.length,
      });
    }
  }

  /** Delivers the owed note_off messages, waiting for room if need be. */
  #payOwed(): void {
    while (this.#owed.length > 0 && !this.#paying) {
      if (this.closed) {
        this.#owed = [];
        return;
      }
      if (this.deliver(this.#owed[0])) {
        this.#owed.shift();
        continue;
      }
      this.#paying = true;
      this.roomForMore().then(() => {
        this.#paying = false;
        this.#payOwed();
      });
    }
  }

  #beat(): void {
    if (!this.#connected || this.closed) return;
    const { heartbeat, name } = this.#settings;
    this.#publish(
      this.#settings.presenceSubject,
      encodeBeat(this.#id, this.#seq, heartbeat, nameBytes(name)),
    );
  }

  #publish(subject: string, payload: Uint8Array): boolean {
    try {
      this.#nc.publish(subject, payload);
    } catch {
      return false;
    }
    this.#unflushed += payload.length;
    return true;
  }

  /**
   * Publishes one message from a local endpoint (see the class doc for
   * batching and what happens while NATS is down).
   *
   * @param msg The message.
   * @returns A promise that resolves at once, or once the NATS client has
   * written out a backlog of 256 KiB (backpressure).
   * @throws {TypeError | RangeError} For a malformed message.
   * @throws {PortClosedError} When the link is closed.
   */
  send(msg: Message): Promise<void> {
    try {
      checkMessage(msg);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#closing !== undefined || this.closed) {
      return Promise.reject(new PortClosedError(this.name));
    }
    this.#add(msg);
    return this.#pace();
  }

  /**
   * Publishes several messages, in order, checked first.
   *
   * @param messages The messages.
   * @returns A promise, as `send` gives.
   * @throws {TypeError | RangeError} For a malformed message (none is sent).
   * @throws {PortClosedError} When the link is closed.
   */
  sendAll(messages: Iterable<Message>): Promise<void> {
    let list: Message[];
    try {
      list = checkMessages(messages);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#closing !== undefined || this.closed) {
      return Promise.reject(new PortClosedError(this.name));
    }
    for (const msg of list) this.#add(msg);
    return this.#pace();
  }

  #add(msg: Message): void {
    if (!this.#connected) {
      this.#stats.unsent++;
      return;
    }
    const size = encodedLength(msg);
    if (
      this.#batchLength + size > this.#batch.length ||
      this.#batchCount === MAX_FRAME_MESSAGES
    ) {
      this.#flush();
    }
    if (MIDI_HEADER_SIZE + size > this.#batch.length) {
      this.#publishAlone(msg);
      return;
    }
    this.#batchLength = encodeInto(msg, this.#batch, this.#batchLength);
    this.#batchCount++;
    this.#published.track(msg);
    this.#stats.sent++;
    if (!this.#busy && !this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(this.#settle);
    }
  }

  /**
   * Batching. Idle, a message goes out as soon as the code that sent it
   * yields (a microtask later, with whatever it sent at the same time).
   * That makes the link busy until the event loop's next turn: messages
   * sent meanwhile wait for that turn and go out together, and the link
   * stays busy for as long as each turn brings more.
   */
  readonly #settle = (): void => {
    this.#flushQueued = false;
    if (this.#batchCount === 0) return;
    this.#flush();
    this.#startTurn();
  };

  #startTurn(): void {
    this.#busy = true;
    this.#cancelTurn = this.#nextTurn(this.#turn);
  }

  readonly #turn = (): void => {
    this.#cancelTurn = undefined;
    this.#busy = false;
    if (this.#batchCount === 0 || this.closed) return;
    this.#flush();
    this.#startTurn();
  };

  #publishAlone(msg: Message): void {
    const frame = encodeMidiFrame(this.#id, this.#seq, [msg]);
    const limit = this.#nc.info?.max_payload ?? Infinity;
    if (
      frame.length > limit || !this.#publish(this.#settings.dataSubject, frame)
    ) {
      this.#stats.unsent++;
      return;
    }
    this.#seq = (this.#seq + 1) >>> 0;
    this.#published.track(msg);
    this.#stats.sent++;
    this.#stats.framesSent++;
  }

  #flush(): void {
    const count = this.#batchCount;
    if (count === 0) return;
    writeHeader(this.#batch, KIND_MIDI, this.#id, this.#seq);
    writeCount(this.#batch, count);
    const frame = this.#batch.slice(0, this.#batchLength);
    this.#resetBatch();
    if (this.#publish(this.#settings.dataSubject, frame)) {
      this.#seq = (this.#seq + 1) >>> 0;
      this.#stats.framesSent++;
    } else {
      this.#stats.sent -= count;
      this.#stats.unsent += count;
    }
  }

  #resetBatch(): void {
    this.#batchLength = MIDI_HEADER_SIZE;
    this.#batchCount = 0;
  }

  /** Backpressure: past 256 KiB published and not yet confirmed, wait. */
  #pace(): Promise<void> {
    if (this.#unflushed < HIGH_WATER) return DONE;
    if (this.#flushing === undefined) {
      this.#flush();
      const covered = this.#unflushed;
      this.#flushing = this.#nc.flush().then(
        () => {
          this.#unflushed = Math.max(0, this.#unflushed - covered);
        },
        () => {
          this.#unflushed = 0;
        },
      ).finally(() => {
        this.#flushing = undefined;
      });
    }
    return this.#unflushed < 2 * HIGH_WATER ? DONE : this.#flushing;
  }

  /**
   * Sends mido's reset set (on each channel, controls 123 and 121) to the
   * other hubs. Does nothing on a closed link.
   *
   * @returns A promise that resolves once it is queued.
   */
  async reset(): Promise<void> {
    if (!this.closed && this.#closing === undefined) {
      await this.sendAll(RESET_MESSAGES);
    }
  }

  /**
   * Sends mido's panic set (control 120 on each channel) to the other hubs.
   * Does nothing on a closed link.
   *
   * @returns A promise that resolves once it is queued.
   */
  async panic(): Promise<void> {
    if (!this.closed && this.#closing === undefined) {
      await this.sendAll(PANIC_MESSAGES);
    }
  }

  #stopTimers(): void {
    this.#cancelTurn?.();
    this.#cancelTurn = undefined;
    this.#busy = false;
    clearInterval(this.#beatTimer);
    clearInterval(this.#sweepTimer);
    this.#beatTimer = undefined;
    this.#sweepTimer = undefined;
  }

  /**
   * Leaves the room: publishes what is batched and a goodbye (so the other
   * hubs end this hub's notes at once), then closes the connection.
   * Received messages not read yet are dropped. Closing twice does nothing.
   *
   * @returns A promise that resolves once the connection is closed.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#stopTimers();
      this.finish(undefined, true);
      this.#owed = [];
      const nc = this.#nc;
      if (this.#connected && !nc.isClosed()) {
        this.#flush();
        this.#publish(
          this.#settings.presenceSubject,
          encodeBye(this.#id, this.#seq),
        );
        let timer: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          nc.flush().catch(() => {}),
          new Promise((resolve) => timer = setTimeout(resolve, CLOSE_FLUSH_MS)),
        ]);
        clearTimeout(timer);
      }
      this.#connected = false;
      await nc.close().catch(() => {});
      await this.#watching;
    })();
    return this.#closing;
  }
}

/**
 * Words a link event as one line, as `serve` prints it.
 *
 * @param event The event.
 * @param link The link it came from (for the room's name), if at hand.
 * @returns The line, without a newline.
 *
 * @example Lines for the log
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatNatsLinkEvent } from "@x/midisock";
 *
 * const hub = { id: "0123456789abcdef", name: "stage", since: 0 };
 * assert.equal(formatNatsLinkEvent({ type: "joined", hub }), 'hub "stage" (0123456789abcdef) joined');
 * assert.equal(
 *   formatNatsLinkEvent({ type: "left", hub, reason: "timeout", released: 2 }),
 *   'hub "stage" (0123456789abcdef) left: missed its heartbeats; 2 notes ended',
 * );
 * assert.equal(
 *   formatNatsLinkEvent({ type: "disconnected", server: "127.0.0.1:4222" }),
 *   "NATS link down (127.0.0.1:4222): serving local clients, reconnecting",
 * );
 * ```
 */
export function formatNatsLinkEvent(
  event: NatsLinkEvent,
  link?: { room: string },
): string {
  const where = link === undefined ? "" : ` room ${link.room}`;
  switch (event.type) {
    case "joined":
      return `hub ${
        JSON.stringify(event.hub.name)
      } (${event.hub.id}) joined${where}`;
    case "left": {
      const why = event.reason === "goodbye"
        ? "said goodbye"
        : "missed its heartbeats";
      const notes = event.released === 1 ? "note" : "notes";
      return `hub ${
        JSON.stringify(event.hub.name)
      } (${event.hub.id}) left${where}: ${why}; ${event.released} ${notes} ended`;
    }
    case "disconnected":
      return `NATS link down (${event.server}): serving local clients, reconnecting`;
    case "reconnected":
      return `NATS link up again (${event.server})`;
    case "failed":
      return `NATS link closed: ${
        event.error?.message.split("\n")[0] ?? "the client gave up"
      }`;
  }
}
