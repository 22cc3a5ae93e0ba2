/**
 * Test helper: python-rtmidi as the other program on the JACK server. One
 * Python process takes commands on stdin, one per line, and answers each
 * with one line: it creates and destroys virtual ports, sends messages and
 * long sysex, reports what its inputs received, and lists the ports it (and
 * mido) can see.
 *
 * @module
 */

import { skip } from "./_skip.ts";
import { within } from "./_net.ts";
import { PortNotFoundError } from "../src/hardware/mod.ts";
import {
  assertAvailable,
  IGNORE,
  REQUIRED,
  RTMIDI_MISSING,
  sleep,
} from "./_rtmidi.ts";

/** The Python interpreter: `MIDISOCK_PYTHON`, else Debian's. */
export const PYTHON = Deno.env.get("MIDISOCK_PYTHON") ?? "/usr/bin/python3";

const SCRIPT = String.raw`
import json, sys, time, rtmidi

JACK = rtmidi.API_UNIX_JACK
ports = {}
listers = None

def reply(value):
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()

def make(name, kind):
    if kind == "out":
        port = rtmidi.MidiOut(JACK, "pyrt")
    else:
        # Read from RtMidi's queue, not a callback: Python code in JACK's
        # process thread is too slow for a burst (the cycle overruns).
        port = rtmidi.MidiIn(JACK, "pyrt", queue_size_limit=32768)
        port.ignore_types(False, False, True)
    return port

def sysex_chunks(length):
    # python-rtmidi sends a message longer than 3 bytes only if it starts
    # with F0, and RtMidi 4.0's JACK output cannot take one longer than
    # its ring: so a long sysex goes as F0 + 8000 bytes, then pieces of at
    # most 3 data bytes, the last ending with F7. RtMidi joins them again.
    data = [i % 128 for i in range(length)]
    yield [0xF0] + data[:8000]
    rest = data[8000:] + [0xF7]
    for i in range(0, len(rest), 3):
        yield rest[i:i + 3]

for line in sys.stdin:
    words = line.split()
    if not words:
        continue
    command, args = words[0], words[1:]
    try:
        if command == "open":
            # python-rtmidi 1.4.7 cannot reopen a virtual port it closed:
            # each open makes a new client. The old one is deleted only now,
            # long after it was made (closing a JACK client right after
            # opening it races inside libjack).
            name, kind = args
            old = ports.pop((name, kind), None)
            if old is not None:
                old.delete()
            port = make(name, kind)
            port.open_virtual_port(name)
            ports[(name, kind)] = port
            reply({"ok": True, "at": time.time() * 1000})
        elif command == "close":
            name, kind = args
            ports[(name, kind)].close_port()
            reply({"ok": True, "at": time.time() * 1000})
        elif command == "send":
            name = args[0]
            port = ports[(name, "out")]
            for hex_message in args[1:]:
                port.send_message(list(bytes.fromhex(hex_message)))
            reply({"ok": True})
        elif command == "sysex":
            name, length = args[0], int(args[1])
            port = ports[(name, "out")]
            for i, chunk in enumerate(sysex_chunks(length)):
                port.send_message(chunk)
                # RtMidi 4.0 overwrites its ring when it fills: pace.
                if i % 500 == 499:
                    time.sleep(0.03)
            reply({"ok": True})
        elif command == "list":
            # What another program sees: python-rtmidi's lists, and mido's
            # (which names ports as python-rtmidi does, through its own
            # clients).
            import mido
            backend = mido.Backend("mido.backends.rtmidi/UNIX_JACK")
            if listers is None:
                listers = (rtmidi.MidiIn(JACK, "pyrt"), rtmidi.MidiOut(JACK, "pyrt"))
            reply({
                "ok": True,
                "inputs": listers[0].get_ports(),
                "outputs": listers[1].get_ports(),
                "midoInputs": backend.get_input_names(),
                "midoOutputs": backend.get_output_names(),
            })
        elif command == "received":
            name, count, seconds = args[0], int(args[1]), float(args[2])
            port = ports[(name, "in")]
            deadline = time.time() + seconds
            got = []
            while len(got) < count and time.time() < deadline:
                event = port.get_message()
                if event is None:
                    time.sleep(0.002)
                else:
                    got.append(event[0])
            reply({"ok": True, "messages": got})
        else:
            reply({"ok": False, "error": "unknown command " + command})
    except Exception as error:
        reply({"ok": False, "error": repr(error)})
`;

/** What a command answers. */
export interface Reply {
  ok: boolean;
  error?: string;
  /** Wall-clock time in milliseconds when the command was done. */
  at?: number;
  /** For `received`: each message's bytes. */
  messages?: number[][];
  /** For `list`: the ports python-rtmidi can read from. */
  inputs?: string[];
  /** For `list`: the ports python-rtmidi can send to. */
  outputs?: string[];
  /** For `list`: mido's input names. */
  midoInputs?: string[];
  /** For `list`: mido's output names. */
  midoOutputs?: string[];
}

/** A running python-rtmidi process; see the module doc. */
export class PyRtMidi implements AsyncDisposable {
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #lines: ReadableStreamDefaultReader<string>;
  #buffered = "";
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(child: Deno.ChildProcess) {
    this.#child = child;
    this.#writer = child.stdin.getWriter();
    this.#lines = child.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
  }

  /**
   * Starts the Python process.
   *
   * @returns The process, ready for commands.
   */
  static start(): PyRtMidi {
    const child = new Deno.Command(PYTHON, {
      args: ["-u", "-c", SCRIPT],
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    return new PyRtMidi(child);
  }

  async #line(ms: number): Promise<string> {
    for (;;) {
      const end = this.#buffered.indexOf("\n");
      if (end >= 0) {
        const line = this.#buffered.slice(0, end);
        this.#buffered = this.#buffered.slice(end + 1);
        return line;
      }
      const { value, done } = await within(
        this.#lines.read(),
        ms,
        "python-rtmidi's answer",
      );
      if (done) throw new Error("python-rtmidi ended");
      this.#buffered += value;
    }
  }

  /**
   * Runs one command and waits for its answer.
   *
   * @param words The command and its arguments.
   * @param ms How long to wait for the answer.
   * @returns The answer.
   * @throws {Error} When Python answers with an error.
   */
  command(words: (string | number)[], ms = 20_000): Promise<Reply> {
    const run = this.#queue.then(async () => {
      await this.#writer.write(
        new TextEncoder().encode(`${words.join(" ")}\n`),
      );
      const reply: Reply = JSON.parse(await this.#line(ms));
      if (!reply.ok) {
        throw new Error(`python-rtmidi: ${words[0]}: ${reply.error}`);
      }
      return reply;
    });
    this.#queue = run.catch(() => {});
    return run;
  }

  /** Ends the process. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.#writer.close().catch(() => {});
    await this.#lines.cancel().catch(() => {});
    const killer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch {
        // Already gone.
      }
    }, 5000);
    await this.#child.status;
    clearTimeout(killer);
  }
}

/**
 * Whether python-rtmidi can be imported here.
 *
 * @returns `undefined` when it can, else why not.
 */
export async function pythonRtMidiMissing(): Promise<string | undefined> {
  try {
    const output = await new Deno.Command(PYTHON, {
      args: ["-c", "import rtmidi"],
      stdout: "null",
      stderr: "piped",
    }).output();
    if (output.success) return undefined;
    const text = new TextDecoder().decode(output.stderr).trim().split("\n")
      .at(-1);
    return `python-rtmidi cannot be imported by ${PYTHON} (${text}); ` +
      "install python3-rtmidi";
  } catch (error) {
    return `${PYTHON} cannot be run (${
      error instanceof Error ? error.message : error
    }); install python3 and python3-rtmidi or set MIDISOCK_PYTHON`;
  }
}

/** Why python-rtmidi cannot be used here, or `undefined` when it can. */
export const PYTHON_MISSING: string | undefined = IGNORE
  ? undefined
  : await pythonRtMidiMissing();
if (PYTHON_MISSING !== undefined) {
  console.warn(
    REQUIRED
      ? `MIDISOCK_REQUIRE_RTMIDI=1 but ${PYTHON_MISSING}`
      : `Skipping python-rtmidi tests: ${PYTHON_MISSING}`,
  );
}

/** A test with python-rtmidi as the other program. */
export function pyTest(
  name: string,
  fn: (py: PyRtMidi) => Promise<void>,
): void {
  Deno.test({
    ...skip(name, RTMIDI_MISSING, !REQUIRED && PYTHON_MISSING),
    async fn() {
      assertAvailable();
      if (PYTHON_MISSING !== undefined) throw new Error(PYTHON_MISSING);
      await using py = PyRtMidi.start();
      await fn(py);
    },
  });
}

/** Opens a port another process just made: it is listed after a moment. */
export async function openWhenListed<T>(open: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await open();
    } catch (error) {
      if (!(error instanceof PortNotFoundError) || Date.now() > deadline) {
        throw error;
      }
      await sleep(20);
    }
  }
}
