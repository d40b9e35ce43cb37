/**
 * `check`: the mail transport, with `start`'s own steps (`createMailer`, then the mailer's
 * `healthCheck`, which sends nothing: SMTP connect, STARTTLS as the policy says, AUTH, then
 * `MAIL FROM` / `RCPT TO` / `RSET`; Mailgun: the key and domain check), and the optional
 * `--send-test` email.
 * @module
 */
import type { Config } from "../config/types.ts";
import { errorMessage, formatError, TeleportEmailError } from "../errors.ts";
import { createMailer, type MailerLog } from "../mailers/create.ts";
import type { Mailer } from "../mailers/mailer.ts";
import type { CheckReport } from "./report.ts";
import { testEmail, type TestEmailContext } from "./test_email.ts";

/** Options of {@link checkMailer}. */
export interface MailerCheckOptions {
  signal: AbortSignal;
  /** Also gets the mailer's info and debug records (with `check -d`). */
  log?: MailerLog;
}

/** `SMTP "host:port"` or `Mailgun domain "mg.example.com"`. */
export function transportName(config: Config): string {
  if (config.smtp) return `SMTP ${JSON.stringify(`${config.smtp.host}:${config.smtp.port}`)}`;
  return `Mailgun domain ${JSON.stringify(config.mailgun?.domain ?? "")}`;
}

/**
 * Builds the mailer and runs its start-up check, with `RCPT TO` for the first `"*"` recipient
 * (SMTP). Prints one line (and a WARN per mailer warning, e.g. a clear-text password). Resolves
 * with the mailer (the caller closes it), or undefined after a FAIL.
 */
export async function checkMailer(
  report: CheckReport,
  config: Config,
  opts: MailerCheckOptions,
): Promise<Mailer | undefined> {
  const name = `mailer: ${transportName(config)}`;
  const log: MailerLog = {
    debug: (m, p) => opts.log?.debug(m, p),
    info: (m, p) => opts.log?.info(m, p),
    warn: (m) => report.warn(`${name}: ${m}`),
  };
  let mailer: Mailer;
  try {
    mailer = await createMailer(config, { log });
  } catch (err) {
    report.fail(
      `${name}: ${errorMessage(err)}`,
      hintOr(err, "check the [smtp] or [mailgun] section"),
    );
    return undefined;
  }
  const recipient = config.smtp ? config.roleToRecipients["*"]?.[0] : undefined;
  try {
    const checked = await mailer.healthCheck({ signal: opts.signal, recipient });
    report.ok(`${name}: ${checked || "checked"}`);
    return mailer;
  } catch (err) {
    report.fail(
      `${name}: ${errorMessage(err)}`,
      hintOr(err, "check the host, port, starttls_policy, ca_file and credentials"),
    );
    await closeQuietly(mailer);
    return undefined;
  }
}

/** Sends the one test email to `address` and prints one line. */
export async function sendTestEmail(
  report: CheckReport,
  mailer: Mailer,
  address: string,
  ctx: TestEmailContext,
  signal: AbortSignal,
): Promise<void> {
  try {
    const sent = await mailer.send(testEmail(address, ctx), { signal });
    const id = sent.messageId ? `, Message-ID ${sent.messageId}` : "";
    report.ok(`test email: sent to ${address} through ${ctx.transport}${id}`);
  } catch (err) {
    report.fail(
      `test email to ${address}: ${errorMessage(err)}`,
      hintOr(err, "see the mailer line; check the address and the server's relay rules"),
    );
  }
}

/** Closes the mailer, ignoring errors. */
export async function closeQuietly(mailer: Mailer | undefined): Promise<void> {
  try {
    await mailer?.close();
  } catch {
    // Nothing to report: the checks are done.
  }
}

function hintOr(err: unknown, fallback: string): string {
  if (err instanceof TeleportEmailError && err.hint) return err.hint;
  return err instanceof TeleportEmailError ? fallback : `${fallback} (${formatError(err)})`;
}
