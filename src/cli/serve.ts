#!/usr/bin/env -S deno run --allow-net --allow-ffi --allow-read --allow-env=MIDISOCK_RTMIDI_PATH,MIDISOCK_RTMIDI_API,MIDISOCK_TOKEN
/**
 * `midisock serve`: a MIDI socket server, wire-compatible with mido's
 * socket ports. With no options it listens on 127.0.0.1:8080 as a hub:
 * every message a client sends goes to every other client. Hardware inputs
 * (`--in`) feed every client, hardware outputs (`--out`) hear every client,
 * `--virtual` creates a virtual port pair for other programs.
 *
 * Run it with `deno run -A jsr:@x/midisock/serve`, or see `--help`.
 * Serving without hardware needs only `--allow-net`; `--in`, `--out` and
 * `--virtual` also need `--allow-ffi` and the RtMidi library.
 *
 * Output, one line per event: `listening on ADDRESS ...` first (the real
 * port when 0 was asked for), then `connect ADDRESS`, `disconnect ADDRESS`,
 * and with `--monitor` one line per message: `TIME SOURCE TEXT`, where
 * SOURCE is a client's `host:port` or a hardware port's name in quotes and
 * TEXT is mido's text form. Errors go to stderr as
 * `midisock serve: MESSAGE`; exit code 2 for bad usage, 1 for a failure.
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
import type { Message } from "../codec/messages.ts";
import { formatAddress } from "../net/address.ts";
import { AddressList } from "../net/access.ts";
import { PortServer, type PortServerOptions } from "../net/server.ts";
import type { SocketPort } from "../net/socket_port.ts";
import type { InputPort, OutputPort } from "../port.ts";
import {
  CliError,
  clock,
  describeError,
  exposureWarning,
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

const COMMAND = "serve";
const DEFAULT_HOST = "127.0.0.1";
const DEFAULT_PORT = 8080;
/** How long shutdown waits for each step before going on. */
const SHUTDOWN_STEP_MS = 2000;

const HELP =
  `midisock serve ${VERSION}: a MIDI socket server, compatible with mido

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
      --token TOKEN    Require clients to send this shared secret first
                       (midisock connect --token); or set MIDISOCK_TOKEN
      --cert FILE      Serve TLS with this certificate chain (PEM) ...
      --key FILE       ... and this private key (PEM)
  -m, --monitor        Print each message: time, source, mido text form
  -q, --quiet          Print nothing but errors
  -h, --help           Print this help and exit
  -V, --version        Print the version and exit

Output: one line per event ("listening on", "connect", "disconnect"; with
--monitor "TIME SOURCE MESSAGE"). Ctrl-C or SIGTERM closes every client,
sends note_off for notes still held, and exits 0. Exit code 2 means bad
usage, 1 a failure (port in use, missing permission, no RtMidi, no such port).

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

  # Send a note from Python's mido
  python3 -c "import mido, mido.sockets as s
  s.connect('127.0.0.1', 8080).send(mido.Message('note_on', note=60))"
`;

/** The command line, read. */
interface ServeConfig {
  hostname: string;
  port: number;
  inputs: (string | number)[];
  outputs: (string | number)[];
  virtual: string[];
  api: ReturnType<typeof readApi>;
  hub: boolean;
  monitor: boolean;
  quiet: boolean;
  /** Options handed to the PortServer: where security settings slot in. */
  server: PortServerOptions;
}

function readArgs(args: string[]): ServeConfig | "help" | "version" {
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
        "no-hub": { type: "boolean" },
        allow: { type: "string", multiple: true },
        "max-clients": { type: "string" },
        "no-sysex": { type: "boolean" },
        "max-sysex": { type: "string" },
        "rate-limit": { type: "string" },
        token: { type: "string" },
        cert: { type: "string" },
        key: { type: "string" },
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
  return {
    hostname,
    port,
    inputs: names(values.in, "--in").map(portQuery),
    outputs: names(values.out, "--out").map(portQuery),
    virtual: names(values.virtual, "--virtual"),
    api: readApi(values.api),
    hub: !values["no-hub"],
    monitor: values.monitor ?? false,
    quiet: values.quiet ?? false,
    server: readPolicy(values),
  };
}

/** The security flags, as PortServer options. */
function readPolicy(values: {
  allow?: string[];
  "max-clients"?: string;
  "no-sysex"?: boolean;
  "max-sysex"?: string;
  "rate-limit"?: string;
  token?: string;
  cert?: string;
  key?: string;
}): PortServerOptions {
  const options: PortServerOptions = {};
  if (values.allow !== undefined) {
    const rules = values.allow.flatMap((list) => list.split(","));
    try {
      new AddressList(rules);
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
  if ((values.cert === undefined) !== (values.key === undefined)) {
    throw new UsageError("--cert and --key go together");
  }
  if (values.cert !== undefined && values.key !== undefined) {
    options.tls = {
      cert: readFile("--cert", values.cert),
      key: readFile("--key", values.key),
    };
  }
  return options;
}

function count(flag: string, text: string, min: number): number {
  if (!/^\d+$/.test(text) || Number(text) < min) {
    throw new UsageError(
      `${flag} must be a whole number of at least ${min}: got ${
        JSON.stringify(text)
      }`,
    );
  }
  return Number(text);
}

/** Where a message came from: a client, or a hardware input. */
type Source = SocketPort | InputPort;

/** The running server: clients, hardware ports and the routes between. */
class Hub {
  readonly #config: ServeConfig;
  readonly #say: (line: string) => void;
  #server: PortServer | undefined;
  readonly #clients = new Map<SocketPort, HeldNotes>();
  readonly #inputs = new Map<InputPort, HeldNotes>();
  readonly #outputs: OutputPort[] = [];
  readonly #closers: (() => Promise<void>)[] = [];
  readonly #tasks = new Set<Promise<void>>();
  readonly #reasons = new Map<SocketPort, unknown>();
  readonly #failedOutputs = new Set<OutputPort>();
  #stopping = false;

  constructor(config: ServeConfig) {
    this.#config = config;
    this.#say = config.quiet ? () => {} : (line) => console.log(line);
  }

  /** Binds the server and opens the hardware; throws phrased errors. */
  async start(): Promise<void> {
    const { hostname, port } = this.#config;
    const where = formatAddress({ hostname, port });
    try {
      this.#server = new PortServer(hostname, port, {
        ...this.#config.server,
        onRefuse: (peer, reason) =>
          this.#say(`refused ${formatAddress(peer)} (${reason})`),
      });
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
    await this.#openHardware();
  }

  async #openHardware(): Promise<void> {
    const ports = await openPorts(this.#config, this.#say);
    this.#closers.push(() => ports.close());
    for (const input of ports.inputs) this.#inputs.set(input, new HeldNotes());
    this.#outputs.push(...ports.outputs);
  }

  /** Closes what `start` opened, after it failed. */
  async abandon(): Promise<void> {
    await this.#server?.close();
    await Promise.all(this.#closers.map((close) => close().catch(() => {})));
  }

  /** Serves until stopped, then shuts down cleanly. */
  async run(signal?: AbortSignal): Promise<void> {
    const server = this.#server!;
    let stop!: () => void;
    const stopped = new Promise<void>((resolve) => stop = resolve);
    const removeListeners = onStop(stop, signal);
    try {
      this.#announce(server);
      this.#spawn(this.#acceptLoop(server));
      for (const input of this.#inputs.keys()) {
        this.#spawn(this.#pumpInput(input));
      }
      await stopped;
      await this.#shutdown();
    } finally {
      removeListeners();
    }
  }

  #announce(server: PortServer): void {
    const { hostname, port } = server.addr;
    const warning = exposureWarning(
      server.name,
      hostname,
      this.#config.server.allow !== undefined,
    );
    if (warning !== undefined) console.error(`midisock ${COMMAND}: ${warning}`);
    const reachable = hostname === "::" || hostname === "0.0.0.0"
      ? "127.0.0.1"
      : hostname;
    const address = formatAddress({ hostname: reachable, port });
    const mode = this.#config.hub ? "hub" : "no hub";
    this.#say(
      `listening on ${server.name} (${mode}); connect with: ` +
        `deno run -A jsr:${PACKAGE}/connect ${address} ` +
        `or mido.sockets.connect(${JSON.stringify(reachable)}, ${port})`,
    );
  }

  #spawn(task: Promise<void>): void {
    const tracked = task.catch((error) => {
      console.error(`midisock ${COMMAND}: ${describeError(error)}`);
    });
    this.#tasks.add(tracked);
    tracked.finally(() => this.#tasks.delete(tracked));
  }

  async #acceptLoop(server: PortServer): Promise<void> {
    for (;;) {
      let client: SocketPort;
      try {
        client = await server.accept();
      } catch {
        return; // The server closed.
      }
      if (this.#stopping) {
        await client.close();
        continue;
      }
      this.#clients.set(client, new HeldNotes());
      this.#say(`connect ${client.name} (${this.#count()})`);
      this.#spawn(this.#pumpClient(client));
    }
  }

  #count(): string {
    const n = this.#clients.size;
    return `${n} client${n === 1 ? "" : "s"}`;
  }

  async #pumpClient(client: SocketPort): Promise<void> {
    for await (const msg of client) this.#route(msg, client);
    if (this.#stopping) return;
    const held = this.#clients.get(client);
    this.#clients.delete(client);
    const notes = held?.release() ?? [];
    for (const msg of notes) this.#deliver(msg, client);
    const reason = this.#reasons.get(client);
    this.#reasons.delete(client);
    const why = reason === undefined ? "" : `: ${describeError(reason)}`;
    const released = notes.length === 0
      ? ""
      : `, released ${notes.length} held note${notes.length === 1 ? "" : "s"}`;
    this.#say(`disconnect ${client.name} (${this.#count()}${released})${why}`);
  }

  async #pumpInput(input: InputPort): Promise<void> {
    for await (const msg of input) this.#route(msg, input);
    if (!this.#stopping) this.#say(`input ${hardwareLabel(input.name)} closed`);
  }

  #label(source: Source): string {
    return this.#clients.has(source as SocketPort)
      ? source.name
      : hardwareLabel(source.name);
  }

  #route(msg: Message, source: Source): void {
    if (this.#config.monitor) {
      this.#say(`${clock()} ${this.#label(source)} ${formatMessage(msg)}`);
    }
    (this.#clients.get(source as SocketPort) ??
      this.#inputs.get(source as InputPort))?.track(msg);
    this.#deliver(msg, source);
  }

  /**
   * Sends one message where messages from `source` go.
   *
   * @returns The hardware sends, which never reject.
   */
  #deliver(msg: Message, source: Source): Promise<void>[] {
    const fromClient = !this.#inputs.has(source as InputPort);
    if (!fromClient || this.#config.hub) {
      for (const client of this.#clients.keys()) {
        if (client !== source) this.#sendToClient(client, msg);
      }
    }
    if (!fromClient) return [];
    return this.#outputs.map((output) => this.#sendToOutput(output, msg));
  }

  #sendToClient(client: SocketPort, msg: Message): void {
    client.send(msg).catch((error) => {
      // A client that is gone or stopped reading: drop it; its pump then
      // reports the disconnect.
      if (!this.#reasons.has(client)) this.#reasons.set(client, error);
      client.close().catch(() => {});
    });
  }

  #sendToOutput(output: OutputPort, msg: Message): Promise<void> {
    return output.send(msg).catch((error) => {
      if (this.#failedOutputs.has(output) || output.closed) return;
      this.#failedOutputs.add(output);
      console.error(
        `midisock ${COMMAND}: output ${hardwareLabel(output.name)}: ${
          describeError(error)
        }`,
      );
    });
  }

  async #shutdown(): Promise<void> {
    this.#stopping = true;
    await this.#server?.close();
    // Let go of every held note, where each source's messages went.
    let released = 0;
    const sends: Promise<void>[] = [];
    for (const [source, held] of [...this.#clients, ...this.#inputs]) {
      for (const msg of held.release()) {
        sends.push(...this.#deliver(msg, source));
        released++;
      }
    }
    await bounded(Promise.all(sends));
    const clients = [...this.#clients.keys()];
    await bounded(Promise.all(clients.map((c) => c.close())));
    await bounded(Promise.all(this.#closers.map((close) => close())));
    await bounded(Promise.all(this.#tasks));
    this.#say(
      `stopped: closed ${clients.length} client${
        clients.length === 1 ? "" : "s"
      }, released ${released} held note${released === 1 ? "" : "s"}`,
    );
  }
}

async function bounded(task: Promise<unknown>): Promise<void> {
  const controller = new AbortController();
  await Promise.race([
    task.catch(() => {}),
    sleep(SHUTDOWN_STEP_MS, controller.signal),
  ]);
  controller.abort();
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
  try {
    const config = readArgs(args);
    if (config === "help" || config === "version") {
      return printInfo(config, HELP);
    }
    hub = new Hub(config);
    await hub.start();
  } catch (error) {
    await hub?.abandon();
    return report(COMMAND, error);
  }
  await hub.run(options.signal);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
