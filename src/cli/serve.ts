#!/usr/bin/env -S deno run --allow-net --allow-ffi --allow-read --allow-env=MIDISOCK_RTMIDI_PATH,MIDISOCK_RTMIDI_API,MIDISOCK_TOKEN
/**
 * `midisock serve`: a MIDI hub, wire-compatible with mido's socket ports.
 * With no options it listens on 127.0.0.1:8080 and every message a client
 * sends goes to every other client. Hardware inputs (`--in`) feed every
 * client, hardware outputs (`--out`) hear every client, `--virtual`
 * creates a virtual port pair for other programs.
 *
 * Run it with `deno run -A jsr:@x/midisock/serve`, or see `--help`.
 * Serving without hardware needs only `--allow-net`; `--in`, `--out` and
 * `--virtual` also need `--allow-ffi` and the RtMidi library.
 *
 * It is a shell around the library's {@linkcode Hub}: flags become a hub, a
 * `PortServer` whose clients join it, and hardware endpoints; the hub's
 * events become lines. Output, one line per event: `listening on ADDRESS
 * ...` first (the real port when 0 was asked for), with `--web` the line
 * `web page on URL` next, then `connect ADDRESS`,
 * `disconnect ADDRESS`, `refused ADDRESS (REASON)`, and with `--monitor` one
 * line per message: `TIME SOURCE TEXT`, where SOURCE is a client's
 * `host:port` or a hardware port's name in quotes and TEXT is mido's text
 * form. Errors go to stderr as `midisock serve: MESSAGE`; exit code 2 for
 * bad usage, 1 for a failure.
 *
 * @example Serving from the command line
 * ```sh
 * deno run -A jsr:@x/midisock/serve --monitor
 * deno run -A jsr:@x/midisock/serve 0.0.0.0:9000 --in "Keystation" --out "FLUID"
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { formatMessage } from "../codec/text.ts";
import { MIN_TOKEN_LENGTH } from "../gate.ts";
import { Hub, type HubEvent, type HubOptions } from "../hub/mod.ts";
import { AddressList } from "../access.ts";
import { formatAddress, parseAddress } from "../address.ts";
import { PortServer } from "../net/server.ts";
import { checkPem } from "../net/_tls.ts";
import type { WebServer } from "../web/server.ts";
import {
  CliError,
  clock,
  count,
  describeError,
  exposureWarning,
  type MainOptions,
  onStop,
  type OpenedPorts,
  openPorts,
  PACKAGE,
  parse,
  plural,
  portQuery,
  printInfo,
  readAddress,
  readApi,
  readFile,
  readToken,
  RefusalLog,
  report,
  seconds,
  UsageError,
  VERSION,
} from "./_common.ts";

export type { MainOptions } from "./_common.ts";

const COMMAND = "serve";
const DEFAULT_HOST = "127.0.0.1";
const DEFAULT_PORT = 8080;
const DEFAULT_WEB_PORT = DEFAULT_PORT + 1;

const HELP = `midisock serve ${VERSION}: a MIDI hub, compatible with mido

Usage: serve [ADDRESS] [OPTIONS]

ADDRESS is host:port, :port (every interface) or [::1]:port; the default is
${DEFAULT_HOST}:${DEFAULT_PORT}. As a hub (the default), every message a client sends
goes to every other client. Messages from --in ports go to every client;
--out ports receive every client's messages.

Options:
  -H, --host HOST      Host to listen on (instead of ADDRESS) [${DEFAULT_HOST}]
  -p, --port PORT      TCP port to listen on, 0 for any free one [${DEFAULT_PORT}]
  -i, --in NAME        Hardware input whose messages go to every client;
                       a name, a part of one, or an index (repeatable)
  -o, --out NAME       Hardware output that receives every client's messages
                       (repeatable)
      --virtual NAME   Create a virtual input/output pair called NAME for
                       other programs to connect to (repeatable)
      --api API        MIDI backend: alsa, jack, core or winmm
      --no-hub         Do not relay messages between clients
      --allow ADDR     Let only these addresses or CIDR ranges connect,
                       e.g. 192.168.1.0/24 or ::1 (repeatable, or a,b,c)
      --max-clients N  Refuse connections past N at once
      --no-sysex       Drop sysex in both directions
      --max-sysex N    Drop sysex longer than N data bytes
      --rate-limit R   Most messages per second from each client, as R or
                       R/BURST; the excess is dropped
      --token TOKEN    Require clients to send this shared secret first, at
                       least ${MIN_TOKEN_LENGTH} characters (midisock connect --token); or set
                       MIDISOCK_TOKEN
      --cert FILE      Serve TLS with this certificate chain (PEM) ...
      --key FILE       ... and this private key (PEM)
      --handshake-timeout S
                       Seconds a client has for TLS and its token [5]
      --idle-timeout S Drop clients that send nothing for S seconds [never]
      --max-queued N   Bytes that may wait for a client before it counts as
                       behind; behind for 2 s, it is dropped [1 MiB or twice
                       the largest sysex allowed]
      --max-queued-total N
                       Bytes that may wait for all clients together; past
                       it, clients are dropped, idle readers first [64 MiB
                       or 4 x --max-queued]
      --rtp PORT       Take part in RTP-MIDI sessions (Apple Network MIDI,
                       rtpMIDI) on UDP PORT and PORT+1; --allow applies
      --rtp-name NAME  The session's name for other computers [midisock]
      --rtp-bonjour    Advertise the session over Bonjour (_apple-midi._udp),
                       so Macs and rtpMIDI list it by itself
      --rtp-invite HOST:PORT
                       Invite a peer's RTP-MIDI session (repeatable)
      --web [ADDRESS]  Serve the hub's web page (monitor, keyboard, Web MIDI
                       bridge) and its WebSocket at ADDRESS [the MIDI host,
                       the next port: ${DEFAULT_HOST}:${DEFAULT_WEB_PORT}]; HTTPS with --cert
      --nats URL       Join other hubs through a NATS server (or cluster:
                       URL,URL); user:password@ or a token in the URL
      --room NAME      The room to share on NATS (with --nats)
      --nats-name NAME This hub's name for the others [the host name; with
                       no --allow-sys=hostname, hub- and 6 digits of its id]
      --nats-id ID     This hub's id in the room: its subjects end in it, for
                       NATS permissions (docs/scaling-out.md) [random]
      --nats-creds FILE  NATS credentials file (JWT and seed)
      --nats-ca FILE   Trust this CA for the NATS server's TLS certificate
      --nats-cert FILE Client certificate for NATS (with --nats-key)
      --nats-key FILE  Its private key
  -m, --monitor        Print each message: time, source, mido text form
  -q, --quiet          Print nothing but errors
  -h, --help           Print this help and exit
  -V, --version        Print the version and exit

Output: one line per event ("listening on", "connect", "disconnect",
"refused"; with --monitor "TIME SOURCE MESSAGE"). A client that leaves with
notes on gets a note_off for each, sent where its notes went. Ctrl-C or
SIGTERM stops reading, sends note_off for notes still held, closes every
client and exits 0. Exit code 2 means bad usage, 1 a failure (port in use,
missing permission, no RtMidi, no such port).

Security: by default serve binds loopback only. Bound beyond loopback without
--allow it warns at start: whoever reaches the port can play and send sysex.

Examples:
  # A hub on 127.0.0.1:8080; clients hear each other
  deno run -A jsr:${PACKAGE}/serve

  # Every interface, port 9000, printing every message
  deno run -A jsr:${PACKAGE}/serve :9000 --monitor

  # Share a keyboard with the network and play the network on a synth
  deno run -A jsr:${PACKAGE}/serve --in Keystation --out FLUID --no-hub

  # A virtual port pair other MIDI programs can connect to (JACK)
  deno run -A jsr:${PACKAGE}/serve --virtual midisock --api jack

  # A LAN studio: only the LAN, no sysex, TLS, at most 8 clients
  deno run -A jsr:${PACKAGE}/serve :8080 --allow 192.168.1.0/24 --no-sysex \\
    --cert cert.pem --key key.pem --max-clients 8

  # Join Apple Network MIDI: a session other Macs and rtpMIDI can reach
  deno run -A jsr:${PACKAGE}/serve :8080 --rtp 5004 --allow 192.168.1.0/24

  # The web page on http://127.0.0.1:8081/ too (phones: :8080 --web)
  deno run -A jsr:${PACKAGE}/serve --web

  # Share room "studio" with hubs on other machines, through NATS
  deno run -A jsr:${PACKAGE}/serve --nats nats://nats.example:4222 --room studio

  # Send a note from Python's mido
  python3 -c "import mido, mido.sockets as s; s.connect('127.0.0.1', 8080).send(mido.Message('note_on', note=60))"
`;

/** The command line, read. */
interface ServeConfig {
  hostname: string;
  port: number;
  inputs: (string | number)[];
  outputs: (string | number)[];
  virtual: string[];
  api: ReturnType<typeof readApi>;
  monitor: boolean;
  quiet: boolean;
  /** What the hub is made with. */
  hub: HubOptions;
  tls: Deno.TlsCertifiedKeyPem | undefined;
  /** A link to other hubs, when asked for. */
  nats: NatsConfig | undefined;
  /** An RTP-MIDI session, when asked for. */
  rtp: RtpConfig | undefined;
  /** Where the web page is served, when asked for. */
  web: { hostname: string; port: number } | undefined;
}

/** The RTP-MIDI flags. */
interface RtpConfig {
  port: number;
  name: string;
  invite: { hostname: string; port: number }[];
  /** Advertise over Bonjour. */
  bonjour: boolean;
}

/** The NATS flags. */
interface NatsConfig {
  url: string;
  room: string;
  name?: string;
  id?: string;
  credsFile?: string;
  tls?: { caFile?: string; certFile?: string; keyFile?: string };
}

function readArgs(args: string[]): ServeConfig | "help" | "version" {
  const { values, positionals } = parse(() =>
    parseArgs({
      args: webWithoutAddress(args),
      strict: true,
      allowPositionals: true,
      options: {
        host: { type: "string", short: "H" },
        port: { type: "string", short: "p" },
        in: { type: "string", short: "i", multiple: true },
        out: { type: "string", short: "o", multiple: true },
        virtual: { type: "string", multiple: true },
        api: { type: "string" },
        "no-hub": { type: "boolean" },
        allow: { type: "string", multiple: true },
        "max-clients": { type: "string" },
        "no-sysex": { type: "boolean" },
        "max-sysex": { type: "string" },
        "rate-limit": { type: "string" },
        token: { type: "string" },
        cert: { type: "string" },
        key: { type: "string" },
        "handshake-timeout": { type: "string" },
        "idle-timeout": { type: "string" },
        "max-queued": { type: "string" },
        "max-queued-total": { type: "string" },
        rtp: { type: "string" },
        "rtp-name": { type: "string" },
        "rtp-bonjour": { type: "boolean" },
        "rtp-invite": { type: "string", multiple: true },
        web: { type: "string" },
        nats: { type: "string" },
        room: { type: "string" },
        "nats-name": { type: "string" },
        "nats-id": { type: "string" },
        "nats-creds": { type: "string" },
        "nats-ca": { type: "string" },
        "nats-cert": { type: "string" },
        "nats-key": { type: "string" },
        monitor: { type: "boolean", short: "m" },
        quiet: { type: "boolean", short: "q" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "V" },
      },
    })
  );
  if (values.help) return "help";
  if (values.version) return "version";
  if (positionals.length > 1) {
    throw new UsageError(
      `expected at most one ADDRESS: got ${
        positionals.map((p) => JSON.stringify(p)).join(" ")
      }`,
    );
  }
  if (values.monitor && values.quiet) {
    throw new UsageError("--monitor and --quiet cannot be used together");
  }
  const names = (list: string[] | undefined, flag: string) =>
    (list ?? []).map((name) => {
      if (name.trim() === "") throw new UsageError(`${flag} needs a name`);
      return name;
    });
  const { hostname, port } = readAddress(
    positionals[0],
    values.host,
    values.port,
    { hostname: DEFAULT_HOST, port: DEFAULT_PORT },
  );
  if ((values.cert === undefined) !== (values.key === undefined)) {
    throw new UsageError("--cert and --key go together");
  }
  return {
    hostname,
    port,
    inputs: names(values.in, "--in").map(portQuery),
    outputs: names(values.out, "--out").map(portQuery),
    virtual: names(values.virtual, "--virtual"),
    api: readApi(values.api),
    monitor: values.monitor ?? false,
    quiet: values.quiet ?? false,
    hub: {
      relay: !values["no-hub"],
      releaseNotes: true,
      ...readPolicy(values),
    },
    tls: values.cert === undefined || values.key === undefined ? undefined : {
      cert: readFile("--cert", values.cert),
      key: readFile("--key", values.key),
    },
    nats: readNats(values),
    rtp: readRtp(values),
    web: readWeb(values.web, hostname, port),
  };
}

/** The RTP-MIDI flags, checked. */
function readRtp(values: {
  rtp?: string;
  "rtp-name"?: string;
  "rtp-invite"?: string[];
  "rtp-bonjour"?: boolean;
}): RtpConfig | undefined {
  if (values.rtp === undefined) {
    if (values["rtp-name"] !== undefined) {
      throw new UsageError("--rtp-name goes with --rtp");
    }
    if (values["rtp-invite"] !== undefined) {
      throw new UsageError("--rtp-invite goes with --rtp");
    }
    if (values["rtp-bonjour"]) {
      throw new UsageError("--rtp-bonjour goes with --rtp");
    }
    return undefined;
  }
  const port = count("--rtp", values.rtp, 0);
  if (port > 65534) {
    throw new UsageError(
      `--rtp must be a UDP port of at most 65534 (PORT+1 is data): got ${port}`,
    );
  }
  const name = values["rtp-name"] ?? "midisock";
  if (name.trim() === "") throw new UsageError("--rtp-name needs a name");
  const invite = (values["rtp-invite"] ?? []).map((text) => {
    try {
      return parseAddress(text, 5004);
    } catch (error) {
      throw new UsageError(`--rtp-invite: ${(error as Error).message}`);
    }
  });
  return { port, name, invite, bonjour: values["rtp-bonjour"] === true };
}

/** A bare `--web` (last, or before another flag) takes no ADDRESS. */
function webWithoutAddress(args: string[]): string[] {
  return args.map((arg, i) =>
    arg === "--web" && (args[i + 1] === undefined || args[i + 1][0] === "-")
      ? "--web="
      : arg
  );
}

/** The web page's address: given, or the MIDI host and the next port. */
function readWeb(
  value: string | undefined,
  hostname: string,
  port: number,
): ServeConfig["web"] {
  if (value === undefined) return undefined;
  if (port === 65535 && value === "") {
    throw new UsageError("--web needs an ADDRESS when the port is 65535");
  }
  const beside = port === 0 ? 0 : port + 1;
  return readAddress(value || undefined, undefined, undefined, {
    hostname,
    port: beside,
  });
}

/** The NATS flags, checked. */
function readNats(values: {
  nats?: string;
  room?: string;
  "nats-name"?: string;
  "nats-id"?: string;
  "nats-creds"?: string;
  "nats-ca"?: string;
  "nats-cert"?: string;
  "nats-key"?: string;
}): NatsConfig | undefined {
  const others = [
    "room",
    "nats-name",
    "nats-id",
    "nats-creds",
    "nats-ca",
    "nats-cert",
    "nats-key",
  ] as const;
  if (values.nats === undefined) {
    const stray = others.find((flag) => values[flag] !== undefined);
    if (stray !== undefined) {
      throw new UsageError(`--${stray} goes with --nats`);
    }
    return undefined;
  }
  if (values.room === undefined || values.room.trim() === "") {
    throw new UsageError("--nats needs --room NAME: the room to share");
  }
  if (
    (values["nats-cert"] === undefined) !== (values["nats-key"] === undefined)
  ) {
    throw new UsageError("--nats-cert and --nats-key go together");
  }
  const tls =
    values["nats-ca"] !== undefined || values["nats-cert"] !== undefined
      ? {
        caFile: values["nats-ca"],
        certFile: values["nats-cert"],
        keyFile: values["nats-key"],
      }
      : undefined;
  return {
    url: values.nats,
    room: values.room,
    name: values["nats-name"],
    id: values["nats-id"],
    credsFile: values["nats-creds"],
    tls,
  };
}

/** The security and bound flags, as hub options. */
function readPolicy(values: {
  allow?: string[];
  "max-clients"?: string;
  "no-sysex"?: boolean;
  "max-sysex"?: string;
  "rate-limit"?: string;
  token?: string;
  "handshake-timeout"?: string;
  "idle-timeout"?: string;
  "max-queued"?: string;
  "max-queued-total"?: string;
}): HubOptions {
  const options: HubOptions = {};
  if (values.allow !== undefined) {
    const rules = values.allow.flatMap((list) => list.split(","));
    try {
      for (const warning of new AddressList(rules).warnings) {
        console.error(`midisock ${COMMAND}: warning: --allow: ${warning}`);
      }
    } catch (error) {
      throw new UsageError(`--allow: ${(error as Error).message}`);
    }
    options.allow = rules;
  }
  if (values["max-clients"] !== undefined) {
    options.maxClients = count("--max-clients", values["max-clients"], 1);
  }
  if (values["no-sysex"] && values["max-sysex"] !== undefined) {
    throw new UsageError("--no-sysex and --max-sysex cannot be used together");
  }
  if (values["no-sysex"]) options.sysexIn = options.sysexOut = "drop";
  if (values["max-sysex"] !== undefined) {
    options.sysexIn = options.sysexOut = count(
      "--max-sysex",
      values["max-sysex"],
      0,
    );
  }
  if (values["rate-limit"] !== undefined) {
    const match = values["rate-limit"].match(/^(\d+)(?:\/(\d+))?$/);
    if (match === null || Number(match[1]) < 1) {
      throw new UsageError(
        `--rate-limit must be MESSAGES or MESSAGES/BURST (per second, at least 1): got ${
          JSON.stringify(values["rate-limit"])
        }`,
      );
    }
    options.rateLimit = {
      messages: Number(match[1]),
      burst: Number(match[2] ?? match[1]),
    };
  }
  options.token = readToken(values.token);
  if (
    options.token !== undefined && options.token.length < MIN_TOKEN_LENGTH
  ) {
    throw new UsageError(
      `--token must be at least ${MIN_TOKEN_LENGTH} characters: a shorter ` +
        `one can be guessed (got ${options.token.length})`,
    );
  }
  if (values["handshake-timeout"] !== undefined) {
    options.handshakeTimeout = seconds(
      "--handshake-timeout",
      values["handshake-timeout"],
    );
  }
  if (values["idle-timeout"] !== undefined) {
    options.idleTimeout = seconds("--idle-timeout", values["idle-timeout"]);
  }
  if (values["max-queued"] !== undefined) {
    options.maxQueuedBytes = count("--max-queued", values["max-queued"], 1);
  }
  if (values["max-queued-total"] !== undefined) {
    options.maxQueuedTotal = count(
      "--max-queued-total",
      values["max-queued-total"],
      1,
    );
  }
  return options;
}

/** The running hub: a server, hardware endpoints, and the lines it prints. */
class Serve {
  readonly #config: ServeConfig;
  readonly #say: (line: string) => void;
  readonly #hub: Hub;
  readonly #refusals: RefusalLog;
  #server: PortServer | undefined;
  #web: WebServer | undefined;
  #ports: OpenedPorts | undefined;
  #rtp: { close(): Promise<void> } | undefined;
  #bonjour: { close(): Promise<void> } | undefined;
  #released = 0;

  constructor(config: ServeConfig) {
    this.#config = config;
    this.#say = config.quiet ? () => {} : (line) => console.log(line);
    this.#refusals = new RefusalLog(this.#say);
    this.#hub = new Hub(config.hub);
    this.#hub.listen((event) => this.#print(event), {
      messages: config.monitor,
    });
  }

  /** Binds the server and opens the hardware; throws phrased errors. */
  async start(): Promise<void> {
    const { hostname, port, tls } = this.#config;
    const where = formatAddress({ hostname, port });
    if (tls !== undefined) {
      try {
        await checkPem(tls);
      } catch (error) {
        throw new CliError(
          `cannot serve TLS with --cert and --key: ${describeError(error)}`,
          { cause: error },
        );
      }
    }
    try {
      this.#server = new PortServer(hostname, port, { tls });
    } catch (error) {
      if (error instanceof Deno.errors.AddrInUse) {
        throw new CliError(
          `cannot listen on ${where}: the address is already in use ` +
            "(is another server running? choose another port with --port)",
          { cause: error },
        );
      }
      if (error instanceof Deno.errors.NotCapable) throw error;
      throw new CliError(`cannot listen on ${where}: ${describeError(error)}`, {
        cause: error,
      });
    }
    await this.#hub.attach(this.#server);
    if (this.#config.web !== undefined) await this.#serveWeb(this.#config.web);
    // Each hardware port is a device endpoint, again each time it is back.
    this.#ports = await openPorts(this.#config, this.#say, this.#hub);
    if (this.#config.rtp !== undefined) await this.#session(this.#config.rtp);
    if (this.#config.nats !== undefined) await this.#link(this.#config.nats);
  }

  /** Opens an RTP-MIDI session: each participant joins the hub. */
  async #session(rtp: RtpConfig): Promise<void> {
    const { RtpMidiSession } = await import("../rtp/session.ts");
    const session = new RtpMidiSession({
      host: this.#config.hostname,
      port: rtp.port,
      name: rtp.name,
    });
    this.#rtp = session;
    try {
      // Each participant joins the hub as a client, under its gate.
      await this.#hub.attach(session);
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable) throw error;
      throw new CliError(
        `cannot open the RTP-MIDI session on UDP ${rtp.port}: ${
          describeError(error)
        }`,
        { cause: error },
      );
    }
    this.#say(
      `RTP-MIDI session ${JSON.stringify(rtp.name)} on ${
        formatAddress({ hostname: this.#config.hostname, port: session.port })
      } (data ${session.port + 1})`,
    );
    if (rtp.bonjour) {
      // Loaded only now: a session without Bonjour never loads mDNS.
      const { advertiseRtpMidi } = await import("../rtp/bonjour.ts");
      try {
        const bonjour = await advertiseRtpMidi(session);
        this.#bonjour = bonjour;
        this.#say(
          `advertising ${
            JSON.stringify(bonjour.instance)
          } over Bonjour (host ${bonjour.host})`,
        );
      } catch (error) {
        if (error instanceof Deno.errors.NotCapable) throw error;
        this.#say(`cannot advertise over Bonjour: ${describeError(error)}`);
      }
    }
    for (const peer of rtp.invite) {
      const where = formatAddress(peer);
      session.invite(peer.hostname, peer.port).catch((error) =>
        this.#say(`rtp invitation to ${where} failed: ${describeError(error)}`)
      );
    }
  }

  /** Joins the room on NATS: the link is one more endpoint of the hub. */
  async #link(nats: NatsConfig): Promise<void> {
    // Loaded only now: serving without NATS never loads its client.
    const { formatNatsLinkEvent, NatsLink } = await import("../nats/link.ts");
    const link = await this.#hub.attach(
      new NatsLink(nats.url, {
        room: nats.room,
        name: nats.name,
        id: nats.id,
        credsFile: nats.credsFile,
        tls: nats.tls,
        onEvent: (event) =>
          this.#say(formatNatsLinkEvent(event, { room: nats.room })),
      }),
    );
    this.#say(
      `NATS link up: ${link.url}, room ${link.room}, as hub ${
        JSON.stringify(link.hubName)
      } (${link.id})`,
    );
  }

  /** Serves the web page: each page that opens is one more endpoint. */
  async #serveWeb(address: { hostname: string; port: number }): Promise<void> {
    // Loaded only now: serving without --web never loads the page.
    const { WebServer } = await import("../web/server.ts");
    try {
      this.#web = await this.#hub.attach(
        new WebServer({ ...address, tls: this.#config.tls }),
      );
    } catch (error) {
      const where = formatAddress(address);
      if (error instanceof Deno.errors.AddrInUse) {
        throw new CliError(
          `cannot serve the web page on ${where}: the address is already in ` +
            "use (choose another with --web ADDRESS)",
          { cause: error },
        );
      }
      if (error instanceof Deno.errors.NotCapable) throw error;
      throw new CliError(
        `cannot serve the web page on ${where}: ${describeError(error)}`,
        { cause: error },
      );
    }
  }

  /** Closes what `start` opened, after it failed. */
  async abandon(): Promise<void> {
    await this.#web?.close();
    await this.#server?.close();
    await this.#bonjour?.close();
    await this.#rtp?.close();
    await this.#hub.close();
    await this.#ports?.close();
  }

  /** Serves until stopped, then shuts down cleanly. */
  async run(signal?: AbortSignal): Promise<void> {
    const { promise: stopped, resolve: stop } = Promise.withResolvers<void>();
    const removeListeners = onStop(stop, signal);
    try {
      this.#announce(this.#server!);
      await stopped;
      const clients = this.#hub.endpoints.filter((e) => e.kind === "client");
      this.#released = 0;
      await this.#hub.close();
      await this.#web?.close();
      await this.#server!.close();
      await this.#bonjour?.close();
      await this.#rtp?.close();
      await this.#ports?.close();
      this.#refusals.flush();
      this.#say(
        `stopped: closed ${plural(clients.length, "client")}, released ${
          plural(this.#released, "held note")
        }`,
      );
    } finally {
      removeListeners();
    }
  }

  #announce(server: PortServer): void {
    const { hostname, port } = server.addr;
    const warning = exposureWarning(
      server.name,
      hostname,
      this.#hub.gate.hasAllowList,
    );
    if (warning !== undefined) console.error(`midisock ${COMMAND}: ${warning}`);
    const mode = this.#config.hub.relay ? "hub" : "no hub";
    this.#say(
      `listening on ${server.name} (${mode}); connect with: ${
        connectHint(hostname, port, this.#config)
      }`,
    );
    if (this.#web !== undefined) this.#announceWeb(this.#web);
  }

  #announceWeb(web: WebServer): void {
    const { hostname } = web.addr;
    const warning = exposureWarning(
      web.name,
      hostname,
      this.#hub.gate.hasAllowList,
    );
    if (warning !== undefined) console.error(`midisock ${COMMAND}: ${warning}`);
    const everywhere = hostname === "::" || hostname === "0.0.0.0"
      ? " (every interface: from other devices, use this machine's address)"
      : "";
    this.#say(`web page on ${web.url}${everywhere}`);
  }

  #print(event: HubEvent): void {
    switch (event.type) {
      case "join":
        if (event.endpoint.kind !== "client") return;
        this.#say(`connect ${event.endpoint.name} (${this.#count()})`);
        return;
      case "leave": {
        this.#released += event.released;
        // Hardware ports say "lost" themselves; links say why they close.
        if (event.endpoint.kind !== "client") return;
        if (this.#hub.closed) return;
        const released = event.released === 0
          ? ""
          : `, released ${plural(event.released, "held note")}`;
        const why = event.reason === undefined
          ? ""
          : `: ${describeError(event.reason)}`;
        this.#say(
          `disconnect ${event.endpoint.name} (${this.#count()}${released})${why}`,
        );
        return;
      }
      case "refuse": {
        const { peer, reason } = event.refusal;
        this.#refusals.add(
          formatAddress({ hostname: peer.hostname, port: peer.port ?? 0 }),
          peer.hostname,
          reason,
        );
        return;
      }
      case "message":
        this.#say(
          `${clock()} ${event.endpoint.name} ${formatMessage(event.message)}`,
        );
        return;
      case "warning":
        console.error(`midisock ${COMMAND}: ${event.message}`);
        return;
      case "missed":
        return;
    }
  }

  #count(): string {
    const n = this.#hub.endpoints.filter((e) => e.kind === "client").length;
    return plural(n, "client");
  }
}

/** How to reach this server, as serve's first line says. */
function connectHint(
  hostname: string,
  port: number,
  config: ServeConfig,
): string {
  const wildcard = hostname === "::" || hostname === "0.0.0.0";
  const reachable = wildcard ? "127.0.0.1" : hostname;
  const address = formatAddress({ hostname: reachable, port });
  const flags = [
    config.tls !== undefined ? " --tls --ca CA.pem" : "",
    config.hub.token !== undefined ? " --token TOKEN" : "",
  ].join("");
  const deno = `deno run -A jsr:${PACKAGE}/connect ${address}${flags}`;
  // mido 1.2 connects over IPv4 only, with no token and no TLS.
  const mido = !reachable.includes(":") && config.tls === undefined &&
    config.hub.token === undefined;
  return mido
    ? `${deno} or mido.sockets.connect(${JSON.stringify(reachable)}, ${port})`
    : deno;
}

/**
 * Runs `midisock serve` with the given command-line arguments, until
 * SIGINT/SIGTERM (or `options.signal`) stops it.
 *
 * @param args The arguments, as `Deno.args` gives them.
 * @param options `signal`: another way to stop it.
 * @returns The exit code: 0 after a clean shutdown or `--help`, 2 for bad
 * usage, 1 for a failure (each reported in one line on stderr).
 *
 * @example Running the server inside a program
 * ```ts ignore
 * import { main } from "@x/midisock/serve";
 *
 * const controller = new AbortController();
 * const done = main(["127.0.0.1:9000", "--monitor"], {
 *   signal: controller.signal,
 * });
 * setTimeout(() => controller.abort(), 10_000);
 * Deno.exitCode = await done;
 * ```
 */
export async function main(
  args: string[],
  options: MainOptions = {},
): Promise<number> {
  let serve: Serve | undefined;
  try {
    const config = readArgs(args);
    if (config === "help" || config === "version") {
      return printInfo(config, HELP);
    }
    serve = new Serve(config);
    await serve.start();
  } catch (error) {
    await serve?.abandon();
    return report(COMMAND, error);
  }
  await serve.run(options.signal);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
