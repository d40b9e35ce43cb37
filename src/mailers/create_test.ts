import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { ConfigError } from "../errors.ts";
import type { MailgunConfig, SmtpConfig } from "../config/types.ts";
import { createMailer, type MailerLog } from "./create.ts";
import { SmtpMailer } from "./smtp.ts";
import { MailgunMailer } from "./mailgun.ts";

const smtp: SmtpConfig = {
  host: "127.0.0.1",
  port: 2525,
  username: "alice",
  password: "pw-secret-1234",
  passwordFile: "",
  starttlsPolicy: "mandatory",
  caFile: "",
};
const mailgun: MailgunConfig = {
  domain: "mg.example.com",
  privateKey: "key-secret-5678",
  privateKeyFile: "",
  apiBase: "https://api.eu.mailgun.net/v3",
};
const delivery = { sender: "noreply@example.com", notifyRequester: false };

function recorder() {
  const lines: [string, string, Record<string, unknown> | undefined][] = [];
  const log: MailerLog = {
    debug: (m, p) => void lines.push(["debug", m, p]),
    info: (m, p) => void lines.push(["info", m, p]),
    warn: (m, p) => void lines.push(["warn", m, p]),
  };
  return { log, lines };
}

Deno.test("createMailer() builds SMTP and logs host, port and username", async () => {
  const { log, lines } = recorder();
  const mailer = await createMailer({ smtp, delivery }, { log });
  try {
    assert.ok(mailer instanceof SmtpMailer);
    assert.equal(mailer.kind, "smtp");
    assert.deepEqual(lines, [["info", "Using SMTP as email transport", {
      host: "127.0.0.1",
      port: 2525,
      username: "alice",
    }]]);
  } finally {
    await mailer.close();
  }
});

Deno.test("createMailer() builds Mailgun and logs the domain only", async () => {
  const { log, lines } = recorder();
  const mailer = await createMailer({ mailgun, delivery }, { log });
  assert.ok(mailer instanceof MailgunMailer);
  assert.equal(mailer.kind, "mailgun");
  assert.equal((mailer as MailgunMailer).apiBase, "https://api.eu.mailgun.net/v3");
  assert.deepEqual(lines, [["info", "Using Mailgun as email transport", {
    domain: "mg.example.com",
  }]]);
  assert.ok(!JSON.stringify(lines).includes("key-secret-5678"));
  await mailer.close();
});

Deno.test("createMailer() prefers SMTP with a warning when both are configured", async () => {
  const { log, lines } = recorder();
  const mailer = await createMailer({ smtp, mailgun, delivery }, { log });
  try {
    assert.equal(mailer.kind, "smtp");
    assert.deepEqual(lines.map(([level, m]) => [level, m]), [
      ["warn", "Both [smtp] and [mailgun] are configured; using SMTP"],
      ["info", "Using SMTP as email transport"],
    ]);
  } finally {
    await mailer.close();
  }
});

Deno.test("createMailer() warns once about a clear-text password to a remote host", async () => {
  const { log, lines } = recorder();
  const mailer = await createMailer({
    smtp: { ...smtp, host: "smtp.example.com", starttlsPolicy: "disabled" },
    delivery,
  }, { log });
  try {
    const warnings = lines.filter(([level]) => level === "warn");
    assert.equal(warnings.length, 1);
    assert.match(warnings[0][1], /password is sent in clear text/);
    assert.ok(!JSON.stringify(lines).includes("pw-secret-1234"));
  } finally {
    await mailer.close();
  }
});

Deno.test("createMailer() rejects a config without a transport", async () => {
  await assert.rejects(createMailer({ delivery }), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /provide either \[mailgun\] or \[smtp\] sections/);
    return true;
  });
});

Deno.test("createMailer() accepts a LogTape logger as its log", async () => {
  const log: MailerLog = getLogger(["teleport-email", "test"]);
  const mailer = await createMailer({ mailgun, delivery }, { log });
  assert.equal(mailer.kind, "mailgun");
  await mailer.close();
});
