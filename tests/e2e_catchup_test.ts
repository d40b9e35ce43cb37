/**
 * End-to-end catch-up: the real CLI keeps every request's emails exactly-once across a Teleport
 * outage (server stopped, then back on the same port), a stalled watch stream whose held events
 * arrive late and out of date after a reconnect, and a restart of the plugin itself (SIGTERM,
 * then two replicas at once) in the middle of requests' lives.
 */
import assert from "node:assert/strict";
import { checkThreading, E2eEnv, storedThreads } from "./helpers/e2e_env.ts";
import type { PluginProcess } from "./helpers/plugin_process.ts";

const OSS = "requester-oss@example.com";
const R1 = "reviewer1@example.com";

function texts(env: E2eEnv, id: string): string[] {
  return env.emailsFor(id).map((e) => `${e.to}: ${e.text.split("\n")[0]}`).sort();
}

function watcherConnections(plugin: PluginProcess): number {
  return plugin.logs.filter((l) => l.msg === "Caught up on access requests").length;
}

Deno.test("e2e smtp: Teleport outage: requests created, reviewed, approved and deleted meanwhile are caught up exactly once", async () => {
  await using env = await E2eEnv.start({ mailer: "smtp" });
  const plugin = await env.startPlugin();
  const t = env.teleport;
  const approveMe = t.createAccessRequest({
    user: OSS,
    roles: ["editor"],
    suggestedReviewers: [R1],
  });
  const deleteMe = t.createAccessRequest({ user: OSS, roles: ["editor"] });
  const reviewMe = t.createAccessRequest({
    user: OSS,
    roles: ["editor"],
    suggestedReviewers: [R1],
    thresholds: { approve: 2, deny: 2 },
  });
  await env.waitForEmailsFor(approveMe.id, 2);
  await env.waitForEmailsFor(deleteMe.id, 1);
  await env.waitForEmailsFor(reviewMe.id, 2);
  await env.waitForNoMoreEmails(300);
  const before = watcherConnections(plugin);

  await t.stop();
  await plugin.waitForLog((l) =>
    l.msg === "Connection problem detected, attempting to reconnect" ||
    l.msg === "Watcher stream closed attempting to reconnect"
  );
  // While Teleport is down (the plugin sees none of these events):
  t.setState(approveMe.id, "APPROVED", "while you were away");
  t.deleteAccessRequest(deleteMe.id);
  t.submitReview(reviewMe.id, { author: R1, proposedState: "APPROVED", reason: "one" });
  t.submitReview(reviewMe.id, { author: "reviewer2@example.com", proposedState: "DENIED" });
  const fresh = t.createAccessRequest({ user: OSS, roles: ["editor"], reason: "new meanwhile" });
  const freshReviewed = t.createAccessRequest({
    user: OSS,
    roles: ["editor"],
    suggestedReviewers: [R1],
    thresholds: { approve: 2, deny: 2 },
  });
  t.submitReview(freshReviewed.id, { author: R1, proposedState: "DENIED", reason: "hmm" });
  const neverSeen = t.createAccessRequest({ user: OSS, roles: ["editor"] });
  t.setState(neverSeen.id, "APPROVED", "never announced");
  const gone = t.createAccessRequest({ user: OSS, roles: ["editor"] });
  t.deleteAccessRequest(gone.id);
  // Let the plugin fail a few reconnects before the server comes back.
  await new Promise((r) => setTimeout(r, 1000));
  assert.equal(plugin.exitCode, undefined, "the plugin keeps running through the outage");
  await t.restart();
  await plugin.waitForLog((l) => l.msg === "Caught up on access requests", {
    count: before + 1,
    timeoutMs: 30_000,
  });
  await env.waitForEmailsFor(approveMe.id, 4);
  await env.waitForEmailsFor(deleteMe.id, 2);
  await env.waitForEmailsFor(reviewMe.id, 6);
  await env.waitForEmailsFor(fresh.id, 1);
  await env.waitForEmailsFor(freshReviewed.id, 4);
  await env.waitForEmailsFor(neverSeen.id, 2);
  await env.waitForNoMoreEmails();

  assert.deepEqual(texts(env, approveMe.id), [
    "all@example.com: Role Request has been resolved:",
    "all@example.com: You have a new Role Request:",
    `${R1}: Role Request has been resolved:`,
    `${R1}: You have a new Role Request:`,
  ]);
  assert.ok(env.emailsFor(approveMe.id)[2].text.includes("APPROVED (while you were away)"));
  assert.equal(env.emailsFor(deleteMe.id).length, 2);
  assert.ok(env.emailsFor(deleteMe.id)[1].text.includes("Status: ⌛ EXPIRED"));
  // Both reviews, in Teleport's order, to both threads; still pending (no resolution).
  assert.equal(env.emailsFor(reviewMe.id).length, 6);
  for (const to of ["all@example.com", R1]) {
    const mine = env.emailsFor(reviewMe.id).filter((e) => e.to === to).map((e) => e.text);
    assert.ok(mine[1].includes(`${R1} reviewed the request`), mine[1]);
    assert.ok(mine[2].includes("reviewer2@example.com reviewed the request"), mine[2]);
  }
  assert.equal(env.emailsFor(fresh.id).length, 1);
  assert.ok(env.emailsFor(fresh.id)[0].text.includes("Reason: new meanwhile"));
  // New while down and already reviewed: the thread, then the review, per recipient.
  checkThreading(env.emailsFor(freshReviewed.id));
  for (const to of ["all@example.com", R1]) {
    const mine = env.emailsFor(freshReviewed.id).filter((e) => e.to === to).map((e) => e.text);
    assert.equal(mine.length, 2);
    assert.ok(mine[0].includes("You have a new Role Request"), mine[0]);
    assert.ok(mine[1].includes(`${R1} reviewed the request`), mine[1]);
  }
  // Created and approved while the plugin was away (after it first connected): announced, then
  // resolved, in one thread. Created and deleted meanwhile: nothing is known, never announced.
  assert.deepEqual(texts(env, neverSeen.id), [
    "all@example.com: Role Request has been resolved:",
    "all@example.com: You have a new Role Request:",
  ]);
  assert.ok(env.emailsFor(neverSeen.id)[0].text.includes("You have a new Role Request"));
  assert.ok(env.emailsFor(neverSeen.id)[1].text.includes("APPROVED (never announced)"));
  assert.equal(env.emailsFor(gone.id).length, 0);
  for (const id of [approveMe.id, deleteMe.id, reviewMe.id, neverSeen.id]) {
    checkThreading(env.emailsFor(id));
  }
  assert.equal(env.emails.length, 4 + 2 + 6 + 1 + 4 + 2);
  assert.equal(await plugin.stop(), 0);
});

Deno.test("e2e smtp: stalled watch stream, then a reconnect and late stale events: no duplicates, no gaps", async () => {
  await using env = await E2eEnv.start({ mailer: "smtp" });
  const plugin = await env.startPlugin();
  const t = env.teleport;
  const a = t.createAccessRequest({
    user: OSS,
    roles: ["editor"],
    suggestedReviewers: [R1],
    thresholds: { approve: 2, deny: 2 },
  });
  await env.waitForEmailsFor(a.id, 2);
  const before = watcherConnections(plugin);

  t.pauseEvents(true);
  const b = t.createAccessRequest({ user: OSS, roles: ["editor"], reason: "held" });
  t.submitReview(a.id, { author: R1, proposedState: "APPROVED", reason: "first" });
  t.submitReview(a.id, { author: "reviewer2@example.com", proposedState: "APPROVED" });
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(env.emails.length, 2, "nothing while the stream is stalled");
  // The stream is cut: the reconnect's catch-up finds `b` new and `a` approved by two reviews
  // (2 reviews + the resolution per thread).
  t.dropStreams();
  await plugin.waitForLog((l) => l.msg === "Caught up on access requests", { count: before + 1 });
  await env.waitForEmailsFor(a.id, 8);
  await env.waitForEmailsFor(b.id, 1);
  // The held events (out of date: `a` pending with fewer reviews, `b` pending) now arrive on
  // the new stream: all already handled.
  t.pauseEvents(false);
  await env.waitForNoMoreEmails();
  assert.equal(env.emailsFor(a.id).length, 8);
  assert.equal(env.emailsFor(b.id).length, 1);
  assert.ok(env.emailsFor(b.id)[0].text.includes("Reason: held"));
  checkThreading(env.emailsFor(a.id));
  for (const to of ["all@example.com", R1]) {
    const mine = env.emailsFor(a.id).filter((e) => e.to === to).map((e) => e.text);
    assert.ok(mine[1].includes(`${R1} reviewed the request`), mine[1]);
    assert.ok(mine[2].includes("reviewer2@example.com reviewed the request"), mine[2]);
    assert.ok(mine[3].includes("Status: ✅ APPROVED"), mine[3]);
  }
  assert.equal(await plugin.stop(), 0);
});

Deno.test("e2e smtp: first install stays silent about old resolved requests; ones created and resolved while the stream was stalled are announced once", async () => {
  await using env = await E2eEnv.start({ mailer: "smtp" });
  const t = env.teleport;
  // Resolved before the plugin ever ran: no plugin data anywhere.
  const old = t.createAccessRequest({ user: OSS, roles: ["editor"], suggestedReviewers: [R1] });
  t.setState(old.id, "APPROVED", "long ago");
  const oldDenied = t.createAccessRequest({
    user: OSS,
    roles: ["editor"],
    suggestedReviewers: [R1],
  });
  t.submitReview(oldDenied.id, { author: R1, proposedState: "DENIED", reason: "old" });
  const oldPending = t.createAccessRequest({ user: OSS, roles: ["editor"], reason: "old pending" });
  await new Promise((r) => setTimeout(r, 50));
  // No clock-skew margin (everything runs on this host), so "before the first INIT" is exact.
  const plugin = await env.startPlugin({ env: { TELEPORT_EMAIL_WATERMARK_MARGIN_MS: "0" } });
  await plugin.waitForLog((l) => l.msg === "Caught up on access requests");
  await env.waitForEmailsFor(oldPending.id, 1);
  const before = watcherConnections(plugin);

  t.pauseEvents(true);
  const away = t.createAccessRequest({
    user: OSS,
    roles: ["editor"],
    suggestedReviewers: [R1],
    thresholds: { approve: 2, deny: 2 },
  });
  t.submitReview(away.id, { author: R1, proposedState: "APPROVED", reason: "first" });
  t.submitReview(away.id, { author: "reviewer2@example.com", proposedState: "APPROVED" });
  t.dropStreams();
  await plugin.waitForLog((l) => l.msg === "Caught up on access requests", { count: before + 1 });
  await env.waitForEmailsFor(away.id, 8);
  // The held events (PENDING, then each review) arrive late: all already handled.
  t.pauseEvents(false);
  await env.waitForNoMoreEmails();

  assert.equal(env.emailsFor(old.id).length, 0);
  assert.equal(env.emailsFor(oldDenied.id).length, 0);
  assert.equal(env.emailsFor(oldPending.id).length, 1, "pending requests are always announced");
  assert.equal(t.getPluginData(old.id, "email"), undefined, "nothing written for skipped ones");
  checkThreading(env.emailsFor(away.id));
  for (const to of ["all@example.com", R1]) {
    const mine = env.emailsFor(away.id).filter((e) => e.to === to).map((e) => e.text);
    assert.equal(mine.length, 4, to);
    assert.ok(mine[0].includes("You have a new Role Request"), mine[0]);
    assert.ok(mine[1].includes(`${R1} reviewed the request`), mine[1]);
    assert.ok(mine[2].includes("reviewer2@example.com reviewed the request"), mine[2]);
    assert.ok(mine[3].includes("Status: ✅ APPROVED"), mine[3]);
  }
  const data = t.getPluginData(away.id, "email");
  assert.equal(data?.resolution, "APPROVED");
  assert.equal(data?.reviews_count, "2");
  assert.equal(env.emails.length, 1 + 8);
  assert.equal(await plugin.stop(), 0);
});

Deno.test("e2e smtp: plugin restarted (SIGTERM, then two replicas) mid-life of requests: no duplicates, no gaps", async () => {
  await using env = await E2eEnv.start({ mailer: "smtp" });
  const t = env.teleport;
  const p1 = await env.startPlugin();
  const reviewed = t.createAccessRequest({
    user: OSS,
    roles: ["editor"],
    suggestedReviewers: [R1],
    thresholds: { approve: 2, deny: 2 },
  });
  const pending = t.createAccessRequest({
    user: OSS,
    roles: ["editor"],
    thresholds: { approve: 2, deny: 2 },
  });
  const deleted = t.createAccessRequest({ user: OSS, roles: ["editor"] });
  await env.waitForEmailsFor(reviewed.id, 2);
  await env.waitForEmailsFor(deleted.id, 1);
  await env.waitForEmailsFor(pending.id, 1);
  t.submitReview(reviewed.id, { author: R1, proposedState: "APPROVED", reason: "one" });
  t.submitReview(pending.id, { author: R1, proposedState: "DENIED", reason: "hmm" });
  await env.waitForEmailsFor(reviewed.id, 4);
  await env.waitForEmailsFor(pending.id, 2);
  await env.waitForNoMoreEmails(300);
  assert.equal(await p1.stop("SIGTERM"), 0);
  assert.ok(p1.logs.some((l) => l.msg === "Successfully shut down"));

  // While no plugin runs: the deciding review, a deletion, a new request.
  t.submitReview(reviewed.id, { author: "reviewer2@example.com", proposedState: "APPROVED" });
  t.deleteAccessRequest(deleted.id);
  const created = t.createAccessRequest({ user: OSS, roles: ["editor"], reason: "while down" });

  // Two replicas start at once (the same pending state with its review is seen twice more).
  const [p2, p3] = await Promise.all([env.startPlugin(), env.startPlugin()]);
  await env.waitForEmailsFor(reviewed.id, 8);
  await env.waitForEmailsFor(deleted.id, 2);
  await env.waitForEmailsFor(created.id, 1);
  // Live events with both replicas watching.
  t.setState(created.id, "APPROVED", "now");
  await env.waitForEmailsFor(created.id, 2);
  await env.waitForNoMoreEmails();

  assert.equal(env.emailsFor(reviewed.id).length, 8);
  assert.equal(env.emailsFor(pending.id).length, 2, "the pending review is not resent");
  assert.equal(env.emailsFor(deleted.id).length, 2);
  assert.equal(env.emailsFor(created.id).length, 2);
  assert.equal(env.emails.length, 8 + 2 + 2 + 2);
  for (const id of [reviewed.id, pending.id, deleted.id, created.id]) {
    checkThreading(env.emailsFor(id));
  }
  const data = t.getPluginData(reviewed.id, "email");
  assert.equal(storedThreads(data).length, 2);
  assert.equal(data?.reviews_count, "2");
  assert.equal(data?.resolution, "APPROVED");
  assert.equal(t.getPluginData(pending.id, "email")?.reviews_count, "1");
  assert.deepEqual(await Promise.all([p2.stop(), p3.stop()]), [0, 0]);
});

Deno.test("e2e smtp: start-up catch-up of 150 pending requests over several list pages sends each thread once", async () => {
  await using env = await E2eEnv.start({
    mailer: "smtp",
    server: { maxPageSize: 40 },
    severity: "info",
  });
  const ids = Array.from(
    { length: 150 },
    (_, i) => env.teleport.createAccessRequest({ user: `u${i}@example.com`, roles: ["editor"] }).id,
  );
  const plugin = await env.startPlugin();
  await env.waitForEmails(150, 60_000);
  await env.waitForNoMoreEmails();
  assert.equal(env.emails.length, 150);
  for (const id of ids) assert.equal(env.emailsFor(id).length, 1, id);
  assert.equal(await plugin.stop(), 0);
});

Deno.test("e2e smtp: Teleport RPC failures and dropped SMTP connections while handling: retried, sent exactly once", async () => {
  await using env = await E2eEnv.start({ mailer: "smtp" });
  const plugin = await env.startPlugin();
  const t = env.teleport;
  const grpcUnavailable = 14;
  // The lease write fails twice (Teleport briefly unavailable): the event is retried.
  t.injectError("UpdatePluginData", grpcUnavailable, 2);
  const a = t.createAccessRequest({ user: OSS, roles: ["editor"], suggestedReviewers: [R1] });
  await env.waitForEmailsFor(a.id, 2, 30_000);
  // Reads fail once; the pooled SMTP connections are closed by the server (421) in between.
  env.smtp!.dropConnections();
  t.injectError("GetPluginData", grpcUnavailable, 1);
  t.setState(a.id, "APPROVED", "after hiccups");
  await env.waitForEmailsFor(a.id, 4, 30_000);
  env.smtp!.dropConnections();
  const b = t.createAccessRequest({ user: OSS, roles: ["editor"] });
  await env.waitForEmailsFor(b.id, 1, 30_000);
  await env.waitForNoMoreEmails();
  assert.equal(env.emailsFor(a.id).length, 4);
  assert.equal(env.emailsFor(b.id).length, 1);
  checkThreading(env.emailsFor(a.id));
  assert.ok(env.emailsFor(a.id)[3].text.includes("APPROVED (after hiccups)"));
  assert.ok(
    plugin.logs.some((l) => l.msg === "Failed to process request" && l.request_id === a.id),
  );
  assert.equal(await plugin.stop(), 0);
});

Deno.test("e2e smtp: two replicas share a race of 8 requests with reviews: 12 emails each, none twice", async () => {
  await using env = await E2eEnv.start({
    mailer: "smtp",
    severity: "info",
    server: { advancedAccessWorkflows: true },
  });
  const replicas = await Promise.all([env.startPlugin(), env.startPlugin()]);
  const n = 8;
  const ids = Array.from({ length: n }, () =>
    env.teleport.createAccessRequest({
      user: "requester1@example.com",
      roles: ["editor"],
      suggestedReviewers: [R1, "reviewer2@example.com"],
      thresholds: { approve: 2, deny: 2 },
    }).id);
  // Each reviewer approves when their thread email arrives (Go's TestRace).
  let seen = 0;
  const deadline = Date.now() + 60_000;
  while (env.emails.length < 12 * n) {
    if (Date.now() > deadline) throw new Error(`${env.emails.length} of ${12 * n} emails`);
    for (const all = env.emails; seen < all.length; seen++) {
      const e = all[seen];
      if (e.text.includes("You have a new Role Request") && e.to !== "all@example.com") {
        env.teleport.submitReview(e.subject.split("Role Request ")[1], {
          author: e.to,
          proposedState: "APPROVED",
          reason: "okay",
        });
      }
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  await env.waitForNoMoreEmails();
  assert.equal(env.emails.length, 12 * n);
  assert.equal(new Set(env.emails.map((e) => e.messageId)).size, 12 * n);
  for (const id of ids) {
    const mails = env.emailsFor(id);
    const count = (s: string) => mails.filter((e) => e.text.includes(s)).length;
    assert.deepEqual(
      [
        count("You have a new Role Request"),
        count("reviewed the request"),
        count("has been resolved"),
      ],
      [3, 6, 3],
      id,
    );
    checkThreading(mails);
  }
  assert.deepEqual(await Promise.all(replicas.map((p) => p.stop())), [0, 0]);
});
