/**
 * The seed page's client: connect to a server and send it a message.
 *
 *     deno run --allow-net examples/client_send.ts [host:port] ["note_on note=60"]
 *
 * mido: `output = connect('localhost', 8080); output.send(message)`
 */
import { connect, parseAddress, parseMessage } from "@x/midisock";

const { hostname, port } = parseAddress(Deno.args[0] ?? "localhost:8080");
const message = parseMessage(Deno.args[1] ?? "note_on note=60 velocity=64");

const output = await connect(hostname, port);
await output.send(message);
await output.close();
