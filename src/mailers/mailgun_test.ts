import assert from "node:assert/strict";
import { ConfigError, MailerError } from "../errors.ts";
import type { MailgunConfig } from "../config/types.ts";
import { FakeMailgun, type FakeMailgunOptions } from "../../tests/helpers/fake_mailgun.ts";
import { MailgunMailer, validateMailgunDomain } from "./mailgun.ts";
import { withRetry } from "../async.ts";

const KEY = "key-0123456789abcdef-secret";
const SENDER = "Teleport <noreply@mg.example.test>";

function config(fake: FakeMailgun, over: Partial<MailgunConfig> = {}): MailgunConfig {
  return {
    domain: fake.domain,
    privateKey: KEY,
    privateKeyFile: "",
    apiBase: fake.apiBase,
    ...over,
  };
}

async function withFake(
  opts: FakeMailgunOptions,
  fn: (fake: FakeMailgun) => Promise<void>,
): Promise<void> {
  const fake = await FakeMailgun.start({ apiKey: KEY, ...opts });
  try {
    await fn(fake);
  } finally {
    await fake.close();
  }
}

async function rejectsMailer(p: Promise<unknown>): Promise<MailerError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof MailerError, `expected MailerError, got ${err}`);
    for (const text of [err.message, err.hint ?? "", String(err.cause ?? "")]) {
      assert.ok(!text.includes(KEY), `secret in error text: ${text}`);
      assert.ok(!text.includes(btoa(`api:${KEY}`)), `encoded secret in error text: ${text}`);
    }
    return err;
  }
  assert.fail("expected a MailerError");
}

/** RFC 3834 and Exchange's auto-reply suppression, as `h:` parameters on every email. */
const AUTOMATED = { "Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All" };

const email = { to: "bob@example.com", subject: "Hello", text: "plain body", html: "<p>html</p>" };

Deno.test("MailgunMailer.send() posts the Go plugin's fields with Basic auth and returns the id as given", async () => {
  await withFake({}, async (fake) => {
    const mailer = new MailgunMailer(config(fake), SENDER);
    const sent = await mailer.send(email);
    const [msg] = await fake.waitFor(1);
    assert.equal(msg.from, SENDER);
    assert.deepEqual(msg.toAll, ["bob@example.com"]);
    assert.equal(msg.subject, "Hello");
    assert.equal(msg.text, "plain body");
    assert.equal(msg.html, "<p>html</p>");
    assert.deepEqual(msg.options, { "o:require-tls": "true" });
    assert.deepEqual(msg.headers, AUTOMATED);
    assert.equal(sent.messageId, msg.id);
    assert.match(sent.messageId, /^<[0-9a-f-]+@mg\.example\.test>$/);
    assert.deepEqual(fake.requests.map((r) => [r.method, r.path, r.authUser, r.authOk]), [
      ["POST", "/v3/mg.example.test/messages", "api", true],
    ]);
  });
});

Deno.test("MailgunMailer.send() puts exactly one pair of brackets in follow-up headers", async () => {
  await withFake({}, async (fake) => {
    const mailer = new MailgunMailer(config(fake), SENDER);
    const first = await mailer.send(email);
    await mailer.send({ ...email, inReplyTo: first.messageId });
    await mailer.send({ ...email, inReplyTo: "BARE.ID@host" });
    const [, bracketedReply, bareReply] = await fake.waitFor(3);
    assert.deepEqual(bracketedReply.headers, {
      ...AUTOMATED,
      "In-Reply-To": first.messageId,
      References: first.messageId,
    });
    assert.ok(!first.messageId.startsWith("<<"));
    assert.deepEqual(bareReply.headers, {
      ...AUTOMATED,
      "In-Reply-To": "<BARE.ID@host>",
      References: "<BARE.ID@host>",
    });
  });
});

Deno.test("MailgunMailer.send() flattens CR/LF in the subject", async () => {
  await withFake({}, async (fake) => {
    const mailer = new MailgunMailer(config(fake), SENDER);
    await mailer.send({ ...email, subject: "Hi\r\nBcc: evil@example.com" });
    const [msg] = await fake.waitFor(1);
    assert.equal(msg.subject, "Hi Bcc: evil@example.com");
  });
});

Deno.test("MailgunMailer.send() rejects a recipient list without calling the API", async () => {
  await withFake({}, async (fake) => {
    const mailer = new MailgunMailer(config(fake), SENDER);
    const err = await rejectsMailer(mailer.send({ ...email, to: "a@example.com, b@example.com" }));
    assert.equal(err.retryable, false);
    assert.match(err.message, /Invalid recipient address "a@example.com, b@example.com"/);
    assert.equal(fake.requests.length, 0);
  });
});

Deno.test("MailgunMailer.send() with a wrong key fails permanently with the key and region hint", async () => {
  await withFake({}, async (fake) => {
    const mailer = new MailgunMailer({ ...config(fake), privateKey: "key-wrong-value" }, SENDER);
    const err = await rejectsMailer(mailer.send(email));
    assert.equal(err.code, 401);
    assert.equal(err.retryable, false);
    assert.equal(err.recipient, "bob@example.com");
    assert.match(err.message, /Cannot send email to "bob@example.com" via Mailgun domain/);
    assert.match(err.message, /HTTP 401 \(invalid API key or wrong region \(api_base\)\)/);
    assert.match(err.hint ?? "", /api\.eu\.mailgun\.net/);
    assert.ok(!err.message.includes("key-wrong-value"));
  });
});

Deno.test("MailgunMailer.send() classifies 429 and 5xx as retryable, 400 and 404 as permanent", async () => {
  await withFake({}, async (fake) => {
    const mailer = new MailgunMailer(config(fake), SENDER);
    const cases: [number, boolean][] = [[429, true], [500, true], [503, true], [400, false]];
    for (const [status, retryable] of cases) {
      fake.failNext(1, status);
      const err = await rejectsMailer(mailer.send(email));
      assert.equal(err.code, status);
      assert.equal(err.retryable, retryable, `status ${status}`);
      assert.match(err.message, new RegExp(`HTTP ${status}.*Injected failure ${status}`));
    }
    const other = new MailgunMailer(config(fake, { domain: "other.example.test" }), SENDER);
    const err = await rejectsMailer(other.send(email));
    assert.equal(err.code, 404);
    assert.equal(err.retryable, false);
    assert.match(err.message, /domain not found/);
    assert.equal(fake.messages.length, 0);
  });
});

Deno.test("MailgunMailer.send() reports a closed port as a retryable network error", async () => {
  const fake = await FakeMailgun.start({ apiKey: KEY });
  const cfg = config(fake);
  await fake.close();
  const err = await rejectsMailer(new MailgunMailer(cfg, SENDER).send(email));
  assert.equal(err.code, "ENETWORK");
  assert.equal(err.retryable, true);
  assert.match(
    err.message,
    /POST http:\/\/127\.0\.0\.1:\d+\/v3\/mg\.example\.test\/messages failed/,
  );
});

Deno.test("MailgunMailer.send() times out a slow API with a retryable error", async () => {
  await withFake({}, async (fake) => {
    fake.delayMs = 400;
    const mailer = new MailgunMailer(config(fake), SENDER, { timeoutMs: 50 });
    const err = await rejectsMailer(mailer.send(email));
    assert.equal(err.code, "ETIMEDOUT");
    assert.equal(err.retryable, true);
    assert.match(err.message, /no response within 50 ms/);
  });
});

Deno.test("MailgunMailer.send() stops when the caller's signal aborts", async () => {
  await withFake({}, async (fake) => {
    fake.delayMs = 400;
    const mailer = new MailgunMailer(config(fake), SENDER);
    const err = await rejectsMailer(mailer.send(email, { signal: AbortSignal.timeout(50) }));
    assert.equal(err.code, "EABORT");
    assert.equal(err.retryable, true);
  });
});

Deno.test("MailgunMailer with withRetry() survives two 503 replies", async () => {
  await withFake({}, async (fake) => {
    const mailer = new MailgunMailer(config(fake), SENDER);
    fake.failNext(2, 503);
    const signal = AbortSignal.timeout(5000);
    const attempts: number[] = [];
    const sent = await withRetry((attempt) => {
      attempts.push(attempt);
      return mailer.send(email, { signal });
    }, { signal, baseMs: 5, capMs: 20 });
    assert.deepEqual(attempts, [1, 2, 3]);
    const [msg] = await fake.waitFor(1);
    assert.equal(sent.messageId, msg.id);
  });
});

Deno.test("MailgunMailer works with an EU API base and explains a wrong region", async () => {
  await withFake({ basePath: "/eu/v3" }, async (fake) => {
    const eu = new MailgunMailer(config(fake), SENDER);
    await eu.healthCheck();
    await eu.send(email);
    assert.equal((await fake.waitFor(1))[0].to, "bob@example.com");
    const us = new MailgunMailer(config(fake, { apiBase: `${fake.url}/v3` }), SENDER);
    const err = await rejectsMailer(us.healthCheck());
    assert.equal(err.code, 401);
    assert.equal(err.retryable, false);
    assert.match(err.message, /Cannot verify Mailgun domain "mg.example.test"/);
    assert.match(err.message, /wrong region/);
    assert.match(
      err.hint ?? "",
      /mailgun.region = "eu" \(API base "https:\/\/api\.eu\.mailgun\.net\/v3"\)/,
    );
  });
});

Deno.test("MailgunMailer.healthCheck() reads the domain with an account key and sends nothing", async () => {
  await withFake({}, async (fake) => {
    await new MailgunMailer(config(fake), SENDER).healthCheck();
    assert.deepEqual(fake.requests.map((r) => [r.method, r.path, r.status]), [
      ["GET", "/v3/domains/mg.example.test", 200],
    ]);
    assert.equal(fake.messages.length, 0);
  });
});

Deno.test("MailgunMailer.healthCheck() accepts a domain sending key without sending mail", async () => {
  await withFake({ sendingKey: "sending-key-42" }, async (fake) => {
    const mailer = new MailgunMailer(config(fake, { privateKey: "sending-key-42" }), SENDER);
    await mailer.healthCheck();
    assert.deepEqual(fake.requests.map((r) => [r.method, r.status]), [["GET", 401], [
      "POST",
      400,
    ]]);
    assert.equal(fake.messages.length, 0);
  });
});

Deno.test("MailgunMailer.healthCheck() fails permanently for a wrong key or an unknown domain", async () => {
  await withFake({}, async (fake) => {
    const wrongKey = new MailgunMailer(config(fake, { privateKey: "key-nope-nope" }), SENDER);
    const err = await rejectsMailer(wrongKey.healthCheck());
    assert.equal(err.code, 401);
    assert.equal(err.retryable, false);
    const unknown = new MailgunMailer(config(fake, { domain: "nope.example.test" }), SENDER);
    const err404 = await rejectsMailer(unknown.healthCheck());
    assert.equal(err404.code, 404);
    assert.equal(err404.retryable, false);
    assert.match(
      err404.message,
      /POST .*\/nope\.example\.test\/messages returned HTTP 404 \(domain not found\)/,
    );
    assert.deepEqual(fake.requests.slice(-2).map((r) => [r.method, r.status]), [["GET", 404], [
      "POST",
      404,
    ]]);
    assert.equal(fake.messages.length, 0);
  });
});

Deno.test("MailgunMailer.healthCheck() reports a 500 as retryable", async () => {
  await withFake({}, async (fake) => {
    fake.failNext(1, 500, "<html>oops</html>");
    const err = await rejectsMailer(new MailgunMailer(config(fake), SENDER).healthCheck());
    assert.equal(err.code, 500);
    assert.equal(err.retryable, true);
    assert.match(err.message, /<html>oops<\/html>/);
  });
});

Deno.test("MailgunMailer rejects an invalid domain, an empty key and a bad API base", () => {
  const base = { domain: "mg.example.com", privateKey: KEY, privateKeyFile: "", apiBase: "" };
  for (const domain of ["a@b.com", "mg.example.com/x", "a b", "x;y", "x%2F"]) {
    assert.throws(() => new MailgunMailer({ ...base, domain }, SENDER), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.key, "mailgun.domain");
      assert.match(err.message, /Invalid "mailgun.domain"/);
      return true;
    });
  }
  assert.throws(() => validateMailgunDomain(""), /provide mailgun.domain to use Mailgun/);
  assert.throws(
    () => new MailgunMailer({ ...base, privateKey: "" }, SENDER),
    (err: unknown) => err instanceof ConfigError && err.key === "mailgun.private_key",
  );
  assert.throws(
    () => new MailgunMailer({ ...base, apiBase: "api.mailgun.net" }, SENDER),
    (err: unknown) => err instanceof ConfigError && err.key === "mailgun.api_base",
  );
  assert.equal(new MailgunMailer(base, SENDER).apiBase, "https://api.mailgun.net/v3");
});
