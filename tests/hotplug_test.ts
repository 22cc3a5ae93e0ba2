// Ports that come and go: watchPorts and followInput/followOutput, with
// python-rtmidi as the other program creating and destroying ports on the
// JACK server.

import { skip } from "./_skip.ts";
import assert from "node:assert/strict";
import { type Message, message } from "../src/codec/messages.ts";
import { PortClosedError } from "../src/errors.ts";
import {
  followInput,
  followOutput,
  openOutput,
  type PortChange,
  PortLostError,
  watchPorts,
} from "../src/hardware/mod.ts";
import { PortServer } from "../src/net/server.ts";
import { connect } from "../src/net/connect.ts";
import { NoteTracker } from "../src/notes.ts";
import { take, until } from "./_net.ts";
import { openWhenListed, pyTest } from "./_pyrtmidi.ts";
import { HARDWARE, NET, spawn } from "./_cli.ts";
import {
  API,
  assertAvailable,
  RTMIDI_MISSING,
  uniqueName,
  within,
} from "./_rtmidi.ts";

function hwTest(name: string, fn: () => Promise<void>): void {
  Deno.test({
    ...skip(name, RTMIDI_MISSING),
    async fn() {
      assertAvailable();
      await fn();
    },
  });
}

/** Wall-clock milliseconds, comparable with Python's `time.time() * 1000`. */
function now(): number {
  return performance.timeOrigin + performance.now();
}

/** A watcher's changes about names containing `stem`, as they come. */
class Recorder {
  readonly seen: { change: PortChange; at: number }[] = [];
  readonly done: Promise<void>;

  constructor(changes: AsyncIterable<PortChange>, stem: string) {
    this.done = (async () => {
      for await (const change of changes) {
        if (change.name.includes(stem)) this.seen.push({ change, at: now() });
      }
    })();
  }

  async waitFor(count: number, what: string): Promise<void> {
    await until(() => this.seen.length >= count, 5000, what);
  }
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * p) - 1)];
}

pyTest(
  "watchPorts reports a port another program makes and destroys 50 times, within 500 ms at p95, and nothing else",
  async (py) => {
    const stem = uniqueName("plug");
    const name = `${stem}-port`;
    // A port made before the watch: its report says the first look is done.
    await using _first = await openOutput(`${stem}-first`, {
      virtual: true,
      api: API,
    });
    await using watcher = watchPorts({ api: API, existing: true });
    const recorder = new Recorder(watcher, stem);
    await recorder.waitFor(1, "the port there was at the start");
    const delays: number[] = [];
    for (let i = 0; i < 50; i++) {
      const made = await py.command(["open", name, "out"]);
      await recorder.waitFor(2 + 2 * i, `added #${i + 1}`);
      delays.push(recorder.seen.at(-1)!.at - made.at!);
      const gone = await py.command(["close", name, "out"]);
      await recorder.waitFor(3 + 2 * i, `removed #${i + 1}`);
      delays.push(recorder.seen.at(-1)!.at - gone.at!);
    }
    // A last port, made after everything else: once it is reported,
    // anything the cycles caused has been reported too.
    await using _last = await openOutput(`${stem}-last`, {
      virtual: true,
      api: API,
    });
    await recorder.waitFor(102, "the last port");
    await watcher.close();
    await within(recorder.done, 5000, "the watch to end");
    const changes = recorder.seen.map(({ change }) => change);
    assert.equal(changes.length, 102, JSON.stringify(changes.slice(100)));
    assert.equal(changes[0].type, "added");
    assert.ok(changes[0].name.endsWith(`${stem}-first`), changes[0].name);
    for (let i = 0; i < 100; i++) {
      const change = changes[1 + i];
      assert.equal(change.type, i % 2 === 0 ? "added" : "removed", `#${i}`);
      assert.equal(change.api, API);
      assert.equal(change.direction, "input");
      assert.ok(change.name.endsWith(`:${name}`), change.name);
    }
    assert.equal(changes[101].type, "added");
    assert.ok(changes[101].name.endsWith(`${stem}-last`));
    const p95 = percentile(delays, 0.95);
    assert.ok(
      p95 <= 500,
      `p95 ${p95.toFixed(0)} ms (max ${Math.max(...delays).toFixed(0)} ms)`,
    );
  },
);

pyTest(
  "a followed port re-created between two looks is connected again",
  async (py) => {
    const name = uniqueName("quick");
    await py.command(["open", name, "out"]);
    // Looks a second apart: the port goes and comes back between two.
    await using follower = await openWhenListed(() =>
      followInput(name, { api: API, interval: 1000 })
    );
    assert.equal((await follower.next()).value.type, "opened");
    await py.command(["close", name, "out"]);
    await py.command(["open", name, "out"]);
    const lost = (await within(follower.next(), 5000, "lost")).value;
    assert.equal(lost.type, "lost");
    const back = (await within(follower.next(), 5000, "back")).value;
    assert.equal(back.type, "back");
    await py.command(["send", name, "b00102"]);
    const [got] = await take(back.port, 1);
    assert.deepEqual(
      { ...got, time: 0 },
      message("control_change", { control: 1, value: 2 }),
    );
  },
);

hwTest(
  "a watcher ends when closed, aborted or left, and checks its options",
  async () => {
    const first = watchPorts({ api: API });
    const waiting = first.next();
    await first.close();
    await first.close();
    assert.equal(first.closed, true);
    assert.deepEqual(await waiting, { value: undefined, done: true });
    assert.equal((await first.next()).done, true);

    const controller = new AbortController();
    const second = watchPorts({ api: API, signal: controller.signal });
    const pending = second.next();
    controller.abort();
    assert.equal((await within(pending, 5000, "abort")).done, true);
    assert.equal(second.closed, true);

    const name = uniqueName("left");
    await using _port = await openOutput(name, { virtual: true, api: API });
    const third = watchPorts({ api: API, existing: true });
    for await (const change of third) {
      if (change.name.includes(name)) break;
    }
    assert.equal(third.closed, true, "breaking out of the loop closes it");

    assert.throws(() => watchPorts({ interval: 0 }), RangeError);
    assert.throws(() => watchPorts({ interval: Number.NaN }), RangeError);
    assert.throws(
      () => watchPorts({ existing: "yes" as unknown as boolean }),
      TypeError,
    );
    assert.throws(() => watchPorts({ api: "beos" as "jack" }), RangeError);
  },
);

pyTest(
  "followInput ends the input when its port goes, releasing what it held, and reopens it when it is back",
  async (py) => {
    const name = uniqueName("follow-in");
    await py.command(["open", name, "out"]);
    await using follower = await openWhenListed(() =>
      followInput(name, { api: API })
    );
    const opened = (await within(follower.next(), 5000, "opened")).value;
    assert.equal(opened.type, "opened");
    assert.ok(opened.name.endsWith(`:${name}`), opened.name);
    const input = opened.port;
    assert.equal(follower.port, input);

    // What a hub does: follow the notes each source holds.
    const held = new NoteTracker();
    const got: Message[] = [];
    const reading = (async () => {
      for await (const msg of input) {
        held.track(msg);
        got.push(msg);
      }
    })();
    await py.command(["send", name, "903c40", "904050"]);
    await until(() => got.length === 2, 5000, "two notes");

    const gone = await py.command(["close", name, "out"]);
    const lost = (await within(follower.next(), 5000, "lost")).value;
    const lostAt = now();
    assert.equal(lost.type, "lost");
    assert.equal(lost.port, input);
    assert.equal(follower.port, undefined);
    assert.ok(lostAt - gone.at! < 1000, `lost after ${lostAt - gone.at!} ms`);
    // The input ended by itself: its reader's loop is over, and receive()
    // says why.
    await within(reading, 5000, "the reader to end");
    await assert.rejects(
      input.receive(),
      (error: unknown) =>
        error instanceof PortClosedError &&
        error.cause instanceof PortLostError,
    );
    // At the moment of loss, a hub releases what the input held.
    assert.deepEqual(
      held.release().map((off) => [off.type, off.note]),
      [["note_off", 60], ["note_off", 64]],
    );

    await py.command(["open", name, "out"]);
    const back = (await within(follower.next(), 5000, "back")).value;
    assert.equal(back.type, "back");
    assert.notEqual(back.port, input);
    assert.equal(follower.port, back.port);
    await py.command(["send", name, "904360"]);
    const [note] = await take(back.port, 1);
    assert.deepEqual(
      { ...note, time: 0 },
      message("note_on", { note: 67, velocity: 96 }),
    );
    await follower.close();
    assert.equal(
      back.port.closed,
      true,
      "closing the follower closes its port",
    );
    assert.equal((await follower.next()).done, true);
  },
);

pyTest(
  "a TCP client's messages reach a followed output again once its port is back",
  async (py) => {
    const name = uniqueName("follow-out");
    await py.command(["open", name, "in"]);
    await using follower = await openWhenListed(() =>
      followOutput(name, { api: API })
    );
    // A small stand-in for serve --out NAME: every client message goes to
    // the followed output's current port.
    await using server = new PortServer("127.0.0.1", 0);
    const relaying = (async () => {
      for await (const msg of server) {
        await follower.port?.send(msg).catch(() => {});
      }
    })();
    const events: string[] = [];
    const following = (async () => {
      for await (const event of follower) events.push(event.type);
    })();
    await using client = await connect("127.0.0.1", server.port);
    await until(() => events.length === 1, 5000, "opened");

    await client.send(message("note_on", { note: 60 }));
    const before = await py.command(["received", name, 1, 10]);
    assert.deepEqual(before.messages, [[0x90, 60, 64]]);

    await py.command(["close", name, "in"]);
    await until(() => events.length === 2, 5000, "lost");
    assert.equal(follower.port, undefined);
    await py.command(["open", name, "in"]);
    await until(() => events.length === 3, 5000, "back");
    assert.deepEqual(events, ["opened", "lost", "back"]);

    await client.send(message("note_on", { note: 62 }));
    const after = await py.command(["received", name, 1, 10]);
    assert.deepEqual(after.messages, [[0x90, 62, 64]]);

    await follower.close();
    await within(following, 5000, "the events to end");
    await client.close();
    await server.close();
    await within(relaying, 5000, "the relay to end");
  },
);

pyTest(
  "a followed output that is lost rejects sends with the loss as cause",
  async (py) => {
    const name = uniqueName("lost-out");
    await py.command(["open", name, "in"]);
    await using follower = await openWhenListed(() =>
      followOutput(name, { api: API, interval: 50 })
    );
    const { port } = (await follower.next()).value;
    await py.command(["close", name, "in"]);
    assert.equal(
      (await within(follower.next(), 5000, "lost")).value.type,
      "lost",
    );
    await assert.rejects(
      port.send(message("clock")),
      (error: unknown) =>
        error instanceof PortClosedError &&
        error.cause instanceof PortLostError,
    );
  },
);

hwTest(
  "following checks its arguments before anything native runs",
  async () => {
    await assert.rejects(
      followInput("x", { virtual: true } as never),
      TypeError,
    );
    await assert.rejects(followOutput("x", { interval: -1 }), RangeError);
    await assert.rejects(followInput(-1), RangeError);
  },
);

pyTest(
  "serve --in and --out survive unplug and replug: lost, released, back",
  async (py) => {
    const keys = uniqueName("serve-keys");
    const synth = uniqueName("serve-synth");
    // Another program's ports: serve reads `keys` and plays `synth`.
    await py.command(["open", keys, "out"]);
    await py.command(["open", synth, "in"]);
    await using serve = spawn(
      "serve",
      ["127.0.0.1:0", "--in", keys, "--out", synth, "--api", API],
      [NET, ...HARDWARE],
    );
    const port = await serve.listening(30000);
    await using client = await connect("127.0.0.1", port);
    await serve.waitFor(/^connect \S+ \(1 client\)$/);

    // A note held on the keyboard when it goes away is let go at once.
    await py.command(["send", keys, "903c40"]);
    assert.deepEqual(await take(client, 1), [message("note_on", { note: 60 })]);
    await py.command(["close", keys, "out"]);
    await serve.waitFor(new RegExp(`^lost ".*${keys}"$`));
    assert.deepEqual(await take(client, 1), [
      message("note_off", { note: 60, velocity: 0 }),
    ]);
    await py.command(["open", keys, "out"]);
    await serve.waitFor(new RegExp(`^back ".*${keys}"$`));
    await py.command(["send", keys, "903e40"]);
    assert.deepEqual(await take(client, 1), [message("note_on", { note: 62 })]);

    // The synth goes away and comes back: the client plays the new one.
    await client.send(message("control_change", { control: 1, value: 1 }));
    const first = await py.command(["received", synth, 1, 10]);
    assert.deepEqual(first.messages, [[0xb0, 1, 1]]);
    await py.command(["close", synth, "in"]);
    await serve.waitFor(new RegExp(`^lost ".*${synth}"$`));
    await py.command(["open", synth, "in"]);
    await serve.waitFor(new RegExp(`^back ".*${synth}"$`));
    await client.send(message("control_change", { control: 1, value: 2 }));
    const again = await py.command(["received", synth, 1, 10]);
    assert.deepEqual(again.messages, [[0xb0, 1, 2]]);
    serve.kill("SIGTERM");
    assert.equal((await serve.finished()).code, 0);
  },
);
