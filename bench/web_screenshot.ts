// Makes docs/web.png: the hub's page in headless Chromium, with a device,
// a mido program and a phone on the hub, and traffic in the monitor; and
// docs/web-phone.png, the same page on the phone (390 x 844, upright).
//
// Run:   deno run -A bench/web_screenshot.ts [PATH [dark|light [PHONE_PATH]]]
//        (needs chromium and playwright-core, as the browser tests do)

import {
  connect,
  Hub,
  InputPortBase,
  type Message,
  message,
  PortServer,
  WebServer,
} from "../mod.ts";
import { Browser, noBrowser } from "../tests/_browser.ts";

const OUT = Deno.args[0] ??
  new URL("../docs/web.png", import.meta.url).pathname;
const PHONE_OUT = Deno.args[2] ??
  new URL("../docs/web-phone.png", import.meta.url).pathname;

if (noBrowser) {
  console.log("no browser here: see tests/_browser.ts");
  Deno.exit(1);
}

/** A stand-in for a hardware keyboard: plays what it is told. */
class Device extends InputPortBase {
  readonly name = '"Keystation 49 MIDI 1"';
  play(msg: Message): void {
    this.deliver(msg);
  }
  send(): Promise<void> {
    return Promise.resolve();
  }
  reset = () => Promise.resolve();
  panic = () => Promise.resolve();
  close(): Promise<void> {
    this.finish(undefined, true);
    return Promise.resolve();
  }
}

function pause(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The usual ports when they are free, else any. */
function free(port: number): number {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return port;
  } catch {
    return 0;
  }
}

await using hub = new Hub();
await using server = await hub.attach(new PortServer("127.0.0.1", free(8080)));
const web = await hub.attach(new WebServer({ port: free(8081) }));
const device = new Device();
hub.add(device, { kind: "device", transport: "midi" });
await using mido = await connect("127.0.0.1", server.port);
await using browser = new Browser();
const phone = await browser.newPage({
  viewport: { width: 390, height: 844 },
  hasTouch: true,
});
await phone.goto(web.url);
const page = await browser.newPage({
  viewport: { width: 1280, height: 1034 },
  colorScheme: (Deno.args[1] ?? "dark") as "dark" | "light",
});
await page.goto(web.url);
await page.waitFor(
  `() => document.querySelector("#status").dataset.state === "connected"`,
);
await pause(300);

// A little music: the device plays, the program sends controls, the phone
// taps a key.
const chords = [[69, 72, 76], [65, 69, 72], [72, 76, 79], [74, 77, 81]];
for (const [i, chord] of chords.entries()) {
  if (i === 0) device.play(message("program_change", { program: 4 }));
  for (const note of chord) {
    device.play(message("note_on", { note, velocity: 70 + 8 * i }));
  }
  await mido.send(
    message("control_change", { control: 1, value: 20 + 25 * i }),
  );
  await mido.send(message("pitchwheel", { pitch: 1024 * i - 1500 }));
  await pause(40);
  if (i < chords.length - 1) {
    for (const note of chord) device.play(message("note_off", { note }));
  }
}
await mido.send(message("sysex", { data: [0x7e, 0x7f, 0x06, 0x01] }));
// A phone upright shows one octave, C4 to B4.
await phone.tap(`#keyboard button[aria-label="E4"]`);
await pause(40);
// Lit keys from the device (the last chord is held), pressed ones here.
await page.click("#play-title");
for (const key of ["z", "c", "b"]) await page.key("down", key);
// Long enough for the endpoint counters to be sent again.
await pause(1200);
// The viewport holds the whole page (a full-page capture resizes it, and
// the log loses its place).
await page.screenshot(OUT, false);
await phone.screenshot(PHONE_OUT, false);
for (const key of ["z", "c", "b"]) await page.key("up", key);
console.log(`wrote ${OUT} and ${PHONE_OUT}`);
