/**
 * `deno task release`: compiles `teleport-email` for Linux amd64 and arm64 with `deno compile`,
 * smoke-tests every binary the host can run, and packs
 * `dist/teleport-access-email-v<VERSION>-linux-<arch>-bin.tar.gz` (top-level folder
 * `teleport-access-email/`) plus `dist/SHA256SUMS`.
 *
 * ```text
 * deno task release [--target amd64|arm64|all] [--version X.Y.Z] [--tag vX.Y.Z] [--git-ref REF]
 *                   [--out DIR] [--runtime-dir DIR] [--download-timeout SECONDS]
 * deno task release --payload-check      # payload only, with `deno` as a stand-in runtime
 * ```
 *
 * `deno compile` embeds the program into `denort`, the Deno runtime without the CLI tools. The
 * runtime of each target comes from, in this order: `--runtime-dir DIR` (Deno's official
 * `denort-<triple>.zip` files, staged into a temporary Deno cache); `DENORT_BIN_AMD64` /
 * `DENORT_BIN_ARM64`; `DENORT_BIN` (host target only); the zip Deno caches in
 * `$DENO_DIR/dl/release/v<deno>/denort-<triple>.zip`; a download by `deno compile` from
 * dl.deno.land, tried only when a bounded preflight request reaches it. When none works the
 * script stops before compiling anything and says what to provide. A runtime of another Deno
 * release than the compiling one is refused (its binary would fail only when run).
 *
 * Only the npm packages the runtime graph needs are embedded (`scripts/payload.ts`); their names
 * must equal `scripts/payload_packages.txt`.
 *
 * The version and git ref are injected by compiling a temporary copy of the tree whose
 * `src/build_info.json` holds them, so the committed file is never modified.
 */
import { parseArgs } from "node:util";
import { parse as parseToml } from "smol-toml";
import { TeleportEmailError } from "../src/errors.ts";
import { DAEMON_PERMISSIONS } from "../src/permissions.ts";
import { COMPILE_ENTRY, DAEMON_RUNTIME_FLAGS } from "../src/runtime_flags.ts";
import { denoVersionOf, inspectDenortZip, stageDenoDir } from "./denort_zip.ts";
import {
  ALLOWLIST_PATH,
  comparePayload,
  type DenoInfo,
  embeddedPackages,
  listNodeModules,
  parseAllowList,
  payloadExcludes,
  payloadMismatch,
  runtimePackages,
} from "./payload.ts";

/** A release step failed; `hint` says what to do. */
export class ReleaseError extends TeleportEmailError {}

/** Architecture names used in file names, mapped to Deno's target triples. */
export const TARGETS = {
  amd64: "x86_64-unknown-linux-gnu",
  arm64: "aarch64-unknown-linux-gnu",
} as const;

/** An architecture name used in release file names. */
export type Arch = keyof typeof TARGETS;

/** ELF `e_machine` of each architecture, to check that a runtime binary is for the right CPU. */
const ELF_MACHINE: Record<Arch, number> = { amd64: 62, arm64: 183 };

/** Permissions baked into the binary: the daemon's, from `src/permissions.ts` (the e2e tests run with them too). */
export const COMPILE_PERMISSIONS: readonly string[] = DAEMON_PERMISSIONS;

/** The folder at the top of every tarball. */
export const RELEASE_DIR_NAME = "teleport-access-email";

/** Repository root (this file is `scripts/release.ts`). */
export const REPO_ROOT: string = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** `teleport-access-email-v0.1.0-linux-amd64-bin.tar.gz`. */
export function tarballName(version: string, arch: Arch): string {
  return `${RELEASE_DIR_NAME}-v${version}-linux-${arch}-bin.tar.gz`;
}

/** The host's architecture when it is one we release for, else `undefined`. */
export function hostArch(): Arch | undefined {
  if (Deno.build.os !== "linux") return undefined;
  if (Deno.build.arch === "x86_64") return "amd64";
  if (Deno.build.arch === "aarch64") return "arm64";
  return undefined;
}

/** Options of {@link assembleRelease}. */
export interface AssembleOptions {
  /** The compiled `teleport-email` for `arch`. */
  binaryPath: string;
  /** Version without a leading `v`. */
  version: string;
  /** Architecture named in the tarball's file name. */
  arch: Arch;
  /** Directory that receives the tarball (created when missing). */
  outDir: string;
  /** Where `install.sh`, `README.md`, `LICENSE` and `deploy/systemd/` are; the repository root by default. */
  sourceDir?: string;
  /** Seconds since the epoch stored as every entry's mtime (reproducible archives); now by default. */
  mtime?: number;
  /** Aborts the `tar` child process. */
  signal?: AbortSignal;
}

/** What {@link assembleRelease} produced. */
export interface Artifact {
  /** Absolute path of the tarball. */
  path: string;
  /** Lower-case hex SHA-256 of the tarball. */
  sha256: string;
}

/**
 * Packs `teleport-access-email/{teleport-email,install,teleport-email.service,README.md,VERSION,LICENSE}`
 * into `<outDir>/teleport-access-email-v<version>-linux-<arch>-bin.tar.gz` with modes 0755 for the
 * binary and `install`, 0644 for the rest, owner 0:0 and sorted entries. Does not compile anything.
 */
export async function assembleRelease(options: AssembleOptions): Promise<Artifact> {
  const sourceDir = options.sourceDir ?? REPO_ROOT;
  await Deno.mkdir(options.outDir, { recursive: true });
  const stage = await Deno.makeTempDir({ dir: options.outDir, prefix: ".stage-" });
  try {
    const dir = `${stage}/${RELEASE_DIR_NAME}`;
    await Deno.mkdir(dir);
    await Deno.chmod(dir, 0o755);
    const files: Array<[from: string | null, to: string, mode: number]> = [
      [options.binaryPath, "teleport-email", 0o755],
      [`${sourceDir}/install.sh`, "install", 0o755],
      [`${sourceDir}/deploy/systemd/teleport-email.service`, "teleport-email.service", 0o644],
      [`${sourceDir}/README.md`, "README.md", 0o644],
      [`${sourceDir}/LICENSE`, "LICENSE", 0o644],
      [null, "VERSION", 0o644],
    ];
    for (const [from, to, mode] of files) {
      const target = `${dir}/${to}`;
      if (from === null) {
        await Deno.writeTextFile(target, `v${options.version}\n`);
      } else {
        try {
          await Deno.copyFile(from, target);
        } catch (err) {
          throw new ReleaseError(`Cannot copy "${from}" into the release: ${errorText(err)}`, {
            cause: err,
          });
        }
      }
      await Deno.chmod(target, mode);
    }
    const path = `${await Deno.realPath(options.outDir)}/${
      tarballName(options.version, options.arch)
    }`;
    const mtime = options.mtime ?? Math.floor(Date.now() / 1000);
    await run("tar", [
      "--sort=name",
      "--owner=0",
      "--group=0",
      "--numeric-owner",
      `--mtime=@${mtime}`,
      "--use-compress-program=gzip -9n",
      "-C",
      stage,
      "-cf",
      path,
      RELEASE_DIR_NAME,
    ], { signal: options.signal });
    return { path, sha256: await sha256File(path) };
  } finally {
    await Deno.remove(stage, { recursive: true });
  }
}

/**
 * Writes `<outDir>/SHA256SUMS` (`sha256sum` format: `<hex>  <name>`) for every release tarball of
 * `version` found in `outDir`, sorted by name. Returns the file's text.
 */
export async function writeChecksums(outDir: string, version: string): Promise<string> {
  const names: string[] = [];
  const prefix = `${RELEASE_DIR_NAME}-v${version}-linux-`;
  for await (const entry of Deno.readDir(outDir)) {
    if (entry.isFile && entry.name.startsWith(prefix) && entry.name.endsWith("-bin.tar.gz")) {
      names.push(entry.name);
    }
  }
  names.sort();
  let text = "";
  for (const name of names) text += `${await sha256File(`${outDir}/${name}`)}  ${name}\n`;
  await Deno.writeTextFile(`${outDir}/SHA256SUMS`, text);
  return text;
}

/** Where the Deno runtime for one target comes from. */
export type DenortSource =
  | { kind: "env"; variable: string; path: string }
  | { kind: "cache"; path: string }
  | { kind: "zip"; path: string; denoDir: string }
  | { kind: "download"; url: string };

/** Inputs of {@link resolveDenort}; all default to this process's values. */
export interface ResolveDenortOptions {
  /** Environment variables to consult. */
  env?: Record<string, string | undefined>;
  /** `DENO_DIR` (from `deno info --json`). */
  denoDir?: string;
  /** The Deno version whose runtime is needed. */
  denoVersion?: string;
  /** The host architecture, for `DENORT_BIN`. */
  host?: Arch;
}

/**
 * Finds the runtime for `arch` without touching the network: `DENORT_BIN_<ARCH>`, then
 * `DENORT_BIN` when `arch` is the host's, then Deno's download cache. Returns `undefined` when
 * only a download could provide it. Throws when a variable names a missing file or a binary for
 * another CPU, or when it names the full `deno` CLI instead of `denort`.
 */
export async function resolveDenort(
  arch: Arch,
  options: ResolveDenortOptions = {},
): Promise<DenortSource | undefined> {
  const env = options.env ?? Deno.env.toObject();
  const host = options.host ?? hostArch();
  const variables = [`DENORT_BIN_${arch.toUpperCase()}`];
  if (arch === host) variables.push("DENORT_BIN");
  for (const variable of variables) {
    const path = env[variable];
    if (!path) continue;
    await checkDenortBinary(path, arch, variable);
    return { kind: "env", variable, path };
  }
  const denoVersion = options.denoVersion ?? Deno.version.deno;
  const denoDir = options.denoDir ?? await denoDirPath();
  const zip = `${denoDir}/dl/release/v${denoVersion}/denort-${TARGETS[arch]}.zip`;
  if (await isFile(zip)) return { kind: "cache", path: zip };
  return undefined;
}

/** The text that tells a user how to supply the runtime for `arch`. */
export function denortMissingMessage(arch: Arch, denoDir: string, reason: string): string {
  const triple = TARGETS[arch];
  const v = Deno.version.deno;
  return `denort for ${triple} is not available: pass --runtime-dir DIR holding ` +
    `denort-${triple}.zip of Deno ${v}, put that zip at ` +
    `${denoDir}/dl/release/v${v}/denort-${triple}.zip, set DENORT_BIN_${arch.toUpperCase()}=` +
    `/path/to/denort (unzipped), or run with network access (${reason})`;
}

/** The URL `deno compile` downloads the runtime of `arch` from. */
export function denortUrl(arch: Arch): string {
  return `https://dl.deno.land/release/v${Deno.version.deno}/denort-${TARGETS[arch]}.zip`;
}

/**
 * Checks that dl.deno.land answers for `arch`'s runtime within `timeoutMs`. Resolves to an error
 * text when it does not, `undefined` when it does.
 */
export async function probeDownload(
  arch: Arch,
  timeoutMs: number,
  options: { signal?: AbortSignal } = {},
): Promise<string | undefined> {
  const signal = options.signal
    ? AbortSignal.any([options.signal, AbortSignal.timeout(timeoutMs)])
    : AbortSignal.timeout(timeoutMs);
  try {
    const res = await fetch(denortUrl(arch), { method: "HEAD", signal });
    await res.body?.cancel();
    return res.ok ? undefined : `${denortUrl(arch)} answered HTTP ${res.status}`;
  } catch (err) {
    const what = err instanceof DOMException && err.name === "TimeoutError"
      ? `no answer within ${timeoutMs / 1000} s`
      : errorText(err);
    return `cannot reach ${denortUrl(arch)}: ${what}`;
  }
}

/** Options of {@link compileBinary}. */
export interface CompileOptions {
  arch: Arch;
  /** Version without `v`, written to `src/build_info.json` of the temporary copy. */
  version: string;
  /** Git reference written next to it (may be empty). */
  gitRef: string;
  /** Path of the binary to write. */
  output: string;
  /** Runtime source; `download` lets `deno compile` fetch it. */
  denort: DenortSource;
  /** Repository to compile; the repository root by default. */
  sourceDir?: string;
  /** Kills `deno compile` after this long (default 10 minutes). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * Runs `deno compile --frozen <COMPILE_PERMISSIONS> <DAEMON_RUNTIME_FLAGS> --target <triple>` on a
 * temporary copy of the tree (`deno.json`, `deno.lock`, `main.ts`, `main_compiled.ts`, `src/`, hard-linked
 * `node_modules/`) whose `src/build_info.json` carries the version and git ref, leaving out of
 * `node_modules/` every package the runtime graph does not need. Type-checks. Returns the npm
 * package names `deno compile` lists as embedded.
 */
export async function compileBinary(options: CompileOptions): Promise<CompileResult> {
  const sourceDir = options.sourceDir ?? REPO_ROOT;
  const tree = await Deno.makeTempDir({ prefix: "teleport-email-build-" });
  try {
    for (const name of ["deno.json", "deno.lock", "main.ts", COMPILE_ENTRY]) {
      await Deno.copyFile(`${sourceDir}/${name}`, `${tree}/${name}`);
    }
    await run("cp", ["-a", `${sourceDir}/src`, `${tree}/src`], { signal: options.signal });
    if (await isDir(`${sourceDir}/node_modules`)) {
      // Hard links: fast and no extra space; fall back to a copy across file systems.
      const linked = await run("cp", ["-al", `${sourceDir}/node_modules`, `${tree}/node_modules`], {
        signal: options.signal,
        check: false,
      });
      if (!linked.success) {
        await Deno.remove(`${tree}/node_modules`, { recursive: true }).catch(() => {});
        await run("cp", ["-a", `${sourceDir}/node_modules`, `${tree}/node_modules`], {
          signal: options.signal,
        });
      }
    }
    await Deno.writeTextFile(
      `${tree}/src/build_info.json`,
      buildInfoJson(options.version, options.gitRef) + "\n",
    );
    const info = await run(Deno.execPath(), ["info", "--json", COMPILE_ENTRY], {
      cwd: tree,
      signal: options.signal,
    });
    const keep = runtimePackages(JSON.parse(info.stdout) as DenoInfo);
    const exclude = payloadExcludes(keep, await listNodeModules(tree))
      .flatMap((path) => ["--exclude", path]);
    const env: Record<string, string> = { NO_COLOR: "1" };
    const clearEnv = ["DENORT_BIN"];
    if (options.denort.kind === "env") env.DENORT_BIN = options.denort.path;
    if (options.denort.kind === "zip") env.DENO_DIR = options.denort.denoDir;
    const timeoutMs = options.timeoutMs ?? 10 * 60_000;
    const signal = options.signal
      ? AbortSignal.any([options.signal, AbortSignal.timeout(timeoutMs)])
      : AbortSignal.timeout(timeoutMs);
    const result = await run(Deno.execPath(), [
      "compile",
      "--frozen",
      ...COMPILE_PERMISSIONS,
      ...DAEMON_RUNTIME_FLAGS,
      ...exclude,
      "--target",
      TARGETS[options.arch],
      "--output",
      options.output,
      COMPILE_ENTRY,
    ], { cwd: tree, env, clearEnv, signal, check: false });
    if (!result.success) {
      const timedOut = signal.aborted && !options.signal?.aborted;
      throw new ReleaseError(
        `Cannot compile teleport-email for ${TARGETS[options.arch]}: ` +
          (timedOut
            ? `deno compile did not finish within ${timeoutMs / 1000} s`
            : lastLines(result.stderr)),
      );
    }
    const listing = result.stdout + result.stderr;
    const packages = embeddedPackages(listing);
    if (!packages) {
      throw new ReleaseError(
        `Cannot read the embedded npm packages from deno compile's output: ${lastLines(listing)}`,
      );
    }
    return { packages, listing };
  } finally {
    await Deno.remove(tree, { recursive: true });
  }
}

/** What {@link compileBinary} reports. */
export interface CompileResult {
  /** npm package names in deno compile's "Embedded Files" listing, sorted. */
  packages: string[];
  /** deno compile's output (its "Embedded Files" listing). */
  listing: string;
}

/**
 * Throws unless `packages` (what {@link compileBinary} embedded) equals the allow-list at
 * `allowListPath`, naming each extra and each missing package.
 */
export async function checkPayload(
  packages: readonly string[],
  allowListPath: string = ALLOWLIST_PATH,
): Promise<void> {
  const allowed = parseAllowList(await Deno.readTextFile(allowListPath));
  const name = allowListPath.startsWith(`${REPO_ROOT}/`)
    ? allowListPath.slice(REPO_ROOT.length + 1)
    : allowListPath;
  const problem = payloadMismatch(comparePayload(allowed, packages), name);
  if (problem) throw new ReleaseError(problem);
}

/** The `src/build_info.json` written for a build. */
export function buildInfoJson(version: string, gitRef: string): string {
  return JSON.stringify({ version, gitRef });
}

/**
 * Structural checks of a compiled binary, for every target (including one the host cannot
 * run): an ELF executable for `arch` that embeds this build's `src/build_info.json`.
 */
export async function checkCompiledBinary(
  binary: string,
  arch: Arch,
  build: { version: string; gitRef: string },
): Promise<void> {
  if (await elfMachine(binary) !== ELF_MACHINE[arch]) {
    throw new ReleaseError(`The compiled binary "${binary}" is not a Linux ${arch} executable`);
  }
  if (!(await fileContains(binary, buildInfoJson(build.version, build.gitRef)))) {
    throw new ReleaseError(
      `The compiled binary "${binary}" does not embed this build's src/build_info.json`,
    );
  }
}

/** What {@link smokeTest} found: `ran: false` when the host cannot execute the binary. */
export type SmokeResult = { ran: true; versionLine: string } | { ran: false; reason: string };

/**
 * How this host runs `binary`: directly (a binary for this CPU, or a script), under
 * `qemu-aarch64` (an arm64 binary on another CPU, when installed; Debian's `qemu-user`,
 * `libc6-arm64-cross` and `libgcc-s1-arm64-cross`), or not at all (`undefined`).
 */
export async function binaryRunner(
  binary: string,
): Promise<{ cmd: string; args: string[] } | undefined> {
  const machine = await elfMachine(binary);
  const host = hostArch();
  if (machine === undefined || (host && machine === ELF_MACHINE[host])) {
    return { cmd: binary, args: [] };
  }
  if (machine !== ELF_MACHINE.arm64) return undefined;
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (dir && await isFile(`${dir}/qemu-aarch64`)) {
      return { cmd: `${dir}/qemu-aarch64`, args: ["-L", "/usr/aarch64-linux-gnu", binary] };
    }
  }
  return undefined;
}

/**
 * Runs the binary: `version` must print `teleport-email v<version>[ git:<ref>] deno<x.y.z>`,
 * `configure` must print a non-empty TOML document with a `[teleport]` table, and
 * `start -c <file with bad TOML>` must exit 1. Throws {@link ReleaseError} on any mismatch.
 * A binary for another CPU is run under `qemu-aarch64` when possible, else reported as not run.
 */
export async function smokeTest(
  binary: string,
  expected: { version: string; gitRef: string },
  options: { signal?: AbortSignal } = {},
): Promise<SmokeResult> {
  const runner = await binaryRunner(binary);
  if (!runner) {
    return { ran: false, reason: "the host cannot execute this architecture (no qemu-aarch64)" };
  }
  const dir = await Deno.makeTempDir({ prefix: "teleport-email-smoke-" });
  const exec = (args: string[]) =>
    run(runner.cmd, [...runner.args, ...args], { check: false, cwd: dir, signal: options.signal });
  try {
    const version = await exec(["version"]);
    const git = expected.gitRef ? ` git:${escapeRegExp(expected.gitRef)}` : "";
    const pattern = new RegExp(
      `^teleport-email v${escapeRegExp(expected.version)}${git} deno\\d+\\.\\d+\\.\\d+\\n$`,
    );
    if (version.code !== 0 || !pattern.test(version.stdout)) {
      throw new ReleaseError(
        `Smoke test of "${binary}" failed: "version" exited ${version.code} and printed ` +
          `${JSON.stringify(version.stdout.slice(0, 200))} ${
            JSON.stringify(lastLines(version.stderr))
          }`,
        {
          hint:
            "the binary is not a working teleport-email (is DENORT_BIN the deno CLI instead of denort?)",
        },
      );
    }
    const configure = await exec(["configure"]);
    let toml: Record<string, unknown> | undefined;
    try {
      toml = configure.code === 0 && configure.stdout.trim()
        ? parseToml(configure.stdout)
        : undefined;
    } catch {
      toml = undefined;
    }
    if (!toml || typeof toml.teleport !== "object") {
      throw new ReleaseError(
        `Smoke test of "${binary}" failed: "configure" exited ${configure.code} without printing ` +
          `a TOML configuration with a [teleport] table ${
            JSON.stringify(lastLines(configure.stderr))
          }`,
      );
    }
    const bad = `${dir}/bad.toml`;
    await Deno.writeTextFile(bad, "this is = = not TOML [[\n");
    const start = await exec(["start", "-c", bad]);
    if (start.code !== 1) {
      throw new ReleaseError(
        `Smoke test of "${binary}" failed: "start -c <bad TOML>" exited ${start.code}, expected 1 ` +
          JSON.stringify(lastLines(start.stderr)),
      );
    }
    return { ran: true, versionLine: version.stdout.trim() };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Parsed command line of the release script. */
export interface ReleaseArgs {
  arches: Arch[];
  version: string;
  /** `--tag`: the version tag being released; `version` must equal it without the `v`. */
  tag: string | undefined;
  gitRef: string | undefined;
  outDir: string;
  /** `--runtime-dir`: where `denort-<triple>.zip` of each target is. */
  runtimeDir: string | undefined;
  downloadTimeoutMs: number;
  /** `--payload-check`: compile the host target onto `deno` and check the payload only. */
  payloadCheck: boolean;
}

const USAGE = "usage: deno task release [--target amd64|arm64|all] [--version X.Y.Z] " +
  "[--tag vX.Y.Z] [--git-ref REF] [--out DIR] [--runtime-dir DIR] [--payload-check]";

/** Parses the release script's options (see the module doc). */
export function parseReleaseArgs(args: string[], defaults: { version: string }): ReleaseArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        target: { type: "string", default: "all" },
        version: { type: "string" },
        tag: { type: "string" },
        "git-ref": { type: "string" },
        out: { type: "string", default: "dist" },
        "runtime-dir": { type: "string" },
        "download-timeout": { type: "string", default: "15" },
        "payload-check": { type: "boolean", default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    throw new ReleaseError(`Invalid arguments: ${errorText(err)}`, { hint: USAGE });
  }
  const target = parsed.target!;
  const arches: Arch[] = target === "all"
    ? ["amd64", "arm64"]
    : target === "amd64" || target === "arm64"
    ? [target]
    : [];
  if (arches.length === 0) {
    throw new ReleaseError(`Invalid --target "${target}": expected amd64, arm64 or all`);
  }
  const tag = parsed.tag;
  const version = (parsed.version ?? tag ?? defaults.version).replace(/^v/, "");
  if (!/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/.test(version)) {
    throw new ReleaseError(`Invalid version "${version}": expected a semantic version like 1.2.3`);
  }
  if (tag !== undefined && tag !== `v${version}`) {
    throw new ReleaseError(
      `The tag "${tag}" does not name version ${version}: expected "v${version}"`,
    );
  }
  const seconds = Number(parsed["download-timeout"]);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new ReleaseError(
      `Invalid --download-timeout "${parsed["download-timeout"]}": expected seconds`,
    );
  }
  return {
    arches,
    version,
    tag,
    gitRef: parsed["git-ref"],
    outDir: parsed.out!,
    runtimeDir: parsed["runtime-dir"],
    downloadTimeoutMs: seconds * 1000,
    payloadCheck: parsed["payload-check"]!,
  };
}

/** `git describe --tags --always --dirty` in `dir`, or `""` outside a git checkout. */
export async function gitRef(dir: string = REPO_ROOT): Promise<string> {
  const result = await run("git", ["describe", "--tags", "--always", "--dirty"], {
    cwd: dir,
    check: false,
  })
    .catch(() => undefined);
  return result?.success ? result.stdout.trim() : "";
}

/** Commit time of HEAD (seconds), for reproducible tarball mtimes; `SOURCE_DATE_EPOCH` wins. */
async function sourceDateEpoch(dir: string): Promise<number> {
  const env = Deno.env.get("SOURCE_DATE_EPOCH");
  if (env && /^\d+$/.test(env)) return Number(env);
  const result = await run("git", ["log", "-1", "--format=%ct"], { cwd: dir, check: false })
    .catch(() => undefined);
  const value = Number(result?.stdout.trim());
  return result?.success && Number.isInteger(value) ? value : Math.floor(Date.now() / 1000);
}

/** The whole release: resolve every runtime first, then compile, smoke-test and pack each target. */
export async function release(
  args: string[],
  options: { signal?: AbortSignal } = {},
): Promise<void> {
  const denoJson = JSON.parse(await Deno.readTextFile(`${REPO_ROOT}/deno.json`)) as {
    version: string;
  };
  const opts = parseReleaseArgs(args, { version: denoJson.version });
  if (opts.payloadCheck) {
    console.log(formatPayloadReport(await payloadCheck(options)));
    return;
  }
  const ref = opts.gitRef ?? await gitRef();
  const denoDir = await denoDirPath();
  const { sources, staged } = await resolveSources(opts, denoDir, options);
  await Deno.mkdir(opts.outDir, { recursive: true });
  const outDir = await Deno.realPath(opts.outDir);
  const mtime = await sourceDateEpoch(REPO_ROOT);
  const work = await Deno.makeTempDir({ dir: outDir, prefix: ".build-" });
  const summary: string[] = [];
  try {
    for (const arch of opts.arches) {
      const source = sources.get(arch)!;
      const binary = `${work}/${arch}/teleport-email`;
      console.log(`compile ${TARGETS[arch]} (runtime: ${describeSource(source)})`);
      const compiled = await compileBinary({
        arch,
        version: opts.version,
        gitRef: ref,
        output: binary,
        denort: source,
        ...options,
      });
      await checkPayload(compiled.packages);
      console.log(`payload ${arch}: ${compiled.packages.length} npm packages, as allowed`);
      await checkCompiledBinary(binary, arch, { version: opts.version, gitRef: ref });
      const smoke = await smokeTest(binary, { version: opts.version, gitRef: ref }, options);
      if (smoke.ran && opts.tag) checkVersionLine(smoke.versionLine, opts.tag);
      console.log(
        smoke.ran ? `smoke test ${arch}: ok` : `smoke test ${arch}: not run (${smoke.reason})`,
      );
      const artifact = await assembleRelease({
        binaryPath: binary,
        version: opts.version,
        arch,
        outDir,
        mtime,
        ...options,
      });
      summary.push(
        `${await runtimeDigest(source, arch, denoDir)}  runtime ${arch}: ${describeSource(source)}`,
        `${artifact.sha256}  ${artifact.path} (binary ${
          megabytes((await Deno.stat(binary)).size)
        }, tarball ${megabytes((await Deno.stat(artifact.path)).size)})`,
      );
    }
  } finally {
    await Deno.remove(work, { recursive: true });
    if (staged) await Deno.remove(staged, { recursive: true });
  }
  await writeChecksums(outDir, opts.version);
  console.log(`${summary.join("\n")}\n${outDir}/SHA256SUMS`);
}

/** `12.3 MB` (10^6 bytes). */
export function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

/**
 * The runtime of every target: from `--runtime-dir` (each zip checked, then staged into a
 * temporary Deno cache, `staged`, to remove when done), else {@link resolveDenort} and a
 * download. A cached or given zip of another Deno release is refused.
 */
async function resolveSources(
  opts: ReleaseArgs,
  denoDir: string,
  options: { signal?: AbortSignal },
): Promise<{ sources: Map<Arch, DenortSource>; staged?: string }> {
  const sources = new Map<Arch, DenortSource>();
  if (opts.runtimeDir !== undefined) {
    const zips = new Map<Arch, string>();
    for (const arch of opts.arches) {
      const path = `${opts.runtimeDir}/denort-${TARGETS[arch]}.zip`;
      if (!(await isFile(path))) {
        throw new ReleaseError(
          `--runtime-dir "${opts.runtimeDir}" has no denort-${TARGETS[arch]}.zip`,
          {
            hint: `download ${denortUrl(arch)} into it`,
          },
        );
      }
      const real = await Deno.realPath(path);
      const sha256 = await checkRuntimeZip(real, arch);
      console.log(`${sha256}  runtime ${arch}: ${real} (Deno ${Deno.version.deno})`);
      zips.set(arch, real);
    }
    const staged = await stageDenoDir(denoDir, Deno.version.deno, [...zips.values()]);
    for (const [arch, path] of zips) sources.set(arch, { kind: "zip", path, denoDir: staged });
    return { sources, staged };
  }
  for (const arch of opts.arches) {
    const found = await resolveDenort(arch, { denoDir });
    if (found) {
      if (found.kind === "cache") await checkRuntimeZip(found.path, arch);
      sources.set(arch, found);
      continue;
    }
    const problem = await probeDownload(arch, opts.downloadTimeoutMs, options);
    if (problem) throw new ReleaseError(denortMissingMessage(arch, denoDir, problem));
    sources.set(arch, { kind: "download", url: denortUrl(arch) });
  }
  return { sources };
}

/**
 * Throws unless the zip at `path` holds `denort` of this Deno release for `arch`'s CPU: a runtime
 * of another release compiles without complaint into a binary that fails only when run
 * ("Could not find standalone binary section"). Returns the zip's SHA-256.
 */
export async function checkRuntimeZip(path: string, arch: Arch): Promise<string> {
  const hint = `use ${denortUrl(arch)}`;
  let found;
  try {
    found = await inspectDenortZip(path);
  } catch (err) {
    throw new ReleaseError(`Cannot use runtime "${path}": ${errorText(err)}`, { hint });
  }
  if (found.denoVersion !== Deno.version.deno) {
    throw new ReleaseError(
      `Runtime "${path}" is Deno ${found.denoVersion}, but this deno is ${Deno.version.deno}: ` +
        `its binary would fail when run`,
      { hint },
    );
  }
  if (found.machine !== ELF_MACHINE[arch]) {
    throw new ReleaseError(`Runtime "${path}" is not a Linux ${arch} executable`, { hint });
  }
  return found.sha256;
}

/** SHA-256 of the runtime a target was built on (the zip, or the `DENORT_BIN*` file). */
async function runtimeDigest(source: DenortSource, arch: Arch, denoDir: string): Promise<string> {
  switch (source.kind) {
    case "env":
    case "cache":
    case "zip":
      return await sha256File(source.path);
    case "download": {
      const zip = `${denoDir}/dl/release/v${Deno.version.deno}/denort-${TARGETS[arch]}.zip`;
      return await isFile(zip) ? await sha256File(zip) : "(downloaded; not in the cache)";
    }
  }
}

/**
 * Throws unless the binary's `version` line names exactly `tag`:
 * `teleport-email <tag>[ git:<ref>] deno<x.y.z>`.
 */
export function checkVersionLine(line: string, tag: string): void {
  const shown = /^teleport-email (\S+)(?: git:\S+)? deno\d+\.\d+\.\d+$/.exec(line.trim())?.[1];
  if (shown !== tag) {
    throw new ReleaseError(
      `The binary's version line ${JSON.stringify(line.trim())} differs from the tag "${tag}"`,
    );
  }
}

/** What {@link payloadCheck} measured. */
export interface PayloadReport {
  packages: string[];
  /** Size of the stand-in output minus the `deno` it was built on: the payload. */
  payloadBytes: number;
  /** Size of a tarball packed around the stand-in output (labelled as such when printed). */
  standInTarballBytes: number;
}

/**
 * Compiles the host target with the full `deno` as a stand-in runtime (the output carries the
 * real payload but is not a working program, so it is never packaged or smoke-tested), checks
 * the embedded packages against the allow-list and measures the payload.
 */
export async function payloadCheck(options: { signal?: AbortSignal } = {}): Promise<PayloadReport> {
  const arch = hostArch();
  if (!arch) throw new ReleaseError(`The payload check needs a Linux amd64 or arm64 host`);
  const dir = await Deno.makeTempDir({ prefix: "teleport-email-payload-" });
  try {
    const output = `${dir}/stand-in`;
    const compiled = await compileBinary({
      arch,
      version: "0.0.0",
      gitRef: "payload-check",
      output,
      denort: { kind: "env", variable: "stand-in", path: Deno.execPath() },
      ...options,
    });
    await checkPayload(compiled.packages);
    const size = (await Deno.stat(output)).size - (await Deno.stat(Deno.execPath())).size;
    const tarball = await assembleRelease({
      binaryPath: output,
      version: "0.0.0",
      arch,
      outDir: `${dir}/dist`,
      ...options,
    });
    return {
      packages: compiled.packages,
      payloadBytes: size,
      standInTarballBytes: (await Deno.stat(tarball.path)).size,
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The lines `deno task release --payload-check` prints. */
export function formatPayloadReport(report: PayloadReport): string {
  return [
    `payload check (deno ${Deno.version.deno} CLI as a stand-in runtime; not a release binary):`,
    `  npm packages: ${report.packages.length}, as in scripts/payload_packages.txt`,
    `  payload (stand-in output minus the deno binary): ${megabytes(report.payloadBytes)}`,
    `  tarball around the stand-in (deno CLI, larger than denort): ${
      megabytes(report.standInTarballBytes)
    }`,
  ].join("\n");
}

function describeSource(source: DenortSource): string {
  switch (source.kind) {
    case "env":
      return `${source.variable}=${source.path}`;
    case "cache":
    case "zip":
      return source.path;
    case "download":
      return source.url;
  }
}

/**
 * Throws unless `path` is an ELF executable for `arch` that is not the full `deno` CLI (compiling
 * onto the CLI yields a binary that runs `deno`, not teleport-email).
 */
async function checkDenortBinary(path: string, arch: Arch, variable: string): Promise<void> {
  let machine: number | undefined;
  try {
    machine = await elfMachine(path);
  } catch (err) {
    throw new ReleaseError(`Cannot read ${variable} "${path}": ${errorText(err)}`, { cause: err });
  }
  if (machine !== ELF_MACHINE[arch]) {
    throw new ReleaseError(`${variable} "${path}" is not a Linux ${arch} executable`, {
      hint: `use denort from denort-${TARGETS[arch]}.zip of Deno ${Deno.version.deno}`,
    });
  }
  // The runtime of this Deno release carries this V8 version string; another program does not.
  if (!(await fileContains(path, Deno.version.v8))) {
    throw new ReleaseError(
      `${variable} "${path}" is not denort of Deno ${Deno.version.deno} (V8 ${Deno.version.v8})`,
      { hint: `use denort from denort-${TARGETS[arch]}.zip of Deno ${Deno.version.deno}` },
    );
  }
  const version = denoVersionOf(await Deno.readFile(path));
  if (version !== undefined && version !== Deno.version.deno) {
    throw new ReleaseError(
      `${variable} "${path}" is denort of Deno ${version}, but this deno is ${Deno.version.deno}`,
      { hint: `use denort from denort-${TARGETS[arch]}.zip of Deno ${Deno.version.deno}` },
    );
  }
  // Strings only the CLI has: its `upgrade`/`compile` download URL and `deno bump-version`.
  if (
    await fileContains(path, "dl.deno.land/release") && await fileContains(path, "bump-version")
  ) {
    throw new ReleaseError(`${variable} "${path}" is the deno CLI, not denort`, {
      hint: `use denort from denort-${TARGETS[arch]}.zip of Deno ${Deno.version.deno}`,
    });
  }
}

/** ELF `e_machine` of a file, or `undefined` when it is not ELF. */
export async function elfMachine(path: string): Promise<number | undefined> {
  using file = await Deno.open(path);
  const header = new Uint8Array(20);
  let read = 0;
  while (read < header.length) {
    const n = await file.read(header.subarray(read));
    if (n === null) return undefined;
    read += n;
  }
  if (header[0] !== 0x7f || header[1] !== 0x45 || header[2] !== 0x4c || header[3] !== 0x46) {
    return undefined;
  }
  return new DataView(header.buffer).getUint16(18, header[5] === 1);
}

async function fileContains(path: string, needle: string): Promise<boolean> {
  const pattern = new TextEncoder().encode(needle);
  using file = await Deno.open(path);
  const chunk = new Uint8Array(1 << 20);
  let carry = new Uint8Array(0);
  while (true) {
    const n = await file.read(chunk);
    if (n === null) return false;
    const data = new Uint8Array(carry.length + n);
    data.set(carry);
    data.set(chunk.subarray(0, n), carry.length);
    if (indexOf(data, pattern) >= 0) return true;
    carry = data.slice(Math.max(0, data.length - pattern.length + 1));
  }
}

function indexOf(haystack: Uint8Array, needle: Uint8Array): number {
  const first = needle[0];
  outer: for (
    let i = haystack.indexOf(first);
    i >= 0 && i <= haystack.length - needle.length;
    i = haystack.indexOf(first, i + 1)
  ) {
    for (let j = 1; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** Lower-case hex SHA-256 of a file. */
export async function sha256File(path: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function denoDirPath(): Promise<string> {
  const result = await run(Deno.execPath(), ["info", "--json"], { check: false });
  try {
    const dir = (JSON.parse(result.stdout) as { denoDir?: string }).denoDir;
    if (dir) return dir;
  } catch {
    // fall through
  }
  return Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME") ?? ""}/.cache/deno`;
}

interface RunResult {
  success: boolean;
  code: number;
  stdout: string;
  stderr: string;
}

async function run(
  cmd: string,
  args: string[],
  options: {
    cwd?: string;
    env?: Record<string, string>;
    clearEnv?: string[];
    signal?: AbortSignal;
    check?: boolean;
  } = {},
): Promise<RunResult> {
  let output: Deno.CommandOutput;
  try {
    const env = { ...Deno.env.toObject(), ...options.env };
    for (const name of options.clearEnv ?? []) {
      if (!(options.env && name in options.env)) delete env[name];
    }
    output = await new Deno.Command(cmd, {
      args,
      cwd: options.cwd,
      env,
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: options.signal ?? AbortSignal.timeout(60_000),
    }).output();
  } catch (err) {
    throw new ReleaseError(`Cannot run "${cmd}": ${errorText(err)}`, { cause: err });
  }
  const result = {
    success: output.success,
    code: output.code,
    stdout: new TextDecoder().decode(output.stdout),
    stderr: new TextDecoder().decode(output.stderr),
  };
  if (options.check !== false && !result.success) {
    throw new ReleaseError(
      `"${cmd} ${args.join(" ")}" exited ${result.code}: ${lastLines(result.stderr)}`,
    );
  }
  return result;
}

function lastLines(text: string, count = 5): string {
  // deno-lint-ignore no-control-regex
  const plain = text.replace(/\x1b\[[0-9;]*m/g, "");
  return plain.trim().split("\n").filter((l) =>
    l.trim() && !/^\s*\d+: /.test(l) && l.trim() !== "Stack backtrace:"
  )
    .slice(-count).join(" | ");
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

function errorText(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // fetch() says only "fetch failed"; the cause has the reason (DNS, connection refused, TLS).
  if (err.cause instanceof Error) {
    return `${err.message}: ${
      err.cause.message.replace(/^error sending request for url \([^)]*\): /, "")
    }`;
  }
  return err.message;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

if (import.meta.main) {
  try {
    await release(Deno.args);
  } catch (err) {
    const hint = err instanceof TeleportEmailError && err.hint ? `\nhint: ${err.hint}` : "";
    console.error(`release: ${errorText(err)}${hint}`);
    Deno.exitCode = 1;
  }
}
