/**
 * The shapes of the hardware ports and their options: what `ports.ts`
 * returns and takes, kept apart so that the ports' insides (`_ports.ts`)
 * and their public face need not import each other.
 *
 * @module
 */

import type { InputPort, IOPort, OutputPort } from "../port.ts";
import type { HardwareApi } from "./_api.ts";

export type { HardwareApi } from "./_api.ts";

/** Options every hardware call takes. */
export interface HardwareOptions {
  /**
   * The MIDI backend: `"alsa"` or `"jack"` on Linux, `"core"` on macOS,
   * `"winmm"` on Windows. See {@linkcode getApis} for what the installed
   * RtMidi has. Without one, the backends that can be used now are tried
   * in RtMidi's order: a name opens the first port it matches in any of
   * them, an index or a listing takes the first backend that has ports,
   * a virtual port goes to the first one.
   * @default {the MIDISOCK_RTMIDI_API environment variable if set and readable, else the first usable backend with ports}
   */
  api?: HardwareApi;
  /**
   * The client name the system shows for midisock (ALSA and JACK clients;
   * JACK adds a number when the name is taken).
   * @default {"midisock"}
   */
  clientName?: string;
}

/** Options of opening a port. */
export interface PortOptions extends HardwareOptions {
  /**
   * Create a virtual port with the given name, for other programs to
   * connect to, instead of opening an existing one. Not on Windows.
   * @default {false}
   */
  virtual?: boolean;
}

/** Options of {@linkcode openOutput}. */
export interface OutputOptions extends PortOptions {
  /**
   * What a send does when JACK's buffer for this port is full (JACK only;
   * other backends take every message at once). `"queue"`: it waits, in
   * order, and goes out in a later process cycle, so a burst of any size
   * arrives whole and in order (`send` resolves once the message is in
   * JACK's buffer). `"drop"`: it is dropped and counted in
   * {@linkcode HardwareOutput.dropped}, as RtMidi 4.0 did (a sysex longer
   * than the buffer still waits: it could never go otherwise).
   * @default {"queue"}
   */
  overflow?: "queue" | "drop";
}

/**
 * Options of {@linkcode openInput}. The filters default to what mido does:
 * sysex and timing (clock, MIDI time code) come through, active sensing is
 * dropped. (RtMidi's and python-rtmidi's own default drops all three.)
 */
export interface InputOptions extends PortOptions {
  /**
   * Drop sysex messages.
   * @default {false}
   */
  ignoreSysex?: boolean;
  /**
   * Drop timing messages: clock (F8) and MIDI time code quarter frames (F1).
   * @default {false}
   */
  ignoreTiming?: boolean;
  /**
   * Drop active sensing (FE).
   * @default {true}
   */
  ignoreActiveSensing?: boolean;
  /**
   * How many received messages wait for the reader at most. When the queue
   * is full, newly arriving messages are dropped and counted in
   * {@linkcode HardwareInput.dropped}: a MIDI thread cannot be told to
   * wait, so a reader that falls behind loses the newest messages, never
   * the order of those it gets.
   * @default {4096}
   */
  queueSize?: number;
}

/** Options of {@linkcode openIOPort}: those of both halves. */
export interface IOPortOptions extends InputOptions, OutputOptions {}

/**
 * An input port on a MIDI device or a virtual port: iterate it with
 * `for await`. Each message's `time` is the delta time RtMidi measured since
 * the previous message, in seconds.
 *
 * RtMidi queues what arrives; while a reader waits (`receive()` or a
 * `for await` loop), one timer shared by every input takes it from there:
 * every millisecond while messages come, less often after a silence (at
 * most every 40 ms; on JACK it sleeps, and the first message wakes it at
 * once). Only a waiting reader keeps the process alive, so a
 * script that forgets to close a port still ends. Messages that find the
 * port's own queue full are dropped and counted in `dropped`.
 */
export interface HardwareInput extends InputPort {
  /** How many messages arrived while the queue was full, and were lost. */
  readonly dropped: number;
  /** Whether this port was created as a virtual port. */
  readonly virtual: boolean;
  /** The backend in use. */
  readonly api: string;
}

/**
 * An output port on a MIDI device or a virtual port.
 *
 * `send` resolves once RtMidi took the message. On JACK, a message waits
 * until JACK's buffer for the port has room (see
 * {@linkcode OutputOptions.overflow}): bursts go out over several process
 * cycles, whole and in order, and a sysex longer than the buffer goes as
 * several JACK events, which RtMidi joins again on the other side.
 */
export interface HardwareOutput extends OutputPort {
  /** Whether this port was created as a virtual port. */
  readonly virtual: boolean;
  /** The backend in use. */
  readonly api: string;
  /**
   * Messages dropped because JACK's buffer was full: always 0 unless
   * `overflow` is `"drop"`.
   */
  readonly dropped: number;
}

/** A pair of hardware ports used as one: the input and output halves. */
export interface HardwareIOPort extends IOPort {
  /** The input half. */
  readonly input: HardwareInput;
  /** The output half. */
  readonly output: HardwareOutput;
}

/** A backend RtMidi has, and whether it can be used now. */
export type ApiState =
  | { readonly api: HardwareApi; readonly usable: true }
  | {
    readonly api: HardwareApi;
    readonly usable: false;
    readonly reason: string;
  };
