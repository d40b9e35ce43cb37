/**
 * Proves the `TELEPORT_EMAIL_BIN` switch on every run: a few CLI and end-to-end tests run again
 * in a child `deno test` with `TELEPORT_EMAIL_BIN=scripts/launcher_for_tests.sh`, which starts
 * the program from outside the repository as the compiled binary would be; the launcher's log
 * shows it was used, and from where. The whole suite runs the same way with
 * `TELEPORT_EMAIL_BIN=scripts/launcher_for_tests.sh deno task test`, and against a compiled
 * binary with `deno task test:binary`.
 */
import assert from "node:assert/strict";
import { DAEMON_PERMISSIONS } from "../src/permissions.ts";
import { DAEMON_RUN_FLAGS } from "../src/runtime_flags.ts";
import { runSwitchedTests, SWITCH_COUNT } from "./helpers/binary_switch.ts";

const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const LAUNCHER = `${REPO}/scripts/launcher_for_tests.sh`;

Deno.test("TELEPORT_EMAIL_BIN: CLI and e2e tests pass against scripts/launcher_for_tests.sh run outside the repository", async () => {
  const dir = await Deno.makeTempDir({ prefix: "launcher-test-" });
  try {
    const log = `${dir}/launcher.log`;
    const r = await runSwitchedTests(LAUNCHER, { TELEPORT_EMAIL_LAUNCHER_LOG: log });
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, new RegExp(`ok \\| ${SWITCH_COUNT} passed \\| 0 failed`), r.output);
    const runs = (await Deno.readTextFile(log)).trim().split("\n");
    // version, configure, and three daemons (SIGTERM, SIGINT, outage).
    assert.ok(runs.length >= 5, runs.join("\n"));
    assert.ok(runs.some((l) => / version$/.test(l)), runs.join("\n"));
    assert.ok(runs.some((l) => / start -c /.test(l)), runs.join("\n"));
    for (const line of runs) {
      const cwd = line.slice(0, line.indexOf(" "));
      assert.ok(!`${cwd}/`.startsWith(`${REPO}/`), `run from inside the repository: ${line}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("scripts/launcher_for_tests.sh runs main.ts with exactly the daemon's permissions and runtime flags", async () => {
  const text = await Deno.readTextFile(LAUNCHER);
  const flags = [...text.matchAll(/--allow-[a-z-]+(=\S+)?/g)].map((m) => m[0]);
  assert.deepEqual(flags, [...DAEMON_PERMISSIONS]);
  assert.doesNotMatch(text, /--allow-all|-A\b/);
  const runtime = [
    ...text.matchAll(/--v8-flags=\S+|--no-code-cache\b|--node-modules-dir=\S+|--no-lock\b/g),
  ]
    .map((m) => m[0]);
  assert.deepEqual(runtime, [...DAEMON_RUN_FLAGS]);
});
