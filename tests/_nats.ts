// A real NATS server for tests: Debian's nats-server, started on a free
// loopback port and stopped by its pid. Tests that need it are ignored with
// a reason when it is missing, unless MIDISOCK_REQUIRE_NATS=1.

import { within } from "./_net.ts";

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
  #child: Deno.ChildProcess | undefined;
  #log = "";

  private constructor(port: number, args: string[]) {
    this.port = port;
    this.#args = args;
  }

  /**
   * Starts a server on a free loopback port with extra flags (`--user`,
   * `--tls`...), once it says it is ready.
   */
  static async start(args: string[] = []): Promise<NatsServer> {
    const server = new NatsServer(freePort(), args);
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

/**
 * A bare NATS protocol client on a raw TCP connection: publishes any
 * payload, as a foreign or broken peer would.
 */
export class RawNatsClient implements AsyncDisposable {
  readonly #conn: Deno.TcpConn;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  #text = "";

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
    this.#reader = conn.readable.getReader();
  }

  /** Connects and says hello. */
  static async connect(port: number): Promise<RawNatsClient> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const client = new RawNatsClient(conn);
    await client.#until("INFO");
    await client.#write(
      new TextEncoder().encode('CONNECT {"verbose":false}\r\n'),
    );
    return client;
  }

  async #write(bytes: Uint8Array): Promise<void> {
    for (let n = 0; n < bytes.length;) {
      n += await this.#conn.write(bytes.subarray(n));
    }
  }

  async #until(word: string): Promise<void> {
    await within(
      (async () => {
        while (!this.#text.includes(word)) {
          const { value, done } = await this.#reader.read();
          if (done) throw new Error(`NATS connection closed: ${this.#text}`);
          this.#text += new TextDecoder().decode(value);
        }
        this.#text = this.#text.slice(this.#text.indexOf(word) + word.length);
      })(),
      5000,
      `waiting for ${word} from nats-server`,
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

  /** Waits until the server has processed everything sent so far. */
  async flush(): Promise<void> {
    await this.#write(new TextEncoder().encode("PING\r\n"));
    await this.#until("PONG");
  }

  /** Closes the connection. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.#reader.cancel().catch(() => {});
    try {
      this.#conn.close();
    } catch {
      // Closed already.
    }
  }
}
