/**
 * The seed page's first server: print every message any client sends.
 *
 *     deno run --allow-net examples/server_print.ts [host:port]
 *
 * mido: `for message in PortServer('localhost', 8080): print(message)`
 */
import { formatMessage, parseAddress, PortServer } from "@x/midisock";

const { hostname, port } = parseAddress(Deno.args[0] ?? "localhost:8080");
const server = new PortServer(hostname, port);
console.log(`Listening on ${server.name}`);
for await (const message of server) {
  console.log(formatMessage(message));
}
