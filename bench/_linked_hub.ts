// What `serve --nats URL --room NAME` is, in this process: a Hub, a
// PortServer on a free loopback port whose clients join it, and a NatsLink
// to the room as one more endpoint. For bench/nats_compare.ts.

import { Hub, NatsLink, PortServer } from "../mod.ts";

/** A running hub joined to a room. */
export interface LinkedHub extends AsyncDisposable {
  /** The TCP port its clients connect to. */
  port: number;
  /** Its link to the room. */
  link: NatsLink;
  /** Closes the link (saying goodbye), the clients and the server. */
  close(): Promise<void>;
}

/** Starts a hub joined to `room` on the NATS server at `url`. */
export async function startLinkedHub(
  url: string,
  room: string,
  name: string,
): Promise<LinkedHub> {
  const hub = new Hub();
  const link = await hub.attach(new NatsLink(url, { room, name }));
  const server = await hub.attach(new PortServer("127.0.0.1", 0));
  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      await hub.close();
      await server.close();
    })();
  return { port: server.port, link, close, [Symbol.asyncDispose]: close };
}
