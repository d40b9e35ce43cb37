/**
 * End-to-end: a crash and restart of the same instance resumes at once (the restart takes over
 * the dead process's request leases instead of waiting for them to expire), and replicas on
 * different hosts still send each email once. The real CLI runs as child processes.
 */
import assert from "node:assert/strict";
import { E2eEnv } from "./helpers/e2e_env.ts";
import type { PluginProcess } from "./helpers/plugin_process.ts";

const OSS = "requester-oss@example.com";
const TOOK_OVER = "Took over the lease of a process that is no longer running";
const BUSY = "Request is being handled by another instance; will retry";

function lockOf(env: E2eEnv, id: string): unknown {
  const raw = env.teleport.getPluginData(id, "email")?.email_delivery;
  return raw === undefined ? undefined : JSON.parse(raw).lock;
}

/** Starts the plugin as host `host` (its liveness socket goes to the environment's folder). */
function startAs(env: E2eEnv, host: string): Promise<PluginProcess> {
  return env.startPlugin({ env: { TELEPORT_EMAIL_HOSTNAME: host } });
}

Deno.test("e2e smtp: SIGKILL in the middle of a 40-request burst; the restart takes the dead process's leases over at once: none lost, duplicates at most the in-flight ones", async () => {
  await using env = await E2eEnv.start({ mailer: "smtp" });
  env.smtp!.delayMs = 40; // keep sends in flight when the kill comes
  const first = await startAs(env, "node-a");
  const ids = Array.from(
    { length: 40 },
    () => env.teleport.createAccessRequest({ user: OSS, roles: ["editor"] }).id,
  );
  await env.waitForEmails(8);
  first.kill();
  await first.exited;
  // In flight at the kill: requests whose lease the dead process still held.
  const leased = ids.filter((id) => lockOf(env, id) !== undefined);
  assert.ok(leased.length > 0, "the kill came while requests were in flight");

  env.smtp!.delayMs = 0;
  const restarted = Date.now();
  const second = await startAs(env, "node-a");
  for (const id of ids) await env.waitForEmailsFor(id, 1);
  const elapsed = Date.now() - restarted;
  // Every email recorded (a lease the dead process held on a request it had finished may stay
  // until it expires: nothing is left to do there).
  for (const id of ids) {
    await env.waitForPluginData(id, (d) => d.email_threads?.includes("all@example.com") ?? false);
  }
  const duplicates = ids.reduce((n, id) => n + env.emailsFor(id).length - 1, 0);
  console.log(
    `restart: ${leased.length} leases held at the kill, all 40 requests notified ${elapsed} ms ` +
      `after the restart, ${duplicates} duplicate(s)`,
  );
  assert.ok(duplicates <= leased.length, `${duplicates} duplicates > ${leased.length} in flight`);
  const tookOver = second.logs.filter((l) => l.msg === TOOK_OVER);
  assert.ok(tookOver.length > 0, second.stderrLines.join("\n"));
  assert.ok(tookOver.every((l) => l.holder_host === "node-a" && l.holder_pid === first.pid));
  // The restart never waited for a lease: no request was found busy.
  assert.deepEqual(second.logs.filter((l) => l.msg === BUSY).map((l) => l.request_id), []);
});

Deno.test("e2e smtp: two replicas with different host names send each email once", async () => {
  await using env = await E2eEnv.start({ mailer: "smtp" });
  env.smtp!.delayMs = 10;
  const [a, b] = await Promise.all([startAs(env, "node-a"), startAs(env, "node-b")]);
  const ids = Array.from(
    { length: 20 },
    () => env.teleport.createAccessRequest({ user: OSS, roles: ["editor"] }).id,
  );
  for (const id of ids) await env.waitForEmailsFor(id, 1);
  for (const id of ids) env.teleport.setState(id, "APPROVED", "fine");
  for (const id of ids) await env.waitForEmailsFor(id, 2);
  for (const id of ids) {
    await env.waitForPluginData(id, (d) => JSON.parse(d.email_delivery ?? "{}").lock === undefined);
    assert.equal(env.emailsFor(id).length, 2, id);
  }
  // Each saw the other's live leases as busy (a different host), never as a dead holder's.
  for (const p of [a, b]) assert.equal(p.logs.filter((l) => l.msg === TOOK_OVER).length, 0);
});
