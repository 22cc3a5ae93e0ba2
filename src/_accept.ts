/**
 * Internal: a TCP server's listening socket and accept loop, shared by the
 * transports that listen (TCP clients, the web page). One failed accept never stops it: a
 * peer that reset at once is passed over; a process out of file
 * descriptors waits (backing off, not spinning, since the kernel keeps the
 * connection queued) and says so once a minute at most.
 *
 * @module
 */

import { exponentialBackoff } from "./backoff.ts";
import { sleep } from "./_time.ts";
import { formatAddress } from "./address.ts";

/**
 * Listens on `host` and `port`; the host `""` listens on every interface,
 * IPv6 and IPv4 where the system has both (as mido's `''` means), else
 * IPv4's.
 *
 * @throws {Deno.errors.AddrInUse} Saying which address is in use.
 */
export function listenTcp(host: string, port: number): Deno.TcpListener {
  const open = (hostname: string) => {
    try {
      return Deno.listen({ hostname, port });
    } catch (error) {
      if (!(error instanceof Deno.errors.AddrInUse)) throw error;
      const where = formatAddress({ hostname, port });
      throw new Deno.errors.AddrInUse(
        `TCP ${where} is already in use (is another server running?)`,
        { cause: error },
      );
    }
  };
  if (host !== "") return open(host);
  try {
    return open("::");
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) throw error;
    return open("0.0.0.0");
  }
}

const BACKOFF = exponentialBackoff({ first: 50, max: 1000, jitter: 0 });
const WARN_EVERY_MS = 60_000;

/** Whether an accept failed because the process is out of descriptors. */
function outOfDescriptors(error: unknown): boolean {
  return error instanceof Error &&
    /too many open files|os error 2[34]\b/i.test(error.message);
}

/**
 * Accepts connections until the listener closes or `signal` aborts.
 *
 * @param listener The listener.
 * @param server `name` for warnings, `warn` where they go, `signal` stops.
 * @param arrive Takes each connection; waited for before the next accept.
 */
export async function acceptEach(
  listener: Deno.TcpListener,
  server: {
    readonly name: string;
    warn(line: string): void;
    readonly signal: AbortSignal;
  },
  arrive: (conn: Deno.TcpConn) => void | Promise<void>,
): Promise<void> {
  let failures = 0;
  let warned = -Infinity;
  for (;;) {
    let conn: Deno.TcpConn;
    try {
      conn = await listener.accept();
      failures = 0;
    } catch (error) {
      if (server.signal.aborted) return;
      if (error instanceof Deno.errors.BadResource) return;
      if (outOfDescriptors(error)) {
        const now = performance.now();
        if (failures === 0 && now - warned > WARN_EVERY_MS) {
          warned = now;
          server.warn(
            `${server.name}: cannot accept connections: the process has ` +
              "no file descriptors left; waiting for some to close",
          );
        }
        await sleep(BACKOFF(++failures), server.signal);
      }
      continue;
    }
    await arrive(conn);
  }
}
