/**
 * What idle hardware inputs cost, in one run: the CPU time a process with
 * 4 open JACK inputs, each with a reader waiting and nothing arriving,
 * spends in `--seconds` (10 by default). Each case runs in its own process,
 * against the same 4 ports, one after the other:
 *
 * - `floor`: 4 RtMidi JACK inputs and nothing else (JACK's own threads);
 * - `1 ms polling`: the same, each read every millisecond by its own timer,
 *   as midisock's inputs did before the shared poller;
 * - `midisock`: 4 `openInput` ports with a `for await` loop each;
 * - `python-rtmidi`: 4 python-rtmidi inputs with a callback each (what mido
 *   does).
 *
 * CPU time is summed over the process's threads from /proc (Linux only).
 *
 * ```sh
 * jackd --no-realtime -d dummy -r 48000 -p 1024 &
 * deno run -A bench/hardware_idle.ts [--seconds 10]
 * ```
 *
 * @module
 */

import { parseArgs } from "node:util";
import { openOutput } from "../src/hardware/mod.ts";

const { values } = parseArgs({
  options: { seconds: { type: "string", default: "10" } },
});
const SECONDS = Number(values.seconds);
const PYTHON = Deno.env.get("MIDISOCK_PYTHON") ?? "/usr/bin/python3";
const STEM = `idle-bench-${Deno.pid}`;
const NAMES = [0, 1, 2, 3].map((i) => `${STEM}-${i}`);

/** Seconds of CPU the threads of a process have used. */
function cpuSeconds(pid: number): number {
  let total = 0;
  for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      const text = Deno.readTextFileSync(
        `/proc/${pid}/task/${task.name}/schedstat`,
      );
      total += Number(text.split(" ")[0]);
    } catch {
      // The thread ended meanwhile.
    }
  }
  return total / 1e9;
}

const DENO_CASE = (kind: string) => `
import { SYMBOLS } from "${new URL("../ffi/symbols.ts", import.meta.url)}";
import { openInput } from "${new URL(
  "../src/hardware/mod.ts",
  import.meta.url,
)}";
const names = ${JSON.stringify(NAMES)};
if (${JSON.stringify(kind)} === "midisock") {
  for (const name of names) {
    const input = await openInput(name, { api: "jack" });
    (async () => { for await (const _ of input); })();
  }
} else {
  const lib = Deno.dlopen("librtmidi.so.6", SYMBOLS).symbols;
  const text = (t) => new TextEncoder().encode(t + "\\0");
  const jack = lib.rtmidi_compiled_api_by_name(text("jack"));
  for (const name of names) {
    const device = await lib.rtmidi_in_create(jack, text("idle"), 1024);
    const count = await lib.rtmidi_get_port_count(device);
    for (let i = 0; i < count; i++) {
      const length = new Int32Array(1);
      await lib.rtmidi_get_port_name(device, i, null, length);
      const buffer = new Uint8Array(length[0]);
      await lib.rtmidi_get_port_name(device, i, buffer, length);
      if (new TextDecoder().decode(buffer).includes(name)) {
        await lib.rtmidi_open_port(device, i, text("in"));
      }
    }
    if (${JSON.stringify(kind)} === "poll") {
      const bytes = new Uint8Array(1024);
      const size = new BigUint64Array(1);
      setInterval(() => {
        size[0] = 1024n;
        lib.rtmidi_in_get_message(device, bytes, size);
      }, 1);
    }
  }
  setInterval(() => {}, 1 << 30);
}
console.log("ready");
`;

const PYTHON_CASE = `
import time, rtmidi
names = ${JSON.stringify(NAMES)}
inputs = []
for name in names:
    port = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, "idle")
    for i in range(port.get_port_count()):
        if name in port.get_port_name(i):
            port.open_port(i)
    port.set_callback(lambda event, data: None)
    inputs.append(port)
print("ready", flush=True)
time.sleep(3600)
`;

/** Waits for the process to be ready, then measures a quiet stretch. */
async function measure(
  label: string,
  child: Deno.ChildProcess,
): Promise<number> {
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("ready")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${label} ended before it was ready`);
    text += value;
  }
  // Let start-up work settle (midisock's poller arms its inputs after a
  // second of silence), then measure.
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const start = cpuSeconds(child.pid);
  await new Promise((resolve) => setTimeout(resolve, SECONDS * 1000));
  const used = cpuSeconds(child.pid) - start;
  child.kill("SIGTERM");
  await reader.cancel();
  await child.status;
  return used;
}

async function denoCase(kind: string): Promise<number> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", "-"],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(DENO_CASE(kind)));
  await writer.close();
  return await measure(kind, child);
}

const outputs = await Promise.all(
  NAMES.map((name) => openOutput(name, { virtual: true, api: "jack" })),
);
try {
  const floor = await denoCase("floor");
  const poll = await denoCase("poll");
  const ours = await denoCase("midisock");
  const python = await measure(
    "python-rtmidi",
    new Deno.Command(PYTHON, {
      args: ["-c", PYTHON_CASE],
      stdout: "piped",
      stderr: "null",
    }).spawn(),
  );
  const row = (name: string, cpu: number) =>
    `${name.padEnd(16)} ${cpu.toFixed(3)} CPU-s in ${SECONDS} s`;
  console.log(row("floor (JACK)", floor));
  console.log(row("1 ms polling", poll));
  console.log(row("midisock", ours));
  console.log(row("python-rtmidi", python));
  console.log(
    `ratios: midisock / 1 ms polling ${(ours / poll).toFixed(3)}x, ` +
      `midisock / floor ${(ours / floor).toFixed(2)}x, ` +
      `midisock / python-rtmidi ${(ours / python).toFixed(2)}x`,
  );
} finally {
  await Promise.all(outputs.map((output) => output.close()));
}
