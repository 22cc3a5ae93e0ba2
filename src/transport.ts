/**
 * The one shape every transport has. A transport makes endpoints (TCP
 * clients, web pages, RTP-MIDI participants, hardware ports, a link to
 * other hubs) and hands them to the hub it is attached to; the hub owns it
 * from then on and closes it when the hub closes, after the hub has stopped
 * reading, released every held note and closed every endpoint.
 *
 * @module
 */

import type { Hub } from "./hub.ts";

/**
 * A way in to a hub: `hub.attach(transport)` starts it, `hub.close()` (or
 * `await using hub`) closes it, in the reverse order of attaching.
 *
 * @example A transport that adds one port to the hub it is attached to
 * ```ts
 * import assert from "node:assert/strict";
 * import { Hub, InputPortBase, type Transport } from "@x/midisock";
 *
 * class Silent extends InputPortBase {
 *   readonly name = "silent";
 *   close(): Promise<void> {
 *     this.finish(undefined, true);
 *     return Promise.resolve();
 *   }
 * }
 *
 * class OnePort implements Transport {
 *   readonly name = "one port";
 *   closed = false;
 *   attach(hub: Hub): Promise<void> {
 *     hub.add(new Silent(), { kind: "device", transport: "example" });
 *     return Promise.resolve();
 *   }
 *   close(): Promise<void> {
 *     this.closed = true;
 *     return Promise.resolve();
 *   }
 *   [Symbol.asyncDispose](): Promise<void> {
 *     return this.close();
 *   }
 * }
 *
 * const transport = new OnePort();
 * {
 *   await using hub = new Hub();
 *   await hub.attach(transport);
 *   assert.equal(hub.endpoints.length, 1);
 * }
 * assert.ok(transport.closed);
 * ```
 */
export interface Transport extends AsyncDisposable {
  /** For people: what it is and where, as `tcp 127.0.0.1:8080`. */
  readonly name: string;
  /**
   * Starts making endpoints for `hub`, under its gate and policies. Called
   * once, by {@linkcode Hub.attach}.
   *
   * @param hub The hub its endpoints join.
   * @returns A promise that resolves once the transport is ready (bound,
   * connected, opened), or rejects with why it cannot be.
   */
  attach(hub: Hub): Promise<void>;
  /**
   * Stops making endpoints and frees what the transport holds (listeners,
   * sockets, native handles). The endpoints it made belong to the hub.
   * Closing twice does nothing.
   */
  close(): Promise<void>;
}
