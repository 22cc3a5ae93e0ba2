/**
 * Hubs federated over NATS: a {@linkcode NatsLink} is a transport that
 * joins a hub to the other hubs of a room, on any machine that reaches the
 * same NATS server or cluster, as one endpoint of the hub that stands for
 * all of them.
 *
 * What a hub's endpoints send goes out on the hub's own subject of the
 * room, several messages to a NATS message under bursts; what other hubs
 * send comes in as the link's input, each hub's messages in its order,
 * never a hub's own. Hubs announce themselves with heartbeats; when one is
 * gone (3 missed beats, or its goodbye), the link ends every note it left
 * on.
 *
 * Time: the link is a timed endpoint of its hub. It publishes each message
 * with the time it happened (the hub's clock), and the hubs of a room
 * synchronise their clocks with each other (an NTP-style exchange carried
 * by their heartbeats), so that each hub hands its own the other hubs'
 * messages with the time they happened on its clock: a hub with a playout
 * delay (`latency`) plays them at that time plus the delay.
 *
 * Each hub publishes only under its own id (`PREFIX.room.ROOM.ID`,
 * `PREFIX.presence.ROOM.ID`), so NATS permissions can make sure that a hub
 * speaks only for itself (see the package's `docs/scaling-out.md`).
 *
 * The NATS client (`npm:@nats-io/transport-node`) is loaded only when a
 * link connects: importing this module costs nothing and needs no
 * permission. A link needs `--allow-net` to the NATS servers, and
 * `--allow-read` for a creds file or TLS files.
 *
 * @module
 */

import { checkMessage, type Message } from "../codec/messages.ts";
import { checkMessages } from "../codec/_check.ts";
import { encodeFramed, FRAMED_SIZE } from "../codec/_framer.ts";
import { systemClock, type TimeSource } from "../clock.ts";
import { PortClosedError } from "../errors.ts";
import { type Batch, SINK, type Sink, SOURCE, type Source } from "../sink.ts";
import type { Hub } from "../hub/mod.ts";
import type { Transport } from "../transport.ts";
import { callBack } from "../_call.ts";
import { atMost } from "../_time.ts";
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
  type NatsUrls,
  type NextTurn,
  parseNatsUrls,
  type TlsMaterial,
} from "./_client.ts";
import {
  beatExtensions,
  encodeBeat,
  encodeBye,
  FRAME_VERSION,
  FrameBuilder,
  idToHex,
  MAX_ANSWERS,
  MAX_INTERVAL,
  MIN_INTERVAL,
  nameBytes,
  randomId,
  RUN_SIZE,
  TIMED_HEADER_SIZE,
} from "./_frame.ts";
import {
  type LeaveReason,
  type Piece,
  type Remote,
  Room,
  TOKEN,
} from "./_room.ts";

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

/** Options for a {@linkcode NatsLink}. */
export interface NatsLinkOptions {
  /**
   * The room: hubs in the same room share their traffic. Letters, digits,
   * `_` and `-`, at most 64.
   */
  room: string;
  /**
   * This hub's id in the room: the last token of the subjects it publishes
   * on. Letters, digits, `_` and `-`, at most 64, and unique in the room.
   * Give each hub a fixed one when NATS permissions tie each hub's user to
   * its own subjects.
   * @default {16 random hex digits, new for each link}
   */
  id?: string;
  /**
   * The name this hub announces to the others, for people.
   * @default {the host name when it can be read (with `--allow-sys=hostname`), else the `id` given, else "hub-" and the first 6 digits of the random id}
   */
  name?: string;
  /**
   * First token of every subject: MIDI goes on `PREFIX.room.ROOM.ID`,
   * heartbeats on `PREFIX.presence.ROOM.ID`. Letters, digits, `_` and `-`.
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
   * How often clocks are compared with the other hubs, in ms (10-60000):
   * while another hub whose beats carry its clock is in the room, this
   * hub beats this often (if `heartbeat` is longer), each beat answering
   * theirs. Every 100 ms keeps two clocks within a fraction of a
   * millisecond over Wi-Fi; every 250 ms, about twice as far apart.
   * @default {100}
   */
  syncInterval?: number;
  /**
   * The most other hubs the link keeps track of; frames of more are
   * refused (and said once, with a `full` event).
   * @default {256}
   */
  maxRemotes?: number;
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
   * Received messages waiting for the hub, all other hubs together, at
   * most; one hub may fill half of it. A frame that does not fit is
   * dropped unread (its messages counted in `stats.overflowed`), and the
   * notes its hub had on are ended, since the frame may have ended them.
   * @default {65536}
   */
  queueSize?: number;
  /**
   * Called for each event: another hub joined or left, the link to NATS
   * went down or came back, or the client gave up. An error it throws is
   * reported, never stops the link. Without it, the hub the link is
   * attached to is told each as a notice, in the words of
   * {@linkcode formatNatsLinkEvent}, which a `HubLog` prints.
   * @default {none}
   */
  onEvent?: (event: NatsLinkEvent) => void;
}

/** Something that happened to a link; {@linkcode formatNatsLinkEvent} words it. */
export type NatsLinkEvent =
  | {
    /** The link joined its room (attached to a hub). */
    readonly type: "up";
    /** The NATS server's address, without credentials. */
    readonly url: string;
    readonly room: string;
    /** This hub's name and id in the room. */
    readonly name: string;
    readonly id: string;
  }
  | {
    /** Another hub announced itself in the room. */
    readonly type: "joined";
    readonly hub: RemoteHub;
  }
  | {
    /** Another hub is gone: it said goodbye, missed its beats, or restarted. */
    readonly type: "left";
    readonly hub: RemoteHub;
    readonly reason: LeaveReason;
    /** How many notes it left on were ended (note_off delivered). */
    readonly released: number;
  }
  | {
    /**
     * More hubs joined and left than are told one by one (at most 20 at
     * once, then 2 a second): how many, each second while it lasts.
     */
    readonly type: "unreported";
    readonly joined: number;
    readonly left: number;
    /** Notes ended for those that left. */
    readonly released: number;
  }
  | {
    /** The room holds `maxRemotes` hubs: frames of new ones are refused (told once until there is room again). */
    readonly type: "full";
    readonly maxRemotes: number;
  }
  | {
    /** Another link publishes under this link's id (told once). */
    readonly type: "conflict";
    readonly id: string;
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
  /** MIDI messages delivered from other hubs (note_off messages for hubs that left included). */
  received: number;
  /** NATS messages read from the room's subjects. */
  framesReceived: number;
  /** Payloads refused: foreign, malformed, or under this link's own id; never delivered in part. */
  dropped: number;
  /** MIDI frames numbered behind one already read (delivered all the same: NATS never repeats one). */
  late: number;
  /** Frames of other hubs that never came (NATS delivers at most once). */
  gaps: number;
  /** Frame numbers that jumped by more than 65,536: counting starts again there. */
  jumps: number;
  /** Frames of new hubs refused because `maxRemotes` were there. */
  refused: number;
  /** Received messages dropped because too many waited (`queueSize`). */
  overflowed: number;
  /** note_off messages delivered for hubs that left. */
  released: number;
  /** Clock exchanges with other hubs taken (answers to this hub's beats). */
  syncs: number;
}

/** How another hub's clock reads against a link's: see {@linkcode NatsLink.clockOf}. */
export interface RemoteClock {
  /** Its clock minus this hub's, now, in ms. */
  readonly offset: number;
  /** How much faster it runs, as a fraction (2e-4: 200 ppm). */
  readonly drift: number;
  /** The shortest round trip of the exchanges kept, in ms. */
  readonly roundTrip: number;
  /** How many exchanges are kept. */
  readonly samples: number;
}

/**
 * Thrown when a {@linkcode NatsLink} cannot join NATS: no server answers,
 * the credentials are refused, the user may not use the room's subjects,
 * TLS fails, or a creds or TLS file cannot be read.
 *
 * @example Telling a NATS failure apart
 * ```ts
 * import assert from "node:assert/strict";
 * import { NatsLinkError } from "@x/midisock/nats";
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

const HIGH_WATER = 1 << 18;
const DONE: Promise<void> = Promise.resolve();
const CLOSE_FLUSH_MS = 1000;
/** The most messages in the link's own input queue; the rest wait per hub. */
const PORT_QUEUE = 4096;
/**
 * The most messages handed to the hub in one turn of the event loop: past
 * it, the rest waits (per hub, bounded) for the next turn, so that a flood
 * fills the lanes and is dropped unread instead of being routed whole.
 */
const FEED_TURN = 4096;
/** Joined and left events told one by one at once, then 2 a second. */
const EVENT_BURST = 20;
const EVENT_REFILL_MS = 500;
const SUMMARY_MS = 1000;

/** Everything the options say, checked. */
interface Settings {
  urls: NatsUrls;
  room: string;
  id: string;
  name: string;
  dataSubject: string;
  presenceSubject: string;
  /** What the link subscribes to: `PREFIX.room.ROOM.` and `PREFIX.presence.ROOM.`, then `*`. */
  dataPrefix: string;
  presencePrefix: string;
  heartbeat: number;
  missedBeats: number;
  syncInterval: number;
  maxRemotes: number;
  maxFrameBytes: number;
  queueSize: number;
  client: Omit<ClientSettings, "creds" | "tls">;
  credsFile?: string;
  /** `undefined`: TLS as the server offers; else required, with these files. */
  tls?: NatsTlsOptions;
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

/** The host name, when this process may read it; never prompts. */
function hostName(): string | undefined {
  try {
    const { state } = Deno.permissions.querySync({
      name: "sys",
      kind: "hostname",
    });
    if (state !== "granted") return undefined;
    const name = Deno.hostname();
    return name === "" ? undefined : name;
  } catch {
    return undefined;
  }
}

/** Reads the options once, throwing for the first bad one. */
function readOptions(
  url: string | readonly string[],
  options: NatsLinkOptions,
  instance: Uint8Array,
): Settings {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(
      `NatsLink options must be an object with a room: got ${options}`,
    );
  }
  const urls = parseNatsUrls(url);
  const room = token("room", options.room);
  const prefix = token("subjectPrefix", options.subjectPrefix ?? "midisock");
  const id = options.id === undefined
    ? idToHex(instance)
    : token("id", options.id);
  const name = optionalString("name", options.name) ?? hostName() ??
    (options.id ?? `hub-${id.slice(0, 6)}`);
  if (
    options.onEvent !== undefined && typeof options.onEvent !== "function"
  ) {
    throw new TypeError(
      `onEvent must be a function: got ${typeof options.onEvent}`,
    );
  }
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
  const tlsFiles: NatsTlsOptions = {
    caFile: optionalString("tls.caFile", files.caFile),
    certFile: optionalString("tls.certFile", files.certFile),
    keyFile: optionalString("tls.keyFile", files.keyFile),
  };
  if ((tlsFiles.certFile === undefined) !== (tlsFiles.keyFile === undefined)) {
    throw new TypeError("tls.certFile and tls.keyFile go together");
  }
  return {
    urls,
    room,
    id,
    name,
    dataSubject: `${prefix}.room.${room}.${id}`,
    presenceSubject: `${prefix}.presence.${room}.${id}`,
    dataPrefix: `${prefix}.room.${room}.`,
    presencePrefix: `${prefix}.presence.${room}.`,
    heartbeat: integer(
      "heartbeat",
      options.heartbeat,
      250,
      MIN_INTERVAL,
      MAX_INTERVAL,
    ),
    missedBeats: integer("missedBeats", options.missedBeats, 3, 1, 1000),
    syncInterval: integer(
      "syncInterval",
      options.syncInterval,
      100,
      MIN_INTERVAL,
      MAX_INTERVAL,
    ),
    maxRemotes: integer("maxRemotes", options.maxRemotes, 256, 1, 1 << 16),
    maxFrameBytes: integer(
      "maxFrameBytes",
      options.maxFrameBytes,
      8192,
      64,
      1 << 20,
    ),
    queueSize: integer("queueSize", options.queueSize, 65536, 1, 1 << 24),
    client: {
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
    },
    credsFile: optionalString("credsFile", options.credsFile),
    tls: tls === undefined || tls === false ? undefined : tlsFiles,
    onEvent: options.onEvent,
  };
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

/** Reads the creds and TLS files and makes the client's settings. */
async function clientSettings(settings: Settings): Promise<ClientSettings> {
  const display = settings.urls.display;
  const client: ClientSettings = { ...settings.client };
  if (settings.credsFile !== undefined) {
    client.creds = await readFile(display, "creds file", settings.credsFile);
  }
  const tls = settings.tls;
  if (tls !== undefined) {
    const text = new TextDecoder();
    const material: TlsMaterial = {};
    if (tls.caFile !== undefined) {
      material.ca = text.decode(await readFile(display, "CA file", tls.caFile));
    }
    if (tls.certFile !== undefined && tls.keyFile !== undefined) {
      material.cert = text.decode(
        await readFile(display, "certificate file", tls.certFile),
      );
      material.key = text.decode(
        await readFile(display, "key file", tls.keyFile),
      );
    }
    client.tls = material;
  }
  return client;
}

/** A connection and what comes with it, once the link is open. */
interface Open {
  nc: NatsConnection;
  nextTurn: NextTurn;
  /** The frame being built, as large as a frame may be. */
  builder: FrameBuilder;
  /** The largest payload the server takes. */
  maxPayload: number;
}

/** The length of the framed message at `i`. */
function sizeAt(bytes: Uint8Array, i: number): number {
  const status = bytes[i];
  return status === 0xf0
    ? bytes.indexOf(0xf7, i + 1) - i + 1
    : FRAMED_SIZE[status - 0x80];
}

/** Counts the framed messages in `bytes`. */
function countFramed(bytes: Uint8Array): number {
  let count = 0;
  for (let i = 0; i < bytes.length; i += sizeAt(bytes, i)) count++;
  return count;
}

/**
 * A transport that joins a hub to the other hubs of a room over NATS, and
 * the endpoint that stands for them in the hub.
 *
 * `await hub.attach(new NatsLink(url, { room }))` connects and adds the
 * link to the hub as a `link` endpoint (transport `"nats"`, named
 * `room ROOM`); `hub.close()` closes it. Without a hub,
 * {@linkcode NatsLink.connect} gives a connected link to read and write
 * directly.
 *
 * - Output: what the hub's endpoints send. The hub hands it each batch at
 *   once with the time it happened (the link is a timed endpoint: the
 *   hub's playout delay leaves it alone); `send(msg)` does the same with
 *   the time of the call. It is published on the hub's subject of the
 *   room, with its time; messages sent in one burst (before the event loop
 *   turns) share one NATS message, so an idle link adds no delay and a
 *   busy one publishes few, large messages.
 * - Input: what the other hubs' endpoints sent, each hub's messages in its
 *   order, whole messages only, never this hub's own; hubs take turns when
 *   several send at once. In a hub, each batch comes with the time it
 *   happened at its hub, mapped to this hub's clock (its arrival, until
 *   the two hubs have compared clocks, and for hubs that send no times);
 *   without a hub, `for await`, `receive()` and the rest read it. When a
 *   hub leaves (goodbye, `missedBeats` beats missed, or a restart), a
 *   note_off comes for each note it left on.
 * - Clocks: while other hubs whose beats carry their clock are in the
 *   room, the link beats every `syncInterval` (100 ms), each beat carrying
 *   its clock and answering theirs: each beat and its answer is an
 *   NTP-style exchange, and a `ClockSync` per hub turns them into that
 *   hub's offset and drift.
 * - Versions: MIDI frames go out in version 2 (with times) while every hub
 *   of the room reads it, as their beats say, and in version 1 (no times)
 *   while one does not; frames of both versions are read.
 * - While NATS is unreachable the link stays open: messages are dropped
 *   (counted in `stats.unsent`), the client reconnects by itself, and
 *   `onEvent` hears `disconnected` then `reconnected`. On reconnecting, the
 *   link first ends the notes it had published as on (their note_off may
 *   have been lost).
 *
 * A hub is known by its `id`, the last token of its subjects; NATS
 * permissions can allow each hub's user to publish only there. The frame
 * format and the presence protocol are described in the package's
 * `docs/scaling-out.md`.
 *
 * @example A hub joined to a room
 * ```ts ignore
 * import { Hub, NatsLink } from "@x/midisock";
 *
 * await using hub = new Hub({ latency: 40 });
 * await hub.attach(new NatsLink("nats://127.0.0.1:4222", { room: "studio" }));
 * console.log(hub.endpoints.map((e) => e.name)); // [ "room studio" ]
 * ```
 */
export class NatsLink extends InputPortBase implements IOPort, Transport {
  readonly #settings: Settings;
  readonly #instance: Uint8Array;
  readonly #room: Room;
  readonly #published = new NoteTracker();
  readonly #stats = {
    sent: 0,
    framesSent: 0,
    unsent: 0,
    received: 0,
    released: 0,
  };
  /** Where times are read: the hub's clock once attached. */
  #clock: TimeSource = systemClock;
  #hub: Hub | undefined;
  #open: Open | undefined;
  #opening: Promise<void> | undefined;
  #connected = false;
  #server = "";
  #seq = 0;
  #flushQueued = false;
  #busy = false;
  #cancelTurn: (() => void) | undefined;
  #unflushed = 0;
  #flushing: Promise<void> | undefined;
  /** Flushes completed, and writes that found nothing waiting: the sink's progress. */
  #progress = 0;
  #sink: Sink | undefined;
  /** The hub's intake, once it took the input over (see `SOURCE`). */
  #take:
    | ((
      framed: Uint8Array,
      at?: number,
      origin?: string,
    ) => void | Promise<void>)
    | undefined;
  #end: ((cause?: unknown) => void) | undefined;
  /** Set once the input ended: why (undefined: closed). */
  #ended: { cause: unknown } | undefined;
  /** Waiting for the reader (the hub, or the input queue). */
  #stalled = false;
  /** A piece the input queue had no room for, from message `#heldAt` on. */
  #held: Piece | undefined;
  #heldAt = 0;
  /** Messages handed to the hub this turn of the event loop. */
  #handed = 0;
  /** Ends the turn's count (set while it counts). */
  #turnEnd: (() => void) | undefined;
  /** Whether the hub's share of this turn is used up. */
  #turnFull = false;
  #beatTimer: ReturnType<typeof setTimeout> | undefined;
  #sweepTimer: ReturnType<typeof setInterval> | undefined;
  #answerTimer: ReturnType<typeof setTimeout> | undefined;
  #lastBeat = -Infinity;
  #confirming = false;
  #tokens = EVENT_BURST;
  #tokensAt = 0;
  #unreported = { joined: 0, left: 0, released: 0 };
  #summaryTimer: ReturnType<typeof setTimeout> | undefined;
  #conflictTold = false;
  #watching: Promise<void> | undefined;
  /** A permission the server refused, as the link started. */
  #denied: Error | undefined;
  #closing: Promise<void> | undefined;

  /**
   * Makes a link, not connected yet: {@linkcode NatsLink.attach} (through
   * `hub.attach`) or {@linkcode NatsLink.connect} connects it.
   *
   * @param url The server: `nats://host:port`, with `user:password@` or
   * `token@` before the host if the server wants them, `tls://` to require
   * TLS; several servers of a cluster as an array or separated by commas.
   * @param options The room, id, name, credentials, TLS, timings and events.
   * @throws {SyntaxError} For a URL that does not parse.
   * @throws {TypeError | RangeError} For a bad option.
   *
   * @example Checking options before connecting
   * ```ts
   * import assert from "node:assert/strict";
   * import { NatsLink } from "@x/midisock";
   *
   * const link = new NatsLink("nats://127.0.0.1:4222", { room: "stage", id: "studio-1" });
   * assert.equal(link.id, "studio-1");
   * assert.equal(link.name, "nats://127.0.0.1:4222/stage");
   * assert.equal(link.connected, false);
   * assert.throws(() => new NatsLink("nats://127.0.0.1:4222", { room: "a.b" }), RangeError);
   * await link.close();
   * ```
   */
  constructor(url: string | readonly string[], options: NatsLinkOptions) {
    const instance = randomId();
    const settings = readOptions(url, options, instance);
    super(Math.min(PORT_QUEUE, settings.queueSize));
    this.#settings = settings;
    this.#instance = instance;
    this.#room = new Room(
      {
        own: settings.id,
        ownInstance: idToHex(instance),
        interval: settings.heartbeat,
        missed: settings.missedBeats,
        maxRemotes: settings.maxRemotes,
        capacity: settings.queueSize,
      },
      {
        wake: () => this.#feed(),
        joined: (remote) => {
          // Answer a newcomer soon, so it need not wait for our beat.
          this.#answer();
          this.#tell({ type: "joined", hub: remote.hub }, 0);
        },
        left: (remote, reason, released) =>
          this.#left(remote, reason, released),
        full: () =>
          this.#emit({ type: "full", maxRemotes: settings.maxRemotes }),
        conflict: () => {
          if (this.#conflictTold) return;
          this.#conflictTold = true;
          this.#emit({ type: "conflict", id: settings.id });
        },
      },
    );
  }

  /**
   * Makes a link and joins its room, for use without a hub (with a hub,
   * `hub.attach(new NatsLink(url, options))` does both).
   *
   * @param url The server or servers, as the constructor takes them.
   * @param options The room, id, name, credentials, TLS, timings and events.
   * @returns A promise of the connected link.
   * @throws {SyntaxError} For a URL that does not parse.
   * @throws {TypeError | RangeError} For a bad option.
   * @throws {NatsLinkError} When NATS cannot be joined (no server, refused
   * credentials or permissions, TLS failure, unreadable creds or TLS file).
   *
   * @example Reading a room from a script
   * ```ts ignore
   * import { NatsLink } from "@x/midisock";
   *
   * await using link = await NatsLink.connect("nats://hub:secret@nats.local:4222", {
   *   room: "classroom-3",
   *   name: "listener",
   * });
   * for await (const msg of link) console.log(msg);
   * ```
   */
  static async connect(
    url: string | readonly string[],
    options: NatsLinkOptions,
  ): Promise<NatsLink> {
    const link = new NatsLink(url, options);
    try {
      await link.#connect();
    } catch (error) {
      await link.close();
      throw error;
    }
    return link;
  }

  /**
   * Connects (once) and adds the link to `hub` as its `link` endpoint;
   * called by {@linkcode Hub.attach}. From then on the link reads and
   * writes times on the hub's clock.
   *
   * @param hub The hub.
   * @returns A promise that resolves once the link is in the room and in
   * the hub.
   * @throws {NatsLinkError} When NATS cannot be joined.
   * @throws {PortClosedError} When the link was closed meanwhile.
   */
  async attach(hub: Hub): Promise<void> {
    this.#clock = hub.clock;
    this.#hub = hub;
    await this.#connect();
    if (this.closed) throw new PortClosedError(this.name);
    hub.add(this, {
      kind: "link",
      transport: "nats",
      name: `room ${this.#settings.room}`,
    });
    this.#emit({
      type: "up",
      url: this.url,
      room: this.room,
      name: this.hubName,
      id: this.id,
    });
  }

  #connect(): Promise<void> {
    this.#opening ??= (async () => {
      if (this.#closing !== undefined) throw new PortClosedError(this.name);
      const settings = this.#settings;
      const display = settings.urls.display;
      const client = await clientSettings(settings);
      let made: NatsClient;
      try {
        made = await connectNats(client);
      } catch (error) {
        if (error instanceof Deno.errors.NotCapable) throw error;
        throw new NatsLinkError(display, describeFailure(error, client), {
          cause: error,
        });
      }
      const { nc, nextTurn } = made;
      if (this.#closing !== undefined) {
        await nc.close().catch(() => {});
        throw new PortClosedError(this.name);
      }
      // A frame never outgrows what the server takes in one message.
      const maxPayload = nc.info?.max_payload ?? Infinity;
      this.#open = {
        nc,
        nextTurn,
        builder: new FrameBuilder(
          Math.max(
            TIMED_HEADER_SIZE + RUN_SIZE + 3,
            Math.min(settings.maxFrameBytes, maxPayload),
          ),
        ),
        maxPayload,
      };
      this.#server = nc.getServer();
      this.#connected = true;
      try {
        await this.#start(nc);
      } catch (error) {
        await this.close();
        throw new NatsLinkError(display, describeFailure(error, client), {
          cause: error,
        });
      }
    })();
    return this.#opening;
  }

  async #start(nc: NatsConnection): Promise<void> {
    const { dataPrefix, presencePrefix, heartbeat } = this.#settings;
    const onFrame = (prefix: string, presence: boolean) =>
    (
      error: Error | null,
      msg: { subject: string; data: Uint8Array },
    ): void => {
      if (error !== null) {
        this.#denied ??= error;
        return;
      }
      this.#room.receive(
        msg.subject.slice(prefix.length),
        presence,
        msg.data,
        performance.now(),
        this.#clock.now(),
      );
    };
    nc.subscribe(`${dataPrefix}*`, { callback: onFrame(dataPrefix, false) });
    nc.subscribe(`${presencePrefix}*`, {
      callback: onFrame(presencePrefix, true),
    });
    this.#watching = this.#watch(nc);
    this.#beat();
    await nc.flush();
    // The server answers a refused subscription or publication before the
    // flush's pong; its status event reaches #watch a few microtasks later.
    await new Promise<void>((resolve) => this.#open!.nextTurn(resolve));
    if (this.#denied !== undefined) throw this.#denied;
    const sweepEvery = Math.max(5, Math.floor(heartbeat / 10));
    this.#sweepTimer = setInterval(() => this.#sweep(), sweepEvery);
  }

  async #watch(nc: NatsConnection): Promise<void> {
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
        const builder = this.#open!.builder;
        this.#stats.sent -= builder.count;
        this.#stats.unsent += builder.count;
        builder.clear();
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
    this.#endInput(error, false);
    this.#room.clear();
    this.#emit({ type: "failed", error });
  }

  /** The input ends: the reader (queue or hub) is told, once. */
  #endInput(cause: unknown, discard: boolean): void {
    this.finish(cause, discard);
    this.#held = undefined;
    if (this.#ended !== undefined) return;
    this.#ended = { cause };
    const end = this.#end;
    this.#end = undefined;
    end?.(cause);
  }

  #emit(event: NatsLinkEvent): void {
    const { onEvent, room } = this.#settings;
    // With no listener of its own, it tells the hub's (a HubLog's lines).
    if (onEvent) callBack(onEvent, event);
    else this.#hub?.notice(formatNatsLinkEvent(event, { room }));
  }

  /**
   * Tells a joined or left event, unless too many came at once: those are
   * counted and told in a summary each second.
   */
  #tell(event: NatsLinkEvent, released: number): void {
    const now = performance.now();
    this.#tokens = Math.min(
      EVENT_BURST,
      this.#tokens + (now - this.#tokensAt) / EVENT_REFILL_MS,
    );
    this.#tokensAt = now;
    if (this.#tokens >= 1 && this.#summaryTimer === undefined) {
      this.#tokens--;
      this.#emit(event);
      return;
    }
    const unreported = this.#unreported;
    if (event.type === "joined") unreported.joined++;
    else unreported.left++;
    unreported.released += released;
    this.#summaryTimer ??= setTimeout(this.#summarise, SUMMARY_MS);
  }

  readonly #summarise = (): void => {
    this.#summaryTimer = undefined;
    const { joined, left, released } = this.#unreported;
    this.#unreported = { joined: 0, left: 0, released: 0 };
    if (joined + left > 0) {
      this.#emit({ type: "unreported", joined, left, released });
      // Go on summing up while it lasts.
      this.#summaryTimer = setTimeout(this.#summarise, SUMMARY_MS);
    }
  };

  /** `nats://host:port/ROOM`: the servers (credentials masked) and the room. */
  get name(): string {
    return `${this.#settings.urls.display}/${this.#settings.room}`;
  }

  /** The server URL or URLs, with any password or token masked. */
  get url(): string {
    return this.#settings.urls.display;
  }

  /** The room. */
  get room(): string {
    return this.#settings.room;
  }

  /** This hub's id in the room: the last token of its subjects. */
  get id(): string {
    return this.#settings.id;
  }

  /** The name this hub announces. */
  get hubName(): string {
    return this.#settings.name;
  }

  /** The subjects this link publishes on: MIDI, then presence. */
  get subjects(): readonly [string, string] {
    return [this.#settings.dataSubject, this.#settings.presenceSubject];
  }

  /** Whether the connection to NATS is up now. */
  get connected(): boolean {
    return this.#connected && !this.closed;
  }

  /** `host:port` of the NATS server the link is (or was last) connected to; `""` before it connects. */
  get server(): string {
    return this.#server;
  }

  /** The other hubs of the room that announced themselves and are here now. */
  get remotes(): RemoteHub[] {
    return this.#room.hubs;
  }

  /**
   * The MIDI frame version the link writes now: 2 (with times) while every
   * hub of the room reads it, else 1.
   */
  get frameVersion(): number {
    return this.#room.version;
  }

  /**
   * How another hub's clock reads against this link's (the hub's clock),
   * once the two have compared clocks.
   *
   * @param id The other hub's id (see `remotes`).
   * @returns Its clock minus ours now (ms), how much faster it runs (2e-4:
   * 200 ppm), the shortest round trip seen (ms) and the exchanges kept; or
   * undefined for a hub not in the room or not compared yet.
   *
   * @example Before any other hub is heard
   * ```ts
   * import assert from "node:assert/strict";
   * import { NatsLink } from "@x/midisock";
   *
   * const link = new NatsLink("nats://127.0.0.1:4222", { room: "stage" });
   * assert.equal(link.clockOf("studio-2"), undefined);
   * await link.close();
   * ```
   */
  clockOf(id: string): RemoteClock | undefined {
    const sync = this.#room.remote(id)?.sync;
    if (sync === undefined || !sync.synced) return undefined;
    return {
      offset: sync.offsetAt(this.#clock.now()),
      drift: sync.drift,
      roundTrip: sync.roundTrip,
      samples: sync.samples,
    };
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
      jumps: counts.jumps,
      refused: counts.refused,
      overflowed: counts.overflowed,
      syncs: counts.syncs,
    };
  }

  /**
   * What a hub reads from: the other hubs' messages as framed bytes, each
   * piece with the time it happened on the hub's clock, in place of the
   * input queue (messages queued already go first).
   */
  get [SOURCE](): Source {
    return {
      attach: (take, end) => {
        if (this.#take !== undefined || this.#end !== undefined) {
          throw new Error(`The input of ${this.name} is taken already`);
        }
        const queued = [...this.iterPending()];
        this.#take = take;
        if (this.#ended !== undefined) {
          end(this.#ended.cause);
          return;
        }
        this.#end = end;
        const held = this.#held;
        this.#held = undefined;
        if (held !== undefined) {
          for (const msg of held.messages.slice(this.#heldAt)) queued.push(msg);
        }
        if (queued.length > 0) take(encodeFramed(queued));
        if (!this.#stalled) this.#feed();
      },
    };
  }

  /** Moves what waits to the reader, hubs in turn, while it takes more. */
  #feed(): void {
    if (this.#stalled) return;
    const room = this.#room;
    const take = this.#take;
    if (take !== undefined) {
      while (room.waiting > 0 && this.#ended === undefined) {
        if (this.#handed >= FEED_TURN) {
          // This turn's share is used up: the rest waits for the next.
          this.#stalled = this.#turnFull = true;
          return;
        }
        const piece = room.next(FEED_TURN - this.#handed)!;
        if (this.#handed === 0) this.#countTurn();
        this.#handed += piece.messages.length;
        this.#stats.received += piece.messages.length;
        const wait = take(piece.bytes, piece.at, piece.origin);
        if (wait !== undefined) {
          // The hub holds its inputs back: read on once it lets go.
          this.#stalled = true;
          const resume = () => {
            this.#stalled = false;
            this.#feed();
          };
          wait.then(resume, resume);
          return;
        }
      }
      return;
    }
    for (;;) {
      const piece = this.#held ?? room.next();
      if (piece === undefined) return;
      this.#held = undefined;
      const messages = piece.messages;
      for (let i = this.#heldAt; i < messages.length; i++) {
        if (!this.deliver(messages[i])) {
          if (this.closed) {
            room.clear();
            return;
          }
          this.#held = piece;
          this.#heldAt = i;
          this.#stalled = true;
          this.roomForMore().then(() => {
            this.#stalled = false;
            this.#feed();
          });
          return;
        }
        this.#stats.received++;
      }
      this.#heldAt = 0;
    }
  }

  /** Counts what is handed to the hub until the event loop turns. */
  #countTurn(): void {
    const open = this.#open;
    if (this.#turnEnd !== undefined || open === undefined) return;
    this.#turnEnd = open.nextTurn(() => {
      this.#turnEnd = undefined;
      this.#handed = 0;
      if (this.#turnFull) {
        this.#turnFull = this.#stalled = false;
        this.#feed();
      }
    });
  }

  #left(remote: Remote, reason: LeaveReason, released: number): void {
    this.#stats.released += released;
    if (remote.announced) {
      this.#tell(
        { type: "left", hub: remote.hub, reason, released },
        released,
      );
    }
  }

  /** Times out the hubs not heard for their missed beats. */
  #sweep(): void {
    if (this.#confirming) return;
    const room = this.#room;
    const asked = performance.now();
    const overdue = room.overdue(asked);
    if (overdue.length === 0) return;
    if (!this.#connected || this.#open === undefined) {
      room.expire(overdue, asked);
      return;
    }
    // Before calling them gone, make sure we are not just behind: once
    // the server's answer to a ping is read, so is everything it sent
    // before (their beats included, however much MIDI came first).
    this.#confirming = true;
    const { missedBeats, heartbeat } = this.#settings;
    atMost(this.#open.nc.flush(), missedBeats * heartbeat).then(() => {
      this.#confirming = false;
      if (!this.closed) room.expire(overdue, asked);
    });
  }

  /**
   * Sends a beat, with this hub's clock and its answers to the others'
   * beats, and sets the next: every `heartbeat`, or every `syncInterval`
   * while hubs that compare clocks are in the room.
   */
  #beat(): void {
    if (this.closed || this.#closing !== undefined) return;
    clearTimeout(this.#beatTimer);
    const { heartbeat, syncInterval, name } = this.#settings;
    const every = this.#room.timedHubs > 0
      ? Math.min(heartbeat, syncInterval)
      : heartbeat;
    this.#beatTimer = setTimeout(() => this.#beat(), every);
    if (!this.#connected || this.#open === undefined) return;
    this.#lastBeat = performance.now();
    const sent = this.#clock.now();
    this.#room.sent(sent);
    const time = { sent, answers: this.#room.answers(MAX_ANSWERS) };
    this.#publish(
      this.#settings.presenceSubject,
      encodeBeat(
        this.#instance,
        this.#seq,
        heartbeat,
        nameBytes(name),
        beatExtensions(FRAME_VERSION, time),
      ),
    );
  }

  /** A beat soon for a newcomer: at once, or one for all that came within a fifth of the interval. */
  #answer(): void {
    if (this.#answerTimer !== undefined) return;
    const gap = Math.max(MIN_INTERVAL, this.#settings.heartbeat / 5);
    const wait = this.#lastBeat + gap - performance.now();
    if (wait <= 0) {
      this.#beat();
      return;
    }
    this.#answerTimer = setTimeout(() => {
      this.#answerTimer = undefined;
      this.#beat();
    }, wait);
  }

  #publish(subject: string, payload: Uint8Array): boolean {
    try {
      this.#open!.nc.publish(subject, payload);
    } catch {
      return false;
    }
    this.#unflushed += payload.length;
    return true;
  }

  /** What the hub writes to: each batch at once, with its time. */
  get [SINK](): Sink {
    return this.#sink ??= this.#makeSink();
  }

  #makeSink(): Sink {
    // deno-lint-ignore no-this-alias
    const self = this;
    return {
      write: (batch: Batch): boolean => {
        if (this.#closing !== undefined || this.closed) return false;
        if (this.#flushing === undefined) this.#progress++;
        this.#append(batch.bytes, batch.at);
        this.#pace();
        return true;
      },
      // What is known to wait: published, while a flush asks the server
      // whether it has it all.
      get queuedBytes() {
        return self.#flushing === undefined ? 0 : self.#unflushed;
      },
      get copiedBytes() {
        return self.#flushing === undefined ? 0 : self.#unflushed;
      },
      get progress() {
        return self.#progress;
      },
      slow: "drop",
      drained: () => this.#flushing ?? DONE,
      timed: true,
    };
  }

  /**
   * Publishes one message from a local endpoint, as having happened now
   * (see the class doc for batching and what happens while NATS is down).
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
    return this.#sendChecked([msg]);
  }

  /**
   * Publishes several messages, in order, checked first, as having
   * happened now.
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
    return this.#sendChecked(list);
  }

  #sendChecked(messages: readonly Message[]): Promise<void> {
    if (this.#closing !== undefined || this.closed) {
      return Promise.reject(new PortClosedError(this.name));
    }
    if (messages.length > 0) this.#append(encodeFramed(messages), undefined);
    return this.#pace();
  }

  /**
   * Adds framed messages that happened at `at` (the hub's clock; now when
   * not a finite number) to the frame being built: published when the
   * event loop turns (see `#settle`), or at once where the frame is full.
   */
  #append(bytes: Uint8Array, at: number | undefined): void {
    const open = this.#open;
    if (!this.#connected || open === undefined) {
      this.#stats.unsent += countFramed(bytes);
      return;
    }
    const when = at !== undefined && Number.isFinite(at)
      ? at
      : this.#clock.now();
    const builder = open.builder;
    const published = this.#published;
    let start = 0;
    let count = 0;
    const length = bytes.length;
    for (let i = 0; i < length;) {
      const status = bytes[i];
      const size = sizeAt(bytes, i);
      if (status < 0xc0 || status === 0xff) {
        published.trackBytes(status, bytes[i + 1], bytes[i + 2]);
      }
      if (!builder.fits(i + size - start, count + 1, when)) {
        // What came before it goes in this frame; it starts the next, or
        // goes alone when no frame holds it.
        if (count > 0) this.#push(bytes, start, i, count, when);
        this.#flush();
        start = i;
        count = 0;
        if (!builder.fits(size, 1, when)) {
          this.#publishAlone(bytes.subarray(i, i + size), when);
          i += size;
          start = i;
          continue;
        }
      }
      count++;
      i += size;
    }
    if (count > 0) this.#push(bytes, start, length, count, when);
    if (builder.count > 0 && !this.#busy && !this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(this.#settle);
    }
  }

  #push(
    bytes: Uint8Array,
    start: number,
    end: number,
    count: number,
    at: number,
  ): void {
    this.#open!.builder.push(bytes, start, end, count, at);
    this.#stats.sent += count;
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
    if (this.#open === undefined || this.#open.builder.count === 0) return;
    this.#flush();
    this.#startTurn();
  };

  #startTurn(): void {
    this.#busy = true;
    this.#cancelTurn = this.#open!.nextTurn(this.#turn);
  }

  readonly #turn = (): void => {
    this.#cancelTurn = undefined;
    this.#busy = false;
    if (this.#open!.builder.count === 0 || this.closed) return;
    this.#flush();
    this.#startTurn();
  };

  /** One message longer than a frame may be: a frame of its own. */
  #publishAlone(bytes: Uint8Array, at: number): void {
    const alone = new FrameBuilder(TIMED_HEADER_SIZE + RUN_SIZE + bytes.length);
    alone.push(bytes, 0, bytes.length, 1, at);
    const frame = alone.build(this.#room.version, this.#instance, this.#seq);
    if (
      frame.length > this.#open!.maxPayload ||
      !this.#publish(this.#settings.dataSubject, frame)
    ) {
      this.#stats.unsent++;
      return;
    }
    this.#seq = (this.#seq + 1) >>> 0;
    this.#stats.sent++;
    this.#stats.framesSent++;
  }

  #flush(): void {
    const builder = this.#open!.builder;
    const count = builder.count;
    if (count === 0) return;
    const frame = builder.build(this.#room.version, this.#instance, this.#seq);
    builder.clear();
    if (this.#publish(this.#settings.dataSubject, frame)) {
      this.#seq = (this.#seq + 1) >>> 0;
      this.#stats.framesSent++;
    } else {
      this.#stats.sent -= count;
      this.#stats.unsent += count;
    }
  }

  /** Backpressure: past 256 KiB published and not yet confirmed, wait. */
  #pace(): Promise<void> {
    const open = this.#open;
    if (this.#unflushed < HIGH_WATER || open === undefined) return DONE;
    if (this.#flushing === undefined) {
      this.#flush();
      const covered = this.#unflushed;
      this.#flushing = open.nc.flush().then(
        () => {
          this.#unflushed = Math.max(0, this.#unflushed - covered);
        },
        () => {
          this.#unflushed = 0;
        },
      ).finally(() => {
        this.#flushing = undefined;
        this.#progress++;
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
    this.#turnEnd?.();
    this.#turnEnd = undefined;
    this.#busy = false;
    clearTimeout(this.#beatTimer);
    clearInterval(this.#sweepTimer);
    clearTimeout(this.#answerTimer);
    clearTimeout(this.#summaryTimer);
    this.#beatTimer = undefined;
    this.#sweepTimer = undefined;
    this.#answerTimer = undefined;
    this.#summaryTimer = undefined;
  }

  /**
   * Leaves the room: publishes what is batched and a goodbye (so the other
   * hubs end this hub's notes at once), then closes the connection.
   * Received messages not read yet are dropped. Closing twice does nothing;
   * a link not connected yet is just closed.
   *
   * @returns A promise that resolves once the connection is closed.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#stopTimers();
      this.#endInput(undefined, true);
      this.#room.clear();
      const open = this.#open;
      if (open === undefined) {
        // Connecting: it sees #closing once connected, and closes then.
        await this.#opening?.catch(() => {});
        return;
      }
      const nc = open.nc;
      if (this.#connected && !nc.isClosed()) {
        this.#flush();
        this.#publish(
          this.#settings.presenceSubject,
          encodeBye(this.#instance, this.#seq),
        );
        await atMost(nc.flush(), CLOSE_FLUSH_MS);
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
 * import { formatNatsLinkEvent } from "@x/midisock/nats";
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
 * assert.equal(
 *   formatNatsLinkEvent({ type: "unreported", joined: 40, left: 38, released: 12 }, { room: "stage" }),
 *   "40 more hubs joined and 38 left (room stage), not shown one by one; 12 notes ended",
 * );
 * assert.equal(
 *   formatNatsLinkEvent({ type: "full", maxRemotes: 256 }, { room: "stage" }),
 *   "room stage is full: frames of more than 256 other hubs are refused",
 * );
 * // A name is another hub's text: nothing in it can steer the terminal.
 * const sly = { ...hub, name: "\u009b2J\u202e" };
 * assert.equal(formatNatsLinkEvent({ type: "joined", hub: sly }), 'hub "\\u009b2J\\u202e" (0123456789abcdef) joined');
 * ```
 */
export function formatNatsLinkEvent(
  event: NatsLinkEvent,
  link?: { room: string },
): string {
  const where = link === undefined ? "" : ` room ${link.room}`;
  switch (event.type) {
    case "up":
      return `NATS link up: ${event.url}, room ${event.room}, as hub ${
        quote(event.name)
      } (${event.id})`;
    case "joined":
      return `hub ${quote(event.hub.name)} (${event.hub.id}) joined${where}`;
    case "left": {
      const why = event.reason === "goodbye"
        ? "said goodbye"
        : event.reason === "restart"
        ? "restarted"
        : "missed its heartbeats";
      return `hub ${
        quote(event.hub.name)
      } (${event.hub.id}) left${where}: ${why}; ${notes(event.released)} ended`;
    }
    case "unreported": {
      const room = link === undefined ? "" : ` (room ${link.room})`;
      return `${event.joined} more ${
        hubs(event.joined)
      } joined and ${event.left} left${room}, not shown one by one; ${
        notes(event.released)
      } ended`;
    }
    case "full":
      return `${
        link === undefined ? "the room" : `room ${link.room}`
      } is full: frames of more than ${event.maxRemotes} other hubs are refused`;
    case "conflict":
      return `another hub publishes under this hub's id ${event.id}${
        link === undefined ? "" : ` in room ${link.room}`
      }: give each hub its own`;
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

function notes(n: number): string {
  return `${n} ${n === 1 ? "note" : "notes"}`;
}

function hubs(n: number): string {
  return n === 1 ? "hub" : "hubs";
}

/**
 * Quotes a name another hub chose: JSON's escapes, and C1 controls and
 * bidirectional overrides escaped too, so that it cannot move the cursor
 * or reorder the line it is printed in.
 */
function quote(name: string): string {
  return JSON.stringify(name).replace(
    /[\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}
