/**
 * What the command-line entry points share: the version, argument errors,
 * one-line error reports, shutdown signals, held-note tracking and the
 * lazily loaded hardware module.
 *
 * @module
 */

import { AddressList } from "../access.ts";
import denoJson from "../../deno.json" with { type: "json" };
import { parseAddress } from "../address.ts";
import type { AddOptions, Endpoint, Hub } from "../hub/mod.ts";
import { isToken } from "../gate.ts";
import type { Port } from "../port.ts";

/** The package version, from deno.json. */
export const VERSION: string = denoJson.version;

/** The package name, from deno.json. */
export const PACKAGE: string = denoJson.name;

/** Options every `main` takes besides its arguments. */
export interface MainOptions {
  /**
   * Stops the command as SIGINT/SIGTERM do (a clean shutdown, exit code 0):
   * for running it inside another program or a test.
   */
  signal?: AbortSignal;
}

/** Bad command-line input: reported in one line, exit code 2. */
export class UsageError extends Error {
  /**
   * Makes the error.
   *
   * @param message What was wrong, for people.
   */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** A failure already phrased for people: reported as is, exit code 1. */
export class CliError extends Error {
  /**
   * Makes the error.
   *
   * @param message What failed, for people.
   * @param options `cause`: the underlying error.
   */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "CliError";
  }
}

/** Exit code for bad usage. */
export const EXIT_USAGE = 2;
/** Exit code for a failure at run time. */
export const EXIT_FAILURE = 1;

/**
 * Runs `node:util`'s `parseArgs` (with `strict: true`), turning its errors
 * into {@linkcode UsageError}s.
 *
 * @param parse The call to `parseArgs`.
 * @returns What it returns.
 * @throws {UsageError} For an unknown option, a missing value and so on.
 */
export function parse<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    const text = (error as Error).message.split(". ")[0];
    throw new UsageError(text.replace(/\.$/, ""));
  }
}

/** One line of text: newlines and runs of blanks become single spaces. */
function oneLine(text: string): string {
  return text.split(/\r?\n/).map((s) => s.trim()).filter((s) => s !== "")
    .join("; ");
}

/**
 * Phrases any error for people in one line, without a stack trace.
 *
 * @param error What was thrown.
 * @returns The line.
 */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return oneLine(String(error));
  if (error.name === "RtMidiNotFoundError") {
    const tried = (error as { tried?: readonly (readonly string[])[] }).tried ??
      [];
    const where = tried.length === 1 ? tried[0][0] : `${tried.length} places`;
    return `the RtMidi library was not found (tried ${where}); ` +
      "install it (Debian/Ubuntu: apt-get install librtmidi6; macOS: " +
      "brew install rtmidi; Fedora: dnf install rtmidi; Arch: pacman -S " +
      "rtmidi) or set MIDISOCK_RTMIDI_PATH to the library file";
  }
  if (error instanceof Deno.errors.NotCapable) {
    return `missing permission: ${oneLine(error.message)}`;
  }
  if (error.name === "RefusedError") {
    const { server, reason } = error as Error & {
      server: string;
      reason: string;
    };
    return `refused by ${server} (${reason})`;
  }
  const tls = tlsAdvice(error.message);
  if (tls !== undefined) return tls;
  return oneLine(error.message);
}

/** What to do about a TLS certificate error, where it is a known one. */
function tlsAdvice(message: string): string | undefined {
  if (/CaUsedAsEndEntity/.test(message)) {
    return "the server's certificate is a CA certificate (self-signed with " +
      "CA:TRUE): make a CA, sign a server certificate with it, serve that " +
      "and pass the CA to --ca (see the README's TLS recipe)";
  }
  if (/UnknownIssuer/.test(message)) {
    return "the server's certificate is not signed by a trusted authority: " +
      "pass the CA that signed it with --ca";
  }
  if (/NotValidForName/.test(message)) {
    return "the server's certificate is not valid for this host name: " +
      "connect with a name it lists (its subjectAltName)";
  }
  if (/Expired/.test(message) && /certificate/i.test(message)) {
    return "the server's certificate has expired";
  }
  return undefined;
}

/**
 * Reports an error on stderr as `midisock <command>: <line>`.
 *
 * @param command The command's name.
 * @param error What was thrown.
 * @returns The exit code: 2 for a {@linkcode UsageError}, else 1.
 */
export function report(command: string, error: unknown): number {
  if (error instanceof UsageError) {
    console.error(`midisock ${command}: ${error.message} (see --help)`);
    return EXIT_USAGE;
  }
  console.error(`midisock ${command}: ${describeError(error)}`);
  return EXIT_FAILURE;
}

/**
 * Reads an address given as a positional `ADDRESS` or `--host`/`--port`.
 *
 * @param positional The `ADDRESS` argument, if any.
 * @param host `--host`, if given.
 * @param port `--port`, if given.
 * @param defaults The host and port when nothing says otherwise.
 * @returns The host and port.
 * @throws {UsageError} For an address that does not parse, or both forms.
 */
export function readAddress(
  positional: string | undefined,
  host: string | undefined,
  port: string | undefined,
  defaults: { hostname: string; port: number },
): { hostname: string; port: number } {
  if (positional !== undefined && (host !== undefined || port !== undefined)) {
    throw new UsageError(
      "give the address either as ADDRESS or with --host/--port, not both",
    );
  }
  if (positional !== undefined) {
    try {
      return parseAddress(positional, defaults.port);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
  }
  let portNumber = defaults.port;
  if (port !== undefined) {
    if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) {
      throw new UsageError(
        `invalid port ${JSON.stringify(port)}: expected a number in 0..65535`,
      );
    }
    portNumber = Number(port);
  }
  let hostname = host ?? defaults.hostname;
  if (hostname.startsWith("[") && hostname.endsWith("]")) {
    hostname = hostname.slice(1, -1);
  }
  return { hostname, port: portNumber };
}

/**
 * Reads a hardware port argument: digits are an index, anything else a name
 * (or a part of one).
 *
 * @param text The argument.
 * @returns The index or the name.
 */
export function portQuery(text: string): string | number {
  return /^\d+$/.test(text) ? Number(text) : text;
}

/**
 * Calls `stop` on SIGINT or SIGTERM (where the platform has it) or when
 * `signal` aborts; a second SIGINT/SIGTERM during shutdown exits at once
 * with code 130.
 *
 * @param stop What to do.
 * @param signal An extra way to stop, for tests and embedding.
 * @returns A function that removes the listeners.
 */
export function onStop(stop: () => void, signal?: AbortSignal): () => void {
  let stopping = false;
  const handler = () => {
    if (stopping) Deno.exit(130);
    stopping = true;
    stop();
  };
  const installed: Deno.Signal[] = [];
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT", "SIGBREAK"]
    : ["SIGINT", "SIGTERM"];
  for (const name of signals) {
    try {
      Deno.addSignalListener(name, handler);
      installed.push(name);
    } catch {
      // Not supported here: the other ways to stop remain.
    }
  }
  const abort = () => {
    stopping = true;
    stop();
  };
  if (signal?.aborted) queueMicrotask(abort);
  else signal?.addEventListener("abort", abort, { once: true });
  return () => {
    for (const name of installed) Deno.removeSignalListener(name, handler);
    signal?.removeEventListener("abort", abort);
  };
}

/** Local time of day with milliseconds: `14:03:27.123`. */
export function clock(date: Date = new Date()): string {
  const two = (n: number) => String(n).padStart(2, "0");
  return `${two(date.getHours())}:${two(date.getMinutes())}:${
    two(date.getSeconds())
  }.${String(date.getMilliseconds()).padStart(3, "0")}`;
}

/** How a hardware port is shown as a message source: its name, quoted. */
export function hardwareLabel(name: string): string {
  return JSON.stringify(name);
}

/** The hardware module, loaded on first use only. */
export type Hardware = typeof import("../hardware/mod.ts");

/**
 * Loads the hardware module: only commands that use hardware pay for it.
 *
 * @returns The module.
 */
export function loadHardware(): Promise<Hardware> {
  return import("../hardware/mod.ts");
}

/** Hardware ports opened for a command, and how to close them. */
export interface OpenedPorts {
  /** Closes every port opened, and stops following those that come back. */
  close(): Promise<void>;
}

/** What a hardware port is to a command: where its messages go. */
export type PortRole = "input" | "output" | "pair";

/**
 * Opens the hardware ports a command line asks for, as a `MidiPorts`
 * transport, loading the hardware module only when there are any. With a
 * hub, they join it as device endpoints; with a function (connect, which
 * is no hub yet), each port is handed to it, again each time it is back.
 * `--in` and `--out` ports are followed through unplug and replug, and
 * `lost "NAME"` and `back "NAME"` are said. On failure, closes what was
 * opened and throws, adding a hint to use `--api` when RtMidi's default
 * backend failed.
 *
 * @param wanted The `--in`, `--out`, `--virtual` and `--api` arguments.
 * @param say Where to report each port opened, lost and back.
 * @param to The hub, or what to do with each port as it is opened.
 * @returns How to close them.
 */
export async function openPorts(
  wanted: {
    inputs: (string | number)[];
    outputs: (string | number)[];
    virtual: string[];
    api: (typeof APIS)[number] | undefined;
  },
  say: (line: string) => void,
  to: Hub | ((port: Port, role: PortRole) => void),
): Promise<OpenedPorts> {
  const { inputs, outputs, virtual, api } = wanted;
  if (inputs.length + outputs.length + virtual.length === 0) {
    return { close: () => Promise.resolve() };
  }
  const hardware = await loadHardware();
  const use = typeof to === "function" ? to : undefined;
  const ports = new hardware.MidiPorts({
    inputs,
    outputs,
    virtual,
    api,
    onEvent: (event) => {
      if (event.type === "error") {
        console.error(`midisock: ${hardware.formatMidiPortsEvent(event)}`);
        return;
      }
      if (event.type !== "lost") use?.(event.endpoint.port, event.role);
      say(hardware.formatMidiPortsEvent(event));
    },
  });
  try {
    if (typeof to === "function") await ports.attach(standIn());
    else await to.attach(ports);
  } catch (error) {
    await ports.close();
    if (api === undefined && error instanceof hardware.RtMidiError) {
      let apis = "";
      try {
        apis = ` (this RtMidi has: ${hardware.getApis().join(", ")})`;
      } catch {
        // Listing failed too: no hint.
      }
      throw new CliError(
        `${describeError(error)}; choose a MIDI backend with --api${apis}`,
        { cause: error },
      );
    }
    throw error;
  }
  return ports;
}

/**
 * For a command that is no hub (connect, for now): a stand-in that takes
 * the ports `MidiPorts` adds and gives each a bare endpoint; `openPorts`
 * hands the ports to the command through the events.
 */
function standIn(): Hub {
  let id = 0;
  const stand = {
    closed: false,
    add(port: Port, options: AddOptions): Endpoint {
      return {
        id: ++id,
        name: options.name ?? port.name,
        kind: options.kind ?? "device",
        transport: options.transport ?? "midi",
        port,
        joinedAt: Date.now(),
        stats: {
          received: 0,
          sent: 0,
          dropped: 0,
          queuedBytes: 0,
          heldNotes: 0,
        },
      };
    },
    remove(): Promise<void> {
      return Promise.resolve();
    },
  };
  return stand as unknown as Hub;
}

/** The backends `--api` accepts. */
export const APIS = ["alsa", "jack", "core", "winmm"] as const;

/**
 * Checks an `--api` argument.
 *
 * @param api The argument, if given.
 * @returns The backend, or undefined for RtMidi's choice.
 * @throws {UsageError} For an unknown backend.
 */
export function readApi(
  api: string | undefined,
): (typeof APIS)[number] | undefined {
  if (api === undefined) return undefined;
  if (!(APIS as readonly string[]).includes(api)) {
    throw new UsageError(
      `unknown MIDI backend ${JSON.stringify(api)}: expected one of ${
        APIS.join(", ")
      }`,
    );
  }
  return api as (typeof APIS)[number];
}

/**
 * The shared secret from `--token`, else from MIDISOCK_TOKEN (which keeps it
 * out of the process list), checked as the server will check it.
 */
export function readToken(flag: string | undefined): string | undefined {
  const token = flag ?? envToken();
  if (token !== undefined && !isToken(token)) {
    throw new UsageError(
      "--token must be 1-200 printable ASCII characters without spaces",
    );
  }
  return token;
}

/** MIDISOCK_TOKEN, where the environment may be read. */
function envToken(): string | undefined {
  const query = { name: "env", variable: "MIDISOCK_TOKEN" } as const;
  if (Deno.permissions.querySync(query).state !== "granted") return undefined;
  return Deno.env.get("MIDISOCK_TOKEN");
}

/** Reads a file named on the command line, phrasing a failure. */
export function readFile(flag: string, path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    throw new CliError(`cannot read ${flag} ${path}: ${describeError(error)}`, {
      cause: error,
    });
  }
}

/**
 * The warning for a server reachable beyond loopback with no allow list, or
 * undefined when there is nothing to warn about.
 */
export function exposureWarning(
  name: string,
  hostname: string,
  hasAllowList: boolean,
): string | undefined {
  if (hasAllowList || AddressList.isLoopback(hostname)) return undefined;
  return `warning: listening beyond loopback on ${name} with no --allow ` +
    "list: anyone who can reach this port can play notes and send sysex " +
    "to every client and output";
}

/** Prints `--help` (the command's text) or `--version`; the exit code. */
export function printInfo(what: "help" | "version", help: string): number {
  console.log(what === "help" ? help : `midisock ${VERSION}`);
  return 0;
}

/** `1 client`, `2 clients`. */
export function plural(n: number, noun: string): string {
  // Thousands separated as in "3,512" (toLocaleString costs too much to call
  // for every line of a busy server).
  const digits = String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${digits} ${noun}${n === 1 ? "" : "s"}`;
}

/**
 * Reads a whole number flag.
 *
 * @throws {UsageError} For anything else, or one below `min`.
 */
export function count(flag: string, text: string, min: number): number {
  if (!/^\d+$/.test(text) || Number(text) < min) {
    throw new UsageError(
      `${flag} must be a whole number of at least ${min}: got ${
        JSON.stringify(text)
      }`,
    );
  }
  return Number(text);
}

/**
 * Reads a flag given in seconds, as milliseconds.
 *
 * @throws {UsageError} For anything but a positive number.
 */
export function seconds(flag: string, text: string): number {
  const value = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !(value > 0)) {
    throw new UsageError(
      `${flag} must be a positive number of seconds: got ${
        JSON.stringify(text)
      }`,
    );
  }
  return value * 1000;
}

/** How long refusals of one address and reason are summed up in one line. */
const REFUSAL_WINDOW_MS = 5000;

/**
 * Prints refused connections without flooding the log: the first refusal of
 * an address for a reason gets its own line, and the rest, within five
 * seconds, one summary line when the window ends:
 * `refused 3,512 connections from 127.0.0.1 (wrong token) in the last 5 s`.
 */
export class RefusalLog {
  readonly #say: (line: string) => void;
  readonly #windows = new Map<string, { count: number; line: string }>();
  #timer: ReturnType<typeof setTimeout> | undefined;

  /**
   * Makes the log.
   *
   * @param say Where lines go.
   */
  constructor(say: (line: string) => void) {
    this.#say = say;
  }

  /**
   * Notes one refusal.
   *
   * @param peer The peer, `host:port`.
   * @param address Its address alone.
   * @param reason Why.
   */
  add(peer: string, address: string, reason: string): void {
    const key = `${address} ${reason}`;
    const window = this.#windows.get(key);
    if (window !== undefined) {
      window.count++;
      return;
    }
    this.#say(`refused ${peer} (${reason})`);
    this.#windows.set(key, {
      count: 0,
      line: `from ${address} (${reason}) in the last ${
        REFUSAL_WINDOW_MS / 1000
      } s`,
    });
    if (this.#timer === undefined) {
      this.#timer = setTimeout(() => this.flush(), REFUSAL_WINDOW_MS);
      Deno.unrefTimer(this.#timer as unknown as number);
    }
  }

  /** Prints what the window summed up, and starts afresh. */
  flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const { count, line } of this.#windows.values()) {
      if (count > 0) {
        this.#say(`refused ${plural(count, "more connection")} ${line}`);
      }
    }
    this.#windows.clear();
  }
}
