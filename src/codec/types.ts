/**
 * MIDI 1.0 message types: plain readonly objects with mido's type and field
 * names. The values that build and check them are in `messages.ts`.
 *
 * @module
 */

/** Fields every message may carry. */
export interface MessageBase {
  /**
   * Time in seconds, as mido uses it: never sent on the wire. Ports that
   * know it (hardware inputs) fill in the time since the previous message.
   * @default {0}
   */
  readonly time?: number;
}

/** A key released: `8n kk vv`. */
export interface NoteOff extends MessageBase {
  /** The message type. */
  readonly type: "note_off";
  /** Channel, 0-15. */
  readonly channel: number;
  /** Note number, 0-127. */
  readonly note: number;
  /** Release velocity, 0-127. */
  readonly velocity: number;
}

/** A key pressed: `9n kk vv` (velocity 0 is kept as note_on, as in mido). */
export interface NoteOn extends MessageBase {
  /** The message type. */
  readonly type: "note_on";
  /** Channel, 0-15. */
  readonly channel: number;
  /** Note number, 0-127. */
  readonly note: number;
  /** Velocity, 0-127. */
  readonly velocity: number;
}

/** Polyphonic key pressure: `An kk vv`. */
export interface Polytouch extends MessageBase {
  /** The message type. */
  readonly type: "polytouch";
  /** Channel, 0-15. */
  readonly channel: number;
  /** Note number, 0-127. */
  readonly note: number;
  /** Pressure, 0-127. */
  readonly value: number;
}

/** A controller change: `Bn cc vv`. */
export interface ControlChange extends MessageBase {
  /** The message type. */
  readonly type: "control_change";
  /** Channel, 0-15. */
  readonly channel: number;
  /** Controller number, 0-127. */
  readonly control: number;
  /** Controller value, 0-127. */
  readonly value: number;
}

/** A program change: `Cn pp`. */
export interface ProgramChange extends MessageBase {
  /** The message type. */
  readonly type: "program_change";
  /** Channel, 0-15. */
  readonly channel: number;
  /** Program number, 0-127. */
  readonly program: number;
}

/** Channel pressure: `Dn vv`. */
export interface Aftertouch extends MessageBase {
  /** The message type. */
  readonly type: "aftertouch";
  /** Channel, 0-15. */
  readonly channel: number;
  /** Pressure, 0-127. */
  readonly value: number;
}

/** Pitch bend: `En ll mm`, sent as `pitch + 8192` in 14 bits. */
export interface Pitchwheel extends MessageBase {
  /** The message type. */
  readonly type: "pitchwheel";
  /** Channel, 0-15. */
  readonly channel: number;
  /** Bend, -8192..8191 (0 is centre). */
  readonly pitch: number;
}

/** System exclusive: `F0 data F7`. */
export interface Sysex extends MessageBase {
  /** The message type. */
  readonly type: "sysex";
  /** The bytes between F0 and F7, each 0-127. */
  readonly data: Uint8Array;
}

/** MIDI time code quarter frame: `F1 (frame_type << 4 | frame_value)`. */
export interface QuarterFrame extends MessageBase {
  /** The message type. */
  readonly type: "quarter_frame";
  /** Which part of the time code, 0-7. */
  readonly frame_type: number;
  /** Its value, 0-15. */
  readonly frame_value: number;
}

/** Song position pointer: `F2 ll mm`. */
export interface Songpos extends MessageBase {
  /** The message type. */
  readonly type: "songpos";
  /** Position in MIDI beats (sixteenth notes), 0-16383. */
  readonly pos: number;
}

/** Song select: `F3 ss`. */
export interface SongSelect extends MessageBase {
  /** The message type. */
  readonly type: "song_select";
  /** Song number, 0-127. */
  readonly song: number;
}

/** Tune request: `F6`. */
export interface TuneRequest extends MessageBase {
  /** The message type. */
  readonly type: "tune_request";
}

/** Timing clock, 24 per quarter note: `F8`. */
export interface Clock extends MessageBase {
  /** The message type. */
  readonly type: "clock";
}

/** Start: `FA`. */
export interface Start extends MessageBase {
  /** The message type. */
  readonly type: "start";
}

/** Continue: `FB`. */
export interface Continue extends MessageBase {
  /** The message type. */
  readonly type: "continue";
}

/** Stop: `FC`. */
export interface Stop extends MessageBase {
  /** The message type. */
  readonly type: "stop";
}

/** Active sensing: `FE`. */
export interface ActiveSensing extends MessageBase {
  /** The message type. */
  readonly type: "active_sensing";
}

/** System reset: `FF`. */
export interface Reset extends MessageBase {
  /** The message type. */
  readonly type: "reset";
}

/** Any MIDI 1.0 message, discriminated by `type`. */
export type Message =
  | NoteOff
  | NoteOn
  | Polytouch
  | ControlChange
  | ProgramChange
  | Aftertouch
  | Pitchwheel
  | Sysex
  | QuarterFrame
  | Songpos
  | SongSelect
  | TuneRequest
  | Clock
  | Start
  | Continue
  | Stop
  | ActiveSensing
  | Reset;

/** The name of a message type, such as `"note_on"`. */
export type MessageType = Message["type"];

/** The message object of one type. */
export type MessageOf<T extends MessageType> = Extract<Message, { type: T }>;

/**
 * The fields {@linkcode message} accepts for one type: every field optional
 * (mido's defaults fill the rest), sysex `data` as any list of numbers.
 */
export type MessageInit<T extends MessageType> =
  & {
    -readonly [K in Exclude<keyof MessageOf<T>, "type" | "data">]?: MessageOf<
      T
    >[K];
  }
  & (T extends "sysex" ? { data?: Iterable<number> | ArrayLike<number> }
    : Record<never, never>);
