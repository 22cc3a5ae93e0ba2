// Finding a real mido (Debian's python3-mido) for interop tests. Tests that
// need it are ignored with a reason when it is missing, unless
// MIDISOCK_REQUIRE_MIDO=1, where its absence fails the run.

/** The Python that has mido: $MIDISOCK_PYTHON, else /usr/bin/python3. */
export const python: string = Deno.env.get("MIDISOCK_PYTHON") ??
  "/usr/bin/python3";

function probe(): string | undefined {
  try {
    const { success, stderr } = new Deno.Command(python, {
      args: ["-c", "import mido, mido.sockets"],
      stdout: "null",
      stderr: "piped",
    }).outputSync();
    if (success) return undefined;
    return new TextDecoder().decode(stderr).trim().split("\n").at(-1);
  } catch (error) {
    return `${python}: ${(error as Error).message}`;
  }
}

const missing = probe();
const required = Deno.env.get("MIDISOCK_REQUIRE_MIDO") === "1";
if (missing !== undefined) {
  const line = `mido is not available (${missing})`;
  if (required) throw new Error(`${line}, but MIDISOCK_REQUIRE_MIDO=1`);
  console.warn(
    `${line}: skipping mido interop tests (apt-get install python3-mido)`,
  );
}

/** Whether mido tests must be skipped here. */
export const noMido: boolean = missing !== undefined;

/** Why mido tests are skipped here, or undefined. */
export const MIDO_MISSING: string | undefined = missing &&
  `mido is not available (${missing}); apt-get install python3-mido`;

/**
 * Runs a Python script with mido, feeding `input` on stdin; resolves to
 * stdout. Fails with stderr when the script fails.
 */
export async function runPython(
  script: string,
  input = "",
  args: string[] = [],
): Promise<string> {
  const child = new Deno.Command(python, {
    args: ["-c", script, ...args],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(input));
  await writer.close();
  const { success, stdout, stderr } = await child.output();
  if (!success) {
    throw new Error(`python failed: ${new TextDecoder().decode(stderr)}`);
  }
  return new TextDecoder().decode(stdout);
}
