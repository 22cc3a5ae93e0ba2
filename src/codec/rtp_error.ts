/**
 * The error the RTP-MIDI and AppleMIDI decoders throw for bytes they cannot
 * read.
 *
 * @module
 */

/**
 * Thrown by {@linkcode decodeRtpMidi}, {@linkcode decodeSessionPacket} and
 * {@linkcode decodeJournal} for bytes that are not a well-formed packet:
 * too short, a length field that points past the end, a command cut short.
 * It is a `SyntaxError`, so a receiver can catch every decoding problem
 * with one test, count it and go on.
 *
 * @example Counting a bad packet
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeSessionPacket, RtpMidiDecodeError } from "@x/midisock/rtp";
 *
 * let bad = 0;
 * try {
 *   decodeSessionPacket(new Uint8Array([0xff, 0xff, 0x49]));
 * } catch (error) {
 *   if (error instanceof RtpMidiDecodeError) bad++;
 * }
 * assert.equal(bad, 1);
 * ```
 */
export class RtpMidiDecodeError extends SyntaxError {
  /** Where in the packet the problem is, in bytes from its start. */
  readonly offset: number;

  /**
   * Makes the error.
   *
   * @param message What is wrong.
   * @param offset Where.
   */
  constructor(message: string, offset: number) {
    super(`${message} (at offset ${offset})`);
    this.name = "RtpMidiDecodeError";
    this.offset = offset;
  }
}
