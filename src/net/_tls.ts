/**
 * Internal: the server side of TLS over a TCP connection the server owns.
 *
 * Deno's `listenTls` cannot close a connection whose handshake is stalled:
 * the socket stays open however its `TlsConn` is closed. So a TLS port
 * listens with `Deno.listen` and runs TLS itself, with `node:tls` over the
 * accepted TCP connection; closing then closes the socket at once, and the
 * TCP options (no delay, keepalive) apply to TLS connections too.
 *
 * @module
 */

import type { SecureContext, TLSSocket } from "node:tls";
import { Duplex } from "node:stream";
import { sleep } from "../_time.ts";
import { refusedLine } from "./_hello.ts";
import { closeQuietly } from "./_transport.ts";

type NodeTls = typeof import("node:tls");

/** Wraps an accepted connection in TLS. */
export type Secure = (raw: Deno.TcpConn) => Deno.Conn<Deno.NetAddr>;

/**
 * What makes a server's accepted connections TLS, with a certificate chain
 * and key (PEM); `node:tls` and `node:crypto` are loaded now, so only
 * servers that serve TLS pay for them. The certificate and key are checked
 * first: `node:tls` here takes text that is neither, or a key that is not
 * the certificate's, and would fail each handshake instead.
 *
 * @throws {TypeError} `cannot serve TLS: ...`, naming what is wrong.
 */
export async function serverTls(pem: Deno.TlsCertifiedKeyPem): Promise<Secure> {
  const [tls, crypto] = await Promise.all([
    import("node:tls").then((module): NodeTls => module.default ?? module),
    import("node:crypto"),
  ]);
  const bad = (why: string) => new TypeError(`cannot serve TLS: ${why}`);
  let cert, key;
  try {
    cert = new crypto.X509Certificate(pem.cert);
  } catch {
    throw bad("the certificate is not a PEM certificate");
  }
  try {
    key = crypto.createPrivateKey(pem.key);
  } catch {
    throw bad("the key is not a PEM private key");
  }
  if (!cert.checkPrivateKey(key)) {
    throw bad("the key is not the certificate's private key");
  }
  let context: SecureContext;
  try {
    context = tls.createSecureContext({ cert: pem.cert, key: pem.key });
  } catch (error) {
    throw bad((error as Error).message.split("\n")[0]);
  }
  return (raw) =>
    new ServerTlsConn(tls, raw, context) as unknown as Deno.Conn<
      Deno.NetAddr
    >;
}

/**
 * A Node stream over a Deno connection, for `node:tls` to run over.
 * `first` hears the first bytes read; `close` closes the connection when
 * the stream is destroyed.
 */
function duplexOf(
  conn: Deno.TcpConn,
  first: (bytes: Uint8Array) => void,
  close: () => void,
): Duplex {
  const buffer = new Uint8Array(16 * 1024);
  let reading = false;
  let started = false;
  const duplex: Duplex = new Duplex({
    read() {
      if (reading) return;
      reading = true;
      conn.read(buffer).then((n) => {
        reading = false;
        if (!started && n !== null) {
          started = true;
          first(buffer.subarray(0, n));
        }
        duplex.push(n === null ? null : buffer.slice(0, n));
      }, (error) => duplex.destroy(error));
    },
    write(chunk, _encoding, done) {
      writeAll(conn, chunk).then(() => done(), done);
    },
    final(done) {
      conn.closeWrite().then(() => done(), () => done());
    },
    destroy(error, done) {
      close();
      done(error);
    },
  });
  return duplex;
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.length;) {
    offset += await conn.write(bytes.subarray(offset));
  }
}

/** Why a TLS port closes a connection that starts with plain bytes. */
export const PLAIN_ON_TLS = "sent plain bytes to a port that serves TLS";
const REFUSED_LINE = refusedLine(
  "protocol",
  "this port serves TLS: connect with TLS",
);

/** How much a TLS connection reads ahead of its reader. */
const READ_AHEAD = 64 * 1024;

/**
 * A TLS connection, server side, shaped as the `Deno.Conn` the transport
 * reads and writes.
 */
export class ServerTlsConn {
  readonly #raw: Deno.TcpConn;
  readonly #socket: TLSSocket;
  readonly #secure: Promise<void>;
  #chunks: Uint8Array[] = [];
  #buffered = 0;
  #ended = false;
  #error: unknown;
  #reader: (() => void) | undefined;
  /** Set when the first bytes were not a TLS handshake: a plain client. */
  #plain = false;
  #secured = false;

  /**
   * Starts the handshake over `raw`.
   *
   * @param tls The `node:tls` module.
   * @param raw The accepted TCP connection; this one owns it from now on.
   * @param context The server's certificate and key.
   */
  constructor(tls: NodeTls, raw: Deno.TcpConn, context: SecureContext) {
    this.#raw = raw;
    const duplex = duplexOf(
      raw,
      (bytes) => this.#plain = bytes[0] !== 0x16,
      () => this.#closeRaw(),
    );
    const socket = new tls.TLSSocket(duplex, {
      isServer: true,
      secureContext: context,
    });
    this.#socket = socket;
    const failed = (error?: unknown) =>
      this.#plain
        ? new Error(PLAIN_ON_TLS)
        : error ?? new Error("Closed during the TLS handshake");
    this.#secure = new Promise<void>((resolve, reject) => {
      socket.once("secure", () => {
        this.#secured = true;
        resolve();
      });
      socket.once("error", (error: unknown) => reject(failed(error)));
      socket.once("close", () => reject(failed()));
    });
    this.#secure.catch(() => {});
    socket.on("data", (chunk: Uint8Array) => {
      this.#chunks.push(chunk);
      this.#buffered += chunk.length;
      if (this.#buffered > READ_AHEAD) socket.pause();
      this.#wake();
    });
    socket.on("end", () => {
      this.#ended = true;
      this.#wake();
    });
    socket.on("error", (error: unknown) => {
      this.#error ??= error;
      this.#wake();
    });
    socket.on("close", () => {
      this.#ended = true;
      this.#wake();
    });
  }

  /** The peer's address. */
  get remoteAddr(): Deno.NetAddr {
    return this.#raw.remoteAddr;
  }

  /** This end's address. */
  get localAddr(): Deno.NetAddr {
    return this.#raw.localAddr;
  }

  /**
   * Closes the TCP connection. A client that sent plain bytes first is told
   * why, in plain text it can read, before the close.
   */
  #closeRaw(): void {
    if (!this.#plain || this.#secured) return closeQuietly(this.#raw);
    (async () => {
      try {
        await writeAll(this.#raw, REFUSED_LINE);
        await this.#raw.closeWrite();
        await sleep(100);
      } catch {
        // Gone already.
      }
      closeQuietly(this.#raw);
    })();
  }

  /** Sets TCP_NODELAY on the TCP connection below. */
  setNoDelay(noDelay?: boolean): void {
    this.#raw.setNoDelay(noDelay);
  }

  /** Sets keepalive on the TCP connection below. */
  setKeepAlive(keepAlive?: boolean): void {
    this.#raw.setKeepAlive(keepAlive);
  }

  /** Resolves once the handshake is done; rejects when it fails. */
  handshake(): Promise<void> {
    return this.#secure;
  }

  #wake(): void {
    const reader = this.#reader;
    this.#reader = undefined;
    reader?.();
  }

  /** Reads decrypted bytes into `target`; `null` at the end. */
  async read(target: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#error !== undefined) throw this.#error;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#reader = resolve);
    }
    let n = 0;
    while (n < target.length && this.#chunks.length > 0) {
      const chunk = this.#chunks[0];
      const take = Math.min(chunk.length, target.length - n);
      target.set(chunk.subarray(0, take), n);
      n += take;
      if (take === chunk.length) this.#chunks.shift();
      else this.#chunks[0] = chunk.subarray(take);
    }
    this.#buffered -= n;
    if (this.#buffered <= READ_AHEAD / 2 && this.#socket.isPaused()) {
      this.#socket.resume();
    }
    return n;
  }

  /** Encrypts and writes `bytes`; resolves once they are handed on. */
  write(bytes: Uint8Array): Promise<number> {
    if (this.#error !== undefined) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      this.#socket.write(bytes, (error?: Error | null) => {
        if (error) reject(error);
        else resolve(bytes.length);
      });
    });
  }

  /** Ends this side (TLS close_notify, then FIN). */
  closeWrite(): Promise<void> {
    return new Promise((resolve) => this.#socket.end(() => resolve()));
  }

  /** Closes the connection at once, the socket with it. */
  close(): void {
    this.#plain = false;
    this.#socket.destroy();
    closeQuietly(this.#raw);
    this.#ended = true;
    this.#wake();
  }
}
