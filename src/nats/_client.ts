/**
 * The NATS client, loaded only when a link is made, and the reading of NATS
 * URLs and credentials into its options.
 *
 * @module
 */

import type {
  Authenticator,
  ConnectionOptions,
  NatsConnection,
  NodeConnectionOptions,
} from "npm:@nats-io/transport-node@3.4.0";

export type { NatsConnection };

/** The NATS client package, pinned. */
const CLIENT: string = "npm:@nats-io/transport-node@3.4.0";

type NatsPackage = typeof import("npm:@nats-io/transport-node@3.4.0");
type NodeTransportModule =
  typeof import("npm:@nats-io/transport-node@3.4.0/lib/node_transport.js");

/** NATS servers and credentials, read from one or more URLs. */
export interface NatsUrls {
  /** `host:port` of each server, for the client. */
  servers: string[];
  /** For people: the URLs, with any password or token masked. */
  display: string;
  /** User, from `nats://user:password@host`. */
  user?: string;
  /** Password, from `nats://user:password@host`. */
  pass?: string;
  /** Token, from `nats://token@host`. */
  token?: string;
  /** Whether a URL asked for TLS (`tls://`). */
  tls: boolean;
}

/** The port NATS servers listen on unless told otherwise. */
export const DEFAULT_NATS_PORT = 4222;

/**
 * Reads NATS URLs: `nats://[user:password@|token@]host[:port]`, `tls://`
 * for TLS, or a bare `host[:port]`; several in one string separated by
 * commas (servers of one cluster).
 *
 * @param url The URL or URLs.
 * @returns The servers and credentials.
 * @throws {SyntaxError} For a URL that does not parse, another scheme, a
 * path, or credentials that differ between URLs.
 */
export function parseNatsUrls(url: string | readonly string[]): NatsUrls {
  const texts = (typeof url === "string" ? [url] : [...url])
    .flatMap((text) => {
      if (typeof text !== "string") {
        throw new TypeError(`NATS URL must be a string: got ${typeof text}`);
      }
      return text.split(",");
    })
    .map((text) => text.trim())
    .filter((text) => text !== "");
  if (texts.length === 0) {
    throw new SyntaxError(`Invalid NATS URL ${JSON.stringify(url)}: empty`);
  }
  const out: NatsUrls = { servers: [], display: "", tls: false };
  const shown: string[] = [];
  let secrets: string | undefined;
  for (const text of texts) {
    const bad = (why: string): never => {
      throw new SyntaxError(
        `Invalid NATS URL ${JSON.stringify(mask(text))}: ${why}`,
      );
    };
    const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text)
      ? text
      : `nats://${text}`;
    let parsed: URL;
    try {
      parsed = new URL(withScheme);
    } catch {
      return bad("expected nats://[user:password@]host[:port]");
    }
    const scheme = parsed.protocol.slice(0, -1).toLowerCase();
    if (scheme !== "nats" && scheme !== "tls") {
      bad(`the scheme must be nats:// or tls://, not ${scheme}://`);
    }
    if (parsed.hostname === "") bad("no host");
    if ((parsed.pathname !== "" && parsed.pathname !== "/") || parsed.search) {
      bad("a NATS URL has no path or query");
    }
    if (scheme === "tls") out.tls = true;
    const port = parsed.port === "" ? DEFAULT_NATS_PORT : Number(parsed.port);
    out.servers.push(`${parsed.hostname}:${port}`);
    const user = decode(parsed.username, bad);
    const pass = decode(parsed.password, bad);
    const these = JSON.stringify([user, pass]);
    if (user !== "" || pass !== "") {
      if (secrets !== undefined && secrets !== these) {
        bad("every URL of a cluster must carry the same credentials");
      }
      secrets = these;
      if (parsed.password === "") out.token = user;
      else {
        out.user = user;
        out.pass = pass;
      }
    }
    shown.push(
      `${scheme}://${
        user === "" && pass === "" ? "" : maskedUser(parsed)
      }${parsed.hostname}:${port}`,
    );
  }
  out.display = shown.join(",");
  return out;
}

function decode(text: string, bad: (why: string) => never): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return bad("bad %-escape in the credentials");
  }
}

function maskedUser(parsed: URL): string {
  return parsed.password === "" ? "***@" : `${parsed.username}:***@`;
}

/** Masks what looks like credentials in a URL that did not parse. */
function mask(text: string): string {
  return text.replace(/\/\/[^@/]*@/, "//***@");
}

/** TLS material, as PEM text. */
export interface TlsMaterial {
  ca?: string;
  cert?: string;
  key?: string;
}

/** What the client needs besides the URLs. */
export interface ClientSettings {
  urls: NatsUrls;
  /** Client name the server shows. */
  name: string;
  user?: string;
  pass?: string;
  token?: string;
  /** The bytes of a creds file (JWT and nkey seed). */
  creds?: Uint8Array;
  /** `undefined`: TLS if the server offers it; an object: TLS required. */
  tls?: TlsMaterial;
  reconnectWait: number;
  connectTimeout: number;
  pingInterval: number;
}

/**
 * Runs a function on the event loop's next turn, after pending I/O: Node's
 * `setImmediate`, which has no 1 ms floor as `setTimeout(fn, 0)` has.
 * Returns a function that cancels it.
 */
export type NextTurn = (fn: () => void) => () => void;

interface NatsModule {
  connect(options: ConnectionOptions): Promise<NatsConnection>;
  credsAuthenticator(creds: Uint8Array): Authenticator;
  nextTurn: NextTurn;
}

let loading: Promise<NatsModule> | undefined;

/**
 * Loads the NATS client once. Its Node transport gets its sockets from
 * here, each guarded from its creation: Deno's `node:net` and `node:tls`
 * can report a reset or a TLS alert after the transport removed its error
 * listeners (a server refusing the credentials, or a client certificate,
 * say), which would otherwise end the process as an uncaught error.
 */
function load(): Promise<NatsModule> {
  loading ??= (async () => {
    // Specifiers in variables: Deno fetches every import it can read ahead
    // of running, dynamic ones too, and this one must wait for a link.
    const nats: NatsPackage = await import(CLIENT);
    const node: NodeTransportModule = await import(
      `${CLIENT}/lib/node_transport.js`
    );
    const timers = await import("node:timers");
    const net = await import("node:net");
    const tls = await import("node:tls");
    class GuardedTransport extends node.NodeTransport {
      #host = "";

      override dial(hp: { hostname: string; port: number }) {
        this.#host = hp.hostname;
        const socket = guard(net.createConnection(hp.port, hp.hostname));
        socket.setNoDelay(true);
        return opened(socket, "connect");
      }

      override startTLS() {
        const { ca, cert, key } = (this.options.tls ?? {}) as TlsMaterial;
        const host = this.#host;
        const socket = guard(tls.connect({
          socket: this.socket,
          host,
          servername: this.tlsName || (net.isIP(host) ? undefined : host),
          rejectUnauthorized: true,
          ca,
          cert,
          key,
        }));
        return opened(socket, "secureConnect");
      }

      override tlsFirst(): never {
        // The link never asks for handshakeFirst.
        throw new Error("TLS-first connections are not supported");
      }
    }
    const factory = {
      factory: () => new GuardedTransport(),
      dnsResolveFn: node.nodeResolveHost,
    };
    return {
      connect(options: ConnectionOptions): Promise<NatsConnection> {
        // Set each time: the package's own connect() puts back the plain one.
        nats.setTransportFactory(factory);
        return nats.NatsConnectionImpl.connect(options);
      },
      credsAuthenticator: nats.credsAuthenticator,
      nextTurn(fn: () => void): () => void {
        const handle = timers.setImmediate(fn);
        return () => timers.clearImmediate(handle);
      },
    };
  })();
  loading.catch(() => loading = undefined);
  return loading;
}

interface SocketLike extends EmitterLike {
  on(event: string, listener: (error: Error) => void): unknown;
  off(event: string, listener: (error: Error) => void): unknown;
  once(event: string, listener: () => void): unknown;
}

/**
 * Resolves with the socket once `ready` fires, or rejects with its error
 * when it closes first; leaves no listener of its own behind.
 */
function opened<S extends SocketLike>(socket: S, ready: string): Promise<S> {
  return new Promise((resolve, reject) => {
    let failure: Error | undefined;
    const onError = (error: Error): void => {
      failure ??= error;
    };
    const onClose = (): void => {
      socket.off("error", onError);
      reject(failure ?? new Error("The connection closed"));
    };
    socket.on("error", onError);
    socket.once("close", onClose);
    socket.once(ready, () => {
      socket.off("error", onError);
      socket.off("close", onClose);
      resolve(socket);
    });
  });
}

interface EmitterLike {
  emit(event: string | symbol, ...args: unknown[]): boolean;
  listenerCount(event: string | symbol): number;
}

/** Makes a socket ignore an error nobody listens for, instead of throwing. */
function guard<S extends EmitterLike>(socket: S): S {
  const emit = socket.emit;
  socket.emit = function (
    this: S,
    event: string | symbol,
    ...args: unknown[]
  ): boolean {
    if (event === "error" && this.listenerCount("error") === 0) return false;
    return emit.call(this, event, ...args);
  };
  return socket;
}

/** A connection, and the scheduler the link batches with. */
export interface NatsClient {
  nc: NatsConnection;
  nextTurn: NextTurn;
}

/**
 * Connects to NATS: reconnects forever once connected, never echoes what
 * this client publishes back to it.
 *
 * @param settings Servers, credentials, TLS and timings.
 * @returns The connection.
 */
export async function connectNats(
  settings: ClientSettings,
): Promise<NatsClient> {
  const nats = await load();
  const { urls } = settings;
  const options: NodeConnectionOptions = {
    servers: urls.servers,
    name: settings.name,
    noEcho: true,
    reconnect: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: settings.reconnectWait,
    reconnectJitter: Math.min(100, settings.reconnectWait),
    timeout: settings.connectTimeout,
    pingInterval: settings.pingInterval,
    maxPingOut: 2,
  };
  const user = settings.user ?? urls.user;
  const token = settings.token ?? urls.token;
  if (user !== undefined) {
    options.user = user;
    options.pass = settings.pass ?? urls.pass ?? "";
  }
  if (token !== undefined) options.token = token;
  if (settings.creds !== undefined) {
    options.authenticator = nats.credsAuthenticator(settings.creds);
  }
  if (settings.tls !== undefined) options.tls = { ...settings.tls };
  else if (urls.tls) options.tls = {};
  const nc = await nats.connect(options as ConnectionOptions);
  return { nc, nextTurn: nats.nextTurn };
}
