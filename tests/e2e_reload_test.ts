/**
 * End-to-end: SIGHUP reloads the configuration of the running CLI (the signal the Teleport
 * guide's systemd unit sends with `ExecReload=/bin/kill -HUP $MAINPID`, and logrotate's
 * `postrotate`). The real CLI runs as a child process against the test Teleport server and a
 * real SMTP server; the process must never exit on SIGHUP.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type DeliveredEmail, E2eEnv } from "./helpers/e2e_env.ts";
import type { LogLine, PluginProcess } from "./helpers/plugin_process.ts";

/** Sends SIGHUP the way the guide's unit does: its ExecReload with $MAINPID substituted. */
async function execReload(plugin: PluginProcess): Promise<void> {
  const unitLine = "/bin/kill -HUP $MAINPID";
  const [cmd, ...args] = unitLine.replace("$MAINPID", String(plugin.pid)).split(" ");
  const res = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  assert.equal(res.code, 0, new TextDecoder().decode(res.stderr));
}

const reloaded = (l: LogLine) => l.msg === "Configuration reloaded";

function recipientsOf(emails: DeliveredEmail[]): string[] {
  return emails.map((e) => e.to).sort();
}

/** Creates a request and waits for its `n` new-request emails; returns their recipients. */
async function notify(env: E2eEnv, n = 1): Promise<string[]> {
  const req = env.teleport.createAccessRequest({ user: "alice@example.com", roles: ["dev"] });
  return recipientsOf(await env.waitForEmailsFor(req.id, n));
}

Deno.test("e2e: SIGHUP applies a changed role_to_recipients to the next request; the process keeps running", async () => {
  await using env = await E2eEnv.start({ roleToRecipients: { "*": ["old@example.com"] } });
  const plugin = await env.startPlugin();
  assert.deepEqual(await notify(env), ["old@example.com"]);
  await env.updateConfig((c) => (c.role_to_recipients = { "*": ["new@example.com"] }));
  await execReload(plugin);
  const [done] = await plugin.waitForLog(reloaded);
  assert.equal(done.changed, "role_to_recipients");
  assert.equal(plugin.exitCode, undefined);
  assert.deepEqual(await notify(env), ["new@example.com"]);
  assert.equal(await plugin.stop(), 0);
});

Deno.test("e2e: SIGHUP with a broken file logs an error naming the key and keeps the old recipients", async () => {
  await using env = await E2eEnv.start({ roleToRecipients: { "*": ["old@example.com"] } });
  const plugin = await env.startPlugin();
  await env.updateConfig((c) => (c.role_to_recipients = { "*": 42 }));
  plugin.signal("SIGHUP");
  const [error] = await plugin.waitForLog((l) => l.level === "ERROR");
  assert.equal(error.msg, "Configuration not reloaded; the previous configuration stays in force");
  assert.equal(error.key, "role_to_recipients.*");
  assert.match(String(error.error), /invalid role_to_recipients\.\*/);
  assert.deepEqual(await notify(env), ["old@example.com"]);
  assert.equal(plugin.exitCode, undefined);
  assert.equal(plugin.logs.filter(reloaded).length, 0);
  assert.equal(await plugin.stop(), 0);
});

Deno.test("e2e: SIGHUP in the middle of a 200-request burst, with a new identity and sender, loses and doubles nothing", async () => {
  const rcpts = ["a@example.com", "b@example.com"];
  await using env = await E2eEnv.start({ roleToRecipients: { "*": rcpts }, severity: "info" });
  const plugin = await env.startPlugin();
  const ids: string[] = [];
  const burst = (n: number) => {
    for (let i = 0; i < n; i++) {
      ids.push(env.teleport.createAccessRequest({ user: "alice@example.com", roles: ["dev"] }).id);
    }
  };
  burst(100);
  await env.waitForEmails(40);
  // A new certificate (the connection is rebuilt) and a new sender (the mailer is replaced).
  const fresh = join(env.dir, "auth_id.new");
  await env.ca.writeIdentityFile(fresh, { user: "plugin", roles: ["access-plugin"] });
  await Deno.rename(fresh, env.identityPath);
  await env.updateConfig((c) => {
    (c.delivery as Record<string, unknown>).sender = "Teleport <reloaded@example.com>";
  });
  plugin.signal("SIGHUP");
  const atSignal = env.emails.length;
  burst(100); // Created while the reload hands over.
  const [done] = await plugin.waitForLog(reloaded, { timeoutMs: 60_000 });
  assert.equal(done.changed, "delivery.sender,identity");
  await plugin.waitForLog((l) =>
    l.msg === "Reconnected to Teleport with the reloaded configuration"
  );
  assert.ok(atSignal < ids.length * rcpts.length, "the burst was still going at SIGHUP");
  await env.waitForEmails(ids.length * rcpts.length, 120_000);
  await env.waitForNoMoreEmails();
  const count = new Map<string, number>();
  for (const e of env.emails) {
    const id = ids.find((id) => e.subject.includes(id));
    assert.ok(id, `email about an unknown request: ${e.subject}`);
    count.set(`${id} ${e.to}`, (count.get(`${id} ${e.to}`) ?? 0) + 1);
  }
  for (const id of ids) {
    for (const to of rcpts) assert.equal(count.get(`${id} ${to}`), 1, `${id} ${to}`);
  }
  assert.equal(env.emails.length, ids.length * rcpts.length);
  assert.ok(env.emails.some((e) => e.from.includes("reloaded@example.com")));
  assert.equal(plugin.exitCode, undefined);
  assert.equal(await plugin.stop(), 0);
});

/** Waits until the file at `path` has a JSON log line matching `match`. */
async function waitForFileLog(path: string, match: (l: LogLine) => boolean): Promise<LogLine> {
  const deadline = Date.now() + 30_000;
  // Bounded by the deadline; each turn re-reads the file the plugin appends to.
  while (true) {
    const text = await Deno.readTextFile(path).catch(() => "");
    const found = text.split("\n").filter((l) => l.startsWith("{")).map((l) =>
      JSON.parse(l) as LogLine
    ).find(match);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no matching log line in ${path}:\n${text}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

Deno.test("e2e: logrotate: after a rename and SIGHUP, new lines go to a new log file", async () => {
  const logPath = join(await Deno.makeTempDir({ prefix: "teleport_email_log_" }), "plugin.log");
  try {
    await using env = await E2eEnv.start({
      config: (c) => ((c.log as Record<string, unknown>).output = logPath),
    });
    const plugin = await env.startPlugin({ waitReady: false });
    await waitForFileLog(logPath, (l) => l.msg === "Plugin is ready");
    await Deno.rename(logPath, `${logPath}.1`);
    plugin.signal("SIGHUP");
    await waitForFileLog(logPath, reloaded);
    assert.equal(await notify(env).then((r) => r.length), 1);
    await waitForFileLog(logPath, (l) => l.msg === "Successfully sent");
    const rotated = await Deno.readTextFile(`${logPath}.1`);
    assert.ok(rotated.includes("Plugin is ready"));
    assert.ok(!rotated.includes("Successfully sent"), "a line went to the rotated file");
    assert.equal(plugin.exitCode, undefined);
    assert.equal(await plugin.stop(), 0);
  } finally {
    await Deno.remove(join(logPath, ".."), { recursive: true });
  }
});

Deno.test("e2e: two SIGHUPs in a row both take effect (the second is not lost)", async () => {
  await using env = await E2eEnv.start({ roleToRecipients: { "*": ["zero@example.com"] } });
  const plugin = await env.startPlugin();
  // The first reload changes [teleport], so it takes a while (a new connection is made and
  // watching before the old one stops): the second SIGHUP arrives while it runs.
  await env.updateConfig((c) => {
    (c.teleport as Record<string, unknown>).refresh_identity = true;
    c.role_to_recipients = { "*": ["first@example.com"] };
  });
  plugin.signal("SIGHUP");
  await plugin.waitForLog((l) => l.msg === "Received SIGHUP, reloading the configuration");
  await env.updateConfig((c) => (c.role_to_recipients = { "*": ["second@example.com"] }));
  plugin.signal("SIGHUP");
  await plugin.waitForLog(reloaded, { count: 2, timeoutMs: 60_000 });
  assert.deepEqual(await notify(env), ["second@example.com"]);
  assert.equal(plugin.exitCode, undefined);
  assert.equal(await plugin.stop(), 0);
});
