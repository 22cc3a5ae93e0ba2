// The limit for bench/hub_compare.ts (not meant to be run by hand): a relay
// that forwards each client's bytes, unparsed, to every other client, with
// TCP_NODELAY, one write per read per client. Prints "READY <port>"; ends
// when stdin closes.

const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
console.log(`READY ${listener.addr.port}`);
const clients = new Set<Deno.TcpConn>();

/** Each client's writes, in order, one at a time. */
const tails = new Map<Deno.TcpConn, Promise<unknown>>();

function forward(to: Deno.TcpConn, bytes: Uint8Array): void {
  const tail = tails.get(to) ?? Promise.resolve();
  tails.set(
    to,
    tail.then(async () => {
      for (let offset = 0; offset < bytes.length;) {
        offset += await to.write(bytes.subarray(offset));
      }
    }).catch(() => {}),
  );
}

async function serve(conn: Deno.TcpConn): Promise<void> {
  conn.setNoDelay(true);
  clients.add(conn);
  const buffer = new Uint8Array(64 * 1024);
  try {
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      const bytes = buffer.slice(0, n);
      for (const other of clients) if (other !== conn) forward(other, bytes);
    }
  } catch {
    // Gone.
  }
  clients.delete(conn);
  tails.delete(conn);
  try {
    conn.close();
  } catch {
    // Closed.
  }
}

(async () => {
  for await (const _ of Deno.stdin.readable) {
    // Until stdin closes.
  }
  Deno.exit(0);
})();

for await (const conn of listener) serve(conn);
