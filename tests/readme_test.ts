// The README's shell examples, run as written where they can be on
// loopback: `jsr:@x/midisock/CMD` runs src/cli/CMD.ts, port 8080 becomes a
// free port, and the TLS recipe's names become localhost and 127.0.0.1.
// Examples that need hardware, another machine or a NATS cluster are covered
// by their own tests.

import { skip } from "./_skip.ts";
import assert from "node:assert/strict";
import { noMido, python } from "./_mido.ts";
import { freePort, NET, run, spawn } from "./_cli.ts";
import { within } from "./_net.ts";
import { OPENSSL_MISSING } from "./_tls.ts";

const README = await Deno.readTextFile(
  new URL("../README.md", import.meta.url),
);

/** The shell lines of the README, continuation lines joined. */
const lines: string[] = [...README.matchAll(/```sh\n([^]*?)```/g)].flatMap((
  [, block],
) =>
  block.replace(/\\\n\s*/g, "").split("\n").map((line) =>
    line.replace(/\s+#.*$/, "").trim()
  ).filter((line) => line !== "")
);

/** The arguments of a `deno run -A jsr:@x/midisock/CMD ...` line. */
function argsOf(line: string): { command: string; args: string[] } {
  const match = line.match(/^deno run -A jsr:@x\/midisock\/(\w+)(.*)$/);
  assert.ok(match, line);
  const args = [...match[2].matchAll(/"([^"]*)"|(\S+)/g)].map((m) =>
    m[1] ?? m[2]
  );
  return { command: match[1], args };
}

function example(pattern: RegExp): string {
  const found = lines.find((line) => pattern.test(line));
  assert.ok(found, `the README has an example matching ${pattern}`);
  return found;
}

const PERMISSIONS: Deno.PermissionOptions = {
  net: ["127.0.0.1", "[::1]", "localhost"],
  run: true,
  read: true,
};

Deno.test({
  name:
    "the quick start's two commands are deno.json's tasks, and serve's runs",
  permissions: PERMISSIONS,
  fn: () =>
    within(
      (async () => {
        const quick = README.split("## Quick start")[1].split("## ")[0];
        const [first] = [...quick.matchAll(/```sh\n([^]*?)```/g)];
        const commands = first[1].trim().split("\n").map((line) =>
          line.replace(/\s+#.*$/, "")
        );
        assert.deepEqual(commands, ["deno task serve", "deno task test"]);
        const { default: config } = await import("../deno.json", {
          with: { type: "json" },
        });
        assert.equal(config.tasks.serve, "deno run -A src/cli/serve.ts");
        assert.equal(config.tasks.test, "deno run --allow-run tests/_run.ts");
        const port = freePort();
        const child = new Deno.Command(Deno.execPath(), {
          args: ["task", "--quiet", "serve", `127.0.0.1:${port}`],
          cwd: new URL("../", import.meta.url),
          stdout: "piped",
          stderr: "inherit",
        }).spawn();
        const reader = child.stdout.pipeThrough(new TextDecoderStream())
          .getReader();
        let out = "";
        while (!out.includes("\n")) {
          const { value, done } = await reader.read();
          if (done) break;
          out += value;
        }
        assert.match(
          out,
          new RegExp(`^listening on 127\\.0\\.0\\.1:${port}\\n`),
        );
        child.kill("SIGTERM");
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          out += value;
        }
        assert.equal((await child.status).code, 0);
        assert.match(out, /stopped: closed 0 clients/);
      })(),
      30000,
      "deno task serve",
    ),
});

Deno.test({
  name: "the quick start works as the README shows it, mido included",
  permissions: PERMISSIONS,
  fn: () =>
    within(
      (async () => {
        const port = freePort();
        const serveLine = argsOf(
          example(/^deno run -A jsr:@x\/midisock\/serve$/),
        );
        await using serve = spawn("serve", [
          ...serveLine.args,
          "--port",
          String(port),
        ]);
        await serve.listening();
        // A listener, as the second terminal would be.
        await using monitor = spawn("connect", [
          ...argsOf(example(/^deno run -A jsr:@x\/midisock\/connect$/)).args,
          `127.0.0.1:${port}`,
        ]);
        await monitor.waitFor(/^connected to /);
        await serve.waitFor(/^connect \S+ \(1 client\)$/);
        const send = argsOf(example(/connect --send "note_on note=60" --wait/));
        const sent = await run("connect", [...send.args, `127.0.0.1:${port}`]);
        assert.equal(sent.code, 0, sent.stderr);
        assert.equal(
          sent.stdout.trim(),
          `sent 2 messages to 127.0.0.1:${port}`,
        );
        await monitor.waitFor(/ note_on channel=0 note=60 velocity=64 time=0$/);
        await monitor.waitFor(
          / note_off channel=0 note=60 velocity=64 time=0$/,
        );
        if (!noMido) {
          const line = example(/^python3 -c /).replace("8080", String(port));
          const script = line.match(/^python3 -c "(.*)"$/)![1];
          const before = monitor.lines.length;
          const { success, stderr } = await new Deno.Command(python, {
            args: ["-c", script],
            stdout: "null",
            stderr: "piped",
          }).output();
          assert.ok(success, new TextDecoder().decode(stderr));
          await monitor.waitFor(
            / note_on channel=0 note=60 velocity=64 /,
            5000,
            before,
          );
        }
        monitor.kill("SIGTERM");
        assert.equal((await monitor.finished()).code, 0);
      })(),
      60000,
      "the quick start",
    ),
});

Deno.test({
  ...skip(
    "the README's TLS recipe makes certificates serve and connect accept",
    OPENSSL_MISSING,
  ),
  permissions: PERMISSIONS,
  fn: () =>
    within(
      (async () => {
        // The openssl lines, in a directory of their own, for this machine.
        const openssl = lines.filter((line) =>
          line.startsWith("openssl ") ||
          line.startsWith("printf 'subjectAltName")
        )
          .map((line) =>
            line.replaceAll("studio.local", "localhost")
              .replaceAll("192.168.1.10", "127.0.0.1")
          );
        assert.equal(openssl.length, 4, openssl.join("\n"));
        const { stdout, success, stderr } = await new Deno.Command("sh", {
          args: [
            "-c",
            `set -e; dir=$(mktemp -d); cd "$dir"; ${
              openssl.join(" 2>/dev/null; ")
            } 2>/dev/null; echo "$dir"`,
          ],
          stdout: "piped",
          stderr: "piped",
        }).output();
        assert.ok(success, new TextDecoder().decode(stderr));
        const dir = new TextDecoder().decode(stdout).trim();
        try {
          const port = freePort();
          const serveArgs = argsOf(example(/serve :8080 --cert server\.pem/))
            .args.map((arg) =>
              arg === ":8080"
                ? `127.0.0.1:${port}`
                : arg === "192.168.1.0/24"
                ? "127.0.0.1"
                : arg.endsWith(".pem") || arg.endsWith(".key")
                ? `${dir}/${arg}`
                : arg
            );
          await using serve = spawn("serve", serveArgs, [NET, "--allow-read"]);
          await serve.listening();
          const connectArgs = argsOf(
            example(/connect studio\.local:8080 --tls/),
          )
            .args.map((arg) =>
              arg === "studio.local:8080"
                ? `localhost:${port}`
                : arg.endsWith(".pem")
                ? `${dir}/${arg}`
                : arg
            );
          const sent = await run("connect", [
            ...connectArgs,
            "--send",
            "clock",
          ], [NET, "--allow-read"]);
          assert.equal(sent.code, 0, sent.stderr);
          assert.equal(
            sent.stdout.trim(),
            `sent 1 message to localhost:${port}`,
          );
        } finally {
          await new Deno.Command("rm", { args: ["-rf", dir] }).output();
        }
      })(),
      60000,
      "the TLS recipe",
    ),
});

Deno.test({
  ...skip(
    "a self-signed server certificate gets advice, not a rustls code",
    OPENSSL_MISSING,
  ),
  permissions: PERMISSIONS,
  fn: () =>
    within(
      (async () => {
        const { stdout, success } = await new Deno.Command("sh", {
          args: [
            "-c",
            `set -e; dir=$(mktemp -d); cd "$dir"; openssl req -x509 -newkey ec ` +
            `-pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 ` +
            `-subj /CN=localhost -addext subjectAltName=DNS:localhost ` +
            `-keyout key.pem -out cert.pem 2>/dev/null; echo "$dir"`,
          ],
          stdout: "piped",
        }).output();
        assert.ok(success);
        const dir = new TextDecoder().decode(stdout).trim();
        try {
          const port = freePort();
          await using serve = spawn("serve", [
            `127.0.0.1:${port}`,
            "--cert",
            `${dir}/cert.pem`,
            "--key",
            `${dir}/key.pem`,
          ], [NET, "--allow-read"]);
          await serve.listening();
          const sent = await run("connect", [
            `localhost:${port}`,
            "--tls",
            "--ca",
            `${dir}/cert.pem`,
            "--send",
            "clock",
          ], [NET, "--allow-read"]);
          assert.equal(sent.code, 1);
          assert.match(
            sent.stderr.trim(),
            /^midisock connect: cannot connect to localhost:\d+: the server's certificate is a CA certificate \(self-signed with CA:TRUE\): make a CA, sign a server certificate with it/,
          );
          assert.equal(sent.stdout, "");
        } finally {
          await new Deno.Command("rm", { args: ["-rf", dir] }).output();
        }
      })(),
      60000,
      "a self-signed certificate",
    ),
});
