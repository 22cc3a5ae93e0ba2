import assert from "node:assert/strict";
import {
  encode,
  Hub,
  type Message,
  message,
  PortClosedError,
  PortServer,
  QueueFullError,
  ReconnectingPort,
} from "../mod.ts";
import { DEFAULT_HEARTBEAT_MS } from "../src/net/mod.ts";
import { helloLine } from "../src/net/_hello.ts";
import { ManualClock } from "./_clock.ts";
import { drain, netTest, take, until, within } from "./_net.ts";
import { concat } from "./_util.ts";
import { PlainEndpoint, Player, TimedEndpoint } from "./_timed_ports.ts";

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
    onEvent: ({ type }) =>
      type === "connect" ? connects++ : type === "retry" && retries++,
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
      onEvent: ({ type }) => type !== "retry" && events.push(type),
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
      onEvent: ({ type }) => waiting ||= type === "retry",
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

/**
 * A TCP relay to a server that can go silent without closing anything, as
 * a link that dies does: while frozen, every byte either way is dropped,
 * and a new connection waits (as a connect through a dead link does).
 */
class Relay implements AsyncDisposable {
  readonly #listener: Deno.TcpListener;
  readonly #target: number;
  readonly #conns = new Set<Deno.Conn>();
  readonly #tasks = new Set<Promise<void>>();
  frozen = false;
  accepted = 0;

  constructor(target: number) {
    this.#target = target;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#track(this.#accept());
  }

  get port(): number {
    return this.#listener.addr.port;
  }

  #track(task: Promise<void>): void {
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task));
  }

  async #accept(): Promise<void> {
    for await (const client of this.#listener) {
      this.accepted++;
      while (this.frozen) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      const server = await Deno.connect({
        hostname: "127.0.0.1",
        port: this.#target,
      });
      this.#conns.add(client).add(server);
      this.#track(this.#pipe(client, server));
      this.#track(this.#pipe(server, client));
    }
  }

  async #pipe(from: Deno.Conn, to: Deno.Conn): Promise<void> {
    const buffer = new Uint8Array(16 * 1024);
    try {
      for (;;) {
        const n = await from.read(buffer);
        if (n === null) break;
        if (!this.frozen) await to.write(buffer.subarray(0, n));
      }
    } catch {
      // Closed.
    }
    if (!this.frozen) {
      for (const conn of [from, to]) {
        try {
          conn.close();
        } catch {
          // Closed already.
        }
        this.#conns.delete(conn);
      }
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#listener.close();
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    }
    await Promise.all(this.#tasks);
  }
}

/** A device on a hub that keeps the markers it hears. */
class Collector extends PlainEndpoint {
  readonly name = "collector";
  readonly markers = new Set<number>();
  readonly heard: Message[] = [];
  protected hear(msg: Message): void {
    this.heard.push(msg);
    const i = markerOf(msg);
    if (i !== undefined) this.markers.add(i);
  }
}

/** A numbered marker. */
const marker = (i: number) =>
  message("sysex", { data: [0x7d, (i >> 7) & 127, i & 127] });

function markerOf(msg: Message): number | undefined {
  return msg.type === "sysex" && msg.data[0] === 0x7d
    ? msg.data[1] * 128 + msg.data[2]
    : undefined;
}

/**
 * Sends a marker every 10 ms through `client` until `stop()` says so;
 * notes which were written on a connection (by its number) and which were
 * held.
 */
function sendMarkers(client: ReconnectingPort, stop: () => boolean) {
  const written: number[][] = [];
  let connection = -1;
  let socket: unknown;
  const done = (async () => {
    for (let i = 0; !stop(); i++) {
      if (client.socket !== undefined && client.socket !== socket) {
        socket = client.socket;
        connection++;
        written.push([]);
      }
      const up = client.connected;
      const held = client.pending;
      await client.send(marker(i));
      if (up && client.pending === held) written[connection].push(i);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  })();
  return { written, done };
}

for (const timed of [true, false]) {
  netTest(
    `a link that goes silent while the port keeps sending is noticed within three heartbeats, and unconfirmed covers what was lost (${
      timed ? "timed server" : "active sensing"
    })`,
    async () => {
      const heartbeat = 300;
      await using hub = new Hub();
      const server = await hub.attach(
        new PortServer("127.0.0.1", 0, { timed }),
      );
      // The hub's clients' markers reach a reader on the hub.
      const reader = new Collector();
      hub.add(reader, { kind: "device" });
      await using relay = new Relay(server.port);
      const disconnects: {
        at: number;
        unconfirmed: number;
        reason: unknown;
      }[] = [];
      await using client = new ReconnectingPort("127.0.0.1", relay.port, {
        heartbeat,
        minDelay: 20,
        maxDelay: 50,
        onEvent: (event) =>
          event.type === "disconnect" &&
          disconnects.push({ at: performance.now(), ...event }),
      });
      await until(() => client.connected, 5000, "the connection");
      if (timed) {
        await until(
          () => client.socket?.timing?.answeredAt !== undefined,
          5000,
          "a pong",
        );
      }
      let stopping = false;
      const sending = sendMarkers(client, () => stopping);
      // Answers come (active sensing needs a first one to count).
      await until(() => client.unconfirmed < 20, 5000, "answers");
      await new Promise((resolve) => setTimeout(resolve, 300));
      relay.frozen = true;
      const frozenAt = performance.now();
      await until(() => disconnects.length === 1, 5000, "the dead link");
      const noticed = disconnects[0].at - frozenAt;
      assert.ok(
        disconnects[0].reason instanceof Deno.errors.TimedOut,
        String(disconnects[0].reason),
      );
      // Three heartbeats, and the timer's own lateness.
      assert.ok(
        noticed >= 2 * heartbeat && noticed <= 3 * heartbeat + 100,
        `noticed after ${noticed} ms`,
      );
      // Held while the link is down, then delivered on a new connection.
      await new Promise((resolve) => setTimeout(resolve, 100));
      relay.frozen = false;
      await until(() => sending.written.length === 2, 5000, "reconnected");
      await new Promise((resolve) => setTimeout(resolve, 100));
      stopping = true;
      await sending.done;
      await until(() => client.pending === 0, 5000, "held markers sent");
      const last = Math.max(...sending.written[1]);
      await until(() => reader.markers.has(last), 5000, "the last marker");
      const [first] = sending.written;
      const lost = first.filter((i) => !reader.markers.has(i));
      const { unconfirmed } = disconnects[0];
      // Every marker is heard, or among the last `unconfirmed` written on
      // the connection that died.
      const unheard = [...Array(last + 1).keys()].filter((i) =>
        !reader.markers.has(i)
      );
      const doubtful = new Set(first.slice(first.length - unconfirmed));
      console.log(
        `dead link noticed after ${
          noticed.toFixed(0)
        } ms; unconfirmed ${unconfirmed}, lost ${lost.length}`,
      );
      assert.deepEqual(unheard.filter((i) => !doubtful.has(i)), []);
      // And no more than what one probe's interval sends (10 ms apart).
      const probe = timed ? 100 : 150;
      assert.ok(
        unconfirmed >= lost.length &&
          unconfirmed <= lost.length + probe / 10 + 3,
        `unconfirmed ${unconfirmed}, lost ${lost.length}`,
      );
    },
  );
}

netTest(
  "a server that never answers is never counted dead; one that says hello but does not answer gets eight probes, then none",
  async () => {
    // A server that answers no hello (as mido's): no probe, and no end.
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const clock = new ManualClock();
    const disconnects: unknown[] = [];
    const accepted = listener.accept();
    await using client = new ReconnectingPort(
      "127.0.0.1",
      listener.addr.port,
      {
        heartbeat: 100,
        clock,
        onEvent: (event) =>
          event.type === "disconnect" && disconnects.push(event.reason),
      },
    );
    using conn = await accepted;
    listener.close();
    await until(() => client.connected);
    clock.advance(5000);
    await client.send(note(1)); // the sentinel
    const hello = helloLine(["timed"]);
    const bytes = await within(
      (async () => {
        let seen: Uint8Array = new Uint8Array(0);
        const buffer = new Uint8Array(1024);
        while (seen.length < hello.length + 3) {
          const n = await conn.read(buffer);
          if (n === null) break;
          seen = concat([seen, buffer.subarray(0, n)]);
        }
        return seen;
      })(),
    );
    assert.deepEqual(bytes, concat([hello, encode(note(1))]));
    assert.equal(client.connected, true);
    assert.equal(disconnects.length, 0);

    // A midisock server that is not timed and does not answer active
    // sensing (a PortServer on its own passes it on to its reader).
    await using server = new PortServer("127.0.0.1", 0, { timed: false });
    server.poll();
    const quiet = new ManualClock();
    await using other = new ReconnectingPort("127.0.0.1", server.port, {
      heartbeat: 100,
      clock: quiet,
      onEvent: (event) =>
        event.type === "disconnect" && disconnects.push(event.reason),
    });
    await until(() => other.socket?.greeted === true, 5000, "the hello");
    for (let i = 0; i < 50; i++) {
      quiet.advance(100);
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await other.send(note(2)); // the sentinel
    const heard: Message[] = [];
    while (heard.at(-1)?.type !== "note_on") {
      heard.push(...await take(server, 1));
    }
    assert.deepEqual(heard, [
      ...Array(8).fill(message("active_sensing")),
      note(2),
    ]);
    assert.equal(disconnects.length, 0);
    assert.equal(other.unconfirmed, 1);
  },
);

netTest("the heartbeat is on by default; false turns it off", () => {
  assert.equal(DEFAULT_HEARTBEAT_MS, 1000);
  assert.throws(
    () => new ReconnectingPort("127.0.0.1", 9, { heartbeat: 0 }),
    /heartbeat/,
  );
  assert.throws(
    () => new ReconnectingPort("127.0.0.1", 9, { clock: {} as never }),
    /clock must have now\(\) and setTimer\(\)/,
  );
  return Promise.resolve();
});

/** A timed endpoint: hears each batch at once, with its time. */
class TimedListener extends TimedEndpoint {
  readonly name = "timed listener";
  readonly heard: [Message, number][] = [];
  protected hear(msg: Message, at: number | undefined): void {
    this.heard.push([msg, at!]);
  }
}

/** A hub with a PortServer on `port`, a player and a timed listener. */
async function serverHub(port: number) {
  const hub = new Hub();
  await hub.attach(new PortServer("127.0.0.1", port));
  const player = new Player();
  const hears = new TimedListener();
  hub.add(player, { kind: "device" });
  hub.add(hears, { kind: "device" });
  return { hub, player, hears };
}

/** A control change that ends no note. */
const cc = (value: number) => message("control_change", { control: 1, value });

netTest(
  "on a hub, a reconnecting port carries time both ways across reconnections, and holds what is routed to it while down",
  async () => {
    const port = await freePort();
    let server = await serverHub(port);
    await using hub = new Hub({ latency: 20 });
    const link = new ReconnectingPort("127.0.0.1", port, {
      clock: hub.clock,
      minDelay: 20,
      maxDelay: 50,
      maxPending: 3,
    });
    hub.add(link, { kind: "link", transport: "tcp" });
    const player = new Player();
    const hears = new TimedListener();
    const plays = new Collector();
    hub.add(player, { kind: "device" });
    hub.add(hears, { kind: "device" });
    hub.add(plays, { kind: "device" });
    try {
      for (const round of [0, 1]) {
        await until(
          () => link.socket?.timing?.answeredAt !== undefined,
          5000,
          `round ${round}: a pong`,
        );
        // Both clocks are the system's: each time must come back as it was.
        const at = hub.clock.now() - 5;
        server.player.play(cc(round), at);
        player.play(cc(10 + round), at);
        await until(() => hears.heard.length === round + 1);
        await until(() => server.hears.heard.length >= 1);
        const [heard, time] = hears.heard[round];
        assert.deepEqual(heard, cc(round));
        assert.ok(Math.abs(time - at) < 1, `${time - at} ms`);
        const [back, backTime] = server.hears.heard.at(-1)!;
        assert.deepEqual(back, cc(10 + round));
        assert.ok(Math.abs(backTime - at) < 1, `${backTime - at} ms`);
        // Played out on the client's hub at its time plus the delay.
        await until(() => plays.heard.length === round + 1);
        await server.hub.close();
        await until(() => !link.connected, 5000, "the disconnection");
        if (round === 1) break;
        // Routed while the server is down: held (up to maxPending).
        for (const n of [20, 21, 22, 23]) player.play(cc(n), hub.clock.now());
        assert.equal(link.pending, 3);
        assert.equal(link.undelivered, 1);
        server = await serverHub(port);
        await until(() => server.hears.heard.length === 3, 5000, "held");
        assert.deepEqual(server.hears.heard.map(([msg]) => msg), [
          cc(20),
          cc(21),
          cc(22),
        ]);
        server.hears.heard.length = 0;
      }
    } finally {
      await server.hub.close();
    }
    assert.equal(hub.timing?.late, 0);
  },
);
