import assert from "node:assert/strict";
import { skip } from "./_skip.ts";
import { equals, type Message, message } from "../src/codec/messages.ts";
import { PortClosedError } from "../src/errors.ts";
import {
  getApis,
  getInputNames,
  getOutputNames,
  type HardwareInput,
  openInput,
  openIOPort,
  openOutput,
  PortNotFoundError,
} from "../src/hardware/mod.ts";
import { PANIC_MESSAGES, RESET_MESSAGES } from "../src/port.ts";
import {
  API,
  assertAvailable,
  moduleUrl,
  RTMIDI_MISSING,
  runScript,
  sleep,
  UNAVAILABLE,
  uniqueName,
  within,
  withoutDbNoise,
} from "./_rtmidi.ts";
import { until } from "./_net.ts";
import { openWhenListed, pyTest } from "./_pyrtmidi.ts";

const PYTHON = Deno.env.get("MIDISOCK_PYTHON") ?? "/usr/bin/python3";

function hwTest(name: string, fn: () => Promise<void>): void {
  Deno.test({
    ...skip(name, RTMIDI_MISSING),
    async fn() {
      assertAvailable();
      await fn();
    },
  });
}

/** Reads `count` messages, failing after `ms`. */
async function take(
  input: HardwareInput,
  count: number,
  ms = 5000,
): Promise<Message[]> {
  const got: Message[] = [];
  await within(
    (async () => {
      while (got.length < count) got.push(await input.receive());
    })(),
    ms,
    `${count} messages (got ${got.length})`,
  );
  return got;
}

function assertSameMessages(got: Message[], want: Message[]): void {
  assert.equal(got.length, want.length);
  for (let i = 0; i < want.length; i++) {
    assert.ok(
      equals(got[i], want[i]),
      `message ${i}: got ${JSON.stringify(got[i])}, want ${
        JSON.stringify(want[i])
      }`,
    );
  }
}

const EVERY_TYPE: Message[] = [
  message("note_off", { channel: 1, note: 60, velocity: 10 }),
  message("note_on", { channel: 15, note: 127, velocity: 127 }),
  message("polytouch", { channel: 2, note: 3, value: 4 }),
  message("control_change", { channel: 3, control: 7, value: 100 }),
  message("program_change", { channel: 4, program: 42 }),
  message("aftertouch", { channel: 5, value: 99 }),
  message("pitchwheel", { channel: 6, pitch: -8192 }),
  message("pitchwheel", { channel: 6, pitch: 8191 }),
  message("sysex", { data: [0x7e, 0x7f, 0x09, 0x01] }),
  message("quarter_frame", { frame_type: 3, frame_value: 9 }),
  message("songpos", { pos: 16383 }),
  message("song_select", { song: 5 }),
  message("tune_request"),
  message("clock"),
  message("start"),
  message("continue"),
  message("stop"),
  message("reset"),
  message("sysex", {
    data: Array.from({ length: 10_000 }, (_, i) => i % 128),
  }),
];

hwTest("getApis lists the backend the tests use", () => {
  assert.ok(getApis().includes(API), `${API} in ${getApis()}`);
  return Promise.resolve();
});

hwTest(
  "a virtual output's messages of every type reach an opened input in order",
  async () => {
    const name = uniqueName("vout");
    await using out = await openOutput(name, { virtual: true, api: API });
    await using input = await openInput(name, { api: API });
    assert.ok(input.name.endsWith(name), input.name);
    // No pause between messages: sends wait for room in JACK's buffer.
    for (const msg of EVERY_TYPE) await out.send(msg);
    assertSameMessages(await take(input, EVERY_TYPE.length), EVERY_TYPE);
    assert.equal(input.dropped, 0);
  },
);

hwTest("an opened output's messages reach a virtual input", async () => {
  const name = uniqueName("vin");
  await using input = await openInput(name, { virtual: true, api: API });
  assert.equal(input.virtual, true);
  await using out = await openOutput(name, { api: API });
  const want = EVERY_TYPE.filter((m) => m.type !== "sysex");
  for (const msg of want) await out.send(msg);
  assertSameMessages(await take(input, want.length), want);
});

hwTest("a burst of a thousand notes arrives whole and in order", async () => {
  const name = uniqueName("burst");
  await using out = await openOutput(name, { virtual: true, api: API });
  await using input = await openInput(name, { api: API });
  const want: Message[] = [];
  for (let i = 0; i < 1000; i++) {
    want.push(message("note_on", { note: i % 128, velocity: (i >> 7) + 1 }));
  }
  for (const msg of want) await out.send(msg);
  assertSameMessages(await take(input, want.length), want);
});

hwTest("time is RtMidi's delta time in seconds", async () => {
  const name = uniqueName("time");
  await using out = await openOutput(name, { virtual: true, api: API });
  await using input = await openInput(name, { api: API });
  await out.send(message("note_on"));
  const sent = performance.now();
  await sleep(100);
  await out.send(message("note_off"));
  const gap = (performance.now() - sent) / 1000;
  const [, second] = await take(input, 2);
  // The gap between the two sends, give or take JACK's period (21 ms here).
  assert.ok(
    Math.abs(second.time! - gap) < 0.06,
    `time ${second.time}, sends ${gap.toFixed(3)} s apart`,
  );
});

async function filtered(
  options: Parameters<typeof openInput>[1],
): Promise<string[]> {
  const name = uniqueName("filter");
  await using out = await openOutput(name, { virtual: true, api: API });
  await using input = await openInput(name, { ...options, api: API });
  for (
    const msg of [
      message("sysex", { data: [1, 2, 3] }),
      message("clock"),
      message("quarter_frame"),
      message("active_sensing"),
      message("note_on"),
    ]
  ) await out.send(msg);
  const got: string[] = [];
  await within(
    (async () => {
      for await (const msg of input) {
        got.push(msg.type);
        if (msg.type === "note_on") break;
      }
    })(),
    5000,
    "the note that ends the sequence",
  );
  return got;
}

hwTest(
  "inputs deliver sysex and timing but drop active sensing by default, as mido",
  async () => {
    assert.deepEqual(await filtered({}), [
      "sysex",
      "clock",
      "quarter_frame",
      "note_on",
    ]);
  },
);

hwTest("ignore options drop what they name and nothing else", async () => {
  assert.deepEqual(await filtered({ ignoreSysex: true }), [
    "clock",
    "quarter_frame",
    "note_on",
  ]);
  assert.deepEqual(await filtered({ ignoreTiming: true }), [
    "sysex",
    "note_on",
  ]);
  assert.deepEqual(await filtered({ ignoreActiveSensing: false }), [
    "sysex",
    "clock",
    "quarter_frame",
    "active_sensing",
    "note_on",
  ]);
});

hwTest(
  "port listing sees a virtual port appear and disappear",
  async () => {
    const name = uniqueName("listed");
    const out = await openOutput(name, { virtual: true, api: API });
    const input = await openInput(name, { virtual: true, api: API });
    assert.ok(
      (await getInputNames({ api: API })).some((n) => n.includes(name)),
    );
    assert.ok(
      (await getOutputNames({ api: API })).some((n) => n.includes(name)),
    );
    await out.close();
    await input.close();
    assert.ok(
      !(await getInputNames({ api: API })).some((n) => n.includes(name)),
    );
    assert.ok(
      !(await getOutputNames({ api: API })).some((n) => n.includes(name)),
    );
  },
);

hwTest(
  "opens by exact name, unique substring in any case, and index",
  async () => {
    const name = uniqueName("Finder");
    await using out = await openOutput(name, { virtual: true, api: API });
    const names = await getInputNames({ api: API });
    const full = names.find((n) => n.includes(name))!;
    const index = names.indexOf(full);
    // A string is a name (or part of one) before it is an index: "3" means
    // index 3 only while no port name contains "3".
    const asText = String(index);
    const queries: (string | number)[] = [full, name.toUpperCase(), index];
    if (!names.some((n) => n.includes(asText))) queries.push(asText);
    for (const query of queries) {
      await using input = await openInput(query, { api: API });
      assert.equal(input.name, full, `query ${query}`);
      await out.send(message("start"));
      assert.equal((await take(input, 1))[0].type, "start");
    }
  },
);

hwTest("an unknown name is an error that lists the ports", async () => {
  const name = uniqueName("known");
  await using _out = await openOutput(name, { virtual: true, api: API });
  const error = await openInput(uniqueName("nothing"), { api: API }).then(
    () => assert.fail("opened"),
    (e) => e,
  );
  assert.ok(error instanceof PortNotFoundError);
  assert.match(error.message, /^No MIDI input port matches ".*"; available: /);
  assert.ok(error.message.includes(name), error.message);
  assert.ok(error.available.some((n: string) => n.includes(name)));
  const tooFar = await openOutput(10_000, { api: API }).catch((e) => e);
  assert.ok(tooFar instanceof PortNotFoundError);
  assert.match(tooFar.message, /^No MIDI output port has index 10000/);
});

hwTest("an ambiguous name is an error that lists what it matched", async () => {
  const stem = uniqueName("twin");
  await using _a = await openOutput(`${stem}-a`, { virtual: true, api: API });
  await using _b = await openOutput(`${stem}-b`, { virtual: true, api: API });
  const error = await openInput(stem, { api: API }).catch((e) => e);
  assert.ok(error instanceof PortNotFoundError);
  assert.match(error.message, /is ambiguous: it matches/);
  assert.equal(error.matches.length, 2);
});

hwTest("arguments are checked before anything native runs", async () => {
  await assert.rejects(openInput(undefined, { virtual: true }), TypeError);
  await assert.rejects(openOutput("x", { api: "beos" as "jack" }), RangeError);
  await assert.rejects(openInput("x", { queueSize: 0 }), RangeError);
  await assert.rejects(openInput("a\0b", { virtual: true }), RangeError);
  await assert.rejects(openInput(-1), RangeError);
  await assert.rejects(openInput("x", { clientName: "" }), RangeError);
  const name = uniqueName("checked");
  await using out = await openOutput(name, { virtual: true, api: API });
  await assert.rejects(
    out.send({ type: "note_on", channel: 16, note: 0, velocity: 0 }),
    RangeError,
  );
  await assert.rejects(out.send({ type: "nope" } as never), TypeError);
  await out.send(message("stop"));
});

hwTest(
  "a closed port rejects sends, ignores reset and panic, and closes twice",
  async () => {
    const name = uniqueName("closed");
    const out = await openOutput(name, { virtual: true, api: API });
    const input = await openInput(name, { api: API });
    await out.close();
    await out.close();
    assert.equal(out.closed, true);
    await assert.rejects(out.send(message("start")), PortClosedError);
    await out.reset();
    await out.panic();
    await input.close();
    await input.close();
    assert.equal(input.closed, true);
    await assert.rejects(input.receive(), PortClosedError);
    assert.equal(input.poll(), undefined);
    for await (const _ of input) assert.fail("iterated a closed port");
  },
);

hwTest("reset and panic send mido's sets", async () => {
  const name = uniqueName("reset");
  await using out = await openOutput(name, { virtual: true, api: API });
  await using input = await openInput(name, { api: API });
  await out.reset();
  assertSameMessages(await take(input, RESET_MESSAGES.length), [
    ...RESET_MESSAGES,
  ]);
  await out.panic();
  assertSameMessages(await take(input, PANIC_MESSAGES.length), [
    ...PANIC_MESSAGES,
  ]);
});

hwTest("an IO port pairs an input and an output of one name", async () => {
  const name = uniqueName("io");
  await using local = await openIOPort(name, { virtual: true, api: API });
  await using remote = await openIOPort(name, { api: API });
  await remote.send(message("note_on", { note: 1 }));
  assert.equal(
    (await within(local.receive(), 5000, "to local")).type,
    "note_on",
  );
  await local.send(message("note_on", { note: 2 }));
  const back = await within(remote.receive(), 5000, "to remote");
  assert.ok(back.type === "note_on" && back.note === 2);
});

hwTest(
  "a reader that falls behind loses the newest messages and counts them",
  async () => {
    const name = uniqueName("slow");
    await using out = await openOutput(name, { virtual: true, api: API });
    await using input = await openInput(name, { api: API, queueSize: 8 });
    for (let i = 0; i < 50; i++) {
      await out.send(message("note_on", { note: i }));
    }
    await until(() => input.dropped === 42, 5000, "42 dropped");
    const kept = [...input.iterPending()];
    assert.deepEqual(
      kept.map((m) => m.type === "note_on" && m.note),
      [0, 1, 2, 3, 4, 5, 6, 7],
    );
  },
);

hwTest("closing from inside for await ends the loop quietly", async () => {
  const name = uniqueName("inner");
  await using out = await openOutput(name, { virtual: true, api: API });
  const input = await openInput(name, { api: API });
  for (let i = 0; i < 10; i++) await out.send(message("clock"));
  let seen = 0;
  await within(
    (async () => {
      for await (const _ of input) {
        if (++seen === 3) await input.close();
      }
    })(),
    5000,
    "the loop to end",
  );
  assert.equal(seen, 3);
});

hwTest(
  "closing inputs while messages flood in, 200 times, neither hangs nor crashes",
  async () => {
    const name = uniqueName("flood");
    await using out = await openOutput(name, { virtual: true, api: API });
    let received = 0;
    for (let round = 0; round < 200; round++) {
      const input = await openInput(name, { api: API });
      let flooding = true;
      const pump = (async () => {
        while (flooding) {
          for (let k = 0; k < 20; k++) {
            await out.send(message("note_on", { note: k }));
          }
          await sleep(0);
        }
      })();
      const reader = (async () => {
        for await (const _ of input) received++;
      })();
      await sleep(round % 5);
      await within(input.close(), 5000, "close under flood");
      await within(reader, 5000, "the reader to end");
      flooding = false;
      await pump;
    }
    assert.ok(received > 0);
  },
);

hwTest(
  "opening and closing ports 300 times leaves nothing behind",
  async () => {
    const name = uniqueName("cycle");
    for (let i = 0; i < 100; i++) {
      const a = await openOutput(name, { virtual: true, api: API });
      const b = await openInput(name, { api: API });
      const c = await openInput(`${name}-v`, { virtual: true, api: API });
      await Promise.all([b.close(), a.close(), c.close(), c.close()]);
    }
    assert.ok(
      !(await getInputNames({ api: API })).some((n) => n.includes(name)),
    );
  },
);

hwTest("the process exits with ports left open", async () => {
  for (const ending of ["", "Deno.exit(0);"]) {
    const result = await runScript(
      `
      import { message } from "${moduleUrl("src/codec/messages.ts")}";
      import { openInput, openOutput } from "${
        moduleUrl("src/hardware/mod.ts")
      }";
      const out = await openOutput("${
        uniqueName("exit")
      }", { virtual: true, api: "${API}" });
      const input = await openInput(out.name, { api: "${API}" });
      for (let i = 0; i < 100; i++) await out.send(message("clock"));
      console.log("open");
      ${ending}
      `,
      ["--allow-ffi", "--allow-env"],
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), "open");
  }
});

hwTest(
  "an unclosed port dropped by its owner is closed by the garbage collector",
  async () => {
    const name = uniqueName("gc");
    const result = await runScript(
      `
      import { getInputNames, getOutputNames, openInput, openOutput } from "${
        moduleUrl("src/hardware/mod.ts")
      }";
      const api = "${API}";
      const listed = async () =>
        [...await getInputNames({ api }), ...await getOutputNames({ api })]
          .filter((n) => n.includes("${name}")).length;
      let ports = [
        await openOutput("${name}-out", { virtual: true, api }),
        await openInput("${name}-in", { virtual: true, api }),
      ];
      const before = await listed();
      ports = [];
      let after = before;
      for (let i = 0; i < 50 && after > 0; i++) {
        globalThis.gc();
        await new Promise((r) => setTimeout(r, 20));
        after = await listed();
      }
      console.log(before, after);
      `,
      ["--allow-ffi", "--allow-env", "--v8-flags=--expose-gc"],
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), "2 0");
  },
);

hwTest("midisock reads a python-rtmidi virtual output", async () => {
  const name = uniqueName("py-out");
  const python = new Deno.Command(PYTHON, {
    args: [
      "-c",
      `
import sys, time, rtmidi
out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, "pyrt")
out.open_virtual_port("${name}")
print("ready", flush=True)
sys.stdin.readline()
for i in range(20):
    out.send_message([0x90, i, 100])
out.send_message([0xF0, 0x7D, 1, 2, 3, 0xF7])
out.send_message([0xE0, 0x00, 0x40])
time.sleep(0.5)
`,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const lines = python.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    assert.equal(
      (await within(lines.read(), 10_000, "python to start")).value?.trim(),
      "ready",
    );
    await using input = await openInput(name, { api: API });
    const writer = python.stdin.getWriter();
    await writer.write(new TextEncoder().encode("go\n"));
    await writer.close();
    const want = [
      ...Array.from(
        { length: 20 },
        (_, i) => message("note_on", { note: i, velocity: 100 }),
      ),
      message("sysex", { data: [0x7d, 1, 2, 3] }),
      message("pitchwheel", { pitch: 0 }),
    ];
    assertSameMessages(await take(input, want.length), want);
  } finally {
    await lines.cancel();
    await python.status;
  }
});

hwTest("midisock writes to a python-rtmidi virtual input", async () => {
  const name = uniqueName("py-in");
  const python = new Deno.Command(PYTHON, {
    args: [
      "-c",
      `
import time, rtmidi
inp = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, "pyrt")
inp.ignore_types(False, False, True)
inp.open_virtual_port("${name}")
print("ready", flush=True)
got = []
deadline = time.time() + 10
while len(got) < 5 and time.time() < deadline:
    m = inp.get_message()
    if m: got.append(m[0])
    else: time.sleep(0.001)
print(got, flush=True)
`,
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const lines = python.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    assert.equal(
      (await within(lines.read(), 10_000, "python to start")).value?.trim(),
      "ready",
    );
    await using out = await openOutput(name, { api: API });
    await out.send(message("note_on", { note: 60 }));
    await out.send(message("control_change", { control: 7, value: 1 }));
    await out.send(message("sysex", { data: [1, 2] }));
    await out.send(message("clock"));
    await out.send(message("songpos", { pos: 300 }));
    let text = "";
    while (!text.includes("]")) {
      const { value, done } = await within(lines.read(), 15_000, "python");
      if (done) break;
      text += value;
    }
    assert.equal(
      text.trim(),
      "[[144, 60, 64], [176, 7, 1], [240, 1, 2, 247], [248], [242, 44, 2]]",
    );
  } finally {
    await lines.cancel();
    await python.status;
  }
});

// --- Large sysex, floods and backends (issues 10 and 15) ------------------

const SYSEX_64K = Array.from({ length: 65536 }, (_, i) => (i * 7) % 128);

pyTest(
  "a 64 KiB sysex from midisock reaches python-rtmidi byte for byte",
  async (py) => {
    const name = uniqueName("sysex-to-py");
    await py.command(["open", name, "in"]);
    await using out = await openWhenListed(() =>
      openOutput(name, { api: API })
    );
    await out.send(message("sysex", { data: SYSEX_64K }));
    await out.send(message("note_on", { note: 1 }));
    const { messages } = await py.command(["received", name, 2, 15]);
    assert.equal(messages?.length, 2, "the sysex and the note after it");
    assert.deepEqual(messages![0], [0xf0, ...SYSEX_64K, 0xf7]);
    assert.deepEqual(messages![1], [0x90, 1, 64]);
  },
);

pyTest(
  "a 64 KiB sysex from python-rtmidi reaches midisock byte for byte",
  async (py) => {
    const name = uniqueName("sysex-from-py");
    await py.command(["open", name, "out"]);
    await using input = await openWhenListed(() =>
      openInput(name, { api: API })
    );
    await py.command(["sysex", name, 65536]);
    const [got] = await take(input, 1, 15_000);
    assert.equal(got.type, "sysex");
    assert.ok(got.type === "sysex");
    const data = got.data;
    assert.equal(data.length, 65536);
    assert.ok(
      data.every((byte, i) => byte === i % 128),
      "every byte where python put it",
    );
    assert.equal(input.dropped, 0);
  },
);

hwTest("a 64 KiB sysex between two midisock ports arrives whole", async () => {
  const name = uniqueName("sysex-self");
  await using out = await openOutput(name, { virtual: true, api: API });
  await using input = await openInput(name, { api: API });
  const want = [
    message("sysex", { data: SYSEX_64K }),
    message("clock"),
    message("sysex", { data: SYSEX_64K.slice(0, 20_000) }),
  ];
  await Promise.all(want.map((msg) => out.send(msg)));
  assertSameMessages(await take(input, want.length, 15_000), want);
});

function burst(count: number): Message[] {
  return Array.from(
    { length: count },
    (_, i) =>
      message("note_on", {
        channel: (i >> 14) % 16,
        note: i % 128,
        velocity: (i >> 7) % 128,
      }),
  );
}

hwTest(
  "a burst of 10,000 messages sent at once arrives whole and in order",
  async () => {
    const name = uniqueName("burst10k");
    await using out = await openOutput(name, { virtual: true, api: API });
    await using input = await openInput(name, {
      api: API,
      queueSize: 20_000,
    });
    const want = burst(10_000);
    // Not awaited one by one: all 10,000 are handed over in one go.
    const sent = Promise.all(want.map((msg) => out.send(msg)));
    assertSameMessages(await take(input, want.length, 20_000), want);
    await sent;
    assert.equal(out.dropped, 0);
    assert.equal(input.dropped, 0);
  },
);

pyTest(
  "a burst of 10,000 messages to python-rtmidi arrives whole and in order",
  async (py) => {
    const name = uniqueName("burst-to-py");
    await py.command(["open", name, "in"]);
    await using out = await openWhenListed(() =>
      openOutput(name, { api: API })
    );
    const want = burst(10_000);
    await Promise.all(want.map((msg) => out.send(msg)));
    const { messages } = await py.command(["received", name, 10_000, 20]);
    assert.equal(messages?.length, 10_000);
    for (let i = 0; i < want.length; i++) {
      const m = want[i] as { channel: number; note: number; velocity: number };
      assert.deepEqual(
        messages![i],
        [0x90 | m.channel, m.note, m.velocity],
        `message ${i}`,
      );
    }
  },
);

hwTest(
  'overflow: "drop" loses what does not fit JACK\'s buffer, and counts it',
  async () => {
    const name = uniqueName("drop");
    await using out = await openOutput(name, {
      virtual: true,
      api: API,
      overflow: "drop",
    });
    await using input = await openInput(name, {
      api: API,
      queueSize: 20_000,
    });
    const want = burst(10_000);
    await Promise.all(want.map((msg) => out.send(msg)));
    assert.ok(out.dropped > 0, "a burst this size overflows one cycle");
    const got = await take(input, want.length - out.dropped, 10_000);
    // What arrived is in order: a subsequence of what was sent.
    let at = 0;
    for (const msg of got) {
      while (at < want.length && !equals(want[at], msg)) at++;
      assert.ok(at < want.length, "arrived in the order sent");
      at++;
    }
  },
);

hwTest("sends wait in order behind a long sysex", async () => {
  const name = uniqueName("order");
  await using out = await openOutput(name, { virtual: true, api: API });
  await using input = await openInput(name, { api: API });
  const want: Message[] = [];
  for (let i = 0; i < 5; i++) {
    want.push(message("sysex", { data: SYSEX_64K.slice(0, 30_000 + i) }));
    want.push(message("note_on", { note: i }));
  }
  const settled: number[] = [];
  await Promise.all(
    want.map((msg, i) => out.send(msg).then(() => settled.push(i))),
  );
  assert.deepEqual(settled, want.map((_, i) => i), "sends settle in order");
  assertSameMessages(await take(input, want.length, 15_000), want);
});

hwTest(
  "without an api, a name opens the port on the backend that has it",
  async () => {
    const name = uniqueName("anyapi");
    await using _out = await openOutput(name, { virtual: true, api: API });
    const result = await runScript(
      `
      import { openInput } from "${moduleUrl("src/hardware/mod.ts")}";
      const input = await openInput("${name}");
      console.log(input.api, input.name);
      await input.close();
      `,
      ["--allow-ffi", "--allow-env"],
      { MIDISOCK_RTMIDI_API: "" },
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout.trim(), new RegExp(`^${API} .*${name}$`));
    assert.equal(
      withoutDbNoise(result.stderr),
      "",
      "nothing printed by native libraries",
    );
  },
);

Deno.test({
  ...skip(
    "without a JACK server, JACK calls say the server is not running and print nothing else",
    UNAVAILABLE?.includes("RtMidi library") && RTMIDI_MISSING,
  ),
  async fn() {
    const result = await runScript(
      `
      import * as hw from "${moduleUrl("src/hardware/mod.ts")}";
      const show = (e) => console.log(e.name + ": " + e.message);
      await hw.openInput("x", { virtual: true, api: "jack" }).catch(show);
      await hw.getOutputNames({ api: "jack" }).catch(show);
      const jack = (await hw.getUsableApis()).find((s) => s.api === "jack");
      console.log("usable: " + jack?.usable);
      `,
      ["--allow-ffi", "--allow-env"],
      // libjack reads the server's name from here: this one never runs.
      { JACK_DEFAULT_SERVER: `midisock-none-${Deno.pid}` },
    );
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trim().split("\n");
    assert.equal(lines.length, 3, result.stdout);
    for (const line of lines.slice(0, 2)) {
      assert.match(
        line,
        /^BackendUnavailableError: MIDI backend jack is unavailable: the JACK server is not running; start one with `jackd -d alsa`/,
      );
    }
    assert.equal(lines[2], "usable: false");
    assert.equal(
      withoutDbNoise(result.stderr),
      "",
      "nothing printed by libjack or RtMidi",
    );
  },
});

Deno.test({
  ...skip(
    "a JACK input opened while JACK drops a process that just exited is connected",
    RTMIDI_MISSING,
    API !== "jack" && "it needs JACK (MIDISOCK_RTMIDI_API=jack)",
  ),
  async fn() {
    assertAvailable();
    for (let round = 0; round < 3; round++) {
      // Another process leaves JACK with clients busy in a cycle.
      const result = await runScript(
        `
        import { message } from "${moduleUrl("src/codec/messages.ts")}";
        import { openInput, openOutput } from "${
          moduleUrl("src/hardware/mod.ts")
        }";
        import { poller } from "${moduleUrl("src/hardware/_poller.ts")}";
        const out = await openOutput("${uniqueName("gone")}", {
          virtual: true,
          api: "jack",
        });
        const input = await openInput(out.name, { api: "jack" });
        (async () => { for await (const _ of input); })();
        while (!poller.sleeping) await new Promise((r) => setTimeout(r, 20));
        setInterval(() => out.send(message("clock")), 1);
        await new Promise((r) => setTimeout(r, 30));
        Deno.exit(0);
        `,
        ["--allow-ffi", "--allow-env"],
      );
      assert.equal(result.code, 0, result.stderr);
      // Opened now, the input hears what is sent to it: RtMidi does not say
      // when JACK did not connect it, so midisock checks, and opens again.
      const name = uniqueName("after-exit");
      await using out = await openOutput(name, { virtual: true, api: API });
      const input = await openInput(name, { api: API });
      try {
        const deadline = Date.now() + 5000;
        let got: unknown;
        while (got === undefined) {
          if (Date.now() > deadline) throw new Error(`round ${round}: deaf`);
          await out.send(message("start"));
          await sleep(100);
          got = input.poll();
        }
      } finally {
        await input.close();
      }
    }
  },
});
