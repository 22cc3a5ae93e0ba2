// Time through the web page's WebSocket, without a browser: the time
// exchange, timed frames both ways, pages that schedule as timed endpoints
// of the hub and the others delayed; on a hub clock the test steps by hand,
// and with a page clock 5 s away and 200 ppm adrift. The page's own code is
// checked in a real browser by tests/web_browser_test.ts.

import assert from "node:assert/strict";
import {
  encode,
  Hub,
  type Message,
  message,
  Parser,
  WebServer,
} from "../mod.ts";
import { describe, PlainListener, Player, TimedListener } from "./_web_time.ts";
import { netTest, until } from "./_net.ts";
import { concat } from "./_util.ts";
import { type Frame, rawPage, type RawWebSocket } from "./_ws.ts";
import { ManualClock } from "./_clock.ts";
import { OPCODE } from "../src/web/_frames.ts";
import { ClockSync } from "../src/web/page/sync.js";

const decoder = new TextDecoder();

const on = (note: number) => message("note_on", { note });

/** A timed frame as a page sends it: marker, time (big-endian), messages. */
function timedFrame(at: number, ...messages: Message[]): Uint8Array {
  const bytes = concat(messages.map((m) => encode(m)));
  const frame = new Uint8Array(9 + bytes.length);
  frame[0] = 0x01;
  new DataView(frame.buffer).setFloat64(1, at);
  frame.set(bytes, 9);
  return frame;
}

/** What a binary frame from the server says: its time, if any, and notes. */
function readFrame(frame: Frame): { at?: number; heard: string[] } {
  const bytes = frame.payload;
  if (bytes[0] !== 0x01) {
    return { heard: new Parser().feed(bytes).map(describe) };
  }
  return {
    at: new DataView(bytes.buffer, bytes.byteOffset).getFloat64(1),
    heard: new Parser().feed(bytes.subarray(9)).map(describe),
  };
}

const isText = (type: string) => (frame: Frame) =>
  frame.opcode === OPCODE.text &&
  JSON.parse(decoder.decode(frame.payload)).type === type;
const isMidi = (frame: Frame) => frame.opcode === OPCODE.binary;

/** Sends a control message. */
function send(page: RawWebSocket, value: unknown): Promise<void> {
  return page.send(JSON.stringify(value));
}

/** Asks the hub's time and reads the answer: every frame read up to it. */
async function ask(page: RawWebSocket, t1 = 0): Promise<Frame[]> {
  await send(page, { type: "time", t1 });
  return await page.until(isText("time"));
}

/**
 * Pings the server and reads its pong: every frame read up to it. A
 * page's frames are read in order, so whatever it sent before has been
 * taken in by then.
 */
async function settled(page: RawWebSocket): Promise<Frame[]> {
  await page.send("sentinel", { opcode: OPCODE.ping });
  return await page.until((frame) => frame.opcode === OPCODE.pong);
}

/** A hub on a clock stepped by hand, with its web server. */
async function withClockHub(
  options: ConstructorParameters<typeof Hub>[0],
  fn: (hub: Hub, web: WebServer, clock: ManualClock) => Promise<void>,
): Promise<void> {
  const clock = new ManualClock();
  const hub = new Hub({ clock, ...options });
  try {
    const web = await hub.attach(new WebServer({ port: 0 }));
    await fn(hub, web, clock);
  } finally {
    await hub.close();
  }
}

netTest(
  "the welcome says the time protocol and the hub's delay; time requests are answered at once",
  async () => {
    await withClockHub({ latency: 40 }, async (hub, web, clock) => {
      const { socket: page, first } = await rawPage(web.port);
      const welcome = JSON.parse(first);
      assert.equal(welcome.type, "welcome");
      assert.equal(welcome.time, 1);
      assert.equal(welcome.latency, 40);
      clock.advance(2.25);
      const answer = (await ask(page, 123.5)).at(-1)!;
      assert.deepEqual(JSON.parse(decoder.decode(answer.payload)), {
        type: "time",
        t1: 123.5,
        t2: 1002.25,
        t3: 1002.25,
      });
      // Malformed control messages are counted as dropped, and answered by
      // nothing: the next good request is the next answer.
      for (
        const bad of [
          { type: "time", t1: "1" },
          { type: "time" },
          { type: "mode", timed: 1 },
          { type: "time", t1: 1, pad: "x".repeat(300) },
        ]
      ) {
        await send(page, bad);
      }
      await page.send("not json");
      // A request answered 5 ms after the last at the soonest.
      clock.advance(5);
      const frames = await ask(page, 7);
      assert.equal(frames.filter(isText("time")).length, 1);
      assert.equal(
        JSON.parse(decoder.decode(frames.at(-1)!.payload)).t1,
        7,
      );
      assert.equal(hub.endpoints[0].stats.dropped, 5);
      // Asked again at once: not answered (the ping's pong comes first).
      await send(page, { type: "time", t1: 8 });
      assert.ok(!(await settled(page)).some(isText("time")));
      clock.advance(5);
      assert.equal(
        JSON.parse(decoder.decode((await ask(page, 9)).at(-1)!.payload)).t1,
        9,
      );
      page.close();
    });
  },
);

netTest(
  "a page that schedules hears each batch at once with its time; a plain page when the delay is up",
  async () => {
    await withClockHub({ latency: 40 }, async (hub, web, clock) => {
      const player = new Player();
      hub.add(player, { name: "player" });
      const timed = (await rawPage(web.port)).socket;
      const plain = (await rawPage(web.port)).socket;
      await send(timed, { type: "mode", timed: true });
      await settled(timed);
      // Played 3 ms ago (on the hub's clock): the timed page hears it now.
      const t0 = clock.now();
      player.play(on(60), t0 - 3);
      const frame = (await timed.until(isMidi)).at(-1)!;
      assert.deepEqual(readFrame(frame), { at: t0 - 3, heard: ["note_on 60"] });
      // The plain one not before its time (37 ms from now): the pong to
      // its ping comes first, then the note, untimed.
      clock.advance(36.5);
      assert.ok(!(await settled(plain)).some(isMidi));
      clock.advance(0.5);
      assert.deepEqual(readFrame((await plain.until(isMidi)).at(-1)!), {
        heard: ["note_on 60"],
      });
      // A page that stops scheduling is delayed again.
      await send(timed, { type: "mode", timed: false });
      await settled(timed);
      player.play(on(61), clock.now());
      assert.ok(!(await settled(timed)).some(isMidi));
      clock.advance(40);
      assert.deepEqual(readFrame((await timed.until(isMidi)).at(-1)!), {
        heard: ["note_on 61"],
      });
      timed.close();
      plain.close();
    });
  },
);

netTest(
  "big batches reach a timed page whole, with their time",
  async () => {
    await withClockHub({ latency: 10 }, async (hub, web, clock) => {
      const player = new Player();
      hub.add(player, { name: "player" });
      const page = (await rawPage(web.port)).socket;
      await send(page, { type: "mode", timed: true });
      await settled(page);
      const dump = message("sysex", {
        data: Array.from({ length: 6000 }, (_, i) => i % 128),
      });
      player.play(dump, clock.now() - 1);
      const frame = (await page.until(isMidi)).at(-1)!;
      assert.equal(frame.payload.length, 9 + 6002);
      assert.deepEqual(readFrame(frame), {
        at: clock.now() - 1,
        heard: ["sysex"],
      });
      page.close();
    });
  },
);

netTest(
  "what a page plays reaches the hub with the time it carries, never later than now",
  async () => {
    await withClockHub({ latency: 40 }, async (hub, web, clock) => {
      const timed = new TimedListener();
      const plain = new PlainListener(() => clock.now());
      hub.add(timed, { name: "timed" });
      hub.add(plain, { name: "plain" });
      const page = (await rawPage(web.port)).socket;
      const t0 = clock.now();
      // Played 5 ms ago; untimed (now); from the future (taken as now).
      await page.send(timedFrame(t0 - 5, on(1), on(2)));
      await page.send(encode(on(3)));
      await page.send(timedFrame(t0 + 100, on(4)));
      // Cut short, and a time that is no number: dropped, counted.
      await page.send(new Uint8Array([0x01, 0, 0, 0x90, 5, 64]));
      await page.send(timedFrame(NaN, on(6)));
      await page.send(timedFrame(t0 - 1, on(7)));
      await until(() => timed.heard.length === 5);
      assert.deepEqual(timed.heard, [
        ["note_on 1", t0 - 5],
        ["note_on 2", t0 - 5],
        ["note_on 3", t0],
        ["note_on 4", t0],
        ["note_on 7", t0 - 1],
      ]);
      assert.equal(hub.endpoints.at(-1)!.stats.dropped, 2);
      // The plain output hears each at its time plus the delay, in order.
      clock.advance(35);
      await until(() => plain.heard.length === 2);
      clock.advance(5);
      await until(() => plain.heard.length === 5);
      assert.deepEqual(plain.heard, [
        ["note_on 1", t0 + 35],
        ["note_on 2", t0 + 35],
        ["note_on 3", t0 + 40],
        ["note_on 4", t0 + 40],
        ["note_on 7", t0 + 40],
      ]);
      page.close();
    });
  },
);

netTest(
  "pages hear when the automatic delay changes",
  async () => {
    await withClockHub({ latency: "auto" }, async (hub, web, clock) => {
      const player = new Player();
      hub.add(player, { name: "player" });
      hub.add(new PlainListener(() => clock.now()), { name: "plain" });
      const { socket: page, first } = await rawPage(web.port);
      const before = JSON.parse(first).latency;
      // A message that took 30 ms to come: the delay rises to fit it.
      player.play(on(1), clock.now() - 30);
      const frame = (await page.until(isText("latency"))).at(-1)!;
      const { latency } = JSON.parse(decoder.decode(frame.payload));
      assert.ok(latency > before && latency >= 30, `${before} -> ${latency}`);
      assert.equal(latency, hub.timing!.latency);
      page.close();
    });
  },
);

netTest(
  "a page 5 s away and 200 ppm adrift maps the hub's clock within a millisecond with the page's estimator",
  async () => {
    await using hub = new Hub({ latency: 40 });
    const web = await hub.attach(new WebServer({ port: 0 }));
    const player = new Player();
    hub.add(player, { name: "player" });
    const hubNow = () => hub.clock.now();
    // The page's clock: 5 s ahead of the hub's, running 200 ppm fast.
    const pageNow = () => 5000 + hubNow() * (1 + 200e-6);
    const page = (await rawPage(web.port)).socket;
    const sync = new ClockSync();
    // Exchanges every 100 ms for 2.5 s, as the page makes them.
    const started = performance.now();
    while (performance.now() - started < 2500) {
      const t1 = pageNow();
      const answer = JSON.parse(
        decoder.decode((await ask(page, t1)).at(-1)!.payload),
      );
      sync.add({ t1, t2: answer.t2, t3: answer.t3, t4: pageNow() });
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.ok(sync.samples >= 15, `${sync.samples} exchanges`);
    const error = sync.toRemote(pageNow()) - hubNow();
    assert.ok(Math.abs(error) < 1, `off by ${error.toFixed(3)} ms`);
    // A note played at T on the hub plays at T + 40 ms, on the page's
    // clock, within the same millisecond.
    await send(page, { type: "mode", timed: true });
    await settled(page);
    const t = hubNow();
    player.play(on(64), t);
    const { at } = readFrame((await page.until(isMidi)).at(-1)!);
    const when = sync.toLocal(at! + 40);
    const truth = 5000 + (t + 40) * (1 + 200e-6);
    assert.ok(
      Math.abs(when - truth) < 1,
      `plays ${(when - truth).toFixed(3)} ms off`,
    );
    page.close();
  },
);
