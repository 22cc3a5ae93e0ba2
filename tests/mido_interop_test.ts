// midisock's socket ports against the real mido (Debian's python3-mido),
// both ways and as a broadcasting server. mido 1.2.10's SocketPort can strand
// the last message until more bytes arrive, so the mido side reads its raw
// socket with mido's own Parser.

import assert from "node:assert/strict";
import {
  connect,
  encode,
  formatMessage,
  type Message,
  PortServer,
} from "../mod.ts";
import { concat, random, randomMessage } from "./_util.ts";
import { MIDO_MISSING, python } from "./_mido.ts";
import { boundedTest, drain, LOOPBACK, until, within } from "./_net.ts";

const PRELUDE = `
import sys, socket, mido
from mido.sockets import PortServer, connect

def read_all(sock):
    parser = mido.Parser()
    while True:
        data = sock.recv(65536)
        if not data:
            return list(parser)
        parser.feed(data)
`;

/** A mido script run with stdin fed and stdout read line by line. */
class PythonPeer {
  #child: Deno.ChildProcess;
  #lines: AsyncIterator<string>;
  #buffered: string[] = [];

  constructor(script: string, args: string[], input: string) {
    this.#child = new Deno.Command(python, {
      args: ["-u", "-c", PRELUDE + script, ...args],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const writer = this.#child.stdin.getWriter();
    writer.write(new TextEncoder().encode(input)).then(() => writer.close());
    this.#lines = this.#child.stdout.pipeThrough(new TextDecoderStream())
      [Symbol.asyncIterator]();
  }

  async line(): Promise<string> {
    let text = "";
    while (this.#buffered.length === 0) {
      const { value, done } = await within(this.#lines.next(), 10000, "mido");
      if (done) throw new Error("mido exited early");
      text += value;
      const parts = text.split("\n");
      text = parts.pop()!;
      this.#buffered.push(...parts);
      if (text !== "") this.#buffered.push(text), text = "";
    }
    return this.#buffered.shift()!;
  }

  async rest(): Promise<string[]> {
    const out = [...this.#buffered];
    let text = "";
    for (;;) {
      const { value, done } = await within(this.#lines.next(), 10000, "mido");
      if (done) break;
      text += value;
    }
    out.push(...text.split("\n").filter((l) => l !== ""));
    const status = await within(this.#child.status, 10000, "mido exit");
    assert.equal(status.code, 0, "mido script failed");
    return out;
  }
}

function streamOf(seed: number, count: number): Message[] {
  const next = random(seed);
  return Array.from(
    { length: count },
    (_, i) => randomMessage(next, i === 0 ? "sysex" : undefined, 2000),
  );
}

function hex(messages: Message[]): string {
  return Array.from(
    concat(messages.map(encode)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

function interopTest(name: string, fn: () => Promise<void>): void {
  boundedTest(name, fn, {
    ignore: MIDO_MISSING,
    permissions: { ...LOOPBACK, run: true },
    ms: 30000,
  });
}

interopTest("a mido client sends to a midisock server", async () => {
  const sent = streamOf(21, 500);
  await using server = new PortServer("127.0.0.1", 0);
  const accepting = server.accept();
  const peer = new PythonPeer(
    `
port = int(sys.argv[1])
stream = bytes.fromhex(sys.stdin.read().strip())
parser = mido.Parser()
parser.feed(stream)
out = connect("127.0.0.1", port)
for msg in parser:
    out.send(msg)
out.close()
print("sent")
`,
    [String(server.port)],
    hex(sent),
  );
  await using accepted = await accepting;
  assert.deepEqual(await drain(accepted, 10000), sent);
  assert.deepEqual(await peer.rest(), ["sent"]);
});

interopTest("a midisock client sends to a mido PortServer", async () => {
  const sent = streamOf(22, 500);
  const peer = new PythonPeer(
    `
server = PortServer("127.0.0.1", 0)
print(server._socket.getsockname()[1])
client = server.accept()
for msg in read_all(client._socket):
    print(msg)
server.close()
`,
    [],
    "",
  );
  const port = Number(await peer.line());
  const client = await connect("127.0.0.1", port);
  for (const msg of sent) await client.send(msg);
  await client.close();
  assert.deepEqual(await peer.rest(), sent.map(formatMessage));
});

interopTest("a midisock server broadcasts to mido clients", async () => {
  const sent = streamOf(23, 300);
  await using server = new PortServer("127.0.0.1", 0);
  server.poll(); // used as a port: clients join it
  const peer = new PythonPeer(
    `
port = int(sys.argv[1])
clients = [connect("127.0.0.1", port) for _ in range(3)]
print("ready")
for i, client in enumerate(clients):
    for msg in read_all(client._socket):
        print(i, msg, sep="|")
`,
    [String(server.port)],
    "",
  );
  assert.equal(await peer.line(), "ready");
  await until(() => server.clients.length === 3, 5000, "3 mido clients");
  for (const msg of sent) await server.send(msg);
  await server.close();
  const lines = await peer.rest();
  for (const i of [0, 1, 2]) {
    const got = lines.filter((l) => l.startsWith(`${i}|`)).map((l) =>
      l.slice(2)
    );
    assert.deepEqual(got, sent.map(formatMessage), `mido client ${i}`);
  }
});
