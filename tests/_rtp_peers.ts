// The external RTP-MIDI peers: npm rtpmidi 1.0.0 under Node and tshark.
// Tests that need them are skipped with a reason when they are missing,
// unless MIDISOCK_REQUIRE_RTP=1, where their absence fails the run.

import { within } from "./_net.ts";
import { freePortPair } from "./_rtp.ts";

/** Whether the RTP-MIDI peers must be there (CI). */
export const REQUIRED = Deno.env.get("MIDISOCK_REQUIRE_RTP") === "1";

function probeNode(): string | undefined {
  try {
    const { success } = new Deno.Command("node", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).outputSync();
    return success ? undefined : "node --version failed";
  } catch (error) {
    return `node: ${(error as Error).message}`;
  }
}

function probeRtpmidi(): { dir?: string; missing?: string } {
  const node = probeNode();
  if (node) return { missing: node };
  const dir = Deno.env.get("MIDISOCK_RTPMIDI_DIR");
  if (!dir) {
    return {
      missing:
        "MIDISOCK_RTPMIDI_DIR is not set (npm install --prefix DIR rtpmidi@1.0.0, then MIDISOCK_RTPMIDI_DIR=DIR/node_modules)",
    };
  }
  try {
    Deno.statSync(`${dir}/rtpmidi/package.json`);
    return { dir };
  } catch {
    return { missing: `no rtpmidi in ${dir}` };
  }
}

const rtpmidi = probeRtpmidi();
if (rtpmidi.missing) {
  const line = `npm rtpmidi is not available (${rtpmidi.missing})`;
  if (REQUIRED) throw new Error(`${line}, but MIDISOCK_REQUIRE_RTP=1`);
  console.warn(`${line}: skipping RTP-MIDI interop tests`);
}

/** Why RTP-MIDI interop tests are skipped here, or undefined. */
export const RTPMIDI_MISSING: string | undefined = rtpmidi.missing && !REQUIRED
  ? `npm rtpmidi is not available (${rtpmidi.missing})`
  : undefined;

/** Where rtpmidi is installed, or undefined when the tests are skipped. */
export const RTPMIDI_DIR: string | undefined = rtpmidi.dir;

function probeTshark(): string | undefined {
  try {
    const { success } = new Deno.Command("tshark", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).outputSync();
    return success ? undefined : "tshark --version failed";
  } catch (error) {
    return `tshark: ${(error as Error).message}`;
  }
}

const tshark = probeTshark();
if (tshark) {
  const line = `tshark is not available (${tshark})`;
  if (REQUIRED) throw new Error(`${line}, but MIDISOCK_REQUIRE_RTP=1`);
  console.warn(`${line}: skipping the dissector test (apt-get install tshark)`);
}

/** Why the dissector test is skipped here, or undefined. */
export const TSHARK_MISSING: string | undefined = tshark && !REQUIRED
  ? `tshark is not available (${tshark}); apt-get install tshark`
  : undefined;

/** Whether tshark is here. */
export const HAVE_TSHARK: boolean = tshark === undefined;

/**
 * A peer running npm rtpmidi 1.0.0 under Node. It prints one JSON line per
 * event (marked with "@@", since rtpmidi's logger writes to stdout too) and
 * takes one JSON command per line on stdin.
 */
const NODE_PEER = String.raw`
const rtpmidi = require("rtpmidi");
rtpmidi.logger.silent = true;
const [mode, port, target] = process.argv.slice(1);
const session = new rtpmidi.Session(+port, "node-rtpmidi", "node-rtpmidi", undefined, false, 4);
const emit = (event) => process.stdout.write("@@" + JSON.stringify(event) + "\n");
let stream;
session.on("ready", () => {
  emit({ event: "ready" });
  if (mode === "invite") session.connect({ address: "127.0.0.1", port: +target });
});
session.on("streamAdded", ({ stream: added }) => {
  stream = added;
  emit({ event: "joined", name: added.name });
  const poll = setInterval(() => {
    if (added.latency !== null && added.timeDifference !== null) {
      clearInterval(poll);
      emit({ event: "synced" });
    }
  }, 50);
});
session.on("streamRemoved", () => emit({ event: "left" }));
session.on("message", (delta, bytes) => emit({ event: "midi", bytes: [...bytes] }));
session.start();
let buffer = "";
process.stdin.on("data", (chunk) => {
  buffer += chunk;
  let at;
  while ((at = buffer.indexOf("\n")) >= 0) {
    const command = JSON.parse(buffer.slice(0, at));
    buffer = buffer.slice(at + 1);
    if (command.cmd === "send") {
      // Paced, a few per turn: rtpmidi packs what is queued in one packet.
      const list = command.messages;
      let i = 0;
      const step = () => {
        for (let k = 0; k < command.batch && i < list.length; k++, i++) {
          session.sendMessage(session.startTime + session.now(), list[i]);
        }
        if (i < list.length) setTimeout(step, 1);
        else setTimeout(() => emit({ event: "sent", count: list.length }), 20);
      };
      step();
    } else if (command.cmd === "end") {
      session.end(() => { emit({ event: "ended" }); process.exit(0); });
    }
  }
});
`;

export interface NodeEvent {
  event: string;
  bytes?: number[];
  count?: number;
  name?: string;
}

/** npm rtpmidi in a Node subprocess. */
export class NodePeer {
  readonly port: number;
  readonly events: NodeEvent[] = [];
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #reading: Promise<void>;
  #waiters: (() => void)[] = [];

  private constructor(port: number, child: Deno.ChildProcess) {
    this.port = port;
    this.#child = child;
    this.#stdin = child.stdin.getWriter();
    this.#reading = this.#read();
  }

  /** Starts rtpmidi on a free even port pair; "invite" makes it invite `target`. */
  static async start(mode: "listen" | "invite", target = 0): Promise<NodePeer> {
    const port = await freePortPair();
    const child = new Deno.Command("node", {
      args: ["-e", NODE_PEER, mode, String(port), String(target)],
      env: { NODE_PATH: RTPMIDI_DIR! },
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const peer = new NodePeer(port, child);
    await peer.wait("ready", 10000);
    return peer;
  }

  async #read(): Promise<void> {
    let text = "";
    const decoder = new TextDecoder();
    for await (const chunk of this.#child.stdout) {
      text += decoder.decode(chunk, { stream: true });
      let at;
      while ((at = text.indexOf("\n")) >= 0) {
        const line = text.slice(0, at);
        text = text.slice(at + 1);
        if (line.startsWith("@@")) this.events.push(JSON.parse(line.slice(2)));
      }
      for (const wake of this.#waiters.splice(0)) wake();
    }
    for (const wake of this.#waiters.splice(0)) wake();
  }

  /** Waits until an event of this kind has come. */
  wait(event: string, ms = 10000, count = 1): Promise<void> {
    return within(
      (async () => {
        while (this.events.filter((e) => e.event === event).length < count) {
          await new Promise<void>((resolve) => this.#waiters.push(resolve));
        }
      })(),
      ms,
      `rtpmidi event ${event}`,
    );
  }

  /** MIDI byte arrays received so far. */
  midi(): number[][] {
    return this.events.filter((e) => e.event === "midi").map((e) => e.bytes!);
  }

  command(command: Record<string, unknown>): Promise<void> {
    return this.#stdin.write(
      new TextEncoder().encode(JSON.stringify(command) + "\n"),
    );
  }

  async close(): Promise<void> {
    try {
      await this.command({ cmd: "end" });
      await within(this.#child.status, 3000, "rtpmidi exit");
    } catch {
      try {
        this.#child.kill();
      } catch {
        // Gone already.
      }
      await this.#child.status;
    }
    try {
      await this.#stdin.close();
    } catch {
      // Closed with the process.
    }
    await this.#reading;
  }
}
