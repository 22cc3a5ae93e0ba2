/**
 * The pure MIDI 1.0 codec that every midisock port uses: messages with
 * mido's names, the encoder, the streaming parser, web streams over both,
 * and mido's text form. No I/O and no Deno APIs: it runs anywhere.
 *
 * @example Bytes to messages and back
 * ```ts
 * import assert from "node:assert/strict";
 * import { encode, formatMessage, message, Parser } from "@x/midisock/codec";
 *
 * const parser = new Parser();
 * const bytes = encode(message("note_on", { note: 60 }));
 * const [msg] = parser.feed(bytes);
 * assert.equal(formatMessage(msg), "note_on channel=0 note=60 velocity=64 time=0");
 * ```
 *
 * @module
 */

export {
  type ActiveSensing,
  type Aftertouch,
  checkMessage,
  type Clock,
  type Continue,
  type ControlChange,
  copy,
  equals,
  isChannelMessage,
  isRealtime,
  type Message,
  message,
  MESSAGE_TYPES,
  type MessageBase,
  type MessageInit,
  type MessageOf,
  type MessageType,
  type NoteOff,
  type NoteOn,
  type Pitchwheel,
  type Polytouch,
  type ProgramChange,
  type QuarterFrame,
  type Reset,
  type Songpos,
  type SongSelect,
  type Start,
  type Stop,
  type Sysex,
  type TuneRequest,
} from "./messages.ts";
export { encode, encodedLength, encodeInto } from "./encode.ts";
export { decode, DecodeError } from "./decode.ts";
export {
  DEFAULT_MAX_SYSEX_LENGTH,
  Parser,
  type ParserOptions,
} from "./parser.ts";
export { MidiDecoderStream, MidiEncoderStream } from "./streams.ts";
export { formatMessage, parseMessage } from "./text.ts";
