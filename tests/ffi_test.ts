import assert from "node:assert/strict";
import { layoutFromSymbols, LAYOUTS } from "../ffi/layout.ts";
import {
  candidatePaths,
  loadRtMidi,
  PATH_VARIABLE,
  RtMidiNotFoundError,
} from "../ffi/load.ts";
import { SYMBOLS } from "../ffi/symbols.ts";
import { assertAvailable, IGNORE, moduleUrl, runScript } from "./_rtmidi.ts";

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
      "rtmidi_in_set_callback",
      "rtmidi_in_cancel_callback",
    ] as const
  ) {
    assert.equal(SYMBOLS[name].nonblocking, true, name);
  }
  assert.equal("nonblocking" in SYMBOLS.rtmidi_out_send_message, false);
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
  name: "the library loads once and its version layout is known",
  ignore: IGNORE,
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
