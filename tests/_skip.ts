// Tests that cannot run here (a tool or service missing) are ignored with
// their reason in their name, `NAME [skipped: REASON]`, so that the test
// task (tests/_run.ts) can sum them up in one line per reason.

/**
 * A test's name and `ignore`, from the reasons it cannot run here (the
 * first that is set wins; none set: it runs).
 */
export function skip(
  name: string,
  ...reasons: (string | undefined | false)[]
): { name: string; ignore: boolean } {
  const reason = reasons.find((r): r is string =>
    typeof r === "string" && r !== ""
  );
  return reason === undefined
    ? { name, ignore: false }
    : { name: `${name} [skipped: ${reason}]`, ignore: true };
}
