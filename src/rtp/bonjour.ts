/**
 * Bonjour (DNS-SD over multicast DNS) advertisement of an RTP-MIDI session
 * as `_apple-midi._udp`, the way macOS's Audio MIDI Setup and rtpMIDI on
 * Windows find sessions on the local network.
 *
 * The multicast DNS socket comes from npm `multicast-dns`, loaded only when
 * an advertisement starts: a session without one never loads it.
 *
 * @module
 */

/**
 * The multicast DNS package, as a computed specifier: a literal one in a
 * dynamic import is fetched by Deno when the program starts, used or not.
 */
const MULTICAST_DNS = ["npm:multicast-dns", "7.2.5"].join("@");

/** The DNS-SD service type of RTP-MIDI sessions. */
export const APPLE_MIDI_SERVICE = "_apple-midi._udp.local";
const SERVICES = "_services._dns-sd._udp.local";
/** Records live this long in caches (s); a goodbye sends them with 0. */
const TTL = 120;
/** The announcement is sent again after this long (ms), as RFC 6762 asks. */
const REANNOUNCE_MS = 1000;

/** Options of {@linkcode advertiseRtpMidi}. */
export interface BonjourOptions {
  /**
   * The session's name as browsers list it.
   * @default {the session's name}
   */
  name?: string;
  /**
   * The host name the service points at, without `.local`. It should not
   * be the machine's own name, which the system's responder owns.
   * @default {"<this machine's name>-midisock" (needs --allow-sys=hostname), else "midisock"}
   */
  hostname?: string;
  /**
   * The addresses given for that host name.
   * @default {the session's address when it is bound to one; else every non-loopback address of this machine (needs --allow-sys=networkInterfaces)}
   */
  addresses?: string[];
  /**
   * The IPv4 address of the interface to send and listen on.
   * @default {the session's address when it is bound to an IPv4 one; else every interface (needs --allow-sys=networkInterfaces)}
   */
  interface?: string;
}

/** What a session needs to be advertised. */
export interface AdvertisedSession {
  /** The session's name, as peers show it. */
  readonly sessionName: string;
  /** The control port (the data port is the next one). */
  readonly port: number;
  /** Resolves once the port is bound. */
  readonly ready: Promise<void>;
  /** Where it is bound (an empty or unspecified hostname: everywhere). */
  readonly address?: { readonly hostname: string };
}

/** A running advertisement: answers queries until closed. */
export interface BonjourAdvertisement {
  /** The service instance's full name, such as `Studio._apple-midi._udp.local`. */
  readonly instance: string;
  /** The host name the service points at, such as `studio.local`. */
  readonly host: string;
  /** Queries answered so far. */
  readonly answered: number;
  /** Says goodbye (the records with TTL 0), then stops answering. */
  close(): Promise<void>;
}

interface DnsRecord {
  name: string;
  type: string;
  ttl?: number;
  flush?: boolean;
  data: unknown;
}

interface Question {
  name: string;
  type: string;
}

interface MulticastDns {
  on(event: "query", fn: (query: { questions: Question[] }) => void): void;
  on(event: "error" | "warning", fn: (error: Error) => void): void;
  on(event: "ready", fn: () => void): void;
  respond(
    packet: { answers: DnsRecord[]; additionals?: DnsRecord[] },
    cb?: (error?: Error | null) => void,
  ): void;
  destroy(cb?: () => void): void;
}

type Factory = (options: {
  interface?: string;
  bind?: string;
  reuseAddr?: boolean;
}) => MulticastDns;

/** A DNS label from a name: no dots (they would split it), at most 63 bytes. */
function label(name: string): string {
  let out = name.replaceAll(".", "-").trim();
  while (new TextEncoder().encode(out).length > 63) out = out.slice(0, -1);
  return out === "" ? "midisock" : out;
}

function machineName(): string {
  try {
    const name = Deno.hostname().split(".")[0].replace(/[^A-Za-z0-9-]/g, "-");
    return name === "" ? "midisock" : `${name}-midisock`;
  } catch {
    return "midisock";
  }
}

function machineAddresses(): string[] {
  try {
    return Deno.networkInterfaces()
      .filter((i) =>
        i.family === "IPv4" ? !i.address.startsWith("127.") : (
          i.address !== "::1" && !i.address.startsWith("fe80:")
        )
      )
      .map((i) => i.address);
  } catch {
    return [];
  }
}

/**
 * Advertises an RTP-MIDI session over Bonjour (`_apple-midi._udp`): Macs
 * then list it in Audio MIDI Setup's Network window, and rtpMIDI on
 * Windows in its directory. It answers queries for the service type, for
 * the instance (SRV and TXT) and for the host's addresses, announces itself
 * when it starts, and says goodbye when closed. Name conflicts with another
 * session of the same name are not probed for: give each a name of its own.
 *
 * Needs `--allow-net` for UDP port 5353; the default host name and
 * addresses need `--allow-sys=hostname,networkInterfaces`.
 *
 * @example Advertise a session
 * ```ts ignore
 * import { advertiseRtpMidi, RtpMidiSession } from "@x/midisock/rtp";
 *
 * const session = new RtpMidiSession({ port: 5004, name: "Studio" });
 * const bonjour = await advertiseRtpMidi(session);
 * // ... later:
 * await bonjour.close();
 * await session.close();
 * ```
 *
 * @param session The session (an `RtpMidiSession`) to advertise.
 * @param options Names, addresses and interface.
 * @returns The advertisement, answering from now on.
 * @throws {Error} When the session is bound to loopback (no other computer
 * could join it), when it listens everywhere and the interfaces cannot be
 * listed (no `--allow-sys=networkInterfaces`, and no `interface` given), or
 * when the multicast DNS socket cannot be opened.
 */
export async function advertiseRtpMidi(
  session: AdvertisedSession,
  options: BonjourOptions = {},
): Promise<BonjourAdvertisement> {
  await session.ready;
  const instance = `${
    label(options.name ?? session.sessionName)
  }.${APPLE_MIDI_SERVICE}`;
  const host = `${label(options.hostname ?? machineName())}.local`;
  const bound = session.address?.hostname ?? "";
  const everywhere = bound === "" || bound === "0.0.0.0" || bound === "::";
  if (bound === "localhost" || /^(127\.|::1$)/.test(bound)) {
    throw new Error(
      `the session is bound to loopback (${bound}): other computers would see it but could not join`,
    );
  }
  // Without an interface, multicast-dns lists every one, now and every 5 s.
  const iface = options.interface ??
    (!everywhere && !bound.includes(":") ? bound : undefined);
  if (
    iface === undefined &&
    Deno.permissions.querySync({ name: "sys", kind: "networkInterfaces" })
        .state !== "granted"
  ) {
    throw new Error(
      "a session listening on every interface is advertised on each: that " +
        "needs --allow-sys=networkInterfaces (or bind the session to one address)",
    );
  }
  const addresses = options.addresses ??
    (everywhere ? machineAddresses() : [bound]);
  // A specifier Deno cannot read ahead of time: it fetches the package only
  // now, not on the first run of every program that imports this module.
  // (`deno publish` warns that it cannot analyse it: a full npm: specifier,
  // it resolves at run time without an import map.)
  const { default: factory } = await import(MULTICAST_DNS) as {
    default: Factory;
  };
  const mdns = factory({ interface: iface, bind: "0.0.0.0", reuseAddr: true });
  try {
    await new Promise<void>((resolve, reject) => {
      mdns.on("ready", resolve);
      mdns.on("error", reject);
    });
  } catch (error) {
    mdns.destroy();
    throw error;
  }
  // Past the start, a failed send is not fatal: the next query answers.
  mdns.on("error", () => {});
  mdns.on("warning", () => {});

  const records = (ttl: number) => {
    const ptr = {
      name: APPLE_MIDI_SERVICE,
      type: "PTR",
      ttl,
      data: instance,
    };
    // Records only this responder gives: caches replace, not add (the
    // cache-flush bit of RFC 6762 section 10.2).
    const srv = {
      name: instance,
      type: "SRV",
      ttl,
      flush: true,
      data: { priority: 0, weight: 0, port: session.port, target: host },
    };
    // An empty TXT record is one empty string (RFC 6763 section 6.1).
    const txt = { name: instance, type: "TXT", ttl, flush: true, data: [""] };
    const hostRecords = addresses.map((address) => ({
      name: host,
      type: address.includes(":") ? "AAAA" : "A",
      ttl,
      flush: true,
      data: address,
    }));
    const enumeration = {
      name: SERVICES,
      type: "PTR",
      ttl,
      data: APPLE_MIDI_SERVICE,
    };
    return { ptr, srv, txt, hostRecords, enumeration };
  };
  const send = (answers: DnsRecord[], additionals: DnsRecord[] = []) =>
    new Promise<void>((resolve) => {
      try {
        mdns.respond({ answers, additionals }, () => resolve());
      } catch {
        // A record that cannot be encoded (a bad address given): skip.
        resolve();
      }
    });
  const all = (ttl: number) => {
    const r = records(ttl);
    return [r.ptr, r.srv, r.txt, ...r.hostRecords];
  };

  let answered = 0;
  let closed = false;
  mdns.on("query", ({ questions }) => {
    if (closed) return;
    const r = records(TTL);
    const answers: DnsRecord[] = [];
    const additionals: DnsRecord[] = [];
    for (const question of questions ?? []) {
      const name = question.name.toLowerCase();
      const any = question.type === "ANY";
      if (name === SERVICES.toLowerCase() && (any || question.type === "PTR")) {
        answers.push(r.enumeration);
      } else if (
        name === APPLE_MIDI_SERVICE.toLowerCase() &&
        (any || question.type === "PTR")
      ) {
        answers.push(r.ptr);
        additionals.push(r.srv, r.txt, ...r.hostRecords);
      } else if (name === instance.toLowerCase()) {
        if (any || question.type === "SRV") answers.push(r.srv);
        if (any || question.type === "TXT") answers.push(r.txt);
        if (answers.length > 0) additionals.push(...r.hostRecords);
      } else if (name === host.toLowerCase()) {
        for (const record of r.hostRecords) {
          if (any || question.type === record.type) answers.push(record);
        }
      }
    }
    if (answers.length === 0) return;
    answered++;
    void send(answers, additionals);
  });

  // Announce: twice, a second apart (RFC 6762 section 8.3).
  await send(all(TTL));
  const again = setTimeout(() => {
    if (!closed) void send(all(TTL));
  }, REANNOUNCE_MS);

  return {
    instance,
    host,
    get answered() {
      return answered;
    },
    async close() {
      if (closed) return;
      closed = true;
      clearTimeout(again);
      await send(all(0));
      await new Promise<void>((resolve) => mdns.destroy(() => resolve()));
    },
  };
}
