// A stand-in for `serve --nats URL --room NAME` until the hub lands: a
// PortServer on a free loopback port whose clients hear each other and the
// room (through a NatsLink), and the room hears them.
//
// As a script it prints one JSON line {"port": N, "id": "..."} once ready,
// then one line per link event; on a failure to join it prints the error's
// one line on stderr and exits 1; SIGTERM closes it cleanly (goodbye).
//
//   deno run --allow-net=127.0.0.1 tests/_nats_hub.ts URL ROOM NAME

import {
  formatNatsLinkEvent,
  type Message,
  NatsLink,
  type NatsLinkEvent,
  PortServer,
  type SocketPort,
} from "../mod.ts";

/** A running stand-in hub. */
export interface StandInHub extends AsyncDisposable {
  /** The TCP port its clients connect to. */
  port: number;
  link: NatsLink;
  close(): Promise<void>;
}

/** Starts a stand-in hub: a PortServer relay joined to a room. */
export async function startStandInHub(
  url: string,
  room: string,
  name: string,
  onEvent?: (event: NatsLinkEvent) => void,
): Promise<StandInHub> {
  const link = await NatsLink.connect(url, { room, name, onEvent });
  const server = new PortServer("127.0.0.1", 0);
  const clients = new Set<SocketPort>();
  const relay = (msg: Message, from: SocketPort | undefined): void => {
    for (const client of clients) {
      if (client !== from) client.send(msg).catch(() => {});
    }
  };
  const tasks = new Set<Promise<void>>();
  const run = (task: Promise<void>) => {
    tasks.add(task);
    task.finally(() => tasks.delete(task));
  };
  run((async () => {
    for (;;) {
      const client = await server.accept().catch(() => undefined);
      if (client === undefined) return;
      clients.add(client);
      run((async () => {
        for await (const msg of client) {
          relay(msg, client);
          link.send(msg).catch(() => {});
        }
        clients.delete(client);
      })());
    }
  })());
  run((async () => {
    for await (const msg of link) relay(msg, undefined);
  })());
  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      await link.close();
      for (const client of clients) await client.close();
      await server.close();
      await Promise.all(tasks);
    })();
  return {
    port: server.port,
    link,
    close,
    [Symbol.asyncDispose]: close,
  };
}

if (import.meta.main) {
  const [url, room, name] = Deno.args;
  let hub: StandInHub;
  try {
    hub = await startStandInHub(
      url,
      room,
      name,
      (event) => console.log(formatNatsLinkEvent(event)),
    );
  } catch (error) {
    console.error((error as Error).message);
    Deno.exit(1);
  }
  Deno.addSignalListener("SIGTERM", async () => {
    await hub.close();
    Deno.exit(0);
  });
  console.log(JSON.stringify({ port: hub.port, id: hub.link.id }));
}
