import assert from "node:assert/strict";
import { TeleportError } from "../errors.ts";
import type { TeleportClient } from "../teleport/client.ts";
import type { WatchEvent } from "../teleport/types.ts";
import { checkPermissions, GUIDE_ROLE_YAML, PROBE_REQUEST_ID } from "./permissions.ts";
import { CheckReport } from "./report.ts";

/** A client whose calls answer as `answers` says; records the update probe. */
function stubClient(answers: {
  init?: string[] | "error";
  list?: Error;
  getPluginData?: Error;
  update?: Error;
  rules?: Error;
}): TeleportClient & { updates: unknown[] } {
  const updates: unknown[] = [];
  const fail = (e?: Error) => e ? Promise.reject(e) : Promise.resolve();
  return {
    connectionMode: "direct",
    updates,
    ping: () => Promise.reject(new Error("not used")),
    async *watchEvents(): AsyncIterable<WatchEvent> {
      if (answers.init === "error") {
        throw new TeleportError("bad_parameter", "none of the requested kinds can be watched");
      }
      yield { type: "init", kinds: answers.init };
    },
    listAccessRequests: (opts) => {
      assert.equal(opts?.limit, 1);
      return fail(answers.list).then(() => []);
    },
    getPluginData: () => fail(answers.getPluginData).then(() => undefined),
    listPluginData: () => Promise.resolve([]),
    updatePluginData: (id, plugin, set, expect) => {
      updates.push({ id, plugin, set, expect });
      return fail(answers.update ?? new TeleportError("not_found", "access request not found"));
    },
    listAccessMonitoringRules: () => fail(answers.rules).then(() => []),
    close() {},
  };
}

async function run(client: TeleportClient): Promise<{ report: CheckReport; out: string }> {
  let out = "";
  const report = new CheckReport((t) => out += t);
  await checkPermissions(report, client, {
    plugin: "email",
    signal: AbortSignal.timeout(5_000),
    watchTimeoutMs: 1_000,
  });
  return { report, out };
}

const denied = (what: string) => new TeleportError("access_denied", `access denied ${what}`);

Deno.test("checkPermissions() passes the guide's role and writes nothing that could be stored", async () => {
  const client = stubClient({ init: ["access_request"] });
  const { report, out } = await run(client);
  assert.deepEqual(report.lines.map((l) => l.status), ["OK", "OK", "OK"]);
  assert.ok(!out.includes("kind: role"));
  assert.deepEqual(client.updates, [{
    id: PROBE_REQUEST_ID,
    plugin: "email",
    set: { teleport_email_check: "probe" },
    expect: { teleport_email_check: "never-stored" },
  }]);
});

Deno.test("checkPermissions() FAILs access_request read when the watch leaves the kind out", async () => {
  for (const init of [[] as string[], "error" as const]) {
    const { report, out } = await run(stubClient({ init }));
    assert.equal(report.lines[0].status, "FAIL", out);
    assert.match(report.lines[0].what, /^permission access_request list, read: denied/);
    assert.ok(
      out.includes(GUIDE_ROLE_YAML.split("\n").map((l) => `      ${l}`).join("\n").trimEnd()),
    );
  }
});

Deno.test("checkPermissions() FAILs access_request list when GetPluginData is denied", async () => {
  const { report } = await run(
    stubClient({ init: undefined, getPluginData: denied('"list" on "access_plugin_data"') }),
  );
  assert.equal(report.lines[0].status, "FAIL");
  assert.match(report.lines[0].what, /access_plugin_data/);
});

Deno.test("checkPermissions() accepts compare_failed for the update and WARNs for rules", async () => {
  const { report } = await run(stubClient({
    update: new TeleportError("compare_failed", "expectations not met"),
    rules: denied('"read" on "access_monitoring_rule"'),
  }));
  assert.deepEqual(report.lines.map((l) => l.status), ["OK", "OK", "WARN"]);
  assert.equal(report.failed, false);
});

Deno.test("checkPermissions() reports a probe that fails for another reason as FAIL, not denied", async () => {
  const { report } = await run(stubClient({
    update: new TeleportError("connection_problem", "connection lost"),
  }));
  assert.equal(report.lines[1].status, "FAIL");
  assert.match(report.lines[1].what, /could not be checked: connection lost/);
});
