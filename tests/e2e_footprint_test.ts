/**
 * End-to-end: what a running daemon keeps in memory. No daemon loads grpc-js (the plugin has its
 * own gRPC client). An SMTP daemon without `--diag-addr`, once ready, has evaluated neither the metrics (`npm:prom-client`, which also pulls in
 * `@opentelemetry/api`), nor the SSH reverse-tunnel stack (`ssh2`), nor the WebSocket dialer
 * (`ws`): each costs idle resident memory. With `--diag-addr` the metrics are loaded. A Mailgun
 * daemon does not load the SMTP transport; an SMTP daemon loads `nodemailer` only for a header it
 * alone encodes (non-ASCII, say), and `re2js` only for a rule that calls `regexp.replace`. V8 logs
 * every script it compiles (`--log-function-events`), which is what these tests read. Once ready,
 * the daemon (run with its own flags) compacts its heap once and says so at debug level.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { E2eEnv } from "./helpers/e2e_env.ts";
import { DAEMON_PERMISSIONS } from "../src/permissions.ts";
import { DAEMON_V8_FLAGS } from "../src/runtime_flags.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/**
 * The npm packages whose scripts a ready daemon started with `args` had compiled; with `emails`,
 * after a new request's emails went out.
 */
async function packagesLoaded(
  env: E2eEnv,
  extraArgs: string[],
  emails = false,
): Promise<Set<string>> {
  const log = join(env.dir, `v8-${crypto.randomUUID()}.log`);
  const v8 = [...DAEMON_V8_FLAGS, "--log-function-events", `--logfile=${log}`];
  const plugin = await env.startPlugin({
    denoArgs: [
      "run",
      ...DAEMON_PERMISSIONS,
      `--v8-flags=${v8.join(",")},--no-logfile-per-isolate`,
      "--quiet",
      MAIN,
    ],
    args: ["start", "-c", env.configPath, ...extraArgs],
  });
  if (emails) {
    const req = env.teleport.createAccessRequest({
      user: "requester@example.com",
      roles: ["editor"],
    });
    await env.waitForEmailsFor(req.id, 1);
  }
  assert.equal(await plugin.stop(), 0);
  const text = await Deno.readTextFile(log);
  const packages = new Set<string>();
  for (const m of text.matchAll(/^script-details,\d+,[^,]*node_modules\/\.deno\/([^/,]+)\//gm)) {
    packages.add(m[1].replace(/@[^@]+$/, "").replace("+", "/"));
  }
  return packages;
}

Deno.test("e2e: an SMTP daemon loads neither metrics, nor ssh2, nor ws unless it needs them", async () => {
  await using env = await E2eEnv.start({ mailer: "smtp" });
  const plain = await packagesLoaded(env, []);
  // The daemon did load its npm packages (so an empty set is not why the checks below pass).
  assert.ok(plain.has("@bufbuild/protobuf"), [...plain].join(" "));
  const lazy = ["@grpc/grpc-js", "prom-client", "@opentelemetry/api", "ssh2", "ws", "nodemailer"];
  for (const unused of [...lazy, "re2js"]) {
    assert.ok(!plain.has(unused), `loaded ${unused}: ${[...plain].join(" ")}`);
  }

  const diag = await packagesLoaded(env, ["--diag-addr=127.0.0.1:0"]);
  assert.ok(diag.has("prom-client"), [...diag].join(" "));
});

Deno.test("e2e: an SMTP daemon loads nodemailer only for a value it alone encodes", async () => {
  {
    await using env = await E2eEnv.start({ mailer: "smtp" });
    const loaded = await packagesLoaded(env, [], true);
    assert.ok(!loaded.has("nodemailer"), `loaded nodemailer: ${[...loaded].join(" ")}`);
  }
  // A non-ASCII sender name is encoded as MIME words, by nodemailer.
  await using env = await E2eEnv.start({
    mailer: "smtp",
    sender: "Téléport <noreply@example.com>",
  });
  assert.ok((await packagesLoaded(env, [], true)).has("nodemailer"));
});

Deno.test("e2e: a Mailgun daemon does not load nodemailer", async () => {
  await using env = await E2eEnv.start({ mailer: "mailgun" });
  const loaded = await packagesLoaded(env, []);
  assert.ok(loaded.has("@bufbuild/protobuf"), [...loaded].join(" "));
  assert.ok(!loaded.has("nodemailer"), `loaded nodemailer: ${[...loaded].join(" ")}`);
});

Deno.test("e2e: once ready, the daemon compacts its heap once", async () => {
  await using env = await E2eEnv.start({ mailer: "smtp", severity: "debug" });
  const plugin = await env.startPlugin();
  const [line] = await plugin.waitForLog((l) => l.msg === "Compacted the heap after start-up");
  const ready = plugin.logs.findIndex((l) => l.msg === "Plugin is ready");
  assert.ok(ready >= 0 && ready < plugin.logs.indexOf(line), "compacted after ready");
  assert.ok(Number(line.heap_mib_after) <= Number(line.heap_mib_before), JSON.stringify(line));
  assert.equal(await plugin.stop(), 0);
  assert.equal(plugin.logs.filter((l) => l.msg === "Compacted the heap after start-up").length, 1);
});
