// Helpers for network tests: bounded waits only, so no test can hang.

import type { InputPort, Message } from "../mod.ts";
import { concat } from "./_util.ts";
import { skip } from "./_skip.ts";

/** Rejects if `promise` takes longer than `ms`. */
export async function within<T>(
  promise: Promise<T>,
  ms = 5000,
  what = "operation",
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`${what} took more than ${ms} ms`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Waits until `condition()` holds, checking every few ms, for at most `ms`. */
export async function until(
  condition: () => boolean,
  ms = 5000,
  what = "condition",
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not met in ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** Reads exactly `count` messages from a port, within `ms`. */
export function take(
  port: InputPort,
  count: number,
  ms = 5000,
): Promise<Message[]> {
  return within(
    (async () => {
      const out: Message[] = [];
      while (out.length < count) out.push(await port.receive());
      return out;
    })(),
    ms,
    `reading ${count} messages from ${port.name}`,
  );
}

/** Reads every message until the port closes, within `ms`. */
export function drain(port: InputPort, ms = 5000): Promise<Message[]> {
  return within(Array.fromAsync(port), ms, `draining ${port.name}`);
}

/** Reads raw bytes from a connection until the peer closes it (which closes it here too), within `ms`. */
export function readAll(conn: Deno.Conn, ms = 5000): Promise<Uint8Array> {
  return within(
    (async () => {
      const parts: Uint8Array[] = [];
      for await (const chunk of conn.readable) parts.push(chunk);
      return concat(parts);
    })(),
    ms,
    "reading a raw connection",
  );
}

/** The permissions of network tests: loopback only. */
export const LOOPBACK: Deno.PermissionOptionsObject = {
  net: ["127.0.0.1", "[::1]", "localhost"],
};

/** Registers a test that fails if it has not ended within `ms`. */
export function boundedTest(
  name: string,
  fn: () => Promise<void>,
  options: {
    permissions: Deno.PermissionOptions;
    ms: number;
    /** Why it cannot run here (ignored, with the reason in its name). */
    ignore?: string | undefined;
  },
): void {
  Deno.test({
    ...skip(name, options.ignore),
    permissions: options.permissions,
    fn: () => within(fn(), options.ms, name),
  });
}

/** Registers a loopback-only network test that must end within 20 s. */
export function netTest(name: string, fn: () => Promise<void>): void {
  boundedTest(name, fn, { permissions: LOOPBACK, ms: 20000 });
}
