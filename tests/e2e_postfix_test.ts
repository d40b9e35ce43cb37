/**
 * The real CLI against a real MTA: Postfix with Dovecot SASL from Debian, configured by the test
 * on loopback ports with the test CA (`helpers/postfix.ts`), delivering to Maildirs read back here.
 *
 * - Upstream scenarios (new threads, approval, denial, expiry, review replies) over submission
 *   (STARTTLS required, then AUTH).
 * - SMTPS (implicit TLS, AUTH) on 127.0.0.1:465 when that port is free (the plugin uses implicit
 *   TLS only on 465), and the plain port with `starttls_policy = "disabled"`.
 * - Failures: 550 at RCPT (permanent, never retried), 451 (retried until Postfix accepts), an
 *   outage (Postfix and Dovecot stopped, then started again), and a server that requires STARTTLS
 *   while the plugin is configured not to use it: nothing is sent in clear text.
 *
 * Without the Debian packages (or root) the tests are reported as ignored, the reason in the name.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { checkThreading, E2eEnv } from "./helpers/e2e_env.ts";
import type { PluginProcess } from "./helpers/plugin_process.ts";
import { type MaildirMessage, postfixMissing, PostfixServer } from "./helpers/postfix.ts";

const MISSING = postfixMissing();
const SUGGESTED = ["reviewer1@example.com", "reviewer2@example.com"];

function testName(name: string): string {
  return MISSING ? `${name} (ignored: ${MISSING})` : name;
}

/** Waits for `n` messages about request `id`; returns them, oldest first. */
async function mailFor(pf: PostfixServer, id: string, n: number): Promise<MaildirMessage[]> {
  const all = await pf.waitForMessages(
    (ms) => ms.filter((m) => m.subject.includes(id)).length >= n,
    `${n} messages about ${id}`,
    30_000,
  );
  return all.filter((m) => m.subject.includes(id));
}

/** `[smtp]` credentials of the Dovecot user (the password file E2eEnv wrote). */
function auth(env: E2eEnv) {
  return { username: "teleport-email", password_file: join(env.dir, "smtp_password") };
}

/** An E2eEnv whose plugin sends through `pf` with the given `[smtp]` settings. */
async function envFor(
  pf: (env: E2eEnv) => Promise<PostfixServer>,
  smtp: (pf: PostfixServer, env: E2eEnv) => Record<string, unknown>,
  roleToRecipients: Record<string, string[]> = { "*": ["all@example.com"] },
): Promise<{ env: E2eEnv; pf: PostfixServer }> {
  const env = await E2eEnv.start({ mailer: "smtp", roleToRecipients });
  const server = await pf(env);
  await env.updateConfig((c) => {
    c.smtp = { host: "localhost", ca_file: join(env.dir, "smtp_ca.pem"), ...smtp(server, env) };
  });
  return { env, pf: server };
}

function assertWellFormed(m: MaildirMessage): void {
  assert.equal(m.headers.get("auto-submitted"), "auto-generated", m.raw.slice(0, 800));
  assert.equal(m.headers.get("x-auto-response-suppress"), "All");
  const domain = m.messageId.replace(/^<[^@]*@/, "").replace(/>$/, "");
  assert.ok(domain.includes("."), `Message-ID domain not fully qualified: ${m.messageId}`);
}

// ---------------------------------------------------------------------------------------------
// Upstream scenarios over submission

async function newThreads(env: E2eEnv, pf: PostfixServer): Promise<void> {
  const req = env.teleport.createAccessRequest({
    user: "requester@example.com",
    roles: ["editor"],
    reason: "because of",
    suggestedReviewers: SUGGESTED,
  });
  const mails = await mailFor(pf, req.id, 3);
  assert.deepEqual(mails.map((m) => m.user).sort(), ["all", "reviewer1", "reviewer2"]);
  for (const m of mails) {
    assertWellFormed(m);
    assert.ok(m.text.includes("You have a new Role Request"), m.text);
    assert.ok(m.text.includes("Reason: because of"));
    // Postfix's Received header: TLS, and ESMTPSA (ESMTP + TLS + AUTH) as the protocol.
    assert.match(m.headers.get("received") ?? "", /with ESMTPSA/);
    assert.match(m.headers.get("received") ?? "", /TLS/);
  }
}

async function resolution(
  env: E2eEnv,
  pf: PostfixServer,
  resolve: (id: string) => void,
  status: string,
): Promise<void> {
  const req = env.teleport.createAccessRequest({ user: "requester@example.com", roles: ["ops"] });
  await mailFor(pf, req.id, 1);
  resolve(req.id);
  const mails = await mailFor(pf, req.id, 2);
  assert.ok(mails[1].text.includes(status), mails[1].text);
  checkThreading(mails);
}

async function reviewReplies(env: E2eEnv, pf: PostfixServer): Promise<void> {
  const req = env.teleport.createAccessRequest({
    user: "requester@example.com",
    roles: ["editor"],
    suggestedReviewers: ["reviewer1@example.com"],
    thresholds: { approve: 2, deny: 2 },
  });
  await mailFor(pf, req.id, 2);
  env.teleport.submitReview(req.id, {
    author: "reviewer1@example.com",
    proposedState: "APPROVED",
    reason: "looks fine",
  });
  const mails = await mailFor(pf, req.id, 4);
  const replies = mails.slice(2);
  for (const m of replies) {
    assert.ok(m.text.includes("reviewer1@example.com reviewed the request"), m.text);
  }
  checkThreading(mails);
}

Deno.test({
  name: testName("e2e postfix: upstream scenarios over submission (STARTTLS required, AUTH)"),
  ignore: MISSING !== undefined,
  async fn() {
    const { env, pf } = await envFor(
      (env) => PostfixServer.start(env.ca),
      (pf, env) => ({ port: pf.ports.submission, starttls_policy: "mandatory", ...auth(env) }),
    );
    await using _env = env;
    await using _pf = pf;
    await env.startPlugin();
    const t = env.teleport;
    await Promise.all([
      newThreads(env, pf),
      resolution(env, pf, (id) => t.setState(id, "APPROVED", "ok"), "Status: ✅ APPROVED (ok)"),
      resolution(env, pf, (id) => t.setState(id, "DENIED", "no"), "Status: ❌ DENIED (no)"),
      resolution(env, pf, (id) => t.deleteAccessRequest(id), "Status: ⌛ EXPIRED"),
      reviewReplies(env, pf),
    ]);
  },
});

// ---------------------------------------------------------------------------------------------
// Failure cases, the plain port and SMTPS

const FAILURE_ROUTING = {
  "*": ["all@example.com"],
  blackhole: ["reject550@example.com"],
  flaky: ["tempfail451@example.com"],
};

/** 550 at RCPT: logged as permanent, never retried, nothing delivered. */
async function rejected550(env: E2eEnv, plugin: PluginProcess): Promise<void> {
  const req = env.teleport.createAccessRequest({
    user: "requester@example.com",
    roles: ["blackhole"],
  });
  const [failure] = await plugin.waitForLog((l) =>
    l.msg === "Failed send one or more messages" && l.request_id === req.id
  );
  assert.match(String(failure.error), /550/);
  assert.equal(failure.retry, "no: permanent failure, will not be retried");
}

/** 451 at RCPT: retried; delivered once Postfix accepts the recipient. */
async function tempfail451(env: E2eEnv, pf: PostfixServer, plugin: PluginProcess): Promise<void> {
  const req = env.teleport.createAccessRequest({ user: "requester@example.com", roles: ["flaky"] });
  const [failure] = await plugin.waitForLog(
    (l) => l.msg === "Failed to process request" && l.request_id === req.id,
    { timeoutMs: 30_000 },
  );
  assert.match(String(failure.error), /451/);
  assert.match(String(failure.retry), /^yes, in /);
  await pf.setRecipientAccess("");
  const [mail] = await mailFor(pf, req.id, 1);
  assert.equal(mail.user, "tempfail451");
}

/** Postfix and Dovecot down: the send is retried and delivered when they are back. */
async function outage(env: E2eEnv, pf: PostfixServer, plugin: PluginProcess): Promise<void> {
  await pf.stopServices();
  const req = env.teleport.createAccessRequest({ user: "requester@example.com", roles: ["ops"] });
  const [failure] = await plugin.waitForLog(
    (l) => l.msg === "Failed to process request" && l.request_id === req.id,
    { timeoutMs: 30_000 },
  );
  assert.match(String(failure.retry), /^yes, in /);
  await pf.startServices();
  const [mail] = await mailFor(pf, req.id, 1);
  assertWellFormed(mail);
}

Deno.test({
  name: testName("e2e postfix: plain port, 550 rejection, 451 retry and an outage"),
  ignore: MISSING !== undefined,
  async fn() {
    const { env, pf } = await envFor(
      (env) => PostfixServer.start(env.ca),
      (pf, env) => ({ port: pf.ports.plain, starttls_policy: "disabled", ...auth(env) }),
      FAILURE_ROUTING,
    );
    await using _env = env;
    await using _pf = pf;
    const plugin = await env.startPlugin();
    const first = env.teleport.createAccessRequest({
      user: "requester@example.com",
      roles: ["ops"],
    });
    const [plain] = await mailFor(pf, first.id, 1);
    assertWellFormed(plain);
    assert.match(plain.headers.get("received") ?? "", /with ESMTPA /, "AUTH without TLS");
    await Promise.all([rejected550(env, plugin), tempfail451(env, pf, plugin)]);
    await outage(env, pf, plugin);
  },
});

/** Whether 127.0.0.1:465 can be bound (the plugin speaks implicit TLS only on port 465). */
function port465Free(): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port: 465 }).close();
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name: testName(
    "e2e postfix: SMTPS on 465 with AUTH, and no clear text to a STARTTLS-only server",
  ),
  ignore: MISSING !== undefined,
  async fn() {
    const smtps = port465Free();
    const { env, pf } = await envFor(
      (env) => PostfixServer.start(env.ca, { ports: smtps ? { smtps: 465 } : {} }),
      (pf, env) => ({
        port: smtps ? 465 : pf.ports.submission,
        starttls_policy: "mandatory",
        ...auth(env),
      }),
    );
    await using _env = env;
    await using _pf = pf;
    const tls = await env.startPlugin();
    const req = env.teleport.createAccessRequest({ user: "requester@example.com", roles: ["ops"] });
    const [mail] = await mailFor(pf, req.id, 1);
    assert.match(mail.headers.get("received") ?? "", /with ESMTPSA/);
    await tls.stop();
    // The same Postfix's submission port requires STARTTLS (530 before MAIL FROM); a plugin told
    // not to use STARTTLS must not deliver there in clear text, whether start-up or the send fails.
    await env.updateConfig((c) => {
      c.smtp = {
        host: "localhost",
        port: pf.ports.submission,
        starttls_policy: "disabled",
        ...auth(env),
      };
    });
    const plugin = await env.startPlugin({ waitReady: false });
    const clear = env.teleport.createAccessRequest({
      user: "requester@example.com",
      roles: ["ops"],
    });
    // Start-up refuses the server, or the send fails: either way an error, and no email.
    await plugin.waitForLog((l) => l.level === "ERROR").catch((err) => {
      if (plugin.exitCode === undefined) throw err;
    });
    assert.equal((await pf.messages()).filter((m) => m.subject.includes(clear.id)).length, 0);
  },
});

Deno.test({
  name: testName(
    "e2e postfix: an IDN sender domain passes check and is delivered where UTF-8 addresses are refused",
  ),
  ignore: MISSING !== undefined,
  async fn() {
    // strict_smtputf8: Postfix refuses a UTF-8 address from a client that did not ask for
    // SMTPUTF8 (501 5.1.7), as a server without SMTPUTF8 would. Sends and the check's probe both
    // give the domain in punycode.
    const { env, pf } = await envFor(
      (env) => PostfixServer.start(env.ca, { mainCf: ["strict_smtputf8 = yes"] }),
      (pf, env) => ({ port: pf.ports.submission, starttls_policy: "mandatory", ...auth(env) }),
    );
    await using _env = env;
    await using _pf = pf;
    await env.updateConfig((c) => {
      c.delivery = { ...c.delivery as object, sender: "Teleport <noreply@bücher.example>" };
    });
    const check = await env.startPlugin({
      args: ["check", "-c", env.configPath],
      waitReady: false,
    });
    const code = await check.exited;
    assert.equal(code, 0, `${check.stdout}\n${check.stderrLines.join("\n")}`);
    assert.match(check.stdout, /^OK +mailer: .*MAIL FROM and RCPT TO all@example\.com accepted/m);
    await env.startPlugin();
    const req = env.teleport.createAccessRequest({ user: "requester@example.com", roles: ["ops"] });
    const [mail] = await mailFor(pf, req.id, 1);
    assert.equal(mail.headers.get("return-path"), "<noreply@xn--bcher-kva.example>");
  },
});
