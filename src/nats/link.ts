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

import { encodedLength, encodeInto } from "../codec/encode.ts";
import { checkMessage, type Message } from "../codec/messages.ts";
import { checkMessages } from "../codec/_check.ts";
import { PortClosedError } from "../errors.ts";
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
  encodeBeat,
  encodeBye,
  encodeMidiFrame,
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
import { type LeaveReason, type Remote, Room, TOKEN } from "./_room.ts";

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
  /** The batch being built, as large as a frame may be. */
  batch: Uint8Array;
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
 * - `send(msg)`: a message from a local endpoint. It is published on the
 *   hub's subject of the room; messages sent in one burst (before the event
 *   loop turns) share one NATS message, so an idle link adds no delay and a
 *   busy one publishes few, large messages.
 * - input (`for await`, `receive()`, ...): what the other hubs' endpoints
 *   sent, each hub's messages in its order, whole messages only, never this
 *   hub's own; hubs take turns when several send at once. When a hub
 *   leaves (goodbye, `missedBeats` beats missed, or a restart), a note_off
 *   comes for each note it left on.
 * - While NATS is unreachable the link stays open: `send` drops messages
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
 * await using hub = new Hub();
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
  #open: Open | undefined;
  #opening: Promise<void> | undefined;
  #connected = false;
  #server = "";
  #seq = 0;
  #batchLength = MIDI_HEADER_SIZE;
  #batchCount = 0;
  #flushQueued = false;
  #busy = false;
  #cancelTurn: (() => void) | undefined;
  #unflushed = 0;
  #flushing: Promise<void> | undefined;
  /** Waiting for room in the input queue. */
  #stalled = false;
  #beatTimer: ReturnType<typeof setInterval> | undefined;
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
   * called by {@linkcode Hub.attach}.
   *
   * @param hub The hub.
   * @returns A promise that resolves once the link is in the room and in
   * the hub.
   * @throws {NatsLinkError} When NATS cannot be joined.
   * @throws {PortClosedError} When the link was closed meanwhile.
   */
  async attach(hub: Hub): Promise<void> {
    await this.#connect();
    if (this.closed) throw new PortClosedError(this.name);
    hub.add(this, {
      kind: "link",
      transport: "nats",
      name: `room ${this.#settings.room}`,
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
      // A batch never outgrows what the server takes in one message.
      const limit = nc.info?.max_payload ?? settings.maxFrameBytes;
      this.#open = {
        nc,
        nextTurn,
        batch: new Uint8Array(
          Math.max(
            MIDI_HEADER_SIZE + 3,
            Math.min(settings.maxFrameBytes, limit),
          ),
        ),
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
    this.#beatTimer = setInterval(() => this.#beat(), heartbeat);
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
    this.#room.clear();
    this.#emit({ type: "failed", error });
  }

  #emit(event: NatsLinkEvent): void {
    callBack(this.#settings.onEvent, event);
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
    };
  }

  /** Moves waiting messages into the input queue, hubs in turn, while it has room. */
  #feed(): void {
    if (this.#stalled) return;
    const room = this.#room;
    for (let msg = room.peek(); msg !== undefined; msg = room.peek()) {
      if (!this.deliver(msg)) {
        if (this.closed) {
          room.clear();
          return;
        }
        this.#stalled = true;
        this.roomForMore().then(() => {
          this.#stalled = false;
          this.#feed();
        });
        return;
      }
      room.shift();
      this.#stats.received++;
    }
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

  #beat(): void {
    if (!this.#connected || this.closed || this.#open === undefined) return;
    const { heartbeat, name } = this.#settings;
    this.#lastBeat = performance.now();
    this.#publish(
      this.#settings.presenceSubject,
      encodeBeat(this.#instance, this.#seq, heartbeat, nameBytes(name)),
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
    const open = this.#open;
    if (!this.#connected || open === undefined) {
      this.#stats.unsent++;
      return;
    }
    const batch = open.batch;
    const size = encodedLength(msg);
    if (
      this.#batchLength + size > batch.length ||
      this.#batchCount === MAX_FRAME_MESSAGES
    ) {
      this.#flush();
    }
    if (MIDI_HEADER_SIZE + size > batch.length) {
      this.#publishAlone(msg);
      return;
    }
    this.#batchLength = encodeInto(msg, batch, this.#batchLength);
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
    this.#cancelTurn = this.#open!.nextTurn(this.#turn);
  }

  readonly #turn = (): void => {
    this.#cancelTurn = undefined;
    this.#busy = false;
    if (this.#batchCount === 0 || this.closed) return;
    this.#flush();
    this.#startTurn();
  };

  #publishAlone(msg: Message): void {
    const frame = encodeMidiFrame(this.#instance, this.#seq, [msg]);
    const limit = this.#open!.nc.info?.max_payload ?? Infinity;
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
    const batch = this.#open!.batch;
    writeHeader(batch, KIND_MIDI, this.#instance, this.#seq);
    writeCount(batch, count);
    const frame = batch.slice(0, this.#batchLength);
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
      this.finish(undefined, true);
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
