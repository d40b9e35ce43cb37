/**
 * Whether the plugin can do its job right now, for `GET /readyz` and the `teleport_email_ready`
 * gauge. Ready means all of:
 *
 * - the mailer passed its start-up health check;
 * - the watch stream is open and its INIT event arrived (not starting, not reconnecting);
 * - the last {@link FAILED_SENDS_UNREADY} send attempts did not all fail (any success resets
 *   the count, so one bad recipient among working ones never makes the plugin unready).
 *
 * Pure state, no I/O: fed by the observer calls of `metrics.ts`.
 * @module
 */

/**
 * Consecutive failed send attempts after which the plugin reports itself not ready. One email
 * is tried up to three times, so five is about two emails in a row that could not be sent:
 * enough to rule out one bad recipient, few enough to show a broken mail server within a
 * request or two.
 */
export const FAILED_SENDS_UNREADY = 5;

/** The answer of {@link Readiness.status}: `reason` is one line, empty when ready. */
export interface ReadinessStatus {
  ready: boolean;
  reason: string;
}

/** See the module documentation. */
export class Readiness {
  #mailerChecked = false;
  #watching = false;
  #everWatched = false;
  #lostReason = "";
  #failedSends = 0;
  #lastFailure: "temporary" | "permanent" = "temporary";
  readonly #threshold: number;

  constructor(opts: { failedSendsUnready?: number } = {}) {
    this.#threshold = Math.max(1, opts.failedSendsUnready ?? FAILED_SENDS_UNREADY);
  }

  /** The mailer's start-up health check passed. */
  mailerChecked(): void {
    this.#mailerChecked = true;
  }

  /** An INIT event arrived on a (re)opened watch stream. */
  watching(): void {
    this.#watching = true;
    this.#everWatched = true;
    this.#lostReason = "";
  }

  /** The watch stream was lost; the watcher is reconnecting. */
  reconnecting(reason: string): void {
    this.#watching = false;
    this.#lostReason = oneLine(reason);
  }

  /** One send attempt succeeded. */
  sendSucceeded(): void {
    this.#failedSends = 0;
  }

  /** One send attempt failed. */
  sendFailed(reason: "temporary" | "permanent"): void {
    this.#failedSends++;
    this.#lastFailure = reason;
  }

  /** Ready or not, and why not. */
  status(): ReadinessStatus {
    if (!this.#mailerChecked) {
      return { ready: false, reason: "starting: connecting to Teleport and checking the mailer" };
    }
    if (!this.#everWatched) {
      return { ready: false, reason: "starting: waiting for the watch stream's INIT event" };
    }
    if (!this.#watching) {
      return {
        ready: false,
        reason: `reconnecting to Teleport${this.#lostReason ? `: ${this.#lostReason}` : ""}`,
      };
    }
    if (this.#failedSends >= this.#threshold) {
      return {
        ready: false,
        reason:
          `the last ${this.#failedSends} email send attempts all failed (last failure: ${this.#lastFailure})`,
      };
    }
    return { ready: true, reason: "" };
  }
}

/** At most 200 characters on one line (a reason may quote a multi-line error). */
function oneLine(s: string): string {
  const line = s.replace(/\s*[\r\n]+\s*/g, " ").trim();
  return line.length > 200 ? `${line.slice(0, 199)}…` : line;
}
