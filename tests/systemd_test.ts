/**
 * Tests of `deploy/systemd/teleport-email.service`: `systemd-analyze verify` on a temporary copy
 * whose ExecStart points at an existing executable (verify refuses a missing binary, and the real
 * one is not installed here), plus the choices the README documents.
 */
import assert from "node:assert/strict";
import { REPO_ROOT } from "../scripts/release.ts";
import { which } from "./helpers/which.ts";

const UNIT_PATH = `${REPO_ROOT}/deploy/systemd/teleport-email.service`;
const UNIT = await Deno.readTextFile(UNIT_PATH);
const ANALYZE = which("systemd-analyze");

/** Directives of one section, in order, as [key, value]. */
function section(unit: string, name: string): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  let current = "";
  for (const line of unit.split("\n")) {
    const t = line.trim();
    if (t === "" || t.startsWith("#")) continue;
    const header = /^\[(.+)\]$/.exec(t);
    if (header) {
      current = header[1];
      continue;
    }
    if (current !== name) continue;
    const eq = t.indexOf("=");
    out.push([t.slice(0, eq), t.slice(eq + 1)]);
  }
  return out;
}

/** Runs `systemd-analyze <args>` on a copy of `unit` named teleport-email.service. */
async function analyze(
  unit: string,
  args: string[],
): Promise<{ code: number; out: string; err: string }> {
  const dir = await Deno.makeTempDir({ prefix: "systemd-test-" });
  try {
    const path = `${dir}/teleport-email.service`;
    await Deno.writeTextFile(path, unit);
    const res = await new Deno.Command(ANALYZE!, {
      args: [...args, path],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { SYSTEMD_LOG_COLOR: "0", SYSTEMD_PAGER: "" },
      signal: AbortSignal.timeout(60_000),
    }).output();
    const dec = new TextDecoder();
    return { code: res.code, out: dec.decode(res.stdout), err: dec.decode(res.stderr) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The unit with ExecStart's binary replaced by /bin/true (must exist for verify). */
function withExistingBinary(unit: string): string {
  const rewritten = unit.replace(
    /^ExecStart=\/usr\/local\/bin\/teleport-email /m,
    "ExecStart=/bin/true ",
  );
  assert.notEqual(rewritten, unit, "ExecStart starts with /usr/local/bin/teleport-email");
  return rewritten;
}

const SKIP = "(skipped: systemd-analyze is not installed; apt-get install systemd)";

Deno.test({
  name: ANALYZE
    ? "systemd unit: systemd-analyze verify reports nothing"
    : `systemd unit: verify ${SKIP}`,
  ignore: !ANALYZE,
  async fn() {
    const r = await analyze(withExistingBinary(UNIT), ["verify"]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err.trim(), "");
  },
});

Deno.test({
  name: ANALYZE
    ? "systemd unit: verify flags an unknown key and a missing binary (the check can fail)"
    : `systemd unit: verify negative control ${SKIP}`,
  ignore: !ANALYZE,
  async fn() {
    const typo = await analyze(
      withExistingBinary(UNIT).replace("ProtectSystem=", "ProtectSystm="),
      ["verify"],
    );
    assert.match(typo.err, /Unknown key .ProtectSystm./);
    const missing = await analyze(
      UNIT.replace("/usr/local/bin/teleport-email", "/nonexistent/teleport-email"),
      [
        "verify",
      ],
    );
    assert.notEqual(missing.code, 0);
    assert.match(missing.err, /\/nonexistent\/teleport-email is not executable/);
  },
});

Deno.test({
  name: ANALYZE
    ? "systemd unit: systemd-analyze security rates the exposure OK or better (below 5.0)"
    : `systemd unit: security ${SKIP}`,
  ignore: !ANALYZE,
  async fn() {
    const r = await analyze(withExistingBinary(UNIT), ["security", "--offline=yes", "--no-pager"]);
    const m = /Overall exposure level for teleport-email\.service: (\d+\.\d+)/.exec(r.out + r.err);
    assert.ok(m, r.out + r.err);
    assert.ok(Number(m[1]) < 5.0, `exposure ${m[1]}`);
  },
});

Deno.test("systemd unit: runs the installed binary with the default config, restarts on failure, reloads with SIGHUP, no PID file", () => {
  const service = section(UNIT, "Service");
  const get = (key: string) => service.filter(([k]) => k === key).map(([, v]) => v);
  assert.deepEqual(get("ExecStart"), [
    "/usr/local/bin/teleport-email start --config=/etc/teleport-email.toml",
  ]);
  assert.deepEqual(get("Type"), ["simple"]);
  assert.deepEqual(get("Restart"), ["on-failure"]);
  // SIGHUP reloads (as in the Teleport guide's unit); the plugin writes no PID file.
  assert.deepEqual(get("ExecReload"), ["/bin/kill -HUP $MAINPID"]);
  assert.deepEqual(get("PIDFile"), []);
  assert.deepEqual(section(UNIT, "Install"), [["WantedBy", "multi-user.target"]]);
  assert.deepEqual(section(UNIT, "Unit").find(([k]) => k === "Description"), [
    "Description",
    "Teleport Email Plugin",
  ]);
});

/** The Teleport guide's unit (`examples/systemd/plugins/teleport-email.service`), verbatim. */
const GUIDE_UNIT = `[Unit]
Description=Teleport Email Plugin
After=network.target

[Service]
Type=simple
Restart=on-failure
ExecStart=/usr/local/bin/teleport-email start --config=/etc/teleport-email.toml
ExecReload=/bin/kill -HUP $MAINPID
PIDFile=/run/teleport-email.pid

[Install]
WantedBy=multi-user.target
`;

Deno.test({
  name: ANALYZE
    ? "systemd unit: the Teleport guide's own unit passes systemd-analyze verify"
    : `systemd unit: the guide's unit ${SKIP}`,
  ignore: !ANALYZE,
  async fn() {
    const r = await analyze(withExistingBinary(GUIDE_UNIT), ["verify"]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.err.trim(), "");
  },
});

Deno.test("systemd unit: reloads like the guide's unit, which the README quotes verbatim", async () => {
  // The same ExecReload: the SIGHUP it sends reloads (tests/e2e_reload_test.ts runs that line).
  const ours = section(UNIT, "Service").find(([k]) => k === "ExecReload");
  const theirs = section(GUIDE_UNIT, "Service").find(([k]) => k === "ExecReload");
  assert.deepEqual(ours, theirs);
  const readme = await Deno.readTextFile(`${REPO_ROOT}/README.md`);
  assert.ok(readme.includes(GUIDE_UNIT), "README quotes the guide's unit verbatim");
});

Deno.test("systemd unit: hardening keeps the data dir writable and never sets MemoryDenyWriteExecute (V8 JIT)", () => {
  const service = new Map(section(UNIT, "Service"));
  for (
    const [key, value] of [
      ["NoNewPrivileges", "yes"],
      ["ProtectSystem", "strict"],
      ["ProtectHome", "read-only"],
      ["PrivateTmp", "yes"],
      ["ReadWritePaths", "-/var/lib/teleport/plugins/email"],
      ["CapabilityBoundingSet", "CAP_DAC_READ_SEARCH"],
      ["LogsDirectory", "teleport-email"],
    ]
  ) {
    assert.equal(service.get(key), value, key);
  }
  assert.equal(service.has("MemoryDenyWriteExecute"), false);
  assert.equal(service.has("DynamicUser"), false);
});
