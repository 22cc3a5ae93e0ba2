// A reader in its own process for bench/hub_overload.ts: connects to a hub
// on 127.0.0.1, reads as fast as the socket gives, and prints what it sees,
// one line each: `bytes N` every 250 ms (in all), `note ID AT` for each
// note_on of note 61 (ID its velocity, AT Date.now()), `released AT` for the
// note_off of note 60, `closed AT` when the hub closes the connection.
//
//   deno run --allow-net=127.0.0.1 bench/_overload_reader.ts PORT

const port = Number(Deno.args[0]);
const conn = await Deno.connect({ hostname: "127.0.0.1", port });
conn.setNoDelay(true);
console.log("ready");
let bytes = 0;
const timer = setInterval(() => console.log(`bytes ${bytes}`), 250);
const buffer = new Uint8Array(256 * 1024);
let tail = new Uint8Array(0);
try {
  for (;;) {
    const n = await conn.read(buffer);
    if (n === null) break;
    bytes += n;
    // Look at the seam with the previous read too (two bytes of it).
    const seen = new Uint8Array(tail.length + n);
    seen.set(tail);
    seen.set(buffer.subarray(0, n), tail.length);
    const at = Date.now();
    for (let i = seen.indexOf(0x90); i >= 0; i = seen.indexOf(0x90, i + 1)) {
      if (i + 2 < seen.length && seen[i + 1] === 61) {
        console.log(`note ${seen[i + 2]} ${at}`);
      }
    }
    for (let i = seen.indexOf(0x80); i >= 0; i = seen.indexOf(0x80, i + 1)) {
      if (i + 2 < seen.length && seen[i + 1] === 60 && seen[i + 2] === 0) {
        console.log(`released ${at}`);
      }
    }
    // Keep the last two bytes unless they began a message already seen.
    tail = seen.slice(Math.max(0, seen.length - 2));
    if (tail.length === 2 && (tail[0] === 0x90 || tail[0] === 0x80)) {
      tail = tail.slice(0);
    } else if (tail[1] === 0x90 || tail[1] === 0x80) {
      tail = tail.slice(1);
    } else {
      tail = new Uint8Array(0);
    }
  }
} catch {
  // Reset by the hub.
}
clearInterval(timer);
console.log(`bytes ${bytes}`);
console.log(`closed ${Date.now()}`);
