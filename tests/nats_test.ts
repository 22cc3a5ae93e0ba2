// Hubs federated over NATS against a real nats-server (Debian's), started
// on a free loopback port by each test: links in this process, and hub
// processes (`serve --nats URL --room NAME`) with TCP clients.

import { OPENSSL_MISSING } from "./_tls.ts";
import { skip } from "./_skip.ts";
import assert from "node:assert/strict";
import {
  connect,
  formatMessage,
  Hub,
  type Message,
  message,
  NatsLink,
  type NatsLinkOptions,
  PortClosedError,
  PortServer,
} from "../mod.ts";
import {
  formatNatsLinkEvent,
  NatsLinkError,
  type NatsLinkEvent,
} from "../src/nats/mod.ts";
import {
  encodeBeat,
  encodeBye,
  encodeMidiFrame,
  nameBytes,
} from "../src/nats/_frame.ts";
import { boundedTest, LOOPBACK, take, until, within } from "./_net.ts";
import {
  HubProcess,
  link,
  NATS_MISSING,
  NatsServer,
  RawNatsClient,
  removeDirOf,
  tempFile,
} from "./_nats.ts";
import { between, random } from "./_util.ts";
import { nkeys } from "npm:@nats-io/transport-node@3.4.0";
import { noMido, runPython } from "./_mido.ts";

const note = (n: number, velocity = 64) =>
  message("note_on", { note: n, velocity });
const off = (n: number) => message("note_off", { note: n, velocity: 0 });

/** Permissions of these tests: loopback, nats-server and deno, reading files. */
const PERMISSIONS: Deno.PermissionOptionsObject = {
  ...LOOPBACK,
  run: true,
  read: true,
  env: ["MIDISOCK_REQUIRE_NATS", "MIDISOCK_REQUIRE_MIDO", "MIDISOCK_PYTHON"],
};

function natsTest(name: string, fn: () => Promise<void>, ms = 30000): void {
  boundedTest(name, fn, {
    ignore: NATS_MISSING,
    permissions: PERMISSIONS,
    ms: ms,
  });
}

const types = (events: NatsLinkEvent[]) => events.map((e) => e.type);

/**
 * A mido client: connects, says hello, prints the next N messages in mido's
 * text form. mido 1.2.10's SocketPort can strand the last message until
 * more bytes come, so it reads the socket with mido's own Parser.
 */
const MIDO_CLIENT = `
import sys, socket, mido
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
sock.sendall(bytes(mido.Message("song_select", song=5).bytes()))
parser = mido.Parser()
got = []
while len(got) < int(sys.argv[2]):
    data = sock.recv(65536)
    if not data:
        break
    parser.feed(data)
    got.extend(parser)
for msg in got:
    print(msg)
`;

/** The n-th of a numbered sequence of distinct notes. */
function nth(i: number): Message {
  return message("note_on", {
    channel: Math.floor(i / (128 * 127)) % 16,
    note: i % 128,
    velocity: 1 + Math.floor(i / 128) % 127,
  });
}

natsTest(
  "1000 messages from a client on hub A reach clients on hubs B and C in order, none back on A",
  async () => {
    await using nats = await NatsServer.start();
    await using a = new HubProcess(nats.url, "r1", "A");
    await using b = new HubProcess(nats.url, "r1", "B");
    await using c = new HubProcess(nats.url, "r1", "C");
    const [a1, a2, b1, c1] = await Promise.all([
      a.client(),
      a.client(),
      b.client(),
      c.client(),
    ]);
    await using _clients = {
      [Symbol.asyncDispose]: () =>
        Promise.all([a1, a2, b1, c1].map((p) => p.close())).then(() => {}),
    };
    // Every hub sees the two others before traffic starts.
    await until(
      () =>
        [a, b, c].every((h) =>
          h.lines.filter((l) => /joined/.test(l)).length === 2
        ),
      10000,
      "three hubs joined",
    );
    // A mido client on C too, where mido is installed: it says hello (a
    // song_select) once connected, which every other client hears.
    const hello = message("song_select", { song: 5 });
    let onMido: Promise<string> | undefined;
    if (!noMido) {
      onMido = runPython(MIDO_CLIENT, "", [
        String((await c.ready).port),
        "1000",
      ]);
      for (const client of [a1, a2, b1, c1]) {
        assert.deepEqual(await take(client, 1, 10000), [hello]);
      }
    }
    const sent = Array.from({ length: 1000 }, (_, i) => nth(i));
    for (const msg of sent) await a1.send(msg);
    const [onB, onC, onA2] = await Promise.all([
      take(b1, 1000, 10000),
      take(c1, 1000, 10000),
      take(a2, 1000, 10000),
    ]);
    assert.deepEqual(onB, sent);
    assert.deepEqual(onC, sent);
    assert.deepEqual(onA2, sent, "A's other client: each once, from A itself");
    if (onMido !== undefined) {
      assert.deepEqual(
        (await within(onMido, 10000, "the mido client")).trim().split("\n"),
        sent.map(formatMessage),
      );
    }
    // Sentinel: the next message at A's clients is B's, nothing of A's own.
    await b1.send(message("stop"));
    assert.deepEqual(await take(a1, 1), [message("stop")]);
    assert.deepEqual(await take(a2, 1), [message("stop")]);
    assert.equal(a2.poll(), undefined);
  },
);

natsTest(
  "a hub killed with SIGKILL while notes are held: the other hub's client gets note_off for each within 1 s",
  async () => {
    await using nats = await NatsServer.start();
    await using a = new HubProcess(nats.url, "r2", "A");
    await using b = new HubProcess(nats.url, "r2", "B");
    const a1 = await a.client();
    const b1 = await b.client();
    try {
      await until(() => b.lines.some((l) => /"A".*joined/.test(l)), 10000);
      const held = [60, 64, 67, 72];
      for (const n of held) await a1.send(note(n));
      await a1.send(note(64, 0)); // released by A itself
      assert.deepEqual(
        await take(b1, 5, 5000),
        [...held.map((n) => note(n)), note(64, 0)],
      );
      const killed = performance.now();
      a.kill("SIGKILL");
      const offs = await take(b1, 3, 3000);
      const after = performance.now() - killed;
      assert.deepEqual(
        offs,
        [60, 67, 72].map((n) => message("note_off", { note: n, velocity: 0 })),
      );
      assert.ok(
        after < 1000,
        `note_off came ${after.toFixed(0)} ms after the kill`,
      );
      await until(() =>
        b.lines.some((l) => /"A".*left.*heartbeats; 3 notes ended/.test(l))
      );
    } finally {
      await a1.close();
      await b1.close();
    }
  },
);

natsTest(
  "nats-server restarted mid-run: links say down and up once each, rejoin, and traffic resumes",
  async () => {
    await using nats = await NatsServer.start();
    const { link: a, events: aEvents } = await link(nats.url, { name: "A" });
    const { link: b, events: bEvents } = await link(nats.url, { name: "B" });
    try {
      await until(() => a.remotes.length === 1 && b.remotes.length === 1);
      await a.send(note(1));
      assert.deepEqual(await take(b, 1), [note(1)]);
      await nats.stop();
      await until(() => !a.connected && !b.connected, 10000, "links down");
      // Meanwhile each hub goes on; what it sends is dropped and counted.
      await a.send(note(2));
      assert.equal(a.stats.unsent, 1);
      await until(
        () => a.remotes.length === 0 && b.remotes.length === 0,
        5000,
        "each timed out at the other",
      );
      // B ended the note A had left on.
      const off = message("note_off", { note: 1, velocity: 0 });
      assert.deepEqual(await take(b, 1), [off]);
      await nats.restart();
      await until(() => a.connected && b.connected, 10000, "links up");
      await until(
        () => a.remotes.length === 1 && b.remotes.length === 1,
        5000,
        "hubs rejoined",
      );
      await a.send(note(3));
      await b.send(note(4));
      // Back, A first ends what it had published as on (its note_off may
      // have been lost while down; B hears it if B was back first), then
      // goes on.
      const atB: Message[] = [];
      while (atB.at(-1)?.type !== "note_on") atB.push(...await take(b, 1));
      assert.deepEqual(atB.at(-1), note(3));
      assert.ok(
        atB.slice(0, -1).every((m) => m.type === "note_off" && m.note === 1),
      );
      assert.deepEqual(await take(a, 1), [note(4)]);
      for (const events of [aEvents, bEvents]) {
        assert.deepEqual(
          types(events).filter((t) => t !== "joined" && t !== "left"),
          ["disconnected", "reconnected"],
        );
        assert.deepEqual(
          types(events).filter((t) => t === "joined" || t === "left"),
          ["joined", "left", "joined"],
        );
      }
    } finally {
      await a.close();
      await b.close();
    }
  },
);

natsTest(
  "a link with wrong credentials fails at once, in one line",
  async () => {
    await using nats = await NatsServer.start([
      "--user",
      "hub",
      "--pass",
      "right",
    ]);
    const url = `nats://hub:wrong@127.0.0.1:${nats.port}`;
    await assert.rejects(
      NatsLink.connect(url, { room: "r" }),
      (error: unknown) => {
        assert.ok(error instanceof NatsLinkError);
        assert.equal(error.name, "NatsLinkError");
        assert.ok(error.cause instanceof Error);
        assert.match(
          error.message,
          /^Cannot join NATS at nats:\/\/hub:\*\*\*@127\.0\.0\.1:\d+: the server refused the credentials/,
        );
        assert.doesNotMatch(error.message, /\n|wrong/);
        return true;
      },
    );
    // The right ones work, in the URL or as options.
    const good = await NatsLink.connect(
      `nats://hub:right@127.0.0.1:${nats.port}`,
      {
        room: "r",
      },
    );
    await good.close();
    const alsoGood = await NatsLink.connect(nats.url, {
      room: "r",
      user: "hub",
      pass: "right",
    });
    await alsoGood.close();
    // A hub process exits 1 with that one line.
    await using hub = new HubProcess(url, "r", "A");
    const status = await within(hub.exited, 15000, "the hub process exiting");
    assert.equal(status.code, 1);
    assert.equal(hub.stderr.trim().split("\n").length, 1, hub.stderr);
    assert.match(
      hub.stderr,
      /^midisock serve: Cannot join NATS at .*refused the credentials/,
    );
  },
);

natsTest(
  "credentials refused on reconnecting: the link says failed once and closes",
  async () => {
    await using nats = await NatsServer.start([
      "--user",
      "hub",
      "--pass",
      "one",
    ]);
    const { link: a, events } = await link(
      `nats://hub:one@127.0.0.1:${nats.port}`,
    );
    try {
      const reading = Array.fromAsync(a);
      await nats.stop();
      await until(() => !a.connected, 10000, "link down");
      await nats.restart(["--user", "hub", "--pass", "two"]);
      await until(() => a.closed, 15000, "the link giving up");
      assert.deepEqual(types(events), ["disconnected", "failed"]);
      const failed = events[1];
      assert.ok(failed.type === "failed");
      assert.match(formatNatsLinkEvent(failed), /^NATS link closed: /);
      assert.deepEqual(await reading, []);
      await assert.rejects(a.send(note(1)), PortClosedError);
      await assert.rejects(a.receive(), PortClosedError);
    } finally {
      await a.close();
    }
  },
);

natsTest(
  "a user not allowed on the room's subjects fails at once, in one line",
  async () => {
    const conf = await tempFile(
      "nats.conf",
      `authorization {
  users = [
    { user: "nosub", password: "p", permissions: { publish: ">", subscribe: { deny: "midisock.>" } } }
    { user: "nopub", password: "p", permissions: { publish: { deny: "midisock.>" }, subscribe: ">" } }
    { user: "ok", password: "p" }
  ]
}
`,
    );
    try {
      await using nats = await NatsServer.start(["-c", conf]);
      for (const user of ["nosub", "nopub"]) {
        await assert.rejects(
          NatsLink.connect(`nats://${user}:p@127.0.0.1:${nats.port}`, {
            room: "r",
          }),
          (error: unknown) =>
            error instanceof NatsLinkError &&
            /: the server does not allow this user on the room's subjects \(.*midisock\.(room|presence)\.r/
              .test(error.message) &&
            !error.message.includes("\n"),
          user,
        );
      }
      const ok = await NatsLink.connect(`nats://ok:p@127.0.0.1:${nats.port}`, {
        room: "r",
      });
      await ok.close();
    } finally {
      await removeDirOf(conf);
    }
  },
);

/** A NATS JWT: header, claims and an ed25519 signature, base64url. */
function jwt(
  signer: nkeys.KeyPair,
  sub: string,
  nats: Record<string, unknown>,
): string {
  const part = (value: unknown) =>
    btoa(JSON.stringify(value)).replace(/\+/g, "-").replace(/\//g, "_")
      .replace(/=+$/, "");
  const head = `${part({ typ: "JWT", alg: "ed25519-nkey" })}.${
    part({
      jti: crypto.randomUUID().replaceAll("-", "").toUpperCase(),
      iat: Math.floor(Date.now() / 1000),
      iss: signer.getPublicKey(),
      name: sub.slice(0, 8),
      sub,
      nats: { ...nats, version: 2 },
    })
  }`;
  const signature = signer.sign(new TextEncoder().encode(head));
  return `${head}.${
    btoa(String.fromCharCode(...signature)).replace(/\+/g, "-")
      .replace(/\//g, "_").replace(/=+$/, "")
  }`;
}

/** An operator-mode server config trusting one account, and a user's creds file for it. */
function operatorSetup(): {
  conf: string;
  creds: string;
  strangerCreds: string;
} {
  const operator = nkeys.createOperator();
  const account = nkeys.createAccount();
  const unlimited = { subs: -1, data: -1, payload: -1, conn: -1 };
  const creds = (signer: nkeys.KeyPair) => {
    const user = nkeys.createUser();
    const token = jwt(signer, user.getPublicKey(), {
      type: "user",
      pub: {},
      sub: {},
      ...unlimited,
    });
    return `-----BEGIN NATS USER JWT-----\n${token}\n------END NATS USER JWT------\n\n` +
      `-----BEGIN USER NKEY SEED-----\n${
        new TextDecoder().decode(user.getSeed())
      }\n------END USER NKEY SEED------\n`;
  };
  const conf = `operator: ${
    jwt(operator, operator.getPublicKey(), { type: "operator" })
  }
resolver: MEMORY
resolver_preload: {
  ${account.getPublicKey()}: ${
    jwt(operator, account.getPublicKey(), {
      type: "account",
      limits: { ...unlimited, imports: -1, exports: -1, wildcards: true },
    })
  }
}
`;
  return {
    conf,
    creds: creds(account),
    strangerCreds: creds(nkeys.createAccount()),
  };
}

natsTest(
  "a creds file lets a link in; none, a stranger's, or an unreadable one is one clear error",
  async () => {
    const setup = operatorSetup();
    const conf = await tempFile("nats.conf", setup.conf);
    const creds = await tempFile("user.creds", setup.creds);
    const stranger = await tempFile("stranger.creds", setup.strangerCreds);
    try {
      await using nats = await NatsServer.start(["-c", conf]);
      const { link: a } = await link(nats.url, { credsFile: creds });
      const { link: b } = await link(nats.url, { credsFile: creds });
      try {
        await until(() => b.remotes.length === 1);
        await a.send(note(8));
        assert.deepEqual(await take(b, 1), [note(8)]);
      } finally {
        await a.close();
        await b.close();
      }
      for (const credsFile of [undefined, stranger]) {
        await assert.rejects(
          NatsLink.connect(nats.url, { room: "r", credsFile }),
          /^NatsLinkError: Cannot join NATS at nats:\/\/127\.0\.0\.1:\d+: the server refused the credentials/,
          String(credsFile),
        );
      }
      await assert.rejects(
        NatsLink.connect(nats.url, {
          room: "r",
          credsFile: `${creds}.missing`,
        }),
        /: cannot read the creds file .*user\.creds\.missing: /,
      );
    } finally {
      for (const file of [conf, creds, stranger]) await removeDirOf(file);
    }
  },
);

natsTest(
  "batches and a long sysex fit the server's max_payload, a longer sysex is counted unsent, a malformed message is refused",
  async () => {
    const conf = await tempFile("nats.conf", "max_payload: 65536\n");
    await using nats = await NatsServer.start(["-c", conf]);
    // Batches larger than the server takes are cut to its max_payload.
    const { link: a } = await link(nats.url, { maxFrameBytes: 1 << 20 });
    const { link: b } = await link(nats.url);
    try {
      await until(() => b.remotes.length === 1);
      const burst = Array.from({ length: 30_000 }, (_, i) => nth(i));
      await a.sendAll(burst);
      assert.deepEqual(await take(b, burst.length), burst);
      assert.ok(a.stats.framesSent >= 2, `${a.stats.framesSent} frames`);
      const long = message("sysex", { data: new Array(20_000).fill(0x42) });
      const tooLong = message("sysex", { data: new Array(70_000).fill(1) });
      await a.sendAll([note(1), long, note(2)]);
      await a.send(tooLong);
      await a.send(note(3));
      const got = await take(b, 4);
      assert.deepEqual(got, [note(1), long, note(2), note(3)]);
      assert.equal(a.stats.unsent, 1);
      assert.equal(b.stats.gaps, 0);
      await assert.rejects(
        a.send({ type: "note_on", channel: 16, note: 1, velocity: 1, time: 0 }),
        RangeError,
      );
      await assert.rejects(
        a.send({ type: "bogus" } as unknown as Message),
        TypeError,
      );
    } finally {
      await a.close();
      await b.close();
      await removeDirOf(conf);
    }
  },
);

natsTest(
  "a token in the URL is the token, and a wrong one is refused",
  async () => {
    await using nats = await NatsServer.start(["--auth", "s3cret"]);
    const good = await NatsLink.connect(
      `nats://s3cret@127.0.0.1:${nats.port}`,
      {
        room: "r",
      },
    );
    assert.equal(good.name, `nats://***@127.0.0.1:${nats.port}/r`);
    assert.equal(good.url, `nats://***@127.0.0.1:${nats.port}`);
    await good.close();
    await assert.rejects(
      NatsLink.connect(`nats://nope@127.0.0.1:${nats.port}`, { room: "r" }),
      /refused the credentials/,
    );
  },
);

natsTest("no server at the URL is one clear error", async () => {
  await using nats = await NatsServer.start();
  const url = nats.url;
  await nats.stop();
  await assert.rejects(
    NatsLink.connect(url, { room: "r" }),
    (error: unknown) =>
      error instanceof NatsLinkError &&
      /^Cannot join NATS at nats:\/\/127\.0\.0\.1:\d+: /.test(error.message) &&
      !error.message.includes("\n"),
  );
});

natsTest(
  "foreign and malformed payloads on the room's subjects are dropped and counted, never delivered in part",
  async () => {
    await using nats = await NatsServer.start();
    const { link: b } = await link(nats.url);
    await using raw = await RawNatsClient.connect(nats.port);
    try {
      const origin = new Uint8Array([7, 7, 7, 7, 7, 7, 7, 7]);
      const valid = encodeMidiFrame(origin, 0, [note(60), note(61), note(62)]);
      const next = random(99);
      const bad: Uint8Array[] = [];
      for (let i = 0; i < 50; i++) {
        bad.push(
          Uint8Array.from(
            { length: between(next, 0, 40) },
            () => between(next, 0, 255),
          ),
        );
      }
      for (let cut = 0; cut < valid.length; cut++) {
        bad.push(valid.slice(0, cut));
      }
      bad.push(new TextEncoder().encode("hello, room"));
      const wrongVersion = valid.slice();
      wrongVersion[2] = 2;
      bad.push(wrongVersion);
      for (const payload of bad) {
        await raw.publish("midisock.room.test.x", payload);
      }
      // A MIDI frame on the presence subject and a beat on the room's.
      await raw.publish("midisock.presence.test.x", valid);
      await raw.publish(
        "midisock.room.test.x",
        encodeBeat(origin, 0, 250, nameBytes("x")),
      );
      // The sentinel: a valid frame, after which everything bad was read.
      await raw.publish("midisock.room.test.x", valid);
      await raw.flush();
      assert.deepEqual(await take(b, 3), [note(60), note(61), note(62)]);
      const expected = bad.length + 2;
      await until(() => b.dropped === expected, 5000, `${expected} dropped`);
      assert.equal(b.stats.dropped, expected);
      assert.equal(b.stats.received, 3);
      assert.equal(b.poll(), undefined);
      // A goodbye of that hub ends its notes.
      await raw.publish("midisock.presence.test.x", encodeBye(origin, 1));
      assert.deepEqual(
        await take(b, 3),
        [60, 61, 62].map((n) => message("note_off", { note: n, velocity: 0 })),
      );
    } finally {
      await b.close();
    }
  },
);

natsTest(
  "a hub that leaves cleanly says goodbye: the others end its notes at once",
  async () => {
    await using nats = await NatsServer.start();
    const { link: a } = await link(nats.url, { name: "A", heartbeat: 5000 });
    const { link: b, events } = await link(nats.url, { name: "B" });
    try {
      await until(() => b.remotes.length === 1);
      assert.deepEqual(b.remotes.map((h) => [h.id, h.name]), [[a.id, "A"]]);
      await a.sendAll([note(60), note(62)]);
      assert.deepEqual(await take(b, 2), [note(60), note(62)]);
      const closing = performance.now();
      await a.close();
      const offs = await take(b, 2, 2000);
      const after = performance.now() - closing;
      assert.deepEqual(offs.map((m) => m.type), ["note_off", "note_off"]);
      // A's heartbeat is 5 s: only the goodbye can explain this.
      assert.ok(after < 1000, `${after} ms`);
      const left = events.find((e) => e.type === "left");
      assert.ok(left?.type === "left");
      assert.deepEqual(
        [left.hub.id, left.hub.name, left.reason, left.released],
        [a.id, "A", "goodbye", 2],
      );
      assert.deepEqual(b.remotes, []);
      assert.equal(b.stats.released, 2);
    } finally {
      await a.close();
      await b.close();
    }
  },
);

natsTest(
  "a burst is packed into few NATS messages, an idle message goes alone at once",
  async () => {
    await using nats = await NatsServer.start();
    const { link: a } = await link(nats.url);
    const { link: b } = await link(nats.url);
    try {
      await until(() => b.remotes.length === 1);
      const burst = Array.from({ length: 3000 }, (_, i) => nth(i));
      for (const msg of burst) a.send(msg);
      assert.deepEqual(await take(b, 3000), burst);
      assert.ok(a.stats.framesSent <= 5, `${a.stats.framesSent} frames`);
      // Messages sent one after another, each awaited, as a hub relays them.
      const before = a.stats.framesSent;
      for (const msg of burst.slice(0, 500)) await a.send(msg);
      assert.deepEqual(await take(b, 500), burst.slice(0, 500));
      assert.ok(
        a.stats.framesSent - before <= 5,
        `${a.stats.framesSent - before} frames`,
      );
      // Idle: one message, one frame, no waiting for company.
      const idle = a.stats.framesSent;
      await a.send(note(1));
      assert.deepEqual(await take(b, 1, 1000), [note(1)]);
      assert.equal(a.stats.framesSent, idle + 1);
      assert.equal(b.stats.gaps, 0);
    } finally {
      await a.close();
      await b.close();
    }
  },
);

natsTest(
  "links in other rooms and with other subject prefixes hear nothing",
  async () => {
    await using nats = await NatsServer.start();
    const { link: a } = await link(nats.url, { room: "one" });
    const { link: b } = await link(nats.url, { room: "two" });
    const { link: c } = await link(nats.url, {
      room: "one",
      subjectPrefix: "other",
    });
    const { link: d } = await link(nats.url, { room: "one" });
    try {
      await until(() => d.remotes.length === 1);
      await a.send(note(5));
      assert.deepEqual(await take(d, 1), [note(5)]);
      // Sentinels in b's and c's own rooms come first and alone.
      const { link: b2 } = await link(nats.url, { room: "two" });
      const { link: c2 } = await link(nats.url, {
        room: "one",
        subjectPrefix: "other",
      });
      await until(() => b.remotes.length === 1 && c.remotes.length === 1);
      await b2.send(note(6));
      await c2.send(note(7));
      assert.deepEqual(await take(b, 1), [note(6)]);
      assert.deepEqual(await take(c, 1), [note(7)]);
      await b2.close();
      await c2.close();
      assert.equal(a.remotes.length, 1);
    } finally {
      for (const l of [a, b, c, d]) await l.close();
    }
  },
);

natsTest(
  "close is idempotent, ends input quietly, and send then throws",
  async () => {
    await using nats = await NatsServer.start();
    const { link: a } = await link(nats.url);
    const reading = Array.fromAsync(a);
    assert.equal(a.closed, false);
    assert.equal(a.connected, true);
    await Promise.all([a.close(), a.close()]);
    await a[Symbol.asyncDispose]();
    assert.equal(a.closed, true);
    assert.equal(a.connected, false);
    assert.deepEqual(await reading, []);
    await assert.rejects(a.send(note(1)), PortClosedError);
    await assert.rejects(a.receive(), PortClosedError);
    await a.reset();
    await a.panic();
  },
);

natsTest(
  "hub.attach(new NatsLink(...)) joins the room as the hub's link endpoint, and hub.close() leaves it",
  async () => {
    await using nats = await NatsServer.start();
    const { link: b, events } = await link(nats.url, { name: "B" });
    try {
      const hub = new Hub();
      const a = new NatsLink(nats.url, {
        room: "test",
        name: "A",
        id: "hub-a",
      });
      assert.equal(a.connected, false);
      assert.equal(await hub.attach(a), a);
      assert.ok(a.connected);
      assert.deepEqual(hub.transports, [a]);
      assert.deepEqual(
        hub.endpoints.map((e) => [e.kind, e.transport, e.name, e.port === a]),
        [["link", "nats", "room test", true]],
      );
      assert.deepEqual(a.subjects, [
        "midisock.room.test.hub-a",
        "midisock.presence.test.hub-a",
      ]);
      await until(() => b.remotes.length === 1);
      assert.deepEqual(b.remotes.map((h) => [h.id, h.name]), [["hub-a", "A"]]);
      // Both ways through the hub: a local client of the hub plays, B hears;
      // B plays, the client hears.
      await using server = await hub.attach(new PortServer("127.0.0.1", 0));
      const client = await connect("127.0.0.1", server.port);
      await until(() => hub.endpoints.length === 2);
      await client.send(note(60));
      assert.deepEqual(await take(b, 1), [note(60)]);
      await b.send(note(61));
      assert.deepEqual(await take(client, 1), [note(61)]);
      // Closing the hub ends the client's note at B, says goodbye, closes
      // the link.
      await hub.close();
      assert.ok(a.closed);
      assert.deepEqual(await take(b, 1), [
        message("note_off", { note: 60, velocity: 0 }),
      ]);
      await until(() => events.some((e) => e.type === "left"));
      const left = events.find((e) => e.type === "left");
      assert.ok(left?.type === "left" && left.reason === "goodbye");
    } finally {
      await b.close();
    }
  },
);

natsTest(
  "a link that cannot join is closed, and hub.attach throws its error with nothing added",
  async () => {
    await using nats = await NatsServer.start(["--user", "u", "--pass", "p"]);
    await using hub = new Hub();
    const link = new NatsLink(`nats://u:wrong@127.0.0.1:${nats.port}`, {
      room: "r",
    });
    await assert.rejects(hub.attach(link), NatsLinkError);
    assert.ok(link.closed);
    assert.deepEqual(hub.endpoints, []);
    assert.deepEqual(hub.transports, []);
    // A link closed before it is attached is not connected then.
    const early = new NatsLink(nats.url, { room: "r", user: "u", pass: "p" });
    await early.close();
    await assert.rejects(hub.attach(early), PortClosedError);
    assert.equal(early.connected, false);
  },
);

natsTest(
  "serve names its hub after the host when it may read the host name, else hub- and its id",
  async () => {
    await using nats = await NatsServer.start();
    const host = new TextDecoder().decode(
      (await new Deno.Command("hostname", { stdout: "piped" }).output())
        .stdout,
    ).trim();
    await using named = new HubProcess(nats.url, "r", undefined, [], [
      "--allow-sys=hostname",
    ]);
    await using unnamed = new HubProcess(nats.url, "r", undefined, [
      "--nats-id",
      "studio-2",
    ]);
    await using anonymous = new HubProcess(nats.url, "r", undefined);
    const up = async (hub: HubProcess) => {
      await within(hub.ready, 15000, "a hub process starting");
      return hub.lines.find((l) => l.startsWith("NATS link up"))!;
    };
    assert.match(
      await up(named),
      new RegExp(`as hub "${host.replace(/[.]/g, "\\.")}" \\([0-9a-f]{16}\\)$`),
    );
    assert.match(await up(unnamed), /as hub "studio-2" \(studio-2\)$/);
    const line = await up(anonymous);
    const [, prefix, id] = line.match(
      /as hub "hub-([0-9a-f]{6})" \(([0-9a-f]{16})\)$/,
    )!;
    assert.equal(prefix, id.slice(0, 6));
  },
);

natsTest(
  "a hub restarted under the same id: the others end its old notes as soon as the new one speaks",
  async () => {
    await using nats = await NatsServer.start();
    // B would wait 10 s for a silent hub: only the restart explains an end
    // sooner.
    const { link: b, events } = await link(nats.url, {
      name: "B",
      missedBeats: 40,
    });
    try {
      const args = ["--nats-id", "stage-left"];
      await using first = new HubProcess(nats.url, "test", "A", args);
      const a1 = await first.client();
      await until(() => b.remotes.length === 1, 10000, "A joined");
      await a1.send(note(60));
      await a1.send(note(64));
      assert.deepEqual(await take(b, 2), [note(60), note(64)]);
      await first[Symbol.asyncDispose](); // SIGKILL: no goodbye
      await a1.close();
      const started = performance.now();
      await using second = new HubProcess(nats.url, "test", "A", args);
      const offs = await take(b, 2, 8000);
      assert.deepEqual(offs, [off(60), off(64)]);
      assert.ok(performance.now() - started < 8000);
      await until(() => b.remotes.length === 1, 5000, "A back");
      const a2 = await second.client();
      await a2.send(note(67));
      assert.deepEqual(await take(b, 1), [note(67)]);
      await a2.close();
      assert.deepEqual(
        events.filter((e) => e.type === "left").map((e) =>
          formatNatsLinkEvent(e)
        ),
        ['hub "A" (stage-left) left: restarted; 2 notes ended'],
      );
    } finally {
      await b.close();
    }
  },
);

natsTest(
  "two links with the same id: each says so once and delivers nothing of the other",
  async () => {
    await using nats = await NatsServer.start();
    const { link: a, events: aEvents } = await link(nats.url, { id: "twin" });
    const { link: b, events: bEvents } = await link(nats.url, { id: "twin" });
    const { link: c } = await link(nats.url, { name: "C" });
    try {
      await until(() => c.remotes.length === 1, 5000, "C sees one twin");
      await a.send(note(1));
      await b.send(note(2));
      await until(
        () =>
          aEvents.some((e) => e.type === "conflict") &&
          bEvents.some((e) => e.type === "conflict"),
        5000,
        "each twin told",
      );
      // Sentinel from C: the twins heard C, and nothing of each other.
      await c.send(note(3));
      assert.deepEqual(await take(a, 1), [note(3)]);
      assert.deepEqual(await take(b, 1), [note(3)]);
      for (const events of [aEvents, bEvents]) {
        const conflicts = events.filter((e) => e.type === "conflict");
        assert.equal(conflicts.length, 1);
        assert.equal(
          formatNatsLinkEvent(conflicts[0], { room: "test" }),
          "another hub publishes under this hub's id twin in room test: give each hub its own",
        );
      }
    } finally {
      for (const l of [a, b, c]) await l.close();
    }
  },
);

natsTest("reset and panic reach the other hubs as mido's sets", async () => {
  await using nats = await NatsServer.start();
  const { link: a } = await link(nats.url);
  const { link: b } = await link(nats.url);
  try {
    await until(() => b.remotes.length === 1);
    await a.reset();
    await a.panic();
    const got = await take(b, 48);
    assert.deepEqual(
      got.map((m) => m.type === "control_change" ? m.control : -1).slice(0, 2),
      [123, 121],
    );
    assert.deepEqual(
      got.slice(32).map((m) => (m as { control: number }).control),
      new Array(16).fill(120),
    );
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test({
  name: "bad link options are refused before connecting",
  permissions: "none",
  fn: async () => {
    const url = "nats://127.0.0.1:1";
    const cases: [unknown, RegExp, ErrorConstructor][] = [
      [
        { room: "a.b" },
        /room must be 1-64 letters, digits, _ or -: got "a\.b"/,
        RangeError,
      ],
      [{ room: "" }, /room must be/, RangeError],
      [{}, /room must be .*got undefined/, TypeError],
      [
        { room: "r", heartbeat: 5 },
        /heartbeat must be an integer in 10\.\.60000: got 5/,
        RangeError,
      ],
      [{ room: "r", missedBeats: 0 }, /missedBeats/, RangeError],
      [{ room: "r", subjectPrefix: "a>b" }, /subjectPrefix/, RangeError],
      [
        { room: "r", tls: { certFile: "c.pem" } },
        /certFile and tls.keyFile go together/,
        TypeError,
      ],
      [{ room: "r", onEvent: 5 }, /onEvent must be a function/, TypeError],
      [
        { room: "r", id: "a.b" },
        /id must be 1-64 letters, digits, _ or -: got "a\.b"/,
        RangeError,
      ],
      [{ room: "r", id: 7 }, /id must be .*got 7/, TypeError],
      [
        { room: "r", maxRemotes: 0 },
        /maxRemotes must be an integer in 1\.\.65536: got 0/,
        RangeError,
      ],
    ];
    for (const [options, pattern, type] of cases) {
      // At once, by the constructor, and through connect.
      assert.throws(
        () => new NatsLink(url, options as NatsLinkOptions),
        (error: unknown) =>
          error instanceof type && pattern.test((error as Error).message),
        JSON.stringify(options),
      );
      await assert.rejects(
        NatsLink.connect(url, options as NatsLinkOptions),
        (error: unknown) =>
          error instanceof type && pattern.test((error as Error).message),
        JSON.stringify(options),
      );
    }
    for (
      const [bad, pattern] of [
        ["ws://127.0.0.1:4222", /scheme must be nats:\/\/ or tls:\/\//],
        ["nats://127.0.0.1:4222/path", /no path/],
        ["", /empty/],
        ["nats://a:b@h:1,nats://c:d@h:2", /same credentials/],
        ["nats://user:s3cret@[::1", /Invalid NATS URL "nats:\/\/\*\*\*@\[::1"/],
      ] as const
    ) {
      await assert.rejects(NatsLink.connect(bad, { room: "r" }), pattern, bad);
    }
  },
});

/** Makes a CA, a server certificate for 127.0.0.1 and a client certificate, in a directory. */
async function certificates(): Promise<string> {
  const script = `
set -e
dir=$(mktemp -d)
cd "$dir"
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $ec -days 1 -subj /CN=midisock-nats-test-ca -keyout ca.key -out ca.pem 2>/dev/null
for who in server client wrong; do
  names='DNS:localhost,IP:127.0.0.1'
  [ $who = wrong ] && names='DNS:elsewhere.example'
  openssl req $ec -subj /CN=$who -keyout $who.key -out $who.csr 2>/dev/null
  printf "subjectAltName=$names\\nbasicConstraints=CA:FALSE\\n" > ext
  openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 1 -extfile ext -out $who.pem 2>/dev/null
done
echo "$dir"
`;
  const { success, stdout, stderr } = await new Deno.Command("sh", {
    args: ["-c", script],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(success, new TextDecoder().decode(stderr));
  return new TextDecoder().decode(stdout).trim();
}

async function removeDir(dir: string): Promise<void> {
  await new Deno.Command("rm", { args: ["-rf", dir] }).output();
}

Deno.test({
  ...skip(
    "TLS: a link trusts the server through a CA file, and shows a client certificate when asked",
    NATS_MISSING,
    OPENSSL_MISSING,
  ),
  permissions: PERMISSIONS,
  fn: () =>
    within(
      (async () => {
        const dir = await certificates();
        try {
          await using nats = await NatsServer.start([
            "--tls",
            "--tlscert",
            `${dir}/server.pem`,
            "--tlskey",
            `${dir}/server.key`,
            "--tlsverify",
            "--tlscacert",
            `${dir}/ca.pem`,
          ]);
          const tls = {
            caFile: `${dir}/ca.pem`,
            certFile: `${dir}/client.pem`,
            keyFile: `${dir}/client.key`,
          };
          const { link: a } = await link(`tls://127.0.0.1:${nats.port}`, {
            tls,
          });
          const { link: b } = await link(nats.url, { tls });
          try {
            await until(() => b.remotes.length === 1);
            await a.send(note(9));
            assert.deepEqual(await take(b, 1), [note(9)]);
          } finally {
            await a.close();
            await b.close();
          }
          // Without the client certificate, or without the CA: refused.
          await assert.rejects(
            NatsLink.connect(nats.url, {
              room: "r",
              tls: { caFile: tls.caFile },
              connectTimeout: 1000,
            }),
            /no answer within 1000 ms \(a server that verifies clients drops/,
          );
          await assert.rejects(
            NatsLink.connect(nats.url, { room: "r", tls: true }),
            /unable to verify the first certificate/,
          );
          // A certificate for another host name is refused.
          await using elsewhere = await NatsServer.start([
            "--tls",
            "--tlscert",
            `${dir}/wrong.pem`,
            "--tlskey",
            `${dir}/wrong.key`,
          ]);
          await assert.rejects(
            NatsLink.connect(elsewhere.url, { room: "r", tls }),
            /^NatsLinkError: Cannot join NATS at .*(altnames|does not match|IP: 127\.0\.0\.1)/,
          );
          await assert.rejects(
            NatsLink.connect(nats.url, {
              room: "r",
              tls: { caFile: `${dir}/missing.pem` },
            }),
            /^NatsLinkError: Cannot join NATS at .*: cannot read the CA file .*missing\.pem/,
          );
        } finally {
          await removeDir(dir);
        }
      })(),
      30000,
    ),
});
