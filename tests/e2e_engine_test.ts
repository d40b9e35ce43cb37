/**
 * End-to-end checks of the notification engine beyond the Go suite, through the real CLI:
 * catch-up after downtime with two replicas started at once, Access Monitoring Rule routing
 * with live rule events, and degraded role routing without permission on rules.
 */
import assert from "node:assert/strict";
import { type DeliveredEmail, E2eEnv } from "./helpers/e2e_env.ts";

const ALL = "all@example.com";
const OSS = "requester-oss@example.com";

async function waitFor(env: E2eEnv, id: string, n: number): Promise<DeliveredEmail[]> {
  return await env.waitForEmailsFor(id, n);
}

/**
 * Waits until no plugin holds the lease of request `id` (the handler that sent its emails has
 * recorded them and finished; any later attempt finds nothing to do), then checks that it got
 * exactly `n` emails.
 */
async function assertExactly(env: E2eEnv, id: string, n: number): Promise<void> {
  await env.waitForPluginData(id, (d) => JSON.parse(d.email_delivery ?? "{}").lock === undefined);
  assert.equal(env.emailsFor(id).length, n, `emails of ${id}`);
}

Deno.test("e2e: requests created, approved and deleted while the plugin was down are caught up once by two replicas", async () => {
  await using env = await E2eEnv.start({ mailer: "smtp" });
  const p1 = await env.startPlugin();
  const a = env.teleport.createAccessRequest({ user: OSS, roles: ["editor"] });
  const b = env.teleport.createAccessRequest({ user: OSS, roles: ["editor"] });
  await waitFor(env, a.id, 1);
  await waitFor(env, b.id, 1);
  assert.equal(await p1.stop(), 0);

  // While down: a new request, an approval, a deletion.
  const c = env.teleport.createAccessRequest({ user: OSS, roles: ["editor"], reason: "late" });
  env.teleport.setState(a.id, "APPROVED", "while you slept");
  env.teleport.deleteAccessRequest(b.id);

  // Two replicas start at once: each email still goes out exactly once.
  await Promise.all([env.startPlugin(), env.startPlugin()]);
  await waitFor(env, c.id, 1);
  await waitFor(env, a.id, 2);
  await waitFor(env, b.id, 2);
  assert.ok(env.emailsFor(a.id)[1].text.includes("Status: ✅ APPROVED (while you slept)"));
  assert.ok(env.emailsFor(b.id)[1].text.includes("Status: ⌛ EXPIRED"));
  assert.ok(env.emailsFor(c.id)[0].text.includes("Reason: late"));

  // Live events with two replicas running.
  const d = env.teleport.createAccessRequest({ user: OSS, roles: ["editor"] });
  await waitFor(env, d.id, 1);
  env.teleport.setState(d.id, "DENIED", "no");
  await waitFor(env, d.id, 2);
  for (const [id, n] of [[a.id, 2], [b.id, 2], [c.id, 1], [d.id, 2]] as const) {
    await assertExactly(env, id, n);
  }
});

Deno.test("e2e: Access Monitoring Rules route requests; rule events apply without a restart", async () => {
  await using env = await E2eEnv.start({ mailer: "smtp" });
  env.teleport.upsertRule({
    name: "editors",
    subjects: ["access_request"],
    states: [],
    condition: 'access_request.spec.roles.contains("editor")',
    notification: { name: "email", recipients: ["editors-team@example.com"] },
  });
  await env.startPlugin();
  const r1 = env.teleport.createAccessRequest({
    user: OSS,
    roles: ["editor"],
    suggestedReviewers: ["reviewer1@example.com"],
  });
  const first = await waitFor(env, r1.id, 1);
  assert.deepEqual(first.map((e) => e.to), ["editors-team@example.com"]);
  // The rule's deletion and the next request travel on the same watch stream, in this order,
  // and the plugin applies events in order: no wait needed in between.
  env.teleport.deleteRule("editors");
  const r2 = env.teleport.createAccessRequest({ user: OSS, roles: ["editor"] });
  const second = await waitFor(env, r2.id, 1);
  assert.deepEqual(second.map((e) => e.to), [ALL]);
  await assertExactly(env, r1.id, 1);
});

Deno.test("e2e: a rule that calls regexp.replace routes the request right after it", async () => {
  await using env = await E2eEnv.start({ mailer: "smtp" });
  await env.startPlugin();
  // re2js is loaded when this rule arrives; the plugin applies the rule, loaded, before it
  // handles the request that follows it on the watch stream.
  env.teleport.upsertRule({
    name: "regexp",
    subjects: ["access_request"],
    states: [],
    condition: 'regexp.replace(access_request.spec.roles, "^ed(.*)$", "x$1").contains("xitor")',
    notification: { name: "email", recipients: ["regexp-team@example.com"] },
  });
  const r = env.teleport.createAccessRequest({ user: OSS, roles: ["editor"] });
  const mails = await waitFor(env, r.id, 1);
  assert.deepEqual(mails.map((e) => e.to), ["regexp-team@example.com"]);
  await assertExactly(env, r.id, 1);
});

Deno.test("e2e: without permission on access_monitoring_rule the plugin warns and routes by role", async () => {
  await using env = await E2eEnv.start({
    mailer: "smtp",
    server: { deniedKinds: ["access_monitoring_rule"] },
  });
  const plugin = await env.startPlugin();
  assert.ok(
    plugin.logs.some((l) => l.level === "WARN" && /role_to_recipients only/.test(l.msg)),
    plugin.stderrLines.join("\n"),
  );
  const r = env.teleport.createAccessRequest({ user: OSS, roles: ["editor"] });
  const mails = await waitFor(env, r.id, 1);
  assert.equal(mails[0].to, ALL);
});
