import assert from "node:assert/strict";
import { MailerError } from "../errors.ts";
import type { SmtpConfig } from "../config/types.ts";
import { SINK_TLS, withMailer as withSinkMailer } from "../../tests/helpers/smtp_mailer.ts";
import type { SmtpSink, SmtpSinkOptions } from "../../tests/helpers/smtp_sink.ts";
import type { SmtpMailer } from "./smtp.ts";

function withMailer(
  sink: SmtpSinkOptions,
  cfg: Partial<SmtpConfig>,
  fn: (mailer: SmtpMailer, sink: SmtpSink) => Promise<void>,
): Promise<void> {
  return withSinkMailer("Teleport <noreply@example.com>", { sink, cfg }, fn);
}

Deno.test("SmtpMailer.healthCheck() probes MAIL FROM, RCPT TO and RSET and sends nothing", async () => {
  await withMailer({ tls: SINK_TLS }, {}, async (mailer, sink) => {
    const checked = await mailer.healthCheck({ recipient: "ops@example.com" });
    assert.match(
      checked,
      /^STARTTLS \(starttls_policy "mandatory"\), no AUTH, MAIL FROM and RCPT TO ops@example\.com accepted, then RSET/,
    );
    // Each probe has its own connection, closed with QUIT after RSET: a second one works too.
    assert.match(await mailer.healthCheck(), /MAIL FROM accepted/);
    assert.equal(sink.messages.length, 0);
  });
});

Deno.test("SmtpMailer.healthCheck() names the STARTTLS fix for a 530 at MAIL FROM under disabled", async () => {
  await withMailer(
    { tls: SINK_TLS, requireStartTls: true },
    { starttlsPolicy: "disabled" },
    async (mailer) => {
      const err = await mailer.healthCheck().then(() => undefined, (e) => e);
      assert.ok(err instanceof MailerError);
      assert.match(
        err.message,
        /^SMTP server "127\.0\.0\.1:\d+" refused the sender "noreply@example\.com" at MAIL FROM: 530 5\.7\.0 Must issue a STARTTLS command first$/,
      );
      assert.equal(err.code, 530);
      assert.equal(err.retryable, false);
      assert.match(err.hint ?? "", /starttls_policy = "mandatory"/);
    },
  );
});

Deno.test("SmtpMailer.healthCheck() reports a refused RCPT TO with the recipient and a relay hint", async () => {
  const rejectRecipients = new Map([["ops@example.com", {
    code: 554,
    message: "Relay access denied",
  }]]);
  await withMailer({ tls: SINK_TLS, rejectRecipients }, {}, async (mailer) => {
    const err = await mailer.healthCheck({ recipient: "ops@example.com" }).then(
      () => undefined,
      (e) => e,
    );
    assert.ok(err instanceof MailerError);
    assert.match(
      err.message,
      /refused the recipient "ops@example\.com" at RCPT TO: 554 .*Relay access denied/,
    );
    assert.equal(err.recipient, "ops@example.com");
    assert.match(err.hint ?? "", /relay rules/);
  });
});
