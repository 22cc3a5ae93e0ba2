// A stand-in for `serve --nats URL --room NAME` until the hub lands: a
// PortServer on a free loopback port whose clients hear each other and the
// room (through a NatsLink), and the room hears them. It prints one JSON
// line {"port": N, "id": "..."} once ready, then one line per link event;
// on a failure to join it prints the error's one line on stderr and exits 1.
//
//   deno run --allow-net=127.0.0.1 tests/_nats_hub.ts URL ROOM NAME

import {
  formatNatsLinkEvent,
  type Message,
  NatsLink,
  PortServer,
  type SocketPort,
} from "../mod.ts";

const [url, room, name] = Deno.args;
let link: NatsLink;
try {
  link = await NatsLink.connect(url, {
    room,
    name,
    onEvent: (event) => console.log(formatNatsLinkEvent(event)),
  });
} catch (error) {
  console.error((error as Error).message);
  Deno.exit(1);
}
const server = new PortServer("127.0.0.1", 0);
const clients = new Set<SocketPort>();

function relay(msg: Message, from: SocketPort | undefined): void {
  for (const client of clients) {
    if (client !== from) client.send(msg).catch(() => {});
  }
}

(async () => {
  for (;;) {
    const client = await server.accept().catch(() => undefined);
    if (client === undefined) return;
    clients.add(client);
    (async () => {
      for await (const msg of client) {
        relay(msg, client);
        link.send(msg).catch(() => {});
      }
      clients.delete(client);
    })();
  }
})();

(async () => {
  for await (const msg of link) relay(msg, undefined);
})();

Deno.addSignalListener("SIGTERM", async () => {
  await link.close();
  await server.close();
  Deno.exit(0);
});

console.log(JSON.stringify({ port: server.port, id: link.id }));
