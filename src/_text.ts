/**
 * Internal: words and times for the lines midisock prints.
 *
 * @module
 */

/** `1 client`, `2 clients`, `3,512 clients`. */
export function plural(n: number, noun: string, many = `${noun}s`): string {
  // Thousands separated by hand: toLocaleString costs too much per line.
  const digits = String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return `${digits} ${n === 1 ? noun : many}`;
}

/** Local time of day with milliseconds: `14:03:27.123`. */
export function timeOfDay(date: Date = new Date()): string {
  const two = (n: number) => String(n).padStart(2, "0");
  return `${two(date.getHours())}:${two(date.getMinutes())}:${
    two(date.getSeconds())
  }.${String(date.getMilliseconds()).padStart(3, "0")}`;
}

/** One line of an error, without a stack. */
export function oneLine(reason: unknown): string {
  const text = reason instanceof Error ? reason.message : String(reason);
  return text.split(/\r?\n/).map((s) => s.trim()).filter(Boolean).join("; ");
}

/**
 * Phrases any error for people in one line, without a stack trace: a
 * refusal as who refused and why, a missing permission as such, RtMidi
 * not found by its summary (each known by name, so nothing is imported).
 */
export function describeError(error: unknown): string {
  if (!(error instanceof Error)) return oneLine(error);
  const known = error as Error & Record<string, string>;
  switch (error.name) {
    case "RtMidiNotFoundError":
      return known.summary;
    case "NotCapable":
      return `missing permission: ${oneLine(error)}`;
    case "RefusedError":
      return `refused by ${known.server} (${known.reason})`;
  }
  return oneLine(error);
}
