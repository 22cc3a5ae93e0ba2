/**
 * RTP-MIDI for midisock: join Apple Network MIDI sessions (macOS and iOS
 * Audio MIDI Setup, rtpMIDI on Windows, rtpmidid on Linux, hardware
 * interfaces) with {@linkcode RtpMidiSession}, where every participant is a
 * port. Beside it, the pure codecs it runs on: AppleMIDI session packets,
 * RTP-MIDI packets (RFC 6295) and the recovery journal. They do no I/O and
 * can be fuzzed; importing this module needs no permission.
 *
 * RTP-MIDI has no authentication: anyone who can reach the ports can join
 * unless the session's `allow` list says otherwise.
 *
 * @example Joining a session and printing what its peers play
 * ```ts ignore
 * import { formatMessage } from "@x/midisock";
 * import { RtpMidiSession } from "@x/midisock/rtp";
 *
 * await using session = new RtpMidiSession({ host: "", port: 5004, allow: ["192.168.1.0/24"] });
 * for await (const participant of session) {
 *   (async () => {
 *     for await (const msg of participant) console.log(participant.name, formatMessage(msg));
 *   })();
 * }
 * ```
 *
 * @module
 */

export {
  type RtpMidiParticipant,
  type RtpMidiParticipantStats,
  RtpMidiSession,
  type RtpMidiSessionOptions,
  type RtpMidiSessionStats,
  type RtpMidiWarning,
} from "./session.ts";
export {
  InvitationError,
  type InvitationFailure,
  ParticipantTimeoutError,
} from "./errors.ts";
export {
  type AdvertisedSession,
  advertiseRtpMidi,
  APPLE_MIDI_SERVICE,
  type BonjourAdvertisement,
  type BonjourOptions,
} from "./bonjour.ts";
export {
  APPLE_MIDI_VERSION,
  type BitrateLimitPacket,
  decodeSessionPacket,
  encodeSessionPacket,
  type FeedbackPacket,
  type InvitationCommand,
  type InvitationPacket,
  isSessionPacket,
  type SessionPacket,
  type SyncPacket,
} from "../codec/apple_midi.ts";
export {
  commandListLength,
  decodeRtpMidi,
  encodeRtpMidi,
  MAX_DELTA_TIME,
  RTP_MIDI_CLOCK_RATE,
  RTP_MIDI_PAYLOAD_TYPE,
  type RtpMidiCommand,
  type RtpMidiDecodeOptions,
  type RtpMidiEncodeOptions,
  type RtpMidiPacket,
  splitSysex,
  type SysexSegment,
} from "../codec/rtp_midi.ts";
export {
  type AftertouchChapter,
  type ChannelJournal,
  channelJournalLength,
  type ControllerChapter,
  type ControllerLog,
  decodeJournal,
  encodeJournal,
  encodeJournalInto,
  journalLength,
  type NoteChapter,
  type NoteLog,
  type PitchChapter,
  type ProgramChapter,
  type RecoveryJournal,
} from "../codec/rtp_journal.ts";
export { RtpMidiDecodeError } from "../codec/rtp_error.ts";

// What the API above refers to, from elsewhere in the package.
export type * from "../_vocabulary.ts";
export { type Address } from "../net/mod.ts";
