/**
 * The one shape every transport has (defined beside the `Hub`, in
 * src/hub/hub.ts, since each names the other). A transport makes endpoints (TCP
 * clients, web pages, RTP-MIDI participants, hardware ports, a link to
 * other hubs) and hands them to the hub it is attached to; the hub owns it
 * from then on and closes it when the hub closes, after the hub has stopped
 * reading, released every held note and closed every endpoint.
 *
 * @module
 */

export type { Transport } from "./hub/hub.ts";
