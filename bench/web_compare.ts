// The hub's web page against a TCP client, in a real browser, in one run.
//
// Run:   deno run -A bench/web_compare.ts
//        (needs Debian's chromium and npm playwright-core, as the browser
//        tests do: see tests/_browser.ts)
//
// The hub is a `serve --web` process; the page is headless Chromium driven
// by playwright-core; clients are midisock TCP clients (connect()) in this
// process. Times in the page are its clock (performance.timeOrigin + now),
// brought onto this process's clock by the offset measured before each
// scenario (the middle of the quickest of 50 round trips to the page).
//
// Scenarios:
//   keys      a pointer presses and releases a key of the page, PRESSES
//             times (WARMUP more untimed before); each press waits until
//             the TCP client has the note_on, and the release until it has
//             the note_off. Reports, from the input event (its timeStamp)
//             to the TCP client's read, p50/p95/p99/max, for presses and
//             releases together. Goal: p95 under 20 ms. For comparison, a
//             TCP client sends the same messages to the other, one at a
//             time, through the same hub.
//   monitor   the TCP client sends BURST messages at once (one write); the
//             page must show all of them. Reports the time from the send to
//             the frame that drew the last line, the longest frame while
//             drawing, and whether the page stayed connected.
//   flood     the TCP client sends each of FLOOD_RATES messages/s for
//             FLOOD_SECONDS (a slice every 5 ms); the page must count every
//             one, shown or "too fast to show", and stay connected: it drops
//             drawing, never the connection. Reports the page's count, its
//             frame times, and whether it stayed connected; then the fastest
//             rate again with the monitor paused (no drawing), to compare.
// Every wait is bounded; the serve process is killed at the end.

import { connect, message, type SocketPort } from "../mod.ts";
import { Browser, noBrowser, type Page } from "../tests/_browser.ts";
import { NET, spawn } from "../tests/_cli.ts";

const WARMUP = 30;
const PRESSES = 300;
const BURST = 1000;
const FLOOD_RATES = [2_000, 20_000];
const FLOOD_SECONDS = 3;
const SLICE_MS = 5;

if (noBrowser) {
  console.log("no browser here: see tests/_browser.ts");
  Deno.exit(1);
}

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function now(): number {
  return performance.timeOrigin + performance.now();
}

function ms(value: number): string {
  return `${value.toFixed(2)} ms`;
}

function summary(samples: number[]): string {
  const sorted = samples.toSorted((a, b) => a - b);
  return `p50 ${ms(quantile(sorted, 0.5))}, p95 ${
    ms(quantile(sorted, 0.95))
  }, p99 ${ms(quantile(sorted, 0.99))}, max ${ms(sorted.at(-1)!)}`;
}

/** The page's clock minus ours, from the quickest of 50 round trips. */
async function clockOffset(page: Page): Promise<number> {
  let best = { rtt: Infinity, offset: 0 };
  for (let i = 0; i < 50; i++) {
    const before = now();
    const there = await page.evaluate<number>(
      `() => performance.timeOrigin + performance.now()`,
    );
    const after = now();
    if (after - before < best.rtt) {
      best = { rtt: after - before, offset: there - (before + after) / 2 };
    }
  }
  console.log(
    `  clock offset ${ms(best.offset)} (+/- ${ms(best.rtt / 2)})`,
  );
  return best.offset;
}

/** Reads messages from a TCP client, with when each arrived. */
class Arrivals {
  readonly times: number[] = [];
  readonly reading: Promise<void>;

  constructor(port: SocketPort) {
    this.reading = (async () => {
      for await (const _ of port) this.times.push(now());
    })();
  }

  async until(count: number, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.times.length < count) {
      if (Date.now() > deadline) {
        throw new Error(`${count} messages: only ${this.times.length}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  }
}

async function keys(page: Page, port: number): Promise<void> {
  const client = await connect("127.0.0.1", port);
  const arrivals = new Arrivals(client);
  await page.evaluate(`() => {
    globalThis.inputs = [];
    const keyboard = document.querySelector("#keyboard");
    for (const type of ["pointerdown", "pointerup"]) {
      keyboard.addEventListener(type, (event) => {
        inputs.push(performance.timeOrigin + event.timeStamp);
      }, { capture: true });
    }
  }`);
  const box = await page.box(`#keyboard button[aria-label="C4"]`);
  await page.mouse("move", box.x + box.width / 2, box.y + box.height * 0.8);
  const offset = await clockOffset(page);
  let expected = 0;
  for (let i = 0; i < WARMUP + PRESSES; i++) {
    await page.mouse("down");
    await arrivals.until(++expected);
    await page.mouse("up");
    await arrivals.until(++expected);
  }
  const inputs = await page.evaluate<number[]>(`() => inputs`);
  const latencies = inputs.slice(2 * WARMUP).map((time, i) =>
    arrivals.times[2 * WARMUP + i] - (time - offset)
  );
  console.log(
    `  key press or release to the TCP client (${latencies.length}): ${
      summary(latencies)
    }`,
  );
  const p95 = quantile(latencies.toSorted((a, b) => a - b), 0.95);
  console.log(`  goal p95 < 20 ms: ${p95 < 20 ? "met" : "NOT met"}`);

  // The same messages from a TCP client, for comparison.
  const sender = await connect("127.0.0.1", port);
  const sent: number[] = [];
  for (let i = 0; i < WARMUP + PRESSES; i++) {
    for (const velocity of [100, 0]) {
      sent.push(now());
      await sender.send(message("note_on", { note: 60, velocity }));
      await arrivals.until(++expected);
    }
  }
  const base = arrivals.times.slice(expected - sent.length).map((t, i) =>
    t - sent[i]
  ).slice(2 * WARMUP);
  console.log(`  TCP client to TCP client (${base.length}): ${summary(base)}`);
  const sortedWeb = latencies.toSorted((a, b) => a - b);
  const sortedBase = base.toSorted((a, b) => a - b);
  const ratio = (q: number) =>
    (quantile(sortedWeb, q) / quantile(sortedBase, q)).toFixed(1);
  console.log(`  page / TCP client: p50 ${ratio(0.5)}x, p95 ${ratio(0.95)}x`);
  await sender.close();
  await client.close();
  await arrivals.reading;
}

/**
 * Starts watching the page's frames, and for the frame in which the monitor
 * has drawn `lines` lines (or, with `counted`, counted `lines` messages).
 */
async function watchFrames(
  page: Page,
  lines: number,
  counted = false,
): Promise<void> {
  await page.evaluate(
    `([lines, counted]) => {
      globalThis.watch = { frames: [], done: 0, last: performance.now() };
      const step = (time) => {
        watch.frames.push(time - watch.last);
        watch.last = time;
        const shown = counted
          ? Number(document.querySelector("#monitor-count").dataset.total)
          : document.querySelectorAll("#log .line").length;
        if (shown >= lines && watch.done === 0) {
          watch.done = performance.timeOrigin + performance.now();
        }
        if (watch.done === 0 || watch.frames.length < 5) requestAnimationFrame(step);
      };
      requestAnimationFrame(step);
    }`,
    [lines, counted],
  );
}

async function monitor(page: Page, port: number): Promise<void> {
  await page.click("#clear");
  const client = await connect("127.0.0.1", port);
  const offset = await clockOffset(page);
  await watchFrames(page, BURST);
  const burst = Array.from(
    { length: BURST },
    (_, i) => message("note_on", { note: i % 128, velocity: (i % 127) + 1 }),
  );
  const start = now();
  await client.sendAll(burst);
  await page.waitFor(`() => watch.done > 0`, undefined, 20_000);
  const done = await page.evaluate<number>(`() => watch.done`) - offset;
  const frames = await page.evaluate<number[]>(`() => watch.frames`);
  const rows = await page.evaluate<number>(
    `() => document.querySelectorAll("#log .line").length`,
  );
  const state = await page.evaluate<string>(
    `() => document.querySelector("#status").dataset.state`,
  );
  console.log(
    `  ${BURST} messages in one write: all ${rows} lines drawn ${
      ms(done - start)
    } after the send; longest frame ${
      ms(Math.max(...frames.slice(1)))
    }; page ${state}`,
  );
  await client.close();
}

async function flood(
  page: Page,
  port: number,
  rate: number,
  paused: boolean,
): Promise<void> {
  await page.click("#clear");
  if (paused) await page.click("#pause");
  const client = await connect("127.0.0.1", port);
  const total = rate * FLOOD_SECONDS;
  await watchFrames(page, total, true);
  const perSlice = rate * SLICE_MS / 1000;
  const start = performance.now();
  for (let sent = 0; sent < total; sent += perSlice) {
    const slice = Array.from(
      { length: perSlice },
      (_, i) =>
        message("control_change", { control: 1, value: (sent + i) % 128 }),
    );
    await client.sendAll(slice);
    const due = start + ((sent + perSlice) / rate) * 1000;
    await new Promise((resolve) =>
      setTimeout(resolve, Math.max(0, due - performance.now()))
    );
  }
  await page.waitFor(
    `(total) => Number(document.querySelector("#monitor-count").dataset.total) === total`,
    total,
    30_000,
  );
  const text = await page.text("#monitor-count");
  const frames = (await page.evaluate<number[]>(`() => watch.frames`)).slice(1)
    .toSorted((a, b) => a - b);
  const state = await page.evaluate<string>(
    `() => document.querySelector("#status").dataset.state`,
  );
  const welcomes = await page.evaluate<number>(`() => globalThis.welcomes`);
  console.log(
    `  ${rate.toLocaleString("en-US")} msg/s for ${FLOOD_SECONDS} s${
      paused ? ", monitor paused" : ""
    }: "${text}"; frames p50 ${ms(quantile(frames, 0.5))}, p95 ${
      ms(quantile(frames, 0.95))
    }, longest ${
      ms(frames.at(-1)!)
    }; page ${state}, connected ${welcomes} time(s)`,
  );
  if (paused) await page.click("#pause");
  await client.close();
}

await using serve = spawn("serve", ["127.0.0.1:0", "--web", "127.0.0.1:0"], [
  NET,
]);
const port = await serve.listening();
const [, url] = await serve.waitFor(/^web page on (\S+)$/);
console.log(`serve on 127.0.0.1:${port}, page ${url}; ${Deno.build.target}`);
await using browser = new Browser();
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
// Count the welcomes: a page that reconnected would have more than one.
await page.addInitScript(`
  globalThis.welcomes = 0;
  const Socket = WebSocket;
  globalThis.WebSocket = class extends Socket {
    constructor(url) {
      super(url);
      this.addEventListener("message", (event) => {
        if (typeof event.data === "string" && event.data.includes('"welcome"')) {
          globalThis.welcomes++;
        }
      });
    }
  };
`);
await page.goto(url);
await page.waitFor(
  `() => document.querySelector("#status").dataset.state === "connected"`,
);

console.log("\nkeys:");
await keys(page, port);
console.log("\nmonitor:");
await monitor(page, port);
console.log("\nflood:");
for (const rate of FLOOD_RATES) await flood(page, port, rate, false);
await flood(page, port, FLOOD_RATES.at(-1)!, true);
