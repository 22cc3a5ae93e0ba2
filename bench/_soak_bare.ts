// The baseline server of bench/soak.ts (not meant to be run by hand): bare
// Deno.listen, each connection read into its own 64 KiB buffer and the bytes
// thrown away, no MIDI, nothing written back. The same churners run against
// it, so the soak can tell what the Deno runtime keeps after churn from what
// midisock keeps. Prints "READY <port>"; stops when stdin closes.
//
//   deno run --allow-net=127.0.0.1 bench/_soak_bare.ts

const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
console.log(`READY ${listener.addr.port}`);

async function drain(conn: Deno.TcpConn): Promise<void> {
  const buffer = new Uint8Array(64 * 1024);
  try {
    while (await conn.read(buffer) !== null) { /* thrown away */ }
  } catch {
    // Reset by a vanishing churner.
  }
  try {
    conn.close();
  } catch {
    // Closed already.
  }
}

const accepting = (async () => {
  try {
    for await (const conn of listener) drain(conn);
  } catch {
    // The listener closed.
  }
})();

for await (const _ of Deno.stdin.readable) { /* until stdin closes */ }
listener.close();
await accepting;
console.log("{}");
