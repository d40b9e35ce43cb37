/**
 * The mail transport interface. Templates build the content; a mailer only delivers it.
 * Implementations: `smtp.ts` (nodemailer) and `mailgun.ts`.
 */
import type { EmailKind } from "../templates/common.ts";

export type { EmailKind };

/**
 * Headers on every email, whatever the transport: it is machine-generated (RFC 3834
 * `Auto-Submitted`), so vacation responders and auto-replies must not answer the sender
 * (`X-Auto-Response-Suppress` is the Exchange/Outlook form of the same request).
 */
export const AUTOMATED_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "Auto-Submitted": "auto-generated",
  "X-Auto-Response-Suppress": "All",
});

/**
 * Default size of the SMTP connection pool (`SmtpMailerOptions.maxConnections` in `smtp.ts`).
 * Here rather than in `smtp.ts`, so that `app.ts` can read it without loading nodemailer.
 */
export const DEFAULT_SMTP_MAX_CONNECTIONS = 5;

export interface OutgoingEmail {
  /** One bare recipient address. */
  to: string;
  subject: string;
  text: string;
  html: string;
  /**
   * The stored Message-ID of the thread's first email, for `In-Reply-To` and `References`.
   * Stored IDs may come with or without angle brackets (Go SMTP: without; Mailgun: with);
   * the mailer adds one pair only when missing.
   */
  inReplyTo?: string;
  /**
   * Which email this is (`new`, `review`, `resolution`), as the template set it; for metrics
   * only, not sent.
   */
  kind?: EmailKind;
}

export interface SentEmail {
  /** The ID to store in plugin data for threading (SMTP: without brackets; Mailgun: as returned). */
  messageId: string;
}

export interface Mailer {
  readonly kind: "smtp" | "mailgun";
  /** Sends one email. Throws {@link MailerError} (with `retryable`) on failure. */
  send(email: OutgoingEmail, opts?: { signal?: AbortSignal }): Promise<SentEmail>;
  /**
   * Start-up check that sends nothing: SMTP connect, TLS, AUTH, then `MAIL FROM` (and
   * `RCPT TO opts.recipient` when given) and `RSET`; Mailgun: key and domain (`recipient` is
   * not used). Resolves with a one-line description of what was checked (or nothing). Throws
   * MailerError.
   */
  healthCheck(opts?: { signal?: AbortSignal; recipient?: string }): Promise<string | void>;
  /** Closes pooled connections. */
  close(): Promise<void>;
}
