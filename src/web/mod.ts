/**
 * The hub's web page: a monitor, an on-screen keyboard and a bridge for the
 * browser's own MIDI devices, served with its WebSocket by midisock's own
 * HTTP/1.1 and RFC 6455 handling. A `WebServer` is a transport: attach it
 * to a hub and each page that opens is one more endpoint.
 *
 * @example Serving the page of a hub
 * ```ts ignore
 * import { Hub } from "@x/midisock";
 * import { WebServer } from "@x/midisock/web";
 *
 * await using hub = new Hub();
 * const web = await hub.attach(new WebServer({ port: 8081 }));
 * console.log(`open ${web.url}`);
 * ```
 *
 * @module
 */

export { WebServer, type WebServerOptions } from "./server.ts";

// What the API above refers to, from elsewhere in the package.
export type * from "../_vocabulary.ts";
