/**
 * Errors of RTP-MIDI sessions that a caller may want to catch by class.
 *
 * @module
 */

/**
 * Thrown by `RtpMidiSession.invite` when the peer refused the invitation
 * (it answered NO) or never answered any of the attempts.
 *
 * @example Telling a refusal from silence
 * ```ts
 * import assert from "node:assert/strict";
 * import { InvitationError } from "@x/midisock/rtp";
 *
 * const error = new InvitationError("192.168.1.20:5004", "refused");
 * assert.equal(error.reason, "refused");
 * assert.equal(error.name, "InvitationError");
 * ```
 */
export class InvitationError extends Error {
  /** The peer's control address, `host:port`. */
  readonly peer: string;
  /** `"refused"`: it answered NO; `"unanswered"`: it never answered. */
  readonly reason: "refused" | "unanswered";

  /**
   * Makes the error.
   *
   * @param peer The peer's control address, `host:port`.
   * @param reason What happened.
   * @param options `cause`, where there is one.
   */
  constructor(
    peer: string,
    reason: "refused" | "unanswered",
    options?: ErrorOptions,
  ) {
    super(
      reason === "refused"
        ? `RTP-MIDI peer ${peer} refused the invitation`
        : `RTP-MIDI peer ${peer} did not answer the invitation`,
      options,
    );
    this.name = "InvitationError";
    this.peer = peer;
    this.reason = reason;
  }
}

/**
 * Why a participant was dropped when it stopped answering: the `cause` of
 * the `PortClosedError` its `receive()` throws afterwards.
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
      `RTP-MIDI participant ${participant} sent nothing for ${timeout} ms`,
    );
    this.name = "ParticipantTimeoutError";
    this.participant = participant;
    this.timeout = timeout;
  }
}
