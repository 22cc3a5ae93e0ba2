import assert from "node:assert/strict";
import { skip } from "./_skip.ts";
import {
  connect,
  type ConnectOptions,
  Hub,
  type Message,
  message,
  NoteTracker,
  PortClosedError,
  PortServer,
  type PortServerOptions,
  type RefusalCode,
  RefusedError,
  type SocketPort,
  WebServer,
} from "../mod.ts";
import { AddressList } from "../src/hub/mod.ts";
import { TOKEN_PREFIX } from "../src/net/mod.ts";
import { hasOpenssl, OPENSSL_MISSING, testCertificates } from "./_tls.ts";
import { noMido, runPython } from "./_mido.ts";
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
    server.poll();
    const client = await connect("127.0.0.1", server.port);
    for (const msg of [big, small, note(1)]) await client.send(msg);
    assert.deepEqual(await take(server, expected.length), expected);
    const [endpoint] = server.hub.endpoints.filter((e) => e.kind === "client");
    assert.equal(endpoint.stats.dropped, 3 - expected.length, String(policy));
    await client.close();
  }
  assert.throws(
    () => new PortServer("127.0.0.1", 0, { sysexIn: -1 }),
    /sysexIn must be "allow", "drop" or a non-negative integer: got -1/,
  );
});

netTest("sysexOut keeps sysex from a whole server's clients", async () => {
  await using server = new PortServer("127.0.0.1", 0, { sysexOut: 1 });
  server.poll();
  await using client = await connect("127.0.0.1", server.port);
  await until(() => server.clients.length === 1);
  await server.send(message("sysex", { data: [1, 2] }));
  await server.send(message("sysex", { data: [3] }));
  await server.send(note(8));
  assert.deepEqual(await take(client, 2), [
    message("sysex", { data: [3] }),
    note(8),
  ]);
});

netTest(
  "a client over its rate limit loses the excess, not the connection",
  async () => {
    await using server = new PortServer("127.0.0.1", 0, {
      rateLimit: { messages: 1, burst: 10 },
    });
    server.poll();
    const client = await connect("127.0.0.1", server.port);
    await client.sendAll(Array.from({ length: 100 }, (_, i) => note(i)));
    const counted = () =>
      server.hub.endpoints.find((e) => e.kind === "client")?.stats;
    await until(() => {
      const stats = counted();
      return stats !== undefined && stats.received + stats.dropped === 100;
    });
    const passed = counted()!.received;
    assert.ok(passed >= 10 && passed <= 11, `${passed} passed`);
    assert.deepEqual(
      await take(server, passed),
      Array.from({ length: passed }, (_, i) => note(i)),
    );
    // The connection stays.
    assert.equal(server.clients.length, 1);
    assert.equal(client.closed, false);
    await client.close();
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
  ...skip(
    "a TLS server whose certificate or key cannot be used says which, on attach",
    OPENSSL_MISSING,
  ),
  permissions: { ...LOOPBACK, run: true },
  fn: () =>
    within(
      (async () => {
        const one = await testCertificates();
        const other = await testCertificates();
        const cases = [
          [
            { cert: "no certificate", key: one.key },
            "the certificate is not a PEM certificate",
          ],
          [
            { cert: one.cert, key: "no key" },
            "the key is not a PEM private key",
          ],
          [
            { cert: one.cert, key: other.key },
            "the key is not the certificate's private key",
          ],
        ] as const;
        for (const [tls, why] of cases) {
          await using hub = new Hub();
          // A failed attach closes the transport.
          await assert.rejects(
            hub.attach(new PortServer("127.0.0.1", 0, { tls })),
            new TypeError(`cannot serve TLS: ${why}`),
          );
          await assert.rejects(
            hub.attach(new WebServer({ port: 0, tls })),
            new TypeError(`cannot serve TLS: ${why}`),
          );
          // On its own, the server closes and says why to what waits.
          const alone = new PortServer("127.0.0.1", 0, { tls });
          await assert.rejects(
            alone.accept(),
            new TypeError(`cannot serve TLS: ${why}`),
          );
          assert.throws(
            () => alone.accept({ block: false }),
            new TypeError(`cannot serve TLS: ${why}`),
          );
          await alone.close();
        }
        // The right pair serves.
        await using hub = new Hub();
        await hub.attach(new PortServer("127.0.0.1", 0, { tls: one }));
        await hub.attach(new WebServer({ port: 0, tls: one }));
      })(),
      30000,
      "bad TLS material",
    ),
});

Deno.test({
  ...skip(
    "TLS server and client carry messages both ways with a test CA",
    OPENSSL_MISSING,
  ),
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

/** A proxy that holds what the client sends for `delay` ms: a slow link. */
function slowLink(
  port: number,
  delay: number,
): AsyncDisposable & { port: number } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const pipe = async (from: Deno.Conn, to: Deno.Conn, wait: number) => {
    const buffer = new Uint8Array(4096);
    try {
      for (;;) {
        const n = await from.read(buffer);
        if (n === null) break;
        const bytes = buffer.slice(0, n);
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        await to.write(bytes);
      }
      await to.closeWrite();
    } catch {
      // Closed.
    }
  };
  const pipes: Promise<void>[] = [];
  const accepting = (async () => {
    for await (const conn of listener) {
      const upstream = await Deno.connect({ hostname: "127.0.0.1", port });
      conns.push(conn, upstream);
      pipes.push(pipe(conn, upstream, delay), pipe(upstream, conn, 0));
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async [Symbol.asyncDispose]() {
      listener.close();
      await accepting;
      for (const conn of conns) {
        try {
          conn.close();
        } catch {
          // Closed already.
        }
      }
      await Promise.all(pipes);
    },
  };
}

/**
 * What a midisock client learns of a refusal: `connect` rejects with it,
 * or the port does as soon as the server says so (`admitted` rejects,
 * `refused` says it, `send` throws, iteration ends with it as the cause).
 */
async function refusalOf(attempt: Promise<SocketPort>): Promise<RefusedError> {
  let port: SocketPort;
  try {
    port = await attempt;
  } catch (error) {
    assert.ok(error instanceof RefusedError, String(error));
    return error;
  }
  try {
    const refusal = await within(
      port.admitted.then(() => assert.fail("admitted"), (e) => e),
      5000,
      "the answer",
    );
    assert.ok(refusal instanceof RefusedError, String(refusal));
    assert.equal(port.refused, refusal);
    await assert.rejects(
      port.send(note(1)),
      (e: unknown) => e instanceof PortClosedError && e.cause === refusal,
    );
    await assert.rejects(
      port.receive(),
      (e: unknown) => e instanceof PortClosedError && e.cause === refusal,
    );
    return refusal;
  } finally {
    await port.close();
  }
}

/** A mido client's view of a refusal: the raw bytes, and what mido parses. */
const MIDO_REFUSED = `
import sys, mido
from mido.sockets import connect
port = connect("127.0.0.1", int(sys.argv[1]))
if sys.argv[2] == "send":
    port.send(mido.Message("note_on", note=60))
data = b""
while True:
    chunk = port._socket.recv(4096)
    if not chunk:
        break
    data += chunk
parser = mido.Parser()
parser.feed(data)
print(data.decode("ascii").strip())
print(len(list(parser)))
`;

interface RefusalCase {
  /** What is refused. */
  what: string;
  /** The server's options (`tls: true` for the test certificate). */
  server: Omit<PortServerOptions, "tls"> & { tls?: true };
  /** The client's (`tls: true` trusts the test CA). */
  client: Omit<ConnectOptions, "caCerts">;
  /** The code and reason the client learns. */
  code: RefusalCode;
  reason: RegExp;
  /** How mido's client meets it, where it can: sending, or silent. */
  mido?: "send" | "silent";
  /** Fill the server before (for "full"). */
  full?: true;
  /** Through a link that holds the client's bytes this long (ms). */
  slow?: number;
}

const SECRET = "correct-horse-battery";
const REFUSALS: RefusalCase[] = [
  {
    what: "no token",
    server: { token: SECRET },
    client: {},
    code: "no-token",
    reason: /this server wants one/,
    mido: "send",
  },
  {
    what: "a wrong token",
    server: { token: SECRET },
    client: { token: "a-wrong-guess" },
    code: "wrong-token",
    reason: /^wrong token$/,
  },
  {
    what: "an address not on the allow list",
    server: { allow: ["10.0.0.0/8"] },
    client: {},
    code: "not-allowed",
    reason: /allow list/,
    mido: "silent",
  },
  {
    what: "an address not on the allow list, with a token",
    server: { allow: ["10.0.0.0/8"], token: SECRET },
    client: { token: SECRET },
    code: "not-allowed",
    reason: /allow list/,
  },
  {
    what: "a full server",
    server: { maxClients: 1 },
    client: {},
    code: "full",
    reason: /server full \(1 client\)/,
    mido: "silent",
    full: true,
  },
  {
    what: "a full server, with a token",
    server: { maxClients: 1, token: SECRET },
    client: { token: SECRET },
    code: "full",
    reason: /server full/,
    full: true,
  },
  {
    what: "a handshake past its deadline",
    server: { token: SECRET, handshakeTimeout: 300 },
    client: { token: SECRET },
    code: "timeout",
    reason: /no token within 300 ms/,
    mido: "silent",
    slow: 600,
  },
  {
    what: "TLS to a plain port",
    server: {},
    client: { tls: true },
    code: "protocol",
    reason: /does not serve TLS/,
  },
  {
    what: "plain to a TLS port",
    server: { tls: true },
    client: {},
    code: "protocol",
    reason: /serves TLS/,
  },
  {
    what: "TLS from an address not on the allow list",
    server: { tls: true, allow: ["10.0.0.0/8"] },
    client: { tls: true },
    code: "not-allowed",
    reason: /allow list/,
  },
];

Deno.test({
  name: "every refusal reaches a midisock client, and mido's, with its reason",
  permissions: { ...LOOPBACK, run: true },
  fn: () =>
    within(
      (async () => {
        const pem = hasOpenssl ? await testCertificates() : undefined;
        for (const c of REFUSALS) {
          if ((c.server.tls || c.client.tls) && pem === undefined) continue;
          const told: RefusalCode[] = [];
          await using server = new PortServer("127.0.0.1", 0, {
            ...c.server,
            tls: c.server.tls && { cert: pem!.cert, key: pem!.key },
            onRefuse: (_peer, reason) => told.push(reason as RefusalCode),
          });
          server.poll();
          const first = c.full
            ? await connect("127.0.0.1", server.port, c.client)
            : undefined;
          if (first !== undefined) await first.admitted;
          await using link = slowLink(server.port, c.slow ?? 0);
          const port = c.slow === undefined ? server.port : link.port;
          const refusal = await refusalOf(
            connect("127.0.0.1", port, {
              ...c.client,
              caCerts: c.client.tls ? [pem!.ca] : undefined,
            }),
          );
          assert.equal(refusal.code, c.code, c.what);
          assert.match(refusal.reason, c.reason, c.what);
          assert.equal(told.length, 1, `${c.what}: ${told}`);
          if (c.mido !== undefined && !noMido) {
            const [line, parsed] = (await runPython(MIDO_REFUSED, "", [
              String(port),
              c.mido,
            ])).trim().split("\n");
            assert.match(line, new RegExp(`^MIDISOCK-REFUSED ${c.code}: `));
            assert.match(line, c.reason, `mido: ${c.what}`);
            assert.equal(parsed, "0", "mido skips the line");
          }
          await first?.close();
        }
      })(),
      60000,
      "the refusals",
    ),
});
