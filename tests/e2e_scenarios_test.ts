/**
 * End-to-end: the real CLI (`deno run main.ts start -c <config>`) as a child process against the
 * test Teleport Auth server and a real SMTP server (or the fake Mailgun API), porting the Go
 * plugin's integration suite (reference §5.5) plus restarts and replicas.
 *
 * Scenarios share one environment per test to keep the number of plugin start-ups low.
 */
import assert from "node:assert/strict";
import { type DeliveredEmail, E2eEnv } from "./helpers/e2e_env.ts";
import { decodePluginData } from "../src/notify/plugin_data.ts";

const ALL = "all@example.com";
const R1 = "reviewer1@example.com";
const R2 = "reviewer2@example.com";
const OSS = "requester-oss@example.com";

function emailsFor(env: E2eEnv, id: string): DeliveredEmail[] {
  return env.emails.filter((e) => e.subject.endsWith(` ${id}`));
}

async function waitForRequestEmails(
  env: E2eEnv,
  id: string,
  n: number,
  timeoutMs = 20_000,
): Promise<DeliveredEmail[]> {
  const deadline = Date.now() + timeoutMs;
  while (emailsFor(env, id).length < n) {
    if (Date.now() > deadline) {
      throw new Error(
        `timed out waiting for ${n} emails of ${id}; got:\n` +
          emailsFor(env, id).map((e) => `  to=${e.to} ${e.text.split("\n")[0]}`).join("\n"),
      );
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  return emailsFor(env, id);
}

/** Waits a little and checks that request `id` got exactly `n` emails (no late duplicates). */
async function assertExactly(env: E2eEnv, id: string, n: number): Promise<void> {
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(emailsFor(env, id).length, n, `emails of ${id}`);
}

function bare(id: string | undefined): string {
  return (id ?? "").replace(/^<|>$/g, "");
}

Deno.test({
  name: "e2e: new threads, approval, denial, expiry, reviews and resolution by review over SMTP",
  async fn() {
    await using env = await E2eEnv.start({ mailer: "smtp" });
    const plugin = await env.startPlugin();

    // TestNewThreads.
    const r0 = env.teleport.createAccessRequest({
      user: OSS,
      roles: ["editor"],
      reason: "because of",
      suggestedReviewers: [R1, R2],
    });
    const first = await waitForRequestEmails(env, r0.id, 3);
    assert.deepEqual(first.map((e) => e.to).sort(), [ALL, R1, R2]);
    for (const e of first) {
      assert.ok(e.from.includes("noreply@example.com"));
      assert.ok(e.text.includes(`User: ${OSS}`));
      assert.ok(e.text.includes("Reason: because of"));
      assert.ok(e.text.includes("Status: ⏳ PENDING"));
    }
    const data = decodePluginData(env.teleport.getPluginData(r0.id, "email"));
    assert.equal(data.threads.length, 3);
    assert.deepEqual(
      data.threads.map((t) => t.messageId).sort(),
      first.map((e) => bare(e.messageId)).sort(),
    );

    // TestApproval, TestDenial, TestExpiration.
    const cases = [
      ["approve", "Status: ✅ APPROVED (okay)"],
      ["deny", "Status: ❌ DENIED (not okay)"],
      ["delete", "Status: ⌛ EXPIRED"],
    ] as const;
    for (const [action, status] of cases) {
      const r = env.teleport.createAccessRequest({
        user: OSS,
        roles: ["editor"],
        reason: "because of",
        suggestedReviewers: [R1],
      });
      const threads = await waitForRequestEmails(env, r.id, 2);
      if (action === "approve") env.teleport.setState(r.id, "APPROVED", "okay");
      if (action === "deny") env.teleport.setState(r.id, "DENIED", "not okay");
      if (action === "delete") env.teleport.deleteAccessRequest(r.id);
      const all = await waitForRequestEmails(env, r.id, 4);
      const replies = all.slice(2);
      assert.deepEqual(replies.map((e) => e.to).sort(), [ALL, R1]);
      for (const e of replies) {
        assert.ok(e.text.includes(status), e.text);
        const thread = threads.find((t) => t.to === e.to)!;
        assert.equal(bare(e.inReplyTo), bare(thread.messageId), "In-Reply-To");
        assert.equal(bare(e.references), bare(thread.messageId), "References");
      }
      if (action !== "delete") {
        env.teleport.deleteAccessRequest(r.id); // deleting a resolved request sends nothing
      }
      await assertExactly(env, r.id, 4);
    }

    // TestReviewReplies, TestApprovalByReview, TestDenialByReview (thresholds 2/2).
    for (const verdict of ["APPROVED", "DENIED"] as const) {
      const r = env.teleport.createAccessRequest({
        user: "requester1@example.com",
        roles: ["editor"],
        reason: "because of",
        suggestedReviewers: [R1],
        thresholds: { approve: 2, deny: 2 },
      });
      await waitForRequestEmails(env, r.id, 2);
      const [firstReason, lastReason] = verdict === "APPROVED"
        ? ["okay", "finally okay"]
        : ["not okay", "finally not okay"];
      env.teleport.submitReview(r.id, { author: R1, proposedState: verdict, reason: firstReason });
      const afterFirst = (await waitForRequestEmails(env, r.id, 4)).slice(2);
      for (const e of afterFirst) {
        assert.ok(e.text.includes(`${R1} reviewed the request`), e.text);
        assert.ok(e.text.includes(`Reason: ${firstReason}`));
      }
      env.teleport.submitReview(r.id, { author: R2, proposedState: verdict, reason: lastReason });
      await waitForRequestEmails(env, r.id, 8);
      for (const to of [ALL, R1]) {
        const texts = emailsFor(env, r.id).filter((e) => e.to === to).map((e) => e.text);
        assert.equal(texts.length, 4);
        assert.ok(texts[2].includes(`${R2} reviewed the request`), texts[2]);
        const emoji = verdict === "APPROVED" ? "✅" : "❌";
        assert.ok(texts[3].includes(`Status: ${emoji} ${verdict} (${lastReason})`), texts[3]);
      }
      await assertExactly(env, r.id, 8);
    }

    assert.equal(await plugin.stop(), 0);
    assert.ok(plugin.logs.some((l) => l.msg === "Successfully shut down"));
  },
});

Deno.test({
  name: "e2e: race of concurrent requests with reviews: 12 emails each, unique Message-IDs",
  async fn() {
    await using env = await E2eEnv.start({ mailer: "smtp", severity: "info" });
    await env.startPlugin();
    const n = 4;
    const reqs = await Promise.all(
      Array.from({ length: n }, () =>
        Promise.resolve(env.teleport.createAccessRequest({
          user: "requester1@example.com",
          roles: ["editor"],
          reason: "because of",
          suggestedReviewers: [R1, R2],
          thresholds: { approve: 2, deny: 2 },
        }))),
    );
    // As in Go's TestRace: each reviewer reviews when their thread email arrives.
    const reviewed = new Set<string>();
    const deadline = Date.now() + 30_000;
    while (env.emails.length < 12 * n) {
      if (Date.now() > deadline) throw new Error(`got ${env.emails.length} of ${12 * n} emails`);
      for (const e of env.emails) {
        const id = e.subject.split("Role Request ")[1];
        const key = `${id}/${e.to}`;
        if (e.text.includes("You have a new Role Request") && e.to !== ALL && !reviewed.has(key)) {
          reviewed.add(key);
          env.teleport.submitReview(id, {
            author: e.to,
            proposedState: "APPROVED",
            reason: "okay",
          });
        }
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(env.emails.length, 12 * n);
    assert.equal(new Set(env.emails.map((e) => e.messageId)).size, 12 * n);
    for (const r of reqs) {
      const mine = emailsFor(env, r.id);
      assert.equal(mine.filter((e) => e.text.includes("You have a new Role Request")).length, 3);
      assert.equal(mine.filter((e) => e.text.includes("reviewed the request")).length, 6);
      assert.equal(mine.filter((e) => e.text.includes("has been resolved")).length, 3);
    }
  },
});

Deno.test({
  name: "e2e: requests created, approved and deleted while the plugin was down are caught up once",
  async fn() {
    await using env = await E2eEnv.start({ mailer: "smtp" });
    const p1 = await env.startPlugin();
    const a = env.teleport.createAccessRequest({ user: OSS, roles: ["editor"] });
    const b = env.teleport.createAccessRequest({ user: OSS, roles: ["editor"] });
    await waitForRequestEmails(env, a.id, 1);
    await waitForRequestEmails(env, b.id, 1);
    assert.equal(await p1.stop(), 0);

    // While down: a new request, an approval, a deletion.
    const c = env.teleport.createAccessRequest({ user: OSS, roles: ["editor"], reason: "late" });
    env.teleport.setState(a.id, "APPROVED", "while you slept");
    env.teleport.deleteAccessRequest(b.id);

    // Two replicas start at once: each email still goes out exactly once.
    await Promise.all([env.startPlugin(), env.startPlugin()]);
    await waitForRequestEmails(env, c.id, 1);
    await waitForRequestEmails(env, a.id, 2);
    await waitForRequestEmails(env, b.id, 2);
    assert.ok(emailsFor(env, a.id)[1].text.includes("Status: ✅ APPROVED (while you slept)"));
    assert.ok(emailsFor(env, b.id)[1].text.includes("Status: ⌛ EXPIRED"));
    assert.ok(emailsFor(env, c.id)[0].text.includes("Reason: late"));

    // Live events with two replicas running.
    const d = env.teleport.createAccessRequest({ user: OSS, roles: ["editor"] });
    await waitForRequestEmails(env, d.id, 1);
    env.teleport.setState(d.id, "DENIED", "no");
    await waitForRequestEmails(env, d.id, 2);
    await new Promise((r) => setTimeout(r, 500));
    for (const [id, n] of [[a.id, 2], [b.id, 2], [c.id, 1], [d.id, 2]] as const) {
      assert.equal(emailsFor(env, id).length, n, id);
    }
  },
});

Deno.test({
  name: "e2e: Mailgun transport: new request and approval threaded by the returned IDs",
  async fn() {
    await using env = await E2eEnv.start({ mailer: "mailgun" });
    await env.startPlugin();
    const r = env.teleport.createAccessRequest({
      user: OSS,
      roles: ["editor"],
      reason: "because of",
      suggestedReviewers: [R1],
    });
    const threads = await waitForRequestEmails(env, r.id, 2);
    env.teleport.setState(r.id, "APPROVED", "okay");
    const all = await waitForRequestEmails(env, r.id, 4);
    for (const e of all.slice(2)) {
      assert.ok(e.text.includes("Status: ✅ APPROVED (okay)"));
      const thread = threads.find((t) => t.to === e.to)!;
      assert.equal(bare(e.inReplyTo), bare(thread.messageId));
    }
    await assertExactly(env, r.id, 4);
  },
});
