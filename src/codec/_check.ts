/**
 * Internal: checks for lists of messages, as ports take them.
 *
 * @module
 */

import { checkMessage, type Message } from "./messages.ts";

/**
 * Checks every message of a list, as `sendAll` does before sending any.
 *
 * @param messages The messages.
 * @returns Them, as an array.
 * @throws {TypeError | RangeError} For the first malformed one.
 */
export function checkMessages(messages: Iterable<Message>): Message[] {
  const list = [...messages];
  for (const msg of list) checkMessage(msg);
  return list;
}
