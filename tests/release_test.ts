/**
 * Tests of `scripts/release.ts` (tarball layout, checksums, runtime resolution, offline runtime
 * zips, the payload check, smoke test, the real compile when a denort runtime is available
 * offline), of `deno task test:binary`, and a lint of the Dockerfile.
 *
 * Compiling needs `denort`, which cannot be fetched here. The "payload check" tests compile with
 * the full `deno` CLI as a stand-in runtime: `deno compile` then writes the real payload (its
 * "Embedded Files" listing is exact) onto a program that is not teleport-email and is never
 * packaged or run as one. Tests that need a real runtime are reported as ignored, with the
 * reason in their name.
 */
import { COMPILE_ENTRY } from "../src/runtime_flags.ts";
import assert from "node:assert/strict";
import {
  type Arch,
  type Artifact,
  assembleRelease,
  binaryRunner,
  checkCompiledBinary,
  checkPayload,
  checkVersionLine,
  compileBinary,
  denortMissingMessage,
  elfMachine,
  hostArch,
  parseReleaseArgs,
  payloadCheck,
  ReleaseError,
  REPO_ROOT,
  resolveDenort,
  sha256File,
  smokeTest,
  tarballName,
  TARGETS,
  writeChecksums,
} from "../scripts/release.ts";
import {
  ALLOWLIST_PATH,
  type DenoInfo,
  listNodeModules,
  parseAllowList,
  payloadExcludes,
  runtimePackages,
} from "../scripts/payload.ts";
import { runSwitchedTests, SWITCH_COUNT } from "./helpers/binary_switch.ts";
import { fakeDenort, makeZip } from "./helpers/zip.ts";

const DENO_JSON = JSON.parse(await Deno.readTextFile(`${REPO_ROOT}/deno.json`)) as {
  version: string;
};
const DENO_CLI = Deno.execPath();

/** How {@link run} starts its child: directory, environment and deadline (default 300 s). */
interface RunOptions {
  cwd?: string;
  env?: Record<string, string>;
  /** Start from `env` alone instead of adding it to this process's environment. */
  clearEnv?: boolean;
  timeoutMs?: number;
}

async function run(
  cmd: string,
  args: string[],
  options: RunOptions = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: options.cwd,
    env: options.env,
    clearEnv: options.clearEnv,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(options.timeoutMs ?? 300_000),
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Runs `scripts/release.ts` with `args` under the deno CLI from the repository root. */
function runRelease(args: string[], options: Omit<RunOptions, "cwd"> = {}) {
  return run(DENO_CLI, ["run", "--allow-all", `${REPO_ROOT}/scripts/release.ts`, ...args], {
    cwd: REPO_ROOT,
    ...options,
  });
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "release-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Packs `binary` as `version` for `arch` into `outDir` (entry mtimes `mtime`, now by default). */
function assemble(
  binary: string,
  version: string,
  arch: Arch,
  outDir: string,
  mtime?: number,
): Promise<Artifact> {
  return assembleRelease({ binaryPath: binary, version, arch, outDir, mtime });
}

/** A shell script standing in for the binary; `body` is its code. */
async function fakeBinary(dir: string, body: string): Promise<string> {
  const path = `${dir}/teleport-email`;
  await Deno.writeTextFile(path, `#!/bin/sh\n${body}\n`);
  await Deno.chmod(path, 0o700);
  return path;
}

Deno.test("assembleRelease() packs teleport-access-email/ with the six files, modes and owner 0", async () => {
  await withTempDir(async (dir) => {
    const binary = await fakeBinary(dir, "echo fake");
    const out = `${dir}/dist`;
    const artifact = await assemble(binary, "1.2.3", "arm64", out);
    assert.equal(
      artifact.path,
      `${await Deno.realPath(out)}/teleport-access-email-v1.2.3-linux-arm64-bin.tar.gz`,
    );
    assert.equal(artifact.sha256, await sha256File(artifact.path));
    const list = await run("tar", ["--numeric-owner", "-tvzf", artifact.path]);
    assert.equal(list.code, 0, list.stderr);
    const entries = list.stdout.trim().split("\n").map((line) => {
      const [mode, owner, , , , name] = line.split(/\s+/);
      return { mode, owner, name };
    });
    assert.deepEqual(entries.map((e) => [e.name, e.mode]), [
      ["teleport-access-email/", "drwxr-xr-x"],
      ["teleport-access-email/LICENSE", "-rw-r--r--"],
      ["teleport-access-email/README.md", "-rw-r--r--"],
      ["teleport-access-email/VERSION", "-rw-r--r--"],
      ["teleport-access-email/install", "-rwxr-xr-x"],
      ["teleport-access-email/teleport-email", "-rwxr-xr-x"],
      ["teleport-access-email/teleport-email.service", "-rw-r--r--"],
    ]);
    for (const e of entries) assert.equal(e.owner, "0/0", e.name);
    const x = `${dir}/x`;
    await Deno.mkdir(x);
    assert.equal((await run("tar", ["-xzf", artifact.path, "-C", x])).code, 0);
    const top = `${x}/teleport-access-email`;
    assert.equal(await Deno.readTextFile(`${top}/VERSION`), "v1.2.3\n");
    assert.equal(await Deno.readTextFile(`${top}/teleport-email`), await Deno.readTextFile(binary));
    assert.equal(
      await Deno.readTextFile(`${top}/install`),
      await Deno.readTextFile(`${REPO_ROOT}/install.sh`),
    );
    assert.equal(
      await Deno.readTextFile(`${top}/teleport-email.service`),
      await Deno.readTextFile(`${REPO_ROOT}/deploy/systemd/teleport-email.service`),
    );
    // Nothing but the tarball is left in the output directory.
    const left = [];
    for await (const e of Deno.readDir(out)) left.push(e.name);
    assert.deepEqual(left, ["teleport-access-email-v1.2.3-linux-arm64-bin.tar.gz"]);
  });
});

Deno.test("assembleRelease() is reproducible for the same inputs and mtime", async () => {
  await withTempDir(async (dir) => {
    const binary = await fakeBinary(dir, "echo fake");
    const a = await assemble(binary, "1.0.0", "amd64", `${dir}/a`, 1700000000);
    const b = await assemble(binary, "1.0.0", "amd64", `${dir}/b`, 1700000000);
    assert.equal(a.sha256, b.sha256);
  });
});

Deno.test("assembleRelease() names the missing file when a source is absent", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(
      assemble(`${dir}/nope`, "1.0.0", "amd64", `${dir}/out`),
      (err: unknown) =>
        err instanceof ReleaseError && err.message.includes(`Cannot copy "${dir}/nope"`),
    );
  });
});

Deno.test("writeChecksums() writes a SHA256SUMS that sha256sum -c accepts, and rejects tampering", async () => {
  await withTempDir(async (dir) => {
    const binary = await fakeBinary(dir, "echo fake");
    const out = `${dir}/dist`;
    const amd = await assemble(binary, "2.0.0", "amd64", out);
    await assemble(binary, "2.0.0", "arm64", out);
    await Deno.writeTextFile(
      `${out}/teleport-access-email-v1.0.0-linux-amd64-bin.tar.gz`,
      "old version",
    );
    const text = await writeChecksums(out, "2.0.0");
    assert.deepEqual(text.trim().split("\n").map((l) => l.split("  ")[1]), [
      tarballName("2.0.0", "amd64"),
      tarballName("2.0.0", "arm64"),
    ]);
    assert.match(
      text,
      /^[0-9a-f]{64} {2}teleport-access-email-v2\.0\.0-linux-amd64-bin\.tar\.gz\n/,
    );
    const ok = await run("sha256sum", ["-c", "SHA256SUMS"], { cwd: out });
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    await Deno.writeTextFile(amd.path, "tampered");
    const bad = await run("sha256sum", ["-c", "SHA256SUMS"], { cwd: out });
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /amd64-bin\.tar\.gz: FAILED/);
  });
});

Deno.test("parseReleaseArgs() reads the options and rejects bad ones", () => {
  assert.deepEqual(parseReleaseArgs([], { version: "0.1.0" }), {
    arches: ["amd64", "arm64"],
    version: "0.1.0",
    tag: undefined,
    gitRef: undefined,
    outDir: "dist",
    runtimeDir: undefined,
    downloadTimeoutMs: 15_000,
    payloadCheck: false,
  });
  const tagged = parseReleaseArgs(["--tag", "v1.2.3", "--runtime-dir", "rt"], { version: "0.1.0" });
  assert.deepEqual([tagged.version, tagged.tag, tagged.runtimeDir], ["1.2.3", "v1.2.3", "rt"]);
  assert.throws(
    () => parseReleaseArgs(["--tag", "v1.2.3", "--version", "1.2.4"], { version: "0.1.0" }),
    (err: unknown) =>
      err instanceof ReleaseError &&
      err.message === 'The tag "v1.2.3" does not name version 1.2.4: expected "v1.2.4"',
  );
  const args = parseReleaseArgs([
    "--target",
    "arm64",
    "--version",
    "v1.2.3-rc.1",
    "--git-ref",
    "abc",
    "--out",
    "o",
  ], {
    version: "0.1.0",
  });
  assert.deepEqual([args.arches, args.version, args.gitRef, args.outDir], [
    ["arm64"],
    "1.2.3-rc.1",
    "abc",
    "o",
  ]);
  assert.throws(
    () => parseReleaseArgs(["--target", "riscv"], { version: "0.1.0" }),
    (err: unknown) =>
      err instanceof ReleaseError && err.message.includes('Invalid --target "riscv"'),
  );
  assert.throws(
    () => parseReleaseArgs(["--version", "one"], { version: "0.1.0" }),
    (err: unknown) => err instanceof ReleaseError && err.message.includes('Invalid version "one"'),
  );
  assert.throws(
    () => parseReleaseArgs(["--bogus"], { version: "0.1.0" }),
    (err: unknown) => err instanceof ReleaseError && err.message.includes("Invalid arguments"),
  );
});

Deno.test("resolveDenort() takes DENORT_BIN_<ARCH>, DENORT_BIN for the host only, then the cache", async () => {
  await withTempDir(async (dir) => {
    // Passes the structural checks: an ELF executable of the host's CPU holding this Deno's V8
    // version string (which denort has and other programs do not).
    const elf = `${dir}/denort`;
    await Deno.writeFile(
      elf,
      new Uint8Array([
        ...await Deno.readFile("/bin/true"),
        ...new TextEncoder().encode(Deno.version.v8),
      ]),
    );
    const arch = hostArch()!;
    const other = arch === "amd64" ? "arm64" : "amd64";
    const denoDir = `${dir}/deno`;
    const env = (vars: Record<string, string>) => ({
      env: vars,
      denoDir,
      denoVersion: "2.9.6",
      host: arch,
    });
    assert.deepEqual(
      await resolveDenort(arch, env({ [`DENORT_BIN_${arch.toUpperCase()}`]: elf })),
      {
        kind: "env",
        variable: `DENORT_BIN_${arch.toUpperCase()}`,
        path: elf,
      },
    );
    assert.deepEqual(await resolveDenort(arch, env({ DENORT_BIN: elf })), {
      kind: "env",
      variable: "DENORT_BIN",
      path: elf,
    });
    // DENORT_BIN is one file for one CPU: not used for the other target.
    assert.equal(await resolveDenort(other, env({ DENORT_BIN: elf })), undefined);
    const zip = `${denoDir}/dl/release/v2.9.6/denort-${
      other === "arm64" ? "aarch64" : "x86_64"
    }-unknown-linux-gnu.zip`;
    await Deno.mkdir(`${denoDir}/dl/release/v2.9.6`, { recursive: true });
    await Deno.writeTextFile(zip, "zip");
    assert.deepEqual(await resolveDenort(other, env({})), { kind: "cache", path: zip });
  });
});

Deno.test("resolveDenort() rejects a missing file, a non-ELF file, another CPU, another program and the deno CLI", async () => {
  await withTempDir(async (dir) => {
    const arch = hostArch()!;
    const other = arch === "amd64" ? "arm64" : "amd64";
    const text = `${dir}/denort`;
    await Deno.writeTextFile(text, "not a binary");
    const opts = (variable: string, path: string) => ({
      env: { [variable]: path },
      denoDir: dir,
      host: arch,
    });
    const rejects = (p: Promise<unknown>, fragment: string) =>
      assert.rejects(
        p,
        (err: unknown) => err instanceof ReleaseError && err.message.includes(fragment),
      );
    await rejects(
      resolveDenort(arch, opts("DENORT_BIN", `${dir}/missing`)),
      `Cannot read DENORT_BIN "${dir}/missing"`,
    );
    await rejects(
      resolveDenort(arch, opts("DENORT_BIN", text)),
      `DENORT_BIN "${text}" is not a Linux ${arch} executable`,
    );
    const otherVar = `DENORT_BIN_${other.toUpperCase()}`;
    await rejects(
      resolveDenort(other, opts(otherVar, "/bin/true")),
      `${otherVar} "/bin/true" is not a Linux ${other} executable`,
    );
    await rejects(
      resolveDenort(arch, opts("DENORT_BIN", "/bin/true")),
      `DENORT_BIN "/bin/true" is not denort of Deno ${Deno.version.deno} (V8 ${Deno.version.v8})`,
    );
    await rejects(
      resolveDenort(arch, opts("DENORT_BIN", DENO_CLI)),
      `DENORT_BIN "${DENO_CLI}" is the deno CLI, not denort`,
    );
  });
});

Deno.test("denortMissingMessage() says which runtime is missing and the three ways to provide it", () => {
  const msg = denortMissingMessage("arm64", "/root/.cache/deno", "cannot reach it");
  assert.equal(
    msg,
    `denort for aarch64-unknown-linux-gnu is not available: pass --runtime-dir DIR holding ` +
      `denort-aarch64-unknown-linux-gnu.zip of Deno ${Deno.version.deno}, put that zip at ` +
      `/root/.cache/deno/dl/release/v${Deno.version.deno}/denort-aarch64-unknown-linux-gnu.zip, ` +
      `set DENORT_BIN_ARM64=/path/to/denort (unzipped), or run with network access (cannot reach it)`,
  );
});

Deno.test("deno task release stops before compiling when no denort is available, naming what to set", async () => {
  await withTempDir(async (dir) => {
    // An empty DENO_DIR (no cached runtime), no DENORT_BIN*, and a proxy that refuses connections
    // so the download preflight fails at once whether or not this machine has network access.
    const env = await offlineEnv(dir);
    const denoDir = env.DENO_DIR;
    const out = await runRelease(["--target", "arm64", "--out", `${dir}/dist`], {
      env,
      clearEnv: true,
      timeoutMs: 120_000,
    });
    assert.equal(out.code, 1, out.stderr);
    const message = out.stderr.trim().split("\n").pop()!;
    const expected = denortMissingMessage("arm64", denoDir, "REASON");
    const [before, after] = ("release: " + expected).split("REASON");
    assert.ok(message.startsWith(before), message);
    assert.ok(message.endsWith(after), message);
    assert.match(
      message.slice(before.length, message.length - after.length),
      /^cannot reach https:\/\/dl\.deno\.land\/release\/v[\d.]+\/denort-aarch64-unknown-linux-gnu\.zip: fetch failed: client error \(Connect\): .*Connection refused/,
    );
    // Nothing was compiled or written.
    await assert.rejects(Deno.stat(`${dir}/dist`), Deno.errors.NotFound);
  });
});

Deno.test("smokeTest() accepts a binary that behaves like teleport-email", async () => {
  await withTempDir(async (dir) => {
    const binary = await fakeBinary(
      dir,
      `case "$1" in
  version) echo "teleport-email v1.2.3 git:v1.2.3-4-gabc deno2.9.6" ;;
  configure) printf '[teleport]\\naddr = "0.0.0.0:3025"\\n' ;;
  start) echo "ERROR: bad" >&2; exit 1 ;;
esac`,
    );
    assert.deepEqual(await smokeTest(binary, { version: "1.2.3", gitRef: "v1.2.3-4-gabc" }), {
      ran: true,
      versionLine: "teleport-email v1.2.3 git:v1.2.3-4-gabc deno2.9.6",
    });
  });
});

Deno.test("smokeTest() refuses a wrong version line, a configure without TOML, and start exiting 0", async () => {
  await withTempDir(async (dir) => {
    const good = {
      version: `echo "teleport-email v1.2.3 deno2.9.6"`,
      configure: `printf '[teleport]\\naddr = "x"\\n'`,
      start: "exit 1",
    };
    const cases: Array<[Partial<typeof good>, string]> = [
      [{ version: `echo "teleport-email v9.9.9 deno2.9.6"` }, `"version" exited 0 and printed`],
      [{ version: `echo "Deno 2.9.6"` }, `"version" exited 0 and printed`],
      [
        { configure: "echo 'not = = toml'" },
        `"configure" exited 0 without printing a TOML configuration`,
      ],
      [
        { configure: "echo '[smtp]'" },
        `"configure" exited 0 without printing a TOML configuration`,
      ],
      [{ start: "exit 0" }, `"start -c <bad TOML>" exited 0, expected 1`],
    ];
    for (const [override, fragment] of cases) {
      const s = { ...good, ...override };
      const binary = await fakeBinary(
        dir,
        `case "$1" in version) ${s.version} ;; configure) ${s.configure} ;; start) ${s.start} ;; esac`,
      );
      await assert.rejects(
        smokeTest(binary, { version: "1.2.3", gitRef: "" }),
        (err: unknown) => err instanceof ReleaseError && err.message.includes(fragment),
        fragment,
      );
    }
  });
});

Deno.test("the CLI passes the release smoke test under exactly the compiled permissions (scripts/launcher_for_tests.sh)", async () => {
  // The launcher runs main.ts with the binary's permission flags from outside the repository: a
  // missing permission on these start-up paths would make the released binary fail the same way.
  const smoke = await smokeTest(`${REPO_ROOT}/scripts/launcher_for_tests.sh`, {
    version: DENO_JSON.version,
    gitRef: "",
  });
  assert.deepEqual(smoke, {
    ran: true,
    versionLine: `teleport-email v${DENO_JSON.version} deno${Deno.version.deno}`,
  });
  checkVersionLine(smoke.ran ? smoke.versionLine : "", `v${DENO_JSON.version}`);
});

Deno.test(
  "binaryRunner() runs a host binary or script directly, an arm64 binary on another CPU under qemu-aarch64 when installed",
  {
    ignore: Deno.build.arch !== "x86_64",
  },
  async () => {
    await withTempDir(async (dir) => {
      const arm64 = `${dir}/teleport-email`;
      await Deno.writeFile(arm64, fakeDenort(Deno.version.deno, 183));
      await Deno.writeFile(`${dir}/qemu-aarch64`, new Uint8Array());
      const path = Deno.env.get("PATH")!;
      try {
        Deno.env.set("PATH", `/nonexistent:${dir}`);
        assert.deepEqual(await binaryRunner(arm64), {
          cmd: `${dir}/qemu-aarch64`,
          args: ["-L", "/usr/aarch64-linux-gnu", arm64],
        });
        assert.deepEqual(await binaryRunner("/bin/true"), { cmd: "/bin/true", args: [] });
        Deno.env.set("PATH", "/nonexistent");
        assert.equal(await binaryRunner(arm64), undefined);
        const script = await fakeBinary(dir, "exit 0");
        assert.deepEqual(await binaryRunner(script), { cmd: script, args: [] });
      } finally {
        Deno.env.set("PATH", path);
      }
    });
  },
);

Deno.test("checkVersionLine() fails the build when the binary's version line differs from the tag", () => {
  checkVersionLine("teleport-email v1.2.3 git:v1.2.3 deno2.9.6\n", "v1.2.3");
  checkVersionLine("teleport-email v1.2.3 deno2.9.6", "v1.2.3");
  for (const line of ["teleport-email v1.2.4 git:v1.2.3 deno2.9.6", "teleport-email v1.2.3", ""]) {
    assert.throws(
      () => checkVersionLine(line, "v1.2.3"),
      (err: unknown) =>
        err instanceof ReleaseError &&
        err.message ===
          `The binary's version line ${JSON.stringify(line)} differs from the tag "v1.2.3"`,
    );
  }
});

Deno.test("payload check (deno CLI as a stand-in runtime): the binary embeds exactly the npm packages of scripts/payload_packages.txt", async () => {
  const before = await Deno.readTextFile(`${REPO_ROOT}/src/build_info.json`);
  const report = await payloadCheck();
  assert.deepEqual(report.packages, parseAllowList(await Deno.readTextFile(ALLOWLIST_PATH)));
  assert.ok(report.payloadBytes > 1e6 && report.standInTarballBytes > 1e6, JSON.stringify(report));
  assert.equal(await Deno.readTextFile(`${REPO_ROOT}/src/build_info.json`), before);
});

Deno.test("payload check: the daemon, started from the binary's entry point, works with node_modules/ pruned exactly as deno compile's --exclude prunes it", async () => {
  await withTempDir(async (dir) => {
    // A copy of the tree (node_modules hard-linked) with every excluded path removed, run through
    // its own copy of the launcher with nodeModulesDir "manual" (so deno uses the folder as is).
    const tree = `${dir}/tree`;
    await Deno.mkdir(`${tree}/scripts`, { recursive: true });
    for (
      const name of [
        "deno.json",
        "deno.lock",
        "main.ts",
        COMPILE_ENTRY,
        "scripts/launcher_for_tests.sh",
      ]
    ) {
      await Deno.copyFile(`${REPO_ROOT}/${name}`, `${tree}/${name}`);
    }
    await run("cp", ["-a", `${REPO_ROOT}/src`, `${tree}/src`]);
    await run("cp", ["-al", `${REPO_ROOT}/node_modules`, `${tree}/node_modules`]);
    const info = await run(DENO_CLI, ["info", "--json", COMPILE_ENTRY], { cwd: tree });
    assert.equal(info.code, 0, info.stderr);
    const keep = runtimePackages(JSON.parse(info.stdout) as DenoInfo);
    for (const path of payloadExcludes(keep, await listNodeModules(tree))) {
      await Deno.remove(`${tree}/${path}`, { recursive: true });
    }
    const denoJson = JSON.parse(await Deno.readTextFile(`${tree}/deno.json`));
    await Deno.writeTextFile(
      `${tree}/deno.json`,
      JSON.stringify({ ...denoJson, nodeModulesDir: "manual" }),
    );
    // The tree's launcher runs the binary's own entry point (COMPILE_ENTRY), not main.ts.
    const launcher = `${tree}/scripts/launcher_for_tests.sh`;
    const script = await Deno.readTextFile(launcher);
    assert.match(script, /"\$repo\/main\.ts"/);
    await Deno.writeTextFile(
      launcher,
      script.replace('"$repo/main.ts"', `"$repo/${COMPILE_ENTRY}"`),
    );
    const left = [];
    for await (const e of Deno.readDir(`${tree}/node_modules/.deno`)) {
      if (e.isDirectory && e.name !== "node_modules") left.push(e.name);
    }
    assert.equal(left.length, parseAllowList(await Deno.readTextFile(ALLOWLIST_PATH)).length);
    const r = await runSwitchedTests(`${tree}/scripts/launcher_for_tests.sh`);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, new RegExp(`ok \\| ${SWITCH_COUNT} passed \\| 0 failed`), r.output);
  });
});

Deno.test("payload check (deno CLI as a stand-in runtime): an unused package imported by main.ts fails the build by name; the output embeds the build and is refused as a binary", async () => {
  await withTempDir(async (dir) => {
    // A fixture tree: the repository with a main.ts that also imports a package the daemon does
    // not use (the test SMTP server).
    const fixture = `${dir}/tree`;
    await Deno.mkdir(fixture);
    for (const name of ["deno.json", "deno.lock", "main.ts"]) {
      await Deno.copyFile(`${REPO_ROOT}/${name}`, `${fixture}/${name}`);
    }
    // The binary is compiled from COMPILE_ENTRY (main.ts with the daemon imported statically).
    await Deno.writeTextFile(
      `${fixture}/${COMPILE_ENTRY}`,
      `import "smtp-server";\n${await Deno.readTextFile(`${REPO_ROOT}/${COMPILE_ENTRY}`)}`,
    );
    await run("cp", ["-a", `${REPO_ROOT}/src`, `${fixture}/src`]);
    await run("cp", ["-al", `${REPO_ROOT}/node_modules`, `${fixture}/node_modules`]);
    const output = `${dir}/stand-in`;
    const compiled = await compileBinary({
      arch: hostArch()!,
      version: "7.7.7",
      gitRef: "test-ref",
      output,
      denort: { kind: "env", variable: "DENORT_BIN", path: DENO_CLI },
      sourceDir: fixture,
    });
    assert.ok(compiled.packages.includes("smtp-server"), compiled.packages.join(" "));
    await assert.rejects(
      checkPayload(compiled.packages),
      (err: unknown) =>
        err instanceof ReleaseError &&
        /^The binary's npm packages differ from the allow-list: embedded but not in scripts\/payload_packages\.txt: .*\bsmtp-server\b/
          .test(err.message) &&
        !err.message.includes("not embedded"),
    );
    assert.equal(await elfMachine(output), Deno.build.arch === "x86_64" ? 62 : 183);
    // The structural checks (all a cross-compiled binary gets) see this build embedded.
    await checkCompiledBinary(output, hostArch()!, { version: "7.7.7", gitRef: "test-ref" });
    await assert.rejects(
      checkCompiledBinary(output, hostArch()!, { version: "7.7.8", gitRef: "test-ref" }),
      (err: unknown) =>
        err instanceof ReleaseError && err.message.includes("does not embed this build"),
    );
    await assert.rejects(
      checkCompiledBinary("/bin/true", hostArch()!, { version: "7.7.7", gitRef: "test-ref" }),
      (err: unknown) =>
        err instanceof ReleaseError && err.message.includes("does not embed this build"),
    );
    // What the deno CLI as a runtime yields runs `deno`, not teleport-email.
    await assert.rejects(
      smokeTest(output, { version: "7.7.7", gitRef: "test-ref" }),
      (err: unknown) =>
        err instanceof ReleaseError &&
        err.message.includes(`Smoke test of "${output}" failed: "version" exited`) &&
        (err.hint ?? "").includes("DENORT_BIN"),
    );
  });
});

/**
 * The environment of a release run that cannot download anything: an empty `DENO_DIR` sharing
 * the npm cache, no `DENORT_BIN*`, and a proxy that refuses connections.
 */
async function offlineEnv(dir: string): Promise<Record<string, string>> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(Deno.env.toObject())) {
    if (!k.startsWith("DENORT_BIN")) env[k] = v;
  }
  const denoDir = `${dir}/deno-dir`;
  await Deno.mkdir(denoDir);
  const info = await run(DENO_CLI, ["info", "--json"]);
  await Deno.symlink(
    `${(JSON.parse(info.stdout) as { denoDir: string }).denoDir}/npm`,
    `${denoDir}/npm`,
  );
  return { ...env, DENO_DIR: denoDir, HTTPS_PROXY: `http://127.0.0.1:${port}`, NO_COLOR: "1" };
}

Deno.test("release --runtime-dir refuses a denort zip of another Deno release, a missing zip and a zip for another CPU", async () => {
  await withTempDir(async (dir) => {
    const env = await offlineEnv(dir);
    const arch = hostArch()!;
    const other = arch === "amd64" ? "arm64" : "amd64";
    const rt = `${dir}/rt`;
    await Deno.mkdir(rt);
    const zip = `${rt}/denort-${TARGETS[arch]}.zip`;
    const machine = arch === "amd64" ? 62 : 183;
    const cases: Array<[Uint8Array | undefined, string[], string]> = [
      [
        makeZip({ denort: fakeDenort("2.9.5", machine) }),
        ["--target", arch],
        `release: Runtime "${zip}" is Deno 2.9.5, but this deno is ${Deno.version.deno}: its binary would fail when run`,
      ],
      [
        makeZip({ denort: fakeDenort(Deno.version.deno, machine === 62 ? 183 : 62) }),
        ["--target", arch],
        `release: Runtime "${zip}" is not a Linux ${arch} executable`,
      ],
      [
        undefined,
        ["--target", other],
        `release: --runtime-dir "${rt}" has no denort-${TARGETS[other]}.zip`,
      ],
    ];
    for (const [bytes, args, message] of cases) {
      if (bytes) await Deno.writeFile(zip, bytes);
      const out = await runRelease([...args, "--runtime-dir", rt, "--out", `${dir}/dist`], {
        env,
        clearEnv: true,
        timeoutMs: 120_000,
      });
      assert.equal(out.code, 1, out.stderr);
      assert.equal(out.stderr.trim().split("\n")[0], message);
    }
    await assert.rejects(Deno.stat(`${dir}/dist/${tarballName(DENO_JSON.version, arch)}`));
  });
});

Deno.test("release --runtime-dir compiles offline with the zip's runtime and prints its SHA-256 (payload check: the deno CLI zipped as a stand-in, refused by the smoke test)", async () => {
  await withTempDir(async (dir) => {
    const env = await offlineEnv(dir);
    const arch = hostArch()!;
    const rt = `${dir}/rt`;
    await Deno.mkdir(rt);
    const zip = `${rt}/denort-${TARGETS[arch]}.zip`;
    await Deno.writeFile(zip, makeZip({ denort: await Deno.readFile(DENO_CLI) }, 0));
    const out = await runRelease(["--target", arch, "--runtime-dir", rt, "--out", `${dir}/dist`], {
      env,
      clearEnv: true,
      timeoutMs: 600_000,
    });
    // The staged zip was used (no download was possible) and got as far as the smoke test, which
    // refuses what the deno CLI as a runtime yields.
    assert.equal(out.code, 1, out.stderr);
    assert.ok(
      out.stdout.includes(`${await sha256File(zip)}  runtime ${arch}: ${await Deno.realPath(zip)}`),
      out.stdout,
    );
    assert.match(out.stdout, new RegExp(`payload ${arch}: \\d+ npm packages, as allowed`));
    assert.match(out.stderr, /^release: Smoke test of ".*" failed: "version" exited/);
    await assert.rejects(Deno.stat(`${dir}/dist/${tarballName(DENO_JSON.version, arch)}`));
  });
});

Deno.test("deno task test:binary stops with release's one-line reason when no runtime is available", async () => {
  await withTempDir(async (dir) => {
    const out = await run(DENO_CLI, [
      "run",
      "--allow-all",
      `${REPO_ROOT}/scripts/test_binary.ts`,
      "--target",
      "arm64",
    ], {
      cwd: REPO_ROOT,
      env: await offlineEnv(dir),
      clearEnv: true,
      timeoutMs: 120_000,
    });
    assert.equal(out.code, 1, out.stderr);
    const lines = out.stderr.trim().split("\n");
    assert.equal(lines.length, 1, out.stderr);
    assert.match(
      lines[0],
      /^test:binary: cannot build arm64: denort for aarch64-unknown-linux-gnu is not available: .*\(cannot reach https:\/\/dl\.deno\.land\//,
    );
  });
});

// The real compile needs denort for the host; it cannot be downloaded on an offline machine.
const HOST = hostArch();
const HOST_DENORT = HOST ? await resolveDenort(HOST).catch(() => undefined) : undefined;

Deno.test({
  name: HOST_DENORT
    ? `release: compile for ${HOST}, smoke-test and pack (runtime: ${HOST_DENORT.kind})`
    : `release: compile for ${
      HOST ?? "host"
    }, smoke-test, pack and run e2e tests on the binary (skipped: no denort runtime available offline; set DENORT_BIN or cache denort-<target>.zip)`,
  ignore: HOST_DENORT === undefined,
  async fn() {
    await withTempDir(async (dir) => {
      const before = await Deno.readTextFile(`${REPO_ROOT}/src/build_info.json`);
      const out = await runRelease(
        ["--target", HOST!, "--tag", "v3.4.5", "--git-ref", "test-ref", "--out", dir],
        { timeoutMs: 600_000 },
      );
      assert.equal(out.code, 0, out.stderr);
      assert.match(out.stdout, new RegExp(`smoke test ${HOST}: ok`));
      assert.equal(await Deno.readTextFile(`${REPO_ROOT}/src/build_info.json`), before);
      const sums = await run("sha256sum", ["-c", "SHA256SUMS"], { cwd: dir });
      assert.equal(sums.code, 0, sums.stdout);
      const x = `${dir}/x`;
      await Deno.mkdir(x);
      await run("tar", ["-xzf", `${dir}/${tarballName("3.4.5", HOST!)}`, "-C", x]);
      const version = await run(`${x}/teleport-access-email/teleport-email`, ["version"]);
      assert.match(version.stdout, /^teleport-email v3\.4\.5 git:test-ref deno\d+\.\d+\.\d+\n$/);
      // A few CLI and e2e tests against the unpacked binary (all of them: deno task test:binary).
      const e2e = await runSwitchedTests(`${x}/teleport-access-email/teleport-email`);
      assert.equal(e2e.code, 0, e2e.output);
    });
  },
});

// ---------------------------------------------------------------------------------------------
// Dockerfile lint (no container engine runs in CI; see README "Container image").

interface DockerInstruction {
  op: string;
  args: string;
}

function parseDockerfile(text: string): DockerInstruction[] {
  const out: DockerInstruction[] = [];
  let current = "";
  for (const line of text.split("\n")) {
    if (current === "" && (line.trim() === "" || line.trim().startsWith("#"))) continue;
    if (line.trim().startsWith("#")) continue;
    if (line.endsWith("\\")) {
      current += line.slice(0, -1) + " ";
      continue;
    }
    current += line;
    const m = /^\s*(\w+)\s+(.*)$/s.exec(current);
    if (m) out.push({ op: m[1].toUpperCase(), args: m[2].trim() });
    current = "";
  }
  return out;
}

Deno.test("Dockerfile: pinned bases, Deno from npm, non-root user, upstream entrypoint", async () => {
  const instructions = parseDockerfile(await Deno.readTextFile(`${REPO_ROOT}/Dockerfile`));
  const froms = instructions.filter((i) => i.op === "FROM").map((i) =>
    i.args.replace(/^--platform=\S+\s+/, "")
  );
  assert.equal(froms.length, 2);
  for (const from of froms) {
    const image = from.split(/\s+/)[0];
    assert.match(image, /^[\w./-]+:[\w.-]+$/, `base image "${image}" must have an explicit tag`);
    assert.doesNotMatch(image, /:latest$/, `base image "${image}" must not be :latest`);
  }
  assert.match(
    froms[1],
    /^gcr\.io\/distroless\/cc-debian12:/,
    "final stage: distroless glibc base",
  );
  const runs = instructions.filter((i) => i.op === "RUN").map((i) => i.args).join("\n");
  assert.match(runs, new RegExp(`npm install -g deno@${Deno.version.deno.replaceAll(".", "\\.")}`));
  assert.match(runs, /scripts\/release\.ts --target "\$TARGETARCH"/);
  assert.match(runs, /ln -s teleport-email \/out\/usr\/local\/bin\/teleport-plugin/);
  const finalStage = instructions.slice(instructions.findLastIndex((i) => i.op === "FROM"));
  const user = finalStage.filter((i) => i.op === "USER").pop();
  assert.ok(user, "final stage sets USER");
  assert.match(user.args, /^[1-9]\d*(:[1-9]\d*)?$/, "USER is a non-root numeric uid[:gid]");
  assert.deepEqual(JSON.parse(finalStage.find((i) => i.op === "ENTRYPOINT")!.args), [
    "/usr/local/bin/teleport-plugin",
  ]);
  assert.deepEqual(JSON.parse(finalStage.find((i) => i.op === "CMD")!.args), ["start"]);
  // The diagnostics port is documented, and only the flag opens it (CMD stays plain `start`).
  assert.equal(finalStage.find((i) => i.op === "EXPOSE")?.args, "3000");
  const ignore = await Deno.readTextFile(`${REPO_ROOT}/.dockerignore`);
  for (const entry of [".git", "node_modules", "dist"]) {
    assert.match(ignore, new RegExp(`^${entry}$`, "m"));
  }
});
