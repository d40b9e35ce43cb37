/**
 * End-to-end: a thousand requests created while the plugin was down are all announced once the
 * real CLI starts (catch-up under the engine's back-pressure), each recipient exactly once, and
 * every email is recorded as its thread in plugin data.
 */
import assert from "node:assert/strict";
import { E2eEnv, storedThreads } from "./helpers/e2e_env.ts";

const REQUESTS = 1000;
const REVIEWER = "reviewer@example.com";
const ALL = "all@example.com";

Deno.test("e2e smtp: 1,000 requests pending at start each get their emails exactly once", async () => {
  await using env = await E2eEnv.start({ mailer: "smtp", severity: "info" });
  const ids = new Set<string>();
  for (let i = 0; i < REQUESTS; i++) {
    const req = env.teleport.createAccessRequest({
      user: `requester${i}@example.com`,
      roles: ["editor"],
      suggestedReviewers: [REVIEWER],
    });
    ids.add(req.id);
  }
  const plugin = await env.startPlugin();
  await env.smtp!.waitFor(REQUESTS * 2, { timeoutMs: 120_000 });
  // Every send is recorded before the handler finishes; a graceful stop waits for the handlers,
  // so after it nothing more can be sent or recorded.
  assert.equal(await plugin.stop(), 0);

  const sent = new Map<string, string>(); // `${request} ${recipient}` → Message-ID
  for (const e of env.emails) {
    const id = /Role Request ([0-9a-f-]{36})/.exec(e.subject)?.[1] ?? "";
    assert.ok(ids.has(id), `email about an unknown request: ${e.subject}`);
    const key = `${id} ${e.to}`;
    assert.ok(!sent.has(key), `sent twice: ${key}`);
    sent.set(key, e.messageId);
  }
  assert.equal(sent.size, REQUESTS * 2);
  for (const id of ids) {
    const threads = storedThreads(env.teleport.getPluginData(id, "email"));
    assert.deepEqual(threads.map((t) => t.email).sort(), [ALL, REVIEWER], id);
    for (const t of threads) assert.equal(`<${t.messageId}>`, sent.get(`${id} ${t.email}`));
  }
});
