// The command-line entry points, run as subprocesses on loopback.

import assert from "node:assert/strict";
import denoJson from "../deno.json" with { type: "json" };
import {
  connect,
  formatMessage,
  Hub,
  type Message,
  message,
  PortServer,
} from "../mod.ts";
import { OPENSSL_MISSING, testCertificates } from "./_tls.ts";
import { readLines, WanLink, wanSkip } from "./_wan.ts";
import { MIDO_MISSING, runPython } from "./_mido.ts";
import { withoutDbNoise } from "./_rtmidi.ts";
import { boundedTest, readAll, take, within } from "./_net.ts";
import {
  type Command,
  freePort,
  HARDWARE,
  NET,
  noJack,
  run,
  spawn,
} from "./_cli.ts";

const PERMISSIONS: Deno.PermissionOptions = {
  net: ["127.0.0.1", "[::1]", "localhost"],
  run: true,
  read: true,
};

function cliTest(
  name: string,
  fn: () => Promise<void>,
  options: { ignore?: string; permissions?: Deno.PermissionOptions } = {},
): void {
  boundedTest(name, fn, {
    ignore: options.ignore,
    permissions: options.permissions ?? PERMISSIONS,
    ms: 90000,
  });
}

/** Resolves to `true` after `ms`. */
function tick(ms: number): Promise<boolean> {
  return new Promise((resolve) => setTimeout(() => resolve(true), ms));
}

/** One line on stderr, naming the command, without a stack trace. */
function assertOneLineError(stderr: string, command: string): string {
  // A full JACK metadata store makes every JACK client print a Berkeley DB
  // line that no JACK API silences: that line is the machine's, not ours.
  const lines = withoutDbNoise(stderr).trimEnd().split("\n");
  assert.equal(lines.length, 1, `one line expected: ${stderr}`);
  assert.match(lines[0], new RegExp(`^midisock ${command}: \\S`));
  assert.doesNotMatch(stderr, /\bat \S+:\d+:\d+|^error:|Uncaught/m);
  return lines[0];
}

const MONITOR_LINE =
  /^\d{2}:\d{2}:\d{2}\.\d{3} (\S+) (note_on channel=0 note=60 velocity=64 time=0)$/;

// --- help, version, bad arguments -----------------------------------------

for (const command of ["serve", "connect", "ports"] as const) {
  cliTest(`${command} --help prints usage with examples`, async () => {
    const { code, stdout, stderr } = await run(command, ["--help"]);
    assert.equal(code, 0, stderr);
    assert.match(stdout, new RegExp(`^midisock ${command} `));
    assert.match(stdout, /Usage: /);
    assert.match(stdout, /Examples:\n/);
    assert.match(stdout, new RegExp(`jsr:@x/midisock/${command}`));
  });

  cliTest(`${command} --version prints the version in deno.json`, async () => {
    const { code, stdout } = await run(command, ["--version"]);
    assert.equal(code, 0);
    assert.equal(stdout.trim(), `midisock ${denoJson.version}`);
  });

  cliTest(`${command} rejects an unknown option with exit 2`, async () => {
    const { code, stdout, stderr } = await run(command, ["--bogus"]);
    assert.equal(code, 2);
    assert.equal(stdout, "");
    assert.match(assertOneLineError(stderr, command), /--bogus/);
  });
}

const BAD_USAGE: [Command, string[], RegExp][] = [
  ["serve", ["nohost:notaport"], /Invalid address/],
  [
    "serve",
    ["--port", "70000"],
    /--port must be a number in 0..65535: got "70000"/,
  ],
  ["serve", ["127.0.0.1:0", "--port", "1"], /not both/],
  ["serve", ["a:1", "b:2"], /at most one ADDRESS/],
  ["serve", ["--monitor", "--quiet"], /cannot be used together/],
  [
    "serve",
    ["--api", "oss"],
    /--api must be one of core, alsa, jack, winmm: got "oss"/,
  ],
  ["serve", ["--port"], /--port/],
  ["connect", ["--send", "note_on note=128"], /note=128/],
  ["connect", ["--send", "hello"], /unknown message type/],
  [
    "connect",
    ["--send", "start", "--retry"],
    /--send and --retry cannot be used together/,
  ],
  ["connect", ["127.0.0.1:0"], /port cannot be 0/],
  [
    "serve",
    ["--allow", "10.0.0.0/33"],
    /--allow: Invalid address rule "10\.0\.0\.0\/33"/,
  ],
  [
    "serve",
    ["--max-clients", "0"],
    /--max-clients must be a whole number of at least 1: got "0"/,
  ],
  [
    "serve",
    ["--rate-limit", "fast"],
    /--rate-limit must be MESSAGES or MESSAGES\/BURST/,
  ],
  ["serve", ["--no-sysex", "--max-sysex", "10"], /cannot be used together/],
  ["serve", ["--cert", "cert.pem"], /--cert and --key go together/],
  ["serve", ["--token", "two words"], /--token must be 1-200 printable ASCII/],
  ["connect", ["--ca", "ca.pem"], /--ca goes with --tls/],
  // Values the library refuses are named by their flags, exit 2.
  [
    "serve",
    ["127.0.0.1:0", "--rate-limit", "10/0"],
    /--rate-limit must be MESSAGES or MESSAGES\/BURST a second, each at least 1: got "10\/0"/,
  ],
  [
    "serve",
    ["127.0.0.1:0", "--max-queued-total", "1"],
    /^midisock serve: --max-queued-total must be at least --max-queued \(2097156\): got 1/,
  ],
  [
    "serve",
    ["127.0.0.1:0", "--nats", "nats://127.0.0.1:9", "--room", "bad room"],
    /^midisock serve: --room /,
  ],
  ["serve", ["--latency", "soon"], /--latency must be milliseconds/],
  [
    "serve",
    ["--rtp", "5004", "--rtp-invite", "nohostport"],
    /--rtp-invite must be HOST:PORT: got nohostport/,
  ],
  [
    "serve",
    ["--rtp", "5004", "--rtp-invite", "host:99999"],
    /--rtp-invite must be HOST:PORT: got host:99999/,
  ],
  // The data port is the next one.
  [
    "serve",
    ["--rtp", "65535"],
    /--rtp must be a number in 0..65534: got "65535"/,
  ],
  // Negative numbers reach the flag's own check, one line naming it.
  ["serve", ["--port", "-1"], /--port must be a number in 0..65535: got "-1"/],
  [
    "serve",
    ["--handshake-timeout", "-1"],
    /--handshake-timeout must be a positive number of seconds: got "-1"/,
  ],
  [
    "serve",
    ["--max-sysex", "-5"],
    /--max-sysex must be a whole number of at least 0: got "-5"/,
  ],
  [
    "connect",
    ["--send", "start", "--wait", "-1", "--send", "stop"],
    /--wait must be a positive number of seconds: got "-1"/,
  ],
];

for (const [command, args, pattern] of BAD_USAGE) {
  cliTest(
    `${command} ${args.join(" ")}: one line on stderr, exit 2`,
    async () => {
      const { code, stderr } = await run(command, args);
      assert.equal(code, 2, stderr);
      assert.match(assertOneLineError(stderr, command), pattern);
    },
  );
}

cliTest(
  "serve checks --rtp and --rtp-invite before it opens anything",
  async () => {
    for (
      const args of [["--rtp", "65535"], ["--rtp", "0", "--rtp-invite", ":1"]]
    ) {
      const { code, stdout, stderr } = await run("serve", [
        "127.0.0.1:0",
        ...args,
      ]);
      assert.equal(code, 2, stderr);
      assert.equal(stdout, "");
    }
  },
);

cliTest("serve reports a port in use in one line, exit 1", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { code, stdout, stderr } = await run("serve", [
    `127.0.0.1:${taken.addr.port}`,
  ]);
  assert.equal(code, 1);
  assert.equal(stdout, "");
  assert.match(
    assertOneLineError(stderr, "serve"),
    /^midisock serve: cannot listen on 127\.0\.0\.1:(\d+): TCP 127\.0\.0\.1:\1 is already in use \(is another server running\?\); choose another with --port$/,
  );
});

cliTest(
  "serve without --allow-net says which permission is missing",
  async () => {
    const { code, stderr } = await run("serve", ["127.0.0.1:0"], []);
    assert.equal(code, 1);
    assert.match(
      assertOneLineError(stderr, "serve"),
      /missing permission: .*net access.*--allow-net/,
    );
  },
);

for (const command of ["serve", "connect"] as const) {
  const address = command === "serve" ? "127.0.0.1:0" : "127.0.0.1:9";
  cliTest(`${command} --in without RtMidi says how to install it`, async () => {
    const { code, stderr } = await run(
      command,
      [address, "--in", "keys"],
      [NET, ...HARDWARE],
      { MIDISOCK_RTMIDI_PATH: "/nonexistent/librtmidi.so" },
    );
    assert.equal(code, 1);
    assert.match(
      assertOneLineError(stderr, command),
      /RtMidi library was not found .*apt-get install librtmidi6.*MIDISOCK_RTMIDI_PATH/,
    );
  });

  cliTest(`${command} --out without --allow-ffi names the flag`, async () => {
    const { code, stderr } = await run(command, [address, "--out", "synth"]);
    assert.equal(code, 1);
    assert.match(
      assertOneLineError(stderr, command),
      /missing permission: .*--allow-ffi/,
    );
  });
}

cliTest(
  "connect reports a refused connection in one line, exit 1",
  async () => {
    const { code, stderr } = await run("connect", [`127.0.0.1:${freePort()}`]);
    assert.equal(code, 1);
    assert.match(
      assertOneLineError(stderr, "connect"),
      /cannot connect to 127\.0\.0\.1:\d+: connection refused/,
    );
  },
);

cliTest(
  "serve --cert naming a missing file fails in one line, exit 1",
  async () => {
    const { code, stderr } = await run("serve", [
      "127.0.0.1:0",
      "--cert",
      "/nonexistent/cert.pem",
      "--key",
      "/nonexistent/key.pem",
    ], [NET, "--allow-read"]);
    assert.equal(code, 1, stderr);
    assert.match(
      assertOneLineError(stderr, "serve"),
      /cannot read --cert \/nonexistent\/cert\.pem/,
    );
  },
);

cliTest(
  "serve --cert with a file that is no certificate fails in one line, exit 1",
  async () => {
    // A file that is no PEM at all, as both.
    const file = new URL("../deno.json", import.meta.url).pathname;
    const { code, stderr } = await run("serve", [
      "127.0.0.1:0",
      "--cert",
      file,
      "--key",
      file,
    ], [NET, "--allow-read"]);
    assert.equal(code, 1, stderr);
    assert.match(
      assertOneLineError(stderr, "serve"),
      /^midisock serve: cannot listen on 127\.0\.0\.1:0: cannot serve TLS: \S/,
    );
  },
);

// --- serve's access and content policies -------------------------------------

cliTest(
  "serve warns when reachable beyond loopback with no --allow list",
  async () => {
    // Beyond loopback, but only in a network namespace of the test's own.
    await using link = await WanLink.open();
    const serve = (...args: string[]) =>
      link.command(link.a, Deno.execPath(), [
        "run",
        "--quiet",
        "--allow-net",
        "src/cli/serve.ts",
        `${link.a.address}:0`,
        ...args,
      ], {
        cwd: new URL("../", import.meta.url),
        stdout: "piped",
        stderr: "piped",
      }).spawn();
    const cases = [
      [[], 1],
      [["--allow", "10.88.0.2"], 0],
      [["--rtp", "0"], 2],
      [["--rtp", "0", "--allow", "10.88.0.2"], 0],
    ] as const;
    for (const [args, warns] of cases) {
      const child = serve(...args);
      const out = readLines(child.stdout);
      // With --rtp, the session's line comes first.
      let line = "";
      while (!line.startsWith("listening on")) {
        const next = await out.next();
        assert(!next.done, "serve ended before listening");
        line = next.value;
      }
      assert.match(line, /^listening on 10\.88\.0\.1:\d+$/);
      child.kill("SIGTERM");
      const stderr = await new Response(child.stderr).text();
      await child.status;
      await out.return?.();
      const lines = stderr.split("\n").filter((line) => line !== "");
      assert.equal(lines.length, warns, stderr);
      for (const [i, line] of lines.entries()) {
        assert.match(
          line,
          new RegExp(
            `^midisock serve: warning: listening beyond loopback on ${
              i === 0 ? "10" : "rtp 10"
            }\\.88\\.0\\.1:\\d+ with no allow list: anyone who can reach it can play notes and send sysex`,
          ),
        );
      }
    }
  },
  { ignore: wanSkip() },
);

cliTest(
  "serve --allow refuses other addresses and logs each refusal",
  async () => {
    await using serve = spawn("serve", [
      "127.0.0.1:0",
      "--allow",
      "10.0.0.0/8,::1",
    ]);
    const port = await serve.listening();
    const client = await connect("127.0.0.1", port);
    const [line] = await serve.waitFor(/^refused .*/);
    assert.equal(
      line,
      `refused 127.0.0.1:${client.localAddr.port} (address not in the allow list)`,
    );
    assert.deepEqual(await Array.fromAsync(client), []);
    await client.close();
  },
);

cliTest(
  "serve --token lets in connect --token and refuses the rest",
  async () => {
    await using serve = spawn("serve", [
      "127.0.0.1:0",
      "--token",
      "s3cret-s3cret-s3cret",
    ]);
    const port = await serve.listening();
    await using listener = await connect("127.0.0.1", port, {
      token: "s3cret-s3cret-s3cret",
    });
    await serve.waitFor(/^connect \S+ \(1 client\)$/);
    const sent = await run("connect", [
      `127.0.0.1:${port}`,
      "--token",
      "s3cret-s3cret-s3cret",
      "--send",
      "program_change program=3",
    ]);
    assert.equal(sent.code, 0, sent.stderr);
    assert.deepEqual(await take(listener, 1), [
      message("program_change", { program: 3 }),
    ]);
    const wrong = await run("connect", [
      `127.0.0.1:${port}`,
      "--token",
      "guess",
      "--send",
      "note_on note=60",
    ]);
    assert.equal(wrong.code, 1);
    assert.equal(
      assertOneLineError(wrong.stderr, "connect"),
      `midisock connect: refused by 127.0.0.1:${port} (wrong token)`,
    );
    assert.equal(wrong.stdout, "");
    await serve.waitFor(/^refused \S+ \(wrong token\)$/);
  },
);

cliTest(
  "connect --send exits 1 with the server's reason for every refusal it can meet",
  async () => {
    const token = "correct-horse-battery";
    const { cert, key } = await testCertificates();
    const servers = {
      token: new Hub({ token }),
      allow: new Hub({ allow: ["10.9.9.9"] }),
      full: new Hub({ maxClients: 1 }),
      plain: new Hub(),
      tls: new Hub(),
    };
    try {
      const ports: Record<string, number> = {};
      for (const [name, hub] of Object.entries(servers)) {
        const server = await hub.attach(
          new PortServer(
            "127.0.0.1",
            0,
            name === "tls" ? { tls: { cert, key } } : {},
          ),
        );
        ports[name] = server.port;
      }
      await using occupant = await connect("127.0.0.1", ports.full);
      await occupant.admitted;
      const cases: [string, string[], RegExp][] = [
        ["token", [], /\(no token: this server wants one\)$/],
        ["token", ["--token", "a-wrong-guess-of-it"], /\(wrong token\)$/],
        ["allow", [], /\(address not in the allow list\)$/],
        ["full", [], /\(server full \(1 client\)\)$/],
        ["plain", ["--tls"], /does not serve TLS: connect without TLS/],
        ["tls", [], /serves TLS: connect with TLS/],
      ];
      for (const [name, extra, reason] of cases) {
        const where = `127.0.0.1:${ports[name]}`;
        const sent = await run("connect", [
          where,
          ...extra,
          "--send",
          "note_on note=60",
          "--send",
          "note_off note=60",
        ]);
        const what = `${name} ${extra.join(" ")}`;
        assert.equal(sent.code, 1, `${what}: ${sent.stderr}`);
        assert.equal(sent.stdout, "", what);
        const line = assertOneLineError(sent.stderr, "connect");
        assert.match(line, reason, what);
        assert.match(line, new RegExp(`127\\.0\\.0\\.1:${ports[name]}`), what);
      }
    } finally {
      await Promise.all(Object.values(servers).map((hub) => hub.close()));
    }
  },
  { ignore: OPENSSL_MISSING },
);

cliTest(
  "connect says it is connected only once the server took it",
  async () => {
    await using hub = new Hub({ allow: ["10.9.9.9"] });
    const server = await hub.attach(new PortServer("127.0.0.1", 0));
    const refused = await run("connect", [`127.0.0.1:${server.port}`]);
    assert.equal(refused.code, 1);
    assert.equal(refused.stdout, "");
    assert.match(
      assertOneLineError(refused.stderr, "connect"),
      /refused by 127\.0\.0\.1:\d+ \(address not in the allow list\)$/,
    );
    await using open = new Hub();
    const other = await open.attach(new PortServer("127.0.0.1", 0));
    await using client = spawn("connect", [`127.0.0.1:${other.port}`]);
    await client.waitFor(
      new RegExp(`^connected to 127\\.0\\.0\\.1:${other.port}$`),
    );
  },
);

cliTest(
  "serve starts from an empty cache without fetching a package",
  async () => {
    // No registry can be reached: a fetch would fail the start.
    const cache = await new Deno.Command("mktemp", {
      args: ["-d"],
      stdout: "piped",
    })
      .output();
    const dir = new TextDecoder().decode(cache.stdout).trim();
    try {
      await using serve = spawn("serve", ["127.0.0.1:0"], [NET], {
        DENO_DIR: dir,
        NPM_CONFIG_REGISTRY: "http://127.0.0.1:9/",
        DENO_NO_UPDATE_CHECK: "1",
      });
      await serve.listening();
    } finally {
      await new Deno.Command("rm", { args: ["-rf", dir] }).output();
    }
  },
);

cliTest("serve refuses a token under 16 characters", async () => {
  const { code, stderr } = await run("serve", [
    "127.0.0.1:0",
    "--token",
    "s3cret",
  ]);
  assert.equal(code, 2);
  assert.match(
    assertOneLineError(stderr, "serve"),
    /--token must be at least 16 characters: a shorter one can be guessed \(got 6\)/,
  );
});

cliTest("serve sums up repeated refusals instead of a line each", async () => {
  await using serve = spawn("serve", ["127.0.0.1:0", "--allow", "10.0.0.0/8"]);
  const port = await serve.listening();
  for (let i = 0; i < 30; i++) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await readAll(conn);
  }
  serve.kill("SIGTERM");
  await serve.finished();
  const refused = serve.lines.filter((l) => l.startsWith("refused "));
  assert.equal(refused.length, 2, refused.join("\n"));
  assert.match(
    refused[0],
    /^refused 127\.0\.0\.1:\d+ \(address not in the allow list\)$/,
  );
  assert.equal(
    refused[1],
    "refused 29 more connections from 127.0.0.1 (address not in the allow list) in the last 5 s",
  );
});

cliTest("serve --no-sysex relays everything but sysex", async () => {
  await using serve = spawn("serve", ["127.0.0.1:0", "--no-sysex"]);
  const port = await serve.listening();
  await using a = await connect("127.0.0.1", port);
  await using b = await connect("127.0.0.1", port);
  await serve.waitFor(/^connect \S+ \(2 clients\)$/);
  await a.send(message("sysex", { data: [0x41, 0x10, 0x42] }));
  await a.send(message("note_on", { note: 1 }));
  assert.deepEqual(await take(b, 1), [message("note_on", { note: 1 })]);
});

cliTest("serve --max-clients refuses one too many", async () => {
  await using serve = spawn("serve", ["127.0.0.1:0", "--max-clients", "1"]);
  const port = await serve.listening();
  await using _first = await connect("127.0.0.1", port);
  await serve.waitFor(/^connect \S+ \(1 client\)$/);
  const b = await connect("127.0.0.1", port);
  await serve.waitFor(/^refused \S+ \(server full \(1 client\)\)$/);
  assert.deepEqual(await Array.fromAsync(b), []);
  assert.equal(b.refused?.reason, "server full (1 client)");
  await b.close();
  // The command line says so too, and never that it sent anything.
  const sent = await run("connect", [
    `127.0.0.1:${port}`,
    "--send",
    "note_on note=60",
  ]);
  assert.equal(sent.code, 1);
  assert.equal(
    assertOneLineError(sent.stderr, "connect"),
    `midisock connect: refused by 127.0.0.1:${port} (server full (1 client))`,
  );
  assert.equal(sent.stdout, "");
});

// --- serve as a hub ---------------------------------------------------------

cliTest(
  "serve prints where it listens and a connect command that runs from here",
  async () => {
    await using serve = spawn("serve", ["127.0.0.1:0"]);
    const port = await serve.listening();
    assert.ok(port > 0);
    // Run from a clone, the command is the file, relative to where we are.
    assert.equal(serve.lines[0], `listening on 127.0.0.1:${port}`);
    const ready = await serve.waitFor(/^ready /);
    assert.match(
      ready.input!,
      new RegExp(
        `^ready \\(hub\\); connect with: ` +
          `deno run -A src/cli/connect\\.ts 127\\.0\\.0\\.1:${port} ` +
          `or mido\\.sockets\\.connect\\("127\\.0\\.0\\.1", ${port}\\)$`,
      ),
    );
    const command = ready.input!.split("connect with: ")[1].split(" or ")[0];
    const [, , ...args] = command.split(" ");
    const connect = new Deno.Command(Deno.execPath(), {
      args: ["run", ...args, "--send", "note_on note=60"],
      cwd: new URL("../", import.meta.url),
      stdout: "piped",
      stderr: "piped",
    });
    const out = await connect.output();
    assert.equal(new TextDecoder().decode(out.stderr), "");
    assert.equal(
      new TextDecoder().decode(out.stdout).trim(),
      `sent 1 message to 127.0.0.1:${port}`,
    );
    const { commandFor } = await import("../src/cli/_common.ts");
    assert.equal(
      commandFor(
        "connect",
        "https://jsr.io/@x/midisock/0.1.0/src/cli/serve.ts",
      ),
      "deno run -A jsr:@x/midisock/connect",
    );
    assert.equal(
      commandFor("connect", "https://example.com/m/src/cli/serve.ts"),
      "deno run -A https://example.com/m/src/cli/connect.ts",
    );
  },
);

cliTest("serve relays between clients, never back to the sender", async () => {
  await using serve = spawn("serve", ["127.0.0.1:0"]);
  const port = await serve.listening();
  await using a = await connect("127.0.0.1", port);
  await using b = await connect("127.0.0.1", port);
  await serve.waitFor(/^connect \S+ \(2 clients\)$/);
  const x = message("control_change", { control: 1, value: 2 });
  const y = message("program_change", { program: 5 });
  await a.send(x);
  assert.deepEqual(await take(b, 1), [x]);
  await b.send(y);
  assert.deepEqual(await take(a, 1), [y]); // not x: no echo to the sender
});

cliTest("serve relays from a mido client to a midisock client", async () => {
  await using serve = spawn("serve", ["127.0.0.1:0"]);
  const port = await serve.listening();
  await using receiver = await connect("127.0.0.1", port);
  await serve.waitFor(/^connect \S+ \(1 client\)$/);
  const sent = [
    message("note_on", { channel: 3, note: 64, velocity: 90 }),
    message("pitchwheel", { pitch: -8192 }),
    message("sysex", { data: [1, 2, 3, 127] }),
    message("note_off", { channel: 3, note: 64 }),
  ];
  const output = await runPython(
    `
import sys, mido, mido.sockets
out = mido.sockets.connect("127.0.0.1", int(sys.argv[1]))
for line in sys.stdin:
    out.send(mido.Message.from_str(line.strip()))
print("sent")
out._socket.close()
`,
    sent.map(formatMessage).join("\n") + "\n",
    [String(port)],
  );
  assert.equal(output.trim(), "sent");
  assert.deepEqual(await take(receiver, sent.length), sent);
}, { ignore: MIDO_MISSING });

cliTest("serve relays from a midisock client to a mido client", async () => {
  await using serve = spawn("serve", ["127.0.0.1:0"]);
  const port = await serve.listening();
  const sent = [
    message("note_on", { note: 60 }),
    message("control_change", { channel: 15, control: 7, value: 127 }),
    message("note_off", { note: 60 }),
  ];
  // mido 1.2's receive() is unreliable on sockets: read the bytes with
  // mido's own parser instead.
  const peer = new Deno.Command("/usr/bin/python3", {
    args: [
      "-c",
      `
import sys, mido, mido.sockets
port = mido.sockets.connect("127.0.0.1", int(sys.argv[1]))
print("ready", flush=True)
parser = mido.Parser()
got = 0
while got < int(sys.argv[2]):
    data = port._socket.recv(1024)
    if not data:
        break
    parser.feed(data)
    for msg in parser:
        print(msg, flush=True)
        got += 1
port._socket.close()
`,
      String(port),
      String(sent.length),
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  try {
    await serve.waitFor(/^connect \S+ \(1 client\)$/);
    await using sender = await connect("127.0.0.1", port);
    await serve.waitFor(/^connect \S+ \(2 clients\)$/);
    for (const msg of sent) await sender.send(msg);
    const { stdout, success } = await within(peer.output(), 10000, "mido");
    assert.ok(success);
    assert.deepEqual(
      new TextDecoder().decode(stdout).trim().split("\n"),
      ["ready", ...sent.map(formatMessage)],
    );
  } finally {
    try {
      peer.kill("SIGKILL");
    } catch {
      // It ended.
    }
    await peer.status;
  }
}, { ignore: MIDO_MISSING });

cliTest("serve --no-hub does not relay between clients", async () => {
  await using serve = spawn("serve", ["127.0.0.1:0", "--no-hub", "--monitor"]);
  const port = await serve.listening();
  assert.match((await serve.waitFor(/^ready /)).input!, / \(no hub\); /);
  await using a = await connect("127.0.0.1", port);
  await using b = await connect("127.0.0.1", port);
  await serve.waitFor(/^connect \S+ \(2 clients\)$/);
  await a.send(message("note_on", { note: 60 }));
  await serve.waitFor(MONITOR_LINE);
  // The sentinel is the end of b's stream: serve flushes what it relayed to
  // a client before it closes it, on shutdown.
  serve.kill("SIGTERM");
  assert.deepEqual(await within(Array.fromAsync(b), 10000, "b's stream"), []);
  assert.equal((await serve.finished()).code, 0);
});

cliTest("serve --monitor prints time, source and mido text", async () => {
  await using serve = spawn("serve", ["127.0.0.1:0", "--monitor"]);
  const port = await serve.listening();
  await using a = await connect("127.0.0.1", port);
  const [, source] = await serve.waitFor(/^connect (\S+) \(1 client\)$/);
  await a.send(message("note_on", { note: 60 }));
  const match = await serve.waitFor(MONITOR_LINE);
  assert.equal(match[1], source);
  assert.equal(source, `127.0.0.1:${a.localAddr.port}`);
});

cliTest("serve --quiet prints nothing", async () => {
  const port = freePort();
  await using serve = spawn("serve", [`127.0.0.1:${port}`, "--quiet"]);
  // Serving: a client's message reaches another one.
  const connectWhenUp = async () => {
    for (let attempt = 0;; attempt++) {
      try {
        return await connect("127.0.0.1", port);
      } catch (error) {
        if (attempt > 200) throw error;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
  };
  await using a = await connectWhenUp();
  await using b = await connect("127.0.0.1", port);
  const next = b.receive();
  for (let i = 0; await Promise.race([next.then(() => false), tick(50)]); i++) {
    await a.send(message("clock"));
  }
  serve.kill("SIGTERM");
  const { code, stdout, stderr } = await serve.finished();
  assert.equal(code, 0);
  assert.equal(stdout, "");
  assert.equal(stderr, "");
});

cliTest(
  "serve sends note_off for a disconnected client's held notes",
  async () => {
    await using serve = spawn("serve", ["127.0.0.1:0"]);
    const port = await serve.listening();
    await using listener = await connect("127.0.0.1", port);
    const player = await connect("127.0.0.1", port);
    await serve.waitFor(/^connect \S+ \(2 clients\)$/);
    await player.send(message("note_on", { channel: 1, note: 60 }));
    await player.send(message("note_on", { channel: 1, note: 64 }));
    await player.send(message("note_off", { channel: 1, note: 64 }));
    await take(listener, 3);
    await player.close();
    assert.deepEqual(await take(listener, 1), [
      message("note_off", { channel: 1, note: 60, velocity: 0 }),
    ]);
    await serve.waitFor(
      /^disconnect \S+ \(1 client, released 1 held note\)$/,
    );
  },
);

cliTest(
  "serve shuts down on SIGTERM: held notes released, exit 0",
  async () => {
    await using serve = spawn("serve", ["127.0.0.1:0"]);
    const port = await serve.listening();
    await using listener = await connect("127.0.0.1", port);
    await using player = await connect("127.0.0.1", port);
    await serve.waitFor(/^connect \S+ \(2 clients\)$/);
    await player.send(message("note_on", { note: 60, velocity: 100 }));
    await take(listener, 1);
    serve.kill("SIGTERM");
    const rest = await within(Array.fromAsync(listener), 10000, "listener");
    assert.deepEqual(rest, [message("note_off", { note: 60, velocity: 0 })]);
    const { code, stderr } = await serve.finished();
    assert.equal(code, 0, stderr);
    assert.equal(stderr, "");
    assert.equal(
      serve.lines.at(-1),
      "stopped: closed 2 clients, released 1 held note",
    );
    assert.deepEqual(await Array.fromAsync(player), []);
  },
);

cliTest("serve shuts down on SIGINT with exit 0", async () => {
  await using serve = spawn("serve", ["127.0.0.1:0"]);
  await serve.listening();
  serve.kill("SIGINT");
  const { code } = await serve.finished();
  assert.equal(code, 0);
});

// --- connect ----------------------------------------------------------------

cliTest("connect --send sends messages to serve and exits 0", async () => {
  await using serve = spawn("serve", ["127.0.0.1:0"]);
  const port = await serve.listening();
  await using listener = await connect("127.0.0.1", port);
  await serve.waitFor(/^connect \S+ \(1 client\)$/);
  const { code, stdout, stderr } = await run("connect", [
    `127.0.0.1:${port}`,
    "--send",
    "note_on note=60",
    "--send",
    "control_change control=7 value=100",
  ]);
  assert.equal(code, 0, stderr);
  assert.equal(stdout.trim(), `sent 2 messages to 127.0.0.1:${port}`);
  // The client left with note 60 held: serve lets go of it.
  assert.deepEqual(await take(listener, 3), [
    message("note_on", { note: 60 }),
    message("control_change", { control: 7, value: 100 }),
    message("note_off", { note: 60, velocity: 0 }),
  ]);
});

cliTest("connect with no ports prints what the server sends", async () => {
  await using serve = spawn("serve", ["127.0.0.1:0"]);
  const port = await serve.listening();
  await using monitor = spawn("connect", [`127.0.0.1:${port}`]);
  await monitor.waitFor(new RegExp(`^connected to 127\\.0\\.0\\.1:${port}$`));
  await serve.waitFor(/^connect \S+ \(1 client\)$/);
  await using sender = await connect("127.0.0.1", port);
  await sender.send(message("note_on", { note: 60 }));
  const match = await monitor.waitFor(MONITOR_LINE);
  assert.equal(match[1], `127.0.0.1:${port}`);
  monitor.kill("SIGTERM");
  const { code, stderr } = await monitor.finished();
  assert.equal(code, 0, stderr);
});

cliTest("connect ends with exit 0 when the server stops", async () => {
  await using serve = spawn("serve", ["127.0.0.1:0"]);
  const port = await serve.listening();
  await using monitor = spawn("connect", [`127.0.0.1:${port}`]);
  await monitor.waitFor(/^connected to /);
  serve.kill("SIGTERM");
  const { code, stderr } = await monitor.finished();
  assert.equal(code, 0, stderr);
  assert.equal(monitor.lines.at(-1), `disconnected from 127.0.0.1:${port}`);
});

cliTest("connect --retry waits for the server and reconnects", async () => {
  const port = freePort();
  const address = `127.0.0.1:${port}`;
  await using client = spawn("connect", [address, "--retry"]);
  await client.waitFor(/^retrying in 0\.1s: cannot connect to .*refused/);
  await client.waitFor(/^retrying in 0\.2s: /);
  let from: number;
  {
    await using serve = spawn("serve", [address]);
    await serve.listening();
    await client.waitFor(new RegExp(`^connected to ${address}$`));
    from = client.lines.length;
    serve.kill("SIGTERM");
    assert.equal((await serve.finished()).code, 0);
  }
  await client.waitFor(new RegExp(`^disconnected from ${address}$`));
  await client.waitFor(/^retrying in 0\.1s: /, 10000, from);
  await using serve = spawn("serve", [address]);
  await serve.listening();
  await client.waitFor(new RegExp(`^connected to ${address}$`), 10000, from);
  await using sender = await connect("127.0.0.1", port);
  await serve.waitFor(/^connect \S+ \(2 clients\)$/);
  await sender.send(message("note_on", { note: 60 }));
  await client.waitFor(MONITOR_LINE);
  client.kill("SIGTERM");
  const { code, stderr } = await client.finished();
  assert.equal(code, 0, stderr);
});

// --- hardware, through JACK's dummy backend -------------------------------

const JACK_PERMISSIONS: Deno.PermissionOptions = {
  ...PERMISSIONS,
  ffi: true,
  env: ["MIDISOCK_RTMIDI_PATH", "MIDISOCK_RTMIDI_API"],
};

/** JACK can be slow to create clients while other programs use it. */
const JACK_MS = 30000;

function unique(prefix: string): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

async function jackPort<T>(open: () => Promise<T>, ms = JACK_MS): Promise<T> {
  // A port another process just created shows up after a moment.
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const port = await open();
      // JACK makes the connection live in a later cycle: let it settle.
      await new Promise((resolve) => setTimeout(resolve, 300));
      return port;
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
}

function jackTest(name: string, fn: () => Promise<void>): void {
  cliTest(`${name} (JACK)`, fn, {
    ignore: noJack,
    permissions: JACK_PERMISSIONS,
  });
}

jackTest("serve --virtual bridges a virtual port and clients", async () => {
  const { openInput, openOutput } = await import("../src/hardware/mod.ts");
  const name = unique("cli-virtual");
  await using serve = spawn(
    "serve",
    ["127.0.0.1:0", "--virtual", name, "--api", "jack", "--monitor"],
    [NET, ...HARDWARE],
  );
  const port = await serve.listening(JACK_MS);
  assert.ok(serve.lines.includes(`virtual "${name}" created`));
  await using client = await connect("127.0.0.1", port);
  await serve.waitFor(/^connect \S+ \(1 client\)$/);
  // Another program plays into the virtual input: every client hears it.
  await using keys = await jackPort(() => openOutput(name, { api: "jack" }));
  const note: Message = message("note_on", { note: 61 });
  await keys.send(note);
  const [got] = await take(client, 1);
  assert.equal(formatMessage({ ...got, time: 0 }), formatMessage(note));
  await serve.waitFor(
    new RegExp(`^\\S+ "${name}" note_on channel=0 note=61 `),
  );
  // A client plays: the virtual output carries it to the other program.
  await using synth = await jackPort(() => openInput(name, { api: "jack" }));
  await client.send(message("control_change", { control: 1, value: 9 }));
  const [heard] = await take(synth, 1);
  assert.equal(heard.type, "control_change");
  // Shutdown lets go of the note the client holds, on the virtual output.
  await client.send(message("note_on", { note: 70 }));
  await take(synth, 1);
  serve.kill("SIGTERM");
  const [off] = await take(synth, 1, 10000);
  assert.deepEqual(
    { ...off, time: 0 },
    message("note_off", { note: 70, velocity: 0 }),
  );
  assert.equal((await serve.finished()).code, 0);
});

jackTest("serve --in and --out open JACK ports by name", async () => {
  const { openIOPort } = await import("../src/hardware/mod.ts");
  const name = unique("cli-device");
  // The test plays a device: a virtual pair serve opens as --in and --out.
  await using device = await openIOPort(name, { api: "jack", virtual: true });
  await using serve = spawn(
    "serve",
    ["127.0.0.1:0", "--in", name, "--out", name, "--api", "jack"],
    [NET, ...HARDWARE],
  );
  const port = await serve.listening(JACK_MS);
  await serve.waitFor(new RegExp(`^input ".*${name}" opened$`), 1000);
  await serve.waitFor(new RegExp(`^output ".*${name}" opened$`), 1000);
  // JACK makes the connections live in a later cycle: let them settle.
  await new Promise((resolve) => setTimeout(resolve, 300));
  await using client = await connect("127.0.0.1", port);
  await serve.waitFor(/^connect \S+ \(1 client\)$/);
  // JACK may drop a message when the machine is loaded (an xrun): what is
  // tested here is the route, so send again until one arrives.
  const got = await resend(
    () => device.send(message("program_change", { program: 3 })),
    client,
  );
  assert.equal(got.type, "program_change");
  const heard = await resend(
    () => client.send(message("note_on", { note: 50 })),
    device,
  );
  assert.equal(
    formatMessage({ ...heard, time: 0 }),
    formatMessage(message("note_on", { note: 50 })),
  );
});

/** Sends until the port receives something, every 250 ms, 20 times at most. */
async function resend(
  send: () => Promise<void>,
  port: { receive(): Promise<Message> },
): Promise<Message> {
  const next = port.receive();
  for (let attempt = 0; attempt < 20; attempt++) {
    await send();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const got = await Promise.race([
      next,
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), 250);
      }),
    ]);
    clearTimeout(timer);
    if (got !== undefined) return got;
  }
  throw new Error("nothing arrived after 20 sends");
}

jackTest(
  "serve --in with an unknown name lists the ports there are",
  async () => {
    const { code, stderr } = await run(
      "serve",
      ["127.0.0.1:0", "--in", unique("no-such-port"), "--api", "jack"],
      [NET, ...HARDWARE],
    );
    assert.equal(code, 1);
    assert.match(
      assertOneLineError(stderr, "serve"),
      /No MIDI input port matches "no-such-port-\w+"; (available: |there are none)/,
    );
  },
);

jackTest("connect --virtual plays what the server sends", async () => {
  const { openInput } = await import("../src/hardware/mod.ts");
  const name = unique("cli-synth");
  await using serve = spawn("serve", ["127.0.0.1:0"]);
  const port = await serve.listening();
  await using bridge = spawn(
    "connect",
    [`127.0.0.1:${port}`, "--virtual", name, "--api", "jack"],
    [NET, ...HARDWARE],
  );
  await bridge.waitFor(/^connected to /, JACK_MS);
  await using synth = await jackPort(() => openInput(name, { api: "jack" }));
  await using sender = await connect("127.0.0.1", port);
  await serve.waitFor(/^connect \S+ \(2 clients\)$/);
  await sender.send(message("note_on", { note: 72 }));
  const [heard] = await take(synth, 1);
  assert.equal(heard.type, "note_on");
  bridge.kill("SIGTERM");
  assert.equal((await bridge.finished()).code, 0);
});

jackTest("ports lists JACK ports, as text and as JSON", async () => {
  const { openIOPort } = await import("../src/hardware/mod.ts");
  const name = unique("cli-listed");
  await using device = await openIOPort(name, { api: "jack", virtual: true });
  const text = await run("ports", ["--api", "jack"], HARDWARE);
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, new RegExp(`^jack input .*${name}.*$`, "m"));
  assert.match(text.stdout, new RegExp(`^jack output .*${name}.*$`, "m"));
  const json = await run("ports", ["--api", "jack", "--json"], HARDWARE);
  assert.equal(json.code, 0, json.stderr);
  const parsed = JSON.parse(json.stdout);
  const jack = parsed.apis.find((a: { api: string }) => a.api === "jack");
  assert.ok(jack.inputs.some((p: { name: string }) => p.name.includes(name)));
  assert.ok(jack.outputs.some((p: { name: string }) => p.name.includes(name)));
  assert.ok(device.name.includes(name));
});
