// What hubs that never were cost a hub joined to a room: memory, log lines
// and answers, from a `serve --nats` process, while a raw NATS client
// announces ORIGINS fake hubs (one heartbeat and one 3-note MIDI frame
// each, every one under its own id) as fast as the server takes them.
//
// Run:   deno run -A bench/nats_forge.ts [--origins 100000]
//        [--serve PATH] [--old-subjects]
//        (needs Debian's nats-server; started here on a free loopback port)
//
// --serve runs another copy of serve.ts (an older checkout, say);
// --old-subjects publishes as links did before each hub had its own
// subjects (everything on midisock.room.ROOM / midisock.presence.ROOM).
// Reports the serve process's resident memory (VmRSS from /proc) before,
// at its peak (VmHWM) and SETTLE seconds (--settle, 3) after the last fake
// beat (once the fakes have timed out), the lines it printed, and the
// beats it published meanwhile. Every wait is bounded; the processes are killed at the end.

import { parseArgs } from "node:util";
import { encodeBeat, encodeMidiFrame, nameBytes } from "../src/nats/_frame.ts";
import { message } from "../mod.ts";
import { NatsServer, noNats, RawNatsClient } from "../tests/_nats.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    origins: { type: "string", default: "100000" },
    serve: {
      type: "string",
      default: new URL("../src/cli/serve.ts", import.meta.url).pathname,
    },
    "old-subjects": { type: "boolean", default: false },
    settle: { type: "string", default: "3" },
  },
});
const ORIGINS = Number(values.origins);
const OLD = values["old-subjects"];
const SETTLE_MS = Number(values.settle) * 1000;
const ROOM = "forge";

if (noNats) {
  console.log("nats-server is not installed: apt-get install nats-server");
  Deno.exit(1);
}

function memory(pid: number): { rss: number; peak: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kib = (key: string) =>
    Number(status.match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"))![1]);
  return { rss: kib("VmRSS") / 1024, peak: kib("VmHWM") / 1024 };
}

async function deadline<T>(promise: Promise<T>, ms: number, what: string) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${what}: over ${ms} ms`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

await using nats = await NatsServer.start();
const child = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "--quiet",
    "-A",
    values.serve,
    "127.0.0.1:0",
    "--nats",
    nats.url,
    "--room",
    ROOM,
    "--nats-name",
    "watched",
  ],
  stdout: "piped",
  stderr: "null",
}).spawn();
let lines = 0;
let text = "";
const reading = (async () => {
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    if (lines < 3) text += chunk;
    for (const c of chunk) if (c === "\n") lines++;
  }
})();
try {
  await deadline(
    (async () => {
      while (!/NATS link up/.test(text)) {
        await new Promise((r) => setTimeout(r, 20));
      }
    })(),
    15000,
    "serve starting",
  );
  const id = text.match(/NATS link up: .* \(([A-Za-z0-9_-]+)\)$/m)![1];
  await new Promise((r) => setTimeout(r, 500));
  const before = memory(child.pid);
  const startLines = lines;
  await using raw = await RawNatsClient.connect(nats.port);
  await raw.subscribe(
    OLD ? `midisock.presence.${ROOM}` : `midisock.presence.${ROOM}.${id}`,
  );
  raw.takeAll();
  const notes = [60, 64, 67].map((n) => message("note_on", { note: n }));
  const started = performance.now();
  let pending: Promise<void>[] = [];
  for (let i = 0; i < ORIGINS; i++) {
    const instance = crypto.getRandomValues(new Uint8Array(8));
    const fake = `fake${i}`;
    pending.push(raw.publish(
      OLD ? `midisock.presence.${ROOM}` : `midisock.presence.${ROOM}.${fake}`,
      // Before, a beat ended with the name: no extensions.
      encodeBeat(
        instance,
        0,
        250,
        nameBytes(`fake hub ${i}`),
        OLD ? new Uint8Array() : undefined,
      ),
    ));
    pending.push(raw.publish(
      OLD ? `midisock.room.${ROOM}` : `midisock.room.${ROOM}.${fake}`,
      encodeMidiFrame(instance, 0, notes),
    ));
    if (pending.length >= 1000) {
      await Promise.all(pending);
      pending = [];
    }
  }
  await Promise.all(pending);
  await raw.flush();
  const sent = performance.now() - started;
  await new Promise((r) => setTimeout(r, SETTLE_MS));
  const after = memory(child.pid);
  const answers = OLD
    ? raw.takeAll().filter((m) =>
      Array.from(m.payload.slice(4, 12), (b) => b.toString(16).padStart(2, "0"))
        .join("") === id
    ).length
    : raw.takeAll().length;
  const mib = (n: number) => `${n.toFixed(0)} MiB`;
  console.log(
    `${ORIGINS} fake hubs in ${(sent / 1000).toFixed(1)} s (${
      OLD ? "old subjects" : "own subjects"
    }, ${values.serve})`,
  );
  console.log(
    `  serve RSS: before ${mib(before.rss)}, peak ${mib(after.peak)} (+${
      mib(after.peak - before.rss)
    }), ${SETTLE_MS / 1000} s after ${mib(after.rss)} (+${
      mib(after.rss - before.rss)
    })`,
  );
  console.log(`  lines printed: ${lines - startLines}`);
  console.log(`  beats it published meanwhile: ${answers}`);
} finally {
  child.kill("SIGKILL");
  await child.status;
  await reading.catch(() => {});
}
