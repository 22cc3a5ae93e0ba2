// 100,000 random and mutated byte streams into a live server from several
// clients at once, while well-behaved clients send and receive: the server
// never throws, they lose nothing, and memory stays bounded.

import assert from "node:assert/strict";
import { connect, encode, type Message, message, PortServer } from "../mod.ts";
import { between, random, randomMessage } from "./_util.ts";
import { LOOPBACK, until, within } from "./_net.ts";

const STREAMS = 100_000;
const FUZZERS = 4;
const GOOD_CLIENTS = 2;
const GOOD_MESSAGES = 2000;

/** One random or mutated stream of bytes. */
function fuzzStream(next: () => number): Uint8Array {
  const kind = next();
  if (kind < 0.4) {
    return Uint8Array.from(
      { length: between(next, 1, 48) },
      () => between(next, 0, 255),
    );
  }
  const bytes: number[] = [];
  for (let i = between(next, 1, 6); i > 0; i--) {
    bytes.push(...encode(randomMessage(next, undefined, 64)));
  }
  const mutations = between(next, 1, 4);
  for (let m = 0; m < mutations; m++) {
    const at = between(next, 0, bytes.length - 1);
    const choice = next();
    if (choice < 0.3) bytes[at] ^= 1 << between(next, 0, 7);
    else if (choice < 0.5) bytes.splice(at, 0, between(next, 0x80, 0xff));
    else if (choice < 0.7) bytes.splice(at, between(next, 1, 4));
    else if (choice < 0.85) bytes.length = at; // cut short
    else bytes.splice(at, 0, 0xf0, ...new Array(between(next, 1, 100)).fill(1));
  }
  return new Uint8Array(bytes);
}

/** A good client's n-th message: a sysex only it could have sent. */
function marked(client: number, n: number): Message {
  return message("sysex", { data: [0x7d, 0x55, client, n >> 7, n & 0x7f] });
}

function isMarked(msg: Message): msg is Message & { data: Uint8Array } {
  return msg.type === "sysex" && msg.data.length === 5 &&
    msg.data[0] === 0x7d && msg.data[1] === 0x55;
}

Deno.test({
  name:
    "a live server survives 100k fuzzed streams and good clients lose nothing",
  permissions: LOOPBACK,
  fn: () =>
    within(
      (async () => {
        const rssBefore = Deno.memoryUsage().rss;
        await using server = new PortServer("127.0.0.1", 0, {
          maxSysexLength: 4096,
        });
        const got = new Map<number, number[]>();
        let fuzzedMessages = 0;
        const reading = (async () => {
          for await (const msg of server) {
            if (!isMarked(msg)) {
              fuzzedMessages++;
              continue;
            }
            const [, , client, hi, lo] = msg.data;
            got.set(client, [...(got.get(client) ?? []), hi << 7 | lo]);
          }
        })();

        const fuzzers = Array.from({ length: FUZZERS }, async (_, f) => {
          const next = random(1000 + f);
          let conn = await Deno.connect({
            hostname: "127.0.0.1",
            port: server.port,
          });
          for (let sent = 0; sent < STREAMS / FUZZERS;) {
            const batch: Uint8Array[] = [];
            for (let i = 0; i < 64; i++, sent++) batch.push(fuzzStream(next));
            const size = batch.reduce((n, b) => n + b.length, 0);
            const bytes = new Uint8Array(size);
            let offset = 0;
            for (const b of batch) bytes.set(b, offset), offset += b.length;
            await conn.write(bytes);
            if (next() < 0.05) {
              // Vanish mid-stream and come back.
              conn.close();
              conn = await Deno.connect({
                hostname: "127.0.0.1",
                port: server.port,
              });
            }
          }
          conn.close();
        });

        const listeners = await Promise.all(
          Array.from(
            { length: GOOD_CLIENTS },
            () => connect("127.0.0.1", server.port),
          ),
        );
        await until(() => server.clients.length >= GOOD_CLIENTS * 2 + 1);
        const broadcast = (async () => {
          for (let n = 0; n < GOOD_MESSAGES; n++) {
            await server.send(marked(99, n));
            if (n % 100 === 0) await new Promise((r) => setTimeout(r, 0));
          }
        })();
        const senders = Array.from({ length: GOOD_CLIENTS }, async (_, c) => {
          const client = await connect("127.0.0.1", server.port);
          for (let n = 0; n < GOOD_MESSAGES; n++) {
            await client.send(marked(c, n));
          }
          await client.close();
        });

        await Promise.all([...fuzzers, ...senders, broadcast]);
        const expected = Array.from({ length: GOOD_MESSAGES }, (_, n) => n);
        for (const listener of listeners) {
          const received: number[] = [];
          for await (const msg of listener) {
            if (isMarked(msg)) received.push(msg.data[3] << 7 | msg.data[4]);
            if (received.length === GOOD_MESSAGES) break;
          }
          assert.deepEqual(received, expected);
          await listener.close();
        }
        await until(
          () =>
            [...Array(GOOD_CLIENTS).keys()].every((c) =>
              got.get(c)?.length === GOOD_MESSAGES
            ),
          10000,
          `good clients: ${[...got].map(([c, l]) => `${c}=${l.length}`)}`,
        );
        for (let c = 0; c < GOOD_CLIENTS; c++) {
          assert.deepEqual(got.get(c), expected, `good client ${c}`);
        }
        await server.close();
        await reading;
        const rssAfter = Deno.memoryUsage().rss;
        console.log(
          `fuzz: ${STREAMS} streams gave ${fuzzedMessages} messages; ` +
            `RSS ${(rssBefore / 2 ** 20).toFixed(1)} -> ${
              (rssAfter / 2 ** 20).toFixed(1)
            } MiB`,
        );
        assert.ok(
          rssAfter - rssBefore < 128 * 2 ** 20,
          `RSS grew by ${rssAfter - rssBefore} bytes`,
        );
      })(),
      60000,
      "fuzz",
    ),
});
