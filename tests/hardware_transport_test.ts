// MidiPorts: hardware ports as a transport of a hub, with python-rtmidi as
// the other program making and destroying the ports on the JACK server.

import assert from "node:assert/strict";
import { message } from "../src/codec/messages.ts";
import { PortClosedError } from "../src/errors.ts";
import {
  formatMidiPortsEvent,
  getInputNames,
  getOutputNames,
  MidiPorts,
  type MidiPortsEvent,
  type MidiPortsOptions,
  PortLostError,
  PortNotFoundError,
} from "../src/hardware/mod.ts";
import { Hub, type HubEvent } from "../src/hub/mod.ts";
import { connect } from "../src/net/connect.ts";
import { PortServer } from "../src/net/server.ts";
import { take, until } from "./_net.ts";
import { type PyRtMidi, pyTest } from "./_pyrtmidi.ts";
import { API, sleep, uniqueName, within } from "./_rtmidi.ts";

Deno.test({
  name: "MidiPorts checks its options before anything native runs",
  permissions: { ffi: false, env: false },
  fn() {
    const bad: [MidiPortsOptions, typeof TypeError | typeof RangeError][] = [
      [{ inputs: "keys" as never }, TypeError],
      [{ inputs: [-1] }, RangeError],
      [{ inputs: [1.5] }, RangeError],
      [{ inputs: [undefined as never] }, TypeError],
      [{ outputs: [{} as never] }, TypeError],
      [{ outputs: ["a\0b"] }, RangeError],
      [{ virtual: [""] }, RangeError],
      [{ virtual: [3 as never] }, TypeError],
      [{ virtual: true as never }, TypeError],
      [{ interval: 0 }, RangeError],
      [{ api: "beos" as never }, RangeError],
      [{ clientName: "" }, RangeError],
      [{ queueSize: 0 }, RangeError],
      [{ ignoreSysex: "yes" as never }, TypeError],
      [{ overflow: "wait" as never }, RangeError],
      [{ onEvent: "print" as never }, TypeError],
    ];
    for (const [options, type] of bad) {
      assert.throws(
        () => new MidiPorts(options),
        type,
        JSON.stringify(options),
      );
    }
    assert.throws(() => new MidiPorts(null as never), TypeError);
    assert.equal(
      new MidiPorts({ inputs: ["keys", 2], outputs: ["fluid"], virtual: ["x"] })
        .name,
      'midi in "keys", in #2, out "fluid", virtual "x"',
    );
  },
});

Deno.test({
  name:
    "MidiPorts with no ports attaches, closes once, and refuses a second hub",
  permissions: { ffi: false },
  async fn() {
    const ports = new MidiPorts();
    const feed = ports.events();
    const hub = new Hub();
    await hub.attach(ports);
    assert.equal(ports.name, "midi (no ports)");
    assert.deepEqual(ports.endpoints, []);
    await assert.rejects(ports.attach(new Hub()), /attached to a hub already/);
    await hub.close();
    assert.equal(ports.closed, true);
    assert.deepEqual(await feed.next(), { value: undefined, done: true });
    await ports.close();
    await assert.rejects(new MidiPorts().attach(hub), PortClosedError);
    const closed = new MidiPorts();
    await closed.close();
    await assert.rejects(closed.attach(new Hub()), PortClosedError);
    assert.equal((await closed.events().next()).done, true);
  },
});

Deno.test("formatMidiPortsEvent words each event as serve prints it", () => {
  const endpoint = {} as never;
  const lines = ([
    { type: "opened", role: "input", name: "keys:out", endpoint },
    { type: "opened", role: "output", name: "synth:in", endpoint },
    { type: "created", role: "pair", name: "midisock", endpoint },
    { type: "lost", role: "input", name: "keys:out" },
    { type: "back", role: "output", name: "synth:in", endpoint },
    { type: "error", role: "input", name: "k", error: "Port hub is closed" },
  ] as MidiPortsEvent[]).map(formatMidiPortsEvent);
  assert.deepEqual(lines, [
    'input "keys:out" opened',
    'output "synth:in" opened',
    'virtual "midisock" created',
    'lost "keys:out"',
    'back "synth:in"',
    'cannot use "k" again: Port hub is closed',
  ]);
});

/** Waits until python-rtmidi's ports are listed here. */
async function listed(keys: string, synth: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const inputs = await getInputNames({ api: API });
    const outputs = await getOutputNames({ api: API });
    if (
      inputs.some((n) => n.endsWith(`:${keys}`)) &&
      outputs.some((n) => n.endsWith(`:${synth}`))
    ) return;
    if (Date.now() > deadline) throw new Error("the ports were not listed");
    await sleep(20);
  }
}

/** Records a transport's events, and waits for them. */
class Events {
  readonly seen: MidiPortsEvent[] = [];
  readonly add = (event: MidiPortsEvent): void => {
    this.seen.push(event);
  };

  lines(): string[] {
    return this.seen.map(formatMidiPortsEvent);
  }

  async waitFor(count: number, what: string): Promise<void> {
    await until(() => this.seen.length >= count, 5000, what);
  }
}

/** A hub with a TCP listener, a client on it, and python-rtmidi's ports. */
async function rig(py: PyRtMidi) {
  const keys = uniqueName("mp-keys");
  const synth = uniqueName("mp-synth");
  await py.command(["open", keys, "out"]);
  await py.command(["open", synth, "in"]);
  await listed(keys, synth);
  const hub = new Hub();
  const hubEvents: HubEvent[] = [];
  hub.listen((event) => hubEvents.push(event));
  const server = await hub.attach(new PortServer("127.0.0.1", 0));
  const client = await connect("127.0.0.1", server.port);
  await until(() => hub.endpoints.length === 1, 5000, "the client");
  return { keys, synth, hub, hubEvents, server, client };
}

pyTest(
  "MidiPorts puts inputs, outputs and a virtual pair on a hub and follows them through unplug and replug",
  async (py) => {
    const { keys, synth, hub, hubEvents, client } = await rig(py);
    const virtual = uniqueName("mp-pair");
    const events = new Events();
    const ports = new MidiPorts({
      inputs: [keys],
      outputs: [synth],
      virtual: [virtual],
      api: API,
      interval: 50,
      onEvent: events.add,
    });
    const feed = ports.events();
    try {
      await hub.attach(ports);
      assert.equal(events.seen.length, 3);
      assert.deepEqual(events.seen.map((e) => [e.type, e.role]), [
        ["created", "pair"],
        ["opened", "input"],
        ["opened", "output"],
      ]);
      assert.match(events.lines()[0], new RegExp(`^virtual "${virtual}"`));
      assert.match(
        events.lines()[1],
        new RegExp(`^input ".*:${keys}" opened$`),
      );
      assert.match(
        events.lines()[2],
        new RegExp(`^output ".*:${synth}" opened$`),
      );
      const devices = hub.endpoints.filter((e) => e.kind === "device");
      assert.equal(devices.length, 3);
      assert.deepEqual(devices, ports.endpoints);
      for (const device of devices) {
        assert.equal(device.transport, "midi");
        assert.equal(device.name, JSON.stringify(device.port.name));
      }

      // Both ways through the hub.
      await py.command(["send", keys, "903c40"]);
      assert.deepEqual(await take(client, 1), [
        message("note_on", { note: 60 }),
      ]);
      await client.send(message("control_change", { control: 1, value: 1 }));
      const first = await py.command(["received", synth, 1, 10]);
      assert.deepEqual(first.messages, [[0xb0, 1, 1]]);

      // The keyboard goes with a note held: the hub lets go of it.
      await py.command(["close", keys, "out"]);
      await events.waitFor(4, "lost keys");
      assert.deepEqual(events.seen[3].type, "lost");
      assert.match(events.lines()[3], new RegExp(`^lost ".*:${keys}"$`));
      assert.deepEqual(await take(client, 1), [
        message("note_off", { note: 60, velocity: 0 }),
      ]);
      await until(
        () =>
          hubEvents.some((e) =>
            e.type === "leave" && e.endpoint === devices[1] &&
            e.reason instanceof PortLostError && e.released === 1
          ),
        5000,
        "the input's leave, with its note released",
      );
      assert.equal(ports.endpoints.length, 2);
      await py.command(["open", keys, "out"]);
      await events.waitFor(5, "back keys");
      const back = events.seen[4];
      assert.equal(back.type, "back");
      assert.equal(back.role, "input");
      assert.ok(back.type === "back" && hub.endpoints.includes(back.endpoint));
      await py.command(["send", keys, "903e40"]);
      assert.deepEqual(await take(client, 1), [
        message("note_on", { note: 62 }),
      ]);

      // The synth goes: its endpoint leaves at once, without a send failing.
      await py.command(["close", synth, "in"]);
      await events.waitFor(6, "lost synth");
      assert.equal(events.seen[5].type, "lost");
      assert.equal(events.seen[5].role, "output");
      assert.ok(!hub.endpoints.includes(devices[2]));
      assert.ok(
        hubEvents.some((e) =>
          e.type === "leave" && e.endpoint === devices[2] &&
          e.reason instanceof PortLostError
        ),
      );
      await py.command(["open", synth, "in"]);
      await events.waitFor(7, "back synth");
      assert.equal(events.seen[6].type, "back");
      await client.send(message("control_change", { control: 1, value: 2 }));
      const again = await py.command(["received", synth, 1, 10]);
      assert.deepEqual(again.messages, [[0xb0, 1, 2]]);

      // The feed saw the same, and ends when the hub closes the transport.
      await hub.close();
      assert.equal(ports.closed, true);
      const fed: MidiPortsEvent[] = [];
      for await (const event of feed) fed.push(event);
      assert.deepEqual(fed, events.seen);
      for (const device of devices) assert.equal(device.port.closed, true);
    } finally {
      await hub.close();
    }
  },
);

pyTest(
  "MidiPorts closed on its own takes its endpoints off the hub and lets go of held notes",
  async (py) => {
    const { keys, synth, hub, client } = await rig(py);
    try {
      const ports = await hub.attach(
        new MidiPorts({ inputs: [keys], outputs: [synth], api: API }),
      );
      await py.command(["send", keys, "904040"]);
      assert.deepEqual(await take(client, 1), [
        message("note_on", { note: 64 }),
      ]);
      const [input, output] = ports.endpoints;
      await within(ports.close(), 5000, "close");
      assert.deepEqual(ports.endpoints, []);
      assert.deepEqual(hub.endpoints.map((e) => e.kind), ["client"]);
      assert.equal(input.port.closed, true);
      assert.equal(output.port.closed, true);
      assert.deepEqual(await take(client, 1), [
        message("note_off", { note: 64, velocity: 0 }),
      ]);
      // The hub goes on without them.
      assert.equal(hub.closed, false);
      assert.deepEqual(hub.transports.includes(ports), true);
    } finally {
      await hub.close();
    }
  },
);

pyTest(
  "MidiPorts that cannot open a port rejects, naming it, and closes what it opened",
  async (py) => {
    const { hub } = await rig(py);
    const virtual = uniqueName("mp-undone");
    const missing = uniqueName("mp-missing");
    const events = new Events();
    const ports = new MidiPorts({
      virtual: [virtual],
      inputs: [missing],
      api: API,
      onEvent: events.add,
    });
    try {
      await assert.rejects(
        hub.attach(ports),
        (error: unknown) =>
          error instanceof PortNotFoundError && error.query === missing &&
          error.direction === "input",
      );
      assert.equal(ports.closed, true);
      assert.deepEqual(events.seen.map((e) => e.type), ["created"]);
      assert.deepEqual(hub.endpoints.map((e) => e.kind), ["client"]);
      assert.deepEqual(hub.transports.includes(ports), false);
      // The virtual pair made before the failure is gone.
      const listed = await py.command(["list"]);
      assert.ok(!listed.inputs!.some((n) => n.endsWith(`:${virtual}`)));
      assert.ok(!listed.outputs!.some((n) => n.endsWith(`:${virtual}`)));
    } finally {
      await hub.close();
    }
  },
);
