/**
 * Tests of `install.sh` (the tarball's `install`): run for real with dash (or sh) into a DESTDIR,
 * as root and as an unprivileged user (via setpriv).
 */
import assert from "node:assert/strict";
import { REPO_ROOT } from "../scripts/release.ts";
import { which } from "./helpers/which.ts";

const SH = which("dash") ?? "/bin/sh";
const SETPRIV = which("setpriv");
const SHELLCHECK = which("shellcheck");
const IS_ROOT = Deno.uid() === 0;
const NOBODY = 65534;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the package's `install` with `env`; `asUid` drops to that uid/gid with setpriv. */
async function runInstall(
  pkg: string,
  env: Record<string, string>,
  asUid?: number,
): Promise<Result> {
  const base = [SH, `${pkg}/install`];
  const argv = asUid === undefined
    ? base
    : [SETPRIV!, `--reuid=${asUid}`, `--regid=${asUid}`, "--clear-groups", ...base];
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin", ...env },
    clearEnv: true,
    cwd: "/",
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** A temporary unpacked tarball (`install`, `teleport-email`, unit) and an empty DESTDIR. */
async function withPackage(
  fn: (pkg: string, dest: string, root: string) => Promise<void>,
): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "install-test-" });
  try {
    await Deno.chmod(root, 0o755);
    const pkg = `${root}/teleport-access-email`;
    await Deno.mkdir(pkg);
    await Deno.copyFile(`${REPO_ROOT}/install.sh`, `${pkg}/install`);
    await Deno.copyFile(
      `${REPO_ROOT}/deploy/systemd/teleport-email.service`,
      `${pkg}/teleport-email.service`,
    );
    await writeBinary(pkg, "v1");
    for (const f of ["install", "teleport-email"]) await Deno.chmod(`${pkg}/${f}`, 0o755);
    await Deno.chmod(`${pkg}/teleport-email.service`, 0o644);
    await Deno.chmod(pkg, 0o755);
    const dest = `${root}/dest`;
    await Deno.mkdir(dest);
    await fn(pkg, dest, root);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

async function writeBinary(pkg: string, tag: string): Promise<void> {
  await Deno.writeTextFile(
    `${pkg}/teleport-email`,
    `#!/bin/sh\necho "fake teleport-email ${tag}"\n`,
  );
  await Deno.chmod(`${pkg}/teleport-email`, 0o755);
}

async function mode(path: string): Promise<number> {
  return (await Deno.stat(path)).mode! & 0o7777;
}

Deno.test("install: sh -n and dash -n accept the script (POSIX sh)", async () => {
  for (const shell of new Set(["/bin/sh", SH])) {
    const out = await new Deno.Command(shell, {
      args: ["-n", `${REPO_ROOT}/install.sh`],
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, `${shell}: ${new TextDecoder().decode(out.stderr)}`);
  }
});

Deno.test({
  name: SHELLCHECK
    ? "install: shellcheck -s sh reports nothing"
    : "install: shellcheck (skipped: shellcheck is not installed)",
  ignore: !SHELLCHECK,
  async fn() {
    const out = await new Deno.Command(SHELLCHECK!, {
      args: ["-s", "sh", `${REPO_ROOT}/install.sh`],
      stdout: "piped",
    })
      .output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stdout));
  },
});

Deno.test({
  name: IS_ROOT
    ? "install: as root into DESTDIR copies the binary (0755), creates the data dir (0700) and the unit"
    : "install: as root into DESTDIR (skipped: tests do not run as root)",
  ignore: !IS_ROOT,
  async fn() {
    await withPackage(async (pkg, dest) => {
      const r = await runInstall(pkg, { DESTDIR: dest });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, "");
      const bin = `${dest}/usr/local/bin/teleport-email`;
      assert.equal(await mode(bin), 0o755);
      assert.equal(await Deno.readTextFile(bin), await Deno.readTextFile(`${pkg}/teleport-email`));
      assert.equal(await mode(`${dest}/var/lib/teleport/plugins/email`), 0o700);
      const unit = `${dest}/usr/lib/systemd/system/teleport-email.service`;
      assert.equal(await mode(unit), 0o644);
      assert.equal(
        await Deno.readTextFile(unit),
        await Deno.readTextFile(`${pkg}/teleport-email.service`),
      );
      assert.match(r.stdout, /^Teleport Email binaries have been copied to \/usr\/local\/bin$/m);
      assert.match(
        r.stdout,
        /^You can run teleport-email configure > \/etc\/teleport-email\.toml to bootstrap your config file$/m,
      );
      assert.match(r.stdout, /systemctl enable --now teleport-email/);
      // No temporary files left behind.
      const names = [];
      for await (const e of Deno.readDir(`${dest}/usr/local/bin`)) names.push(e.name);
      assert.deepEqual(names, ["teleport-email"]);
      // Nothing written outside DESTDIR's usr/ and var/.
      const top = [];
      for await (const e of Deno.readDir(dest)) top.push(e.name);
      assert.deepEqual(top.sort(), ["usr", "var"]);
    });
  },
});

Deno.test({
  name: IS_ROOT
    ? "install: BINDIR and SYSTEMD_UNIT_DIR move the binary and the unit, whose ExecStart follows"
    : "install: BINDIR override (skipped: tests do not run as root)",
  ignore: !IS_ROOT,
  async fn() {
    await withPackage(async (pkg, dest) => {
      const r = await runInstall(pkg, {
        DESTDIR: dest,
        BINDIR: "/opt/te/bin",
        SYSTEMD_UNIT_DIR: "/etc/systemd/system",
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await mode(`${dest}/opt/te/bin/teleport-email`), 0o755);
      const unit = await Deno.readTextFile(`${dest}/etc/systemd/system/teleport-email.service`);
      assert.match(
        unit,
        /^ExecStart=\/opt\/te\/bin\/teleport-email start --config=\/etc\/teleport-email\.toml$/m,
      );
      assert.match(r.stdout, /^Teleport Email binaries have been copied to \/opt\/te\/bin$/m);
    });
  },
});

Deno.test({
  name: IS_ROOT
    ? "install: a second run upgrades the binary by rename, keeping the old file intact for a running process"
    : "install: upgrade (skipped: tests do not run as root)",
  ignore: !IS_ROOT,
  async fn() {
    await withPackage(async (pkg, dest, root) => {
      assert.equal((await runInstall(pkg, { DESTDIR: dest })).code, 0);
      const bin = `${dest}/usr/local/bin/teleport-email`;
      // A hard link stands for the running process's view of the old file.
      await Deno.link(bin, `${root}/running`);
      await writeBinary(pkg, "v2");
      const r = await runInstall(pkg, { DESTDIR: dest });
      assert.equal(r.code, 0, r.stderr);
      assert.match(await Deno.readTextFile(bin), /fake teleport-email v2/);
      assert.match(await Deno.readTextFile(`${root}/running`), /fake teleport-email v1/);
      assert.equal(await mode(bin), 0o755);
    });
  },
});

Deno.test({
  name: IS_ROOT
    ? "install: keeps an existing /etc/teleport-email.toml and an existing data dir's mode"
    : "install: existing config (skipped: tests do not run as root)",
  ignore: !IS_ROOT,
  async fn() {
    await withPackage(async (pkg, dest) => {
      await Deno.mkdir(`${dest}/etc`);
      await Deno.writeTextFile(`${dest}/etc/teleport-email.toml`, "# mine\n");
      await Deno.mkdir(`${dest}/var/lib/teleport/plugins/email`, { recursive: true });
      await Deno.chmod(`${dest}/var/lib/teleport/plugins/email`, 0o750);
      const r = await runInstall(pkg, { DESTDIR: dest });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await Deno.readTextFile(`${dest}/etc/teleport-email.toml`), "# mine\n");
      assert.equal(await mode(`${dest}/var/lib/teleport/plugins/email`), 0o750);
      assert.match(
        r.stdout,
        /^Keeping the existing configuration file \/etc\/teleport-email\.toml$/m,
      );
      assert.doesNotMatch(r.stdout, /teleport-email configure >/);
    });
  },
});

Deno.test({
  name: SETPRIV && IS_ROOT
    ? "install: as a non-root user without DESTDIR fails with ERROR: You must be root (exit 1)"
    : "install: non-root check (skipped: needs root and setpriv to run as another user)",
  ignore: !(SETPRIV && IS_ROOT),
  async fn() {
    await withPackage(async (pkg) => {
      const r = await runInstall(pkg, {}, NOBODY);
      assert.equal(r.code, 1);
      assert.equal(r.stderr, "ERROR: You must be root\n");
      assert.equal(r.stdout, "");
    });
  },
});

Deno.test({
  name: SETPRIV && IS_ROOT
    ? "install: as a non-root user with DESTDIR stages the files (packaging)"
    : "install: non-root DESTDIR (skipped: needs root and setpriv to run as another user)",
  ignore: !(SETPRIV && IS_ROOT),
  async fn() {
    await withPackage(async (pkg, dest) => {
      await Deno.chown(dest, NOBODY, NOBODY);
      const r = await runInstall(pkg, { DESTDIR: dest }, NOBODY);
      assert.equal(r.code, 0, r.stderr);
      const bin = await Deno.stat(`${dest}/usr/local/bin/teleport-email`);
      assert.equal(bin.uid, NOBODY);
      assert.equal(bin.mode! & 0o777, 0o755);
      assert.equal(await mode(`${dest}/var/lib/teleport/plugins/email`), 0o700);
    });
  },
});

Deno.test({
  name: IS_ROOT
    ? "install: fails with exit 1 when the binary is missing next to it"
    : "install: missing binary (skipped: tests do not run as root)",
  ignore: !IS_ROOT,
  async fn() {
    await withPackage(async (pkg, dest) => {
      await Deno.remove(`${pkg}/teleport-email`);
      const r = await runInstall(pkg, { DESTDIR: dest });
      assert.equal(r.code, 1);
      assert.equal(r.stderr, `ERROR: teleport-email not found in ${pkg}\n`);
    });
  },
});
