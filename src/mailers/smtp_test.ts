import assert from "node:assert/strict";
import { ConfigError, MailerError } from "../errors.ts";
import { type SinkMessage, SmtpSink, type SmtpSinkOptions } from "../../tests/helpers/smtp_sink.ts";
import {
  type MailerCase,
  SINK_TLS,
  smtpConfig,
  TLS,
  withMailer as withSinkMailer,
} from "../../tests/helpers/smtp_mailer.ts";
import { SmtpMailer } from "./smtp.ts";
import type { OutgoingEmail } from "./mailer.ts";

const USER = "alice";
const PASSWORD = "correct-horse-battery-staple";
const SENDER = "Teleport Access <noreply@example.com>";
const email: OutgoingEmail = {
  to: "bob@example.com",
  subject: "Access request",
  text: "plain body",
  html: "<p>html body</p>",
};

/** Runs `fn` with a sink and a mailer for it; closes both. */
function withMailer(
  c: MailerCase,
  fn: (mailer: SmtpMailer, sink: SmtpSink) => Promise<void>,
): Promise<void> {
  return withSinkMailer(SENDER, c, fn);
}

const withAuth = { username: USER, password: PASSWORD };
const authCfg = { username: USER, password: PASSWORD };

/** Awaits a MailerError and checks that no form of the password leaks into it. */
async function rejectsMailer(p: Promise<unknown>): Promise<MailerError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof MailerError, `expected MailerError, got ${err}`);
    const b64 = btoa(PASSWORD);
    const plain = btoa(`\u0000${USER}\u0000${PASSWORD}`);
    for (const text of [err.message, err.hint ?? "", String(err.cause ?? "")]) {
      for (const secret of [PASSWORD, b64, plain]) {
        assert.ok(!text.includes(secret), `secret in error text: ${text}`);
      }
    }
    return err;
  }
  assert.fail("expected a MailerError");
}

function header(msg: SinkMessage, name: string): string | undefined {
  return msg.headers.get(name.toLowerCase());
}

Deno.test("SmtpMailer.send() delivers in plain text with starttls_policy disabled", async () => {
  await withMailer({ cfg: { starttlsPolicy: "disabled" } }, async (mailer, sink) => {
    const sent = await mailer.send(email);
    const [msg] = await sink.waitFor(1);
    assert.equal(msg.secure, false);
    assert.deepEqual(msg.envelope, { from: "noreply@example.com", to: ["bob@example.com"] });
    assert.equal(header(msg, "From"), "Teleport Access <noreply@example.com>");
    assert.equal(header(msg, "To"), "bob@example.com");
    assert.equal(msg.subject, "Access request");
    assert.equal(header(msg, "Message-ID"), `<${sent.messageId}>`);
    assert.match(sent.messageId, /^[0-9A-Z]+\.[0-9A-Z]+@[a-z0-9.-]+$/);
    assert.ok(header(msg, "Date"));
    assert.equal(header(msg, "In-Reply-To"), undefined);
    assert.equal(header(msg, "References"), undefined);
  });
});

Deno.test("SmtpMailer.send() uses STARTTLS and AUTH with starttls_policy mandatory", async () => {
  await withMailer(
    { sink: { tls: SINK_TLS, auth: withAuth }, cfg: authCfg },
    async (mailer, sink) => {
      await mailer.send(email);
      const [msg] = await sink.waitFor(1);
      assert.equal(msg.secure, true);
      assert.equal(msg.user, USER);
      assert.deepEqual(sink.authAttempts.map((a) => a.ok), [true]);
    },
  );
});

Deno.test("SmtpMailer.send() fails permanently when mandatory STARTTLS is not offered", async () => {
  await withMailer({ cfg: { starttlsPolicy: "mandatory" } }, async (mailer, sink) => {
    const err = await rejectsMailer(mailer.send(email));
    assert.equal(err.retryable, false);
    assert.equal(err.recipient, "bob@example.com");
    assert.match(
      err.message,
      /Cannot send email to "bob@example.com" via SMTP server "127\.0\.0\.1:\d+"/,
    );
    assert.match(err.message, /does not support STARTTLS, which smtp.starttls_policy "mandatory"/);
    assert.match(err.hint ?? "", /opportunistic/);
    const health = await rejectsMailer(mailer.healthCheck());
    assert.equal(health.retryable, false);
    assert.match(
      health.message,
      /^Cannot connect to SMTP server "127\.0\.0\.1:\d+": the server does not support STARTTLS/,
    );
    assert.equal(sink.messages.length, 0);
  });
});

Deno.test("SmtpMailer.send() upgrades opportunistically when STARTTLS is offered", async () => {
  await withMailer(
    { sink: { tls: SINK_TLS }, cfg: { starttlsPolicy: "opportunistic" } },
    async (mailer, sink) => {
      await mailer.send(email);
      assert.equal((await sink.waitFor(1))[0].secure, true);
    },
  );
});

Deno.test("SmtpMailer.send() stays in plain text opportunistically when STARTTLS is not offered", async () => {
  await withMailer({ cfg: { starttlsPolicy: "opportunistic" } }, async (mailer, sink) => {
    await mailer.healthCheck();
    await mailer.send(email);
    assert.equal((await sink.waitFor(1))[0].secure, false);
  });
});

Deno.test("SmtpMailer.send() with an untrusted certificate fails without falling back to plain text", async () => {
  await withMailer(
    { sink: { tls: SINK_TLS }, cfg: { starttlsPolicy: "opportunistic" }, opts: { ca: undefined } },
    async (mailer, sink) => {
      const err = await rejectsMailer(mailer.send(email));
      assert.equal(err.retryable, false);
      assert.match(err.message, /TLS certificate check failed/);
      assert.match(err.hint ?? "", /smtp\.ca_file/);
      assert.equal(sink.messages.length, 0);
    },
  );
});

Deno.test("SmtpMailer.send() trusts the CA from smtp.ca_file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const caFile = `${dir}/ca.pem`;
    await Deno.writeTextFile(caFile, TLS.caPem);
    await withMailer(
      { sink: { tls: SINK_TLS }, cfg: { caFile }, opts: { ca: undefined } },
      async (mailer, sink) => {
        await mailer.send(email);
        assert.equal((await sink.waitFor(1))[0].secure, true);
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SmtpMailer rejects an unreadable or empty smtp.ca_file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const cfg = smtpConfig(2525, { caFile: `${dir}/missing.pem` });
    assert.throws(() => new SmtpMailer(cfg, SENDER), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.key, "smtp.ca_file");
      assert.match(err.message, /Cannot read "smtp.ca_file" ".*missing.pem": file not found/);
      return true;
    });
    await Deno.writeTextFile(`${dir}/empty.pem`, "not a certificate\n");
    assert.throws(
      () => new SmtpMailer({ ...cfg, caFile: `${dir}/empty.pem` }, SENDER),
      /no PEM certificate found/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SmtpMailer.send() uses implicit TLS (port 465 style) regardless of starttls_policy", async () => {
  await withMailer(
    {
      sink: { tls: SINK_TLS, implicitTls: true, auth: withAuth },
      cfg: { ...authCfg, starttlsPolicy: "disabled" },
      opts: { implicitTls: true },
    },
    async (mailer, sink) => {
      await mailer.healthCheck();
      await mailer.send(email);
      const [msg] = await sink.waitFor(1);
      assert.equal(msg.secure, true);
      assert.equal(msg.user, USER);
    },
  );
});

Deno.test("SmtpMailer.send() with a wrong password fails permanently without leaking it", async () => {
  await withMailer(
    {
      sink: { tls: SINK_TLS, auth: withAuth },
      cfg: { username: USER, password: "wrong-password" },
    },
    async (mailer, sink) => {
      const err = await rejectsMailer(mailer.send(email));
      assert.equal(err.retryable, false);
      assert.equal(err.code, 535);
      assert.match(err.message, /authentication as "alice" failed/);
      assert.ok(!err.message.includes("wrong-password"));
      assert.match(err.hint ?? "", /smtp\.password/);
      const health = await rejectsMailer(mailer.healthCheck());
      assert.equal(health.code, 535);
      assert.equal(health.retryable, false);
      assert.ok(!health.message.includes("wrong-password"));
      assert.equal(sink.messages.length, 0);
    },
  );
});

Deno.test("SmtpMailer.send() threads follow-ups with exactly one pair of brackets", async () => {
  await withMailer({ cfg: { starttlsPolicy: "disabled" } }, async (mailer, sink) => {
    const first = await mailer.send(email);
    assert.ok(!first.messageId.includes("<") && !first.messageId.includes(">"));
    await mailer.send({ ...email, inReplyTo: first.messageId });
    await mailer.send({ ...email, inReplyTo: `<${first.messageId}>` });
    await mailer.send({ ...email, inReplyTo: "<<mailgun-id@mg.example.com>>" });
    const [, bare, once, twice] = await sink.waitFor(4);
    for (const msg of [bare, once]) {
      assert.equal(header(msg, "In-Reply-To"), `<${first.messageId}>`);
      assert.equal(header(msg, "References"), `<${first.messageId}>`);
      assert.equal(msg.inReplyTo, `<${first.messageId}>`);
    }
    assert.equal(header(twice, "In-Reply-To"), "<mailgun-id@mg.example.com>");
    assert.equal(header(twice, "References"), "<mailgun-id@mg.example.com>");
  });
});

Deno.test("SmtpMailer.send() sends multipart/alternative with text and HTML in UTF-8", async () => {
  await withMailer({ cfg: { starttlsPolicy: "disabled" } }, async (mailer, sink) => {
    await mailer.send({ ...email, text: "Grüße, 日本", html: "<p>Grüße, 日本</p>" });
    const [msg] = await sink.waitFor(1);
    assert.match(header(msg, "Content-Type") ?? "", /^multipart\/alternative;/);
    assert.match(msg.raw, /Content-Type: text\/plain; charset=utf-8/i);
    assert.match(msg.raw, /Content-Type: text\/html; charset=utf-8/i);
    assert.equal(msg.text?.trim(), "Grüße, 日本");
    assert.equal(msg.html?.trim(), "<p>Grüße, 日本</p>");
  });
});

Deno.test("SmtpMailer.send() encodes a non-ASCII subject per RFC 2047", async () => {
  await withMailer({ cfg: { starttlsPolicy: "disabled" } }, async (mailer, sink) => {
    const subject = "Zugriffsanfrage für Ünïcødé ✓ — approved";
    await mailer.send({ ...email, subject });
    const [msg] = await sink.waitFor(1);
    assert.equal(msg.subject, subject);
    assert.match(header(msg, "Subject") ?? "", /^=\?UTF-8\?[QB]\?/i);
    assert.ok(!/[^\t\r\n -~]/.test(msg.rawHeaders), "raw headers must be ASCII");
  });
});

Deno.test("SmtpMailer.send() writes a non-ASCII sender name and IDN domains as nodemailer does", async () => {
  // Values only nodemailer's MIME node encodes: the mailer loads it for them.
  await withSinkMailer(
    "Téléport <noreply@exämple.com>",
    { cfg: { starttlsPolicy: "disabled" } },
    async (mailer, sink) => {
      await mailer.send({ ...email, to: "bob@bücher.example" });
      await mailer.send({ ...email, to: "Carol@Example.COM" });
      const [idn, upper] = await sink.waitFor(2);
      // The sink (smtp-server) reports envelope domains decoded from punycode.
      assert.equal(idn.envelope.from, "noreply@exämple.com");
      assert.deepEqual(idn.envelope.to, ["bob@bücher.example"]);
      assert.equal(
        header(idn, "From"),
        "=?UTF-8?Q?T=C3=A9l=C3=A9port?= <noreply@xn--exmple-cua.com>",
      );
      assert.deepEqual(upper.envelope.to, ["Carol@example.com"]);
      assert.equal(header(upper, "To"), "Carol@example.com");
    },
  );
});

Deno.test("SmtpMailer.send() cannot be made to inject headers through CR/LF in the subject", async () => {
  await withMailer({ cfg: { starttlsPolicy: "disabled" } }, async (mailer, sink) => {
    await mailer.send({ ...email, subject: "Hi\r\nBcc: evil@example.com\r\n\r\nbody" });
    const [msg] = await sink.waitFor(1);
    assert.equal(header(msg, "Bcc"), undefined);
    assert.equal(msg.subject, "Hi Bcc: evil@example.com body");
    assert.deepEqual(msg.envelope.to, ["bob@example.com"]);
  });
});

Deno.test("SmtpMailer.send() rejects a recipient list or a header in the address", async () => {
  await withMailer({ cfg: { starttlsPolicy: "disabled" } }, async (mailer, sink) => {
    for (
      const to of ["a@example.com, b@example.com", "a@example.com\r\nBcc: c@example.com", "nobody"]
    ) {
      const err = await rejectsMailer(mailer.send({ ...email, to }));
      assert.equal(err.retryable, false);
      assert.equal(err.code, "EINVALIDRECIPIENT");
      assert.match(err.message, /^Invalid recipient address/);
    }
    assert.equal(sink.connections, 0);
  });
});

Deno.test("SmtpMailer.send() delivers a 100 KB body intact", async () => {
  await withMailer({ cfg: { starttlsPolicy: "disabled" } }, async (mailer, sink) => {
    const line = "0123456789 abcdefghijklmnopqrstuvwxyz ÄÖÜ äöü ß ".repeat(2) + "\n";
    const text = line.repeat(Math.ceil(100_000 / line.length));
    await mailer.send({ ...email, text, html: `<pre>${text}</pre>` });
    const [msg] = await sink.waitFor(1);
    assert.ok(text.length >= 100_000);
    assert.equal(msg.text?.trimEnd(), text.trimEnd());
  });
});

Deno.test("SmtpMailer.send() keeps lines that start with a dot, and a lone dot, intact", async () => {
  // The second address is too long for a plain header line: nodemailer's composer builds it.
  for (const to of ["bob@example.com", `${"b".repeat(60)}@example.com`]) {
    await withMailer({ cfg: { starttlsPolicy: "disabled" } }, async (mailer, sink) => {
      const text = "Reason:\n.\n.hidden\n..two\nend.\n";
      await mailer.send({ ...email, to, text, html: "<p>.</p>\n.\n<p>x</p>" });
      const [msg] = await sink.waitFor(1);
      assert.equal(msg.text?.trimEnd(), text.trimEnd(), to);
      assert.match(msg.html ?? "", /^<p>\.<\/p>\n\.\n<p>x<\/p>/, to);
    });
  }
});

Deno.test("SmtpMailer.send() reports a 550 recipient rejection as permanent", async () => {
  const reject = new Map([["bob@example.com", { code: 550, message: "No such user here" }]]);
  await withMailer(
    { sink: { rejectRecipients: reject }, cfg: { starttlsPolicy: "disabled" } },
    async (mailer) => {
      const err = await rejectsMailer(mailer.send(email));
      assert.equal(err.retryable, false);
      assert.equal(err.code, 550);
      assert.equal(err.recipient, "bob@example.com");
      assert.match(err.message, /550 No such user here/);
    },
  );
});

Deno.test("SmtpMailer.send() reports 451 as retryable and recovers on the next send", async () => {
  await withMailer({ cfg: { starttlsPolicy: "disabled" } }, async (mailer, sink) => {
    sink.failNext(1, 451);
    const rcpt = await rejectsMailer(mailer.send(email));
    assert.equal(rcpt.retryable, true);
    assert.equal(rcpt.code, 451);
    sink.failNext(1, 452, { stage: "data", message: "Insufficient storage" });
    const data = await rejectsMailer(mailer.send(email));
    assert.equal(data.retryable, true);
    assert.equal(data.code, 452);
    assert.match(data.message, /Insufficient storage/);
    await mailer.send(email);
    assert.equal((await sink.waitFor(1)).length, 1);
  });
});

Deno.test("SmtpMailer.send() to a server without PIPELINING sends one command at a time", async () => {
  const reject = new Map([["bob@example.com", { code: 550, message: "No such user here" }]]);
  await withMailer(
    {
      sink: { hidePipelining: true, rejectRecipients: reject, tls: SINK_TLS, auth: withAuth },
      cfg: authCfg,
    },
    async (mailer, sink) => {
      const refused = await rejectsMailer(mailer.send(email));
      assert.equal(refused.code, 550);
      assert.equal(refused.retryable, false);
      sink.failNext(1, 451);
      const later = await rejectsMailer(mailer.send({ ...email, to: "carol@example.com" }));
      assert.equal(later.code, 451);
      await mailer.send({ ...email, to: "dave@example.com" });
      const [msg] = await sink.waitFor(1);
      assert.deepEqual(msg.envelope.to, ["dave@example.com"]);
      assert.equal(msg.secure, true);
      assert.equal(sink.connections, 1, "refusals leave the connection usable");
    },
  );
});

Deno.test("SmtpMailer picks the AUTH mechanism as the Go plugin's mail library does", async () => {
  // CRAM-MD5 when offered; LOGIN when offered without PLAIN; else PLAIN.
  const cases = [
    [["PLAIN", "LOGIN"], "PLAIN"],
    [["LOGIN"], "LOGIN"],
    [["PLAIN", "LOGIN", "CRAM-MD5"], "CRAM-MD5"],
    [["CRAM-MD5"], "CRAM-MD5"],
  ] as const;
  for (const [offered, method] of cases) {
    await withMailer(
      { sink: { tls: SINK_TLS, auth: withAuth, authMethods: [...offered] }, cfg: authCfg },
      async (mailer, sink) => {
        await mailer.send(email);
        assert.equal((await sink.waitFor(1))[0].user, USER);
        assert.deepEqual(sink.authAttempts, [{ user: USER, method, ok: true }], offered.join());
      },
    );
  }
  await withMailer(
    {
      sink: { tls: SINK_TLS, auth: withAuth, authMethods: ["LOGIN"] },
      cfg: { ...authCfg, password: "wrong" },
    },
    async (mailer) => {
      const err = await rejectsMailer(mailer.send(email));
      assert.equal(err.retryable, false);
      assert.match(err.message, /authentication as "alice" failed/);
    },
  );
});

/** A mailer to `host` at the port of a sink that has closed: nothing listens there. */
async function mailerToClosedPort(host: string): Promise<{ mailer: SmtpMailer; port: number }> {
  const sink = await SmtpSink.start();
  const port = sink.port;
  await sink.close();
  return {
    mailer: new SmtpMailer(smtpConfig(port, { host, starttlsPolicy: "disabled" }), SENDER),
    port,
  };
}

Deno.test("SmtpMailer.send() to a server that is down is a retryable socket error", async () => {
  const { mailer, port } = await mailerToClosedPort("127.0.0.1");
  try {
    const err = await rejectsMailer(mailer.send(email));
    assert.equal(err.retryable, true);
    assert.equal(err.code, "ESOCKET");
    assert.match(err.message, /ECONNREFUSED/);
    const health = await rejectsMailer(mailer.healthCheck());
    assert.equal(health.retryable, true);
    assert.match(health.message, new RegExp(`^Cannot connect to SMTP server "127.0.0.1:${port}"`));
  } finally {
    await mailer.close();
  }
});

Deno.test("SmtpMailer names each address of a host name that resolves to several (localhost) and why each failed", async () => {
  const { mailer, port } = await mailerToClosedPort("localhost");
  try {
    const err = await rejectsMailer(mailer.healthCheck());
    assert.equal(err.retryable, true);
    const prefix = `Cannot connect to SMTP server "localhost:${port}": `;
    assert.ok(err.message.startsWith(prefix), err.message);
    // Never empty after the colon (was, with nodemailer's AggregateError under Deno).
    assert.match(
      err.message.slice(prefix.length),
      new RegExp(`127\\.0\\.0\\.1:${port}: connection refused \\(ECONNREFUSED\\)`),
    );
  } finally {
    await mailer.close();
  }
});

Deno.test("SmtpMailer.send() stops waiting when the signal aborts", async () => {
  await withMailer(
    { sink: { delayMs: 500 }, cfg: { starttlsPolicy: "disabled" } },
    async (mailer) => {
      const err = await rejectsMailer(mailer.send(email, { signal: AbortSignal.timeout(50) }));
      assert.equal(err.code, "EABORT");
      assert.equal(err.retryable, true);
    },
  );
});

Deno.test("SmtpMailer.healthCheck() connects, upgrades and authenticates", async () => {
  await withMailer(
    { sink: { tls: SINK_TLS, auth: withAuth }, cfg: authCfg },
    async (mailer, sink) => {
      await mailer.healthCheck();
      assert.equal(sink.connections, 1);
      assert.deepEqual(sink.authAttempts, [{ user: USER, method: "PLAIN", ok: true }]);
      assert.equal(sink.messages.length, 0);
    },
  );
});

Deno.test("SmtpMailer refuses a clear-text password to a remote host unless STARTTLS is disabled", async () => {
  const warnings: string[] = [];
  const log = {
    debug: () => {},
    info: () => {},
    warn: (message: string) => void warnings.push(message),
  };
  const sink: SmtpSinkOptions = { auth: withAuth, allowInsecureAuth: true };
  // assumeRemote: tests may only use loopback addresses.
  await withMailer(
    {
      sink,
      cfg: { ...authCfg, starttlsPolicy: "opportunistic" },
      opts: { assumeRemote: true, log },
    },
    async (mailer, s) => {
      assert.equal(mailer.clearTextAuth, false);
      const err = await rejectsMailer(mailer.healthCheck());
      assert.equal(err.code, "ECLEARTEXT");
      assert.equal(err.retryable, false);
      assert.match(
        err.message,
        /does not offer STARTTLS; refusing to send the SMTP password in clear text/,
      );
      assert.match(err.hint ?? "", /starttls_policy = "disabled"/);
      const sendErr = await rejectsMailer(mailer.send(email));
      assert.equal(sendErr.code, "ECLEARTEXT");
      assert.equal(sendErr.retryable, false);
      assert.equal(sendErr.recipient, "bob@example.com");
      assert.equal(s.authAttempts.length, 0);
      assert.equal(s.messages.length, 0);
    },
  );
  assert.deepEqual(warnings, []);
  await withMailer(
    { sink, cfg: { ...authCfg, starttlsPolicy: "disabled" }, opts: { assumeRemote: true, log } },
    async (mailer, s) => {
      assert.equal(mailer.clearTextAuth, true);
      await mailer.healthCheck();
      await mailer.send(email);
      const [msg] = await s.waitFor(1);
      assert.equal(msg.secure, false);
      assert.equal(msg.user, USER);
    },
  );
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /password is sent in clear text/);
});

Deno.test("SmtpMailer sends a burst over the pool", async () => {
  await withMailer(
    { sink: { tls: SINK_TLS, auth: withAuth }, cfg: authCfg, opts: { maxConnections: 3 } },
    async (mailer, sink) => {
      const sent = await Promise.all(
        Array.from({ length: 30 }, (_, i) => mailer.send({ ...email, to: `user${i}@example.com` })),
      );
      const msgs = await sink.waitFor(30);
      assert.equal(new Set(sent.map((s) => s.messageId)).size, 30);
      assert.deepEqual(
        new Set(msgs.map((m) => m.envelope.to[0])),
        new Set(sent.map((_, i) => `user${i}@example.com`)),
      );
      assert.ok(sink.connections <= 3, `connections: ${sink.connections}`);
    },
  );
});

Deno.test("SmtpMailer reconnects after the server dropped its pooled connections", async () => {
  await withMailer({ cfg: { starttlsPolicy: "disabled" } }, async (mailer, sink) => {
    await mailer.send(email);
    await sink.waitFor(1);
    const before = sink.connections;
    sink.dropConnections();
    for (let i = 0; i < 100 && sink.openConnections > 0; i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    await mailer.send({ ...email, to: "carol@example.com" });
    const msgs = await sink.waitFor(2);
    assert.equal(msgs[1].envelope.to[0], "carol@example.com");
    assert.ok(sink.connections > before, "a new connection was opened");
  });
});

Deno.test("SmtpMailer sends opportunistically with a password to a remote host over STARTTLS only", async () => {
  // assumeRemote: tests may only use loopback addresses. Every new connection is checked before
  // AUTH, pooled ones too: the health check's connection, then one pooled for both messages.
  await withMailer(
    {
      sink: { tls: SINK_TLS, auth: withAuth },
      cfg: { ...authCfg, starttlsPolicy: "opportunistic" },
      opts: { assumeRemote: true },
    },
    async (mailer, sink) => {
      await mailer.healthCheck();
      const first = await mailer.send(email);
      await mailer.send({ ...email, to: "carol@example.com", inReplyTo: first.messageId });
      const [a, b] = await sink.waitFor(2);
      for (const msg of [a, b]) {
        assert.equal(msg.secure, true);
        assert.equal(msg.user, USER);
        assert.match(header(msg, "Content-Type") ?? "", /^multipart\/alternative;/);
      }
      assert.equal(header(a, "Message-ID"), `<${first.messageId}>`);
      assert.equal(header(b, "In-Reply-To"), `<${first.messageId}>`);
      assert.deepEqual(b.envelope, { from: "noreply@example.com", to: ["carol@example.com"] });
      assert.equal(sink.connections, 2);
    },
  );
});

Deno.test("SmtpMailer.send() encodes a content once for all its recipients, keeping at most 32", async () => {
  await withMailer({ cfg: { starttlsPolicy: "disabled" } }, async (mailer, sink) => {
    const text = "Grüße ✅ " + "long line ".repeat(20);
    const html = "<p>Grüße ✅</p>";
    for (const to of ["a@example.com", "b@example.com", "c@example.com"]) {
      await mailer.send({ ...email, to, text, html });
    }
    assert.equal(mailer.cachedBodies, 1);
    const msgs = await sink.waitFor(3);
    for (const msg of msgs) {
      assert.equal(msg.text?.trim(), text.trim());
      assert.equal(msg.html?.trim(), html);
    }
    assert.deepEqual(msgs.map((m) => m.envelope.to[0]), [
      "a@example.com",
      "b@example.com",
      "c@example.com",
    ]);
    for (let i = 0; i < 40; i++) await mailer.send({ ...email, text: `body ${i}` });
    assert.equal(mailer.cachedBodies, 32);
    await sink.waitFor(43);
  });
});

Deno.test("SmtpMailer.send() marks every email as automatic (RFC 3834) and suppresses auto-replies", async () => {
  await withMailer({ cfg: { starttlsPolicy: "disabled" } }, async (mailer, sink) => {
    await mailer.send(email);
    await mailer.send({ ...email, inReplyTo: "A.B@example.com" });
    for (const msg of await sink.waitFor(2)) {
      assert.equal(header(msg, "Auto-Submitted"), "auto-generated");
      assert.equal(header(msg, "X-Auto-Response-Suppress"), "All");
    }
  });
});

Deno.test("SmtpMailer uses one fully qualified name for EHLO and the Message-ID domain", async () => {
  await withMailer({ cfg: { starttlsPolicy: "disabled" } }, async (mailer, sink) => {
    const sent = await mailer.send(email);
    const [msg] = await sink.waitFor(1);
    assert.ok(mailer.localName.includes("."), `not fully qualified: ${mailer.localName}`);
    assert.equal(msg.heloName, mailer.localName);
    assert.equal(sent.messageId.slice(sent.messageId.indexOf("@") + 1), mailer.localName);
  });
  const opts = { clientName: "mx.example.org" };
  await withMailer({ cfg: { starttlsPolicy: "disabled" }, opts }, async (mailer, sink) => {
    const sent = await mailer.send(email);
    const [msg] = await sink.waitFor(1);
    assert.equal(msg.heloName, "mx.example.org");
    assert.match(sent.messageId, /@mx\.example\.org$/);
  });
});

Deno.test("SmtpMailer takes smtp.local_name for EHLO and the Message-ID domain", async () => {
  const cfg = { starttlsPolicy: "disabled" as const, localName: "relay.example.net" };
  await withMailer({ cfg }, async (mailer, sink) => {
    const sent = await mailer.send(email);
    const [msg] = await sink.waitFor(1);
    assert.equal(msg.heloName, "relay.example.net");
    assert.match(sent.messageId, /@relay\.example\.net$/);
  });
});
