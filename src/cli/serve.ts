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

import { formatAddress, parseAddress, parsePeer } from "../address.ts";
import { MIN_TOKEN_LENGTH } from "../gate.ts";
import { Hub, HubLog, type HubOptions } from "../hub/mod.ts";
import { PortServer } from "../net/server.ts";
import type { Transport } from "../transport.ts";
import * as cli from "./_common.ts";
import { type Args, asUsage, UsageError } from "./_flags.ts";
import * as read from "./_flags.ts";

export type { MainOptions } from "./_common.ts";

const COMMAND = "serve";
const HOST = "127.0.0.1";
const PORT = 8080;
const { APIS, PACKAGE, VERSION } = cli;

const HELP = `midisock serve ${VERSION}: a MIDI hub, compatible with mido

Usage: serve [ADDRESS] [OPTIONS]

ADDRESS is host:port, :port (every interface) or [::1]:port [${HOST}:${PORT}].
Every message a client sends goes to every other client, to --out ports,
pages, RTP-MIDI peers and other hubs; --in ports play to all of them.

Options:
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
  -V, --version           Print the version and exit

Output: one line per event ("listening on", "ready", "connect",
"disconnect", "refused"; with --monitor "TIME SOURCE MESSAGE"). A client that leaves with
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

/** Library option names as the flags that set them, for bad values. */
const OPTION_FLAGS = {
  "\\bmaxQueuedTotal\\b": "--max-queued-total",
  "\\bmaxQueuedBytes\\b": "--max-queued",
  "^room\\b": "--room",
  "^id\\b": "--nats-id",
  "^name\\b": "--nats-name",
  "^Invalid address rule": "--allow: Invalid address rule",
};

/** The flags, read and checked before anything is opened. */
function readArgs(args: Args) {
  const rtp = ["rtp-name", "rtp-invite", "rtp-bonjour"];
  const nats = ["room", "nats-name", "nats-id", "nats-creds", "nats-ca"];
  args.check({
    needs: Object.fromEntries([
      ...rtp.map((flag) => [flag, "rtp"]),
      ...[...nats, "nats-cert"].map((flag) => [flag, "nats"]),
    ]),
    pairs: [["cert", "key"], ["nats-cert", "nats-key"]],
    apart: [["monitor", "quiet"], ["no-sysex", "max-sysex"]],
  });
  if (args.has("nats") && !args.has("room")) {
    throw new UsageError("--nats needs --room NAME: the room to share");
  }
  const address = cli.readAddress(args, { hostname: HOST, port: PORT });
  const web = args.text("web");
  const next = { ...address, port: address.port === 0 ? 0 : address.port + 1 };
  if (web === "" && address.port === 65535) {
    throw new UsageError("--web needs an ADDRESS when the port is 65535");
  }
  args.read("api", read.api); // before anything is opened
  return {
    args,
    address,
    hub: readPolicy(args),
    tls: args.has("cert")
      ? {
        cert: cli.readFile("--cert", args.text("cert")!),
        key: cli.readFile("--key", args.text("key")!),
      }
      : undefined,
    web: web === "" ? next : web && asUsage(() => parseAddress(web, next.port)),
    // The data port is the next one.
    rtp: args.read("rtp", (flag, text) => read.port(flag, text, 65534)),
    invite: args.list("rtp-invite").map((text) =>
      asUsage(() => parsePeer(text, "--rtp-invite"))
    ),
  };
}

type Config = ReturnType<typeof readArgs>;

/** The security, bound and timing flags, as hub options. */
function readPolicy(args: Args): HubOptions {
  const rules = args.list("allow").flatMap((list) => list.split(","));
  const sysex = args.has("no-sysex")
    ? "drop"
    : args.read("max-sysex", read.count);
  const token = read.token(args.text("token"));
  if (token !== undefined && token.length < MIN_TOKEN_LENGTH) {
    throw new UsageError(
      `--token must be at least ${MIN_TOKEN_LENGTH} characters: a shorter ` +
        `one can be guessed (got ${token.length})`,
    );
  }
  const atLeast1 = (flag: string, text: string) => read.count(flag, text, 1);
  return {
    relay: !args.has("no-hub"),
    releaseNotes: true,
    allow: args.has("allow") ? rules : undefined,
    maxClients: args.read("max-clients", atLeast1),
    sysexIn: sysex,
    sysexOut: sysex,
    rateLimit: args.read("rate-limit", read.rate),
    linkRateLimit: args.read("link-rate-limit", read.rate),
    token,
    handshakeTimeout: args.read("handshake-timeout", read.seconds),
    idleTimeout: args.read("idle-timeout", read.seconds),
    maxQueuedBytes: args.read("max-queued", atLeast1),
    maxQueuedTotal: args.read("max-queued-total", atLeast1),
    latency: args.read("latency", read.latency),
  };
}

/**
 * Attaches a transport, phrasing what keeps it from starting: `what` it
 * could not do, and which `flag` chooses another address.
 */
async function attach<T extends Transport>(
  hub: Hub,
  make: () => T,
  what?: string,
  flag?: string,
): Promise<T> {
  try {
    return await hub.attach(asUsage(make, OPTION_FLAGS));
  } catch (error) {
    if (
      what === undefined || error instanceof Deno.errors.NotCapable ||
      error instanceof UsageError
    ) throw error;
    const other = error instanceof Deno.errors.AddrInUse && flag !== undefined
      ? `; choose another with ${flag}`
      : "";
    const why = cli.describeError(error) + other;
    throw new cli.CliError(`cannot ${what}: ${why}`, { cause: error });
  }
}

/** Builds the hub's transports from the command line. */
async function build(config: Config, hub: Hub) {
  const { args, address, tls } = config;
  const server = await attach(
    hub,
    () => new PortServer(address.hostname, address.port, { tls }),
    `listen on ${formatAddress(address)}`,
    "--port",
  );
  // Each feature's module is loaded only when it is used.
  if (config.web) {
    const { WebServer } = await import("../web/server.ts");
    await attach(
      hub,
      () => new WebServer({ ...config.web!, tls }),
      `serve the web page on ${formatAddress(config.web)}`,
      "--web ADDRESS",
    );
  }
  await cli.attachPorts(hub, args);
  if (config.rtp !== undefined) {
    const { RtpMidiSession } = await import("../rtp/session.ts");
    await attach(hub, () =>
      new RtpMidiSession({
        host: address.hostname,
        port: config.rtp!,
        name: args.text("rtp-name") ?? "midisock",
        invite: config.invite,
        bonjour: args.has("rtp-bonjour"),
      }), `open the RTP-MIDI session on UDP ${config.rtp}`);
  }
  if (args.has("nats")) {
    const { NatsLink } = await import("../nats/link.ts");
    const room = args.text("room")!;
    const files = ["nats-ca", "nats-cert", "nats-key"].map(args.text, args);
    await attach(hub, () =>
      new NatsLink(args.text("nats")!, {
        room,
        name: args.text("nats-name"),
        id: args.text("nats-id"),
        credsFile: args.text("nats-creds"),
        tls: files.some((file) => file !== undefined)
          ? { caFile: files[0], certFile: files[1], keyFile: files[2] }
          : undefined,
      }));
  }
  return server;
}

/** serve's last line as it starts: how to connect. */
function announce(server: PortServer, config: Config): string {
  const { hostname, port } = server.addr;
  const reachable = /^(::|0\.0\.0\.0)$/.test(hostname) ? "127.0.0.1" : hostname;
  const flags = (config.tls ? " --tls --ca CA.pem" : "") +
    (config.hub.token ? " --token TOKEN" : "");
  const address = formatAddress({ hostname: reachable, port });
  let hint = `${cli.commandFor("connect", import.meta.url)} ${address}${flags}`;
  // mido 1.2 connects over IPv4 only, with no token and no TLS.
  if (!reachable.includes(":") && flags === "") {
    hint += ` or mido.sockets.connect(${JSON.stringify(reachable)}, ${port})`;
  }
  return `ready (${
    config.hub.relay ? "hub" : "no hub"
  }); connect with: ${hint}`;
}

/**
 * Runs `midisock serve` with the given command-line arguments, until
 * SIGINT/SIGTERM (or `options.signal`) stops it.
 *
 * @param argv The arguments, as `Deno.args` gives them.
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
export function main(
  argv: string[],
  options: cli.MainOptions = {},
): Promise<number> {
  // A bare --web (last, or before another flag) takes no ADDRESS.
  const web = (arg: string, i: number) =>
    arg === "--web" && !/^[^-]/.test(argv[i + 1] ?? "") ? "--web=" : arg;
  return cli.run(COMMAND, argv.map(web), HELP, async (args) => {
    const config = readArgs(args);
    const say = args.has("quiet") ? () => {} : (s: string) => console.log(s);
    const stop = Promise.withResolvers<void>();
    using _signals = cli.onStop(stop.resolve, options.signal);
    await using hub = asUsage(() => new Hub(config.hub), OPTION_FLAGS);
    using log = new HubLog(hub, {
      say,
      warn: (line) => console.error(`midisock ${COMMAND}: warning: ${line}`),
      messages: args.has("monitor"),
    });
    say(announce(await build(config, hub), config));
    await stop.promise;
    const clients = log.clients();
    log.takeReleased();
    await hub.close();
    log.close();
    const notes = cli.plural(log.takeReleased(), "held note");
    say(`stopped: closed ${clients}, released ${notes}`);
  });
}

if (import.meta.main) Deno.exit(await main(Deno.args));
