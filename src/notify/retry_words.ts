/**
 * The `retry` attribute of the failure log lines: in words, whether a failed send (or a failed
 * request) will be tried again, and when, or why not. Pure, so the wording is tested alone.
 *
 * - `Failed send one or more messages` (handler): per email, permanent (never retried: the
 *   recipient is marked as failed) or temporary (retried with the request);
 * - `Failed to process request` (engine): when the request is retried, or that timed retries
 *   ran out and the periodic catch-up (every 5 min) or the request's next event retries it.
 */
import { MailerError } from "../errors.ts";

/** A send that failed for good: the recipient or thread is marked as handled. */
export const PERMANENT = "no: permanent failure, will not be retried";
/** A send that failed for now: the request fails and the engine retries it. */
export const TEMPORARY =
  'yes: temporary failure, the request will be retried ("Failed to process request" says when)';

/** Whether another attempt may deliver the email that failed with `err`. */
function isTemporary(err: Error): boolean {
  return !(err instanceof MailerError) || err.retryable;
}

/**
 * The `retry` of `Failed send one or more messages`: {@link PERMANENT} or {@link TEMPORARY}
 * when all failures agree, else one `recipient: yes|no (…)` per failure.
 */
export function sendFailureRetry(errors: readonly Error[]): string {
  const temporary = errors.map(isTemporary);
  if (temporary.every((t) => !t)) return PERMANENT;
  if (temporary.every((t) => t)) return TEMPORARY;
  return errors.map((err, i) => {
    const who = err instanceof MailerError && err.recipient ? err.recipient : "an email";
    return temporary[i]
      ? `${who}: yes (temporary failure, retried with the request)`
      : `${who}: no (permanent failure)`;
  }).join("; ");
}

/** `1.5 s`, `42 s`, `4.5 min`. */
export function formatDelay(ms: number): string {
  if (ms < 10_000) return `${(Math.max(0, ms) / 1000).toFixed(1)} s`;
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  return `${(ms / 60_000).toFixed(1)} min`;
}

/**
 * The `retry` of `Failed to process request` when a retry is scheduled: `yes, in 1.5 s at
 * 2026-12-06T19:00:01.500Z (retry 1 of 30)`.
 */
export function retryScheduled(delayMs: number, now: Date, retry: number, max: number): string {
  const at = new Date(now.getTime() + delayMs).toISOString();
  return `yes, in ${formatDelay(delayMs)} at ${at} (retry ${retry} of ${max})`;
}

/** The `retry` of `Failed to process request` once the timed retries ran out. */
export function retriesExhausted(max: number): string {
  return `not on a timer any more (${max} retries failed): the periodic catch-up (every 5 min) or the request's next event retries it`;
}

/** The `retry` of `Failed to process request` for an error no retry can fix. */
export const NOT_RETRIED = "no: retrying cannot help; the request's next event retries it";
