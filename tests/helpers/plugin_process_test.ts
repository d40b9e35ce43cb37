/** Tests of how `plugin_process.ts` picks the program under test (`TELEPORT_EMAIL_BIN`). */
import assert from "node:assert/strict";
import { DAEMON_PERMISSIONS } from "../../src/permissions.ts";
import { DAEMON_RUN_FLAGS } from "../../src/runtime_flags.ts";
import { BIN_VARIABLE, MAIN_TS, pluginCommand } from "./plugin_process.ts";

/** Runs `fn` with environment variables set (`undefined`: unset), then restores them. */
function withEnv<T>(vars: Record<string, string | undefined>, fn: () => T): T {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, Deno.env.get(k)]));
  const apply = (v: Record<string, string | undefined>) => {
    for (const [k, value] of Object.entries(v)) {
      if (value === undefined) Deno.env.delete(k);
      else Deno.env.set(k, value);
    }
  };
  apply(vars);
  try {
    return fn();
  } finally {
    apply(saved);
  }
}

Deno.test("pluginCommand() without TELEPORT_EMAIL_BIN runs main.ts under deno with the daemon's permissions and V8 flags", () => {
  const c = withEnv({ [BIN_VARIABLE]: undefined }, () => pluginCommand(["version"]));
  assert.deepEqual(c, {
    cmd: Deno.execPath(),
    args: ["run", ...DAEMON_PERMISSIONS, ...DAEMON_RUN_FLAGS, "--quiet", MAIN_TS, "version"],
    cwd: undefined,
  });
});

Deno.test("pluginCommand() with TELEPORT_EMAIL_BIN runs that program alone, from an empty directory outside the repository", () => {
  const repo = new URL("../..", import.meta.url).pathname;
  const c = withEnv({ [BIN_VARIABLE]: "/usr/bin/env" }, () => pluginCommand(["start", "-c", "x"]));
  assert.equal(c.cmd, "/usr/bin/env");
  assert.deepEqual(c.args, ["start", "-c", "x"]);
  assert.ok(c.cwd && !c.cwd.startsWith(repo), c.cwd);
  assert.deepEqual([...Deno.readDirSync(c.cwd)], []);
  const given = withEnv({ [BIN_VARIABLE]: "/usr/bin/env" }, () => pluginCommand([], { cwd: "/" }));
  assert.equal(given.cwd, "/");
});

Deno.test(
  "pluginCommand() runs an arm64 binary under qemu-aarch64 on another CPU, and says what to install without it",
  {
    ignore: Deno.build.arch === "aarch64",
  },
  () => {
    const dir = Deno.makeTempDirSync();
    try {
      // An ELF header for EM_AARCH64 (183), little-endian: enough for the check.
      const elf = new Uint8Array(64);
      elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
      new DataView(elf.buffer).setUint16(18, 183, true);
      Deno.writeFileSync(`${dir}/teleport-email`, elf);
      Deno.writeFileSync(`${dir}/qemu-aarch64`, new Uint8Array());
      const c = withEnv(
        { [BIN_VARIABLE]: `${dir}/teleport-email`, PATH: `/nonexistent:${dir}` },
        () => pluginCommand(["version"]),
      );
      assert.equal(c.cmd, `${dir}/qemu-aarch64`);
      assert.deepEqual(c.args, [
        "-L",
        "/usr/aarch64-linux-gnu",
        `${dir}/teleport-email`,
        "version",
      ]);
      assert.throws(
        () =>
          withEnv(
            { [BIN_VARIABLE]: `${dir}/teleport-email`, PATH: "/nonexistent" },
            () => pluginCommand(["version"]),
          ),
        /is an arm64 binary and qemu-aarch64 is not installed/,
      );
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  },
);
