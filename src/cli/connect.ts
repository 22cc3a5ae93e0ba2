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
import { formatAddress } from "../net/address.ts";
import { connect, type ConnectOptions } from "../net/server.ts";
import type { SocketPort } from "../net/socket_port.ts";
import type { InputPort, OutputPort } from "../port.ts";
import {
  CliError,
  clock,
  describeError,
  hardwareLabel,
  HeldNotes,
  type MainOptions,
  onStop,
  openPorts,
  PACKAGE,
  parse,
  portQuery,
  printInfo,
  readAddress,
  readApi,
  readFile,
  readToken,
  report,
  sleep,
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
                       (repeatable, sent in order)
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
usage, 1 a failure (cannot connect, no RtMidi, no such port).

Examples:
  # Print what a server sends
  deno run -A jsr:${PACKAGE}/connect 127.0.0.1:8080

  # Play middle C for half a beat and exit
  deno run -A jsr:${PACKAGE}/connect 127.0.0.1:8080 --send "note_on note=60" \\
    --send "note_off note=60"

  # A keyboard to a remote server, reconnecting whenever it restarts
  deno run -A jsr:${PACKAGE}/connect studio.local:8080 --in Keystation --retry

  # Play what the server sends on a local synth
  deno run -A jsr:${PACKAGE}/connect studio.local:8080 --out FLUID

  # A virtual port pair other programs can use to reach the server
  deno run -A jsr:${PACKAGE}/connect 127.0.0.1:8080 --virtual net --api jack
`;

interface ConnectConfig {
  hostname: string;
  port: number;
  inputs: (string | number)[];
  outputs: (string | number)[];
  virtual: string[];
  api: ReturnType<typeof readApi>;
  send: Message[];
  retry: boolean;
  monitor: boolean;
  quiet: boolean;
  /** Token, TLS and trusted authorities for `connect()`. */
  connection: ConnectOptions;
}

function readArgs(args: string[]): ConnectConfig | "help" | "version" {
  const { values, positionals } = parse(() =>
    parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        host: { type: "string", short: "H" },
        port: { type: "string", short: "p" },
        in: { type: "string", short: "i", multiple: true },
        out: { type: "string", short: "o", multiple: true },
        virtual: { type: "string", multiple: true },
        api: { type: "string" },
        send: { type: "string", short: "s", multiple: true },
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
  const send = (values.send ?? []).map((text) => {
    try {
      return parseMessage(text);
    } catch (error) {
      throw new UsageError(`--send: ${(error as Error).message}`);
    }
  });
  const hardware = inputs.length + outputs.length + virtual.length > 0;
  if (send.length > 0 && (hardware || values.retry)) {
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
    monitor: (values.monitor ?? false) || !hardware && send.length === 0,
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

/** Connects once, phrasing a failure for people. */
async function connectTo(config: ConnectConfig): Promise<SocketPort> {
  const where = formatAddress(config);
  try {
    return await connect(config.hostname, config.port, config.connection);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    const why = error instanceof Deno.errors.ConnectionRefused
      ? "connection refused (is a server running there?)"
      : describeError(error);
    throw new CliError(`cannot connect to ${where}: ${why}`, { cause: error });
  }
}

/** A bridge between one server connection (at a time) and local ports. */
class Client {
  readonly #config: ConnectConfig;
  readonly #say: (line: string) => void;
  readonly #inputs = new Map<InputPort, HeldNotes>();
  readonly #outputs: OutputPort[] = [];
  readonly #closers: (() => Promise<void>)[] = [];
  readonly #tasks = new Set<Promise<void>>();
  readonly #stop = new AbortController();
  #current: SocketPort | undefined;

  constructor(config: ConnectConfig) {
    this.#config = config;
    this.#say = config.quiet ? () => {} : (line) => console.log(line);
  }

  /** Opens the local ports. */
  async open(): Promise<void> {
    const ports = await openPorts(this.#config, this.#say);
    this.#closers.push(() => ports.close());
    for (const input of ports.inputs) this.#inputs.set(input, new HeldNotes());
    this.#outputs.push(...ports.outputs);
  }

  /** Closes the local ports. */
  async close(): Promise<void> {
    await Promise.all(this.#closers.map((close) => close().catch(() => {})));
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
    const removeListeners = onStop(() => this.#halt(), signal);
    try {
      for (const input of this.#inputs.keys()) {
        this.#spawn(this.#pumpInput(input));
      }
      return await this.#session();
    } finally {
      removeListeners();
      this.#stop.abort();
      await this.close();
      await Promise.all(this.#tasks);
    }
  }

  #halt(): void {
    if (this.#stop.signal.aborted) return;
    this.#stop.abort();
    const current = this.#current;
    if (current === undefined) return;
    // Let go of the notes local inputs hold, then close (which flushes).
    for (const held of this.#inputs.values()) {
      for (const msg of held.release()) current.send(msg).catch(() => {});
    }
    current.close().catch(() => {});
  }

  #spawn(task: Promise<void>): void {
    const tracked = task.catch((error) => {
      console.error(`midisock ${COMMAND}: ${describeError(error)}`);
    });
    this.#tasks.add(tracked);
    tracked.finally(() => this.#tasks.delete(tracked));
  }

  async #pumpInput(input: InputPort): Promise<void> {
    const held = this.#inputs.get(input)!;
    const label = hardwareLabel(input.name);
    for await (const msg of input) {
      this.#show(label, msg);
      held.track(msg);
      this.#current?.send(msg).catch(() => {});
    }
  }

  async #session(): Promise<number> {
    const where = formatAddress(this.#config);
    const stopped = this.#stop.signal;
    let delay = RETRY_FIRST_MS;
    while (!stopped.aborted) {
      let port: SocketPort;
      try {
        port = await this.#connectUnlessStopped();
      } catch (error) {
        if (stopped.aborted) break;
        if (!this.#config.retry) throw error;
        this.#say(
          `retrying in ${delay / 1000}s: ${describeError(error)}`,
        );
        await sleep(delay, stopped);
        delay = Math.min(delay * 2, RETRY_MAX_MS);
        continue;
      }
      delay = RETRY_FIRST_MS;
      this.#current = port;
      this.#say(`connected to ${where}`);
      const fromServer = new HeldNotes();
      for await (const msg of port) {
        this.#show(port.name, msg);
        fromServer.track(msg);
        for (const output of this.#outputs) {
          output.send(msg).catch(() => {});
        }
      }
      this.#current = undefined;
      await port.close();
      // What the server left held would sound forever: let go of it.
      const offs = fromServer.release();
      await Promise.all(
        this.#outputs.flatMap((output) =>
          offs.map((msg) => output.send(msg).catch(() => {}))
        ),
      );
      if (stopped.aborted) break;
      this.#say(`disconnected from ${where}`);
      if (!this.#config.retry) return 0;
      // Each local input's notes were cut off with the connection.
      for (const held of this.#inputs.values()) held.release();
    }
    return 0;
  }

  async #connectUnlessStopped(): Promise<SocketPort> {
    const connecting = connectTo(this.#config);
    const stopped = new Promise<undefined>((resolve) => {
      if (this.#stop.signal.aborted) resolve(undefined);
      this.#stop.signal.addEventListener("abort", () => resolve(undefined), {
        once: true,
      });
    });
    const port = await Promise.race([connecting, stopped]);
    if (port === undefined) {
      connecting.then((late) => late.close(), () => {});
      throw new CliError("stopped");
    }
    return port;
  }
}

/** Sends the `--send` messages and closes. */
async function sendAndExit(config: ConnectConfig): Promise<number> {
  const port = await connectTo(config);
  try {
    for (const msg of config.send) await port.send(msg);
  } finally {
    await port.close();
  }
  if (!config.quiet) {
    const n = config.send.length;
    console.log(
      `sent ${n} message${n === 1 ? "" : "s"} to ${formatAddress(config)}`,
    );
  }
  return 0;
}

/**
 * Runs `midisock connect` with the given command-line arguments.
 *
 * @param args The arguments, as `Deno.args` gives them.
 * @param options `signal`: stops it as SIGINT/SIGTERM do.
 * @returns The exit code: 0 when the server closed the connection (without
 * `--retry`), after `--send`, `--help`, or a clean shutdown; 2 for bad
 * usage; 1 for a failure (each reported in one line on stderr).
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
