/**
 * "Under the hood": take connections with accept(), one at a time.
 *
 *     deno run --allow-net examples/accept_loop.ts [host:port]
 *
 * mido:
 *
 *     with PortServer('localhost', 8080) as server:
 *         while True:
 *             client = server.accept()
 *             for message in client:
 *                 print(message)
 */
import { formatMessage, parseAddress, PortServer } from "@x/midisock";

const { hostname, port } = parseAddress(Deno.args[0] ?? "localhost:8080");
await using server = new PortServer(hostname, port);
console.log(`Listening on ${server.name}`);
while (true) {
  await using client = await server.accept();
  for await (const message of client) {
    console.log(formatMessage(message));
  }
}
