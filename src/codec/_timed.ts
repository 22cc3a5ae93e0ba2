/**
 * Internal: the timed stream, what two midisock programs send over TCP once
 * both said at the start of the connection that they speak it. It is a MIDI
 * 1.0 byte stream (every message whole, as mido sends them) with three more
 * frames made of the undefined system common bytes F4 and F5 and 7-bit data
 * bytes, so a plain MIDI parser (mido's, or midisock's own) skips them:
 *
 * - time, `F4 t4 t3 t2 t1 t0`: the messages that follow happened at this
 *   time, in microseconds of the server's clock modulo 2^35 (9.5 hours);
 * - ping, `F5 01 i1 i0`: the client asks for the server's time (a 14-bit id);
 * - pong, `F5 02 i1 i0 r(5) s(5) n(5)`: the server's answer to ping `i`:
 *   when it came (`r`), when the answer left (`s`), and how many MIDI
 *   messages the server had taken from this client by then (`n`, modulo
 *   2^35), which tells the client what a broken link lost.
 *
 * Pure: no I/O.
 *
 * @module
 */

/** A 35-bit field's modulus. */
export const WRAP = 2 ** 35;
const TIME = 0xf4;
const CONTROL = 0xf5;
const PING = 0x01;
const PONG = 0x02;

/** Bytes of each frame. */
export const TIME_FRAME_BYTES = 6;
export const PING_FRAME_BYTES = 4;
export const PONG_FRAME_BYTES = 19;

function put35(out: Uint8Array, at: number, value: number): void {
  let v = ((Math.round(value) % WRAP) + WRAP) % WRAP;
  for (let i = 4; i >= 0; i--) {
    out[at + i] = v % 128;
    v = Math.floor(v / 128);
  }
}

function get35(bytes: Uint8Array, at: number): number {
  let v = 0;
  for (let i = 0; i < 5; i++) v = v * 128 + bytes[at + i];
  return v;
}

/**
 * The time frame for `us` microseconds.
 *
 * @param us The time, in microseconds (taken modulo 2^35).
 * @returns The frame.
 */
export function timeFrame(us: number): Uint8Array {
  const out = new Uint8Array(TIME_FRAME_BYTES);
  putTimeFrame(out, 0, us);
  return out;
}

/**
 * Writes the time frame for `us` microseconds into `target` at `offset`
 * (6 bytes): for a write queue that fills its own buffer.
 *
 * @param target Where.
 * @param offset At which byte.
 * @param us The time, in microseconds (taken modulo 2^35).
 */
export function putTimeFrame(
  target: Uint8Array,
  offset: number,
  us: number,
): void {
  target[offset] = TIME;
  put35(target, offset + 1, us);
}

/**
 * The ping frame with id `id`.
 *
 * @param id 0-16383.
 * @returns The frame.
 */
export function pingFrame(id: number): Uint8Array {
  return new Uint8Array([CONTROL, PING, (id >> 7) & 127, id & 127]);
}

/**
 * The pong frame that answers ping `id`.
 *
 * @param id The ping's id.
 * @param received When the ping came, µs.
 * @param sent When the pong leaves, µs.
 * @param count MIDI messages taken from the client so far.
 * @returns The frame.
 */
export function pongFrame(
  id: number,
  received: number,
  sent: number,
  count: number,
): Uint8Array {
  const out = new Uint8Array(PONG_FRAME_BYTES);
  out[0] = CONTROL;
  out[1] = PONG;
  out[2] = (id >> 7) & 127;
  out[3] = id & 127;
  put35(out, 4, received);
  put35(out, 9, sent);
  put35(out, 14, count);
  return out;
}

/**
 * The value nearest to `reference` that is `value` modulo 2^35.
 *
 * @param value A 35-bit field.
 * @param reference What it should be near.
 * @returns The unwrapped value.
 */
export function unwrap(value: number, reference: number): number {
  const base = reference - (((reference % WRAP) + WRAP) % WRAP);
  let best = base + value;
  for (const candidate of [best - WRAP, best + WRAP]) {
    if (Math.abs(candidate - reference) < Math.abs(best - reference)) {
      best = candidate;
    }
  }
  return best;
}

/** What the splitter found besides MIDI. */
export type TimedEvent =
  | { readonly type: "ping"; readonly id: number }
  | {
    readonly type: "pong";
    readonly id: number;
    readonly received: number;
    readonly sent: number;
    readonly count: number;
  };

/**
 * Splits a timed stream into MIDI bytes (with the time they carry) and
 * control frames, across reads that may end anywhere.
 */
export class TimedSplitter {
  /** The frame being read, when it was cut by the end of a read. */
  #frame = new Uint8Array(PONG_FRAME_BYTES);
  #have = 0;
  #need = 0;
  /** The time of the messages that follow, in µs mod 2^35 (-1: none yet). */
  #time = -1;

  /** The time the last time frame set (µs mod 2^35), or -1 before any. */
  get time(): number {
    return this.#time;
  }

  /**
   * Splits one read.
   *
   * @param chunk The bytes read.
   * @param midi Called with each run of MIDI bytes and the time frame in
   * force for it (µs mod 2^35, or -1), in order. The run is a view into
   * `chunk`.
   * @param control Called with each ping and pong, in order.
   */
  feed(
    chunk: Uint8Array,
    midi: (bytes: Uint8Array, time: number) => void,
    control: (event: TimedEvent) => void,
  ): void {
    let i = 0;
    let start = 0;
    const length = chunk.length;
    if (this.#need > 0) {
      i = start = this.#continue(chunk, 0, control);
      if (this.#need > 0) return;
    }
    while (i < length) {
      const byte = chunk[i];
      if (byte !== TIME && byte !== CONTROL) {
        i++;
        continue;
      }
      if (i > start) midi(chunk.subarray(start, i), this.#time);
      this.#need = byte === TIME ? TIME_FRAME_BYTES : PING_FRAME_BYTES;
      this.#have = 0;
      i = start = this.#continue(chunk, i, control);
      if (this.#need > 0) return;
    }
    if (i > start) midi(chunk.subarray(start, i), this.#time);
  }

  /** Reads what the frame in progress still needs; returns where it ended. */
  #continue(
    chunk: Uint8Array,
    from: number,
    control: (event: TimedEvent) => void,
  ): number {
    let i = from;
    while (this.#have < this.#need && i < chunk.length) {
      const byte = chunk[i];
      // A status byte inside a frame: the frame was cut short. Drop it and
      // read the byte as what it is.
      if (this.#have > 0 && byte >= 0x80) {
        this.#need = 0;
        return i;
      }
      this.#frame[this.#have++] = byte;
      i++;
      // A control frame's length depends on its kind.
      if (this.#have === 2 && this.#frame[0] === CONTROL) {
        if (byte === PONG) this.#need = PONG_FRAME_BYTES;
        else if (byte !== PING) {
          this.#need = 0;
          return i;
        }
      }
    }
    if (this.#have < this.#need) return i;
    this.#need = 0;
    const frame = this.#frame;
    if (frame[0] === TIME) {
      this.#time = get35(frame, 1);
    } else if (frame[1] === PING) {
      control({ type: "ping", id: (frame[2] << 7) | frame[3] });
    } else {
      control({
        type: "pong",
        id: (frame[2] << 7) | frame[3],
        received: get35(frame, 4),
        sent: get35(frame, 9),
        count: get35(frame, 14),
      });
    }
    return i;
  }
}
