/**
 * An `SmtpMailer` against a local {@link SmtpSink}, for the mailer's unit tests: one test CA whose
 * certificate the sink presents and the mailer trusts, and an `[smtp]` configuration for
 * `127.0.0.1` with the defaults those tests start from.
 * @module
 */
import type { SmtpConfig } from "../../src/config/types.ts";
import { SmtpMailer, type SmtpMailerOptions } from "../../src/mailers/smtp.ts";
import { createTestTls, SmtpSink, type SmtpSinkOptions } from "./smtp_sink.ts";

/** The test CA and its server certificate for `127.0.0.1` and `localhost`. */
export const TLS = await createTestTls();
/** {@link TLS}'s certificate as the sink's `tls` option. */
export const SINK_TLS = { key: TLS.keyPem, cert: TLS.certPem };

/** `[smtp]` for `host:port` (default `127.0.0.1`): no credentials, STARTTLS mandatory. */
export function smtpConfig(port: number, over: Partial<SmtpConfig> = {}): SmtpConfig {
  return {
    host: "127.0.0.1",
    port,
    username: "",
    password: "",
    passwordFile: "",
    starttlsPolicy: "mandatory",
    caFile: "",
    ...over,
  };
}

/** What {@link withMailer} starts: the sink's options, `[smtp]` changes, mailer options. */
export interface MailerCase {
  sink?: SmtpSinkOptions;
  cfg?: Partial<SmtpConfig>;
  /** Mailer options; `ca` defaults to {@link TLS}'s CA. */
  opts?: SmtpMailerOptions;
}

/** Runs `fn` with a sink and a mailer from `sender` for it; closes both. */
export async function withMailer(
  sender: string,
  c: MailerCase,
  fn: (mailer: SmtpMailer, sink: SmtpSink) => Promise<void>,
): Promise<void> {
  const sink = await SmtpSink.start(c.sink);
  const mailer = new SmtpMailer(smtpConfig(sink.port, c.cfg), sender, {
    ca: TLS.caPem,
    ...c.opts,
  });
  try {
    await fn(mailer, sink);
  } finally {
    await mailer.close();
    await sink.close();
  }
}
