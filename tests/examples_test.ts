// Every example runs as a user would run it, on loopback, and does what its
// comment says.

import assert from "node:assert/strict";
import {
  connect,
  formatMessage,
  message,
  parseMessage,
  PortServer,
} from "../mod.ts";
import { boundedTest, LOOPBACK, take, until, within } from "./_net.ts";

/** An example running in a subprocess, its stdout read line by line. */
class Example implements AsyncDisposable {
  #child: Deno.ChildProcess;
  #lines: string[] = [];
  #reading: Promise<void>;

  constructor(name: string, args: string[] = []) {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-net=127.0.0.1",
        new URL(`../examples/${name}`, import.meta.url).pathname,
        ...args,
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "inherit",
      env: { NO_COLOR: "1" },
    }).spawn();
    this.#child = child;
    this.#reading = (async () => {
      let text = "";
      for await (
        const chunk of child.stdout.pipeThrough(new TextDecoderStream())
      ) {
        text += chunk;
        const parts = text.split("\n");
        text = parts.pop()!;
        this.#lines.push(...parts);
      }
    })();
  }

  get lines(): string[] {
    return this.#lines;
  }

  async waitForLines(count: number): Promise<string[]> {
    await until(() => this.#lines.length >= count, 10000, "example output");
    return this.#lines.slice(0, count);
  }

  /** The port from a "Listening on host:port" first line. */
  async port(): Promise<number> {
    const [first] = await this.waitForLines(1);
    const match = first.match(/^Listening on .*:(\d+)$/);
    assert.ok(match, first);
    return Number(match[1]);
  }

  async exit(): Promise<Deno.CommandStatus> {
    const status = await within(this.#child.status, 10000, "example exit");
    await this.#reading;
    return status;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.#child.kill("SIGTERM");
    } catch {
      // Already exited.
    }
    await this.exit();
  }
}

function exampleTest(name: string, fn: () => Promise<void>): void {
  boundedTest(name, fn, {
    permissions: { ...LOOPBACK, run: true, read: true },
    ms: 30000,
  });
}

const sent = [
  message("note_on", { note: 60 }),
  message("sysex", { data: [1, 2, 3] }),
  message("note_off", { note: 60 }),
];

exampleTest("server_print prints every client's messages", async () => {
  await using example = new Example("server_print.ts", ["127.0.0.1:0"]);
  const port = await example.port();
  for (const _ of [1, 2]) {
    await using client = await connect("127.0.0.1", port);
    for (const msg of sent) await client.send(msg);
  }
  // Two clients' messages interleave in any order; each client's keep theirs.
  const lines = await example.waitForLines(7);
  assert.deepEqual(
    lines.slice(1).sort(),
    [...sent, ...sent].map(formatMessage).sort(),
  );
});

exampleTest("client_send sends one message and exits", async () => {
  await using server = new PortServer("127.0.0.1", 0);
  const accepting = server.accept();
  const example = new Example("client_send.ts", [
    `127.0.0.1:${server.port}`,
    "control_change control=7 value=100",
  ]);
  await using accepted = await accepting;
  assert.deepEqual(await take(accepted, 1), [
    parseMessage("control_change control=7 value=100"),
  ]);
  assert.equal((await example.exit()).code, 0);
});

exampleTest("server_send reaches every client_print", async () => {
  await using server = new Example("server_send.ts", ["127.0.0.1:0"]);
  const port = await server.port();
  await using a = new Example("client_print.ts", [`127.0.0.1:${port}`]);
  await using b = new Example("client_print.ts", [`127.0.0.1:${port}`]);
  for (const client of [a, b]) {
    const lines = await client.waitForLines(4);
    for (const line of lines) assert.match(line, /^note_(on|off) channel=0/);
  }
});

exampleTest("accept_loop serves one client after another", async () => {
  await using example = new Example("accept_loop.ts", ["127.0.0.1:0"]);
  const port = await example.port();
  for (const msg of sent) {
    await using client = await connect("127.0.0.1", port);
    await client.send(msg);
  }
  const lines = await example.waitForLines(4);
  assert.deepEqual(lines.slice(1), sent.map(formatMessage));
});

exampleTest(
  "multi_client reports connections, messages and leaving",
  async () => {
    await using example = new Example("multi_client.ts", ["127.0.0.1:0"]);
    const port = await example.port();
    const a = await connect("127.0.0.1", port);
    const b = await connect("127.0.0.1", port);
    await until(
      () =>
        example.lines.filter((l) => l.startsWith("Connection from")).length ===
          2,
    );
    await a.send(sent[0]);
    await b.send(sent[1]);
    await a.close();
    await until(() => example.lines.some((l) => l.endsWith(" disconnected")));
    await until(() => example.lines.length >= 6);
    const name = `127.0.0.1:${a.localAddr.port}`;
    assert.ok(example.lines.includes(`Connection from ${name}`));
    assert.ok(
      example.lines.includes(`Received ${formatMessage(sent[0])} from ${name}`),
    );
    assert.ok(example.lines.includes(
      `Received ${formatMessage(sent[1])} from 127.0.0.1:${b.localAddr.port}`,
    ));
    assert.ok(example.lines.includes(`${name} disconnected`));
    await b.close();
  },
);

exampleTest("await_using closes everything and exits", async () => {
  const example = new Example("await_using.ts");
  const status = await example.exit();
  assert.equal(status.code, 0);
  assert.deepEqual(example.lines, [
    "program_change channel=0 program=12 time=0",
    "note_on channel=0 note=64 velocity=90 time=0",
  ]);
});
