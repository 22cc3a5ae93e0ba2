import assert from "node:assert/strict";
import {
  AddressList,
  connect,
  type Message,
  message,
  NoteTracker,
  PortServer,
  RefusedError,
  TOKEN_PREFIX,
} from "../mod.ts";
import { hasOpenssl, testCertificates } from "./_tls.ts";
import { pureTest } from "./_util.ts";
import {
  drain,
  LOOPBACK,
  netTest,
  readAll,
  take,
  until,
  within,
} from "./_net.ts";

const note = (n: number, velocity = 64) =>
  message("note_on", { note: n, velocity });

pureTest("address lists match IPv4, IPv6 and mapped addresses by CIDR", () => {
  const list = new AddressList(["127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8"]);
  for (
    const yes of [
      "127.0.0.1",
      "10.1.2.3",
      "::1",
      "fd12::5",
      "::ffff:10.9.9.9",
      "0:0:0:0:0:0:0:1",
    ]
  ) {
    assert.ok(list.includes(yes), yes);
  }
  for (
    const no of [
      "127.0.0.2",
      "11.0.0.1",
      "::2",
      "fe80::1",
      "localhost",
      "",
      "1.2.3",
    ]
  ) {
    assert.ok(!list.includes(no), no);
  }
  assert.ok(new AddressList(["0.0.0.0/0"]).includes("203.0.113.9"));
  assert.ok(!new AddressList(["0.0.0.0/0"]).includes("2001:db8::1"));
  assert.ok(new AddressList(["::/0"]).includes("2001:db8::1"));
  assert.ok(
    AddressList.isLoopback("127.3.2.1") && AddressList.isLoopback("::1"),
  );
  assert.ok(!AddressList.isLoopback("0.0.0.0"));
});

pureTest("a bad address rule is a SyntaxError quoting it", () => {
  for (
    const bad of [
      "10.0.0.0/33",
      "300.1.1.1",
      "1:2:3:4:5:6:7:8:9",
      "::1/129",
      "host.example",
      "1.2.3.4/8/8",
    ]
  ) {
    assert.throws(
      () => new AddressList([bad]),
      (e: unknown) =>
        e instanceof SyntaxError && e.message.includes(JSON.stringify(bad)),
      bad,
    );
  }
});

pureTest("note tracker releases exactly the notes still held", () => {
  const notes = new NoteTracker();
  notes.track(note(60));
  notes.track(note(62));
  notes.track(message("note_on", { channel: 9, note: 36 }));
  notes.track(note(62, 0)); // note_on velocity 0 ends a note
  notes.track(message("note_off", { note: 70 })); // never on
  notes.track(message("note_on", { channel: 3, note: 1 }));
  notes.track(message("control_change", { channel: 3, control: 123 }));
  assert.equal(notes.size, 2);
  assert.deepEqual(notes.release(), [
    message("note_off", { note: 60, velocity: 0 }),
    message("note_off", { channel: 9, note: 36, velocity: 0 }),
  ]);
  assert.deepEqual(notes.release(), []);
  notes.track(note(1));
  notes.track(message("reset"));
  assert.equal(notes.size, 0);
});

netTest(
  "a peer outside the allow list is closed at once and reported",
  async () => {
    const refused: string[] = [];
    await using server = new PortServer("127.0.0.1", 0, {
      allow: ["10.0.0.0/8", "::1"],
      onRefuse: (peer, reason) => refused.push(`${peer.hostname} ${reason}`),
    });
    server.poll();
    const raw = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.port,
    });
    await raw.write(new Uint8Array([0x90, 60, 64]));
    // The peer is told why, in a line MIDI parsers skip, and closed.
    assert.equal(
      new TextDecoder().decode(await readAll(raw)),
      "MIDISOCK-REFUSED not-allowed: address not in the allow list\n",
    );
    assert.deepEqual(refused, ["127.0.0.1 address not in the allow list"]);
    assert.equal(server.clients.length, 0);
    assert.equal(server.poll(), undefined);
  },
);

netTest("a peer inside the allow list is served", async () => {
  await using server = new PortServer("127.0.0.1", 0, {
    allow: ["127.0.0.0/8"],
  });
  await using client = await connect("127.0.0.1", server.port);
  await client.send(note(1));
  assert.deepEqual(await take(server, 1), [note(1)]);
});

netTest(
  "the client limit refuses one more and frees up when a client leaves",
  async () => {
    const refused: string[] = [];
    await using server = new PortServer("127.0.0.1", 0, {
      maxClients: 2,
      onRefuse: (_peer, reason) => refused.push(reason),
    });
    server.poll();
    const a = await connect("127.0.0.1", server.port);
    await using _b = await connect("127.0.0.1", server.port);
    await until(() => server.clients.length === 2);
    await using c = await connect("127.0.0.1", server.port);
    assert.deepEqual(await drain(c), []);
    assert.equal(c.refused?.reason, "server full (2 clients)");
    assert.deepEqual(refused, ["server full (2 clients)"]);
    await a.close();
    await until(() => server.clients.length === 1);
    await a.finished;
    await using d = await connect("127.0.0.1", server.port);
    await d.send(note(4));
    assert.deepEqual(await take(server, 1), [note(4)]);
    assert.equal(refused.length, 1);
    assert.throws(
      () => new PortServer("127.0.0.1", 0, { maxClients: 0 }),
      /maxClients must be a positive integer: got 0/,
    );
  },
);

netTest(
  "a client with the right token is served, bytes after it included",
  async () => {
    await using server = new PortServer("127.0.0.1", 0, { token: "s3cret" });
    await using client = await connect("127.0.0.1", server.port, {
      token: "s3cret",
    });
    await client.send(note(5));
    assert.deepEqual(await take(server, 1), [note(5)]);
    // The header and MIDI bytes in one write, and the header split in pieces.
    const raw = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.port,
    });
    const header = new TextEncoder().encode(`${TOKEN_PREFIX}s3cret\n`);
    await raw.write(header.subarray(0, 5));
    await new Promise((r) => setTimeout(r, 20));
    await raw.write(new Uint8Array([...header.subarray(5), 0x90, 6, 64]));
    assert.deepEqual(await take(server, 1), [note(6)]);
    raw.close();
  },
);

netTest(
  "wrong, missing and late tokens are refused; the server goes on",
  async () => {
    const refused: string[] = [];
    await using server = new PortServer("127.0.0.1", 0, {
      token: "s3cret",
      tokenTimeout: 300,
      onRefuse: (_peer, reason) => refused.push(reason),
    });
    server.poll();
    await assert.rejects(
      connect("127.0.0.1", server.port, { token: "guess" }),
      (e: unknown) => e instanceof RefusedError && e.reason === "wrong token",
    );
    await assert.rejects(
      connect("127.0.0.1", server.port, { token: "s3cret-and-more" }),
      (e: unknown) => e instanceof RefusedError && e.reason === "wrong token",
    );
    // A client without a token is refused at once, and learns why.
    const plain = await connect("127.0.0.1", server.port);
    await assert.rejects(plain.admitted, RefusedError);
    await assert.rejects(plain.send(note(2)), /is closed/);
    assert.deepEqual(await drain(plain), []);
    assert.equal(plain.refused?.code, "no-token");
    // One that says nothing is told why at the deadline, then closed.
    const silent = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.port,
    });
    assert.equal(
      new TextDecoder().decode(await readAll(silent)),
      "MIDISOCK-REFUSED timeout: no token within 300 ms\n",
    );
    assert.deepEqual(refused.sort(), [
      "no token within 300 ms",
      "no token: this server wants one",
      "wrong token",
      "wrong token",
    ]);
    await using good = await connect("127.0.0.1", server.port, {
      token: "s3cret",
    });
    await good.send(note(3));
    assert.deepEqual(await take(server, 1), [note(3)]);
    await plain.close();
    await assert.rejects(
      connect("127.0.0.1", server.port, { token: "has space" }),
      /Token must be/,
    );
  },
);

netTest(
  "a token header is skipped by a server that wants none, as mido would",
  async () => {
    await using server = new PortServer("127.0.0.1", 0);
    await using client = await connect("127.0.0.1", server.port, {
      token: "x",
    });
    await client.send(note(7));
    assert.deepEqual(await take(server, 1), [note(7)]);
  },
);

netTest("sysexIn drops or bounds incoming sysex and counts it", async () => {
  const big = message("sysex", { data: new Uint8Array(100) });
  const small = message("sysex", { data: [1, 2] });
  for (
    const [policy, expected] of [["drop", [note(1)]], [10, [small, note(1)]], [
      "allow",
      [big, small, note(1)],
    ]] as const
  ) {
    await using server = new PortServer("127.0.0.1", 0, { sysexIn: policy });
    const accepting = server.accept();
    const client = await connect("127.0.0.1", server.port);
    await using accepted = await accepting;
    for (const msg of [big, small, note(1)]) await client.send(msg);
    await client.close();
    assert.deepEqual(await drain(accepted), expected, String(policy));
    assert.equal(accepted.dropped, 3 - expected.length);
  }
  assert.throws(
    () => new PortServer("127.0.0.1", 0, { sysexIn: -1 }),
    /sysexIn must be "allow", "drop" or a non-negative integer: got -1/,
  );
});

netTest(
  "sysexOut keeps sysex from clients, for one port and a whole server",
  async () => {
    await using server = new PortServer("127.0.0.1", 0, { sysexOut: "drop" });
    server.poll();
    await using client = await connect("127.0.0.1", server.port, {
      sysexOut: 1,
    });
    await until(() => server.clients.length === 1);
    await server.send(message("sysex", { data: [1] }));
    await server.send(note(8));
    assert.deepEqual(await take(client, 1), [note(8)]);
    await client.send(message("sysex", { data: [1, 2] }));
    await client.sendAll([message("sysex", { data: [3] }), note(9)]);
    assert.deepEqual(await take(server, 2), [
      message("sysex", { data: [3] }),
      note(9),
    ]);
  },
);

netTest(
  "a client over its rate limit loses the excess, not the connection",
  async () => {
    await using server = new PortServer("127.0.0.1", 0, {
      rateLimit: { messages: 1, burst: 10 },
    });
    const accepting = server.accept();
    const client = await connect("127.0.0.1", server.port);
    await using accepted = await accepting;
    await client.sendAll(Array.from({ length: 100 }, (_, i) => note(i)));
    await client.close();
    const got = await drain(accepted);
    assert.ok(got.length >= 10 && got.length <= 11, `${got.length} passed`);
    assert.deepEqual(
      got.slice(0, 10),
      Array.from({ length: 10 }, (_, i) => note(i)),
    );
    assert.equal(accepted.dropped, 100 - got.length);
    assert.throws(
      () => new PortServer("127.0.0.1", 0, { rateLimit: { messages: 0 } }),
      /Rate limit messages must be a positive number: got 0/,
    );
  },
);

netTest(
  "releaseNotes: true releases a leaving client's notes into the input",
  async () => {
    await using server = new PortServer("127.0.0.1", 0, {
      releaseNotes: true,
    });
    const client = await connect("127.0.0.1", server.port);
    for (
      const msg of [
        note(60),
        note(64),
        message("note_off", { note: 60 }),
        note(67),
      ]
    ) {
      await client.send(msg);
    }
    await client.close();
    const got: Message[] = await take(server, 6);
    assert.deepEqual(got.slice(4), [
      message("note_off", { note: 64, velocity: 0 }),
      message("note_off", { note: 67, velocity: 0 }),
    ]);
  },
);

netTest(
  "by default, as in mido, the stream stays as the client sent it",
  async () => {
    await using server = new PortServer("127.0.0.1", 0);
    server.poll();
    const client = await connect("127.0.0.1", server.port);
    await client.send(note(60));
    await client.close();
    assert.deepEqual(await take(server, 1), [note(60)]);
    await until(() => server.clients.length === 0);
    // A note_off for the client that left would come before this sentinel.
    await using other = await connect("127.0.0.1", server.port);
    await other.send(message("clock"));
    assert.deepEqual(await take(server, 1), [message("clock")]);
  },
);

Deno.test({
  name: "TLS server and client carry messages both ways with a test CA",
  ignore: !hasOpenssl,
  permissions: { ...LOOPBACK, run: true },
  fn: () =>
    within(
      (async () => {
        const { ca, cert, key } = await testCertificates();
        await using server = new PortServer("127.0.0.1", 0, {
          tls: { cert, key },
        });
        const accepting = server.accept();
        await using client = await connect("127.0.0.1", server.port, {
          tls: true,
          caCerts: [ca],
        });
        await client.send(note(10));
        await using accepted = await accepting;
        assert.deepEqual(await take(accepted, 1), [note(10)]);
        await accepted.send(message("sysex", { data: [1, 2, 3] }));
        assert.deepEqual(await take(client, 1), [
          message("sysex", { data: [1, 2, 3] }),
        ]);
        // Without the CA the client refuses the server.
        await assert.rejects(
          connect("127.0.0.1", server.port, { tls: true }),
          Error,
        );
        // A plain client gets nothing through and learns why; the server
        // goes on.
        const plain = await connect("127.0.0.1", server.port);
        await plain.send(note(11)).catch(() => {});
        assert.deepEqual(await drain(plain), []);
        assert.match(plain.refused?.reason ?? "", /TLS/);
        await plain.close();
        await client.send(note(12));
        assert.deepEqual(await take(accepted, 1), [note(12)]);
      })(),
      20000,
    ),
});

netTest(
  "closing a server does not wait for clients still owing a token",
  async () => {
    const server = new PortServer("127.0.0.1", 0, {
      token: "s3cret",
      tokenTimeout: 4000,
    });
    const silent = await Deno.connect({
      hostname: "127.0.0.1",
      port: server.port,
    });
    await until(() => server.hub.gate.pending === 1, 5000, "in the handshake");
    const started = Date.now();
    await server.close();
    assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
    assert.deepEqual(await readAll(silent), new Uint8Array(0));
  },
);
