/**
 * The Go plugin's integration scenarios (reference §5.5), run against the real CLI as a child
 * process, the test Teleport server over mutual-TLS gRPC, and each mailer: a real SMTP server
 * (STARTTLS + AUTH) and the fake Mailgun API. One plugin process per test; the scenarios of a
 * suite run concurrently against it, each on its own request (emails are told apart by the
 * request ID in the subject).
 */
import assert from "node:assert/strict";
import { checkThreading, type DeliveredEmail, E2eEnv, storedThreads } from "./helpers/e2e_env.ts";

const MAILERS = ["smtp", "mailgun"] as const;
const SUGGESTED = ["reviewer1@example.com", "reviewer2@example.com"];

function sortedTo(emails: DeliveredEmail[]): string[] {
  return emails.map((e) => e.to).sort();
}

function assertAll(emails: DeliveredEmail[], fragment: string): void {
  for (const e of emails) {
    assert.ok(
      e.text.includes(fragment),
      `email to ${e.to} lacks ${JSON.stringify(fragment)}:\n${e.text}`,
    );
  }
}

/** Creates an OSS-style request (reason `because of`) and waits for its thread emails. */
async function newRequest(
  env: E2eEnv,
  user: string,
  suggestedReviewers: string[],
  thresholds?: { approve: number; deny: number },
) {
  const req = env.teleport.createAccessRequest({
    user,
    roles: ["editor"],
    reason: "because of",
    suggestedReviewers,
    thresholds,
  });
  const threads = await env.waitForEmailsFor(req.id, suggestedReviewers.length + 1);
  await env.waitForPluginData(req.id, (d) => storedThreads(d).length === threads.length);
  return { id: req.id, threads };
}

/** Waits for `n` more emails about `id` beyond the `seen` first ones; returns just the new ones. */
async function next(env: E2eEnv, id: string, seen: number, n: number) {
  const all = await env.waitForEmailsFor(id, seen + n);
  return all.slice(seen, seen + n);
}

// ---------------------------------------------------------------------------------------------
// OSS suite

async function testNewThreads(env: E2eEnv): Promise<string> {
  const req = env.teleport.createAccessRequest({
    user: "requester-oss@example.com",
    roles: ["editor"],
    reason: "because of",
    suggestedReviewers: SUGGESTED,
  });
  const data = await env.waitForPluginData(req.id, (d) => storedThreads(d).length > 0);
  const mails = await env.waitForEmailsFor(req.id, 3);
  const final = await env.waitForPluginData(req.id, (d) => storedThreads(d).length >= 3);
  assert.ok(data);
  assert.equal(storedThreads(final).length, 3, "exactly 3 email_threads");
  assert.deepEqual(
    storedThreads(final).map((t) => t.email).sort(),
    ["all@example.com", ...SUGGESTED],
  );
  assert.equal(mails.length, 3);
  for (const m of mails) assert.match(m.from, /noreply@example\.com/);
  assert.deepEqual(sortedTo(mails), ["all@example.com", ...SUGGESTED]);
  for (const m of mails) assert.ok(m.subject.includes(req.id), m.subject);
  assertAll(mails, "You have a new Role Request");
  assertAll(mails, "User: requester-oss@example.com");
  assertAll(mails, "Reason: because of");
  assertAll(mails, "Status: ⏳ PENDING");
  return req.id;
}

async function testResolution(
  env: E2eEnv,
  resolve: (id: string) => void,
  status: string,
): Promise<string> {
  const { id } = await newRequest(env, "requester-oss@example.com", ["reviewer1@example.com"]);
  resolve(id);
  const mails = await next(env, id, 2, 2);
  assert.deepEqual(sortedTo(mails), ["all@example.com", "reviewer1@example.com"]);
  assertAll(mails, "Role Request has been resolved");
  assertAll(mails, status);
  return id;
}

// ---------------------------------------------------------------------------------------------
// Enterprise suite

async function testReviewReplies(env: E2eEnv): Promise<string> {
  const { id } = await newRequest(env, "requester1@example.com", ["reviewer1@example.com"], {
    approve: 2,
    deny: 2,
  });
  env.teleport.submitReview(id, {
    author: "reviewer1@example.com",
    proposedState: "APPROVED",
    reason: "okay",
  });
  const r1 = await next(env, id, 2, 2);
  assert.deepEqual(sortedTo(r1), ["all@example.com", "reviewer1@example.com"]);
  assertAll(r1, "reviewer1@example.com reviewed the request");
  assertAll(r1, "Resolution: ✅ APPROVED");
  assertAll(r1, "Reason: okay");
  env.teleport.submitReview(id, {
    author: "reviewer2@example.com",
    proposedState: "DENIED",
    reason: "not okay",
  });
  const r2 = await next(env, id, 4, 2);
  assertAll(r2, "reviewer2@example.com reviewed the request");
  assertAll(r2, "Resolution: ❌ DENIED");
  assertAll(r2, "Reason: not okay");
  return id;
}

async function testResolutionByReview(
  env: E2eEnv,
  proposedState: "APPROVED" | "DENIED",
  reasons: [string, string],
  status: string,
): Promise<string> {
  const { id } = await newRequest(env, "requester2@example.com", ["reviewer1@example.com"], {
    approve: 2,
    deny: 2,
  });
  env.teleport.submitReview(id, {
    author: "reviewer1@example.com",
    proposedState,
    reason: reasons[0],
  });
  const r1 = await next(env, id, 2, 2);
  assertAll(r1, "reviewer1@example.com reviewed the request");
  env.teleport.submitReview(id, {
    author: "reviewer2@example.com",
    proposedState,
    reason: reasons[1],
  });
  assert.equal(env.teleport.getRequest(id)?.state, proposedState);
  const rest = await next(env, id, 4, 4);
  // Per thread the review comes before the resolution (threads may interleave).
  for (const to of ["all@example.com", "reviewer1@example.com"]) {
    const mine = rest.filter((e) => e.to === to);
    assert.equal(mine.length, 2, `2 emails to ${to}`);
    assert.ok(mine[0].text.includes("reviewer2@example.com reviewed the request"), mine[0].text);
    assert.ok(mine[1].text.includes(status), mine[1].text);
  }
  return id;
}

/**
 * TestRace: `n` requests at once; each reviewer approves when their thread email arrives. Every
 * request ends with 3 threads, 6 review replies and 3 resolutions; every Message-ID is unique.
 */
async function testRace(env: E2eEnv, n: number): Promise<string[]> {
  const before = env.emails.length;
  const ids = await Promise.all(
    Array.from({ length: n }, () =>
      Promise.resolve().then(() =>
        env.teleport.createAccessRequest({
          user: "requester1@example.com",
          roles: ["editor"],
          reason: "because of",
          suggestedReviewers: SUGGESTED,
          thresholds: { approve: 2, deny: 2 },
        }).id
      )),
  );
  const idSet = new Set(ids);
  const mine = () => env.emails.slice(before).filter((e) => idSet.has(requestIdOf(e)));
  let handled = 0;
  const deadline = Date.now() + 60_000;
  while (mine().length < 12 * n) {
    const all = mine();
    for (; handled < all.length; handled++) {
      const e = all[handled];
      if (e.text.includes("You have a new Role Request") && e.to !== "all@example.com") {
        env.teleport.submitReview(requestIdOf(e), {
          author: e.to,
          proposedState: "APPROVED",
          reason: "okay",
        });
      }
    }
    if (Date.now() > deadline) {
      throw new Error(`TestRace: ${all.length} of ${12 * n} emails after 60 s`);
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  return ids;
}

function requestIdOf(e: DeliveredEmail): string {
  const at = e.subject.indexOf("Role Request ");
  return at < 0 ? "" : e.subject.slice(at + "Role Request ".length).trim();
}

function checkRace(env: E2eEnv, ids: string[]): void {
  const ids2 = new Set<string>();
  for (const id of ids) {
    const mails = env.emailsFor(id);
    for (const m of mails) {
      assert.ok(!ids2.has(m.messageId), `Message-ID ${m.messageId} is unique`);
      ids2.add(m.messageId);
    }
    const threads = mails.filter((m) => m.text.includes("You have a new Role Request"));
    const replies = mails.filter((m) => m.text.includes("reviewed the request"));
    const resolutions = mails.filter((m) => m.text.includes("has been resolved"));
    assert.equal(threads.length, 3, `3 threads for ${id}`);
    assert.equal(replies.length, 6, `6 review replies for ${id}`);
    assert.equal(resolutions.length, 3, `3 resolutions for ${id}`);
    assert.equal(mails.length, 12, `12 emails for ${id}`);
    assertAll(resolutions, "Status: ✅ APPROVED (okay)");
    checkThreading(mails);
  }
}

for (const mailer of MAILERS) {
  Deno.test(`e2e ${mailer}: OSS suite (TestNewThreads, TestApproval, TestDenial, TestExpiration)`, async () => {
    await using env = await E2eEnv.start({ mailer });
    await env.startPlugin();
    const ids = await Promise.all([
      testNewThreads(env),
      testResolution(
        env,
        (id) => env.teleport.setState(id, "APPROVED", "okay"),
        "Status: ✅ APPROVED (okay)",
      ),
      testResolution(
        env,
        (id) => env.teleport.setState(id, "DENIED", "not okay"),
        "Status: ❌ DENIED (not okay)",
      ),
      testResolution(env, (id) => env.teleport.deleteAccessRequest(id), "Status: ⌛ EXPIRED"),
    ]);
    await env.waitForNoMoreEmails();
    assert.deepEqual(ids.map((id) => env.emailsFor(id).length), [3, 4, 4, 4]);
    assert.equal(env.emails.length, 15, "no email about anything else");
    for (const id of ids) checkThreading(env.emailsFor(id));
    // A resolved request's plugin data records the resolution (Go keys).
    assert.equal(env.teleport.getPluginData(ids[1], "email")?.resolution, "APPROVED");
    assert.equal(env.teleport.getPluginData(ids[2], "email")?.resolution, "DENIED");
    assert.equal(env.teleport.getPluginData(ids[3], "email")?.resolution, "EXPIRED");
  });

  Deno.test(`e2e ${mailer}: Enterprise suite (TestReviewReplies, TestApprovalByReview, TestDenialByReview, TestRace)`, async () => {
    await using env = await E2eEnv.start({
      mailer,
      server: { advancedAccessWorkflows: true },
      severity: "info",
    });
    await env.startPlugin();
    const [replies, approved, denied, race] = await Promise.all([
      testReviewReplies(env),
      testResolutionByReview(
        env,
        "APPROVED",
        ["okay", "finally okay"],
        "Status: ✅ APPROVED (finally okay)",
      ),
      testResolutionByReview(
        env,
        "DENIED",
        ["not okay", "finally not okay"],
        "Status: ❌ DENIED (finally not okay)",
      ),
      testRace(env, 8),
    ]);
    await env.waitForNoMoreEmails();
    assert.equal(env.emailsFor(replies).length, 6, "2 threads + 2 × 2 reviews, no resolution");
    assert.equal(env.emailsFor(approved).length, 8);
    assert.equal(env.emailsFor(denied).length, 8);
    for (const id of [replies, approved, denied]) checkThreading(env.emailsFor(id));
    checkRace(env, race);
    assert.equal(env.emails.length, 6 + 8 + 8 + 12 * 8, "no email about anything else");
    const unique = new Set(env.emails.map((e) => e.messageId));
    assert.equal(unique.size, env.emails.length, "every Message-ID is unique");
    const data = env.teleport.getPluginData(approved, "email");
    assert.equal(data?.reviews_count, "2");
    assert.equal(data?.resolution, "APPROVED");
    assert.equal(data?.resolve_reason, "finally okay");
  });
}
