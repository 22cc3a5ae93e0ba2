/**
 * Ports are async-disposable: `await using` closes them however the block
 * ends. A server and a client in one script, talking over loopback.
 *
 *     deno run --allow-net=127.0.0.1 examples/await_using.ts
 */
import { connect, formatMessage, message, PortServer } from "@x/midisock";

await using server = new PortServer("127.0.0.1", 0);
{
  await using client = await connect("127.0.0.1", server.port);
  await client.send(message("program_change", { program: 12 }));
  await client.send(message("note_on", { note: 64, velocity: 90 }));
} // the client is closed here
for await (const msg of server) {
  console.log(formatMessage(msg));
  if (msg.type === "note_on") break;
} // and the server is closed here
