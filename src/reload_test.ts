import assert from "node:assert/strict";
import type { Config } from "./config/types.ts";
import { configChanges, needsNewConnection, needsNewMailer, ReloadQueue } from "./reload.ts";

function config(): Config {
  return {
    path: "/etc/teleport-email.toml",
    teleport: {
      addr: "teleport.example.com:443",
      identity: "/var/lib/teleport/plugins/email/auth_id",
      refreshIdentity: true,
      refreshIdentityIntervalMs: 60_000,
      clientKey: "",
      clientCrt: "",
      rootCas: "",
    },
    smtp: {
      host: "smtp.example.com",
      port: 587,
      username: "u",
      password: "p",
      passwordFile: "",
      starttlsPolicy: "mandatory",
      caFile: "",
    },
    delivery: { sender: "noreply@example.com", notifyRequester: false },
    roleToRecipients: { "*": ["all@example.com"] },
    log: { output: "stderr", severity: "info", format: "text" },
    warnings: [],
  };
}

Deno.test("configChanges() names each changed section or key; only [teleport] and the transport kind need a new connection", () => {
  const a = config();
  assert.deepEqual(configChanges(a, config()), []);
  const b = config();
  b.roleToRecipients = { "*": ["x@example.com"] };
  b.log.severity = "debug";
  assert.deepEqual(configChanges(a, b), ["role_to_recipients", "log"]);
  assert.equal(needsNewMailer(configChanges(a, b)), false);
  assert.equal(needsNewConnection(a, b), false);
  const c = config();
  c.smtp!.password = "rotated"; // password_file re-read with a new password
  c.delivery.sender = "Teleport <noreply@example.com>";
  assert.deepEqual(configChanges(a, c), ["smtp", "delivery.sender"]);
  assert.equal(needsNewMailer(configChanges(a, c)), true);
  assert.equal(needsNewConnection(a, c), false);
  const d = config();
  d.teleport.addr = "other.example.com:443";
  assert.deepEqual(configChanges(a, d), ["teleport"]);
  assert.equal(needsNewConnection(a, d), true);
  const e = config();
  delete e.smtp;
  e.mailgun = { domain: "mg", privateKey: "k", privateKeyFile: "", apiBase: "https://x" };
  assert.deepEqual(configChanges(a, e), ["smtp", "mailgun"]);
  assert.equal(needsNewConnection(a, e), true, "the send limit depends on the transport");
});

Deno.test("ReloadQueue runs one reload at a time, coalesces requests made meanwhile, and holds them while paused", async () => {
  const runs: Array<() => void> = [];
  const q = new ReloadQueue(() => new Promise<void>((resolve) => runs.push(resolve)));
  q.request();
  await Promise.resolve();
  assert.equal(runs.length, 0, "paused during start-up");
  q.resume();
  assert.equal(runs.length, 1);
  q.request();
  q.request();
  assert.equal(runs.length, 1, "one at a time");
  runs[0]();
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(runs.length, 2, "the queued requests make one more reload");
  runs[1]();
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(runs.length, 2);
  q.request();
  const stopped = q.stop();
  runs[2]();
  await stopped;
  q.request();
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(runs.length, 3, "nothing after stop()");
});
