// The hardware examples, run as a user runs them (the command in each
// header, no MIDISOCK_RTMIDI_API): they work on any machine where some
// backend works, and fail in one line, never with a stack trace.

import { skip } from "./_skip.ts";
import assert from "node:assert/strict";
import { message } from "../src/codec/messages.ts";
import { openInput, openOutput } from "../src/hardware/mod.ts";
import { take, until } from "./_net.ts";
import {
  API,
  assertAvailable,
  RTMIDI_MISSING,
  UNAVAILABLE,
  uniqueName,
  within,
  withoutDbNoise,
} from "./_rtmidi.ts";

/** What an example run may print on stderr: nothing native, no trace. */
function assertNoTrace(stderr: string): void {
  assert.doesNotMatch(stderr, /\bat \S+:\d+:\d+|^error:|Uncaught/m, stderr);
}

/** An example running as its header says, its stdout read line by line. */
class Example implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly lines: string[] = [];
  stderr = "";
  readonly #done: Promise<unknown>;

  constructor(name: string, args: string[] = [], env = {}) {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        "--allow-ffi",
        "--allow-env",
        new URL(`../examples/${name}`, import.meta.url).pathname,
        ...args,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      // The backend is the library's choice, as for a user.
      env: { NO_COLOR: "1", MIDISOCK_RTMIDI_API: "", ...env },
    }).spawn();
    this.child = child;
    this.#done = Promise.all([
      (async () => {
        let text = "";
        for await (
          const chunk of child.stdout.pipeThrough(new TextDecoderStream())
        ) {
          text += chunk;
          const parts = text.split("\n");
          text = parts.pop()!;
          this.lines.push(...parts);
        }
      })(),
      (async () => {
        for await (
          const chunk of child.stderr.pipeThrough(new TextDecoderStream())
        ) this.stderr += chunk;
      })(),
    ]);
  }

  async line(pattern: RegExp, ms = 15_000): Promise<string> {
    let found: string | undefined;
    await until(
      () => (found = this.lines.find((l) => pattern.test(l))) !== undefined,
      ms,
      `a line matching ${pattern} (stdout ${
        JSON.stringify(this.lines)
      }, stderr ${JSON.stringify(this.stderr)})`,
    );
    return found!;
  }

  async end(signal?: Deno.Signal): Promise<Deno.CommandStatus> {
    if (signal !== undefined) this.child.kill(signal);
    const status = await within(this.child.status, 15_000, "the example");
    await this.#done;
    return status;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.child.kill("SIGKILL");
    } catch {
      // Ended already.
    }
    await this.child.status;
    await this.#done;
  }
}

function exampleTest(name: string, fn: () => Promise<void>): void {
  Deno.test({
    ...skip(name, RTMIDI_MISSING),
    async fn() {
      assertAvailable();
      await fn();
    },
  });
}

exampleTest(
  "hardware_list_ports lists every usable backend's ports",
  async () => {
    const name = uniqueName("listed");
    await using _port = await openOutput(name, { virtual: true, api: API });
    await using example = new Example("hardware_list_ports.ts");
    const status = await example.end();
    assert.equal(status.code, 0, example.stderr);
    assert.ok(example.lines.includes(`${API}:`), example.lines.join("\n"));
    assert.ok(
      example.lines.some((line) =>
        /^ {2}in {2}\d+: /.test(line) && line.endsWith(name)
      ),
    );
    assert.equal(withoutDbNoise(example.stderr), "");
  },
);

Deno.test({
  ...skip(
    "hardware_list_ports without any usable backend says why, in lines",
    UNAVAILABLE?.includes("RtMidi library") && RTMIDI_MISSING,
  ),
  async fn() {
    await using example = new Example("hardware_list_ports.ts", [], {
      JACK_DEFAULT_SERVER: `midisock-none-${Deno.pid}`,
    });
    const status = await example.end();
    assert.ok(
      example.lines.includes(
        "jack: unavailable (the JACK server is not running; start one with `jackd -d alsa` (or `jackd -d dummy` without a sound card), or with qjackctl)",
      ),
      example.lines.join("\n"),
    );
    if (!example.lines.some((line) => /^alsa:$/.test(line))) {
      assert.equal(status.code, 1);
    }
    assert.equal(withoutDbNoise(example.stderr), "");
  },
});

Deno.test({
  name:
    "hardware examples without RtMidi say how to install it, no stack trace",
  async fn() {
    for (
      const [name, args] of [
        ["hardware_list_ports.ts", []],
        ["hardware_bridge.ts", ["a", "b"]],
        ["hardware_virtual_synth.ts", []],
        ["hardware_watch.ts", []],
        ["hardware_follow.ts", ["a"]],
      ] as const
    ) {
      await using example = new Example(name, [...args], {
        MIDISOCK_RTMIDI_PATH: "/nonexistent/librtmidi.so",
      });
      const status = await example.end();
      assert.equal(status.code, 1, name);
      assert.match(example.stderr, /^Cannot load the RtMidi library; tried:/);
      assertNoTrace(example.stderr);
    }
  },
});

exampleTest(
  "hardware_virtual_synth prints what is played into it",
  async () => {
    await using example = new Example("hardware_virtual_synth.ts");
    const line = await example.line(/^Play into /);
    const match = line.match(/^Play into (.+) \((\w+)\); Ctrl-C to stop$/);
    assert.ok(match, line);
    await using keys = await openOutput(match[1], { api: match[2] as "jack" });
    await keys.send(message("note_on", { note: 64 }));
    await example.line(/note_on/);
    const status = await example.end("SIGINT");
    assert.equal(status.code, 0, example.stderr);
    assert.equal(example.lines.at(-1), "dropped: 0");
    assertNoTrace(example.stderr);
  },
);

exampleTest(
  "hardware_bridge carries one port's messages to another",
  async () => {
    const name = uniqueName("bridge");
    await using keys = await openOutput(`${name}-keys`, {
      virtual: true,
      api: API,
    });
    await using synth = await openInput(`${name}-synth`, {
      virtual: true,
      api: API,
    });
    await using example = new Example("hardware_bridge.ts", [
      `${name}-keys`,
      `${name}-synth`,
    ]);
    await example.line(/ -> /);
    // JACK makes the new connections live in a later cycle: send until one
    // arrives.
    const first = synth.receive();
    let got;
    for (let i = 0; i < 20 && got === undefined; i++) {
      await keys.send(message("program_change", { program: 5 }));
      got = await Promise.race([
        first,
        new Promise<undefined>((r) => setTimeout(() => r(undefined), 100)),
      ]);
    }
    assert.equal(got?.type, "program_change");
    await keys.send(message("stop"));
    const [stop] = await take(synth, 1);
    assert.ok(stop.type === "stop" || stop.type === "program_change");
    const status = await example.end("SIGINT");
    assert.equal(status.code, 0, example.stderr);
    assertNoTrace(example.stderr);
  },
);

exampleTest("hardware_watch prints ports as they come and go", async () => {
  const name = uniqueName("watched");
  await using example = new Example("hardware_watch.ts");
  await using _a = await openOutput(`${name}-a`, { virtual: true, api: API });
  await example.line(new RegExp(`^added ${API} input \\S+${name}-a$`));
  await _a.close();
  await example.line(new RegExp(`^removed ${API} input \\S+${name}-a$`));
  const status = await example.end("SIGINT");
  assert.equal(status.code, 0, example.stderr);
  assertNoTrace(example.stderr);
});
