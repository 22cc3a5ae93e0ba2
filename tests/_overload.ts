// Overloading a hub from other processes, for tests and benchmarks: a flood
// (tests/_flood.ts: N connections writing as fast as the sockets take,
// never reading) and a raw reader that takes every byte at once and looks
// for one note_off in them.

/** A flood from another process (tests/_flood.ts), ended by disposing it. */
export class Flood implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  /** Resolves once every connection is open. */
  readonly started: Promise<void>;

  /**
   * @param port The hub's TCP port on 127.0.0.1.
   * @param connections How many flooders.
   * @param ms How long it may take to start.
   */
  constructor(port: number, connections: number, ms = 10000) {
    this.#child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--allow-net=127.0.0.1",
        new URL("./_flood.ts", import.meta.url).pathname,
        String(port),
        String(connections),
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = this.#child.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    let timer: ReturnType<typeof setTimeout> | undefined;
    this.started = Promise.race([
      reader.read().then(() => {
        // Keep reading, so the child never blocks on a full pipe.
        (async () => {
          while (!(await reader.read()).done) { /* drain */ }
        })().catch(() => {});
      }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`the flood did not start in ${ms} ms`)),
          ms,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    this.started.catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#child.stdin.close().catch(() => {});
    const timer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // It ended just now.
      }
    }, 5000);
    await this.#child.status;
    clearTimeout(timer);
  }
}

/**
 * A raw TCP reader: reads as fast as the socket gives, counts the bytes and
 * watches for the three bytes of one message (sent whole by a hub).
 */
export class RawReader {
  readonly conn: Deno.TcpConn;
  /** Bytes read so far. */
  bytes = 0;
  /** When the hub closed the connection (undefined while open). */
  closedAt: number | undefined;
  readonly #wanted: Uint8Array;
  #found: PromiseWithResolvers<void> = Promise.withResolvers();
  readonly done: Promise<void>;

  /**
   * @param conn The connection.
   * @param wanted The message to watch for, as bytes.
   */
  constructor(conn: Deno.TcpConn, wanted: Uint8Array) {
    this.conn = conn;
    this.#wanted = wanted;
    this.done = this.#read();
  }

  /** Connects to a hub on 127.0.0.1. */
  static async open(port: number, wanted: Uint8Array): Promise<RawReader> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    return new RawReader(conn, wanted);
  }

  /** Resolves once the watched-for message has arrived. */
  get found(): Promise<void> {
    return this.#found.promise;
  }

  async #read(): Promise<void> {
    const buffer = new Uint8Array(256 * 1024);
    const wanted = this.#wanted;
    const keep = wanted.length - 1;
    let tail = new Uint8Array(0);
    try {
      for (;;) {
        const n = await this.conn.read(buffer);
        if (n === null) break;
        this.bytes += n;
        const chunk = buffer.subarray(0, n);
        // The message may straddle two reads: look across the seam too.
        const seam = new Uint8Array(tail.length + Math.min(keep, n));
        seam.set(tail);
        seam.set(chunk.subarray(0, keep), tail.length);
        if (indexOf(seam, wanted) >= 0 || indexOf(chunk, wanted) >= 0) {
          this.#found.resolve();
        }
        tail = n >= keep ? chunk.slice(n - keep) : seam.slice(-keep);
      }
    } catch {
      // Reset by the hub.
    }
    this.closedAt = performance.now();
  }

  close(): void {
    try {
      this.conn.close();
    } catch {
      // Closed already.
    }
  }
}

/** Where `part` starts in `bytes`, or -1. */
function indexOf(bytes: Uint8Array, part: Uint8Array): number {
  for (
    let i = bytes.indexOf(part[0]);
    i >= 0 && i + part.length <= bytes.length;
    i = bytes.indexOf(part[0], i + 1)
  ) {
    let j = 1;
    while (j < part.length && bytes[i + j] === part[j]) j++;
    if (j === part.length) return i;
  }
  return -1;
}
