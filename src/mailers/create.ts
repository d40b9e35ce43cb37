/**
 * Picks and builds the configured mail transport (`[smtp]` or `[mailgun]`, never both: the
 * config loader refuses that), and logs which one. Loads only that transport's module: `smtp.ts`
 * (with nodemailer: about 3 MiB of idle resident memory measured) or `mailgun.ts`, each by a dynamic
 * `import()` with a literal specifier, so that `deno compile` still embeds both. This module
 * imports their types only.
 */

import type { DeliveryConfig, MailgunConfig, SmtpConfig } from "../config/types.ts";
import { ConfigError } from "../errors.ts";
import type { Mailer } from "./mailer.ts";
import type { MailerLog, SmtpMailerOptions } from "./smtp.ts";
import type { MailgunMailerOptions } from "./mailgun.ts";

export type { MailerLog } from "./smtp.ts";

/** The parts of `Config` a mailer needs. */
export interface MailerConfig {
  smtp?: SmtpConfig;
  mailgun?: MailgunConfig;
  delivery: DeliveryConfig;
}

/** Options of {@link createMailer}. */
export interface CreateMailerOptions {
  /**
   * Gets `Using SMTP as email transport` (host, port, username) or
   * `Using Mailgun as email transport` (domain) at info level, and the clear-text password
   * warning (SMTP with `starttls_policy = "disabled"` to a non-loopback host) at warn level.
   */
  log?: MailerLog;
  /** Passed to `SmtpMailer` (tests: `implicitTls`, `ca`, timeouts). */
  smtp?: Omit<SmtpMailerOptions, "log">;
  /** Passed to `MailgunMailer`. */
  mailgun?: MailgunMailerOptions;
}

/**
 * Builds the mailer for `cfg`: SMTP when `[smtp]` is set, else Mailgun. If both are set (the
 * validated config should not allow it), SMTP wins as in the Go plugin and a warning is logged.
 * Rejects with ConfigError for an unusable transport setting (`smtp.ca_file`, `mailgun.domain`)
 * or when neither is configured. Connects to nothing: call `healthCheck()` next.
 */
export async function createMailer(
  cfg: MailerConfig,
  opts: CreateMailerOptions = {},
): Promise<Mailer> {
  const log = opts.log;
  if (cfg.smtp) {
    if (cfg.mailgun) {
      log?.warn("Both [smtp] and [mailgun] are configured; using SMTP");
    }
    log?.info("Using SMTP as email transport", {
      host: cfg.smtp.host,
      port: cfg.smtp.port,
      username: cfg.smtp.username,
    });
    const { SmtpMailer } = await import("./smtp.ts");
    return new SmtpMailer(cfg.smtp, cfg.delivery.sender, { ...opts.smtp, log });
  }
  if (cfg.mailgun) {
    log?.info("Using Mailgun as email transport", { domain: cfg.mailgun.domain });
    const { MailgunMailer } = await import("./mailgun.ts");
    return new MailgunMailer(cfg.mailgun, cfg.delivery.sender, opts.mailgun);
  }
  throw new ConfigError("smtp", "provide either [mailgun] or [smtp] sections");
}
