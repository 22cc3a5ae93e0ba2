/**
 * The client side of "Turning things on their head": print what the server
 * sends.
 *
 *     deno run --allow-net examples/client_print.ts [host:port]
 *
 * mido: `for message in connect('localhost', 8080): print(message)`
 */
import { connect, formatMessage, parseAddress } from "@x/midisock";

const { hostname, port } = parseAddress(Deno.args[0] ?? "localhost:8080");
for await (const message of await connect(hostname, port)) {
  console.log(formatMessage(message));
}
