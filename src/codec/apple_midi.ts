/**
 * AppleMIDI session packets (Apple's "MIDI Network Driver Protocol"): the
 * invitation handshake (IN, OK, NO), the end of a session (BY), clock
 * synchronisation (CK), receiver feedback (RS) and the bitrate limit (RL).
 * They start with the signature 0xFFFF, which no RTP packet can, so one
 * test tells them from RTP-MIDI packets on the same port.
 *
 * Pure: no I/O. Decoding never throws anything but
 * {@linkcode RtpMidiDecodeError}.
 *
 * @module
 */

import { RtpMidiDecodeError } from "./rtp_error.ts";

/** The AppleMIDI protocol version every known peer sends: 2. */
export const APPLE_MIDI_VERSION = 2;

/** The session commands that carry a token, an SSRC and a name. */
export type InvitationCommand = "IN" | "OK" | "NO" | "BY";

/**
 * IN (invitation), OK (accepted), NO (refused) or BY (end of session).
 */
export interface InvitationPacket {
  /** Which of the four. */
  readonly command: InvitationCommand;
  /** Protocol version, 2. */
  readonly version: number;
  /** The initiator's token, a 32-bit number that ties the replies to it. */
  readonly token: number;
  /** The sender's RTP synchronisation source (32 bits). */
  readonly ssrc: number;
  /** The sender's session name; empty when it sent none. */
  readonly name: string;
}

/**
 * CK, clock synchronisation: three of them make one exchange (count 0, 1,
 * 2), each adding the sender's clock, in units of 100 microseconds.
 */
export interface SyncPacket {
  /** Always `"CK"`. */
  readonly command: "CK";
  /** The sender's SSRC. */
  readonly ssrc: number;
  /** Which step of the exchange: 0, 1 or 2. */
  readonly count: 0 | 1 | 2;
  /**
   * The three timestamps (100 microsecond units); those not yet filled in
   * are 0. Values above 2^53 lose precision.
   */
  readonly timestamps: readonly [number, number, number];
}

/** RS, receiver feedback: the last RTP sequence number received. */
export interface FeedbackPacket {
  /** Always `"RS"`. */
  readonly command: "RS";
  /** The sender's (the receiver's) SSRC. */
  readonly ssrc: number;
  /** The 16-bit RTP sequence number of the last packet received. */
  readonly sequence: number;
}

/** RL, bitrate receive limit: the most bits per second the sender takes. */
export interface BitrateLimitPacket {
  /** Always `"RL"`. */
  readonly command: "RL";
  /** The sender's SSRC. */
  readonly ssrc: number;
  /** Bits per second. */
  readonly limit: number;
}

/** Any AppleMIDI session packet. */
export type SessionPacket =
  | InvitationPacket
  | SyncPacket
  | FeedbackPacket
  | BitrateLimitPacket;

const CODES: Readonly<Record<SessionPacket["command"], number>> = {
  IN: 0x494e,
  OK: 0x4f4b,
  NO: 0x4e4f,
  BY: 0x4259,
  CK: 0x434b,
  RS: 0x5253,
  RL: 0x524c,
};

const COMMANDS = new Map<number, SessionPacket["command"]>(
  Object.entries(CODES).map(([name, code]) => [
    code,
    name as SessionPacket["command"],
  ]),
);

/** The longest session name encoded, in UTF-8 bytes. */
const MAX_NAME_BYTES = 1000;
const TWO_32 = 2 ** 32;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Tells an AppleMIDI session packet from an RTP packet: session packets
 * start with 0xFFFF, which no RTP version 2 header can.
 *
 * @param bytes A datagram.
 * @returns Whether it starts with the session signature.
 *
 * @example Sorting datagrams
 * ```ts
 * import assert from "node:assert/strict";
 * import { isSessionPacket } from "@x/midisock/rtp";
 *
 * assert.equal(isSessionPacket(new Uint8Array([0xff, 0xff, 0x43, 0x4b])), true);
 * assert.equal(isSessionPacket(new Uint8Array([0x80, 0x61, 0, 1])), false);
 * ```
 */
export function isSessionPacket(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === 0xff && bytes[1] === 0xff;
}

function checkUint32(name: string, value: unknown): number {
  if (
    typeof value !== "number" || !Number.isInteger(value) || value < 0 ||
    value >= TWO_32
  ) {
    throw new RangeError(
      `${name} must be an integer in 0..4294967295: got ${String(value)}`,
    );
  }
  return value;
}

function checkTimestamp(value: unknown): number {
  if (
    typeof value !== "number" || !Number.isSafeInteger(value) || value < 0
  ) {
    throw new RangeError(
      `CK timestamps must be non-negative safe integers: got ${String(value)}`,
    );
  }
  return value;
}

/**
 * Encodes a session packet.
 *
 * @param packet The packet. Names are sent as UTF-8 with a terminating NUL.
 * @returns Its bytes.
 * @throws {TypeError} For an unknown command or a name that is not a
 * string.
 * @throws {RangeError} For a field out of range, a name with a NUL or of more
 * than 1000 bytes.
 *
 * @example An invitation
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeSessionPacket, encodeSessionPacket } from "@x/midisock/rtp";
 *
 * const bytes = encodeSessionPacket({
 *   command: "IN", version: 2, token: 7, ssrc: 0x1234, name: "desk",
 * });
 * assert.equal(bytes.length, 21);
 * assert.equal(decodeSessionPacket(bytes).command, "IN");
 * ```
 */
export function encodeSessionPacket(packet: SessionPacket): Uint8Array {
  const code = Object.hasOwn(CODES, packet?.command)
    ? CODES[packet.command]
    : undefined;
  if (code === undefined) {
    throw new TypeError(
      `Unknown session command ${
        JSON.stringify(packet?.command)
      }: expected one of ${Object.keys(CODES).join(", ")}`,
    );
  }
  let bytes: Uint8Array;
  let view: DataView;
  const start = (size: number) => {
    bytes = new Uint8Array(size);
    view = new DataView(bytes.buffer);
    view.setUint16(0, 0xffff);
    view.setUint16(2, code);
  };
  switch (packet.command) {
    case "IN":
    case "OK":
    case "NO":
    case "BY": {
      if (typeof packet.name !== "string") {
        throw new TypeError(
          `Session name must be a string: got ${String(packet.name)}`,
        );
      }
      const name = encoder.encode(packet.name);
      if (name.includes(0) || name.length > MAX_NAME_BYTES) {
        throw new RangeError(
          `Session name must have no NUL and at most ${MAX_NAME_BYTES} bytes: got ${name.length} bytes`,
        );
      }
      start(16 + (name.length > 0 ? name.length + 1 : 0));
      view!.setUint32(4, checkUint32("version", packet.version));
      view!.setUint32(8, checkUint32("token", packet.token));
      view!.setUint32(12, checkUint32("ssrc", packet.ssrc));
      bytes!.set(name, 16);
      break;
    }
    case "CK": {
      if (packet.count !== 0 && packet.count !== 1 && packet.count !== 2) {
        throw new RangeError(
          `CK count must be 0, 1 or 2: got ${String(packet.count)}`,
        );
      }
      start(36);
      view!.setUint32(4, checkUint32("ssrc", packet.ssrc));
      bytes![8] = packet.count;
      for (let i = 0; i < 3; i++) {
        const stamp = checkTimestamp(packet.timestamps?.[i]);
        view!.setUint32(12 + 8 * i, Math.floor(stamp / TWO_32));
        view!.setUint32(16 + 8 * i, stamp % TWO_32);
      }
      break;
    }
    case "RS": {
      const sequence = packet.sequence;
      if (!Number.isInteger(sequence) || sequence < 0 || sequence > 0xffff) {
        throw new RangeError(
          `RS sequence must be an integer in 0..65535: got ${String(sequence)}`,
        );
      }
      start(12);
      view!.setUint32(4, checkUint32("ssrc", packet.ssrc));
      // The 16-bit sequence number fills the upper half of a 32-bit field,
      // as Apple, rtpMIDI and Wireshark's dissector have it.
      view!.setUint16(8, sequence);
      break;
    }
    case "RL":
      start(12);
      view!.setUint32(4, checkUint32("ssrc", packet.ssrc));
      view!.setUint32(8, checkUint32("limit", packet.limit));
      break;
  }
  return bytes!;
}

/**
 * Decodes a session packet. Bytes after the fields a command defines are
 * ignored, as are bytes after a name's NUL.
 *
 * @param bytes One datagram.
 * @returns The packet.
 * @throws {RtpMidiDecodeError} For bytes without the 0xFFFF signature, an
 * unknown command, a packet too short for its command, or a CK count above 2.
 *
 * @example Reading receiver feedback
 * ```ts
 * import assert from "node:assert/strict";
 * import { decodeSessionPacket, encodeSessionPacket } from "@x/midisock/rtp";
 *
 * const packet = decodeSessionPacket(
 *   encodeSessionPacket({ command: "RS", ssrc: 1, sequence: 513 }),
 * );
 * assert.deepEqual(packet, { command: "RS", ssrc: 1, sequence: 513 });
 * ```
 */
export function decodeSessionPacket(bytes: Uint8Array): SessionPacket {
  if (bytes.length < 4) {
    throw new RtpMidiDecodeError(
      `Session packet too short: ${bytes.length} bytes, need at least 4`,
      bytes.length,
    );
  }
  if (!isSessionPacket(bytes)) {
    throw new RtpMidiDecodeError("Session packet without 0xFFFF signature", 0);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const code = view.getUint16(2);
  const command = COMMANDS.get(code);
  if (command === undefined) {
    throw new RtpMidiDecodeError(
      `Unknown session command 0x${code.toString(16).padStart(4, "0")}`,
      2,
    );
  }
  const need = (size: number) => {
    if (bytes.length < size) {
      throw new RtpMidiDecodeError(
        `${command} packet too short: ${bytes.length} bytes, need ${size}`,
        bytes.length,
      );
    }
  };
  switch (command) {
    case "IN":
    case "OK":
    case "NO":
    case "BY": {
      need(16);
      let end = bytes.indexOf(0, 16);
      if (end < 0) end = bytes.length;
      return {
        command,
        version: view.getUint32(4),
        token: view.getUint32(8),
        ssrc: view.getUint32(12),
        name: decoder.decode(bytes.subarray(16, end)),
      };
    }
    case "CK": {
      need(36);
      const count = bytes[8];
      if (count > 2) {
        throw new RtpMidiDecodeError(`CK count ${count} is not 0, 1 or 2`, 8);
      }
      const stamp = (at: number) =>
        view.getUint32(at) * TWO_32 + view.getUint32(at + 4);
      return {
        command,
        ssrc: view.getUint32(4),
        count: count as 0 | 1 | 2,
        timestamps: [stamp(12), stamp(20), stamp(28)],
      };
    }
    case "RS":
      need(12);
      return {
        command,
        ssrc: view.getUint32(4),
        sequence: view.getUint16(8),
      };
    case "RL":
      need(12);
      return { command, ssrc: view.getUint32(4), limit: view.getUint32(8) };
  }
}
