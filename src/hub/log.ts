/**
 * A hub's events as lines for people, as `serve` prints them: who joined
 * and left (and the notes released for them), who was refused (summed up
 * when they keep coming, however many addresses they come from), each
 * message when asked for, the playout delay chosen and the messages that
 * came too late for it.
 *
 * @module
 */

import { formatMessage } from "../codec/text.ts";
import type { Message } from "../codec/messages.ts";
import type { OutputPort } from "../port.ts";
import { formatAddress } from "../address.ts";
import type { Hub } from "./hub.ts";
import type { Endpoint, HubEvent } from "./types.ts";
import { oneLine, plural, timeOfDay } from "../_text.ts";

/** Options for {@linkcode HubLog}. */
export interface HubLogOptions {
  /**
   * Where lines go.
   * @default {console.log}
   */
  say?: (line: string) => void;
  /**
   * Where warnings go.
   * @default {console.error}
   */
  warn?: (line: string) => void;
  /**
   * A line for every message, or for those from the endpoints this picks:
   * `TIME SOURCE TEXT` (mido's text form).
   * @default {false}
   */
  messages?: boolean | ((endpoint: Endpoint) => boolean);
  /**
   * How long refusals of one address for one reason are summed up in one
   * line, in milliseconds.
   * @default {5000}
   */
  refusalWindow?: number;
  /**
   * How often the messages that came too late for the playout delay are
   * counted in a line, in milliseconds.
   * @default {10000}
   */
  lateEvery?: number;
}

/** Addresses told apart in one window; the others are summed up together. */
const ADDRESSES = 16;

/**
 * Turns a hub's events into lines, from construction until `close()`:
 * `connect NAME (N clients)`, `disconnect NAME (N clients, released K held
 * notes): REASON`, `refused PEER (REASON)` (then, at the end of each
 * window, `refused N more connections from ADDRESS (REASON) in the last
 * 5 s`; past 16 addresses in a window, the others in one line), with
 * `messages` a `TIME SOURCE TEXT` line each, `latency N ms ...` when an
 * automatic playout delay changes, and every 10 s the messages that came
 * too late for the delay; what transports say as notices (where they
 * listen, ports that come and go) and warnings, which go to `warn` with
 * the gate's own (see `Gate.warnings`) first. Reasons hold no text a peer
 * chose, so a peer cannot make new lines by changing what it sends.
 *
 * @example The lines of a client that comes and goes
 * ```ts
 * import assert from "node:assert/strict";
 * import { Hub, HubLog, InputPortBase } from "@x/midisock";
 *
 * class Client extends InputPortBase {
 *   readonly name = "10.0.0.7:51000";
 *   close(): Promise<void> {
 *     this.finish(undefined, true);
 *     return Promise.resolve();
 *   }
 * }
 * const lines: string[] = [];
 * await using hub = new Hub();
 * using _log = new HubLog(hub, { say: (line) => lines.push(line) });
 * const endpoint = hub.add(new Client());
 * await hub.remove(endpoint);
 * assert.deepEqual(lines, [
 *   "connect 10.0.0.7:51000 (1 client)",
 *   "disconnect 10.0.0.7:51000 (0 clients)",
 * ]);
 * ```
 */
export class HubLog implements Disposable {
  readonly #hub: Hub;
  readonly #say: (line: string) => void;
  readonly #warn: (line: string) => void;
  readonly #window: number;
  readonly #messages: (endpoint: Endpoint) => boolean;
  readonly #stop: () => void;
  readonly #windows = new Map<string, { count: number; line: string }>();
  readonly #others = new Set<string>();
  #otherCount = 0;
  #windowTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #lateTimer: ReturnType<typeof setInterval>;
  #lateSeen = 0;
  #released = 0;

  /**
   * Starts turning `hub`'s events into lines.
   *
   * @param hub The hub.
   * @param options Where lines go, and what is said.
   */
  constructor(hub: Hub, options: HubLogOptions = {}) {
    this.#hub = hub;
    this.#say = options.say ?? ((line) => console.log(line));
    this.#warn = options.warn ?? ((line) => console.error(line));
    this.#window = options.refusalWindow ?? 5000;
    const messages = options.messages ?? false;
    this.#messages = typeof messages === "function" ? messages : () => true;
    for (const warning of hub.gate.warnings) this.#warn(warning);
    this.#stop = hub.listen((event) => this.#line(event), {
      messages: messages !== false,
    });
    this.#lateTimer = setInterval(
      () => this.#late(),
      options.lateEvery ?? 10_000,
    );
    Deno.unrefTimer(this.#lateTimer as unknown as number);
  }

  /** Held notes released for endpoints that left, since the last call. */
  takeReleased(): number {
    const released = this.#released;
    this.#released = 0;
    return released;
  }

  /** The clients now, as the lines say them: `2 clients`. */
  clients(): string {
    const clients = this.#hub.endpoints.filter((e) => e.kind === "client");
    return plural(clients.length, "client");
  }

  #line(event: HubEvent): void {
    switch (event.type) {
      case "join":
        if (event.endpoint.kind !== "client") return;
        return this.#say(`connect ${event.endpoint.name} (${this.clients()})`);
      case "leave": {
        this.#released += event.released;
        // Hardware ports and links say what happened to them themselves.
        if (event.endpoint.kind !== "client" || this.#hub.closed) return;
        const notes = event.released === 0
          ? ""
          : `, released ${plural(event.released, "held note")}`;
        const why = event.reason === undefined
          ? ""
          : `: ${oneLine(event.reason)}`;
        return this.#say(
          `disconnect ${event.endpoint.name} (${this.clients()}${notes})${why}`,
        );
      }
      case "refuse":
        return this.#refused(event.refusal.peer, event.refusal.reason);
      case "message": {
        if (!this.#messages(event.endpoint)) return;
        const text = formatMessage(event.message);
        return this.#say(`${timeOfDay()} ${event.endpoint.name} ${text}`);
      }
      case "latency":
        return this.#say(
          `latency ${event.latency} ms (from the delays measured)`,
        );
      case "notice":
        return this.#say(event.message);
      case "warning":
        return this.#warn(event.message);
    }
  }

  #refused(peer: { hostname: string; port?: number }, reason: string): void {
    const address = peer.hostname;
    const key = `${address} ${reason}`;
    const window = this.#windows.get(key);
    if (window !== undefined) {
      window.count++;
    } else if (this.#windows.size >= ADDRESSES) {
      this.#otherCount++;
      if (this.#others.size < 100_000) this.#others.add(address);
    } else {
      const where = formatAddress({ hostname: address, port: peer.port ?? 0 });
      this.#say(`refused ${where} (${reason})`);
      const seconds = this.#window / 1000;
      const line = `from ${address} (${reason}) in the last ${seconds} s`;
      this.#windows.set(key, { count: 0, line });
    }
    if (this.#windowTimer === undefined) {
      this.#windowTimer = setTimeout(() => this.#flush(), this.#window);
      Deno.unrefTimer(this.#windowTimer as unknown as number);
    }
  }

  /** Says what the refusal window summed up, and starts afresh. */
  #flush(): void {
    clearTimeout(this.#windowTimer);
    this.#windowTimer = undefined;
    for (const { count, line } of this.#windows.values()) {
      if (count > 0) {
        this.#say(`refused ${plural(count, "more connection")} ${line}`);
      }
    }
    if (this.#otherCount > 0) {
      const from = plural(
        this.#others.size,
        "other address",
        "other addresses",
      );
      this.#say(
        `refused ${plural(this.#otherCount, "more connection")} from ${from} ` +
          `in the last ${this.#window / 1000} s`,
      );
    }
    this.#windows.clear();
    this.#others.clear();
    this.#otherCount = 0;
  }

  /** Says how many messages came too late for the playout delay lately. */
  #late(): void {
    const timing = this.#hub.timing;
    if (timing === undefined || timing.late === this.#lateSeen) return;
    this.#say(
      `late: ${plural(timing.late - this.#lateSeen, "message")} came after ` +
        `their time + ${Math.round(timing.latency)} ms (the latest ` +
        `${timing.worstLateMs.toFixed(1)} ms after)`,
    );
    this.#lateSeen = timing.late;
  }

  /**
   * An output that says `TIME SOURCE TEXT` for each message it hears, as
   * the hub delivers it (after its playout delay, when it has one): add it
   * to the hub as a monitor.
   *
   * @param source What the lines name as the messages' source.
   * @returns The output.
   *
   * @example Printing what a hub plays to its devices
   * ```ts
   * import { Hub, HubLog } from "@x/midisock";
   *
   * await using hub = new Hub();
   * using log = new HubLog(hub);
   * hub.add(log.monitor("played"), { kind: "device" });
   * ```
   */
  monitor(source: string): OutputPort {
    let closed = false;
    const done = () => Promise.resolve();
    return {
      name: `monitor of ${source}`,
      get closed() {
        return closed;
      },
      send: (msg: Message) => {
        this.#say(`${timeOfDay()} ${source} ${formatMessage(msg)}`);
        return done();
      },
      reset: done,
      panic: done,
      close: () => (closed = true, done()),
      [Symbol.asyncDispose]: () => (closed = true, done()),
    };
  }

  /** Says what is summed up so far and stops. Closing twice does nothing. */
  close(): void {
    this.#stop();
    clearInterval(this.#lateTimer);
    this.#late();
    this.#flush();
  }

  /** Closes the log, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}
