/**
 * A {@link Mailer} decorator that reports to a {@link PluginObserver}: every send attempt (its
 * kind, duration, and for a failure whether it is temporary or permanent) and a passed health
 * check. The wrapped mailer's behaviour is unchanged: results and errors pass through.
 * @module
 */
import { MailerError } from "../errors.ts";
import type { Mailer, OutgoingEmail, SentEmail } from "../mailers/mailer.ts";
import type { PluginObserver, SendFailure } from "./observer.ts";

/**
 * Classifies a failed send: a non-retryable {@link MailerError} is permanent, anything else
 * (retryable errors, deadlines, unexpected errors) temporary. `undefined` when the attempt was
 * cut short by the caller (shutdown), which says nothing about the mail server.
 */
export function sendFailure(err: unknown, signal?: AbortSignal): SendFailure | undefined {
  if (err instanceof MailerError && !err.retryable) return "permanent";
  if (signal?.aborted && (signal.reason as Error | undefined)?.name !== "TimeoutError") {
    return undefined;
  }
  return "temporary";
}

/** Wraps `mailer` so that its sends and health check are reported to `observer`. */
export function instrumentMailer(
  mailer: Mailer,
  observer: PluginObserver,
  clock: () => number = () => performance.now(),
): Mailer {
  return {
    kind: mailer.kind,
    async send(email: OutgoingEmail, opts?: { signal?: AbortSignal }): Promise<SentEmail> {
      const started = clock();
      try {
        const sent = await mailer.send(email, opts);
        observer.emailSent(email.kind, (clock() - started) / 1000);
        return sent;
      } catch (err) {
        const reason = sendFailure(err, opts?.signal);
        if (reason !== undefined) {
          observer.sendFailed(email.kind, reason, (clock() - started) / 1000);
        }
        throw err;
      }
    },
    async healthCheck(opts?: { signal?: AbortSignal }): Promise<void> {
      await mailer.healthCheck(opts);
      observer.mailerChecked();
    },
    close: () => mailer.close(),
  };
}
