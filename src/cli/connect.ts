#!/usr/bin/env -S deno run --allow-net --allow-ffi --allow-read --allow-env=MIDISOCK_RTMIDI_PATH,MIDISOCK_RTMIDI_API,MIDISOCK_TOKEN
/**
 * `midisock connect`: a client of a midisock or mido socket server. It is a
 * shell over a {@linkcode Hub}: the server is a link endpoint, hardware
 * ports (`--in`, `--out`, `--virtual`) are device endpoints, and with no
 * ports what the server sends is printed (a network MIDI monitor); the hub
 * routes between them and releases held notes. `--send TEXT` sends and
 * exits. Errors go to stderr as `midisock connect: MESSAGE`; exit code 2
 * for bad usage, 1 for a failure (a refusal included).
 *
 * @example Connecting from the command line
 * ```sh
 * deno run -A jsr:@x/midisock/connect 127.0.0.1:8080
 * deno run -A jsr:@x/midisock/connect 127.0.0.1:8080 --send "note_on note=60"
 * deno run -A jsr:@x/midisock/connect studio:8080 --in Keystation --retry
 * ```
 *
 * @module
 */

import type { Message } from "../codec/messages.ts";
import { parseMessage } from "../codec/text.ts";
import { formatAddress } from "../address.ts";
import { PortClosedError, type RefusedError } from "../errors.ts";
import { Hub, HubLog } from "../hub/mod.ts";
import { connect } from "../net/connect.ts";
import {
  describeConnectError,
  formatReconnectEvent,
  ReconnectingPort,
} from "../net/reconnecting_port.ts";
import type { SocketPort } from "../net/socket_port.ts";
import type { TimeSource } from "../clock.ts";
import { sleep } from "../_time.ts";
import * as cli from "./_common.ts";
import * as flags from "./_flags.ts";

export type { MainOptions } from "./_common.ts";

const COMMAND = "connect";
const HOST = "127.0.0.1";
const PORT = 8080;

const HELP =
  `midisock connect ${cli.VERSION}: a client for midisock and mido servers

Usage: connect [ADDRESS] [OPTIONS]

ADDRESS is host:port, [::1]:port or host (port ${PORT}) [${HOST}:${PORT}].
With --in/--out/--virtual, plays local inputs to the server and the
server to local outputs. With no ports, prints what the server sends.

Options:
  -H, --host HOST         Server host [${HOST}]
  -p, --port PORT         Server port [${PORT}]
  -i, --in NAME...        Hardware input to play to the server: a name, a
                          part of one, or an index (repeatable)
  -o, --out NAME...       Hardware output that plays the server (repeatable)
      --virtual NAME...   A virtual port pair, both ways (repeatable)
      --api API           MIDI backend: ${cli.APIS.join(", ")}
  -s, --send TEXT...      Send a message in mido's text form, then exit
                          (repeatable, in order); exit 1 if refused
  -w, --wait SECONDS...   Between --send messages: wait this long
  -r, --retry             Reconnect when the server goes away or is not up
                          yet (0.1 s doubling to 5 s between attempts)
      --heartbeat MS      With --retry: probe the link every MS, and count
                          it dead after three unanswered probes [500]
      --latency MS        Play and print what the server sends at its time
                          + MS (a jitter buffer; needs a midisock server);
                          auto: the least that keeps 99.9% on time
      --tls               Connect with TLS (the server runs --cert/--key)
      --ca FILE...        Also trust this certificate authority (PEM)
      --token TOKEN       The server's shared secret; or MIDISOCK_TOKEN
  -m, --monitor           With ports: also print each message
  -q, --quiet             Print nothing but errors (and, with no ports,
                          the messages)
  -h, --help              Print this help and exit
  -V, --version           Print the version and exit

Output: "connected to ADDRESS" once the server took the connection,
"disconnected from ADDRESS", "retrying in 0.4s: REASON", and a line
"TIME SOURCE MESSAGE" per message shown. Ctrl-C or SIGTERM sends note_off
for notes still held and exits 0. Exit code 2 means bad usage, 1 a failure
(cannot connect, refused, no RtMidi, no such port).

Examples:
  deno run -A jsr:${cli.PACKAGE}/connect 127.0.0.1:8080
  deno run -A jsr:${cli.PACKAGE}/connect 127.0.0.1:8080 --send "note_on note=60" \\
    --wait 0.5 --send "note_off note=60"
  deno run -A jsr:${cli.PACKAGE}/connect studio.local:8080 --in Keystation --retry
  deno run -A jsr:${cli.PACKAGE}/connect studio.local:8080 --out FLUID --latency 30
  deno run -A jsr:${cli.PACKAGE}/connect 127.0.0.1:8080 --virtual net --api jack
`;

/** The flags, read and checked before anything is opened. */
function readArgs(args: flags.Args) {
  // --send and --wait, in the order given.
  const send = args.order.flatMap(({ name, value }): (Message | number)[] => {
    if (name === "wait") return [flags.seconds(name, value)];
    if (name !== "send") return [];
    try {
      return [parseMessage(value)];
    } catch (error) {
      throw new cli.UsageError(`--send: ${(error as Error).message}`);
    }
  });
  const local = ["in", "out", "virtual"].some((flag) => args.has(flag));
  args.check({
    needs: { wait: "send", heartbeat: "retry", ca: "tls" },
    apart: [
      ["monitor", "quiet"],
      ...["in", "out", "virtual", "retry", "latency"]
        .map((flag): [string, string] => ["send", flag]),
    ],
  });
  const address = cli.readAddress(args, { hostname: HOST, port: PORT });
  if (address.port === 0) {
    throw new cli.UsageError("the server's port cannot be 0");
  }
  return {
    args,
    address,
    where: formatAddress(address),
    send,
    latency: args.read("latency", flags.latency) ?? 0,
    heartbeat: args.read("heartbeat", (f, t) => flags.count(f, t, 10)) ?? 500,
    // With no ports, printing what the server sends is the whole point.
    monitor: args.has("monitor") || !local && send.length === 0,
    say: args.has("quiet") ? () => {} : (line: string) => console.log(line),
    connection: {
      token: flags.token(args.text("token")),
      tls: args.has("tls"),
      caCerts: args.list("ca").map((file) => cli.readFile("--ca", file)),
    },
  };
}

type Config = ReturnType<typeof readArgs>;

/**
 * Connects once, phrasing a failure; on a hub's clock, in the timed mode
 * (the server's times are then played out by that hub).
 */
async function connectTo(c: Config, clock?: TimeSource): Promise<SocketPort> {
  const { hostname, port } = c.address;
  try {
    return await connect(hostname, port, {
      ...c.connection,
      timed: clock !== undefined,
      clock,
    });
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    const line = describeConnectError(c.where, error);
    throw new cli.CliError(line, { cause: error });
  }
}

/** Sends the `--send` messages (waiting where asked) and closes. */
async function sendAndExit(c: Config): Promise<void> {
  const port = await connectTo(c);
  let sent = 0;
  try {
    for (const step of c.send) {
      if (typeof step === "number") await sleep(step);
      else await port.send(step as Message).then(() => sent++);
    }
  } catch (error) {
    if (!(error instanceof PortClosedError)) throw error;
  } finally {
    // Closing waits for the server to close its side: by then it has read
    // everything, or said why it would not.
    await port.close();
  }
  if (port.refused) throw new cli.CliError(cli.describeError(port.refused));
  const total = c.send.filter((step) => typeof step !== "number").length;
  if (sent < total) {
    throw new cli.CliError(
      `${c.where} closed the connection after ${sent} of ${
        cli.plural(total, "message")
      }`,
    );
  }
  c.say(`sent ${cli.plural(sent, "message")} to ${c.where}`);
}

/**
 * Runs the client: a hub with the server as a link endpoint and the
 * hardware as device endpoints, until stopped or (without `--retry`) the
 * server goes away.
 */
async function run(c: Config, signal?: AbortSignal): Promise<void> {
  const { args, where, say } = c;
  // Settles with nothing when stopped or the server left, or a refusal.
  const done = Promise.withResolvers<RefusedError | undefined>();
  let stopping = false;
  using _signals = cli.onStop(() => {
    stopping = true;
    done.resolve(undefined);
  }, signal);
  await using hub = new Hub({ relay: false, latency: c.latency });
  // The server's messages are printed as the hub delivers them to the
  // monitor (after the playout delay), local inputs as they come.
  using log = new HubLog(hub, {
    say: (line) => /^\d\d:/.test(line) ? console.log(line) : say(line),
    warn: (line) => console.error(`midisock ${COMMAND}: warning: ${line}`),
    messages: c.monitor && ((endpoint) => endpoint.kind === "device"),
  });
  await cli.attachPorts(hub, args);
  if (c.monitor) hub.add(log.monitor(where), { kind: "device" });
  if (args.has("retry")) {
    // Its default backoff is --help's: 0.1 s doubling to 5 s.
    const link = new ReconnectingPort(c.address.hostname, c.address.port, {
      ...c.connection,
      clock: hub.clock,
      whileDown: "drop",
      heartbeat: c.heartbeat,
      onEvent: (event) => {
        if (stopping) return;
        say(formatReconnectEvent(event));
        // What the server left held would sound forever: let go of it.
        if (event.type === "disconnect") hub.releaseNotes(endpoint);
      },
    });
    const endpoint = hub.add(link, { kind: "link", transport: "tcp" });
  } else {
    const port = await connectTo(c, hub.clock);
    hub.add(port, {
      kind: "link",
      transport: "tcp",
      onLeave: () => {
        if (stopping) return;
        if (port.refused === undefined) say(`disconnected from ${where}`);
        done.resolve(port.refused);
      },
    });
    // A midisock server answers at once; a mido server never does.
    const admitted = await Promise.race([
      port.admitted.then(() => true, () => false),
      sleep(1000).then(() => true),
    ]);
    if (admitted) say(`connected to ${where}`);
  }
  const refused = await done.promise;
  stopping = true;
  if (refused) throw new cli.CliError(cli.describeError(refused));
}

/**
 * Runs `midisock connect` with the given command-line arguments.
 *
 * @param argv The arguments, as `Deno.args` gives them.
 * @param options `signal`: stops it as SIGINT/SIGTERM do.
 * @returns The exit code: 0 when the server closed the connection (without
 * `--retry`), after `--send`, `--help`, or a clean shutdown; 2 for bad
 * usage; 1 for a failure, a refusal included (each reported in one line on
 * stderr).
 *
 * @example Sending a note from a program
 * ```ts ignore
 * import { main } from "@x/midisock/connect";
 *
 * Deno.exitCode = await main(["127.0.0.1:8080", "--send", "note_on note=60"]);
 * ```
 */
export function main(
  argv: string[],
  options: cli.MainOptions = {},
): Promise<number> {
  return cli.run(COMMAND, argv, HELP, (args) => {
    const config = readArgs(args);
    return config.send.length > 0
      ? sendAndExit(config)
      : run(config, options.signal);
  });
}

if (import.meta.main) Deno.exit(await main(Deno.args));
