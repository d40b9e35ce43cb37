/**
 * `teleport-email check` end to end: the real CLI as a child process against the test Teleport
 * server (which enforces the plugin role's rules per kind and verb, as Teleport does) and the
 * real SMTP server. One test per FAIL kind, each asserting exit 1 and the named fix; every
 * environment's close() fails if a secret (SMTP password, key material) appeared in the output.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { E2eEnv, type E2eEnvOptions } from "./helpers/e2e_env.ts";
import { SmtpSink } from "./helpers/smtp_sink.ts";
import type { TestRole } from "./helpers/teleport_rbac.ts";
import { PROBE_REQUEST_ID } from "../src/check/permissions.ts";

/** A port nothing listens on (1 is never bound in the test environment, as in e2e_startup). */
const CLOSED_PORT = 1;

interface CheckRun {
  code: number;
  out: string;
  stderr: string;
  /** The check lines by status. */
  lines: { status: string; text: string }[];
}

async function check(env: E2eEnv, extra: string[] = []): Promise<CheckRun> {
  const plugin = await env.startPlugin({
    args: ["check", "-c", env.configPath, ...extra],
    waitReady: false,
  });
  const code = await plugin.exited;
  const lines = plugin.stdout.split("\n")
    .map((l) => /^(OK|WARN|FAIL|SKIP) +(.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ status: m[1], text: m[2] }));
  return { code, out: plugin.stdout, stderr: plugin.stderrLines.join("\n"), lines };
}

/** The one line whose text starts with `prefix`. */
function lineOf(run: CheckRun, prefix: string): { status: string; text: string } {
  const found = run.lines.filter((l) => l.text.startsWith(prefix));
  assert.equal(found.length, 1, `one "${prefix}" line in:\n${run.out}${run.stderr}`);
  return found[0];
}

function startEnv(opts: E2eEnvOptions = {}): Promise<E2eEnv> {
  return E2eEnv.start({ severity: "info", ...opts });
}

const ROLE_WITHOUT_UPDATE: TestRole = {
  allow: [
    { resources: ["access_request"], verbs: ["list", "read"] },
    { resources: ["access_monitoring_rule"], verbs: ["list", "read"] },
  ],
};

const ROLE_WITHOUT_REQUEST_READ: TestRole = {
  allow: [
    { resources: ["access_plugin_data"], verbs: ["update"] },
    { resources: ["access_monitoring_rule"], verbs: ["list", "read"] },
  ],
};

Deno.test("e2e check: a correct setup prints only OK lines, exits 0 and changes nothing", async () => {
  await using env = await startEnv();
  await env.ca.writeIdentityFile(env.identityPath, {
    user: "plugin",
    roles: ["access-plugin"],
    ttlMs: 24 * 3_600_000,
  });
  const run = await check(env);
  assert.equal(run.code, 0, run.out + run.stderr);
  const order = [
    "configuration:",
    "credentials:",
    "connection:",
    "permission access_request list, read:",
    "permission access_plugin_data update:",
    "permission access_monitoring_rule list, read:",
    "mailer:",
  ];
  assert.deepEqual(run.lines.map((l) => order.find((p) => l.text.startsWith(p))), order);
  assert.ok(run.lines.every((l) => l.status === "OK"), run.out);
  assert.match(lineOf(run, "credentials:").text, /user "plugin", roles access-plugin, valid until/);
  assert.match(lineOf(run, "connection:").text, /mode direct.*Teleport 18\.2\.0 \(minimum /);
  assert.match(lineOf(run, "mailer:").text, /STARTTLS.*AUTH as "teleport-email".*RSET/);
  assert.match(run.out, /\nOK: 0 failed, 0 warnings, 7 passed, 0 skipped\n$/);
  // Nothing sent, nothing written.
  assert.equal(env.emails.length, 0);
  assert.equal(env.teleport.getPluginData(PROBE_REQUEST_ID, "email"), undefined);
  assert.ok(env.teleport.calls.UpdatePluginData >= 1, "the update permission was probed");
});

Deno.test("e2e check: an identity with less than an hour left WARNs unless it is refreshed", async () => {
  await using env = await startEnv(); // the identity is valid for one hour
  const run = await check(env);
  assert.equal(run.code, 0, run.out);
  const creds = lineOf(run, "credentials:");
  assert.equal(creds.status, "WARN");
  assert.match(creds.text, /\(\d+m left\); fix: .*refresh_identity = true/);
  await env.updateConfig((c) => {
    (c.teleport as Record<string, unknown>).refresh_identity = true;
  });
  const refreshed = await check(env);
  assert.equal(lineOf(refreshed, "credentials:").status, "OK", refreshed.out);
  assert.match(lineOf(refreshed, "credentials:").text, /re-read every 1m\)/);
});

Deno.test("e2e check: an expired identity FAILs the credentials with the fix, skips Teleport", async () => {
  await using env = await startEnv();
  await env.ca.writeIdentityFile(env.identityPath, {
    user: "plugin",
    roles: ["access-plugin"],
    notAfter: new Date(Date.now() - 60_000),
  });
  const run = await check(env);
  assert.equal(run.code, 1, run.out);
  const creds = lineOf(run, "credentials:");
  assert.equal(creds.status, "FAIL");
  assert.match(creds.text, /expired/);
  assert.match(creds.text, /fix: sign a new identity \(tctl auth sign/);
  assert.equal(lineOf(run, "connection").status, "SKIP");
  assert.equal(lineOf(run, "permissions").status, "SKIP");
  assert.equal(lineOf(run, "mailer:").status, "OK", "the mailer is still checked");
});

Deno.test("e2e check: a role without access_plugin_data update FAILs and prints the guide's role", async () => {
  await using env = await startEnv({ server: { role: ROLE_WITHOUT_UPDATE } });
  const run = await check(env);
  assert.equal(run.code, 1, run.out);
  const update = lineOf(run, "permission access_plugin_data update:");
  assert.equal(update.status, "FAIL");
  assert.match(update.text, /access denied to perform action "update" on "access_plugin_data"/);
  assert.match(
    update.text,
    /fix: add the rule "resources: \[access_plugin_data\], verbs: \[update\]"/,
  );
  assert.equal(lineOf(run, "permission access_request list, read:").status, "OK");
  assertGuideRole(run.out);
});

Deno.test("e2e check: a role without access_request list/read FAILs and prints the guide's role", async () => {
  await using env = await startEnv({ server: { role: ROLE_WITHOUT_REQUEST_READ } });
  const run = await check(env);
  assert.equal(run.code, 1, run.out);
  const read = lineOf(run, "permission access_request list, read:");
  assert.equal(read.status, "FAIL");
  assert.match(read.text, /access_request/);
  assert.match(
    read.text,
    /fix: add the rule "resources: \[access_request\], verbs: \[list, read\]"/,
  );
  assert.equal(lineOf(run, "permission access_plugin_data update:").status, "OK");
  assertGuideRole(run.out);
});

function assertGuideRole(out: string): void {
  assert.match(out, /\n +kind: role\n/);
  assert.match(out, /\n +name: access-plugin\n/);
  assert.match(out, /\n +rules:\n +- resources: \[access_request\]\n +verbs: \[list, read\]\n/);
  assert.match(out, /- resources: \[access_plugin_data\]\n +verbs: \[update\]\n/);
}

Deno.test("e2e check: a role without access_monitoring_rule only WARNs (routing by rules off)", async () => {
  await using env = await startEnv({ server: { deniedKinds: ["access_monitoring_rule"] } });
  await env.updateConfig((c) => {
    (c.smtp as Record<string, unknown>).hostname = "typo.example.com";
  });
  const run = await check(env);
  assert.equal(run.code, 0, run.out);
  const unknown = run.lines.find((l) => l.text.includes('unknown key "smtp.hostname"'));
  assert.equal(unknown?.status, "WARN", "configuration warnings are WARN lines");
  assert.ok(unknown.text.startsWith("configuration:"));
  const rules = lineOf(run, "permission access_monitoring_rule list, read:");
  assert.equal(rules.status, "WARN");
  assert.match(rules.text, /routing by Access Monitoring Rules is off/);
});

Deno.test("e2e check: a wrong SMTP password FAILs the mailer without printing any password", async () => {
  await using env = await startEnv();
  const wrong = "wrong-smtp-password-value";
  await Deno.writeTextFile(join(env.dir, "smtp_password"), `${wrong}\n`);
  const run = await check(env);
  assert.equal(run.code, 1, run.out);
  const mailer = lineOf(run, "mailer:");
  assert.equal(mailer.status, "FAIL");
  assert.match(mailer.text, /authentication as "teleport-email" failed/);
  assert.match(mailer.text, /fix: check smtp.username and smtp.password/);
  assert.ok(!run.out.includes(wrong) && !run.stderr.includes(wrong), "password printed");
  assert.ok(!run.out.includes(btoa(`\0teleport-email\0${wrong}`)), "AUTH PLAIN blob printed");
  assert.equal(lineOf(run, "connection:").status, "OK", "Teleport is still checked");
});

/**
 * An SMTP server that answers MAIL FROM before STARTTLS with 530 and offers no AUTH before TLS
 * (Postfix with `smtpd_tls_security_level = encrypt` relaying for its network), closed when
 * disposed. A client that skips STARTTLS connects fine and only fails at MAIL FROM.
 */
async function startTlsRequiringSink(env: E2eEnv): Promise<SmtpSink & AsyncDisposable> {
  const tls = await env.ca.issueServerCert({ dnsNames: ["localhost"] });
  const sink = await SmtpSink.start({
    tls: { key: tls.keyPem, cert: tls.certPem },
    requireStartTls: true,
  });
  return Object.assign(sink, { [Symbol.asyncDispose]: () => sink.close() });
}

function useSink(env: E2eEnv, sink: SmtpSink, policy: string): Promise<void> {
  return env.updateConfig((c) => {
    const smtp = c.smtp as Record<string, unknown>;
    smtp.port = sink.port;
    smtp.starttls_policy = policy;
  });
}

Deno.test("e2e check: starttls_policy disabled against a server requiring STARTTLS FAILs at MAIL FROM", async () => {
  await using env = await startEnv();
  await using sink = await startTlsRequiringSink(env);
  await useSink(env, sink, "disabled");
  const run = await check(env);
  assert.equal(run.code, 1, run.out);
  const mailer = lineOf(run, "mailer:");
  assert.equal(mailer.status, "FAIL");
  assert.match(mailer.text, /refused the sender "noreply@example.com" at MAIL FROM: 530/);
  assert.match(mailer.text, /Must issue a STARTTLS command first/);
  assert.match(
    mailer.text,
    /fix: the server requires STARTTLS: set smtp.starttls_policy = "mandatory"/,
  );
  assert.equal(sink.messages.length, 0);

  // The named fix works against the same server.
  await useSink(env, sink, "mandatory");
  const fixed = await check(env);
  assert.equal(fixed.code, 0, fixed.out);
  assert.equal(sink.messages.length, 0, "the probe sends nothing");
});

Deno.test("e2e start: starttls_policy disabled against a server requiring STARTTLS fails at start-up", async () => {
  await using env = await startEnv();
  await using sink = await startTlsRequiringSink(env);
  await useSink(env, sink, "disabled");
  const plugin = await env.startPlugin({ waitReady: false });
  const [first] = await plugin.waitForLog((l) =>
    l.msg === "Plugin is ready" || l.msg === "Terminating with fatal error"
  );
  assert.equal(first.msg, "Terminating with fatal error", "must not report ready");
  assert.equal(await plugin.exited, 1);
  const fatal = plugin.logs.filter((l) => l.msg === "Terminating with fatal error");
  assert.equal(fatal.length, 1, plugin.stderrLines.join("\n"));
  const error = String(fatal[0].error);
  assert.ok(!error.includes("\n"), "one line");
  assert.match(error, /client connection health check failed: SMTP server "localhost:\d+"/);
  assert.match(error, /530 5\.7\.0 Must issue a STARTTLS command first/);
  assert.match(error, /starttls_policy = "mandatory"/);
});

Deno.test("e2e check: unreachable Teleport and SMTP hosts FAIL, permissions are skipped with the reason", async () => {
  await using env = await startEnv();
  await env.updateConfig((c) => {
    (c.teleport as Record<string, unknown>).addr = `127.0.0.1:${CLOSED_PORT}`;
    (c.smtp as Record<string, unknown>).port = CLOSED_PORT;
  });
  const run = await check(env);
  assert.equal(run.code, 1, run.out);
  const conn = lineOf(run, "connection:");
  assert.equal(conn.status, "FAIL");
  assert.match(
    conn.text,
    new RegExp(`Cannot connect to Teleport at "127\\.0\\.0\\.1:${CLOSED_PORT}"`),
  );
  assert.match(conn.text, /fix: .*check teleport.addr/);
  const perms = lineOf(run, "permissions");
  assert.equal(perms.status, "SKIP");
  assert.match(perms.text, /reason: no connection to Teleport/);
  const mailer = lineOf(run, "mailer:");
  assert.equal(mailer.status, "FAIL");
  assert.match(mailer.text, new RegExp(`Cannot connect to SMTP server "localhost:${CLOSED_PORT}"`));
});

Deno.test("e2e check --send-test delivers exactly one email, marked as a test", async () => {
  await using env = await startEnv();
  const run = await check(env, ["--send-test", "ops@example.com"]);
  assert.equal(run.code, 0, run.out);
  assert.match(lineOf(run, "test email:").text, /sent to ops@example.com/);
  await env.waitForEmails(1);
  const emails = await env.waitForNoMoreEmails(500);
  assert.equal(emails.length, 1);
  assert.equal(emails[0].to, "ops@example.com");
  assert.match(emails[0].subject, /^\[TEST\] teleport-email test message for cluster /);
  assert.match(emails[0].text, /This is a TEST message/);
  assert.match(emails[0].html, /This is a TEST message/);
});

Deno.test("e2e check with Mailgun: key and domain checked, --send-test sends one email", async () => {
  await using env = await startEnv({ mailer: "mailgun" });
  const run = await check(env, ["--send-test", "ops@example.com"]);
  assert.equal(run.code, 0, run.out); // the one-hour identity only WARNs
  const mailer = lineOf(run, "mailer:");
  assert.equal(mailer.status, "OK");
  assert.match(mailer.text, /Mailgun domain "mg\.example\.com": API key and domain .* accepted/);
  await env.waitForEmails(1);
  const emails = await env.waitForNoMoreEmails(500);
  assert.equal(emails.length, 1);
  assert.equal(emails[0].to, "ops@example.com");
  assert.match(emails[0].subject, /^\[TEST\] teleport-email test message/);
});

Deno.test("e2e check: usage errors exit 2; check --help lists its flags", async () => {
  await using env = await startEnv();
  const help = await env.startPlugin({ args: ["check", "--help"], waitReady: false });
  assert.equal(await help.exited, 0);
  const usage = help.stderrLines.join("\n");
  assert.match(usage, /^usage: teleport-email check \[<flags>\]\n/);
  assert.match(usage, /--send-test=ADDRESS/);
  assert.match(usage, /-c, --config=/);
  for (
    const args of [["check", "--send-test", "not an address"], ["start", "--send-test", "a@b.c"]]
  ) {
    const plugin = await env.startPlugin({ args, waitReady: false });
    assert.equal(await plugin.exited, 2, args.join(" "));
    assert.match(plugin.stderrLines.join("\n"), /teleport-email: error: .*--send-test/);
  }
});
