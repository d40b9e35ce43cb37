/**
 * The measurements of `deno task bench` (see `scripts/bench.ts`), one function per row group.
 * Each runs one checkout of the plugin (a {@link PluginUnderTest}) against the environment of
 * the current tree (`tests/helpers/e2e_env.ts`: test Teleport over mTLS gRPC, an SMTP server with
 * STARTTLS and AUTH, on loopback) and returns figures only.
 * @module
 */
import { join } from "node:path";
import { parse } from "smol-toml";
import { E2eEnv } from "../tests/helpers/e2e_env.ts";
import type { PluginProcess } from "../tests/helpers/plugin_process.ts";
import { DAEMON_PERMISSIONS } from "../src/permissions.ts";

const HERE = new URL(".", import.meta.url).pathname;

/** One checkout of the plugin: its root and how `deno task start` runs it there. */
export interface PluginUnderTest {
  /** Short name for the table: the directory's name and its commit. */
  label: string;
  dir: string;
  commit: string;
  /** `deno` arguments before the CLI's own: `run <flags> <dir>/main.ts`. */
  denoArgs: string[];
}

/**
 * Describes the checkout at `dir`: its commit, and the flags of its `deno task start` (the
 * tokens between `run` and `main.ts`; the daemon's permissions when the task cannot be read),
 * with `v8Flags`, when given, in place of its own `--v8-flags`.
 */
export async function describePlugin(dir: string, v8Flags?: string): Promise<PluginUnderTest> {
  const root = Deno.realPathSync(dir);
  let flags: string[] = [...DAEMON_PERMISSIONS];
  try {
    // A string, or (since the task installs the packages first) an object with its command.
    const task: string | { command: string } =
      JSON.parse(await Deno.readTextFile(join(root, "deno.json"))).tasks.start;
    const words = (typeof task === "string" ? task : task.command).trim().split(/\s+/);
    const at = words.indexOf("main.ts");
    if (words[1] === "run" && at > 1) flags = words.slice(2, at);
  } catch {
    // No readable start task: the daemon's permissions.
  }
  if (v8Flags !== undefined) {
    flags = flags.filter((f) => !f.startsWith("--v8-flags"));
    if (v8Flags !== "") flags.push(`--v8-flags=${v8Flags}`);
  }
  const git = await new Deno.Command("git", {
    args: ["-C", root, "log", "-1", "--format=%h"],
    stdout: "piped",
    stderr: "null",
  }).output().catch(() => undefined);
  const commit = git?.success ? new TextDecoder().decode(git.stdout).trim() : "unknown";
  const name = root.split("/").pop() ?? root;
  return {
    label: `${name}@${commit}`,
    dir: root,
    commit,
    denoArgs: ["run", ...flags, "--quiet", join(root, "main.ts")],
  };
}

/** Resident and peak resident memory of `pid` in MiB, from `/proc/<pid>/status`. */
export function memoryMiB(pid: number): { rss: number; peak: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kib = (name: string) =>
    Number(status.match(new RegExp(`^${name}:\\s+(\\d+) kB`, "m"))?.[1]);
  return { rss: kib("VmRSS") / 1024, peak: kib("VmHWM") / 1024 };
}

/** CPU seconds (user + system) used so far by `pid`, from `/proc/<pid>/stat` (USER_HZ = 100). */
export function cpuSeconds(pid: number): number {
  const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The `p`th percentile (0–100) of ascending `sorted`. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function median(values: number[]): number {
  return percentile([...values].sort((a, b) => a - b), 50);
}

async function timeCommand(args: string[], cwd: string): Promise<number> {
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  const ms = performance.now() - t0;
  if (!out.success) {
    throw new Error(`deno ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return ms;
}

/** Start-up: `teleport-email version` and an empty module, alternately, `runs` times each. */
export async function measureStartup(plugin: PluginUnderTest, runs: number) {
  const empty = ["run", "--quiet", join(HERE, "bench_empty.ts")];
  const version = [...plugin.denoArgs, "version"];
  // One warm-up of each (module cache, page cache), not counted.
  await timeCommand(empty, plugin.dir);
  await timeCommand(version, plugin.dir);
  const emptyMs: number[] = [];
  const versionMs: number[] = [];
  for (let i = 0; i < runs; i++) {
    emptyMs.push(await timeCommand(empty, plugin.dir));
    versionMs.push(await timeCommand(version, plugin.dir));
  }
  const e = median(emptyMs);
  const v = median(versionMs);
  return { versionMs: v, emptyMs: e, ratio: v / e, runs };
}

/** SMTP settings of an environment's configuration, for the raw blast. */
async function smtpSettings(env: E2eEnv) {
  const cfg = parse(await Deno.readTextFile(env.configPath)) as {
    smtp: { host: string; port: number; username: string; password_file: string; ca_file: string };
  };
  return cfg.smtp;
}

/** The raw pooled nodemailer blast of `count` messages to the environment's SMTP server. */
async function blast(env: E2eEnv, count: number, perRequest: number) {
  const s = await smtpSettings(env);
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      join(HERE, "bench_blast.ts"),
      ...["--host", s.host, "--port", String(s.port), "--ca", s.ca_file, "--user", s.username],
      ...["--password-file", s.password_file, "--count", String(count)],
      ...["--recipients", String(perRequest)],
    ],
    cwd: join(HERE, ".."),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`bench_blast.ts failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return JSON.parse(new TextDecoder().decode(out.stdout)) as {
    messages: number;
    failed: number;
    seconds: number;
    msgsPerSecond: number;
    cpuPerMsgMs: number;
  };
}

/** Waits until the SMTP server of `env` holds `n` messages (event-driven), within `timeoutMs`. */
async function emails(env: E2eEnv, n: number, timeoutMs: number): Promise<void> {
  await env.smtp!.waitFor(n, { timeoutMs });
}

function createRequest(env: E2eEnv, i: number, reviewers: number, tag: string) {
  return env.teleport.createAccessRequest({
    user: `${tag}-user${i}@example.com`,
    roles: ["editor"],
    reason: `bench ${tag} ${i}`,
    suggestedReviewers: Array.from({ length: reviewers }, (_, k) => `reviewer${k}@example.com`),
  });
}

/** Options of {@link measureDaemon}. */
export interface DaemonOptions {
  /** Requests of the burst and of the pending-at-start run. */
  requests: number;
  /** Suggested reviewers per request; each request has `reviewers + 1` recipients. */
  reviewers: number;
  /** Requests created one at a time for the latency distribution. */
  latencySamples: number;
  /** Idle time after ready before reading the resident memory, in ms (3000). */
  idleMs: number;
  timeoutMs: number;
  log?: (line: string) => void;
}

/**
 * The daemon rows, in one environment: idle memory (ready + `idleMs`), the latency of requests
 * created one at a time, the raw blast of the burst's message count, then the burst itself
 * (all requests at once): duration, peak memory, CPU.
 */
export async function measureDaemon(plugin: PluginUnderTest, o: DaemonOptions) {
  const perRequest = o.reviewers + 1;
  await using env = await E2eEnv.start({ severity: "info" });
  // A warm-up start, not measured: a checkout's first start compiles its daemon modules into
  // Deno's cache (`version` does not load them), which left ~12 MiB more resident at idle.
  await (await env.startPlugin({ denoArgs: plugin.denoArgs, cwd: plugin.dir })).stop();
  const proc = await env.startPlugin({ denoArgs: plugin.denoArgs, cwd: plugin.dir });
  await new Promise((r) => setTimeout(r, o.idleMs));
  const idle = memoryMiB(proc.pid);
  o.log?.(`  idle RSS ${idle.rss.toFixed(1)} MiB`);

  const latencies: number[] = [];
  for (let i = 0; i < o.latencySamples; i++) {
    const have = env.smtp!.messages.length;
    const t0 = performance.now();
    createRequest(env, i, o.reviewers, "latency");
    await emails(env, have + perRequest, o.timeoutMs);
    latencies.push(performance.now() - t0);
  }
  latencies.sort((a, b) => a - b);
  o.log?.(`  latency p50 ${percentile(latencies, 50).toFixed(1)} ms`);

  const total = o.requests * perRequest;
  const raw = await blast(env, total, perRequest);
  o.log?.(`  raw blast ${raw.msgsPerSecond.toFixed(0)} msgs/s`);
  const base = env.smtp!.messages.length;
  const cpu0 = cpuSeconds(proc.pid);
  const t0 = performance.now();
  for (let i = 0; i < o.requests; i++) createRequest(env, i, o.reviewers, "burst");
  await emails(env, base + total, o.timeoutMs);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(proc.pid) - cpu0;
  const mem = memoryMiB(proc.pid);
  const code = await proc.stop();
  const burst = {
    emails: total,
    seconds,
    msgsPerSecond: total / seconds,
    peakRssMiB: mem.peak,
    endRssMiB: mem.rss,
    cpuSeconds: cpu,
    cpuPerEmailMs: (cpu * 1000) / total,
    exitCode: code,
  };
  o.log?.(`  burst ${burst.msgsPerSecond.toFixed(0)} msgs/s, peak ${mem.peak.toFixed(1)} MiB`);
  return { idle, latencies, raw, burst };
}

/**
 * `requests` requests created while the plugin is down, then the plugin started: seconds from
 * spawning the process to the last email accepted, seconds to `Plugin is ready`, peak memory.
 */
export async function measurePendingAtStart(plugin: PluginUnderTest, o: DaemonOptions) {
  const perRequest = o.reviewers + 1;
  await using env = await E2eEnv.start({ severity: "info" });
  for (let i = 0; i < o.requests; i++) createRequest(env, i, o.reviewers, "pending");
  const t0 = performance.now();
  const proc: PluginProcess = await env.startPlugin({
    denoArgs: plugin.denoArgs,
    cwd: plugin.dir,
    waitReady: false,
  });
  let readySeconds = NaN;
  proc.ready(o.timeoutMs).then(() => (readySeconds = (performance.now() - t0) / 1000), () => {});
  await emails(env, o.requests * perRequest, o.timeoutMs);
  const seconds = (performance.now() - t0) / 1000;
  const mem = memoryMiB(proc.pid);
  await proc.stop();
  o.log?.(`  pending at start: ${seconds.toFixed(2)} s, peak ${mem.peak.toFixed(1)} MiB`);
  return { emails: o.requests * perRequest, seconds, readySeconds, peakRssMiB: mem.peak };
}
