/**
 * The error of a failed SMTP step, in nodemailer's shape (`code`, `responseCode`, `response`,
 * `command`), which `smtp.ts` classifies. The codes: `ESOCKET` (connect, TLS, I/O), `ETIMEDOUT`,
 * `ECONNECTION` (closed by the server), `EDNS`, `EPROTOCOL` (greeting, EHLO), `ETLS` (STARTTLS),
 * `EAUTH`, `EENVELOPE` (MAIL FROM, RCPT TO), `EMESSAGE` (DATA), `EABORT` (cancelled).
 * @module
 */

/** A failure of an SMTP step, in nodemailer's shape (see the module documentation). */
export class SmtpError extends Error {
  readonly code: string;
  readonly responseCode?: number;
  readonly response?: string;
  readonly command?: string;

  constructor(
    message: string,
    o: {
      code: string;
      responseCode?: number;
      response?: string;
      command?: string;
      cause?: unknown;
    },
  ) {
    super(message, o.cause === undefined ? undefined : { cause: o.cause });
    this.name = "SmtpError";
    this.code = o.code;
    this.responseCode = o.responseCode;
    this.response = o.response;
    this.command = o.command;
  }
}
