// serve and connect, built from the library on a clock 5 s ahead of the
// system's and 200 ppm fast, for bench/timing_compare.ts --skew (not meant
// to be run by hand). It takes the flags of serve and connect that the
// benchmark uses and prints the same lines.
//
// deno run -A bench/_timing_node.ts serve ADDRESS [--latency MS] [--rtp PORT
//   [--rtp-invite HOST:PORT]] [--nats URL --room NAME]
// deno run -A bench/_timing_node.ts connect ADDRESS [--latency MS]

import { parseArgs } from "node:util";
import {
  connect,
  formatMessage,
  Hub,
  HubLog,
  type Message,
  type OutputPort,
  parseAddress,
  PortServer,
  systemClock,
  type TimeSource,
} from "../mod.ts";
import { RtpMidiSession } from "../src/rtp/mod.ts";
import { formatNatsLinkEvent, NatsLink } from "../src/nats/mod.ts";

const OFFSET_MS = 5000;
const DRIFT = 200e-6;

/** A clock 5 s ahead of the system's, and 200 ppm fast. */
const skewed: TimeSource = {
  now: () => OFFSET_MS + systemClock.now() * (1 + DRIFT),
  setTimer: (callback, delay, keepAlive) =>
    systemClock.setTimer(callback, delay / (1 + DRIFT), keepAlive),
};

const [role, address, ...rest] = Deno.args;
const { values } = parseArgs({
  args: rest,
  options: {
    latency: { type: "string" },
    rtp: { type: "string" },
    "rtp-invite": { type: "string" },
    nats: { type: "string" },
    room: { type: "string" },
  },
});
const latency = Number(values.latency ?? 0);
const where = parseAddress(address, 8080);
const stopped = new Promise<void>((resolve) =>
  Deno.addSignalListener("SIGTERM", () => resolve())
);

await using hub = new Hub({ clock: skewed, latency });
using _log = new HubLog(hub);
if (role === "serve") {
  const server = await hub.attach(
    new PortServer(where.hostname, where.port),
  );
  console.log(`listening on ${server.name}`);
  if (values.rtp !== undefined) {
    const invite = values["rtp-invite"];
    await hub.attach(
      new RtpMidiSession({
        host: where.hostname,
        port: Number(values.rtp),
        invite: invite === undefined ? [] : [parseAddress(invite, 5004)],
      }),
    );
  }
  if (values.nats !== undefined) {
    const room = values.room!;
    await hub.attach(
      new NatsLink(values.nats, {
        room,
        onEvent: (event) => console.log(formatNatsLinkEvent(event, { room })),
      }),
    );
  }
} else {
  const port = await connect(where.hostname, where.port, {
    timed: true,
    clock: skewed,
  });
  hub.add(port, { kind: "link", transport: "tcp" });
  await port.admitted;
  console.log(`connected to ${address}`);
  const monitor: OutputPort = {
    name: "monitor",
    closed: false,
    send(msg: Message) {
      console.log(`${address} ${formatMessage(msg)}`);
      return Promise.resolve();
    },
    reset: () => Promise.resolve(),
    panic: () => Promise.resolve(),
    close: () => Promise.resolve(),
    [Symbol.asyncDispose]: () => Promise.resolve(),
  };
  hub.add(monitor, { kind: "device" });
}
await stopped;
