// Misbehaving, short-lived clients for bench/soak.ts (not meant to be run by
// hand): COUNT of them, for SECONDS, each in a loop picking at random to send
// valid traffic, vanish mid-message, send a giant unterminated sysex, spray
// garbage, or connect and never read. Prints one JSON line of what they did.
//
//   deno run --allow-net=127.0.0.1 bench/_soak_churn.ts PORT SECONDS COUNT

const [port, seconds, count] = Deno.args.map(Number);
const deadline = Date.now() + seconds * 1000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const done = { valid: 0, vanish: 0, giant: 0, garbage: 0, stall: 0 };

const notes = new Uint8Array(60);
for (let i = 0; i < 20; i++) notes.set([0x90, i, 0], i * 3);
const giant = new Uint8Array(256 * 1024).fill(0x41);
giant[0] = 0xf0;

async function churn(seed: number): Promise<void> {
  let state = seed;
  const rand = () =>
    (state = (state * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  while (Date.now() < deadline) {
    const pick = rand();
    let conn: Deno.TcpConn;
    try {
      conn = await Deno.connect({ hostname: "127.0.0.1", port });
    } catch {
      await sleep(10);
      continue;
    }
    try {
      if (pick < 0.35) {
        done.valid++;
        await conn.write(notes);
      } else if (pick < 0.6) {
        done.vanish++;
        await conn.write(
          new Uint8Array([0x90, 60, 100, 0xf0, 1, 2, 3, 0x90, 61]),
        );
      } else if (pick < 0.7) {
        done.giant++;
        await conn.write(giant);
      } else if (pick < 0.85) {
        done.garbage++;
        await conn.write(
          Uint8Array.from({ length: 512 }, () => Math.floor(rand() * 256)),
        );
      } else {
        done.stall++;
        await sleep(500 + rand() * 1500); // never reads what the hub relays
      }
    } catch {
      // The server may drop a misbehaving client first: that is the point.
    }
    try {
      conn.close();
    } catch {
      // Closed already.
    }
    await sleep(rand() * 20);
  }
}

await Promise.all(Array.from({ length: count }, (_, i) => churn(i + 1)));
console.log(JSON.stringify(done));
