/**
 * "Turning things on their head": the server sends, every connected client
 * receives each message.
 *
 *     deno run --allow-net examples/server_send.ts [host:port]
 *
 * mido: `server = PortServer('localhost', 8080); while True: server.send(message)`
 */
import { message, parseAddress, PortServer } from "@x/midisock";

const { hostname, port } = parseAddress(Deno.args[0] ?? "localhost:8080");
const server = new PortServer(hostname, port);
console.log(`Listening on ${server.name}`);
const scale = [60, 62, 64, 65, 67, 69, 71, 72];
for (let step = 0;; step++) {
  const note = scale[step % scale.length];
  await server.send(message("note_on", { note }));
  await new Promise((resolve) => setTimeout(resolve, 100));
  await server.send(message("note_off", { note }));
}
