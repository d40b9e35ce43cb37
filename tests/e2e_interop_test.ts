/**
 * End-to-end interoperability with the Go plugin's stored state (reference §3.10): plugin data
 * written in the Go encoding (7 keys, `email_threads` entries `email/time.String()/id`, no
 * `email_delivery` key) is continued by the real CLI: only the new review and the resolution are
 * sent, as replies in the stored threads (`In-Reply-To` = the stored ID, bracketed once, for
 * SMTP-style bare IDs and Mailgun-style bracketed IDs alike), never a new thread.
 */
import assert from "node:assert/strict";
import type { DeliveredEmail } from "./helpers/e2e_env.ts";
import { checkThreading, E2eEnv } from "./helpers/e2e_env.ts";
import type { PluginDataMap } from "../src/teleport/types.ts";

const GO_TIME = "2024-05-01 10:11:12.123456789 +0000 UTC m=+42.000000001";
const R1 = "reviewer1@example.com";

function goData(threads: [string, string][], reviewsCount: string): PluginDataMap {
  return {
    user: "requester1@example.com",
    roles: "editor,auditor",
    request_reason: "because of",
    reviews_count: reviewsCount,
    resolution: "",
    resolve_reason: "",
    email_threads: threads.map(([email, id]) => `${email}/${GO_TIME}/${id}`).join(","),
  };
}

/** Each email is a reply in `threads` (recipient → expected bracketed id); returns texts. */
function assertReplies(emails: DeliveredEmail[], threads: Record<string, string>): string[] {
  for (const e of emails) {
    const expected = threads[e.to];
    assert.ok(expected, `unexpected recipient ${e.to}`);
    assert.equal(e.inReplyTo, expected, `In-Reply-To to ${e.to}`);
    assert.equal(e.references, expected, `References to ${e.to}`);
    const raw = e.smtp?.rawHeaders ?? `${e.inReplyTo} ${e.references}`;
    assert.ok(!raw.includes("<<") && !raw.includes(">>"), raw);
    assert.ok(!e.text.includes("You have a new Role Request"), e.text);
  }
  return emails.map((e) => e.text);
}

for (const mailer of ["smtp", "mailgun"] as const) {
  Deno.test(`e2e ${mailer}: continues Go plugin data: replies in the stored threads, no new thread`, async () => {
    await using env = await E2eEnv.start({
      mailer,
      server: { advancedAccessWorkflows: true },
    });
    const t = env.teleport;

    // 1. Written by the Go plugin (SMTP transport: bare id) before this plugin ever ran; one
    //    review was already emailed.
    const smtpStyle = t.createAccessRequest({
      user: "requester1@example.com",
      roles: ["editor", "auditor"],
      reason: "because of",
      thresholds: { approve: 2, deny: 2 },
    });
    t.submitReview(smtpStyle.id, { author: R1, proposedState: "APPROVED", reason: "okay" });
    const goSmtpId = "DN2ZP0V5O5KW.3JV1PWHQQ2SBB@go-host";
    t.putPluginData(smtpStyle.id, "email", goData([["all@example.com", goSmtpId]], "1"));

    const plugin = await env.startPlugin();
    await plugin.waitForLog((l) => l.msg === "Caught up on access requests");

    // 2. Written by the Go plugin (Mailgun transport: the API's bracketed id) while the event
    //    stream holds the request's PUT, so this plugin first sees it with the data present.
    t.pauseEvents(true);
    const mailgunStyle = t.createAccessRequest({
      user: "requester1@example.com",
      roles: ["editor", "auditor"],
      reason: "because of",
      suggestedReviewers: [R1],
    });
    const goMgAll = "<20240501101112.1.ABCDEF@mg.example.com>";
    const goMgR1 = "<20240501101112.2.ABCDEF@mg.example.com>";
    t.putPluginData(
      mailgunStyle.id,
      "email",
      goData([["all@example.com", goMgAll], [R1, goMgR1]], ""),
    );
    // 3. Oldest Go format: the legacy `email` and `timestamp` keys, a thread without an id.
    const legacy = t.createAccessRequest({ user: "requester1@example.com", roles: ["editor"] });
    t.putPluginData(legacy.id, "email", {
      user: "requester1@example.com",
      roles: "editor",
      email: "all@example.com",
      timestamp: GO_TIME,
    });
    t.pauseEvents(false);
    await env.waitForNoMoreEmails(500);
    assert.equal(env.emails.length, 0, "nothing to send for requests the Go plugin handled");

    // The deciding review: the new review and the resolution, nothing else.
    t.submitReview(smtpStyle.id, {
      author: "reviewer2@example.com",
      proposedState: "APPROVED",
      reason: "finally okay",
    });
    t.setState(mailgunStyle.id, "DENIED", "not okay");
    t.setState(legacy.id, "APPROVED", "legacy okay");
    await env.waitForEmailsFor(smtpStyle.id, 2);
    await env.waitForEmailsFor(mailgunStyle.id, 2);
    await env.waitForEmailsFor(legacy.id, 1);
    await env.waitForNoMoreEmails();

    const a = assertReplies(env.emailsFor(smtpStyle.id), { "all@example.com": `<${goSmtpId}>` });
    assert.equal(a.length, 2);
    assert.ok(a[0].includes("reviewer2@example.com reviewed the request"), a[0]);
    assert.ok(!a.some((x) => x.includes(`${R1} reviewed`)), "the old review is not resent");
    assert.ok(a[1].includes("Status: ✅ APPROVED (finally okay)"), a[1]);
    // The resolution is built from the stored request data.
    assert.ok(a[1].includes("Role(s): editor,auditor"), a[1]);

    const b = assertReplies(env.emailsFor(mailgunStyle.id), {
      "all@example.com": goMgAll,
      [R1]: goMgR1,
    });
    assert.equal(b.length, 2);
    for (const x of b) assert.ok(x.includes("Status: ❌ DENIED (not okay)"), x);
    // The legacy thread has no id to reply to: a plain email, no threading headers.
    const [c] = env.emailsFor(legacy.id);
    assert.equal(c.to, "all@example.com");
    assert.ok(c.text.includes("Status: ✅ APPROVED (legacy okay)"), c.text);
    assert.ok(!c.inReplyTo, `In-Reply-To ${c.inReplyTo}`);
    assert.ok(!c.references, `References ${c.references}`);
    assert.equal(env.emails.length, 5);

    // The data stays readable by the Go plugin: its threads kept verbatim, counters advanced.
    const da = t.getPluginData(smtpStyle.id, "email")!;
    assert.equal(da.email_threads, `all@example.com/${GO_TIME}/${goSmtpId}`);
    assert.equal(da.reviews_count, "2");
    assert.equal(da.resolution, "APPROVED");
    assert.equal(da.resolve_reason, "finally okay");
    const db = t.getPluginData(mailgunStyle.id, "email")!;
    assert.equal(
      db.email_threads,
      goData([["all@example.com", goMgAll], [R1, goMgR1]], "")
        .email_threads,
    );
    assert.equal(db.resolution, "DENIED");
    assert.equal(await plugin.stop(), 0);
  });
}

Deno.test("e2e smtp: taking back over after the Go plugin advanced our data: what Go sent is not resent", async () => {
  await using env = await E2eEnv.start({ mailer: "smtp" });
  const t = env.teleport;
  const R2 = "reviewer2@example.com";
  const R3 = "reviewer3@example.com";
  const p1 = await env.startPlugin();
  // Ours: two threads each, one review each.
  const resolved = t.createAccessRequest({
    user: "requester1@example.com",
    roles: ["editor"],
    suggestedReviewers: [R1],
    thresholds: { approve: 3, deny: 3 },
  });
  const reviewed = t.createAccessRequest({
    user: "requester1@example.com",
    roles: ["editor"],
    suggestedReviewers: [R1],
    thresholds: { approve: 3, deny: 3 },
  });
  for (const id of [resolved.id, reviewed.id]) {
    await env.waitForEmailsFor(id, 2);
    t.submitReview(id, { author: R1, proposedState: "APPROVED", reason: "one" });
    await env.waitForEmailsFor(id, 4);
  }
  await env.waitForNoMoreEmails(300);
  assert.equal(await p1.stop(), 0);
  const ours = t.getPluginData(resolved.id, "email")!;
  assert.ok(ours.email_delivery, "our delivery state is stored");

  // The Go plugin runs meanwhile: it emails the second review to every thread (raising
  // reviews_count), and for `resolved` also the resolution (setting `resolution`). It rewrites
  // its 7 keys and leaves our `email_delivery` as it was.
  for (const id of [resolved.id, reviewed.id]) {
    t.submitReview(id, { author: R2, proposedState: "APPROVED", reason: "two" });
    t.putPluginData(id, "email", { ...t.getPluginData(id, "email")!, reviews_count: "2" });
  }
  t.setState(resolved.id, "APPROVED", "go approved");
  t.putPluginData(resolved.id, "email", {
    ...t.getPluginData(resolved.id, "email")!,
    resolution: "APPROVED",
    resolve_reason: "go approved",
  });
  assert.equal(t.getPluginData(resolved.id, "email")!.email_delivery, ours.email_delivery);

  // Ours again: the catch-up finds nothing to send; then only what is new.
  const p2 = await env.startPlugin();
  await p2.waitForLog((l) => l.msg === "Caught up on access requests");
  await env.waitForNoMoreEmails(500);
  assert.equal(env.emails.length, 8, "nothing the Go plugin sent is resent");
  t.submitReview(reviewed.id, { author: R3, proposedState: "APPROVED", reason: "three" });
  await env.waitForEmailsFor(reviewed.id, 8);
  await env.waitForNoMoreEmails();

  assert.equal(env.emailsFor(resolved.id).length, 4);
  const after = env.emailsFor(reviewed.id).slice(4).map((e) => `${e.to}: ${e.text}`);
  assert.equal(after.length, 4);
  for (const to of ["all@example.com", R1]) {
    const mine = after.filter((x) => x.startsWith(`${to}: `));
    assert.equal(mine.length, 2, to);
    assert.ok(mine[0].includes(`${R3} reviewed the request`), mine[0]);
    assert.ok(mine[1].includes("Status: ✅ APPROVED (three)"), mine[1]);
  }
  assert.ok(!after.some((x) => x.includes(`${R2} reviewed`)), "Go's review is not resent");
  checkThreading(env.emailsFor(reviewed.id));
  const data = t.getPluginData(reviewed.id, "email")!;
  assert.equal(data.reviews_count, "3");
  assert.equal(data.resolution, "APPROVED");
  assert.equal(await p2.stop(), 0);
});
