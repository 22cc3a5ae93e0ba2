// The hub's page in a real browser: Debian's chromium, headless, driven by
// npm playwright-core (see tests/_browser.ts). Ignored with a reason when
// either is missing, unless MIDISOCK_REQUIRE_BROWSER=1.

import assert from "node:assert/strict";
import {
  connect,
  formatMessage,
  Hub,
  type Message,
  message,
  PortServer,
  type SocketPort,
  WebServer,
} from "../mod.ts";
import { boundedTest, LOOPBACK, take, until } from "./_net.ts";
import {
  Browser,
  BROWSER_MISSING,
  type Page,
  type PageOptions,
} from "./_browser.ts";
import { Player, TimedListener } from "./_web_time.ts";
import { NET, spawn } from "./_cli.ts";
import { OPENSSL_MISSING, testCertificates } from "./_tls.ts";

const TOKEN = "a-token-of-twenty-chars";

/** A browser test: loopback, `node` (and `deno` for serve), 30 s at most. */
function browserTest(
  name: string,
  fn: () => Promise<void>,
  ignore?: string,
): void {
  boundedTest(name, fn, {
    ignore: BROWSER_MISSING ?? ignore,
    permissions: { ...LOOPBACK, run: true },
    ms: 30_000,
  });
}

/** A hub with a TCP port and a web server, closed in order. */
class TestHub implements AsyncDisposable {
  readonly hub: Hub;
  readonly server: PortServer;
  readonly web: WebServer;

  private constructor(hub: Hub, server: PortServer, web: WebServer) {
    this.hub = hub;
    this.server = server;
    this.web = web;
  }

  /** A hub with a TCP port, and its page on `webPort`. */
  static async open(
    options: ConstructorParameters<typeof Hub>[0] = {},
    webPort = 0,
  ): Promise<TestHub> {
    const hub = new Hub(options);
    const server = await hub.attach(new PortServer("127.0.0.1", 0));
    const web = await hub.attach(new WebServer({ port: webPort }));
    return new TestHub(hub, server, web);
  }

  /** A TCP client, once the hub has it. */
  async client(): Promise<SocketPort> {
    const before = this.hub.endpoints.length;
    const client = await connect("127.0.0.1", this.server.port, {
      token: this.hub.gate.wantsToken ? TOKEN : undefined,
    });
    await until(() => this.hub.endpoints.length > before, 5000, "the client");
    return client;
  }

  async close(): Promise<void> {
    await this.web.close();
    await this.server.close();
    await this.hub.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Opens the page (after `init`, a script run first) and waits until it
 * says it is connected, unless `wait` is false. */
async function openPage(
  browser: Browser,
  url: string,
  options: PageOptions & { init?: string; wait?: boolean } = {},
): Promise<Page> {
  const { init, wait, ...pageOptions } = options;
  const page = await browser.newPage(pageOptions);
  if (init !== undefined) await page.addInitScript(init);
  await page.goto(url);
  if (wait ?? true) await connected(page);
  return page;
}

async function connected(page: Page): Promise<void> {
  await page.waitFor(
    `() => document.querySelector("#status").dataset.state === "connected"`,
  );
}

async function key(page: Page, name: string): Promise<void> {
  await page.click(`#keyboard button[aria-label="${name}"]`);
}

/** The page's JavaScript errors and warnings: there should be none. */
async function assertQuiet(page: Page): Promise<void> {
  const log = (await page.log()).filter((line) =>
    /^(error|warning)/.test(line) && !line.includes("favicon")
  );
  assert.deepEqual(log, []);
}

browserTest(
  "clicking a key reaches a TCP client of serve as note_on then note_off",
  async () => {
    await using serve = spawn("serve", [
      "127.0.0.1:0",
      "--web",
      "127.0.0.1:0",
    ], [NET]);
    const port = await serve.listening();
    // The page's address is on serve's first lines.
    const [, url] = await serve.waitFor(/^web page on (http:\/\/\S+)$/);
    assert.match(serve.lines[1], /^web page on /);
    const tcp = await connect("127.0.0.1", port);
    await using browser = new Browser();
    const page = await openPage(browser, url);
    await key(page, "C4");
    assert.deepEqual(await take(tcp, 2), [
      message("note_on", { note: 60, velocity: 100 }),
      message("note_off", { note: 60, velocity: 0 }),
    ]);
    await serve.waitFor(/^connect web 127\.0\.0\.1:\d+ \(2 clients\)$/);
    await assertQuiet(page);
    await tcp.close();
  },
);

browserTest(
  "serve --web --idle-timeout 2: an open page stays connected",
  async () => {
    await using serve = spawn("serve", [
      "127.0.0.1:0",
      "--web",
      "127.0.0.1:0",
      "--idle-timeout",
      "2",
      "--monitor",
    ], [NET]);
    await serve.listening();
    const [, url] = await serve.waitFor(/^web page on (http:\/\/\S+)$/);
    await using browser = new Browser();
    const page = await openPage(browser, url);
    const [, name] = await serve.waitFor(/^connect (web \S+) \(1 client\)$/);
    // Three idle timeouts, then a key: the line it makes is the sentinel.
    const start = Date.now();
    await until(() => Date.now() - start > 6000, 10_000, "three timeouts");
    await key(page, "C4");
    await serve.waitFor(new RegExp(`^[\\d:.]+ ${name} note_on `));
    assert.deepEqual(serve.lines.filter((l) => l.startsWith("disconnect")), []);
    assert.equal(
      serve.lines.filter((l) => l.startsWith("connect web")).length,
      1,
    );
  },
);

browserTest("over HTTPS the page plays through WSS", async () => {
  const { cert, key: privateKey } = await testCertificates();
  const hub = new Hub();
  const server = await hub.attach(new PortServer("127.0.0.1", 0));
  const web = await hub.attach(
    new WebServer({ port: 0, tls: { cert, key: privateKey } }),
  );
  try {
    const tcp = await connect("127.0.0.1", server.port);
    await until(() => hub.endpoints.length === 1);
    await using browser = new Browser();
    const page = await openPage(browser, web.url, { ignoreHTTPSErrors: true });
    assert.equal(await page.evaluate(`() => location.protocol`), "https:");
    await key(page, "B4");
    assert.deepEqual(await take(tcp, 2), [
      message("note_on", { note: 71, velocity: 100 }),
      message("note_off", { note: 71, velocity: 0 }),
    ]);
    await assertQuiet(page);
    await tcp.close();
  } finally {
    await web.close();
    await server.close();
    await hub.close();
  }
}, OPENSSL_MISSING);

browserTest(
  "1000 messages from a TCP client all appear in the monitor",
  async () => {
    await using hub = await TestHub.open();
    await using browser = new Browser();
    const page = await openPage(browser, hub.web.url);
    const tcp = await hub.client();
    const sent: Message[] = [];
    for (let i = 0; i < 1000; i++) {
      sent.push(
        i % 4 === 3
          ? message("control_change", {
            channel: i % 16,
            control: 1,
            value: i % 128,
          })
          : message("note_on", {
            channel: i % 16,
            note: i % 128,
            velocity: (i % 127) + 1,
          }),
      );
    }
    await tcp.sendAll(sent);
    await page.waitFor(
      `() => document.querySelector("#monitor-count").dataset.total === "1000"`,
    );
    await page.waitFor(
      `() => document.querySelectorAll("#log .line").length === 1000`,
    );
    const shown = await page.evaluate<string[]>(
      `() => [...document.querySelectorAll("#log .line")].map((line) =>
        line.querySelector("b").textContent + line.lastChild.textContent
      )`,
    );
    assert.deepEqual(shown, sent.map(formatMessage));
    const sources = await page.evaluate<string[]>(
      `() => [...new Set([...document.querySelectorAll("#log .source")].map((e) => e.textContent))]`,
    );
    assert.deepEqual(sources, [
      hub.hub.endpoints.find((e) => e.transport === "tcp")!.name,
    ]);
    assert.equal(await page.text("#monitor-count"), "1,000 messages");

    // The filter shows one type; pause freezes the view; clear empties it.
    await page.select("#filter", "controls");
    await page.waitFor(
      `() => document.querySelectorAll("#log .line").length === 250`,
    );
    await page.click("#pause");
    await tcp.send(message("control_change", { control: 2, value: 2 }));
    await page.waitFor(
      `() => document.querySelector("#monitor-count").textContent.includes("paused, 1 new")`,
    );
    assert.equal(
      await page.evaluate(
        `() => document.querySelectorAll("#log .line").length`,
      ),
      250,
    );
    await page.click("#pause");
    await page.waitFor(
      `() => document.querySelectorAll("#log .line").length === 251`,
    );
    await page.click("#clear");
    assert.equal(
      await page.evaluate(
        `() => document.querySelectorAll("#log .line").length`,
      ),
      0,
    );
    assert.equal(await page.text("#monitor-count"), "No messages yet");
    await assertQuiet(page);
    await tcp.close();
  },
);

browserTest(
  "a wrong token shows the refusal and nothing is relayed",
  async () => {
    await using hub = await TestHub.open({ token: TOKEN });
    const tcp = await hub.client();
    await using browser = new Browser();
    const page = await openPage(browser, hub.web.url, { wait: false });
    // The hub wants a token: the page asks for it.
    await page.waitFor(`() => !document.querySelector("#token-form").hidden`);
    await page.fill("#token", "not-the-token-at-all");
    await page.click("#token-form button[type=submit]");
    await page.waitFor(
      `() => document.querySelector("#status-text").textContent === "Refused: wrong token"`,
    );
    assert.match(await page.text("#token-why"), /Refused: wrong token\./);
    assert.equal(
      await page.evaluate(
        `() => document.querySelector("#status").dataset.state`,
      ),
      "refused",
    );
    // Keys played now go nowhere.
    await key(page, "C4");
    // The right token: connected, and the first note the client hears is D4.
    await page.fill("#token", TOKEN);
    await page.click("#token-form button[type=submit]");
    await connected(page);
    assert.equal(
      await page.evaluate(`() => document.querySelector("#token-form").hidden`),
      true,
    );
    await key(page, "D4");
    assert.deepEqual(await take(tcp, 2), [
      message("note_on", { note: 62, velocity: 100 }),
      message("note_off", { note: 62, velocity: 0 }),
    ]);
    await assertQuiet(page);
    await tcp.close();
  },
);

browserTest(
  "a token in the link's fragment is used and leaves the address bar",
  async () => {
    await using hub = await TestHub.open({ token: TOKEN });
    await using browser = new Browser();
    const page = await openPage(browser, `${hub.web.url}#token=${TOKEN}`);
    assert.equal(await page.evaluate(`() => location.hash`), "");
  },
);

browserTest("a page whose hub restarts reconnects by itself", async () => {
  const first = await TestHub.open();
  const port = first.web.port;
  await using browser = new Browser();
  const page = await openPage(browser, first.web.url);
  await first.close();
  await page.waitFor(
    `() => document.querySelector("#status").dataset.state === "retrying"`,
  );
  assert.match(
    await page.text("#status-text"),
    /hub closing · retrying in \d+ s/,
  );
  // The same address, a new hub.
  await using second = await TestHub.open({}, port);
  const tcp = await second.client();
  await connected(page);
  await key(page, "E4");
  assert.deepEqual(await take(tcp, 2), [
    message("note_on", { note: 64, velocity: 100 }),
    message("note_off", { note: 64, velocity: 0 }),
  ]);
  await tcp.close();
});

browserTest(
  "the computer keyboard plays on the chosen channel and velocity",
  async () => {
    await using hub = await TestHub.open();
    const tcp = await hub.client();
    await using browser = new Browser();
    const page = await openPage(browser, hub.web.url);
    await page.select("#channel", "9");
    await page.evaluate(`() => {
    const velocity = document.querySelector("#velocity");
    velocity.value = "50";
    velocity.dispatchEvent(new Event("input"));
  }`);
    assert.equal(await page.text("#velocity-value"), "50");
    await page.click("#play-title");
    await page.key("down", "z");
    await page.waitFor(
      `() => document.querySelector('[aria-label="C4"]').classList.contains("down")`,
    );
    await page.key("up", "z");
    await page.key("press", "=");
    assert.equal(await page.text("#octave-value"), "C5");
    await page.key("press", "q");
    assert.deepEqual(await take(tcp, 4), [
      message("note_on", { channel: 9, note: 60, velocity: 50 }),
      message("note_off", { channel: 9, note: 60, velocity: 0 }),
      message("note_on", { channel: 9, note: 84, velocity: 50 }),
      message("note_off", { channel: 9, note: 84, velocity: 0 }),
    ]);
    // Notes from the hub light their keys.
    await tcp.send(message("note_on", { note: 86 }));
    await page.waitFor(
      `() => document.querySelector('[aria-label="D6"]').classList.contains("lit")`,
    );
    await tcp.send(message("note_off", { note: 86 }));
    await page.waitFor(
      `() => !document.querySelector('[aria-label="D6"]').classList.contains("lit")`,
    );
    await tcp.close();
  },
);

browserTest(
  "the endpoint list follows clients as they come and go",
  async () => {
    await using hub = await TestHub.open();
    await using browser = new Browser();
    const page = await openPage(browser, hub.web.url);
    await page.waitFor(
      `() => document.querySelectorAll("#endpoints li").length === 1`,
    );
    assert.match(await page.text("#endpoints li"), /this page/);
    const tcp = await hub.client();
    await page.waitFor(
      `() => document.querySelectorAll("#endpoints li").length === 2`,
    );
    assert.match(
      await page.text("#endpoints li:nth-child(2)"),
      /TCP127\.0\.0\.1:\d+/,
    );
    await tcp.close();
    await page.waitFor(
      `() => document.querySelectorAll("#endpoints li").length === 1`,
    );
  },
);

/** A browser MIDI system with one input and one output, for the page. */
const FAKE_MIDI = `
  (() => {
    const input = { id: "in-1", name: "Fake Keys", state: "connected", onmidimessage: null };
    const output = { id: "out-1", name: "Fake Synth", state: "connected", sent: [],
      times: [], send(data, timestamp) {
        this.sent.push([...data]);
        this.times.push(timestamp ?? null);
      } };
    globalThis.fakeMidi = { input, output };
    navigator.requestMIDIAccess = async () => ({
      inputs: new Map([[input.id, input]]),
      outputs: new Map([[output.id, output]]),
      onstatechange: null,
    });
  })();
`;

browserTest(
  "the Web MIDI bridge plays a browser input into the hub and the hub on its output",
  async () => {
    await using hub = await TestHub.open();
    const tcp = await hub.client();
    await using browser = new Browser();
    const page = await openPage(browser, hub.web.url, { init: FAKE_MIDI });
    await page.click("#midi-enable");
    await page.waitFor(`() => !document.querySelector("#midi-on").hidden`);
    await page.select("#midi-input", "in-1");
    await page.select("#midi-output", "out-1");
    await page.evaluate(
      `() => fakeMidi.input.onmidimessage({ data: new Uint8Array([0xb2, 64, 127]) })`,
    );
    assert.deepEqual(await take(tcp, 1), [
      message("control_change", { channel: 2, control: 64, value: 127 }),
    ]);
    await tcp.send(message("program_change", { program: 5 }));
    await tcp.send(message("sysex", { data: [1, 2] }));
    await tcp.send(message("note_on", { note: 70 }));
    await page.waitFor(`() => fakeMidi.output.sent.length >= 2`);
    // Sysex is not bridged (it needs the browser's sysex permission).
    assert.deepEqual(await page.evaluate(`() => fakeMidi.output.sent`), [
      [0xc0, 5],
      [0x90, 70, 64],
    ]);
    // The on-screen keys play there too.
    await key(page, "G4");
    await page.waitFor(`() => fakeMidi.output.sent.length === 4`);
    assert.deepEqual(await take(tcp, 2), [
      message("note_on", { note: 67, velocity: 100 }),
      message("note_off", { note: 67, velocity: 0 }),
    ]);
    await tcp.close();
  },
);

/** The page's timing line, as its data says it. */
const TIMING = `document.querySelector("#midi-timing").dataset`;

/**
 * Opens the page with a fake MIDI system, bridges its input and output,
 * and waits until the page has told the hub it schedules and has mapped
 * its clock to the hub's for about two seconds (80 exchanges, 25 ms
 * apart).
 */
async function timedPage(browser: Browser, url: string): Promise<Page> {
  const page = await openPage(browser, url, { init: FAKE_MIDI });
  await page.click("#midi-enable");
  await page.waitFor(`() => !document.querySelector("#midi-on").hidden`);
  await page.select("#midi-input", "in-1");
  await page.select("#midi-output", "out-1");
  await page.waitFor(`() => ${TIMING}.timed === "true"`);
  await page.waitFor(`() => Number(${TIMING}.samples) >= 80`);
  return page;
}

/**
 * The page's clock against this process's (the hub's clock is
 * `performance.now()` here): both count from their time origins, read on
 * the same system clock (to 0.1 ms in the browser).
 */
async function pageOffset(page: Page): Promise<number> {
  const origin = await page.evaluate<number>(`() => performance.timeOrigin`);
  return performance.timeOrigin - origin;
}

browserTest(
  "a page that plays the hub on a MIDI output schedules each message at its time plus the hub's delay",
  async () => {
    await using hub = await TestHub.open({ latency: 40 });
    const player = new Player();
    hub.hub.add(player, { name: "player" });
    await using browser = new Browser();
    const page = await timedPage(browser, hub.web.url);
    assert.match(
      await page.text("#midi-timing"),
      /each message plays 40 ms after it was played/,
    );
    // Twenty notes, 10 ms apart, each played 2 ms before the hub has it.
    const played: number[] = [];
    for (let i = 0; i < 20; i++) {
      const at = hub.hub.clock.now() - 2;
      player.play(message("note_on", { note: 40 + i }), at);
      played.push(at);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await page.waitFor(`() => fakeMidi.output.sent.length === 20`);
    const sent = await page.evaluate<number[][]>(`() => fakeMidi.output.sent`);
    assert.deepEqual(sent, played.map((_, i) => [0x90, 40 + i, 64]));
    // Each is sent with its time plus the delay, on the page's clock, to a
    // millisecond: the page's map of the hub's clock is that good.
    const offset = await pageOffset(page);
    const times = await page.evaluate<number[]>(`() => fakeMidi.output.times`);
    const errors = times.map((time, i) => time - (played[i] + 40 + offset));
    assert.ok(
      errors.every((error) => Math.abs(error) < 1),
      `errors ${errors.map((e) => e.toFixed(2)).join(" ")} ms`,
    );
    assert.equal(await page.evaluate(`() => ${TIMING}.late`), "0");
    // Choosing no output makes it a plain endpoint again: the hub delays
    // what it sends, and the page plays it at once.
    await page.select("#midi-output", "");
    await page.waitFor(`() => ${TIMING}.timed === "false"`);
    await assertQuiet(page);
  },
);

browserTest(
  "what a page's MIDI input plays reaches the hub with when it was played",
  async () => {
    await using hub = await TestHub.open({ latency: 40 });
    const listener = new TimedListener();
    hub.hub.add(listener, { name: "timed" });
    await using browser = new Browser();
    const page = await timedPage(browser, hub.web.url);
    const offset = await pageOffset(page);
    // Ten notes from the device, each stamped 3 ms before the page has it.
    const stamped = await page.evaluate<number[]>(`() => {
      const stamps = [];
      for (let i = 0; i < 10; i++) {
        const timeStamp = performance.now() - 3;
        stamps.push(timeStamp);
        fakeMidi.input.onmidimessage({
          data: new Uint8Array([0x90, 50 + i, 100]),
          timeStamp,
        });
      }
      return stamps;
    }`);
    await until(() => listener.heard.length === 10, 5000, "the notes");
    assert.deepEqual(
      listener.heard.map(([what]) => what),
      stamped.map((_, i) => `note_on ${50 + i}`),
    );
    const errors = listener.heard.map(([, at], i) =>
      at! - (stamped[i] - offset)
    );
    assert.ok(
      errors.every((error) => Math.abs(error) < 1),
      `errors ${errors.map((e) => e.toFixed(2)).join(" ")} ms`,
    );
    await assertQuiet(page);
  },
);

browserTest(
  "a phone without Web MIDI plays by touch and says why it cannot bridge",
  async () => {
    await using hub = await TestHub.open();
    const tcp = await hub.client();
    await using browser = new Browser();
    const page = await openPage(
      browser,
      hub.web.url,
      {
        viewport: { width: 390, height: 844 },
        hasTouch: true,
        init: "delete Navigator.prototype.requestMIDIAccess;",
      },
    );
    assert.equal(
      await page.evaluate(`() => document.querySelector("#midi-none").hidden`),
      false,
    );
    assert.equal(
      await page.evaluate(`() => document.querySelector("#midi-off").hidden`),
      true,
    );
    await page.tap(`#keyboard button[aria-label="A4"]`);
    assert.deepEqual(await take(tcp, 2), [
      message("note_on", { note: 69, velocity: 100 }),
      message("note_off", { note: 69, velocity: 0 }),
    ]);
    // The keyboard fits the phone's width, with keys a finger wide.
    const box = await page.box("#keyboard");
    assert.ok(box.x >= 0 && box.x + box.width <= 390, JSON.stringify(box));
    const widths = await whiteKeys(page);
    assert.ok(widths.length >= 7, `${widths.length} white keys`);
    assert.ok(widths.every((w) => w >= 44), JSON.stringify(widths));
    await assertQuiet(page);
    await tcp.close();
  },
);

/** The widths of the white keys on the screen, in CSS pixels. */
async function whiteKeys(page: Page): Promise<number[]> {
  return await page.evaluate<number[]>(
    `() => [...document.querySelectorAll("#keyboard .key.white")].map((key) =>
      key.getBoundingClientRect().width)`,
  );
}

browserTest(
  "the keyboard shows as many finger-wide keys as fit, and follows the width",
  async () => {
    await using hub = await TestHub.open({ token: TOKEN });
    await using browser = new Browser();
    // A phone, upright: an octave of keys at least 44 px wide; the token
    // card as wide as the cards below it.
    const phone = await openPage(browser, hub.web.url, {
      viewport: { width: 390, height: 844 },
      hasTouch: true,
      wait: false,
    });
    await phone.waitFor(`() => !document.querySelector("#token-form").hidden`);
    const upright = await whiteKeys(phone);
    assert.equal(upright.length, 7);
    assert.ok(upright.every((w) => w >= 44), JSON.stringify(upright));
    assert.equal(
      await phone.evaluate(
        `() => document.querySelector("#keyboard").getAttribute("aria-label")`,
      ),
      "Piano keyboard, C4 to B4",
    );
    const token = await phone.box("#token-form");
    const card = await phone.box(".card.play");
    assert.equal(Math.round(token.x), Math.round(card.x));
    assert.equal(Math.round(token.width), Math.round(card.width));
    // The octave buttons move the shorter keyboard by octaves too.
    await phone.tap("#octave-up");
    assert.equal(await phone.text("#octave-value"), "C5");
    // Turned sideways, and on a desktop: two octaves and a C.
    const sideways = await openPage(browser, hub.web.url, {
      viewport: { width: 844, height: 390 },
      hasTouch: true,
      wait: false,
    });
    await sideways.waitFor(
      `() => document.querySelectorAll("#keyboard .key.white").length === 15`,
    );
    assert.ok((await whiteKeys(sideways)).every((w) => w >= 44));
    // A window made narrow rebuilds the keyboard.
    await sideways.evaluate(`() => {
      document.querySelector("#keyboard").style.width = "300px";
    }`);
    await sideways.waitFor(
      `() => document.querySelectorAll("#keyboard .key.white").length === 7`,
    );
    await assertQuiet(phone);
    await assertQuiet(sideways);
  },
);

browserTest(
  "an open page is never dropped as idle, however short the idle timeout",
  async () => {
    await using hub = await TestHub.open({ idleTimeout: 1000 });
    const left: string[] = [];
    hub.hub.listen((event) => {
      if (event.type === "leave") left.push(event.endpoint.name);
    });
    // A TCP client that keeps itself alive as a midisock client does.
    const tcp = await hub.client();
    const alive = setInterval(() => {
      tcp.send(message("active_sensing")).catch(() => {});
    }, 250);
    await using browser = new Browser();
    const page = await openPage(browser, hub.web.url);
    const endpoint = hub.hub.endpoints.find((e) => e.transport === "web")!;
    // Four idle timeouts with nobody playing: the page says it is alive.
    await until(
      () => Date.now() - endpoint.joinedAt > 4000,
      10_000,
      "four idle timeouts",
    );
    assert.ok(hub.hub.endpoints.includes(endpoint));
    assert.equal(
      await page.evaluate(
        `() => document.querySelector("#status").dataset.state`,
      ),
      "connected",
    );
    // Its keep-alive is answered by the hub, not passed on: past the hub's
    // own answers to the TCP client, the first thing it hears is the key
    // played now.
    await key(page, "F4");
    const heard: Message[] = [];
    while (heard.length < 2) {
      const [msg] = await take(tcp, 1);
      if (msg.type !== "active_sensing") heard.push(msg);
    }
    assert.deepEqual(heard, [
      message("note_on", { note: 65, velocity: 100 }),
      message("note_off", { note: 65, velocity: 0 }),
    ]);
    assert.deepEqual(left, []);
    clearInterval(alive);
    await assertQuiet(page);
    await tcp.close();
  },
);
