import assert from "node:assert/strict";
import {
  connect,
  encode,
  FellBehindError,
  Hub,
  type Message,
  message,
  PANIC_MESSAGES,
  PortClosedError,
  PortServer,
  QueueFullError,
  RESET_MESSAGES,
  type SocketPort,
} from "../mod.ts";
import { TOKEN_PREFIX } from "../src/net/mod.ts";
import {
  helloLine,
  MAX_LINE,
  okLine,
  readReply,
  readRequest,
  refusedLine,
} from "../src/net/_hello.ts";
import { concat, pureTest, random, randomMessage } from "./_util.ts";
import { drain, netTest, readAll, take, until, within } from "./_net.ts";

const note = (n: number) => message("note_on", { note: n % 128, velocity: 1 });

netTest(
  "server binds at construction on port 0 and reports its address",
  async () => {
    await using server = new PortServer("127.0.0.1", 0);
    assert.ok(server.port > 0);
    assert.equal(server.addr.hostname, "127.0.0.1");
    assert.equal(server.name, `127.0.0.1:${server.port}`);
    assert.equal(server.closed, false);
  },
);

netTest("server used as a port merges every client's messages", async () => {
  await using server = new PortServer("127.0.0.1", 0);
  const clients = await Promise.all(
    [0, 1, 2].map(() => connect("127.0.0.1", server.port)),
  );
  await Promise.all(clients.map(async (client, c) => {
    for (let i = 0; i < 100; i++) {
      await client.send(message("note_on", { channel: c, note: i }));
    }
  }));
  const got = await take(server, 300);
  for (let c = 0; c < 3; c++) {
    const notes = got.filter((m) => m.type === "note_on" && m.channel === c)
      .map((m) => (m as { note: number }).note);
    assert.deepEqual(notes, Array.from({ length: 100 }, (_, i) => i));
  }
  await Promise.all(clients.map((c) => c.close()));
});

netTest("server send reaches every connected client in order", async () => {
  await using server = new PortServer("127.0.0.1", 0);
  server.poll(); // used as a port: connections join it
  const clients = await Promise.all(
    Array.from({ length: 5 }, () => connect("127.0.0.1", server.port)),
  );
  await until(() => server.clients.length === 5);
  const sent = Array.from({ length: 200 }, (_, i) => note(i));
  for (const msg of sent) await server.send(msg);
  for (const client of clients) {
    assert.deepEqual(await take(client, 200), sent);
    await client.close();
  }
});

netTest("accept hands a connection to the caller, both ways", async () => {
  await using server = new PortServer("127.0.0.1", 0);
  assert.equal(server.accept({ block: false }), undefined);
  const accepting = server.accept();
  await using client = await connect("127.0.0.1", server.port);
  await using accepted = await accepting;
  assert.equal(accepted.name, `127.0.0.1:${client.localAddr.port}`);
  assert.equal(client.name, `127.0.0.1:${server.port}`);
  await client.send(note(1));
  assert.deepEqual(await take(accepted, 1), [note(1)]);
  await accepted.send(note(2));
  assert.deepEqual(await take(client, 1), [note(2)]);
  assert.equal(
    server.clients.length,
    0,
    "an accepted connection is not managed",
  );
});

netTest(
  "accept({ block: false }) returns a waiting connection or undefined",
  async () => {
    await using server = new PortServer("127.0.0.1", 0);
    await using client = await connect("127.0.0.1", server.port);
    let accepted: SocketPort | undefined;
    await until(() =>
      (accepted = server.accept({ block: false })) !== undefined
    );
    await using _ = accepted!;
    assert.equal(server.accept({ block: false }), undefined);
    await client.send(note(3));
    assert.deepEqual(await take(accepted!, 1), [note(3)]);
  },
);

netTest(
  "a blocked accept gets the next connection even when used as a port",
  async () => {
    await using server = new PortServer("127.0.0.1", 0);
    server.poll();
    const accepting = server.accept();
    await using client = await connect("127.0.0.1", server.port);
    await using accepted = await accepting;
    await client.send(note(4));
    assert.deepEqual(await take(accepted, 1), [note(4)]);
    assert.equal(server.poll(), undefined);
    assert.equal(server.clients.length, 0);
  },
);

netTest(
  "a client leaving while the server sends costs the others nothing",
  async () => {
    const left: unknown[] = [];
    await using server = new PortServer("127.0.0.1", 0, {
      onDisconnect: (_client, reason) => left.push(reason),
    });
    server.poll();
    const clients = await Promise.all(
      Array.from({ length: 4 }, () => connect("127.0.0.1", server.port)),
    );
    await until(() => server.clients.length === 4);
    const sent = Array.from({ length: 1000 }, (_, i) => note(i));
    const readers = clients.slice(1).map((c) => take(c, 1000));
    for (const [i, msg] of sent.entries()) {
      if (i === 100) await clients[0].close();
      await server.send(msg);
    }
    for (const got of await Promise.all(readers)) assert.deepEqual(got, sent);
    await until(() => server.clients.length === 3, 5000, "dropping the client");
    assert.equal(left.length, 1);
    await Promise.all(clients.map((c) => c.close()));
  },
);

netTest(
  "a peer that vanishes mid-message loses only that message",
  async () => {
    await using server = new PortServer("127.0.0.1", 0);
    const accepting = server.accept();
    const raw = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.port,
    });
    await raw.write(new Uint8Array([0x90, 60, 100, 0xf0, 1, 2, 0x90, 61]));
    raw.close();
    await using accepted = await accepting;
    assert.deepEqual(await drain(accepted), [
      message("note_on", { note: 60, velocity: 100 }),
    ]);
    assert.equal(accepted.closed, true);
    assert.equal(
      accepted.dropped,
      1,
      "the cut sysex counts, the unfinished end does not",
    );
    await assert.rejects(accepted.receive(), PortClosedError);
  },
);

netTest(
  "messages received before the peer left can still be read",
  async () => {
    await using server = new PortServer("127.0.0.1", 0);
    const accepting = server.accept();
    const client = await connect("127.0.0.1", server.port);
    const sent = Array.from({ length: 50 }, (_, i) => note(i));
    for (const msg of sent) await client.send(msg);
    await client.close();
    await using accepted = await accepting;
    await until(() => accepted.closed);
    assert.deepEqual([...accepted.iterPending()], sent);
    assert.equal(accepted.poll(), undefined);
  },
);

netTest("many connects and disconnects leave nothing behind", async () => {
  let connected = 0;
  let disconnected = 0;
  await using server = new PortServer("127.0.0.1", 0, {
    onConnect: () => connected++,
    onDisconnect: () => disconnected++,
  });
  server.poll();
  for (let round = 0; round < 20; round++) {
    const clients = await Promise.all(
      Array.from({ length: 10 }, () => connect("127.0.0.1", server.port)),
    );
    await Promise.all(clients.map((c) => c.send(note(round))));
    await Promise.all(clients.map((c) => c.close()));
  }
  await until(() => disconnected === 200, 10000, "200 disconnects");
  assert.equal(connected, 200);
  assert.equal(server.clients.length, 0);
  assert.equal((await take(server, 200)).length, 200);
});

netTest("IPv6 loopback works and is named with brackets", async () => {
  await using server = new PortServer("::1", 0);
  const accepting = server.accept();
  await using client = await connect("::1", server.port);
  await using accepted = await accepting;
  assert.equal(server.name, `[::1]:${server.port}`);
  assert.equal(client.name, `[::1]:${server.port}`);
  await client.send(note(9));
  assert.deepEqual(await take(accepted, 1), [note(9)]);
});

Deno.test({
  name: "without --allow-net the error names the permission",
  permissions: { net: false },
  fn() {
    assert.throws(
      () => new PortServer("127.0.0.1", 0),
      (e: unknown) =>
        e instanceof Deno.errors.NotCapable && /--allow-net/.test(e.message) &&
        /127\.0\.0\.1/.test(e.message),
    );
  },
});

netTest("connect to a closed port fails with ConnectionRefused", async () => {
  const server = new PortServer("127.0.0.1", 0);
  const port = server.port;
  await server.close();
  await assert.rejects(
    connect("127.0.0.1", port),
    Deno.errors.ConnectionRefused,
  );
});

netTest("bad ports and hosts are refused with a clear error", async () => {
  assert.throws(
    () => new PortServer("127.0.0.1", 70000),
    /Port must be an integer in 0\.\.65535: got 70000/,
  );
  assert.throws(() => new PortServer("127.0.0.1", -1), RangeError);
  assert.throws(() => new PortServer("127.0.0.1", 1.5), TypeError);
  assert.throws(
    () => new PortServer(7 as unknown as string, 0),
    /Host must be a string/,
  );
  await assert.rejects(connect("127.0.0.1", 65536), RangeError);
  assert.throws(
    () => new PortServer("127.0.0.1", 0, { backlog: 0 }),
    /backlog must be a positive integer: got 0/,
  );
});

netTest("a port in use is an AddrInUse error that says which", async () => {
  await using server = new PortServer("127.0.0.1", 0);
  assert.throws(
    () => new PortServer("127.0.0.1", server.port),
    (error: Error) =>
      error instanceof Deno.errors.AddrInUse &&
      error.message === `TCP 127.0.0.1:${server.port} is already in use ` +
          "(is another server running?)",
  );
});

netTest("send on a closed port throws and receive ends iteration", async () => {
  await using server = new PortServer("127.0.0.1", 0);
  const client = await connect("127.0.0.1", server.port);
  const reading = drain(client);
  await client.close();
  await client.close(); // twice is fine
  assert.deepEqual(await reading, []);
  assert.equal(client.closed, true);
  await assert.rejects(
    client.send(note(1)),
    (e: unknown) =>
      e instanceof PortClosedError &&
      e.message === `Port 127.0.0.1:${server.port} is closed`,
  );
  await assert.rejects(client.receive(), PortClosedError);
  await client.reset(); // does nothing on a closed port
  await client.panic();
  await server.close();
  await assert.rejects(server.send(note(1)), PortClosedError);
  await assert.rejects(server.accept(), PortClosedError);
  assert.throws(() => server.accept({ block: false }), PortClosedError);
  assert.deepEqual(await drain(server), []);
});

netTest(
  "a malformed message is refused and the port keeps working",
  async () => {
    await using server = new PortServer("127.0.0.1", 0);
    const accepting = server.accept();
    await using client = await connect("127.0.0.1", server.port);
    await using accepted = await accepting;
    await assert.rejects(
      client.send({ type: "note_on", channel: 16, note: 1, velocity: 1 }),
      /note_on channel must be an integer in 0..15: got 16/,
    );
    await assert.rejects(
      client.sendAll([note(1), { type: "nope" } as unknown as Message]),
      TypeError,
    );
    await assert.rejects(
      server.send({ type: "clock", bpm: 1 } as unknown as Message),
      TypeError,
    );
    await client.send(note(5));
    assert.deepEqual(await take(accepted, 1), [note(5)]);
  },
);

netTest("concurrent sends never interleave on the wire", async () => {
  await using server = new PortServer("127.0.0.1", 0);
  const accepting = server.accept();
  await using client = await connect("127.0.0.1", server.port);
  await using accepted = await accepting;
  const next = random(5);
  const sent = Array.from(
    { length: 2000 },
    (_, i) => randomMessage(next, i % 10 === 0 ? "sysex" : undefined, 3000),
  );
  await Promise.all(sent.map((m) => client.send(m)));
  assert.deepEqual(await take(accepted, sent.length, 10000), sent);
});

netTest("reset and panic send mido's sets", async () => {
  await using server = new PortServer("127.0.0.1", 0);
  const accepting = server.accept();
  await using client = await connect("127.0.0.1", server.port);
  await using accepted = await accepting;
  await client.reset();
  await client.panic();
  assert.equal(RESET_MESSAGES.length, 32);
  assert.deepEqual(RESET_MESSAGES.slice(0, 2).map((m) => m.control), [
    123,
    121,
  ]);
  assert.equal(PANIC_MESSAGES.length, 16);
  assert.deepEqual(await take(accepted, 48), [
    ...RESET_MESSAGES,
    ...PANIC_MESSAGES,
  ]);
});

netTest("a slow reader slows the sender down and loses nothing", async () => {
  await using server = new PortServer("127.0.0.1", 0, { queueSize: 16 });
  const accepting = server.accept();
  await using client = await connect("127.0.0.1", server.port);
  await using accepted = await accepting;
  const sent = Array.from({ length: 20000 }, (_, i) => note(i));
  const sending = (async () => {
    for (const msg of sent) await client.send(msg);
  })();
  const got: Message[] = [];
  for await (const msg of accepted) {
    got.push(msg);
    if (got.length % 1000 === 0) await new Promise((r) => setTimeout(r, 1));
    if (got.length === sent.length) break;
  }
  await sending;
  assert.deepEqual(got, sent);
});

netTest(
  "a client that stops reading is dropped, others get everything",
  async () => {
    const reasons: unknown[] = [];
    await using server = new PortServer("127.0.0.1", 0, {
      maxQueuedBytes: 64 * 1024,
      onDisconnect: (_client, reason) => reasons.push(reason),
    });
    server.poll();
    const stalled = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.port,
    });
    await using reader = await connect("127.0.0.1", server.port);
    await until(() => server.clients.length === 2);
    const big = message("sysex", { data: new Uint8Array(16 * 1024).fill(1) });
    const count = 1000; // 16 MiB: far past socket buffers and the bound
    let received = 0;
    const reading = within(
      (async () => {
        for await (const _ of reader) if (++received === count) break;
      })(),
      15000,
    );
    for (let i = 0; i < count; i++) {
      await server.send(big);
      // Paced as a live sender is: a turn of the event loop between
      // messages, so the reader keeps up while the stalled client cannot.
      await new Promise((r) => setTimeout(r, 0));
    }
    await reading;
    assert.equal(received, count);
    await until(
      () => reasons.length === 1,
      5000,
      "dropping the stalled client",
    );
    assert.ok(reasons[0] instanceof FellBehindError, String(reasons[0]));
    assert.equal(server.clients.length, 1);
    stalled.close();
  },
);

netTest(
  "a big message to many readers counts once against the hub's budget: none dropped",
  async () => {
    const left: unknown[] = [];
    // The budget is far under what waits for all together (10 x 1 MiB),
    // but the message is held once, by reference: nothing to shed.
    await using hub = new Hub({
      maxQueuedTotal: 4 << 20,
      onEvent: (e) => {
        if (e.type === "leave") left.push(e.reason);
      },
    });
    await using server = await hub.attach(new PortServer("127.0.0.1", 0));
    await using sender = await connect("127.0.0.1", server.port);
    const readers = await Promise.all(
      Array.from({ length: 10 }, () => connect("127.0.0.1", server.port)),
    );
    try {
      await until(() => hub.endpoints.length === 11);
      const big = message("sysex", {
        data: new Uint8Array(1 << 20).fill(0x33),
      });
      const heard = readers.map((reader) => take(reader, 2, 15000));
      await sender.send(big);
      await sender.send(big);
      for (const got of await Promise.all(heard)) {
        assert.deepEqual(got.map((m) => m.type), ["sysex", "sysex"]);
      }
      assert.deepEqual(left, []);
    } finally {
      await Promise.all(readers.map((reader) => reader.close()));
    }
  },
);

netTest("send throws QueueFullError when a peer stops reading", async () => {
  await using server = new PortServer("127.0.0.1", 0);
  const accepting = server.accept();
  await using client = await connect("127.0.0.1", server.port, {
    maxQueuedBytes: 4096,
  });
  await using _accepted = await accepting; // never read
  const big = message("sysex", { data: new Uint8Array(1000) });
  let error: unknown;
  const writes: Promise<void>[] = [];
  for (let i = 0; i < 100000 && error === undefined; i++) {
    writes.push(
      client.send(big).catch((e) => {
        error ??= e;
      }),
    );
    if (i % 100 === 0) await new Promise((r) => setTimeout(r, 0));
  }
  assert.ok(error instanceof QueueFullError, String(error));
  assert.match((error as Error).message, /more than 4096 bytes wait/);
  assert.ok(client.queuedBytes <= 4096 + 1002);
  await client.close();
  await Promise.all(writes);
});

netTest("server closing ends its clients and pending accepts", async () => {
  const server = new PortServer("127.0.0.1", 0);
  server.poll();
  const client = await connect("127.0.0.1", server.port);
  await until(() => server.clients.length === 1);
  const accepting = assert.rejects(server.accept(), PortClosedError);
  await server.close();
  await accepting;
  assert.deepEqual(await drain(client), []);
  assert.equal(client.closed, true);
  await client.close();
});

netTest(
  "the wire carries exactly mido's bytes, one message whole",
  async () => {
    await using server = new PortServer("127.0.0.1", 0);
    const accepting = server.accept();
    const raw = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.port,
    });
    const accepted = await accepting;
    const sent = [
      note(1),
      message("sysex", { data: [1, 2] }),
      message("clock"),
      note(2),
    ];
    for (const msg of sent) await accepted.send(msg);
    await accepted.close();
    assert.deepEqual(await readAll(raw), concat(sent.map(encode)));
  },
);

netTest(
  "a send larger than the high-water mark resolves on an idle port",
  async () => {
    await using server = new PortServer("127.0.0.1", 0);
    const accepting = server.accept();
    await using client = await connect("127.0.0.1", server.port);
    await using accepted = await accepting;
    const big = message("sysex", { data: new Uint8Array(70_000) });
    await within(client.send(big), 5000, "a 70 KB send");
    assert.deepEqual(await take(accepted, 1), [big]);
    await using tiny = await connect("127.0.0.1", server.port, {
      maxQueuedBytes: 2,
    });
    await within(tiny.send(note(1)), 5000, "a send past a 2-byte bound");
    await within(tiny.reset(), 5000, "reset past a 2-byte bound");
    await (await server.accept()).close();
  },
);

netTest("a send waiting when the port closes settles", async () => {
  await using server = new PortServer("127.0.0.1", 0);
  const accepting = server.accept();
  const client = await connect("127.0.0.1", server.port);
  await using _accepted = await accepting; // never reads
  const big = message("sysex", { data: new Uint8Array(200_000) });
  const sends = Array.from(
    { length: 4 },
    () => client.send(big).catch((e) => e),
  );
  await client.close();
  for (const result of await within(Promise.all(sends), 5000, "sends")) {
    assert.ok(
      result === undefined || result instanceof PortClosedError,
      String(result),
    );
  }
});

netTest("a throwing callback is reported and the server goes on", async () => {
  const reported: unknown[] = [];
  const onError = (event: ErrorEvent) => {
    event.preventDefault();
    reported.push(event.error);
  };
  globalThis.addEventListener("error", onError);
  try {
    await using server = new PortServer("127.0.0.1", 0, {
      onConnect: () => {
        throw new Error("callback bug");
      },
    });
    server.poll();
    await using a = await connect("127.0.0.1", server.port);
    await using b = await connect("127.0.0.1", server.port);
    await until(() => server.clients.length === 2);
    await a.send(note(1));
    await b.send(note(2));
    assert.equal((await take(server, 2)).length, 2);
    assert.equal(reported.length, 2);
    assert.match(String(reported[0]), /callback bug/);
  } finally {
    globalThis.removeEventListener("error", onError);
  }
});

netTest(
  "a PortServer passes active sensing on to its reader, as mido does",
  async () => {
    await using server = new PortServer("127.0.0.1", 0);
    await using client = await connect("127.0.0.1", server.port);
    await client.send(message("active_sensing"));
    await client.send(note(1));
    assert.deepEqual(await take(server, 2), [
      message("active_sensing"),
      note(1),
    ]);
  },
);

netTest(
  "a PortServer attached to a hub: clients join it, under its gate, and the hub closes it",
  async () => {
    const refused: string[] = [];
    const hub = new Hub({
      token: "correct-horse-battery",
      onRefuse: (r) => refused.push(r.code),
    });
    const server = new PortServer("127.0.0.1", 0);
    assert.equal(await hub.attach(server), server);
    assert.equal(server.hub, hub);
    assert.deepEqual(hub.transports, [server]);
    const token = "correct-horse-battery";
    const a = await connect("127.0.0.1", server.port, { token });
    const b = await connect("127.0.0.1", server.port, { token });
    await until(() => hub.endpoints.length === 2);
    // The hub relays between them (a PortServer on its own would not).
    await a.send(note(1));
    assert.deepEqual(await take(b, 1), [note(1)]);
    // Its gate applies.
    const stranger = await connect("127.0.0.1", server.port);
    await assert.rejects(stranger.admitted, /no token/);
    assert.deepEqual(refused, ["no-token"]);
    await hub.close();
    assert.ok(server.closed);
    // The hub released a's note, then closed b.
    assert.deepEqual(await drain(b), [
      message("note_off", { note: 1, velocity: 0 }),
    ]);
    await assert.rejects(
      connect("127.0.0.1", server.port),
      Deno.errors.ConnectionRefused,
    );
    await Promise.all([a, b, stranger].map((p) => p.close()));
  },
);

netTest(
  "attaching refuses the hub's options, a server in use, and the old hub option",
  async () => {
    await using hub = new Hub();
    await using withToken = new PortServer("127.0.0.1", 0, {
      token: "correct-horse-battery",
      sysexIn: "drop",
      backlog: 8,
    });
    await assert.rejects(
      withToken.attach(hub),
      (e: unknown) =>
        e instanceof TypeError &&
        e.message ===
          "token, sysexIn are options of the hub when a PortServer is " +
            "attached to one: give them to the Hub",
    );
    await using used = new PortServer("127.0.0.1", 0);
    used.poll();
    await assert.rejects(used.attach(hub), /is in use on its own already/);
    // hub.attach closes a transport that cannot start.
    await assert.rejects(hub.attach(used), /is in use on its own already/);
    assert.ok(used.closed);
    assert.throws(
      // @ts-expect-error: the option is gone
      () => new PortServer("127.0.0.1", 0, { hub }),
      /attach it instead, with await hub.attach\(server\)/,
    );
    // Own options are kept.
    const own = new PortServer("127.0.0.1", 0, {
      backlog: 8,
      queueSize: 16,
      onConnect: () => {},
    });
    await hub.attach(own);
    assert.equal(own.hub, hub);
  },
);

netTest("a dual-stack server names IPv4 peers as IPv4", async () => {
  // An IPv6 socket that takes IPv4 connections, as a server on "" does.
  const refused: string[] = [];
  await using server = new PortServer("::ffff:127.0.0.1", 0, {
    maxClients: 1,
    onRefuse: (peer) => refused.push(peer.hostname),
  });
  assert.equal(server.addr.hostname, "::ffff:127.0.0.1");
  assert.equal(server.name, `127.0.0.1:${server.port}`);
  server.poll();
  await using client = await connect("127.0.0.1", server.port);
  await until(() => server.clients.length === 1);
  assert.equal(server.clients[0].name, `127.0.0.1:${client.localAddr.port}`);
  assert.deepEqual(
    server.hub.endpoints.map((e) => e.name).filter((n) => n !== server.name),
    [`127.0.0.1:${client.localAddr.port}`],
  );
  await using other = await connect("127.0.0.1", server.port);
  await assert.rejects(other.admitted, /server full/);
  assert.deepEqual(refused, ["127.0.0.1"]);
});

pureTest("the start of a stream reads the same however it is cut", () => {
  const text = (s: string) => new TextEncoder().encode(s);
  const requests: [Uint8Array, string][] = [
    [concat([helloLine(["timed", "x=1"], "s3cret"), encode(note(1))]), "hello"],
    [text(`${TOKEN_PREFIX}s3cret\n`), "hello"],
    [text("POST / HTTP/1.1\r\nHost: x\r\n\r\n"), "http"],
    [text("GET /midi HTTP/1.1\r\n"), "http"],
    [new Uint8Array([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]), "tls"],
    [encode(note(2)), "midi"],
    [text("MIDISOCK-WHO\n"), "midi"],
    [text("Mx"), "midi"],
    [new Uint8Array([0x41, 0x42, 0x43, 0x44]), "partial"],
  ];
  for (const [bytes, kind] of requests) {
    const whole = readRequest(bytes);
    assert.equal(whole.kind, kind, new TextDecoder().decode(bytes));
    for (let cut = 0; cut < bytes.length; cut++) {
      const part = readRequest(bytes.subarray(0, cut)).kind;
      assert.ok(part === "partial" || part === kind, `${kind} cut at ${cut}`);
    }
  }
  const hello = readRequest(helloLine(["timed"], "s3cret"));
  assert.ok(hello.kind === "hello");
  assert.deepEqual([hello.features, hello.token], [["timed"], "s3cret"]);
  assert.throws(() => helloLine(["token=x"]), TypeError);
  assert.throws(() => helloLine(["two words"]), TypeError);
  const replies: [Uint8Array, string][] = [
    [concat([okLine(["timed"]), encode(note(3))]), "ok"],
    [refusedLine("wrong-token", "wrong token"), "refused"],
    [text("MIDISOCK-REFUSED an older reason\n"), "refused"],
    [new Uint8Array([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46]), "tls"],
    [encode(note(4)), "midi"],
  ];
  for (const [bytes, kind] of replies) {
    assert.equal(readReply(bytes).kind, kind);
    for (let cut = 0; cut < bytes.length; cut++) {
      const part = readReply(bytes.subarray(0, cut)).kind;
      assert.ok(part === "partial" || part === kind, `${kind} cut at ${cut}`);
    }
  }
  const ok = readReply(concat([okLine(["timed"]), encode(note(3))]));
  assert.ok(ok.kind === "ok");
  assert.deepEqual([ok.features, [...ok.rest]], [["timed"], [
    ...encode(note(3)),
  ]]);
  assert.deepEqual(readReply(refusedLine("full", "server full: 8")), {
    kind: "refused",
    code: "full",
    reason: "server full: 8",
  });
  assert.deepEqual(readReply(text("MIDISOCK-REFUSED no: such code\n")), {
    kind: "refused",
    code: undefined,
    reason: "no: such code",
  });
  // Random bytes: never a throw, never undecided past a line's length.
  const next = random(7);
  for (let i = 0; i < 2000; i++) {
    const bytes = Uint8Array.from(
      { length: Math.floor(next() * 600) },
      () => Math.floor(next() * (next() < 0.5 ? 128 : 256)),
    );
    for (const kind of [readRequest(bytes).kind, readReply(bytes).kind]) {
      assert.ok(kind !== "partial" || bytes.length < MAX_LINE, kind);
    }
  }
});

netTest(
  "a client offers features in its hello; the server takes those it knows",
  async () => {
    await using server = new PortServer("127.0.0.1", 0, {
      features: ["timed"],
    });
    server.poll();
    await using client = await connect("127.0.0.1", server.port, {
      features: ["timed", "something-else"],
    });
    assert.deepEqual(await client.admitted, ["timed"]);
    assert.deepEqual(client.features, ["timed"]);
    await until(() => server.clients.length === 1);
    assert.deepEqual(server.clients[0].features, ["timed"]);
    await using plain = await connect("127.0.0.1", server.port);
    assert.deepEqual(await plain.admitted, []);
    // A hello said late (the server had taken the client in as one that
    // only listens) is answered all the same.
    const raw = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.port,
    });
    await until(() => server.clients.length === 3);
    await raw.write(helloLine(["timed"]));
    const answer = new Uint8Array(64);
    const n = await within(raw.read(answer), 5000, "the answer");
    assert.equal(
      new TextDecoder().decode(answer.subarray(0, n!)),
      "MIDISOCK-OK timed\n",
    );
    raw.close();
    assert.throws(
      () => new PortServer("127.0.0.1", 0, { features: ["two words"] }),
      TypeError,
    );
    await assert.rejects(
      connect("127.0.0.1", server.port, { features: ["token=x"] }),
      TypeError,
    );
  },
);
