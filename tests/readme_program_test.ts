// The README's "How it is built" program, run as written in its own process,
// with loopback for "" and JACK ports of python-rtmidi's for its keyboard
// and synth: a TCP client, the web page and both hardware ports reach each
// other through the hub it builds, with its playout delay, and Ctrl-C ends
// it cleanly.

import assert from "node:assert/strict";
import { connect, getInputNames, getOutputNames, message } from "../mod.ts";
import { freePort } from "./_cli.ts";
import { until } from "./_net.ts";
import { pyTest } from "./_pyrtmidi.ts";
import { API, uniqueName } from "./_rtmidi.ts";
import { readLines } from "./_wan.ts";

const README = await Deno.readTextFile(
  new URL("../README.md", import.meta.url),
);

/** The program under "How it is built". */
function program(): string {
  const section = README.split("## How it is built")[1].split("\n## ")[0];
  const match = section.match(/```ts ignore\n([^]*?)```/);
  assert.ok(match, "the README shows the program");
  return match[1];
}

pyTest(
  "the README's hub program runs: TCP, the web page and hardware on one hub",
  async (py) => {
    const keys = uniqueName("readme-keys");
    const synth = uniqueName("readme-synth");
    await py.command(["open", keys, "out"]);
    await py.command(["open", synth, "in"]);
    for (let i = 0;; i++) {
      const inputs = await getInputNames({ api: API });
      const outputs = await getOutputNames({ api: API });
      if (
        inputs.some((n) => n.endsWith(`:${keys}`)) &&
        outputs.some((n) => n.endsWith(`:${synth}`))
      ) break;
      assert.ok(i < 500, "python-rtmidi's ports are listed");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const tcp = freePort();
    const web = freePort();
    const source = program()
      .replace(
        '"jsr:@x/midisock"',
        JSON.stringify(new URL("../mod.ts", import.meta.url).href),
      )
      .replace(
        '"jsr:@x/midisock/web"',
        JSON.stringify(new URL("../src/web/mod.ts", import.meta.url).href),
      )
      .replace(
        'new PortServer("", 8080)',
        `new PortServer("127.0.0.1", ${tcp})`,
      )
      .replace(
        '{ hostname: "", port: 8081 }',
        `{ hostname: "127.0.0.1", port: ${web} }`,
      )
      .replace('"192.168.1.0/24"', '"127.0.0.1"')
      .replace('["Keystation"]', JSON.stringify([keys]))
      .replace('["FLUID"]', JSON.stringify([synth]));
    assert.ok(source.includes(`${tcp}`) && source.includes(keys), source);
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", "-"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stdin = child.stdin.getWriter();
    await stdin.write(new TextEncoder().encode(source));
    await stdin.close();
    const lines: string[] = [];
    const out = readLines(child.stdout);
    const reading = (async () => {
      for (let next = await out.next(); !next.done; next = await out.next()) {
        lines.push(next.value);
      }
    })();
    const errors = new Response(child.stderr).text();
    try {
      const client = await (async () => {
        for (let i = 0;; i++) {
          try {
            return await connect("127.0.0.1", tcp);
          } catch (error) {
            if (i > 200) throw error;
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
        }
      })();
      await client.admitted;
      await until(
        () =>
          lines.some((l) => /^connect 127\.0\.0\.1:\d+ \(1 client\)$/.test(l)),
        10_000,
        "serve's connect line",
      );
      // The keyboard plays to the client (20 ms later), the client to the
      // synth, once the program has opened them (after its TCP port).
      let heard;
      for (let i = 0; heard === undefined; i++) {
        assert.ok(i < 100, "the keyboard reaches the client");
        await py.command(["send", keys, "903c40"]);
        await new Promise((resolve) => setTimeout(resolve, 100));
        heard = client.poll();
      }
      assert.deepEqual(heard, message("note_on", { note: 60 }));
      await client.send(message("control_change", { control: 7, value: 99 }));
      const got = await py.command(["received", synth, 1, 10]);
      assert.deepEqual(got.messages, [[0xb0, 7, 99]]);
      // The page is served.
      const page = await fetch(`http://127.0.0.1:${web}/`);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<html/i);
      await client.close();
      child.kill("SIGINT");
      assert.equal((await child.status).code, 0, await errors);
    } finally {
      try {
        child.kill("SIGKILL");
      } catch {
        // Ended.
      }
      await child.status;
      await reading;
    }
  },
);
