// What the command line says about MIDI backends and ports (issue 10, items
// 2-6; issue 15's `ports --watch`): `ports` and the hardware flags of
// `serve`, run as subprocesses, with and without a JACK server.

import { skip } from "./_skip.ts";
import assert from "node:assert/strict";
import { getUsableApis } from "../src/hardware/mod.ts";
import { HARDWARE, NET, run, spawn } from "./_cli.ts";
import { PyRtMidi } from "./_pyrtmidi.ts";
import {
  API,
  assertAvailable,
  IGNORE,
  REQUIRED,
  RTMIDI_MISSING,
  UNAVAILABLE,
  uniqueName,
  within,
  withoutDbNoise,
} from "./_rtmidi.ts";
import { PYTHON_MISSING } from "./_pyrtmidi.ts";

/** libjack reads the server's name from here: this one never runs. */
const NO_SERVER = { JACK_DEFAULT_SERVER: `midisock-none-${Deno.pid}` };

/** Needs RtMidi with JACK (and, unless `noServer`, a running server). */
function portsTest(
  name: string,
  fn: () => Promise<void>,
  needs: { server?: boolean; python?: boolean } = {},
): void {
  const library = UNAVAILABLE === undefined ||
    !/RtMidi library|RtMidi cannot|built without/.test(UNAVAILABLE);
  const ignore = (needs.server !== false ? IGNORE : !library && !REQUIRED) ||
    (needs.python === true && PYTHON_MISSING !== undefined && !REQUIRED);
  Deno.test({
    name,
    ignore,
    async fn() {
      if (needs.server !== false) assertAvailable();
      if (needs.python && PYTHON_MISSING !== undefined) {
        throw new Error(PYTHON_MISSING);
      }
      await within(fn(), 60_000, name);
    },
  });
}

/** Whether ALSA can be used here (then "no backend usable" cannot happen). */
const ALSA_USABLE = IGNORE
  ? false
  : (await getUsableApis()).some((state) =>
    state.api === "alsa" && state.usable
  );

/** Lines that are none of midisock's: native libraries printing. */
function foreign(stderr: string, command: string): string[] {
  return withoutDbNoise(stderr).split("\n").filter((line) =>
    line !== "" &&
    !/^\w+ (unavailable: .+|no ports)$/.test(line) &&
    !line.startsWith(`midisock ${command}: `)
  );
}

portsTest(
  "ports without a JACK server says jack unavailable and why, on stderr",
  async () => {
    const { code, stdout, stderr } = await run(
      "ports",
      [],
      HARDWARE,
      NO_SERVER,
    );
    assert.match(
      stderr,
      /^jack unavailable: the JACK server is not running; start one with `jackd -d alsa`.*qjackctl$/m,
    );
    assert.deepEqual(foreign(stderr, "ports"), [], "nothing but midisock's");
    assert.doesNotMatch(stdout, /unavailable|no ports/);
    if (!ALSA_USABLE) {
      assert.equal(code, 1);
      assert.equal(stdout, "");
      assert.match(stderr, /^midisock ports: no MIDI backend can be used$/m);
    }
    const json = await run("ports", ["--json", "--api", "jack"], HARDWARE, {
      ...NO_SERVER,
    });
    assert.equal(json.code, 1);
    const parsed = JSON.parse(json.stdout);
    assert.match(parsed.apis[0].error, /^the JACK server is not running/);
    assert.deepEqual(foreign(json.stderr, "ports"), []);
  },
  { server: false },
);

portsTest(
  "ports prints port lines only on stdout: cut -f5- gives names",
  async () => {
    const name = uniqueName("cut");
    const { openOutput } = await import("../src/hardware/mod.ts");
    await using _port = await openOutput(name, { virtual: true, api: API });
    const { code, stdout, stderr } = await run("ports", [], HARDWARE);
    assert.equal(code, 0, stderr);
    const lines = stdout.trimEnd().split("\n");
    for (const line of lines) {
      assert.match(line, /^\w+ (input|output) \d+ (virtual|device|-) \S/);
    }
    const names = lines.map((line) => line.split(" ").slice(4).join(" "));
    assert.ok(names.some((n) => n.endsWith(name)), names.join("\n"));
    assert.deepEqual(foreign(stderr, "ports"), []);
  },
);

portsTest(
  "serve --virtual with --api jack and no JACK server says how to start one",
  async () => {
    const { code, stderr } = await run(
      "serve",
      ["127.0.0.1:0", "--virtual", "x", "--api", "jack"],
      [NET, ...HARDWARE],
      NO_SERVER,
    );
    assert.equal(code, 1);
    const lines = withoutDbNoise(stderr).trimEnd().split("\n");
    assert.equal(lines.length, 1, stderr);
    assert.match(
      lines[0],
      /^midisock serve: MIDI backend jack is unavailable: the JACK server is not running; start one with `jackd -d alsa`/,
    );
  },
  { server: false },
);

portsTest(
  "serve --in NAME without --api opens a JACK port when ALSA cannot be used",
  async () => {
    const name = uniqueName("default-api");
    const { openOutput } = await import("../src/hardware/mod.ts");
    await using _port = await openOutput(name, { virtual: true, api: API });
    await using serve = spawn(
      "serve",
      ["127.0.0.1:0", "--in", name],
      [NET, ...HARDWARE],
      { MIDISOCK_RTMIDI_API: "" },
    );
    await serve.listening(30_000);
    await serve.waitFor(new RegExp(`^input ".*${name}" opened$`), 5000);
    serve.kill("SIGTERM");
    const { code, stderr } = await serve.finished();
    assert.equal(code, 0, stderr);
    assert.equal(
      withoutDbNoise(stderr),
      "",
      "nothing printed by native libraries",
    );
  },
);

portsTest(
  "ports --watch prints ports as they come and go until SIGTERM",
  async () => {
    const stem = uniqueName("watch");
    const { openOutput } = await import("../src/hardware/mod.ts");
    await using _first = await openOutput(`${stem}-a`, {
      virtual: true,
      api: API,
    });
    await using py = PyRtMidi.start();
    await using watch = spawn(
      "ports",
      ["--watch", "--api", "jack", "--interval", "100"],
      HARDWARE,
    );
    // The ports there are come first, as "added".
    await watch.waitFor(new RegExp(`^added jack input \\S+:${stem}-a$`));
    await py.command(["open", `${stem}-b`, "in"]);
    await watch.waitFor(new RegExp(`^added jack output \\S+:${stem}-b$`));
    await py.command(["close", `${stem}-b`, "in"]);
    await watch.waitFor(new RegExp(`^removed jack output \\S+:${stem}-b$`));
    watch.kill("SIGTERM");
    const { code, stdout, stderr } = await watch.finished();
    assert.equal(code, 0, stderr);
    for (const line of stdout.trimEnd().split("\n")) {
      assert.match(line, /^(added|removed) jack (input|output) \S/);
    }
    assert.deepEqual(foreign(stderr, "ports"), []);
  },
  { python: true },
);

portsTest(
  "ports --watch --json prints one JSON object per change",
  async () => {
    const name = uniqueName("watch-json");
    const { openOutput } = await import("../src/hardware/mod.ts");
    await using watch = spawn(
      "ports",
      ["--watch", "--json", "--api", "jack", "--interval", "50"],
      HARDWARE,
    );
    // Started: the first look is done once a port made now is reported.
    await using _port = await openOutput(name, { virtual: true, api: API });
    const line = (await watch.waitFor(new RegExp(`"name":"[^"]*${name}"`)))
      .input!;
    const { type, api, direction, name: full, ...rest } = JSON.parse(line);
    assert.deepEqual([type, api, direction], ["added", "jack", "input"]);
    assert.ok(full.endsWith(name), full);
    assert.deepEqual(rest, {});
    watch.kill("SIGINT");
    assert.equal((await watch.finished()).code, 0);
  },
);

portsTest(
  "ports --interval without --watch, or a bad one, is a usage error",
  async () => {
    for (
      const args of [
        ["--interval", "100"],
        ["--watch", "--interval", "0"],
        ["--watch", "--interval", "soon"],
      ]
    ) {
      const { code, stderr } = await run("ports", args, HARDWARE);
      assert.equal(code, 2, args.join(" "));
      assert.match(stderr, /^midisock ports: .*--interval.* \(see --help\)\n$/);
    }
  },
  { server: false },
);

Deno.test({
  ...skip("a watch started with no reader keeps nothing alive", RTMIDI_MISSING),
  async fn() {
    assertAvailable();
    const { runScript, moduleUrl } = await import("./_rtmidi.ts");
    const result = await runScript(
      `
      import { watchPorts } from "${moduleUrl("src/hardware/mod.ts")}";
      watchPorts({ api: "jack" });
      console.log("started");
      `,
      ["--allow-ffi", "--allow-env"],
    );
    assert.equal(result.code, 0, result.stderr);
    assert.equal(result.stdout.trim(), "started");
  },
});
