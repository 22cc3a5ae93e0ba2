import assert from "node:assert/strict";
import { skip } from "./_skip.ts";
import { layoutFromSymbols, LAYOUTS } from "../ffi/layout.ts";
import {
  candidatePaths,
  loadRtMidi,
  PATH_VARIABLE,
  RtMidiNotFoundError,
} from "../ffi/load.ts";
import { SYMBOLS } from "../ffi/symbols.ts";
import {
  ALSA_SYMBOLS,
  JACK_STATUS,
  JACK_SYMBOLS,
  rtldDefault,
} from "../ffi/system.ts";
import { jackReason } from "../src/hardware/_jack.ts";
import {
  API,
  assertAvailable,
  moduleUrl,
  RTMIDI_MISSING,
  runScript,
} from "./_rtmidi.ts";

Deno.test("the symbol table marks only version-specific symbols optional", () => {
  const optional = Object.entries(SYMBOLS)
    .filter(([, symbol]) => "optional" in symbol && symbol.optional)
    .map(([name]) => name)
    .sort();
  assert.deepEqual(optional, [
    "rtmidi_get_version",
    "rtmidi_set_error_callback",
  ]);
});

Deno.test("calls that wait for the MIDI server are nonblocking", () => {
  for (
    const name of [
      "rtmidi_in_create",
      "rtmidi_out_create",
      "rtmidi_in_free",
      "rtmidi_out_free",
      "rtmidi_open_port",
      "rtmidi_open_virtual_port",
      "rtmidi_close_port",
      "rtmidi_get_port_count",
      "rtmidi_get_port_name",
    ] as const
  ) {
    assert.equal(SYMBOLS[name].nonblocking, true, name);
  }
  // Quick calls stay on the JavaScript thread: a message sent, and the
  // input callback set or removed (flags only), also from inside it.
  for (
    const name of [
      "rtmidi_out_send_message",
      "rtmidi_in_set_callback",
      "rtmidi_in_cancel_callback",
    ] as const
  ) {
    assert.equal("nonblocking" in SYMBOLS[name], false, name);
  }
});

Deno.test("candidate paths cover each platform's usual names and places", () => {
  const linux = candidatePaths("linux");
  for (
    const path of [
      "librtmidi.so.7",
      "librtmidi.so.6",
      "librtmidi.so.5",
      "librtmidi.so",
      "/usr/lib/x86_64-linux-gnu/librtmidi.so.6",
      "/usr/local/lib/librtmidi.so",
    ]
  ) assert.ok(linux.includes(path), path);
  const mac = candidatePaths("darwin");
  assert.ok(mac.includes("/opt/homebrew/lib/librtmidi.dylib"));
  assert.ok(mac.includes("/usr/local/lib/librtmidi.dylib"));
  const windows = candidatePaths("windows");
  assert.ok(windows.includes("rtmidi.dll"));
  assert.ok(windows.includes("librtmidi-7.dll"));
});

Deno.test("the not-found error lists every path tried and how to install", () => {
  const error = new RtMidiNotFoundError([["a.so", "gone"], ["b.so", "bad"]]);
  assert.equal(error.name, "RtMidiNotFoundError");
  assert.match(error.message, /^Cannot load the RtMidi library; tried:/);
  assert.match(error.message, /a\.so: gone\n {2}b\.so: bad/);
  for (const hint of ["apt-get", "dnf", "pacman", "brew", PATH_VARIABLE]) {
    assert.ok(error.message.includes(hint), hint);
  }
});

Deno.test({
  ...skip(
    "the library loads once and its version layout is known",
    RTMIDI_MISSING,
  ),
  fn() {
    assertAvailable();
    const first = loadRtMidi();
    assert.equal(loadRtMidi(), first);
    const layout = layoutFromSymbols(first.lib, first.path) ?? LAYOUTS["5"];
    assert.ok(
      Object.values(LAYOUTS).some((l) => l.okOffset === layout.okOffset),
    );
    if (first.path.endsWith(".so.6")) assert.equal(layout.version, "5");
  },
});

Deno.test("a missing library is one error naming the path and the fix", async () => {
  const result = await runScript(
    `
    import { getApis } from "${moduleUrl("src/hardware/mod.ts")}";
    try { getApis(); } catch (e) { console.log(e.name); console.log(e.message); }
    `,
    ["--allow-ffi", `--allow-env=${PATH_VARIABLE}`],
    { [PATH_VARIABLE]: "/nonexistent/librtmidi.so" },
  );
  assert.equal(result.code, 0, result.stderr);
  const [name, ...message] = result.stdout.trim().split("\n");
  assert.equal(name, "RtMidiNotFoundError");
  assert.match(message.join("\n"), /\/nonexistent\/librtmidi\.so: /);
  assert.match(message.join("\n"), /apt-get install librtmidi/);
});

Deno.test("without --allow-ffi the permission error names the flag", async () => {
  const result = await runScript(
    `
    import { getInputNames } from "${moduleUrl("src/hardware/mod.ts")}";
    try { await getInputNames(); } catch (e) {
      console.log(e instanceof Deno.errors.NotCapable, e.message);
    }
    `,
    [],
  );
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /^true .*--allow-ffi/);
});

Deno.test("importing the hardware module needs no permission", async () => {
  const result = await runScript(
    `import "${moduleUrl("src/hardware/mod.ts")}"; console.log("imported");`,
    [],
  );
  assert.equal(result.code, 0, result.stderr);
  assert.equal(result.stdout.trim(), "imported");
});

Deno.test("libjack and libasound calls that talk to a server are nonblocking", () => {
  assert.equal(JACK_SYMBOLS.jack_client_open.nonblocking, true);
  for (const name of ["snd_seq_open", "snd_seq_close"] as const) {
    assert.equal(ALSA_SYMBOLS[name].nonblocking, true, name);
  }
  // Graph reads and ring checks are quick reads of shared memory.
  for (
    const name of [
      "jack_get_ports",
      "jack_port_by_name",
      "jack_ringbuffer_write_space",
    ] as const
  ) assert.equal("nonblocking" in JACK_SYMBOLS[name], false, name);
});

Deno.test("the JACK output ring's place is known for 5.0, 6.0 and master only", () => {
  assert.equal(LAYOUTS["4"].jackOutput, undefined);
  for (const version of ["5", "6", "master"] as const) {
    assert.deepEqual(LAYOUTS[version].jackOutput, {
      rtapiOffset: 8,
      apiDataOffset: 8,
      ringOffset: 16,
      maxWriteOffset: 24,
      maxWrite: 16383,
    });
  }
});

Deno.test("an input's queue is in the same place from 4.0 to master", () => {
  for (const version of ["4", "5", "6", "master"] as const) {
    assert.deepEqual(LAYOUTS[version].inputQueue, {
      rtapiOffset: 8,
      frontOffset: 80,
      backOffset: 84,
      ringSizeOffset: 88,
    });
  }
});

Deno.test("a JACK failure is said in words, with how to start a server", () => {
  assert.match(
    jackReason(JACK_STATUS.failure | JACK_STATUS.serverFailed),
    /^the JACK server is not running; start one with `jackd -d alsa`/,
  );
  assert.equal(
    jackReason(JACK_STATUS.failure | JACK_STATUS.versionError),
    "libjack and the JACK server are different versions",
  );
  assert.equal(
    jackReason(0x1000),
    "libjack could not open a client (status 0x1000)",
  );
  assert.equal(rtldDefault("linux"), null);
  // (void *)-2, as an address.
  assert.equal(Deno.UnsafePointer.value(rtldDefault("darwin")), 2n ** 64n - 2n);
});

Deno.test({
  ...skip(
    "RtMidi's JACK output ring is found, checked, and empty when made",
    RTMIDI_MISSING,
    API !== "jack" && "it needs JACK (MIDISOCK_RTMIDI_API=jack)",
  ),
  async fn() {
    assertAvailable();
    const { openOutput } = await import("../src/hardware/mod.ts");
    const { ringsReadable } = await import("../src/hardware/_native.ts");
    await using _out = await openOutput(`ring-${Deno.pid}`, {
      virtual: true,
      api: "jack",
    });
    const layout = loadRtMidi().layout;
    // Every RtMidi this project targets but 4.0 keeps the ring in one place.
    assert.equal(ringsReadable(), layout?.jackOutput !== undefined);
  },
});
