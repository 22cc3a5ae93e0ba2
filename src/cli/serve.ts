#!/usr/bin/env -S deno run --allow-net --allow-ffi --allow-read --allow-sys=hostname --allow-env=MIDISOCK_RTMIDI_PATH,MIDISOCK_RTMIDI_API,MIDISOCK_TOKEN
/**
 * `midisock serve`: a MIDI hub, wire-compatible with mido's socket ports.
 * With no options it listens on 127.0.0.1:8080 and every message a client
 * sends goes to every other client; hardware ports, the web page, RTP-MIDI
 * sessions and other hubs (NATS) join the same hub when asked for.
 *
 * It is a shell over the library: flags become a {@linkcode Hub} and the
 * transports attached to it, the hub's events become lines (see `--help`).
 * Errors go to stderr as `midisock serve: MESSAGE`; exit code 2 for bad
 * usage, 1 for a failure.
 *
 * @example Serving from the command line
 * ```sh
 * deno run -A jsr:@x/midisock/serve --monitor
 * deno run -A jsr:@x/midisock/serve 0.0.0.0:9000 --in "Keystation" --out "FLUID"
 * ```
 *
 * @module
 */

import { formatMessage } from "../codec/text.ts";
import { AddressList } from "../access.ts";
import { type Address, formatAddress, parseAddress } from "../address.ts";
import { MIN_TOKEN_LENGTH } from "../gate.ts";
import { Hub, type HubEvent, type HubOptions } from "../hub/mod.ts";
import { PortServer } from "../net/server.ts";
import { checkPem } from "../net/_tls.ts";
import type { Transport } from "../transport.ts";
import {
  APIS,
  CliError,
  clock,
  commandFor,
  describeError,
  exposureWarning,
  type MainOptions,
  onStop,
  PACKAGE,
  plural,
  portQuery,
  printInfo,
  readAddress,
  readApi,
  readFile,
  RefusalLog,
  report,
  UsageError,
  VERSION,
} from "./_common.ts";
import {
  asUsage,
  count,
  flagsOf,
  latency,
  parseFlags,
  rate,
  seconds,
  token,
} from "./_flags.ts";

export type { MainOptions } from "./_common.ts";

const COMMAND = "serve";
const HOST = "127.0.0.1";
const PORT = 8080;

const OPTIONS = `Options:
  -H, --host HOST         Host to listen on [${HOST}]
  -p, --port PORT         TCP port, 0 for any free one [${PORT}]
  -i, --in NAME...        Hardware input that plays to every client: a name,
                          a part of one, or an index (repeatable)
  -o, --out NAME...       Hardware output that plays every client
      --virtual NAME...   A virtual port pair for other programs
      --api API           MIDI backend: ${APIS.join(", ")}
      --no-hub            Do not relay messages between clients
      --allow ADDR...     Let only these addresses or CIDR ranges in, e.g.
                          192.168.1.0/24 or ::1 (repeatable, or a,b,c)
      --max-clients N     Refuse connections past N
      --no-sysex          Drop sysex both ways
      --max-sysex N       Drop sysex of more than N data bytes
      --rate-limit R      Most messages a second from each client: R or
                          R/BURST; the excess is dropped, never a note's end
      --link-rate-limit R The same for each link to other hubs (NATS)
      --token TOKEN       A shared secret clients send first (connect
                          --token), ${MIN_TOKEN_LENGTH} characters or more; or MIDISOCK_TOKEN
      --cert FILE         Serve TLS with this certificate chain (PEM) ...
      --key FILE          ... and this private key (PEM)
      --handshake-timeout S  Seconds a client has for TLS and its token [5]
      --idle-timeout S    Drop clients that send nothing for S seconds
      --max-queued N      Bytes waiting for a client before it is behind
                          [2 MiB + 4, or twice the longest sysex let out]
      --max-queued-total N  Bytes waiting for all clients together [64 MiB]
      --latency MS        Play each message at its time + MS (a jitter
                          buffer for clients and hardware); auto: the least
                          that keeps 99.9% on time [0: at once]
      --web [ADDRESS]     Serve the web page and its WebSocket [the next port]
      --rtp PORT          Join RTP-MIDI sessions on UDP PORT and PORT+1
      --rtp-name NAME     The session's name [midisock]
      --rtp-bonjour       Advertise the session over Bonjour
      --rtp-invite HOST:PORT...  Invite a peer's session (repeatable)
      --nats URL          Share a room with other hubs through NATS
                          (URL,URL: a cluster; credentials in the URL)
      --room NAME         The room to share (with --nats)
      --nats-name NAME    This hub's name for the others [the host name]
      --nats-id ID        This hub's id in the room [random]
      --nats-creds FILE   NATS credentials file (JWT and seed)
      --nats-ca FILE      Trust this CA for NATS's TLS certificate
      --nats-cert FILE    A client certificate for NATS ...
      --nats-key FILE     ... and its private key
  -m, --monitor           Print each message: time, source, mido text
  -q, --quiet             Print nothing but errors
  -h, --help              Print this help and exit
  -V, --version           Print the version and exit`;

const FLAGS = flagsOf(OPTIONS);

const HELP = `midisock serve ${VERSION}: a MIDI hub, compatible with mido

Usage: serve [ADDRESS] [OPTIONS]

ADDRESS is host:port, :port (every interface) or [::1]:port [${HOST}:${PORT}].
Every message a client sends goes to every other client, to --out ports,
pages, RTP-MIDI peers and other hubs; --in ports play to all of them.

${OPTIONS}

Output: one line per event ("listening on", "connect", "disconnect",
"refused"; with --monitor "TIME SOURCE MESSAGE"). A client that leaves with
notes on gets a note_off for each. Ctrl-C or SIGTERM releases held notes,
closes everything and exits 0. Exit code 2 means bad usage, 1 a failure.
Bound beyond loopback without --allow, serve warns: whoever reaches the
port can play and send sysex.

Examples:
  deno run -A jsr:${PACKAGE}/serve :9000 --monitor
  deno run -A jsr:${PACKAGE}/serve --in Keystation --out FLUID --no-hub
  deno run -A jsr:${PACKAGE}/serve --virtual midisock --api jack
  deno run -A jsr:${PACKAGE}/serve :8080 --allow 192.168.1.0/24 --no-sysex \\
    --cert cert.pem --key key.pem --max-clients 8
  deno run -A jsr:${PACKAGE}/serve :8080 --rtp 5004 --latency 20
  deno run -A jsr:${PACKAGE}/serve --web
  deno run -A jsr:${PACKAGE}/serve --nats nats://nats.example:4222 --room studio
  python3 -c "import mido, mido.sockets as s; s.connect('127.0.0.1', 8080).send(mido.Message('note_on', note=60))"
`;

/** The command line, read. */
interface ServeConfig {
  address: Address;
  hub: HubOptions;
  tls: Deno.TlsCertifiedKeyPem | undefined;
  hardware: {
    inputs: (string | number)[];
    outputs: (string | number)[];
    virtual: string[];
    api: ReturnType<typeof readApi>;
  };
  web: Address | undefined;
  rtp:
    | { port: number; name: string; invite: Address[]; bonjour: boolean }
    | undefined;
  nats: {
    url: string;
    room: string;
    name?: string;
    id?: string;
    credsFile?: string;
    tls?: { caFile?: string; certFile?: string; keyFile?: string };
  } | undefined;
  monitor: boolean;
  quiet: boolean;
}

type Values = Record<string, string | string[] | boolean | undefined>;

function readArgs(args: string[]): ServeConfig | "help" | "version" {
  // A bare --web (last, or before another flag) takes no ADDRESS.
  const { values, positionals } = parseFlags(
    args.map((arg, i) =>
      arg === "--web" && (args[i + 1] === undefined || args[i + 1][0] === "-")
        ? "--web="
        : arg
    ),
    FLAGS,
  );
  if (values.help) return "help";
  if (values.version) return "version";
  const text = (name: string) => values[name] as string | undefined;
  const list = (name: string) => (values[name] as string[] | undefined) ?? [];
  if (positionals.length > 1) {
    throw new UsageError(
      `expected at most one ADDRESS: got ${positionals.join(" ")}`,
    );
  }
  if (values.monitor && values.quiet) {
    throw new UsageError("--monitor and --quiet cannot be used together");
  }
  if ((text("cert") === undefined) !== (text("key") === undefined)) {
    throw new UsageError("--cert and --key go together");
  }
  const address = readAddress(positionals[0], text("host"), text("port"), {
    hostname: HOST,
    port: PORT,
  });
  return {
    address,
    hub: readPolicy(values),
    tls: text("cert") === undefined ? undefined : {
      cert: readFile("--cert", text("cert")!),
      key: readFile("--key", text("key")!),
    },
    hardware: {
      inputs: list("in").map(portQuery),
      outputs: list("out").map(portQuery),
      virtual: list("virtual").map((name) => String(portQuery(name))),
      api: readApi(text("api")),
    },
    web: readWeb(text("web"), address),
    rtp: readRtp(values),
    nats: readNats(values),
    monitor: values.monitor === true,
    quiet: values.quiet === true,
  };
}

/** The web page's address: given, or the MIDI host and the next port. */
function readWeb(
  value: string | undefined,
  midi: Address,
): Address | undefined {
  if (value === undefined) return undefined;
  if (midi.port === 65535 && value === "") {
    throw new UsageError("--web needs an ADDRESS when the port is 65535");
  }
  return readAddress(value || undefined, undefined, undefined, {
    hostname: midi.hostname,
    port: midi.port === 0 ? 0 : midi.port + 1,
  });
}

function goesWith(values: Values, flags: string[], main: string): void {
  const stray = flags.find((flag) => values[flag] !== undefined);
  if (stray !== undefined) {
    throw new UsageError(`--${stray} goes with --${main}`);
  }
}

function readRtp(values: Values): ServeConfig["rtp"] {
  if (values.rtp === undefined) {
    goesWith(values, ["rtp-name", "rtp-invite", "rtp-bonjour"], "rtp");
    return undefined;
  }
  const port = count("rtp", values.rtp as string, 0);
  if (port > 65534) {
    throw new UsageError(
      `--rtp must be a UDP port of at most 65534 (PORT+1 is data): got ${port}`,
    );
  }
  const name = (values["rtp-name"] as string | undefined) ?? "midisock";
  if (name.trim() === "") throw new UsageError("--rtp-name needs a name");
  const invite = ((values["rtp-invite"] as string[] | undefined) ?? []).map(
    (text) => {
      const where = text.includes(":") ? text : "";
      try {
        const address = parseAddress(where, 5004);
        if (address.hostname === "" || address.port === 0) {
          throw new Error(`expected HOST:PORT`);
        }
        return address;
      } catch (error) {
        throw new UsageError(
          `--rtp-invite must be HOST:PORT: got ${JSON.stringify(text)} (${
            (error as Error).message
          })`,
        );
      }
    },
  );
  return { port, name, invite, bonjour: values["rtp-bonjour"] === true };
}

function readNats(values: Values): ServeConfig["nats"] {
  const others = [
    "room",
    "nats-name",
    "nats-id",
    "nats-creds",
    "nats-ca",
    "nats-cert",
    "nats-key",
  ];
  if (values.nats === undefined) {
    goesWith(values, others, "nats");
    return undefined;
  }
  const text = (name: string) => values[name] as string | undefined;
  if (text("room") === undefined) {
    throw new UsageError("--nats needs --room NAME: the room to share");
  }
  if ((text("nats-cert") === undefined) !== (text("nats-key") === undefined)) {
    throw new UsageError("--nats-cert and --nats-key go together");
  }
  const tlsFiles = {
    caFile: text("nats-ca"),
    certFile: text("nats-cert"),
    keyFile: text("nats-key"),
  };
  return {
    url: text("nats")!,
    room: text("room")!,
    name: text("nats-name"),
    id: text("nats-id"),
    credsFile: text("nats-creds"),
    tls: Object.values(tlsFiles).some((file) => file !== undefined)
      ? tlsFiles
      : undefined,
  };
}

/** The security, bound and timing flags, as hub options. */
function readPolicy(values: Values): HubOptions {
  const text = (name: string) => values[name] as string | undefined;
  const options: HubOptions = { relay: !values["no-hub"], releaseNotes: true };
  if (values.allow !== undefined) {
    const rules = (values.allow as string[]).flatMap((list) => list.split(","));
    try {
      for (const warning of new AddressList(rules).warnings) {
        console.error(`midisock ${COMMAND}: warning: --allow: ${warning}`);
      }
    } catch (error) {
      throw new UsageError(`--allow: ${(error as Error).message}`);
    }
    options.allow = rules;
  }
  if (values["no-sysex"] && values["max-sysex"] !== undefined) {
    throw new UsageError("--no-sysex and --max-sysex cannot be used together");
  }
  if (values["no-sysex"]) options.sysexIn = options.sysexOut = "drop";
  const read: Record<string, (value: string) => void> = {
    "max-clients": (v) => options.maxClients = count("max-clients", v, 1),
    "max-sysex": (v) =>
      options.sysexIn = options.sysexOut = count("max-sysex", v, 0),
    "rate-limit": (v) => options.rateLimit = rate("rate-limit", v),
    "link-rate-limit": (v) =>
      options.linkRateLimit = rate("link-rate-limit", v),
    "handshake-timeout": (v) =>
      options.handshakeTimeout = seconds("handshake-timeout", v),
    "idle-timeout": (v) => options.idleTimeout = seconds("idle-timeout", v),
    "max-queued": (v) => options.maxQueuedBytes = count("max-queued", v, 1),
    "max-queued-total": (v) =>
      options.maxQueuedTotal = count("max-queued-total", v, 1),
    latency: (v) => options.latency = latency("latency", v),
  };
  for (const [flag, apply] of Object.entries(read)) {
    if (text(flag) !== undefined) apply(text(flag)!);
  }
  options.token = token(text("token"));
  if (options.token !== undefined && options.token.length < MIN_TOKEN_LENGTH) {
    throw new UsageError(
      `--token must be at least ${MIN_TOKEN_LENGTH} characters: a shorter ` +
        `one can be guessed (got ${options.token.length})`,
    );
  }
  return options;
}

/** Library option names as the flags that set them, for bad values. */
const OPTION_FLAGS = {
  maxQueuedTotal: "--max-queued-total",
  maxQueuedBytes: "--max-queued",
  maxClients: "--max-clients",
  idleTimeout: "--idle-timeout",
  handshakeTimeout: "--handshake-timeout",
  room: "--room",
  "Room name": "--room",
};

/** Attaches a transport, phrasing what keeps it from starting. */
async function attach<T extends Transport>(
  hub: Hub,
  make: () => T,
  what: string,
  flag: string,
): Promise<T> {
  try {
    return await hub.attach(asUsage(make, OPTION_FLAGS));
  } catch (error) {
    if (
      what === "" || error instanceof Deno.errors.NotCapable ||
      error instanceof CliError || error instanceof UsageError
    ) throw error;
    const why = error instanceof Deno.errors.AddrInUse && flag !== ""
      ? `the address is already in use (is another server running? choose another with ${flag})`
      : describeError(error);
    throw new CliError(`cannot ${what}: ${why}`, { cause: error });
  }
}

/** What serve says where it is. */
interface Places {
  server: PortServer;
  web?: { name: string; url: string; addr: Deno.NetAddr };
}

/** Builds the hub's transports from the command line. */
async function build(
  config: ServeConfig,
  hub: Hub,
  say: (line: string) => void,
): Promise<Places> {
  const { address, tls } = config;
  if (tls !== undefined) {
    await checkPem(tls).catch((error) => {
      throw new CliError(
        `cannot serve TLS with --cert and --key: ${describeError(error)}`,
      );
    });
  }
  const where = formatAddress(address);
  const places: Places = {
    server: await attach(
      hub,
      () => new PortServer(address.hostname, address.port, { tls }),
      `listen on ${where}`,
      "--port",
    ),
  };
  if (config.web !== undefined) {
    // Each feature's module is loaded only when it is used.
    const { WebServer } = await import("../web/server.ts");
    const idle = config.hub.idleTimeout;
    places.web = await attach(
      hub,
      () =>
        new WebServer({
          ...config.web!,
          tls,
          keepAlive: idle !== undefined && idle < 2000 ? idle / 2 : undefined,
        }),
      `serve the web page on ${formatAddress(config.web)}`,
      "--web ADDRESS",
    );
  }
  const { inputs, outputs, virtual, api } = config.hardware;
  if (inputs.length + outputs.length + virtual.length > 0) {
    const hardware = await import("../hardware/mod.ts");
    await attach(
      hub,
      () =>
        new hardware.MidiPorts({
          inputs,
          outputs,
          virtual,
          api,
          onEvent: (event) =>
            event.type === "error"
              ? console.error(
                `midisock ${COMMAND}: ${hardware.formatMidiPortsEvent(event)}`,
              )
              : say(hardware.formatMidiPortsEvent(event)),
        }),
      "",
      "",
    ).catch((error) => {
      if (api !== undefined || !(error instanceof hardware.RtMidiError)) {
        throw error;
      }
      throw new CliError(
        `${describeError(error)}; choose a MIDI backend with --api`,
        { cause: error },
      );
    });
  }
  if (config.rtp !== undefined) await session(hub, config, say);
  if (config.nats !== undefined) {
    const { formatNatsLinkEvent, NatsLink } = await import("../nats/link.ts");
    const { url, ...nats } = config.nats;
    const link = await attach(
      hub,
      () =>
        new NatsLink(url, {
          ...nats,
          onEvent: (event) =>
            say(formatNatsLinkEvent(event, { room: nats.room })),
        }),
      "join the NATS room",
      "",
    );
    say(
      `NATS link up: ${link.url}, room ${link.room}, as hub ${
        JSON.stringify(link.hubName)
      } (${link.id})`,
    );
  }
  return places;
}

/** Opens the RTP-MIDI session, its Bonjour advertisement and invitations. */
async function session(
  hub: Hub,
  config: ServeConfig,
  say: (line: string) => void,
): Promise<void> {
  const rtp = config.rtp!;
  const { RtpMidiSession } = await import("../rtp/session.ts");
  const session = await attach(
    hub,
    () =>
      new RtpMidiSession({
        host: config.address.hostname,
        port: rtp.port,
        name: rtp.name,
      }),
    `open the RTP-MIDI session on UDP ${rtp.port}`,
    "",
  );
  const where = formatAddress({
    hostname: config.address.hostname,
    port: session.port,
  });
  say(
    `RTP-MIDI session ${JSON.stringify(rtp.name)} on ${where} (data ${
      session.port + 1
    })`,
  );
  if (hub.gate.wantsToken) {
    console.error(
      `midisock ${COMMAND}: warning: RTP-MIDI cannot carry a token: --token does not protect --rtp (use --allow)`,
    );
  }
  if (rtp.bonjour) {
    const { advertiseRtpMidi } = await import("../rtp/bonjour.ts");
    try {
      const bonjour = await advertiseRtpMidi(session);
      // A transport of its own: the hub says goodbye before the session closes.
      await hub.attach({
        name: "bonjour",
        attach: () => Promise.resolve(),
        close: () => bonjour.close(),
        [Symbol.asyncDispose]: () => bonjour.close(),
      });
      say(
        `advertising ${
          JSON.stringify(bonjour.instance)
        } over Bonjour (host ${bonjour.host})`,
      );
    } catch (error) {
      if (error instanceof Deno.errors.NotCapable) throw error;
      say(`cannot advertise over Bonjour: ${describeError(error)}`);
    }
  }
  for (const peer of rtp.invite) {
    session.invite(peer.hostname, peer.port).catch((error) =>
      say(
        `rtp invitation to ${formatAddress(peer)} failed: ${
          describeError(error)
        }`,
      )
    );
  }
}

/** Turns the hub's events into lines. */
function printer(hub: Hub, say: (line: string) => void, refusals: RefusalLog) {
  const clients = () =>
    plural(hub.endpoints.filter((e) => e.kind === "client").length, "client");
  let released = 0;
  const print = (event: HubEvent): void => {
    switch (event.type) {
      case "join":
        if (event.endpoint.kind === "client") {
          say(`connect ${event.endpoint.name} (${clients()})`);
        }
        return;
      case "leave": {
        released += event.released;
        // Hardware ports say "lost" themselves; links say why they close.
        if (event.endpoint.kind !== "client" || hub.closed) return;
        const notes = event.released === 0
          ? ""
          : `, released ${plural(event.released, "held note")}`;
        const why = event.reason === undefined
          ? ""
          : `: ${describeError(event.reason)}`;
        say(`disconnect ${event.endpoint.name} (${clients()}${notes})${why}`);
        return;
      }
      case "refuse": {
        const { peer, reason } = event.refusal;
        refusals.add(
          formatAddress({ hostname: peer.hostname, port: peer.port ?? 0 }),
          peer.hostname,
          reason,
        );
        return;
      }
      case "message":
        say(
          `${clock()} ${event.endpoint.name} ${formatMessage(event.message)}`,
        );
        return;
      case "latency":
        say(`latency ${event.latency} ms (chosen from the delays measured)`);
        return;
      case "warning":
        console.error(`midisock ${COMMAND}: ${event.message}`);
        return;
    }
  };
  return {
    print,
    /** Notes released since the last call. */
    released: () => {
      const count = released;
      released = 0;
      return count;
    },
  };
}

/** Every 10 s, says how many messages came too late for the playout delay. */
function watchLate(hub: Hub, say: (line: string) => void): () => void {
  let seen = 0;
  const look = () => {
    const timing = hub.timing;
    if (timing === undefined || timing.late === seen) return;
    say(
      `late: ${
        plural(timing.late - seen, "message")
      } in the last 10 s came after their time + ${
        Math.round(timing.latency)
      } ms (the latest ${timing.worstLateMs.toFixed(1)} ms after)`,
    );
    seen = timing.late;
  };
  const timer = setInterval(look, 10_000);
  Deno.unrefTimer(timer);
  return () => {
    clearInterval(timer);
    look();
  };
}

/** How to reach this server, as serve's first line says. */
function connectHint(server: PortServer, config: ServeConfig): string {
  const { hostname, port } = server.addr;
  const reachable = hostname === "::" || hostname === "0.0.0.0"
    ? "127.0.0.1"
    : hostname;
  const flags = (config.tls ? " --tls --ca CA.pem" : "") +
    (config.hub.token ? " --token TOKEN" : "");
  const deno = `${commandFor("connect", import.meta.url)} ${
    formatAddress({ hostname: reachable, port })
  }${flags}`;
  // mido 1.2 connects over IPv4 only, with no token and no TLS.
  return reachable.includes(":") || flags !== ""
    ? deno
    : `${deno} or mido.sockets.connect(${JSON.stringify(reachable)}, ${port})`;
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
  let hub: Hub | undefined;
  let config: ServeConfig;
  const { promise: stopped, resolve: stop } = Promise.withResolvers<void>();
  const removeListeners = onStop(stop, options.signal);
  try {
    const read = readArgs(args);
    if (read === "help" || read === "version") return printInfo(read, HELP);
    config = read;
    const say = config.quiet ? () => {} : (line: string) => console.log(line);
    const refusals = new RefusalLog(say);
    hub = asUsage(() => new Hub(config.hub), OPTION_FLAGS);
    const events = printer(hub, say, refusals);
    hub.listen(events.print, { messages: config.monitor });
    const { server, web } = await build(config, hub, say);
    for (
      const [name, hostname] of [[server.name, server.addr.hostname], [
        web?.name,
        web?.addr.hostname,
      ]]
    ) {
      const warning = name &&
        exposureWarning(name, hostname!, hub.gate.hasAllowList);
      if (warning) console.error(`midisock ${COMMAND}: ${warning}`);
    }
    say(
      `listening on ${server.name} (${
        config.hub.relay ? "hub" : "no hub"
      }); connect with: ${connectHint(server, config)}`,
    );
    if (web !== undefined) {
      const everywhere = /^(::|0\.0\.0\.0)$/.test(web.addr.hostname)
        ? " (every interface: from other devices, use this machine's address)"
        : "";
      say(`web page on ${web.url}${everywhere}`);
    }
    const stopWatching = watchLate(hub, say);
    await stopped;
    const clients = hub.endpoints.filter((e) => e.kind === "client").length;
    events.released();
    await hub.close();
    stopWatching();
    refusals.flush();
    say(
      `stopped: closed ${plural(clients, "client")}, released ${
        plural(events.released(), "held note")
      }`,
    );
    return 0;
  } catch (error) {
    await hub?.close();
    return report(COMMAND, error);
  } finally {
    removeListeners();
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
