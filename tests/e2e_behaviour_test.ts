/**
 * End-to-end acceptance of the behaviours the Go code implies (reference §5.6): role routing,
 * invalid suggested reviewers, review dedupe, deleting a resolved request, OSS tsh lines and the
 * Enterprise link, partial and total send failures (permanent and retryable), promotion. The
 * real CLI runs as a child process against the test Teleport server and a real SMTP server
 * whose failure injection is per recipient, so the scenarios run concurrently on one plugin.
 */
import assert from "node:assert/strict";
import { checkThreading, type DeliveredEmail, E2eEnv, storedThreads } from "./helpers/e2e_env.ts";
import type { PluginProcess } from "./helpers/plugin_process.ts";

function sortedTo(emails: DeliveredEmail[]): string[] {
  return emails.map((e) => e.to).sort();
}

function delivery(env: E2eEnv, id: string): { recipients: string[]; failed: string[] } {
  return JSON.parse(env.teleport.getPluginData(id, "email")?.email_delivery ?? "{}");
}

const ROUTING = {
  "dev": "d@x",
  "*": "all@x",
  "blackhole": "nowhere@example.com",
  "flaky": "flaky@example.com",
};

/** dev only → d@x (and the valid suggested reviewer), not all@x; dev+ops → both; `bob` skipped. */
async function routing(env: E2eEnv, plugin: PluginProcess) {
  const dev = env.teleport.createAccessRequest({
    user: "alice@example.com",
    roles: ["dev"],
    suggestedReviewers: ["bob", "rev@example.com"],
  });
  const both = env.teleport.createAccessRequest({
    user: "alice@example.com",
    roles: ["dev", "ops"],
  });
  await env.waitForEmailsFor(dev.id, 2);
  await env.waitForEmailsFor(both.id, 2);
  const warnings = await plugin.waitForLog((l) =>
    l.msg === "Failed to notify a suggested reviewer with an invalid email address" &&
    l.reviewer === "bob"
  );
  assert.equal(warnings[0].level, "WARN");
  return () => {
    assert.deepEqual(sortedTo(env.emailsFor(dev.id)), ["d@x", "rev@example.com"]);
    assert.deepEqual(sortedTo(env.emailsFor(both.id)), ["all@x", "d@x"]);
    assert.deepEqual(
      storedThreads(env.teleport.getPluginData(dev.id, "email")).map((t) => t.email).sort(),
      ["d@x", "rev@example.com"],
    );
  };
}

/** OSS (no AdvancedAccessWorkflows): tsh lines in the new-request email, none when resolved. */
async function ossLinksAndDeleteAfterResolve(env: E2eEnv) {
  const req = env.teleport.createAccessRequest({ user: "alice@example.com", roles: ["ops"] });
  const [thread] = await env.waitForEmailsFor(req.id, 1);
  assert.ok(thread.text.includes(`Approve: tsh request review --approve ${req.id}`), thread.text);
  assert.ok(thread.text.includes(`Deny: tsh request review --deny ${req.id}`), thread.text);
  assert.ok(!thread.text.includes("Link:"), thread.text);
  env.teleport.setState(req.id, "APPROVED", "fine");
  const [, resolved] = await env.waitForEmailsFor(req.id, 2);
  assert.ok(resolved.text.includes("Status: ✅ APPROVED (fine)"), resolved.text);
  assert.ok(!resolved.text.includes("tsh request review"), resolved.text);
  assert.ok(!resolved.text.includes("Link:"), resolved.text);
  // Deleting a resolved request sends nothing.
  env.teleport.deleteAccessRequest(req.id);
  return () => {
    assert.equal(env.emailsFor(req.id).length, 2, "nothing after deleting a resolved request");
    assert.equal(env.teleport.getPluginData(req.id, "email")?.resolution, "APPROVED");
  };
}

/** One of 3 recipients rejected with 550: 2 threads stored; replies only to those 2. */
async function partialFailure(env: E2eEnv, plugin: PluginProcess) {
  const req = env.teleport.createAccessRequest({
    user: "alice@example.com",
    roles: ["ops"],
    suggestedReviewers: ["ok1@example.com", "bad@example.com"],
  });
  await env.waitForEmailsFor(req.id, 2);
  await env.waitForPluginData(req.id, (d) => storedThreads(d).length === 2);
  await env.waitForPluginData(req.id, (d) => JSON.parse(d.email_delivery ?? "{}").failed?.length);
  await plugin.waitForLog((l) =>
    l.msg === "Failed send one or more messages" && l.request_id === req.id
  );
  // Threshold 1: the review denies the request (a review reply, then the resolution).
  env.teleport.submitReview(req.id, { author: "ok1@example.com", proposedState: "DENIED" });
  await env.waitForEmailsFor(req.id, 6);
  return () => {
    const mails = env.emailsFor(req.id);
    assert.equal(mails.length, 6);
    assert.deepEqual(sortedTo(mails.slice(0, 2)), ["all@x", "ok1@example.com"]);
    assert.deepEqual(sortedTo(mails.slice(2)), [
      "all@x",
      "all@x",
      "ok1@example.com",
      "ok1@example.com",
    ]);
    assert.equal(
      mails.filter((m) => m.text.includes("ok1@example.com reviewed the request")).length,
      2,
    );
    assert.equal(mails.filter((m) => m.text.includes("Status: ❌ DENIED")).length, 2);
    checkThreading(mails);
    const d = delivery(env, req.id);
    assert.deepEqual(d.failed, ["bad@example.com"]);
    assert.deepEqual(
      storedThreads(env.teleport.getPluginData(req.id, "email")).map((t) => t.email).sort(),
      ["all@x", "ok1@example.com"],
    );
  };
}

/** The only recipient rejected with 550 (permanent): no thread, never retried, nothing later. */
async function permanentTotalFailure(env: E2eEnv, plugin: PluginProcess) {
  const req = env.teleport.createAccessRequest({ user: "alice@example.com", roles: ["blackhole"] });
  const failure = await plugin.waitForLog((l) =>
    l.msg === "Failed send one or more messages" && l.request_id === req.id
  );
  assert.match(String(failure[0].error), /550/);
  assert.equal(failure[0].retry, "no: permanent failure, will not be retried");
  await env.waitForPluginData(req.id, (d) => JSON.parse(d.email_delivery ?? "{}").failed?.length);
  // The resolution is recorded (nothing to send it to).
  env.teleport.setState(req.id, "APPROVED", "anyway");
  await env.waitForPluginData(req.id, (d) => d.resolution === "APPROVED");
  return () => {
    assert.equal(env.emailsFor(req.id).length, 0);
    const data = env.teleport.getPluginData(req.id, "email");
    assert.equal(storedThreads(data).length, 0, "no thread stored");
    assert.deepEqual(delivery(env, req.id).failed, ["nowhere@example.com"]);
    // Never retried: one failure log line for the one new-thread attempt.
    assert.equal(
      plugin.logs.filter((l) =>
        l.msg === "Failed send one or more messages" && l.request_id === req.id
      ).length,
      1,
    );
  };
}

/**
 * The only recipient answers 451 (retryable) for a while, then accepts: the plugin keeps retrying
 * (in-event attempts, then engine retries with backoff) and the email arrives exactly once.
 */
async function retryableTotalFailure(env: E2eEnv, plugin: PluginProcess) {
  env.smtp!.rejectRecipients.set("flaky@example.com", {
    code: 451,
    message: "Greylisted, try again later",
  });
  const req = env.teleport.createAccessRequest({ user: "alice@example.com", roles: ["flaky"] });
  // Two failed events (each after its in-event attempts), then recovery.
  const failures = await plugin.waitForLog(
    (l) => l.msg === "Failed to process request" && l.request_id === req.id,
    { count: 2, timeoutMs: 30_000 },
  );
  assert.match(String(failures[0].error), /451/);
  assert.match(String(failures[0].retry), /^yes, in [\d.]+ (s|min) at \S+Z \(retry 1 of 30\)$/);
  assert.equal(env.emailsFor(req.id).length, 0);
  env.smtp!.rejectRecipients.delete("flaky@example.com");
  const [thread] = await env.waitForEmailsFor(req.id, 1, 30_000);
  assert.equal(thread.to, "flaky@example.com");
  env.teleport.setState(req.id, "DENIED", "late");
  await env.waitForEmailsFor(req.id, 2);
  return () => {
    const mails = env.emailsFor(req.id);
    assert.equal(mails.length, 2, "delivered exactly once after recovering");
    assert.ok(mails[1].text.includes("Status: ❌ DENIED (late)"));
    checkThreading(mails);
  };
}

/** PROMOTED: one resolution email naming the Access List (the Go plugin sends none). */
async function promoted(env: E2eEnv) {
  const req = env.teleport.createAccessRequest({ user: "alice@example.com", roles: ["ops"] });
  await env.waitForEmailsFor(req.id, 1);
  env.teleport.promote(req.id, { name: "oncall", title: "On-call editors" });
  const [, resolved] = await env.waitForEmailsFor(req.id, 2);
  assert.ok(resolved.text.includes('PROMOTED to Access List "On-call editors"'), resolved.text);
  env.teleport.deleteAccessRequest(req.id);
  return () => {
    assert.equal(env.emailsFor(req.id).length, 2, "no EXPIRED email after the promotion");
    assert.equal(env.teleport.getPluginData(req.id, "email")?.resolution, "PROMOTED");
  };
}

/**
 * Created and deleted at once (events queued back to back): the request is gone before its
 * first plugin-data write (Teleport answers NOT_FOUND), so, as in Go, nobody is ever told.
 */
async function createThenDelete(env: E2eEnv, plugin: PluginProcess) {
  const t = env.teleport;
  const deleted = t.createAccessRequest({ user: "alice@example.com", roles: ["ops"] });
  t.deleteAccessRequest(deleted.id);
  await plugin.waitForLog((l) => l.request_id === deleted.id);
  return () => {
    assert.equal(env.emailsFor(deleted.id).length, 0);
    assert.equal(storedThreads(env.teleport.getPluginData(deleted.id, "email")).length, 0);
  };
}

Deno.test("e2e smtp: routing, invalid reviewer, dedupe, delete after resolve, failures, promotion (OSS)", async () => {
  await using env = await E2eEnv.start({ mailer: "smtp", roleToRecipients: ROUTING });
  env.smtp!.rejectRecipients.set("bad@example.com", { code: 550, message: "No such user" });
  env.smtp!.rejectRecipients.set("nowhere@example.com", { code: 550, message: "No such user" });
  const plugin = await env.startPlugin();
  const checks = await Promise.all([
    routing(env, plugin),
    ossLinksAndDeleteAfterResolve(env),
    partialFailure(env, plugin),
    permanentTotalFailure(env, plugin),
    retryableTotalFailure(env, plugin),
    promoted(env),
    createThenDelete(env, plugin),
  ]);
  await env.waitForNoMoreEmails();
  const count = env.emails.length;
  for (const check of checks) check();

  // Review dedupe: the watch stream drops; after the reconnect the catch-up sees every request
  // again (pending ones with their reviews) and sends nothing.
  const connected = plugin.logs.filter((l) => l.msg === "Watcher connected").length;
  env.teleport.dropStreams();
  await plugin.waitForLog((l) => l.msg === "Watcher connected", { count: connected + 1 });
  await plugin.waitForLog((l) => l.msg === "Caught up on access requests", {
    count: connected + 1,
  });
  await env.waitForNoMoreEmails();
  assert.equal(env.emails.length, count, "no email resent after the reconnect");
  assert.equal(await plugin.stop(), 0);
});

Deno.test("e2e smtp: Enterprise link replaces the tsh lines; notify_requester adds an email requester", async () => {
  await using env = await E2eEnv.start({
    mailer: "smtp",
    server: { advancedAccessWorkflows: true, proxyPublicAddr: "proxy.example.com:443" },
    delivery: { notify_requester: true },
  });
  await env.startPlugin();
  const req = env.teleport.createAccessRequest({ user: "alice@example.com", roles: ["editor"] });
  const named = env.teleport.createAccessRequest({ user: "bob", roles: ["editor"] });
  await env.waitForEmailsFor(req.id, 2);
  await env.waitForEmailsFor(named.id, 1);
  env.teleport.setState(req.id, "DENIED", "no");
  const mails = await env.waitForEmailsFor(req.id, 4);
  await env.waitForNoMoreEmails(500);
  for (const m of mails) {
    assert.ok(m.text.includes(`Link: https://proxy.example.com/web/requests/${req.id}`), m.text);
    assert.ok(!m.text.includes("tsh request review"), m.text);
    assert.ok(!m.text.includes(":443"), m.text);
  }
  assert.deepEqual(mails.slice(0, 2).map((m) => m.to).sort(), [
    "alice@example.com",
    "all@example.com",
  ]);
  assert.deepEqual(mails.slice(2).map((m) => m.to).sort(), [
    "alice@example.com",
    "all@example.com",
  ]);
  for (const m of mails.slice(2)) assert.ok(m.text.includes("Status: ❌ DENIED (no)"), m.text);
  checkThreading(mails);
  // A requester whose user name is not an email address is not added.
  assert.deepEqual(env.emailsFor(named.id).map((m) => m.to), ["all@example.com"]);
});

Deno.test("e2e mailgun: 5xx answers are retried until delivered once; a 4xx rejection is permanent", async () => {
  await using env = await E2eEnv.start({ mailer: "mailgun" });
  const plugin = await env.startPlugin();
  const t = env.teleport;
  // Transient: the next 4 API calls fail with 503 (more than one event's attempts).
  env.mailgun!.failNext(4, 503);
  const a = t.createAccessRequest({ user: "alice@example.com", roles: ["editor"] });
  await env.waitForEmailsFor(a.id, 1, 30_000);
  await plugin.waitForLog((l) => l.msg === "Failed to process request" && l.request_id === a.id);
  // Permanent: the next call fails with 400; that recipient is never retried.
  await env.waitForNoMoreEmails(300);
  env.mailgun!.failNext(
    1,
    400,
    JSON.stringify({ message: "'to' parameter is not a valid address" }),
  );
  const b = t.createAccessRequest({ user: "bob@example.com", roles: ["editor"] });
  await env.waitForPluginData(b.id, (d) => (d.email_delivery ?? "").includes("all@example.com"));
  await env.waitForPluginData(b.id, (d) => JSON.parse(d.email_delivery ?? "{}").failed?.length);
  t.setState(a.id, "APPROVED", "ok");
  t.setState(b.id, "APPROVED", "ok");
  await env.waitForEmailsFor(a.id, 2);
  await env.waitForNoMoreEmails();
  assert.equal(env.emailsFor(a.id).length, 2, "a: thread and resolution, each once");
  checkThreading(env.emailsFor(a.id));
  assert.equal(env.emailsFor(b.id).length, 0, "b: permanently failed, nothing later");
  assert.deepEqual(delivery(env, b.id).failed, ["all@example.com"]);
  const mailgunCalls = env.mailgun!.requests.filter((r) => r.path.endsWith("/messages"));
  assert.equal(mailgunCalls.filter((r) => r.status === 503).length, 4);
  assert.equal(mailgunCalls.filter((r) => r.status === 400).length, 1, "the 400 is not retried");
  assert.equal(await plugin.stop(), 0);
});

Deno.test({
  // Teleport streams a snapshot per change: PENDING, then APPROVED, even when the approval
  // follows the creation at once. The plugin must send the thread, then the resolution.
  name: "e2e smtp: created and approved at once: thread, then resolution",
  async fn() {
    await using env = await E2eEnv.start({ mailer: "smtp" });
    await env.startPlugin();
    const ids = Array.from({ length: 5 }, () => {
      const r = env.teleport.createAccessRequest({ user: "alice@example.com", roles: ["ops"] });
      env.teleport.setState(r.id, "APPROVED", "instantly");
      return r.id;
    });
    for (const id of ids) await env.waitForEmailsFor(id, 2);
    await env.waitForNoMoreEmails();
    for (const id of ids) {
      const mails = env.emailsFor(id);
      assert.equal(mails.length, 2, `${id}: thread and resolution`);
      assert.ok(mails[0].text.includes("You have a new Role Request"), mails[0].text);
      assert.ok(mails[1].text.includes("APPROVED (instantly)"), mails[1].text);
      checkThreading(mails);
    }
  },
});
