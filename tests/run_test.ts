// The test task's runner (tests/_run.ts): tests ignored because something
// is missing here are summed up in one line per reason, before the result.

import assert from "node:assert/strict";
import { within } from "./_net.ts";

Deno.test({
  name: "the test task says why tests were skipped, one line per reason",
  permissions: { run: true, read: true },
  fn: () =>
    within(
      (async () => {
        const { code, stdout } = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "--allow-run",
            "tests/_run.ts",
            "tests/_skip_fixture.ts",
          ],
          cwd: new URL("../", import.meta.url),
          env: { NO_COLOR: "1" },
          stdout: "piped",
          stderr: "piped",
        }).output();
        assert.equal(code, 0);
        const lines = new TextDecoder().decode(stdout).trim().split("\n");
        assert.deepEqual(lines.slice(-3), [
          "skipped 2 tests: the JACK server is not running",
          "skipped 1 test: mido is not available",
          lines.at(-1),
        ]);
        assert.match(lines.at(-1)!, /^ok \| 1 passed \| 0 failed \| 3 ignored/);
        assert.ok(!lines.some((line) => line.includes("[skipped:")));
      })(),
      30_000,
      "the runner",
    ),
});
