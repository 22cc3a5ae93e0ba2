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
import { formatMessage, parseMessage } from "../codec/text.ts";
import { type Address, formatAddress } from "../address.ts";
import { exponentialBackoff } from "../backoff.ts";
import { PortClosedError, RefusedError } from "../errors.ts";
import { Hub } from "../hub/mod.ts";
import { connect, type ConnectOptions } from "../net/connect.ts";
import { ReconnectingPort } from "../net/reconnecting_port.ts";
import type { SocketPort } from "../net/socket_port.ts";
import type { OutputPort } from "../port.ts";
import { sleep } from "../_time.ts";
import * as cli from "./_common.ts";
import * as flags from "./_flags.ts";

export type { MainOptions } from "./_common.ts";

const COMMAND = "connect";
const HOST = "127.0.0.1";
const PORT = 8080;

/** The first wait before reconnecting, in milliseconds. */
export const RETRY_FIRST_MS = 100;
/** The longest wait between reconnection attempts, in milliseconds. */
export const RETRY_MAX_MS = 5000;

const OPTIONS = `Options:
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
  -V, --version           Print the version and exit`;

const HELP =
  `midisock connect ${cli.VERSION}: a client for midisock and mido servers

Usage: connect [ADDRESS] [OPTIONS]

ADDRESS is host:port, [::1]:port or host (port ${PORT}) [${HOST}:${PORT}].
With --in/--out/--virtual, plays local inputs to the server and the
server to local outputs. With no ports, prints what the server sends.

${OPTIONS}

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

/** One step of `--send`: a message, or a wait. */
type Step = { message: Message } | { wait: number };

interface ConnectConfig {
  address: Address;
  hardware: {
    inputs: (string | number)[];
    outputs: (string | number)[];
    virtual: string[];
    api: ReturnType<typeof cli.readApi>;
  };
  send: Step[];
  retry: boolean;
  heartbeat: number;
  latency: number | "auto";
  monitor: boolean;
  quiet: boolean;
  connection: ConnectOptions;
}

function readArgs(argv: string[]): ConnectConfig | "help" | "version" {
  const args = flags.parseFlags(argv, OPTIONS);
  if (args.has("help")) return "help";
  if (args.has("version")) return "version";
  if (args.positionals.length > 1) {
    throw new cli.UsageError(
      `expected at most one ADDRESS: got ${args.positionals.join(" ")}`,
    );
  }
  const send: Step[] = args.order.flatMap(({ name, value }): Step[] => {
    if (name === "wait") return [{ wait: flags.seconds(name, value) }];
    if (name !== "send") return [];
    try {
      return [{ message: parseMessage(value) }];
    } catch (error) {
      throw new cli.UsageError(`--send: ${(error as Error).message}`);
    }
  });
  args.check({
    needs: { wait: "send", heartbeat: "retry", ca: "tls" },
    apart: [
      ["monitor", "quiet"],
      ...["in", "out", "virtual", "retry", "latency"].map(
        (flag): [string, string] => ["send", flag],
      ),
    ],
  });
  const hardware = {
    inputs: args.list("in").map(cli.portQuery),
    outputs: args.list("out").map(cli.portQuery),
    virtual: args.list("virtual").map((name) => `${cli.portQuery(name)}`),
    api: cli.readApi(args.text("api")),
  };
  const ports = hardware.inputs.length + hardware.outputs.length +
    hardware.virtual.length;
  const address = cli.readAddress(
    args.positionals[0],
    args.text("host"),
    args.text("port"),
    { hostname: HOST, port: PORT },
  );
  if (address.port === 0) {
    throw new cli.UsageError("the server's port cannot be 0");
  }
  return {
    address,
    hardware,
    send,
    retry: args.has("retry"),
    heartbeat: args.read("heartbeat", (f, t) => flags.count(f, t, 10)) ?? 500,
    latency: args.read("latency", flags.latency) ?? 0,
    // With no ports, printing messages is the whole point.
    monitor: args.has("monitor") || ports === 0 && send.length === 0,
    quiet: args.has("quiet"),
    connection: {
      token: flags.token(args.text("token")),
      ...(args.has("tls")
        ? {
          tls: true,
          caCerts: args.list("ca").map((file) => cli.readFile("--ca", file)),
        }
        : {}),
    },
  };
}

/** The hello's features: the timed mode when time is to be kept. */
function timed(config: ConnectConfig): string[] {
  return config.latency === 0 ? [] : ["timed"];
}

/** Why a connection attempt failed, phrased for people. */
function whyNot(where: string, error: unknown): string {
  if (error instanceof RefusedError) return cli.describeError(error);
  const why = error instanceof Deno.errors.ConnectionRefused
    ? "connection refused (is a server running there?)"
    : cli.describeError(error);
  return `cannot connect to ${where}: ${why}`;
}

/** Connects once, phrasing a failure. */
async function connectTo(config: ConnectConfig): Promise<SocketPort> {
  try {
    return await connect(
      config.address.hostname,
      config.address.port,
      { ...config.connection, features: timed(config) },
    );
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    throw new cli.CliError(whyNot(formatAddress(config.address), error), {
      cause: error,
    });
  }
}

/** The refusal that closed a port, if a refusal did. */
function refusalOf(port: SocketPort): RefusedError | undefined {
  return port.refused;
}

/** Sends the `--send` messages (waiting where asked) and closes. */
async function sendAndExit(config: ConnectConfig): Promise<number> {
  const port = await connectTo(config);
  const where = formatAddress(config.address);
  let sent = 0;
  try {
    for (const step of config.send) {
      if ("wait" in step) await sleep(step.wait);
      else await port.send(step.message).then(() => sent++);
    }
  } catch (error) {
    if (!(error instanceof PortClosedError)) throw error;
  } finally {
    // Closing waits for the server to close its side: by then it has read
    // everything, or said why it would not.
    await port.close();
  }
  const refused = refusalOf(port);
  if (refused !== undefined) throw new cli.CliError(cli.describeError(refused));
  const total = config.send.filter((step) => "message" in step).length;
  if (sent < total) {
    throw new cli.CliError(
      `${where} closed the connection after ${sent} of ${
        cli.plural(total, "message")
      }`,
    );
  }
  if (!config.quiet) {
    console.log(`sent ${cli.plural(sent, "message")} to ${where}`);
  }
  return 0;
}

/** An output that prints what it plays: the monitor, as the hub delivers. */
function printer(source: string): OutputPort {
  let closed = false;
  return {
    name: "monitor",
    get closed() {
      return closed;
    },
    send(msg: Message): Promise<void> {
      console.log(`${cli.clock()} ${source} ${formatMessage(msg)}`);
      return Promise.resolve();
    },
    reset: () => Promise.resolve(),
    panic: () => Promise.resolve(),
    close(): Promise<void> {
      closed = true;
      return Promise.resolve();
    },
    [Symbol.asyncDispose](): Promise<void> {
      return this.close();
    },
  };
}

/**
 * Runs the client: a hub with the server as a link endpoint and the
 * hardware as device endpoints, until stopped or (without `--retry`) the
 * server goes away.
 */
async function run(config: ConnectConfig, signal?: AbortSignal): Promise<void> {
  const say = config.quiet ? () => {} : (line: string) => console.log(line);
  const where = formatAddress(config.address);
  // Settles with nothing when stopped or the server left, or a refusal.
  const { promise: done, resolve: finish } = Promise.withResolvers<unknown>();
  let stopping = false;
  const removeListeners = cli.onStop(() => {
    stopping = true;
    finish(undefined);
  }, signal);
  await using hub = new Hub({ relay: false, latency: config.latency });
  try {
    const { inputs, outputs, virtual, api } = config.hardware;
    if (inputs.length + outputs.length + virtual.length > 0) {
      const hardware = await import("../hardware/mod.ts");
      await hub.attach(
        new hardware.MidiPorts({
          inputs,
          outputs,
          virtual,
          api,
          onEvent: (event) => say(hardware.formatMidiPortsEvent(event)),
        }),
      );
    }
    if (config.monitor) hub.add(printer(where), { kind: "device" });
    hub.listen((event) => {
      if (event.type === "message" && event.endpoint.kind === "device") {
        console.log(
          `${cli.clock()} ${event.endpoint.name} ${
            formatMessage(event.message)
          }`,
        );
      } else if (event.type === "latency") {
        say(`latency ${event.latency} ms (chosen from the delays measured)`);
      }
    }, { messages: config.monitor });
    if (config.retry) {
      const link = new ReconnectingPort(
        config.address.hostname,
        config.address.port,
        {
          ...config.connection,
          features: timed(config),
          whileDown: "drop",
          heartbeat: config.heartbeat,
          backoff: exponentialBackoff({
            first: RETRY_FIRST_MS,
            max: RETRY_MAX_MS,
          }),
          onConnect: () => say(`connected to ${where}`),
          onDisconnect: (_reason, unconfirmed) => {
            if (stopping) return;
            say(
              `disconnected from ${where}${
                unconfirmed > 0
                  ? ` (${cli.plural(unconfirmed, "message")} may be lost)`
                  : ""
              }`,
            );
            // What the server left held would sound forever: let go of it.
            hub.releaseNotes(endpoint);
          },
          onRetry: (delay, reason) =>
            say(
              `retrying in ${(delay / 1000).toFixed(1)}s: ${
                reason === undefined
                  ? "the server closed the connection"
                  : whyNot(where, reason)
              }`,
            ),
        },
      );
      const endpoint = hub.add(link, { kind: "link", transport: "tcp" });
    } else {
      const port = await connectTo(config);
      hub.add(port, {
        kind: "link",
        transport: "tcp",
        onLeave: () => {
          if (stopping) return;
          const refused = refusalOf(port);
          if (refused === undefined) say(`disconnected from ${where}`);
          finish(refused);
        },
      });
      // A midisock server answers at once; a mido server never does.
      const admitted = await Promise.race([
        port.admitted.then(() => true, () => false),
        sleep(1000).then(() => true),
      ]);
      if (admitted) say(`connected to ${where}`);
    }
    const refused = await done;
    stopping = true;
    if (refused !== undefined) {
      throw new cli.CliError(cli.describeError(refused), { cause: refused });
    }
  } finally {
    removeListeners();
  }
}

/**
 * Runs `midisock connect` with the given command-line arguments.
 *
 * @param args The arguments, as `Deno.args` gives them.
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
export async function main(
  args: string[],
  options: cli.MainOptions = {},
): Promise<number> {
  try {
    const config = readArgs(args);
    if (config === "help" || config === "version") {
      return cli.printInfo(config, HELP);
    }
    if (config.send.length > 0) return await sendAndExit(config);
    await run(config, options.signal);
    return 0;
  } catch (error) {
    return cli.report(COMMAND, error);
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
