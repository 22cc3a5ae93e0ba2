// Bonjour advertisement of serve's RTP-MIDI session, tested where multicast
// DNS really flows: two network namespaces this test makes (root, a veth
// pair, 10.77.0.0/24) and deletes afterwards; never on a real network. serve
// runs in one, a multicast DNS browser (tests/_mdns_browse.ts) in the other.
// Ignored with a reason where namespaces cannot be made, unless
// MIDISOCK_REQUIRE_NETNS=1.

import assert from "node:assert/strict";
import { boundedTest } from "./_net.ts";

const ROOT = new URL("../", import.meta.url);
const DENO = Deno.execPath();
const A = `msock-a-${Deno.pid}`;
const B = `msock-b-${Deno.pid}`;

function ip(...args: string[]): boolean {
  try {
    return new Deno.Command("ip", { args, stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

/** Makes the two namespaces and the link between them; false if it cannot. */
function makeNetwork(): boolean {
  const veth = [`va${Deno.pid}`.slice(0, 15), `vb${Deno.pid}`.slice(0, 15)];
  const steps: string[][] = [
    ["netns", "add", A],
    ["netns", "add", B],
    ["link", "add", veth[0], "type", "veth", "peer", "name", veth[1]],
    ["link", "set", veth[0], "netns", A],
    ["link", "set", veth[1], "netns", B],
    ["-n", A, "addr", "add", "10.77.0.1/24", "dev", veth[0]],
    ["-n", B, "addr", "add", "10.77.0.2/24", "dev", veth[1]],
  ];
  for (const [ns, dev] of [[A, veth[0]], [B, veth[1]]]) {
    steps.push(
      ["-n", ns, "link", "set", "lo", "up"],
      ["-n", ns, "link", "set", dev, "up"],
      ["-n", ns, "route", "add", "224.0.0.0/4", "dev", dev],
    );
  }
  for (const step of steps) {
    if (!ip(...step)) {
      dropNetwork();
      return false;
    }
  }
  return true;
}

function dropNetwork(): void {
  ip("netns", "del", A);
  ip("netns", "del", B);
}

const reason = (() => {
  if (Deno.build.os !== "linux") return "network namespaces are Linux only";
  if (!ip("-V")) return "iproute2 (ip) is not installed";
  if (!makeNetwork()) {
    return "cannot make network namespaces here (needs root)";
  }
  dropNetwork();
  return undefined;
})();
if (reason !== undefined) {
  if (Deno.env.get("MIDISOCK_REQUIRE_NETNS") === "1") {
    throw new Error(`${reason}, but MIDISOCK_REQUIRE_NETNS=1`);
  }
  console.warn(`${reason}: skipping the Bonjour tests`);
}

/** The multicast DNS browser (tests/_mdns_browse.ts) in namespace B. */
function browser(ms: number, ...questions: string[]): Deno.Command {
  return new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      B,
      DENO,
      "run",
      "-A",
      "tests/_mdns_browse.ts",
      String(ms),
      ...questions,
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "inherit",
  });
}

/** Lines of a child's output, as they come. */
function lines(stream: ReadableStream<Uint8Array>): AsyncIterator<string> {
  return stream.pipeThrough(new TextDecoderStream()).pipeThrough(
    new TransformStream<string, string>(
      {
        buffer: "",
        transform(chunk, controller) {
          this.buffer += chunk;
          const parts = this.buffer.split("\n");
          this.buffer = parts.pop()!;
          for (const part of parts) controller.enqueue(part);
        },
      } as Transformer<string, string> & { buffer: string },
    ),
  )[Symbol.asyncIterator]();
}

async function lineMatching(
  out: AsyncIterator<string>,
  pattern: RegExp,
  seen: string[],
): Promise<string> {
  for (;;) {
    const { value, done } = await out.next();
    if (done) throw new Error(`ended before ${pattern}:\n${seen.join("\n")}`);
    seen.push(value);
    if (pattern.test(value)) return value;
  }
}

interface Record {
  name: string;
  type: string;
  ttl: number;
  data: unknown;
}

boundedTest(
  "serve --rtp-bonjour: a browser on another network finds the session, its port and address, and sees it leave",
  async () => {
    // The network namespaces cannot reach the npm registry: fetch first
    // (the browser imports the package serve loads only when advertising).
    const cache = await new Deno.Command(DENO, {
      args: ["cache", "src/rtp/bonjour.ts", "tests/_mdns_browse.ts"],
      cwd: ROOT,
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.ok(cache.success, new TextDecoder().decode(cache.stderr));
    assert.ok(makeNetwork());
    const children: Deno.ChildProcess[] = [];
    try {
      const serve = new Deno.Command("ip", {
        args: [
          "netns",
          "exec",
          A,
          DENO,
          "run",
          "-A",
          "src/cli/serve.ts",
          "10.77.0.1:8080",
          "--allow",
          "10.77.0.0/24",
          "--rtp",
          "5004",
          "--rtp-name",
          "Studio A",
          "--rtp-bonjour",
        ],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      children.push(serve);
      const said: string[] = [];
      const served = lines(serve.stdout);
      const advertised = await lineMatching(served, /advertising/, said);
      assert.match(
        advertised,
        /advertising "Studio A\._apple-midi\._udp\.local" over Bonjour \(host [^ ]+\.local\)/,
      );
      const host = advertised.match(/host ([^ )]+)/)![1];

      const browse = browser(1500).spawn();
      children.push(browse);
      const heard = lines(browse.stdout);
      const responses: { answers: Record[]; additionals: Record[] }[] = [];
      const seen: string[] = [];
      await lineMatching(heard, /"ready"/, seen);
      // The answer to the browser's question.
      responses.push(JSON.parse(await lineMatching(heard, /answers/, seen)));
      const all = [...responses[0].answers, ...responses[0].additionals];
      const find = (type: string) => all.find((r) => r.type === type);
      assert.deepEqual(
        responses[0].answers.map((r) => [r.name, r.type, r.data]),
        [[
          "_apple-midi._udp.local",
          "PTR",
          "Studio A._apple-midi._udp.local",
        ]],
      );
      const srv = find("SRV")!;
      assert.equal(srv.name, "Studio A._apple-midi._udp.local");
      assert.deepEqual(srv.data, {
        priority: 0,
        weight: 0,
        port: 5004,
        target: host,
      });
      assert.equal(srv.ttl, 120);
      assert.deepEqual(
        [find("A")!.name, find("A")!.data],
        [host, "10.77.0.1"],
      );
      assert.ok(find("TXT"));
      await browse.status;

      // Asked directly, in any case: the instance, the host, the services.
      const ask = browser(
        1500,
        "STUDIO A._APPLE-MIDI._UDP.LOCAL:SRV",
        `${host}:A`,
        "_services._dns-sd._udp.local:PTR",
      ).output();
      const direct = new TextDecoder().decode((await ask).stdout).trim()
        .split("\n").map((line) => JSON.parse(line))
        .filter((line) => line.answers !== undefined);
      assert.equal(direct.length, 1, JSON.stringify(direct));
      assert.deepEqual(
        (direct[0].answers as Record[]).map((r) => [r.name, r.type]).sort(),
        [
          ["Studio A._apple-midi._udp.local", "SRV"],
          ["_services._dns-sd._udp.local", "PTR"],
          [host, "A"],
        ].sort(),
      );

      // A browser that stays to the end hears the goodbye.
      const stay = browser(4000).spawn();
      children.push(stay);
      const staying = lines(stay.stdout);
      await lineMatching(staying, /answers/, seen);

      // serve stops: it says goodbye, the records again with TTL 0.
      serve.kill("SIGTERM");
      const goodbye: { answers: Record[] } = JSON.parse(
        await lineMatching(staying, /"ttl":0/, seen),
      );
      const gone = goodbye.answers.find((r) => r.type === "PTR")!;
      assert.deepEqual([gone.data, gone.ttl], [
        "Studio A._apple-midi._udp.local",
        0,
      ]);
      assert.equal((await serve.status).code, 0);
      await lineMatching(served, /stopped/, said);
      await stay.status;
    } finally {
      try {
        for (const child of children) {
          try {
            child.kill("SIGKILL");
          } catch {
            // Ended already.
          }
          await child.status;
          await child.stdout.cancel().catch(() => {});
        }
        await children[0]?.stderr.cancel().catch(() => {});
      } finally {
        dropNetwork();
      }
    }
  },
  {
    permissions: { run: true, read: true, env: ["MIDISOCK_REQUIRE_NETNS"] },
    ms: 60000,
    ignore: reason &&
      `${reason} (Bonjour is tested between network namespaces)`,
  },
);

boundedTest(
  "the RTP-MIDI module and its session need no npm package until Bonjour is used",
  async () => {
    for (const file of ["src/rtp/mod.ts", "src/rtp/session.ts"]) {
      const { success, stdout, stderr } = await new Deno.Command(DENO, {
        args: ["info", "--json", file],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.ok(success, new TextDecoder().decode(stderr));
      // (Its npmPackages are the lock file's, used or not.)
      const info = JSON.parse(new TextDecoder().decode(stdout)) as {
        modules: { specifier: string }[];
      };
      assert.deepEqual(
        info.modules.filter((m) => m.specifier.startsWith("npm:")),
        [],
        file,
      );
    }
  },
  { permissions: { run: true, read: true }, ms: 30000 },
);

boundedTest(
  "serve --rtp-bonjour without --rtp is a usage error",
  async () => {
    const { code, stderr } = await new Deno.Command(DENO, {
      args: ["run", "-A", "src/cli/serve.ts", "--rtp-bonjour"],
      cwd: ROOT,
      stdout: "null",
      stderr: "piped",
    }).output();
    assert.equal(code, 2);
    assert.match(
      new TextDecoder().decode(stderr),
      /--rtp-bonjour goes with --rtp/,
    );
  },
  { permissions: { run: true, read: true }, ms: 30000 },
);

boundedTest(
  "serve --rtp-bonjour on loopback says why it cannot advertise, and serves on",
  async () => {
    const serve = new Deno.Command(DENO, {
      args: [
        "run",
        "-A",
        "src/cli/serve.ts",
        "127.0.0.1:0",
        "--rtp",
        "0",
        "--rtp-bonjour",
      ],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const said: string[] = [];
    const out = lines(serve.stdout);
    const errors = lines(serve.stderr);
    try {
      assert.match(
        await lineMatching(errors, /Bonjour/, said),
        /^midisock serve: warning: cannot advertise over Bonjour: the session is bound to loopback \(127\.0\.0\.1\)/,
      );
      await lineMatching(out, /listening on/, said);
      serve.kill("SIGTERM");
      await lineMatching(out, /stopped/, said);
      assert.equal((await serve.status).code, 0);
    } finally {
      try {
        serve.kill("SIGKILL");
      } catch {
        // Ended already.
      }
      await serve.status;
      await out.return?.();
    }
  },
  { permissions: { run: true, read: true }, ms: 30000 },
);
