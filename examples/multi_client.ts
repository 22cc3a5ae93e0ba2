/**
 * The seed page's many-clients server, built on accept({ block: false }):
 * it reports connections and disconnections and prints what each client
 * sends, polling, while it is free to do other things.
 *
 *     deno run --allow-net examples/multi_client.ts [host:port]
 */
import {
  formatMessage,
  parseAddress,
  PortServer,
  type SocketPort,
} from "@x/midisock";

const { hostname, port } = parseAddress(Deno.args[0] ?? "localhost:8080");
await using server = new PortServer(hostname, port);
console.log(`Listening on ${server.name}`);
let clients: SocketPort[] = [];
while (true) {
  // Handle connections.
  const client = server.accept({ block: false });
  if (client) {
    console.log(`Connection from ${client.name}`);
    clients.push(client);
  }

  // Receive messages (before noticing a disconnection, so none is lost).
  for (const client of clients) {
    for (const message of client.iterPending()) {
      console.log(`Received ${formatMessage(message)} from ${client.name}`);
    }
  }

  for (const client of clients.filter((client) => client.closed)) {
    console.log(`${client.name} disconnected`);
  }
  clients = clients.filter((client) => !client.closed);

  // Do other things.
  await new Promise((resolve) => setTimeout(resolve, 1));
}
