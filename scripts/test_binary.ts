/**
 * `deno task test:binary`: the end-to-end suite against the compiled program.
 *
 * ```text
 * deno task test:binary [--target amd64|arm64] [--runtime-dir DIR] [TEST_FILE...]
 * ```
 *
 * Builds the target (the host's by default) with `deno task release` into a temporary directory,
 * unpacks its tarball, and runs `deno test` on the CLI and e2e test files (`tests/cli_test.ts`,
 * `tests/e2e_*_test.ts`, or the files given) with `TELEPORT_EMAIL_BIN` set to the unpacked
 * binary, which the tests then run from an empty directory outside the repository (an arm64
 * binary on another CPU under `qemu-aarch64`). Without a runtime for the target, `deno task
 * release` stops and so does this, with its one-line reason. Exit code: the tests'.
 */
import { parseArgs } from "node:util";

const REPO = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** The CLI and end-to-end test files, relative to the repository. */
export async function e2eTestFiles(): Promise<string[]> {
  const files: string[] = [];
  for await (const e of Deno.readDir(`${REPO}/tests`)) {
    if (e.isFile && (e.name === "cli_test.ts" || /^e2e_.*_test\.ts$/.test(e.name))) {
      files.push(`tests/${e.name}`);
    }
  }
  return files.sort();
}

/** Builds, unpacks and tests; returns the exit code. */
export async function testBinary(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { target: { type: "string" }, "runtime-dir": { type: "string" } },
    allowPositionals: true,
    strict: true,
  });
  const target = values.target ?? (Deno.build.arch === "aarch64" ? "arm64" : "amd64");
  const dir = await Deno.makeTempDir({ prefix: "teleport-email-test-binary-" });
  try {
    const release = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        `${REPO}/scripts/release.ts`,
        "--target",
        target,
        "--out",
        dir,
        ...(values["runtime-dir"] ? ["--runtime-dir", values["runtime-dir"]] : []),
      ],
      cwd: REPO,
      stdin: "null",
      stdout: "inherit",
      stderr: "piped",
    }).output();
    if (!release.success) {
      const lines = new TextDecoder().decode(release.stderr).trim().split("\n");
      const reason = lines.find((l) => l.startsWith("release: ")) ?? lines.at(-1) ?? "";
      console.error(`test:binary: cannot build ${target}: ${reason.replace(/^release: /, "")}`);
      return 1;
    }
    let tarball = "";
    for await (const e of Deno.readDir(dir)) {
      if (e.name.endsWith(`-linux-${target}-bin.tar.gz`)) tarball = `${dir}/${e.name}`;
    }
    const untar = await new Deno.Command("tar", { args: ["-xzf", tarball, "-C", dir] }).output();
    if (!untar.success) {
      console.error(`test:binary: cannot unpack "${tarball}"`);
      return 1;
    }
    const bin = `${dir}/teleport-access-email/teleport-email`;
    const files = positionals.length > 0 ? positionals : await e2eTestFiles();
    console.log(`test:binary: TELEPORT_EMAIL_BIN=${bin} deno test ${files.join(" ")}`);
    const test = await new Deno.Command(Deno.execPath(), {
      args: ["test", "--allow-all", "--no-check=remote", ...files],
      cwd: REPO,
      env: { TELEPORT_EMAIL_BIN: bin },
      stdin: "null",
    }).spawn().status;
    return test.code;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  try {
    Deno.exitCode = await testBinary(Deno.args);
  } catch (err) {
    console.error(`test:binary: ${err instanceof Error ? err.message : String(err)}`);
    Deno.exitCode = 1;
  }
}
