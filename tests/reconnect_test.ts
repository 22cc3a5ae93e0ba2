import assert from "node:assert/strict";
import {
  message,
  PortClosedError,
  PortServer,
  QueueFullError,
  ReconnectingPort,
} from "../mod.ts";
import { drain, netTest, take, until } from "./_net.ts";

const note = (n: number) => message("note_on", { note: n });

/** A port number nothing listens on right now. */
async function freePort(): Promise<number> {
  const server = new PortServer("127.0.0.1", 0);
  const port = server.port;
  await server.close();
  return port;
}

netTest("messages sent before the server is up arrive once it is", async () => {
  const port = await freePort();
  let connects = 0;
  let retries = 0;
  await using client = new ReconnectingPort("127.0.0.1", port, {
    minDelay: 20,
    maxDelay: 50,
    onConnect: () => connects++,
    onRetry: () => retries++,
  });
  assert.equal(client.connected, false);
  for (const n of [1, 2, 3]) await client.send(note(n));
  assert.equal(client.pending, 3);
  await until(() => retries >= 2, 5000, "two failed attempts");
  await using server = new PortServer("127.0.0.1", port);
  assert.deepEqual(await take(server, 3), [note(1), note(2), note(3)]);
  assert.equal(connects, 1);
  assert.equal(client.pending, 0);
});

netTest(
  "it reconnects after the server restarts and iteration goes on",
  async () => {
    const port = await freePort();
    const events: string[] = [];
    await using client = new ReconnectingPort("127.0.0.1", port, {
      minDelay: 20,
      maxDelay: 100,
      onConnect: () => events.push("connect"),
      onDisconnect: () => events.push("disconnect"),
    });
    const received: number[] = [];
    const reading = (async () => {
      for await (const msg of client) {
        if (msg.type === "note_on") received.push(msg.note);
      }
    })();
    for (const round of [0, 1]) {
      const server = new PortServer("127.0.0.1", port);
      server.poll();
      await until(() => server.clients.length === 1, 5000, `round ${round}`);
      await server.send(note(round));
      await until(() => received.length === round + 1);
      await client.send(note(100 + round));
      assert.deepEqual(await take(server, 1), [note(100 + round)]);
      await server.close();
      await until(() => !client.connected);
    }
    await client.send(note(7)); // held: the server is down
    assert.equal(client.pending, 1);
    await client.close();
    await reading;
    assert.deepEqual(received, [0, 1]);
    assert.deepEqual(events, [
      "connect",
      "disconnect",
      "connect",
      "disconnect",
    ]);
    await assert.rejects(client.send(note(8)), PortClosedError);
  },
);

netTest("whileDown: reject refuses messages while disconnected", async () => {
  const port = await freePort();
  await using client = new ReconnectingPort("127.0.0.1", port, {
    whileDown: "reject",
  });
  await assert.rejects(
    client.send(note(1)),
    (e: unknown) =>
      e instanceof PortClosedError &&
      /Not connected/.test(String((e as Error).cause)),
  );
  assert.equal(client.pending, 0);
});

netTest("held messages are bounded by maxPending", async () => {
  const port = await freePort();
  await using client = new ReconnectingPort("127.0.0.1", port, {
    maxPending: 2,
  });
  await client.send(note(1));
  await client.send(note(2));
  await assert.rejects(
    client.send(note(3)),
    (e: unknown) =>
      e instanceof QueueFullError && e.unit === "messages" &&
      /2 messages are held while it is disconnected/.test(e.message),
  );
  await assert.rejects(client.send({ type: "note_on" } as never), TypeError);
  assert.throws(
    () =>
      new ReconnectingPort("127.0.0.1", port, { minDelay: 10, maxDelay: 5 }),
    /0 < first <= max: got 10 and 5/,
  );
});

netTest(
  "closing while waiting to reconnect ends everything at once",
  async () => {
    const port = await freePort();
    let waiting = false;
    const client = new ReconnectingPort("127.0.0.1", port, {
      minDelay: 5000,
      onRetry: () => waiting = true,
    });
    await until(() => waiting, 5000, "the first wait to reconnect");
    const started = Date.now();
    await client.close();
    assert.ok(Date.now() - started < 1000);
    assert.deepEqual(await drain(client), []);
    assert.equal(client.closed, true);
  },
);

netTest("bad connection options are refused at construction", () => {
  for (
    const [options, pattern] of [
      [{ token: "two words" }, /Token must be/],
      [
        { maxQueuedBytes: 0 },
        /maxQueuedBytes must be a positive integer: got 0/,
      ],
      [
        { maxSysexLength: -1 },
        /maxSysexLength must be a non-negative integer: got -1/,
      ],
    ] as const
  ) {
    assert.throws(() => new ReconnectingPort("127.0.0.1", 9, options), pattern);
  }
  return Promise.resolve();
});

netTest("closing while a connect attempt hangs ends at once", async () => {
  // A server that accepts but never answers a TLS handshake.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn);
  })();
  const client = new ReconnectingPort("127.0.0.1", listener.addr.port, {
    tls: true,
  });
  await until(() => held.length === 1);
  const started = Date.now();
  await client.close();
  assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
  listener.close();
  await accepting;
  for (const conn of held) conn.close();
});

Deno.test({
  name: "without net permission a reconnecting port closes and refuses sends",
  permissions: { net: false },
  async fn() {
    const client = new ReconnectingPort("127.0.0.1", 9);
    await until(() => client.closed);
    await assert.rejects(client.send(note(1)), PortClosedError);
    assert.equal(client.pending, 0);
    await client.close();
  },
});
