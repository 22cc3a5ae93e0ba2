// The web page's timing over an emulated link (tests/_wan.ts): a hub with
// its page in one namespace (tests/_web_hub.ts), a real browser with a fake
// MIDI device in the other. The hub plays a note every 10 ms, stamped with
// when it played it; the page plays each on its (fake) MIDI output, at
// what time the page chose. Then the page's MIDI input plays a note every
// 10 ms, stamped by the "device"; the hub notes the time each came with,
// and a plain endpoint of the hub when it heard each.
// Each note's timing error is its offset (played minus stamped) less the
// median offset: what is left is jitter. Root and a browser only.

import { type LinkModel, readLines, WanLink, WIFI } from "./_wan.ts";
import { Browser, type Page } from "./_browser.ts";

const HUB = new URL("./_web_hub.ts", import.meta.url).pathname;

/** A MIDI system with one input and one output that notes what it plays. */
const FAKE_MIDI = `
  (() => {
    const input = { id: "in-1", name: "Keys", state: "connected", onmidimessage: null };
    const output = { id: "out-1", name: "Synth", state: "connected", sent: [],
      send(data, timestamp) {
        this.sent.push([data[0], data[1], timestamp ?? null, performance.now()]);
      } };
    globalThis.fakeMidi = { input, output };
    navigator.requestMIDIAccess = async () => ({
      inputs: new Map([[input.id, input]]),
      outputs: new Map([[output.id, output]]),
      onstatechange: null,
    });
  })();
`;

/** Options of a run. */
export interface WebLinkOptions {
  /** The hub's playout delay, ms (0: none, the page plays as things come). */
  latency: number;
  /** How long each way plays, in seconds. */
  seconds: number;
  /**
   * How long the page maps its clock before the notes start, in seconds
   * (by its exchanges, 10 a second at first).
   * @default {5}
   */
  syncSeconds?: number;
  /** The link. */
  model?: LinkModel;
}

/** What one way measured. */
export interface Figures {
  /** Notes played. */
  sent: number;
  /** Of those, never heard. */
  lost: number;
  /** Heard out of order. */
  reordered: number;
  /** Heard after their time (played at once, late). */
  late: number;
  /** Timing error (offset less the median offset), ms: p50, p99, max. */
  p50: number;
  p99: number;
  max: number;
  /** The median offset less what it should be (the delay), ms. */
  offset: number;
  /** Each note's error (offset less the median), in the order heard, ms. */
  errors: number[];
}

/** What a run measured, both ways. */
export interface WebLinkResult {
  /** Hub to page: the page's MIDI output. */
  output: Figures;
  /** Page to hub: the times what the page's input played came with. */
  input: Figures;
  /**
   * Page to hub: when a plain endpoint of the hub heard it (at its time
   * plus the delay, or as it came): the hub's own playout included.
   */
  delivered: Figures;
}

/**
 * Runs the hub in one namespace and the browser in the other, over `model`
 * (the Wi-Fi of issue 20 by default).
 */
export async function runWebLink(
  options: WebLinkOptions,
): Promise<WebLinkResult> {
  const count = Math.round(options.seconds * 100);
  await using link = await WanLink.open(options.model ?? WIFI);
  const child = link.command(link.a, Deno.execPath(), [
    "run",
    `--allow-net=${link.a.address}`,
    "--allow-read",
    HUB,
    link.a.address,
    String(options.latency),
  ], { stdin: "piped", stdout: "piped", stderr: "inherit" }).spawn();
  const stdin = child.stdin.getWriter();
  const lines = readLines(child.stdout);
  const hub = async (command?: unknown) => {
    if (command !== undefined) {
      await stdin.write(
        new TextEncoder().encode(`${JSON.stringify(command)}\n`),
      );
    }
    const line = await lines.next();
    if (line.done) throw new Error("The hub ended");
    return JSON.parse(line.value);
  };
  try {
    const { url, timeOrigin: hubOrigin } = await hub();
    await using browser = new Browser({ netns: link.b.ns });
    const page = await browser.newPage();
    await page.addInitScript(FAKE_MIDI);
    await page.goto(url);
    await page.waitFor(
      `() => document.querySelector("#status").dataset.state === "connected"`,
    );
    await page.click("#midi-enable");
    await page.waitFor(`() => !document.querySelector("#midi-on").hidden`);
    await page.select("#midi-input", "in-1");
    await page.select("#midi-output", "out-1");
    // Exchanges over the link for a while (the estimator fits the drift
    // over 4 s): the run's scenario, not a wait for something.
    const timing = `document.querySelector("#midi-timing").dataset`;
    await new Promise((resolve) =>
      setTimeout(resolve, (options.syncSeconds ?? 5) * 1000)
    );
    await page.waitFor(`() => ${timing}.timed === "${options.latency > 0}"`);
    const pageOrigin = await page.evaluate<number>(
      `() => performance.timeOrigin`,
    );
    // The page's clock less the hub's.
    const shift = hubOrigin - pageOrigin;

    const { played } = await hub({ op: "play", count, every: 10 });
    const output = await heardByPage(page, count);
    await hub({ op: "forget" });
    const input = await playFromPage(page, count);
    // The last notes may still be on their way: asked again until all came
    // (or nothing more came for a second).
    let heard: number[][] = [];
    let delivered: number[][] = [];
    for (let still = 0; delivered.length < count && still < 10;) {
      const before = delivered.length;
      ({ heard, delivered } = await hub({ op: "heard" }));
      still = delivered.length === before ? still + 1 : 0;
      if (delivered.length < count) {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    const notes = (list: number[][]) =>
      list.map(([channel, note, at]) => ({
        index: channel * 128 + note,
        time: at,
        late: false,
      }));
    const stamps = input.map((stamp) => stamp - shift);
    // Late at the hub: what came after its time plus the delay (the hub
    // played nothing else late: its own notes are on time).
    const { timing: playout } = await hub({ op: "timing" });
    return {
      output: figures(
        played,
        output.map(([status, note, timestamp, now]) => ({
          index: (status & 0x0f) * 128 + note,
          // When the browser would play it: at its timestamp, or at once.
          time: Math.max(timestamp ?? now, now) - shift,
          late: timestamp !== null && timestamp < now,
        })),
        options.latency,
      ),
      input: figures(stamps, notes(heard), 0),
      delivered: {
        ...figures(stamps, notes(delivered), options.latency),
        late: playout?.late ?? 0,
      },
    };
  } finally {
    await stdin.close().catch(() => {});
    await child.status;
  }
}

/** What the page's output heard, once all came (or 5 s passed without). */
async function heardByPage(
  page: Page,
  count: number,
): Promise<[number, number, number | null, number][]> {
  let last = -1;
  let still = 0;
  for (;;) {
    const length = await page.evaluate<number>(
      `() => fakeMidi.output.sent.length`,
    );
    if (length >= count) break;
    still = length === last ? still + 1 : 0;
    last = length;
    if (still >= 50) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return await page.evaluate(`() => fakeMidi.output.sent`);
}

/**
 * Plays `count` notes on the page's input, one every 10 ms, each stamped
 * when the device played it; returns the stamps (the page's clock).
 */
async function playFromPage(page: Page, count: number): Promise<number[]> {
  return await page.evaluate<number[]>(
    `async (count) => {
      const stamps = [];
      const start = performance.now();
      for (let i = 0; i < count; i++) {
        const due = start + i * 10;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        const timeStamp = performance.now();
        stamps.push(timeStamp);
        fakeMidi.input.onmidimessage({
          data: new Uint8Array([0x90 | ((i >> 7) % 16), i % 128, 100]),
          timeStamp,
        });
      }
      return stamps;
    }`,
    count,
  );
}

/**
 * The figures of one way: `sent[i]` is when note `i` was played; `heard`
 * says when each note heard came (on the same clock as `sent`).
 */
function figures(
  sent: number[],
  heard: { index: number; time: number; late: boolean }[],
  expected: number,
): Figures {
  let reordered = 0;
  const offsets: number[] = [];
  const seen = new Set<number>();
  heard.forEach(({ index, time }, i) => {
    if (i > 0 && index < heard[i - 1].index) reordered++;
    seen.add(index);
    offsets.push(time - sent[index]);
  });
  const sorted = [...offsets].sort((a, b) => a - b);
  const median = sorted[sorted.length >> 1] ?? NaN;
  const signed = offsets.map((o) => o - median);
  const errors = signed.map(Math.abs).sort((a, b) => a - b);
  const at = (q: number) =>
    errors[Math.min(errors.length - 1, Math.floor(errors.length * q))] ?? NaN;
  return {
    sent: sent.length,
    lost: sent.length - seen.size,
    reordered,
    late: heard.filter((h) => h.late).length,
    p50: at(0.5),
    p99: at(0.99),
    max: errors.at(-1) ?? NaN,
    offset: median - expected,
    errors: signed,
  };
}
