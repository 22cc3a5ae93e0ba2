// A Bonjour browser for tests/bonjour_test.ts (not meant to be run by hand),
// run inside a network namespace the test made: asks once for RTP-MIDI
// sessions (_apple-midi._udp), or for the questions given (NAME:TYPE), then
// prints each multicast DNS response it hears for MS milliseconds as a JSON
// line: its answers and additionals.
//
//   deno run -A tests/_mdns_browse.ts MS [NAME:TYPE ...]

import mdnsFactory from "npm:multicast-dns@7.2.5";

const ms = Number(Deno.args[0] ?? 2000);
const asked = Deno.args.slice(1).map((arg) => {
  const at = arg.lastIndexOf(":");
  return { name: arg.slice(0, at), type: arg.slice(at + 1) };
});
const questions = asked.length > 0
  ? asked
  : [{ name: "_apple-midi._udp.local", type: "PTR" }];
const mdns = mdnsFactory();
mdns.on(
  "response",
  (response: { answers: unknown[]; additionals: unknown[] }) => {
    console.log(JSON.stringify({
      answers: response.answers,
      additionals: response.additionals,
    }));
  },
);
mdns.on("error", (error: Error) => console.error(String(error)));
mdns.on("ready", () => {
  console.log(JSON.stringify({ ready: true }));
  mdns.query({ questions });
});
setTimeout(() => mdns.destroy(), ms);
