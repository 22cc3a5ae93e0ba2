// Deno peers for bench/net_compare.ts (not meant to be run by hand).
//
// deno run --allow-net=127.0.0.1 bench/_net_peer.ts \
//   STACK ROLE SCENARIO PORT COUNT ROUNDS CLIENTS
//
// STACK    midisock: PortServer (used as a port: merged input, broadcast
//          send) and connect(), each message sent with `await port.send()`
//          midisock-nowait: the same, but the client's throughput sends are
//          not awaited one by one (`Promise.all`), so queued writes coalesce
//          denoraw: Deno.listen/Deno.connect with setNoDelay(true), bytes
//          only, no parsing: the floor for any Deno TCP code
// ROLE     server (binds 127.0.0.1 port 0, prints "READY <port>") or client
// SCENARIO throughput | rtt | fanout (protocols in net_compare.ts's header)
//
// The client prints one JSON line with its timings. A watchdog ends the
// process after DEADLINE_MS whatever happens.

import { connect, type Message, message, PortServer } from "../mod.ts";

const DEADLINE_MS = 90_000;
const HOST = "127.0.0.1";

function note(i: number): Message {
  return message("note_on", {
    channel: i % 16,
    note: i % 128,
    velocity: 1 + i % 127,
  });
}

const NOTE_BYTES = Array.from(
  { length: 128 },
  (_, i) => new Uint8Array([0x90 | (i % 16), i % 128, 1 + i % 127]),
);

function report(fields: Record<string, number[]>): void {
  console.log(JSON.stringify(fields));
}

// ------------------------------------------------------------ midisock ----

async function midisockServer(
  scenario: string,
  count: number,
  rounds: number,
  clients: number,
): Promise<void> {
  let connected = 0;
  const server = new PortServer(HOST, 0, {
    onConnect: () => {
      if (++connected === clients && scenario === "fanout") {
        server.send(message("start"));
      }
    },
    // Done once every client has come and gone.
    onDisconnect: () => {
      if (connected === clients && server.clients.length === 0) {
        server.close();
      }
    },
  });
  console.log(`READY ${server.port}`);
  if (scenario === "throughput") {
    const stop = message("stop");
    let got = 0;
    let done = 0;
    for await (const msg of server) {
      if (msg.type === "note_on" && ++got === count) {
        got = 0;
        await server.send(stop);
        if (++done === rounds) break;
      }
    }
  } else if (scenario === "rtt") {
    for await (const msg of server) await server.send(msg);
  } else {
    const messages = Array.from({ length: count }, (_, i) => note(i));
    let done = 0;
    for await (const msg of server) {
      if (msg.type !== "continue") continue;
      for (const m of messages) await server.send(m);
      if (++done === rounds) break;
    }
  }
  // Clients leave by themselves (onDisconnect closes the server then); the
  // bound is for a client that never does.
  for (let i = 0; i < 2000 && !server.closed; i++) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await server.close();
}

async function midisockClient(
  nowait: boolean,
  scenario: string,
  port: number,
  count: number,
  rounds: number,
  clients: number,
): Promise<void> {
  if (scenario === "throughput") {
    await using client = await connect(HOST, port);
    const messages = Array.from({ length: count }, (_, i) => note(i));
    const times: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const start = performance.now();
      if (nowait) {
        await Promise.all(messages.map((msg) => client.send(msg)));
      } else {
        for (const msg of messages) await client.send(msg);
      }
      while ((await client.receive()).type !== "stop");
      times.push((performance.now() - start) / 1000);
    }
    report({ times });
  } else if (scenario === "rtt") {
    await using client = await connect(HOST, port);
    const samples: number[] = [];
    for (let i = 0; i < count + rounds; i++) {
      const msg = note(i);
      const start = performance.now();
      await client.send(msg);
      await client.receive();
      if (i >= rounds) samples.push((performance.now() - start) / 1000);
    }
    report({ samples });
  } else {
    const ports = [];
    for (let i = 0; i < clients; i++) ports.push(await connect(HOST, port));
    let ready = 0;
    let received = 0;
    let want = 0;
    let wake: (() => void) | undefined;
    let onReady: (() => void) | undefined;
    const readers = ports.map(async (p) => {
      for await (const msg of p) {
        if (msg.type === "start") {
          if (++ready === clients) onReady?.();
        } else if (++received === want) {
          wake?.();
        }
      }
    });
    if (ready < clients) {
      await new Promise<void>((resolve) => onReady = resolve);
    }
    const times: number[] = [];
    const go = message("continue");
    for (let r = 0; r < rounds; r++) {
      want = clients * count * (r + 1);
      const done = new Promise<void>((resolve) => wake = resolve);
      const start = performance.now();
      await ports[0].send(go);
      await done;
      times.push((performance.now() - start) / 1000);
    }
    await Promise.all(ports.map((p) => p.close()));
    await Promise.all(readers);
    report({ times });
  }
}

// ---------------------------------------------------------- raw Deno ----

async function readAtLeast(
  conn: Deno.Conn,
  buffer: Uint8Array,
  n: number,
): Promise<void> {
  for (let got = 0; got < n;) {
    const read = await conn.read(buffer);
    if (read === null) throw new Error("Peer closed");
    got += read;
  }
}

async function rawServer(
  scenario: string,
  count: number,
  rounds: number,
  clients: number,
): Promise<void> {
  const listener = Deno.listen({ hostname: HOST, port: 0 });
  console.log(`READY ${listener.addr.port}`);
  const accept = async () => {
    const conn = await listener.accept();
    conn.setNoDelay(true);
    return conn;
  };
  const buffer = new Uint8Array(65536);
  const drain = async (conn: Deno.Conn) => {
    const own = new Uint8Array(4096);
    try {
      while (await conn.read(own) !== null);
    } catch {
      // Reset by the peer: gone either way.
    }
    conn.close();
  };
  if (scenario === "throughput") {
    const conn = await accept();
    for (let r = 0; r < rounds; r++) {
      await readAtLeast(conn, buffer, 3 * count);
      await conn.write(new Uint8Array([0xfc]));
    }
    await drain(conn);
  } else if (scenario === "rtt") {
    const conn = await accept();
    for (;;) {
      const n = await conn.read(buffer);
      if (n === null) break;
      await conn.write(buffer.subarray(0, n));
    }
    conn.close();
  } else {
    const conns: Deno.TcpConn[] = [];
    for (let i = 0; i < clients; i++) conns.push(await accept());
    for (const conn of conns) await conn.write(new Uint8Array([0xfa]));
    for (let r = 0; r < rounds; r++) {
      await readAtLeast(conns[0], buffer, 1);
      await Promise.all(conns.map(async (conn) => {
        for (let i = 0; i < count; i++) await conn.write(NOTE_BYTES[i % 128]);
      }));
    }
    await Promise.all(conns.map(drain));
  }
  listener.close();
}

async function rawClient(
  scenario: string,
  port: number,
  count: number,
  rounds: number,
  clients: number,
): Promise<void> {
  const open = async () => {
    const conn = await Deno.connect({ hostname: HOST, port });
    conn.setNoDelay(true);
    return conn;
  };
  const buffer = new Uint8Array(65536);
  if (scenario === "throughput") {
    const conn = await open();
    const times: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const start = performance.now();
      for (let i = 0; i < count; i++) await conn.write(NOTE_BYTES[i % 128]);
      await readAtLeast(conn, buffer, 1);
      times.push((performance.now() - start) / 1000);
    }
    conn.close();
    report({ times });
  } else if (scenario === "rtt") {
    const conn = await open();
    const samples: number[] = [];
    for (let i = 0; i < count + rounds; i++) {
      const start = performance.now();
      await conn.write(NOTE_BYTES[i % 128]);
      await readAtLeast(conn, buffer, 3);
      if (i >= rounds) samples.push((performance.now() - start) / 1000);
    }
    conn.close();
    report({ samples });
  } else {
    const conns: Deno.TcpConn[] = [];
    for (let i = 0; i < clients; i++) conns.push(await open());
    await Promise.all(conns.map((c) => readAtLeast(c, new Uint8Array(1), 1)));
    const times: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const start = performance.now();
      await conns[0].write(new Uint8Array([0xfb]));
      await Promise.all(
        conns.map((c) => readAtLeast(c, new Uint8Array(4096), 3 * count)),
      );
      times.push((performance.now() - start) / 1000);
    }
    for (const conn of conns) conn.close();
    report({ times });
  }
}

if (import.meta.main) {
  const [stack, role, scenario, ...numbers] = Deno.args;
  const [port, count, rounds, clients] = numbers.map(Number);
  Deno.unrefTimer(setTimeout(() => Deno.exit(3), DEADLINE_MS));
  const midisock = stack.startsWith("midisock");
  if (midisock && role === "server") {
    await midisockServer(scenario, count, rounds, clients);
  } else if (midisock) {
    const nowait = stack === "midisock-nowait";
    await midisockClient(nowait, scenario, port, count, rounds, clients);
  } else if (role === "server") {
    await rawServer(scenario, count, rounds, clients);
  } else {
    await rawClient(scenario, port, count, rounds, clients);
  }
}
