// midisock's codec against the real mido, on streams made of whole messages
// (where MIDI 1.0 and mido agree): the same messages, the same text, the same
// bytes.

import { skip } from "./_skip.ts";
import assert from "node:assert/strict";
import {
  encode,
  formatMessage,
  type Message,
  MESSAGE_TYPES,
  parseMessage,
  Parser,
} from "../mod.ts";
import { concat, random, randomMessage } from "./_util.ts";
import { MIDO_MISSING, runPython } from "./_mido.ts";

const MIDO_PARSE = `
import sys, mido
for line in sys.stdin:
    parser = mido.Parser()
    parser.feed(bytes.fromhex(line.strip()))
    print("|".join(str(m) for m in parser))
`;

const MIDO_TEXT = `
import sys, mido
for line in sys.stdin:
    msg = mido.Message.from_str(line.strip())
    print(str(msg) + "|" + msg.hex())
`;

function hex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function streams(seed: number, count: number): Message[][] {
  const next = random(seed);
  return Array.from(
    { length: count },
    (_, s) =>
      Array.from({ length: 20 + (s % 30) }, (_, i) =>
        // Every type in every stream, the rest random.
        randomMessage(next, i < 18 ? MESSAGE_TYPES[i] : undefined)),
  );
}

Deno.test({
  ...skip(
    "mido's Parser reads midisock's streams as midisock does",
    MIDO_MISSING,
  ),
  permissions: { run: true },
  async fn() {
    const cases = streams(11, 300);
    const input = cases.map((messages) => hex(concat(messages.map(encode))))
      .join("\n") + "\n";
    const lines = (await runPython(MIDO_PARSE, input)).trimEnd().split("\n");
    assert.equal(lines.length, cases.length);
    for (const [i, messages] of cases.entries()) {
      const ours = new Parser().feed(concat(messages.map(encode)));
      assert.equal(lines[i], ours.map(formatMessage).join("|"), `stream ${i}`);
    }
  },
});

Deno.test({
  ...skip(
    "mido reads midisock's text and writes the same text and bytes",
    MIDO_MISSING,
  ),
  permissions: { run: true },
  async fn() {
    // mido 1.2.10 prints an empty sysex as "data=()" but cannot read it back.
    const messages = streams(12, 40).flat().filter((m) =>
      m.type !== "sysex" || m.data.length > 0
    );
    const input = messages.map(formatMessage).join("\n") + "\n";
    const lines = (await runPython(MIDO_TEXT, input)).trimEnd().split("\n");
    assert.equal(lines.length, messages.length);
    for (const [i, msg] of messages.entries()) {
      const [text, bytes] = lines[i].split("|");
      assert.equal(text, formatMessage(msg));
      assert.deepEqual(parseMessage(text), msg);
      assert.equal(bytes.replaceAll(" ", "").toLowerCase(), hex(encode(msg)));
    }
  },
});
