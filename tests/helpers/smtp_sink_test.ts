import assert from "node:assert/strict";
import nodemailer from "nodemailer";
import { createTestTls, parseHeaderBlock, SmtpSink } from "./smtp_sink.ts";

const mail = { from: "a@example.com", to: "b@example.com", subject: "s", text: "body" };

/** A non-pooled nodemailer client for the sink. */
function client(sink: SmtpSink, extra: Record<string, unknown> = {}) {
  return nodemailer.createTransport({
    host: sink.host,
    port: sink.port,
    ignoreTLS: true,
    ...extra,
  });
}

Deno.test("SmtpSink records envelope, headers, body and raw message", async () => {
  const sink = await SmtpSink.start();
  try {
    await client(sink).sendMail({ ...mail, headers: { "X-Folded": "one\r\n two" } });
    const [msg] = await sink.waitFor(1);
    assert.deepEqual(msg.envelope, { from: "a@example.com", to: ["b@example.com"] });
    assert.equal(msg.subject, "s");
    assert.equal(msg.text?.trim(), "body");
    assert.equal(msg.secure, false);
    assert.equal(msg.user, undefined);
    assert.equal(msg.toEml(), msg.raw);
    assert.match(msg.raw, /\r\n\r\nbody/);
    assert.equal(msg.headers.get("to"), "b@example.com");
    assert.ok(msg.messageId?.startsWith("<"));
  } finally {
    await sink.close();
  }
});

Deno.test("SmtpSink requires AUTH when configured and records attempts", async () => {
  const tls = await createTestTls();
  const sink = await SmtpSink.start({
    tls: { key: tls.keyPem, cert: tls.certPem },
    auth: { username: "u", password: "p" },
  });
  try {
    const tlsOpts = { ignoreTLS: false, requireTLS: true, tls: { ca: [tls.caPem] } };
    await assert.rejects(client(sink, tlsOpts).sendMail(mail), /530/);
    await assert.rejects(
      client(sink, { ...tlsOpts, auth: { user: "u", pass: "bad" } }).sendMail(mail),
      /535/,
    );
    await client(sink, { ...tlsOpts, auth: { user: "u", pass: "p", method: "LOGIN" } })
      .sendMail(mail);
    const [msg] = await sink.waitFor(1);
    assert.equal(msg.user, "u");
    assert.equal(msg.secure, true);
    assert.deepEqual(sink.authAttempts, [
      { user: "u", method: "PLAIN", ok: false },
      { user: "u", method: "LOGIN", ok: true },
    ]);
  } finally {
    await sink.close();
  }
});

Deno.test("SmtpSink rejects chosen recipients and fails exactly the next N messages", async () => {
  const sink = await SmtpSink.start({
    rejectRecipients: new Map([["nobody@example.com", { code: 550, message: "No such user" }]]),
  });
  try {
    const c = client(sink);
    await assert.rejects(c.sendMail({ ...mail, to: "nobody@example.com" }), /550 No such user/);
    sink.failNext(2, 451, { stage: "data" });
    await assert.rejects(c.sendMail(mail), /451/);
    await assert.rejects(c.sendMail(mail), /451/);
    await c.sendMail(mail);
    assert.equal((await sink.waitFor(1)).length, 1);
  } finally {
    await sink.close();
  }
});

Deno.test("SmtpSink.waitFor() rejects after its timeout", async () => {
  const sink = await SmtpSink.start();
  try {
    await assert.rejects(sink.waitFor(1, { timeoutMs: 20 }), /0 of 1 messages after 20 ms/);
  } finally {
    await sink.close();
  }
});

Deno.test("SmtpSink.start() refuses TLS modes without a certificate", async () => {
  await assert.rejects(SmtpSink.start({ implicitTls: true }), /need opts.tls/);
});

Deno.test("createTestTls() makes a server certificate that a client rejects for another name", async () => {
  const tls = await createTestTls({ hosts: ["DNS:mail.example.test"] });
  const sink = await SmtpSink.start({ tls: { key: tls.keyPem, cert: tls.certPem } });
  try {
    const c = client(sink, { ignoreTLS: false, requireTLS: true, tls: { ca: [tls.caPem] } });
    await assert.rejects(c.sendMail(mail), /altnames|does not match/i);
    const ok = client(sink, {
      ignoreTLS: false,
      requireTLS: true,
      tls: { ca: [tls.caPem], servername: "mail.example.test" },
    });
    await ok.sendMail(mail);
    assert.equal((await sink.waitFor(1))[0].secure, true);
  } finally {
    await sink.close();
  }
});

Deno.test("parseHeaderBlock() unfolds lines and joins repeated headers", () => {
  const map = parseHeaderBlock("Subject: a\r\n b\r\nReceived: x\r\nReceived: y\r\nX-Empty:");
  assert.equal(map.get("subject"), "a b");
  assert.equal(map.get("received"), "x\ny");
  assert.equal(map.get("x-empty"), "");
});
