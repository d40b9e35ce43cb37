/**
 * End-to-end start-up and shutdown of the real CLI: SIGTERM and SIGINT stop it cleanly (exit 0);
 * a missing plugin role, an unreachable or silent Teleport, a too-old server and failed mailer
 * health checks each end it with exit 1 and one clear fatal error within the start-up budget.
 * Every environment's close also checks that no secret reached the plugin's output.
 */
import assert from "node:assert/strict";
import net from "node:net";
import { E2eEnv, type E2eEnvOptions } from "./helpers/e2e_env.ts";
import type { PluginProcess } from "./helpers/plugin_process.ts";

/** Bound on a failing start-up: the 10 s init budget plus process start and slack. */
const FAIL_WITHIN_MS = 25_000;

async function exitWithin(plugin: PluginProcess, ms: number): Promise<number> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), ms)));
  const result = await Promise.race([plugin.exited, timeout]);
  clearTimeout(timer);
  if (result === "timeout") {
    plugin.kill();
    await plugin.exited;
    throw new Error(`the plugin did not exit within ${ms} ms:\n${plugin.stderrLines.join("\n")}`);
  }
  return result;
}

interface FailureCase {
  name: string;
  env: E2eEnvOptions;
  prepare?: (env: E2eEnv) => Promise<void>;
  /** Fragments of the fatal error. */
  error: string[];
  /** Strings that must not appear in the output (besides the shared secrets). */
  secret?: string;
}

/**
 * A loopback TCP port nobody listens on. Not a freed ephemeral port: the other cases of the same
 * test start servers concurrently and one of them could be given that port again. Port 1
 * (tcpmux) is outside the ephemeral range and unused on a test machine.
 */
function closedPort(): number {
  return 1;
}

/** A loopback listener that accepts connections and never answers (a black hole). */
async function silentListener(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.on("error", () => {});
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function setAddr(addr: string) {
  return (c: Record<string, unknown>) => {
    (c.teleport as Record<string, unknown>).addr = addr;
  };
}

async function runFailure(c: FailureCase): Promise<void> {
  await using env = await E2eEnv.start(c.env);
  await c.prepare?.(env);
  const plugin = await env.startPlugin({ waitReady: false });
  const code = await exitWithin(plugin, FAIL_WITHIN_MS);
  const out = plugin.stderrLines.join("\n");
  assert.equal(code, 1, `${c.name}: exit code\n${out}`);
  const fatal = plugin.logs.filter((l) => l.msg === "Terminating with fatal error");
  assert.equal(fatal.length, 1, `${c.name}: one fatal error\n${out}`);
  const error = String(fatal[0].error);
  for (const fragment of c.error) {
    assert.ok(error.includes(fragment), `${c.name}: ${JSON.stringify(fragment)} in ${error}`);
  }
  assert.ok(!plugin.logs.some((l) => l.msg === "Plugin is ready"), `${c.name}: never ready`);
  if (c.secret) assert.ok(!out.includes(c.secret), `${c.name}: secret in the output`);
}

Deno.test("e2e: start-up failures exit 1 with one clear fatal error within the start-up budget", async () => {
  const port = closedPort();
  const silent = await silentListener();
  try {
    const cases: FailureCase[] = [
      {
        name: "identity without the plugin role",
        env: { pluginRoles: ["nobody"] },
        error: [
          "PERMISSION_DENIED",
          "access denied",
          "access_request: list, read",
          "access_plugin_data: update",
        ],
      },
      {
        name: "Teleport unreachable (closed port)",
        env: { config: setAddr(`127.0.0.1:${port}`) },
        error: ["Cannot connect to Teleport", `127.0.0.1:${port}`, "ECONNREFUSED"],
      },
      {
        name: "Teleport silent (accepts, never answers)",
        env: { config: setAddr(`127.0.0.1:${silent.port}`) },
        error: [`127.0.0.1:${silent.port}`, "no connection mode succeeded in time", "direct:"],
      },
      {
        name: "identity file without its certificates (key material only)",
        env: {},
        prepare: async (env) => {
          const pem = await Deno.readTextFile(env.identityPath);
          const key = pem.match(
            /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----\n/,
          );
          assert.ok(key, "the identity file has a private key");
          await Deno.writeTextFile(env.identityPath, key[0]);
        },
        error: ["Cannot read identity file"],
      },
      {
        name: "server version too old",
        env: { server: { serverVersion: "6.0.0" } },
        error: ["incompatible versions: 6.0.0 < 6.1.0-beta.1"],
      },
      {
        name: "SMTP health check: wrong password",
        env: { mailer: "smtp" },
        prepare: (env) => Deno.writeTextFile(`${env.dir}/smtp_password`, "e2e-wrong-password\n"),
        error: ["client connection health check failed", "535"],
        secret: "e2e-wrong-password",
      },
      {
        name: "Mailgun health check: wrong key",
        env: { mailer: "mailgun" },
        prepare: (env) => Deno.writeTextFile(`${env.dir}/mailgun_key`, "e2e-wrong-key\n"),
        error: ["client connection health check failed", "401"],
        secret: "e2e-wrong-key",
      },
    ];
    await Promise.all(cases.map(runFailure));
  } finally {
    await silent.close();
  }
});

async function stopsCleanly(signal: Deno.Signal, mailer: "smtp" | "mailgun") {
  await using env = await E2eEnv.start({ mailer });
  const plugin = await env.startPlugin();
  const req = env.teleport.createAccessRequest({ user: "alice@example.com", roles: ["editor"] });
  await env.waitForEmailsFor(req.id, 1);
  const code = await plugin.stop(signal);
  const out = plugin.stderrLines.join("\n");
  assert.equal(code, 0, `${signal}: exit code\n${out}`);
  const graceful = plugin.logs.find((l) => l.msg === "Attempting graceful shutdown");
  assert.equal(graceful?.signal, signal);
  assert.ok(plugin.logs.some((l) => l.msg === "Successfully shut down"), out);
  assert.ok(!plugin.logs.some((l) => l.level === "ERROR"), `${signal}: no error logged\n${out}`);
  assert.deepEqual(env.leakedSecrets(), []);
}

/** SIGTERM while Teleport is down (the watcher is between reconnects): still a clean exit. */
async function stopsDuringOutage() {
  await using env = await E2eEnv.start({ mailer: "smtp" });
  const plugin = await env.startPlugin();
  await env.teleport.stop();
  await plugin.waitForLog((l) =>
    l.msg === "Connection problem detected, attempting to reconnect" ||
    l.msg === "Watcher stream closed attempting to reconnect"
  );
  assert.equal(await plugin.stop("SIGTERM"), 0, plugin.stderrLines.join("\n"));
  assert.ok(plugin.logs.some((l) => l.msg === "Successfully shut down"));
}

Deno.test("e2e: SIGTERM and SIGINT shut the plugin down gracefully with exit 0, also during an outage", async () => {
  await Promise.all([
    stopsCleanly("SIGTERM", "smtp"),
    stopsCleanly("SIGINT", "mailgun"),
    stopsDuringOutage(),
  ]);
});

Deno.test("e2e smtp: SIGTERM while emails are being sent drains the handler; a restart resends nothing", async () => {
  await using env = await E2eEnv.start({ mailer: "smtp" });
  const p1 = await env.startPlugin();
  env.smtp!.delayMs = 1500; // each DATA reply is slow: the handler is mid-send at SIGTERM
  const req = env.teleport.createAccessRequest({
    user: "alice@example.com",
    roles: ["editor"],
    suggestedReviewers: ["reviewer1@example.com"],
  });
  // The handler holds the request's lease while it sends.
  await env.waitForPluginData(req.id, (d) => (d.email_delivery ?? "").includes('"lock"'));
  assert.equal(await p1.stop("SIGTERM"), 0, p1.stderrLines.join("\n"));
  assert.ok(p1.logs.some((l) => l.msg === "Successfully shut down"));
  assert.equal(env.emailsFor(req.id).length, 2, "the running handler finished its sends");
  const data = env.teleport.getPluginData(req.id, "email");
  assert.equal(data?.email_threads?.split(",").length, 2, "both sends recorded");
  assert.ok(!(data?.email_delivery ?? "").includes('"lock"'), "the lease was released");

  env.smtp!.delayMs = 0;
  const p2 = await env.startPlugin();
  await p2.waitForLog((l) => l.msg === "Caught up on access requests");
  await env.waitForNoMoreEmails(500);
  assert.equal(env.emailsFor(req.id).length, 2, "nothing resent after the restart");
  assert.equal(await p2.stop(), 0);
});

Deno.test("e2e: the shared after-check catches a secret in the plugin's output", async () => {
  const env = await E2eEnv.start({ mailer: "smtp" });
  let closed = false;
  try {
    // The configuration path is echoed in the error: name it after the SMTP password.
    const plugin = await env.startPlugin({
      waitReady: false,
      args: ["start", "-c", `${env.dir}/e2e-smtp-secret.toml`],
    });
    assert.equal(await exitWithin(plugin, FAIL_WITHIN_MS), 1);
    assert.deepEqual(env.leakedSecrets(), ["e2e-smtp-secret"]);
    closed = true;
    await assert.rejects(env.close(), /secrets appeared in the plugin's output: e2e-smtp-secret/);
  } finally {
    if (!closed) await env.close();
  }
});

Deno.test("e2e: with TELEPORT_PLUGIN_FAIL_FAST=true a lost watch stream ends the plugin with exit 1", async () => {
  await using env = await E2eEnv.start({ mailer: "smtp" });
  const plugin = await env.startPlugin({ env: { TELEPORT_PLUGIN_FAIL_FAST: "true" } });
  env.teleport.dropStreams();
  assert.equal(await exitWithin(plugin, FAIL_WITHIN_MS), 1);
  const fatal = plugin.logs.filter((l) => l.msg === "Terminating with fatal error");
  assert.equal(fatal.length, 1, plugin.stderrLines.join("\n"));
  assert.match(String(fatal[0].error), /fail fast/i);
});
