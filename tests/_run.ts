// The test task: runs `deno test` with the permission set in deno.json and
// the doc tests, passes its output through, and sums up the tests ignored
// because something is missing here in one line per reason
// (`skipped 12 tests: the JACK server is not running; ...`) instead of a
// bare line each. The exit code is deno test's.
//
// deno run --allow-run --allow-env tests/_run.ts [deno test arguments]

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;
const SKIPPED = /^(.*) \[skipped: (.*)\] \.\.\. ignored \(/;

const child = new Deno.Command(Deno.execPath(), {
  args: ["test", "-P", "--doc", "--quiet", ...Deno.args],
  stdout: "piped",
  stderr: "inherit",
}).spawn();
const reasons = new Map<string, number>();
const encoder = new TextEncoder();
const write = (line: string) =>
  Deno.stdout.writeSync(encoder.encode(`${line}\n`));
let rest = "";
for await (
  const chunk of child.stdout.pipeThrough(new TextDecoderStream())
) {
  const lines = (rest + chunk).split("\n");
  rest = lines.pop()!;
  for (const line of lines) {
    const plain = line.replace(ANSI, "");
    const skipped = plain.match(SKIPPED);
    if (skipped !== null) {
      reasons.set(skipped[2], (reasons.get(skipped[2]) ?? 0) + 1);
      continue;
    }
    // The summary comes last: the reasons go just before it.
    if (/^(ok|FAILED) \| /.test(plain)) {
      for (const [reason, count] of reasons) {
        write(`skipped ${count} test${count === 1 ? "" : "s"}: ${reason}`);
      }
      reasons.clear();
    }
    write(line);
  }
}
if (rest !== "") write(rest);
for (const [reason, count] of reasons) {
  write(`skipped ${count} test${count === 1 ? "" : "s"}: ${reason}`);
}
Deno.exit((await child.status).code);
