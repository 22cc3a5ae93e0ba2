#!/usr/bin/env -S deno run --allow-net --allow-ffi --allow-read --allow-env=MIDISOCK_RTMIDI_PATH,MIDISOCK_RTMIDI_API,MIDISOCK_TOKEN
/**
 * `midisock connect`: a client of a midisock or mido socket server.
 *
 * - With hardware ports it is mido-connect in both directions: messages
 *   from local inputs (`--in`, `--virtual`) go to the server, messages from
 *   the server go to local outputs (`--out`, `--virtual`).
 * - With no ports it is a network MIDI monitor: it prints each message the
 *   server sends as `TIME ADDRESS TEXT` (TEXT in mido's text form).
 * - With `--send TEXT` (repeatable) it sends those messages and exits.
 *
 * `--retry` reconnects when the server goes away (or is not there yet),
 * waiting 0.1 s, then twice as long after each failed attempt, up to 5 s;
 * a successful connection starts again from 0.1 s. Messages from local
 * inputs while disconnected are dropped.
 *
 * Without hardware it needs only `--allow-net`; `--in`, `--out` and
 * `--virtual` also need `--allow-ffi` and the RtMidi library. Errors go to
 * stderr as `midisock connect: MESSAGE`; exit code 2 for bad usage, 1 for a
 * failure.
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

import { parseArgs } from "node:util";
import type { Message } from "../codec/messages.ts";
import { formatMessage, parseMessage } from "../codec/text.ts";
import { exponentialBackoff } from "../backoff.ts";
import { PortClosedError, RefusedError } from "../errors.ts";
import { formatAddress } from "../address.ts";
import { connect, type ConnectOptions } from "../net/connect.ts";
import { ReconnectingPort } from "../net/reconnecting_port.ts";
import type { SocketPort } from "../net/socket_port.ts";
import { NoteTracker } from "../notes.ts";
import type { InputPort, IOPort, OutputPort } from "../port.ts";
import { sleep } from "../_time.ts";
import {
  CliError,
  clock,
  describeError,
  hardwareLabel,
  type MainOptions,
  onStop,
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
  report,
  seconds,
  UsageError,
  VERSION,
} from "./_common.ts";

export type { MainOptions } from "./_common.ts";

const COMMAND = "connect";
const DEFAULT_HOST = "127.0.0.1";
const DEFAULT_PORT = 8080;

/** The first wait before reconnecting, in milliseconds. */
export const RETRY_FIRST_MS = 100;
/** The longest wait between reconnection attempts, in milliseconds. */
export const RETRY_MAX_MS = 5000;

const HELP =
  `midisock connect ${VERSION}: a client for midisock and mido socket servers

Usage: connect [ADDRESS] [OPTIONS]

ADDRESS is host:port, [::1]:port or host (port ${DEFAULT_PORT}); the default is
${DEFAULT_HOST}:${DEFAULT_PORT}.

With --in/--out/--virtual, forwards local inputs to the server and the
server's messages to local outputs. With no ports, prints every message the
server sends (a network MIDI monitor). With --send, sends and exits.

Options:
  -H, --host HOST      Server host (instead of ADDRESS) [${DEFAULT_HOST}]
  -p, --port PORT      Server port [${DEFAULT_PORT}]
  -i, --in NAME        Hardware input to forward to the server; a name, a part
                       of one, or an index (repeatable)
  -o, --out NAME       Hardware output that plays the server's messages
                       (repeatable)
      --virtual NAME   Create a virtual input/output pair called NAME, forwarded
                       both ways (repeatable)
      --api API        MIDI backend: alsa, jack, core or winmm
  -s, --send TEXT      Send a message in mido's text form, then exit
                       (repeatable, sent in order); exit 1 if the server
                       refuses the connection
  -w, --wait SECONDS   Between --send messages: wait this long here
  -r, --retry          Reconnect when the server goes away or is not up yet,
                       waiting 0.1 s doubling to at most 5 s between attempts
      --tls            Connect with TLS (the server runs serve --cert/--key)
      --ca FILE        Also trust this certificate authority (PEM) for
                       --tls; repeatable
      --token TOKEN    Send the server's shared secret first (serve --token);
                       or set MIDISOCK_TOKEN
  -m, --monitor        With ports: also print each message forwarded
  -q, --quiet          Print nothing but errors (and, with no ports, messages)
  -h, --help           Print this help and exit
  -V, --version        Print the version and exit

Output: "connected to ADDRESS", "disconnected from ADDRESS", "retrying in
0.4s: REASON", and one "TIME SOURCE MESSAGE" line per message shown (SOURCE
is the server's address or a hardware port's quoted name). Ctrl-C or SIGTERM
sends note_off for notes still held and exits 0. Exit code 2 means bad
usage, 1 a failure (cannot connect, refused by the server, no RtMidi, no
such port).

Examples:
  # Print what a server sends
  deno run -A jsr:${PACKAGE}/connect 127.0.0.1:8080

  # Play middle C for half a second and exit
  deno run -A jsr:${PACKAGE}/connect 127.0.0.1:8080 --send "note_on note=60" \\
    --wait 0.5 --send "note_off note=60"

  # A keyboard to a remote server, reconnecting whenever it restarts
  deno run -A jsr:${PACKAGE}/connect studio.local:8080 --in Keystation --retry

  # Play what the server sends on a local synth
  deno run -A jsr:${PACKAGE}/connect studio.local:8080 --out FLUID

  # A virtual port pair other programs can use to reach the server
  deno run -A jsr:${PACKAGE}/connect 127.0.0.1:8080 --virtual net --api jack
`;

/** One step of `--send`: a message, or a wait. */
type Step = { message: Message } | { wait: number };

interface ConnectConfig {
  hostname: string;
  port: number;
  inputs: (string | number)[];
  outputs: (string | number)[];
  virtual: string[];
  api: ReturnType<typeof readApi>;
  send: Step[];
  retry: boolean;
  monitor: boolean;
  quiet: boolean;
  /** Token, TLS and trusted authorities for `connect()`. */
  connection: ConnectOptions;
}

function readArgs(args: string[]): ConnectConfig | "help" | "version" {
  const { values, positionals, tokens } = parse(() =>
    parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      tokens: true,
      options: {
        host: { type: "string", short: "H" },
        port: { type: "string", short: "p" },
        in: { type: "string", short: "i", multiple: true },
        out: { type: "string", short: "o", multiple: true },
        virtual: { type: "string", multiple: true },
        api: { type: "string" },
        send: { type: "string", short: "s", multiple: true },
        wait: { type: "string", short: "w", multiple: true },
        retry: { type: "boolean", short: "r" },
        tls: { type: "boolean" },
        ca: { type: "string", multiple: true },
        token: { type: "string" },
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
  const names = (list: string[] | undefined, flag: string) =>
    (list ?? []).map((name) => {
      if (name.trim() === "") throw new UsageError(`${flag} needs a name`);
      return name;
    });
  const inputs = names(values.in, "--in").map(portQuery);
  const outputs = names(values.out, "--out").map(portQuery);
  const virtual = names(values.virtual, "--virtual");
  // --send and --wait, in the order given.
  const send: Step[] = [];
  for (const token of tokens ?? []) {
    if (token.kind !== "option" || token.value === undefined) continue;
    if (token.name === "send") {
      try {
        send.push({ message: parseMessage(token.value) });
      } catch (error) {
        throw new UsageError(`--send: ${(error as Error).message}`);
      }
    } else if (token.name === "wait") {
      send.push({ wait: seconds("--wait", token.value) });
    }
  }
  const messages = send.filter((step) => "message" in step).length;
  if (values.wait !== undefined && messages === 0) {
    throw new UsageError("--wait goes between --send messages");
  }
  const hardware = inputs.length + outputs.length + virtual.length > 0;
  if (messages > 0 && (hardware || values.retry)) {
    throw new UsageError(
      "--send sends and exits: it cannot be used with --in, --out, " +
        "--virtual or --retry",
    );
  }
  if (values.monitor && values.quiet) {
    throw new UsageError("--monitor and --quiet cannot be used together");
  }
  const { hostname, port } = readAddress(
    positionals[0],
    values.host,
    values.port,
    { hostname: DEFAULT_HOST, port: DEFAULT_PORT },
  );
  if (port === 0) throw new UsageError("the server's port cannot be 0");
  return {
    hostname,
    port,
    inputs,
    outputs,
    virtual,
    api: readApi(values.api),
    send,
    retry: values.retry ?? false,
    // With no ports, printing messages is the whole point.
    monitor: (values.monitor ?? false) || !hardware && messages === 0,
    quiet: values.quiet ?? false,
    connection: readConnection(values),
  };
}

/** The --tls, --ca and --token flags, as connect() options. */
function readConnection(
  values: { tls?: boolean; ca?: string[]; token?: string },
): ConnectOptions {
  const options: ConnectOptions = {};
  if (values.ca !== undefined && !values.tls) {
    throw new UsageError("--ca goes with --tls");
  }
  if (values.tls) {
    options.tls = true;
    if (values.ca !== undefined) {
      options.caCerts = values.ca.map((path) => readFile("--ca", path));
    }
  }
  options.token = readToken(values.token);
  return options;
}

/** Why a connection attempt failed, phrased for people. */
function whyNotConnected(where: string, error: unknown): string {
  if (error instanceof RefusedError) return describeError(error);
  const why = error instanceof Deno.errors.ConnectionRefused
    ? "connection refused (is a server running there?)"
    : describeError(error);
  return `cannot connect to ${where}: ${why}`;
}

/** Connects once, phrasing a failure for people. */
async function connectTo(config: ConnectConfig): Promise<SocketPort> {
  try {
    return await connect(config.hostname, config.port, config.connection);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    throw new CliError(whyNotConnected(formatAddress(config), error), {
      cause: error,
    });
  }
}

/** The server's refusal of a port, where it refused. */
async function refusalOf(port: SocketPort): Promise<RefusedError | undefined> {
  if (port.refused !== undefined) return port.refused;
  try {
    await port.receive();
  } catch (error) {
    if (
      error instanceof PortClosedError && error.cause instanceof RefusedError
    ) {
      return error.cause;
    }
  }
  return undefined;
}

/** A bridge between the server (one port, or a reconnecting one) and local ports. */
class Client {
  readonly #config: ConnectConfig;
  readonly #say: (line: string) => void;
  readonly #where: string;
  readonly #inputs = new Map<InputPort, NoteTracker>();
  readonly #outputs = new Set<OutputPort>();
  #running = false;
  readonly #fromServer = new NoteTracker();
  readonly #tasks = new Set<Promise<void>>();
  #close: () => Promise<void> = () => Promise.resolve();
  #server: IOPort | undefined;
  #stopped = false;

  constructor(config: ConnectConfig) {
    this.#config = config;
    this.#say = config.quiet ? () => {} : (line) => console.log(line);
    this.#where = formatAddress(config);
  }

  /**
   * Opens the local ports; ports that come back after an unplug join in
   * again.
   */
  async open(): Promise<void> {
    const ports = await openPorts(this.#config, this.#say, (port, role) => {
      if (role !== "output") this.#useInput(port as InputPort);
      if (role !== "input") this.#outputs.add(port as OutputPort);
    });
    this.#close = () => ports.close();
  }

  #useInput(input: InputPort): void {
    const notes = new NoteTracker();
    this.#inputs.set(input, notes);
    if (this.#running) this.#spawn(this.#pumpInput(input, notes));
  }

  /** Sends to every local output; one that is gone leaves the list. */
  #play(msg: Message): void {
    for (const output of this.#outputs) {
      output.send(msg).catch(() => {
        if (output.closed) this.#outputs.delete(output);
      });
    }
  }

  /** Closes the local ports. */
  close(): Promise<void> {
    return this.#close();
  }

  #show(source: string, msg: Message): void {
    // A monitor's messages are its output: --quiet does not hide them.
    if (this.#config.monitor) {
      console.log(`${clock()} ${source} ${formatMessage(msg)}`);
    }
  }

  /**
   * Runs until stopped, or until the server goes away without `--retry`.
   *
   * @returns The exit code.
   */
  async run(signal?: AbortSignal): Promise<number> {
    const server = this.#config.retry
      ? this.#reconnecting()
      : await connectTo(this.#config);
    this.#server = server;
    if (!this.#config.retry) this.#say(`connected to ${this.#where}`);
    const removeListeners = onStop(() => this.#halt(), signal);
    try {
      this.#running = true;
      for (const [input, notes] of this.#inputs) {
        this.#spawn(this.#pumpInput(input, notes));
      }
      for await (const msg of server) {
        this.#show(server.name, msg);
        this.#fromServer.track(msg);
        this.#play(msg);
      }
      await server.close();
      this.#releaseFromServer();
      if (this.#stopped || this.#config.retry) return 0;
      const refused = await refusalOf(server as SocketPort);
      if (refused !== undefined) throw new CliError(describeError(refused));
      this.#say(`disconnected from ${this.#where}`);
      return 0;
    } finally {
      removeListeners();
      this.#stopped = true;
      await server.close();
      await this.close();
      await Promise.all(this.#tasks);
    }
  }

  #reconnecting(): ReconnectingPort {
    return new ReconnectingPort(this.#config.hostname, this.#config.port, {
      ...this.#config.connection,
      whileDown: "drop",
      backoff: exponentialBackoff({ first: RETRY_FIRST_MS, max: RETRY_MAX_MS }),
      onConnect: () => this.#say(`connected to ${this.#where}`),
      onDisconnect: () => {
        this.#say(`disconnected from ${this.#where}`);
        this.#releaseFromServer();
        // Each local input's notes were cut off with the connection.
        for (const notes of this.#inputs.values()) notes.release();
      },
      onRetry: (delay, reason) =>
        this.#say(
          `retrying in ${(delay / 1000).toFixed(1)}s: ${
            reason === undefined
              ? "the server closed the connection"
              : whyNotConnected(this.#where, reason)
          }`,
        ),
    });
  }

  /** What the server left held would sound forever: let go of it. */
  #releaseFromServer(): void {
    for (const msg of this.#fromServer.release()) this.#play(msg);
  }

  #halt(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    const server = this.#server;
    if (server === undefined) return;
    // Let go of the notes local inputs hold, then close (which flushes).
    for (const notes of this.#inputs.values()) {
      for (const msg of notes.release()) server.send(msg).catch(() => {});
    }
    server.close().catch(() => {});
  }

  #spawn(task: Promise<void>): void {
    const tracked = task.catch((error) => {
      console.error(`midisock ${COMMAND}: ${describeError(error)}`);
    });
    this.#tasks.add(tracked);
    tracked.finally(() => this.#tasks.delete(tracked));
  }

  async #pumpInput(input: InputPort, notes: NoteTracker): Promise<void> {
    const label = hardwareLabel(input.name);
    for await (const msg of input) {
      this.#show(label, msg);
      notes.track(msg);
      this.#server?.send(msg).catch(() => {});
    }
    // The input is gone (unplugged, or closing): let go of what it held.
    this.#inputs.delete(input);
    if (this.#stopped) return;
    for (const msg of notes.release()) this.#server?.send(msg).catch(() => {});
  }
}

/** Sends the `--send` messages (waiting where asked) and closes. */
async function sendAndExit(config: ConnectConfig): Promise<number> {
  const port = await connectTo(config);
  const where = formatAddress(config);
  let sent = 0;
  try {
    for (const step of config.send) {
      if ("wait" in step) {
        await sleep(step.wait);
        continue;
      }
      await port.send(step.message);
      sent++;
    }
  } catch (error) {
    if (!(error instanceof PortClosedError)) throw error;
  } finally {
    // Closing waits for the server to close its side: by then it has read
    // everything, or said why it would not.
    await port.close();
  }
  const refused = await refusalOf(port);
  if (refused !== undefined) throw new CliError(describeError(refused));
  const total = config.send.filter((step) => "message" in step).length;
  if (sent < total) {
    throw new CliError(
      `${where} closed the connection after ${sent} of ${
        plural(total, "message")
      }`,
    );
  }
  if (!config.quiet) console.log(`sent ${plural(sent, "message")} to ${where}`);
  return 0;
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
  options: MainOptions = {},
): Promise<number> {
  let client: Client | undefined;
  try {
    const config = readArgs(args);
    if (config === "help" || config === "version") {
      return printInfo(config, HELP);
    }
    if (config.send.length > 0) return await sendAndExit(config);
    client = new Client(config);
    await client.open();
    return await client.run(options.signal);
  } catch (error) {
    await client?.close();
    return report(COMMAND, error);
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
