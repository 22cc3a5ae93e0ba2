/**
 * Errors of RTP-MIDI sessions that a caller may want to catch by class.
 *
 * @module
 */

/** Why an invitation failed, in a word. */
export type InvitationFailure =
  | "refused"
  | "unanswered"
  | "unresolved"
  | "not-admitted";

/**
 * Thrown by `RtpMidiSession.invite` when the invitation fails: the peer
 * refused it (it answered NO, or left before it joined), never answered
 * (the invitation, or the clock exchange that must follow it), its host
 * name does not resolve, or this session's gate did not admit it.
 *
 * @example Telling a refusal from silence
 * ```ts
 * import assert from "node:assert/strict";
 * import { InvitationError } from "@x/midisock/rtp";
 *
 * const error = new InvitationError("192.168.1.20:5004", "refused");
 * assert.equal(error.reason, "refused");
 * assert.equal(error.name, "InvitationError");
 * assert.equal(error.message, "RTP-MIDI peer 192.168.1.20:5004 refused the invitation");
 * ```
 */
export class InvitationError extends Error {
  /** The peer's control address, `host:port`. */
  readonly peer: string;
  /**
   * `"refused"`: it answered NO or left; `"unanswered"`: it never answered;
   * `"unresolved"`: its host name does not resolve; `"not-admitted"`: the
   * gate refused it (the `cause` is the refusal).
   */
  readonly reason: InvitationFailure;

  /**
   * Makes the error.
   *
   * @param peer The peer's control address, `host:port`.
   * @param reason What happened.
   * @param options `cause`, where there is one: the resolver's error, the
   * gate's refusal.
   */
  constructor(
    peer: string,
    reason: InvitationFailure,
    options?: ErrorOptions,
  ) {
    super(invitationMessage(peer, reason, options?.cause), options);
    this.name = "InvitationError";
    this.peer = peer;
    this.reason = reason;
  }
}

function invitationMessage(
  peer: string,
  reason: InvitationFailure,
  cause: unknown,
): string {
  const why = cause instanceof Error
    ? cause.message
    : typeof (cause as { reason?: unknown })?.reason === "string"
    ? (cause as { reason: string }).reason
    : undefined;
  const because = why === undefined ? "" : ` (${why})`;
  switch (reason) {
    case "refused":
      return `RTP-MIDI peer ${peer} refused the invitation`;
    case "unanswered":
      return `RTP-MIDI peer ${peer} did not answer the invitation${because}`;
    case "unresolved":
      return `Cannot invite RTP-MIDI peer ${peer}: its host name does not resolve${because}`;
    case "not-admitted":
      return `RTP-MIDI peer ${peer} was not admitted${because}`;
  }
}

/**
 * Why a participant was dropped when it stopped answering: for too long it
 * did not prove that it still receives (no clock exchange answered). The
 * `cause` of the `PortClosedError` its `receive()` throws afterwards.
 *
 * @example Reading the bound that was passed
 * ```ts
 * import assert from "node:assert/strict";
 * import { ParticipantTimeoutError } from "@x/midisock/rtp";
 *
 * const error = new ParticipantTimeoutError("desk (10.0.0.2:5004)", 30000);
 * assert.equal(error.timeout, 30000);
 * ```
 */
export class ParticipantTimeoutError extends Error {
  /** The participant's name. */
  readonly participant: string;
  /** How long it was silent before it was dropped, in milliseconds. */
  readonly timeout: number;

  /**
   * Makes the error.
   *
   * @param participant The participant's name.
   * @param timeout The silence allowed, in milliseconds.
   */
  constructor(participant: string, timeout: number) {
    super(
      `RTP-MIDI participant ${participant} answered no clock exchange for ${timeout} ms`,
    );
    this.name = "ParticipantTimeoutError";
    this.participant = participant;
    this.timeout = timeout;
  }
}
