// A real NATS server for tests: Debian's nats-server, started on a free
// loopback port and stopped by its pid. Tests that need it are ignored with
// a reason when it is missing, unless MIDISOCK_REQUIRE_NATS=1.
//
// Run as a program (`deno run tests/_nats.ts CONFIG`), it is one hub of a
// timing test in a network namespace: see `TimedPeer`.

import {
  connect,
  type HasSink,
  Hub,
  type Message,
  message,
  NatsLink,
  type NatsLinkOptions,
  type OutputPort,
  type Port,
  PortServer,
  SINK,
  type SocketPort,
} from "../mod.ts";
import type { NatsLinkEvent } from "../src/nats/mod.ts";
import { hearingSink, Player } from "./_timed_ports.ts";
import { until, within } from "./_net.ts";

/** The nats-server binary: on PATH, or where Debian puts it. */
export const NATS_SERVER: string = (() => {
  for (
    const path of [
      "nats-server",
      "/usr/sbin/nats-server",
      "/usr/bin/nats-server",
    ]
  ) {
    try {
      const { success } = new Deno.Command(path, {
        args: ["--version"],
        stdout: "null",
        stderr: "null",
      }).outputSync();
      if (success) return path;
    } catch {
      // Try the next.
    }
  }
  return "";
})();

const required = Deno.env.get("MIDISOCK_REQUIRE_NATS") === "1";
if (NATS_SERVER === "") {
  const line = "nats-server is not installed";
  if (required) throw new Error(`${line}, but MIDISOCK_REQUIRE_NATS=1`);
  console.warn(`${line}: skipping NATS tests (apt-get install nats-server)`);
}

/** Whether NATS tests must be skipped here. */
export const noNats: boolean = NATS_SERVER === "";

/** Why NATS tests are skipped here, or undefined. */
export const NATS_MISSING: string | undefined = noNats
  ? "nats-server is not installed; apt-get install nats-server"
  : undefined;

/** Whether openssl is there, to make TLS material. */
export const noOpenssl: boolean = (() => {
  try {
    return !new Deno.Command("openssl", {
      args: ["version"],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return true;
  }
})();

/** A loopback TCP port nothing listens on right now. */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** A running nats-server. */
export class NatsServer implements AsyncDisposable {
  readonly port: number;
  #args: string[];
  readonly #env: Record<string, string>;
  #child: Deno.ChildProcess | undefined;
  #log = "";

  private constructor(
    port: number,
    args: string[],
    env: Record<string, string>,
  ) {
    this.port = port;
    this.#args = args;
    this.#env = env;
  }

  /**
   * Starts a server on a free loopback port with extra flags (`--user`,
   * `--tls`...) and environment variables (which a config file can name
   * as `$NAME`), once it says it is ready.
   */
  static async start(
    args: string[] = [],
    env: Record<string, string> = {},
  ): Promise<NatsServer> {
    const server = new NatsServer(freePort(), args, env);
    await server.restart();
    return server;
  }

  /** `nats://127.0.0.1:PORT`. */
  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** What the server logged, for failure messages. */
  get log(): string {
    return this.#log;
  }

  /** Starts it again on the same port (after `stop`), with other flags if given. */
  async restart(args: string[] = this.#args): Promise<void> {
    this.#args = args;
    const child = new Deno.Command(NATS_SERVER, {
      args: ["-a", "127.0.0.1", "-p", String(this.port), ...args],
      env: this.#env,
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    const reader = child.stderr.pipeThrough(new TextDecoderStream())
      .getReader();
    const ready = (async () => {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`nats-server ended:\n${this.#log}`);
        this.#log += value;
        if (this.#log.includes("Server is ready")) return;
      }
    })();
    try {
      await within(ready, 10000, "starting nats-server");
    } catch (error) {
      await this.stop();
      throw error;
    }
    // Keep reading so the pipe never fills; done when the server ends.
    (async () => {
      for (;;) {
        const { value, done } = await reader.read().catch(() => ({
          value: "",
          done: true,
        }));
        if (done) return;
        this.#log += value;
      }
    })();
  }

  /** Stops it (SIGTERM) and waits until it is gone. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    this.#child = undefined;
    try {
      child.kill("SIGTERM");
    } catch {
      // Gone already.
    }
    await child.status;
  }

  /** Stops it, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/** A `serve --nats` process and what it prints. */
export class HubProcess implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly lines: string[] = [];
  readonly ready: Promise<{ port: number; id: string }>;
  readonly exited: Promise<Deno.CommandStatus>;
  stderr = "";

  /**
   * Starts `serve 127.0.0.1:0 --nats URL --room ROOM`, with `--nats-name`
   * when a name is given, then `args`; Deno may only reach loopback, and
   * do what `allow` adds.
   */
  constructor(
    url: string,
    room: string,
    name: string | undefined,
    args: string[] = [],
    allow: string[] = [],
  ) {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--allow-net=127.0.0.1",
        ...allow,
        new URL("../src/cli/serve.ts", import.meta.url).pathname,
        "127.0.0.1:0",
        "--nats",
        url,
        "--room",
        room,
        ...(name === undefined ? [] : ["--nats-name", name]),
        ...args,
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    let readyNow = (_: { port: number; id: string }): void => {};
    this.ready = new Promise((resolve) => readyNow = resolve);
    let port = 0;
    let id = "";
    const out = (async () => {
      let buffer = "";
      for await (
        const chunk of child.stdout.pipeThrough(new TextDecoderStream())
      ) {
        buffer += chunk;
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, newline);
          buffer = buffer.slice(newline + 1);
          this.lines.push(line);
          const listening = line.match(/^listening on 127\.0\.0\.1:(\d+)$/);
          if (listening) port = Number(listening[1]);
          const up = line.match(/^NATS link up: .* \(([A-Za-z0-9_-]+)\)$/);
          if (up) id = up[1];
          if (port !== 0 && id !== "") readyNow({ port, id });
        }
      }
    })();
    const err = (async () => {
      for await (
        const chunk of child.stderr.pipeThrough(new TextDecoderStream())
      ) {
        this.stderr += chunk;
      }
    })();
    this.exited = Promise.all([out, err]).then(() => child.status);
  }

  /** Connects a TCP client to the hub. */
  async client(): Promise<SocketPort> {
    const { port } = await within(this.ready, 15000, "a hub process starting");
    return await connect("127.0.0.1", port);
  }

  /** Sends it a signal. */
  kill(signal: Deno.Signal): void {
    try {
      this.#child.kill(signal);
    } catch {
      // Gone already.
    }
  }

  /** Kills it, for `await using`. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.kill("SIGKILL");
    await this.exited;
  }
}

/** A message a {@linkcode RawNatsClient} received. */
export interface RawMessage {
  subject: string;
  payload: Uint8Array;
}

/**
 * A bare NATS protocol client on a raw TCP connection: publishes any
 * payload, as a foreign or broken peer would, and reads what it subscribed
 * to.
 */
export class RawNatsClient implements AsyncDisposable {
  readonly #conn: Deno.TcpConn;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  #buffer = new Uint8Array(0);
  #pongs = 0;
  #errors: string[] = [];
  #messages: RawMessage[] = [];
  #wake: (() => void) | undefined;
  #ended = false;
  #sid = 0;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
    this.#reader = conn.readable.getReader();
  }

  /** Connects and says hello, as `user` with `pass` if given. */
  static async connect(
    port: number,
    credentials: { user?: string; pass?: string } = {},
  ): Promise<RawNatsClient> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const client = new RawNatsClient(conn);
    client.#read();
    await client.#write(
      new TextEncoder().encode(
        `CONNECT ${
          JSON.stringify({ verbose: false, pedantic: false, ...credentials })
        }\r\n`,
      ),
    );
    await client.flush();
    return client;
  }

  /** Errors the server sent (`-ERR ...`), so far. */
  get errors(): readonly string[] {
    return this.#errors;
  }

  async #read(): Promise<void> {
    try {
      for (;;) {
        const { value, done } = await this.#reader.read();
        if (done) break;
        const joined = new Uint8Array(this.#buffer.length + value.length);
        joined.set(this.#buffer);
        joined.set(value, this.#buffer.length);
        this.#buffer = joined;
        this.#parse();
        this.#wake?.();
      }
    } catch {
      // Closed.
    }
    this.#ended = true;
    this.#wake?.();
  }

  #parse(): void {
    const text = new TextDecoder();
    for (;;) {
      const buffer = this.#buffer;
      let end = -1;
      for (let i = 0; i + 1 < buffer.length; i++) {
        if (buffer[i] === 13 && buffer[i + 1] === 10) {
          end = i;
          break;
        }
      }
      if (end < 0) return;
      const line = text.decode(buffer.subarray(0, end));
      if (line.startsWith("MSG ")) {
        const parts = line.split(" ");
        const size = Number(parts.at(-1));
        if (buffer.length < end + 2 + size + 2) return;
        this.#messages.push({
          subject: parts[1],
          payload: buffer.slice(end + 2, end + 2 + size),
        });
        this.#buffer = buffer.subarray(end + 2 + size + 2);
        continue;
      }
      this.#buffer = buffer.subarray(end + 2);
      if (line === "PING") {
        this.#write(new TextEncoder().encode("PONG\r\n")).catch(() => {});
      } else if (line === "PONG") this.#pongs++;
      else if (line.startsWith("-ERR")) this.#errors.push(line);
    }
  }

  async #write(bytes: Uint8Array): Promise<void> {
    for (let n = 0; n < bytes.length;) {
      n += await this.#conn.write(bytes.subarray(n));
    }
  }

  async #until(ready: () => boolean, what: string, ms = 5000): Promise<void> {
    await within(
      (async () => {
        while (!ready()) {
          if (this.#ended) throw new Error(`NATS connection closed: ${what}`);
          await new Promise<void>((resolve) => this.#wake = resolve);
        }
      })(),
      ms,
      what,
    );
  }

  /** Publishes one payload. */
  publish(subject: string, payload: Uint8Array): Promise<void> {
    const head = new TextEncoder().encode(
      `PUB ${subject} ${payload.length}\r\n`,
    );
    const out = new Uint8Array(head.length + payload.length + 2);
    out.set(head);
    out.set(payload, head.length);
    out.set([13, 10], head.length + payload.length);
    return this.#write(out);
  }

  /** Subscribes to a subject (wildcards allowed). */
  async subscribe(subject: string): Promise<void> {
    await this.#write(
      new TextEncoder().encode(`SUB ${subject} ${++this.#sid}\r\n`),
    );
    await this.flush();
  }

  /** The next message received, in order. */
  async next(ms = 5000): Promise<RawMessage> {
    await this.#until(
      () => this.#messages.length > 0,
      "waiting for a message from nats-server",
      ms,
    );
    return this.#messages.shift()!;
  }

  /** Messages received and not taken yet, taken now. */
  takeAll(): RawMessage[] {
    return this.#messages.splice(0);
  }

  /** Waits until the server has processed everything sent so far. */
  async flush(): Promise<void> {
    const want = this.#pongs + 1;
    await this.#write(new TextEncoder().encode("PING\r\n"));
    await this.#until(() => this.#pongs >= want, "waiting for PONG");
  }

  /** Closes the connection. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#conn.close();
    } catch {
      // Closed already.
    }
    await this.#reader.cancel().catch(() => {});
  }
}

/** What a {@linkcode timedPeer} does. */
export interface TimedPeerConfig {
  /** `send`: play `count` notes; `receive`: note when each arrives. */
  role: "send" | "receive";
  /** The NATS server. */
  url: string;
  room: string;
  /** The hub's name in the room. */
  name: string;
  /** The hub's playout delay, ms. */
  latency: number;
  /** To send: how many notes, how far apart (ms)... */
  count?: number;
  every?: number;
  /** ...once this many hubs are in the room and compared clocks, and this long after (ms). */
  peers?: number;
  settle?: number;
}

/** What a {@linkcode timedPeer} prints last: times in ms since the epoch. */
export interface TimedPeerReport {
  /** Sender: when each note was sent (its index is its number). */
  sends?: number[];
  /** Receiver: [number, time] of each note, in the order they came. */
  arrivals?: [number, number][];
  /**
   * [number, time] of each note as its hub has it (`batch.at`: when it
   * entered the sender's hub, on this hub's clock), as ms since the epoch.
   */
  ats?: [number, number][];
  /** [number, time] of each note as the hub played it out to a plain endpoint. */
  played?: [number, number][];
  /** Receiver: the hub's playout counts. */
  late?: number;
  /** The link's clock exchanges. */
  syncs: number;
}

/** The i-th of a numbered sequence of distinct notes (i < 16256). */
export function numbered(i: number): Message {
  return message("note_on", {
    note: i % 128,
    velocity: 1 + Math.floor(i / 128),
  });
}

/** The number of a note {@linkcode numbered} made. */
function numberOf(msg: Message): number {
  return msg.type === "note_on" ? msg.note + 128 * (msg.velocity - 1) : -1;
}

/** The end of the notes: a program change on channel 16. */
const LAST: Message = message("program_change", { channel: 15, program: 1 });

/** Now, in ms since the epoch, to the microsecond: comparable between processes. */
function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * An endpoint that notes each numbered note's time as its hub has it (a
 * timed sink: it hears each batch at once, with `at`).
 */
function timesOf(ats: [number, number][]): Port & HasSink {
  return {
    name: "times",
    closed: false,
    [Symbol.asyncDispose]: () => Promise.resolve(),
    [SINK]: hearingSink((batch) => {
      for (const msg of batch.messages) {
        const i = numberOf(msg);
        if (i >= 0) ats.push([i, performance.timeOrigin + batch.at!]);
      }
    }),
    close: () => Promise.resolve(),
  };
}

/**
 * One hub of a timing test, as a process of its own (in a network
 * namespace): a `Hub` with the playout delay asked for, a `NatsLink` and a
 * `PortServer` with one TCP client in this process. The sender plays
 * numbered notes from a port of its hub (as a keyboard would); the
 * receiver's TCP client notes when each arrives.
 * Prints a line `{"ready":true}` once in the room, and its
 * {@linkcode TimedPeerReport} as the last line.
 */
async function timedPeer(config: TimedPeerConfig): Promise<void> {
  await using hub = new Hub({ latency: config.latency });
  const link = await hub.attach(
    new NatsLink(config.url, { room: config.room, name: config.name }),
  );
  const server = await hub.attach(new PortServer("127.0.0.1", 0));
  const client = await connect("127.0.0.1", server.port);
  const ats: [number, number][] = [];
  hub.add(timesOf(ats), { name: "times" });
  const played: [number, number][] = [];
  const player: OutputPort = {
    name: "played",
    closed: false,
    send(msg: Message) {
      played.push([numberOf(msg), wallNow()]);
      return Promise.resolve();
    },
    reset: () => Promise.resolve(),
    panic: () => Promise.resolve(),
    close: () => Promise.resolve(),
    [Symbol.asyncDispose]: () => Promise.resolve(),
  };
  hub.add(player, { kind: "device" });
  // A port of the hub that plays what it is given at once, as a keyboard does.
  const keys = new Player("keys");
  hub.add(keys, { kind: "device" });
  const say = (line: unknown) => console.log(JSON.stringify(line));
  say({ ready: true });
  if (config.role === "receive") {
    const arrivals: [number, number][] = [];
    for await (const msg of client) {
      const at = wallNow();
      if (msg.type === "program_change") break;
      arrivals.push([numberOf(msg), at]);
    }
    say(
      {
        arrivals,
        ats,
        played,
        late: hub.timing?.late ?? 0,
        syncs: link.stats.syncs,
      } satisfies TimedPeerReport,
    );
  } else {
    const { count = 0, every = 10, peers = 1, settle = 0 } = config;
    await until(
      () =>
        link.remotes.length >= peers &&
        link.remotes.every((r) => link.clockOf(r.id) !== undefined),
      20000,
      "the other hubs, their clocks compared",
    );
    await new Promise((resolve) => setTimeout(resolve, settle));
    const sends: number[] = [];
    const start = performance.now();
    for (let i = 0; i < count; i++) {
      const wait = start + i * every - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      sends.push(wallNow());
      keys.play(numbered(i));
    }
    keys.play(LAST);
    // Past every receiver's playout delay before leaving the room.
    await new Promise((resolve) => setTimeout(resolve, 500));
    say({ sends, ats, syncs: link.stats.syncs } satisfies TimedPeerReport);
  }
  await client.close();
}

if (import.meta.main) await timedPeer(JSON.parse(Deno.args[0]));

/** A link whose events are kept. */
export async function link(
  url: string,
  options: Partial<NatsLinkOptions> = {},
): Promise<{ link: NatsLink; events: NatsLinkEvent[] }> {
  const events: NatsLinkEvent[] = [];
  const made = await NatsLink.connect(url, {
    room: "test",
    onEvent: (event) => events.push(event),
    ...options,
  });
  return { link: made, events };
}

/** Writes `text` to a file `name` in a new temporary directory; its path. */
export async function tempFile(name: string, text: string): Promise<string> {
  const child = new Deno.Command("sh", {
    args: ["-c", `d=$(mktemp -d) && cat > "$d/${name}" && echo "$d"`],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(text));
  await writer.close();
  const { success, stdout, stderr } = await child.output();
  if (!success) {
    throw new Error(
      `cannot write ${name}: ${new TextDecoder().decode(stderr)}`,
    );
  }
  return `${new TextDecoder().decode(stdout).trim()}/${name}`;
}

/** Removes the directory a file of {@linkcode tempFile} is in. */
export async function removeDirOf(file: string): Promise<void> {
  await new Deno.Command("rm", {
    args: ["-rf", file.slice(0, file.lastIndexOf("/"))],
  }).output();
}
