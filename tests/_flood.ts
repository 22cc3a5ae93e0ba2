// A flood for tests and benchmarks, as its own process: N connections to a
// hub on 127.0.0.1 that write garbage (every status byte but note_on) and
// realtime bytes as fast as the sockets take them, never reading, until
// stdin closes. Prints "flooding N" once every connection is open.
//
//   deno run --allow-net=127.0.0.1 tests/_flood.ts PORT N

const [port, count] = Deno.args.map(Number);
const conns = await Promise.all(
  Array.from(
    { length: count },
    () => Deno.connect({ hostname: "127.0.0.1", port }),
  ),
);
const garbage = new Uint8Array(64 * 1024);
for (let i = 0; i < garbage.length; i++) {
  const byte = (i * 131 + 7) & 0xff;
  garbage[i] = (byte & 0xf0) === 0x90 ? byte + 0x10 : byte;
}
const clocks = new Uint8Array(64 * 1024).fill(0xf8);
let flooding = true;
const floods = conns.map((conn, i) =>
  (async () => {
    while (flooding) await conn.write(i % 2 ? garbage : clocks);
  })().catch(() => {})
);
console.log(`flooding ${count}`);
for await (const _ of Deno.stdin.readable) { /* until stdin closes */ }
flooding = false;
for (const conn of conns) {
  try {
    conn.close();
  } catch {
    // Closed by the hub.
  }
}
await Promise.all(floods);
