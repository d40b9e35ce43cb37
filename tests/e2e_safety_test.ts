/**
 * End-to-end safety of the emails built from untrusted request fields: CR/LF in users, roles,
 * reasons and review fields cannot inject headers or recipients, the HTML part is escaped, a
 * 100 KB reason and non-ASCII text are delivered intact. Real CLI, real SMTP server (the raw
 * message is inspected) and the fake Mailgun API (the form fields are inspected).
 */
import assert from "node:assert/strict";
import { type DeliveredEmail, E2eEnv } from "./helpers/e2e_env.ts";

const INJECT =
  "\r\nBcc: victim@example.com\r\nX-Injected: yes\r\nSubject: hacked\r\n\r\n<b>body</b>";
const SCRIPT = "<script>alert('x')</script>";
const UNICODE = "Zoë 🚀";
const BIG_TAIL = "END-OF-BIG-REASON";

/** The header names a well-formed message of ours may carry. */
const ALLOWED_HEADERS = new Set([
  "from",
  "to",
  "subject",
  "message-id",
  "date",
  "mime-version",
  "content-type",
  "content-transfer-encoding",
  "in-reply-to",
  "references",
  "x-mailer",
  "reply-to",
  "sender",
  "auto-submitted",
  "x-auto-response-suppress",
]);

function checkEmail(e: DeliveredEmail, requestId: string): void {
  assert.equal(e.subject, `teleport.example.com Role Request ${requestId}`);
  assert.ok(!/[\r\n]/.test(e.subject));
  assert.equal(e.to, "all@example.com", "no injected recipient");
  assert.ok(!e.html.includes("<script"), `script tag in the HTML part:\n${e.html.slice(0, 2000)}`);
  assert.ok(!e.html.includes("<b>body</b>"), "injected markup in the HTML part");
  if (e.smtp) {
    assert.deepEqual(e.smtp.envelope.to, ["all@example.com"]);
    const names = [...e.smtp.headers.keys()];
    for (const name of names) {
      assert.ok(ALLOWED_HEADERS.has(name), `unexpected header ${name}:\n${e.smtp.rawHeaders}`);
    }
    assert.ok(!/^(bcc|x-injected):/im.test(e.smtp.rawHeaders), e.smtp.rawHeaders);
    assert.equal(e.smtp.rawHeaders.match(/^subject:/gim)?.length, 1, "one Subject header");
  }
}

for (const mailer of ["smtp", "mailgun"] as const) {
  Deno.test(`e2e ${mailer}: CR/LF, <script>, a 100 KB reason and non-ASCII text are delivered safely`, async () => {
    await using env = await E2eEnv.start({ mailer });
    const plugin = await env.startPlugin();
    const t = env.teleport;
    const bigReason = `${UNICODE} ${SCRIPT}${INJECT} ` + "x".repeat(100_000) + BIG_TAIL;
    const req = t.createAccessRequest({
      user: `eve ${UNICODE}${INJECT}`,
      roles: [`editor${INJECT}`, `ops ${SCRIPT}`],
      reason: bigReason,
      suggestedReviewers: [`rev@example.com${INJECT}`],
      thresholds: { approve: 2, deny: 2 },
    });
    const [thread] = await env.waitForEmailsFor(req.id, 1);
    t.submitReview(req.id, {
      author: `mallory${INJECT}`,
      proposedState: "APPROVED",
      reason: `${SCRIPT} ${UNICODE}${INJECT}`,
    });
    await env.waitForEmailsFor(req.id, 2);
    t.setState(req.id, "DENIED", `${SCRIPT}${INJECT} ${UNICODE}`);
    const mails = await env.waitForEmailsFor(req.id, 3);
    await env.waitForNoMoreEmails(500);
    assert.equal(env.emails.length, 3, "only all@example.com (the reviewer is not an address)");
    for (const e of mails) checkEmail(e, req.id);

    assert.ok(thread.text.includes(UNICODE), "non-ASCII text in the body");
    assert.ok(thread.text.includes(SCRIPT), "the text part keeps the reason verbatim");
    assert.ok(thread.text.includes(BIG_TAIL), "the 100 KB reason is not cut");
    assert.ok(thread.html.includes("&lt;script&gt;"), "the HTML part escapes the reason");
    assert.ok(thread.html.includes(UNICODE));
    assert.ok(mails[1].text.includes(UNICODE), mails[1].text);
    assert.ok(mails[2].text.includes(UNICODE), mails[2].text.slice(0, 500));
    assert.ok(mails[2].text.includes("Status: ❌ DENIED"));
    assert.ok(
      plugin.logs.some((l) =>
        l.msg === "Failed to notify a suggested reviewer with an invalid email address"
      ),
    );
    assert.equal(await plugin.stop(), 0);
  });
}
