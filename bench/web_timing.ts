// The web page's timing over the Wi-Fi model of issue 20 (tests/_wan.ts): a
// hub in one network namespace plays a note every 10 ms to a real browser
// in the other, whose (fake) MIDI output notes when it would play each;
// then the page's MIDI input plays a note every 10 ms to the hub, which
// notes the time each came with ("page to hub") and when a plain endpoint
// of the hub heard each ("played out": the hub's playout included). Timing
// error: each note's offset (when heard minus when it was played at the
// source) less the median offset.
//
//   deno run -A bench/web_timing.ts [SECONDS]
//
// Root, chromium and npm playwright-core (MIDISOCK_PLAYWRIGHT_DIR) needed.
// Runs: a 40 ms playout delay after 5 s of clock exchanges, the same after
// 2 s, and no delay (the page plays what comes as it comes).

import { type Figures, runWebLink } from "../tests/_web_wan.ts";
import { wanUnavailable } from "../tests/_wan.ts";

const seconds = Number(Deno.args[0] ?? 20);
const why = wanUnavailable();
if (why !== undefined) {
  console.error(`cannot run: ${why}`);
  Deno.exit(1);
}

function row(run: string, way: string, f: Figures): string {
  const ms = (value: number) => value.toFixed(2).padStart(6);
  return `| ${run.padEnd(28)} | ${way.padEnd(11)} | ${
    String(f.sent).padStart(5)
  } | ${String(f.lost).padStart(4)} | ${String(f.reordered).padStart(9)} | ${
    String(f.late).padStart(4)
  } | ${ms(f.p50)} | ${ms(f.p99)} | ${ms(f.max)} | ${ms(f.offset)} |`;
}

console.log(
  `| run (${seconds} s each way)`.padEnd(30) +
    " | way         |  sent | lost | reordered | late |    p50 |    p99 |    max | offset |",
);
console.log(
  "| ---------------------------- | ----------- | ----: | ---: | --------: | ---: | -----: | -----: | -----: | -----: |",
);
for (
  const [run, latency, syncSeconds] of [
    ["delay 40 ms, clock 5 s", 40, 5],
    ["delay 40 ms, clock 2 s", 40, 2],
    ["no delay", 0, 5],
  ] as const
) {
  const result = await runWebLink({ latency, seconds, syncSeconds });
  console.log(row(run, "hub to page", result.output));
  console.log(row(run, "page to hub", result.input));
  console.log(row(run, "played out", result.delivered));
}
console.log(
  "\nms; error = offset less the median offset; offset = median offset " +
    "less the delay (page to hub: less 0)",
);
