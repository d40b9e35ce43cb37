/**
 * `deno task bench`: the figures of issue 10 (start-up, memory, throughput, CPU, latency), for
 * one or more checkouts of the plugin side by side, in one run. Figures only: nothing is asserted.
 *
 *   deno task bench [--plugin-dir DIR]... [--json FILE] [--svg FILE] [--quick]
 *                   [--requests 1000] [--reviewers 2] [--latency-samples 200] [--runs 20]
 *                   [--v8-flags FLAGS] [--profile DIR]
 *
 * The harness comes from this tree: the test Teleport server (gRPC over mTLS), a real SMTP server
 * with STARTTLS and AUTH (`tests/helpers/`), the raw nodemailer blast (`bench_blast.ts`) and an
 * empty module (`bench_empty.ts`). The plugin is each `--plugin-dir`'s `main.ts` (default: this
 * tree), run the way that checkout's `deno task start` runs it (its permissions and V8 flags;
 * `--v8-flags` replaces the V8 flags, `--v8-flags ""` removes them), with its own `deno.json`
 * and `node_modules` (run `deno install` there first). So "before" and "after" are:
 *
 *   git worktree add /tmp/before <commit> && (cd /tmp/before && deno install --frozen)
 *   deno task bench --plugin-dir /tmp/before --plugin-dir . --json bench.json
 *
 * Prints a table (one column per checkout), writes every figure as JSON (`--json`), and draws
 * the latency distribution as SVG (`--svg`, default: the JSON file with `.svg`, else
 * `bench-latency.svg`). `--profile DIR` runs the daemon with `--cpu-prof` and writes its profiles
 * under DIR (`<label>/daemon`, `<label>/pending`; read them with `scripts/bench_profile.ts`); the
 * profiler's overhead skews the figures. `--quick` is a smoke test (few requests, few runs): its figures mean
 * nothing. What each row measures: {@link ROWS} and the README's "Performance" section.
 * @module
 */
import { parseArgs } from "node:util";
import { dirname, join } from "node:path";
import {
  describePlugin,
  measureDaemon,
  measurePendingAtStart,
  measureStartup,
  percentile,
  type PluginUnderTest,
} from "./bench_rows.ts";
import { latencySvg } from "./bench_svg.ts";

/** One row of the table: its id in the JSON, what it is, and the issue's goal. */
export interface RowSpec {
  id: string;
  label: string;
  goal: string;
}

/** The rows, in table order. The JSON has each of them for each checkout. */
export const ROWS: readonly RowSpec[] = [
  { id: "startup_ratio", label: "`version` wall time ÷ empty module", goal: "≤ 2.5×" },
  { id: "version_ms", label: "`teleport-email version` wall time, ms (median)", goal: "" },
  { id: "empty_module_ms", label: "`deno run` of an empty module, ms (median)", goal: "" },
  { id: "idle_rss_mib", label: "resident memory idle (ready + 3 s), MiB", goal: "≤ 72" },
  { id: "burst_peak_rss_mib", label: "peak resident memory (VmHWM), burst, MiB", goal: "≤ 150" },
  { id: "burst_msgs_per_s", label: "burst throughput, emails/s", goal: "" },
  { id: "blast_msgs_per_s", label: "raw pooled nodemailer blast, same server, msgs/s", goal: "" },
  { id: "throughput_ratio", label: "burst throughput ÷ raw blast", goal: "≥ 0.6" },
  { id: "cpu_per_email_ms", label: "plugin CPU per email in the burst, ms", goal: "≤ 1.0" },
  { id: "blast_cpu_per_msg_ms", label: "raw blast CPU per message, ms", goal: "" },
  { id: "latency_p50_ms", label: "latency one at a time, p50, ms", goal: "≤ 8" },
  { id: "latency_p95_ms", label: "latency one at a time, p95, ms", goal: "" },
  { id: "pending_start_s", label: "pending at start → all emails accepted, s", goal: "≤ 10" },
  { id: "pending_ready_s", label: "pending at start → `Plugin is ready`, s", goal: "" },
  {
    id: "pending_peak_rss_mib",
    label: "pending at start, peak resident memory, MiB",
    goal: "≤ 150",
  },
];

/** The JSON written by `--json`. */
export interface BenchReport {
  machine: Record<string, unknown>;
  options: Record<string, unknown>;
  columns: {
    label: string;
    dir: string;
    commit: string;
    denoArgs: string[];
    rows: Record<string, number>;
    latenciesMs: number[];
  }[];
}

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    "plugin-dir": { type: "string", multiple: true },
    json: { type: "string" },
    svg: { type: "string" },
    quick: { type: "boolean", default: false },
    requests: { type: "string" },
    reviewers: { type: "string", default: "2" },
    "latency-samples": { type: "string" },
    runs: { type: "string" },
    "v8-flags": { type: "string" },
    profile: { type: "string" },
    timeout: { type: "string", default: "600" },
  },
});

function intFlag(name: string, value: string | undefined, fallback: number, min = 1): number {
  const n = value === undefined ? fallback : Number(value);
  if (!Number.isInteger(n) || n < min) {
    console.error(`--${name} must be an integer ≥ ${min}, got "${value}"`);
    Deno.exit(2);
  }
  return n;
}

const quick = flags.quick;
const opts = {
  requests: intFlag("requests", flags.requests, quick ? 20 : 1000),
  reviewers: intFlag("reviewers", flags.reviewers, 2, 0),
  latencySamples: intFlag("latency-samples", flags["latency-samples"], quick ? 5 : 200),
  runs: intFlag("runs", flags.runs, quick ? 2 : 20),
  idleMs: quick ? 500 : 3000,
  timeoutMs: intFlag("timeout", flags.timeout, 600) * 1000,
};
const repoRoot = join(dirname(new URL(import.meta.url).pathname), "..");
const dirs = flags["plugin-dir"] ?? [repoRoot];
const log = (line: string) => console.error(line);

async function machine(): Promise<Record<string, unknown>> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  return {
    cpu: /model name\s*:\s*(.*)/.exec(cpuinfo)?.[1] ?? "unknown",
    cores: navigator.hardwareConcurrency,
    memoryMiB: Math.round(Deno.systemMemoryInfo().total / 1024 / 1024),
    os: `${Deno.build.os} ${Deno.osRelease()}`,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    loadavg: Deno.loadavg(),
    date: new Date().toISOString(),
  };
}

/** `plugin` run with `--cpu-prof` into `<--profile>/<label>/<name>` (as is without --profile). */
function profiled(plugin: PluginUnderTest, name: string): PluginUnderTest {
  if (flags.profile === undefined) return plugin;
  const dir = join(flags.profile, plugin.label.replace(/[^A-Za-z0-9._-]/g, "_"), name);
  const [run, ...rest] = plugin.denoArgs;
  return { ...plugin, denoArgs: [run, "--cpu-prof", `--cpu-prof-dir=${dir}`, ...rest] };
}

async function measure(plugin: PluginUnderTest): Promise<BenchReport["columns"][number]> {
  log(`${plugin.label}: deno ${plugin.denoArgs.join(" ")}`);
  const startup = await measureStartup(plugin, opts.runs);
  log(`  version ${startup.versionMs.toFixed(1)} ms ÷ empty ${startup.emptyMs.toFixed(1)} ms`);
  const d = await measureDaemon(profiled(plugin, "daemon"), { ...opts, log });
  const pending = await measurePendingAtStart(profiled(plugin, "pending"), { ...opts, log });
  const rows: Record<string, number> = {
    startup_ratio: startup.ratio,
    version_ms: startup.versionMs,
    empty_module_ms: startup.emptyMs,
    idle_rss_mib: d.idle.rss,
    burst_peak_rss_mib: d.burst.peakRssMiB,
    burst_msgs_per_s: d.burst.msgsPerSecond,
    blast_msgs_per_s: d.raw.msgsPerSecond,
    throughput_ratio: d.burst.msgsPerSecond / d.raw.msgsPerSecond,
    cpu_per_email_ms: d.burst.cpuPerEmailMs,
    blast_cpu_per_msg_ms: d.raw.cpuPerMsgMs,
    latency_p50_ms: percentile(d.latencies, 50),
    latency_p95_ms: percentile(d.latencies, 95),
    pending_start_s: pending.seconds,
    pending_ready_s: pending.readySeconds,
    pending_peak_rss_mib: pending.peakRssMiB,
  };
  return { ...plugin, rows, latenciesMs: d.latencies };
}

function format(id: string, v: number): string {
  if (!Number.isFinite(v)) return "n/a";
  if (id.endsWith("ratio")) return id === "startup_ratio" ? `${v.toFixed(1)}×` : v.toFixed(2);
  if (id.endsWith("_ms") && v < 10) return v.toFixed(2);
  if (id.endsWith("_s") && !id.endsWith("_per_s")) return v.toFixed(2);
  return v.toFixed(v < 100 ? 1 : 0);
}

/** The report as a Markdown table: one row per {@link ROWS} entry, one column per checkout. */
export function table(report: BenchReport): string {
  const head = ["figure", "goal", ...report.columns.map((c) => c.label)];
  const lines = [`| ${head.join(" | ")} |`, `| ${head.map(() => "---").join(" | ")} |`];
  for (const row of ROWS) {
    const cells = report.columns.map((c) => format(row.id, c.rows[row.id]));
    lines.push(`| ${[row.label, row.goal, ...cells].join(" | ")} |`);
  }
  return lines.join("\n");
}

if (import.meta.main) {
  const report: BenchReport = {
    machine: await machine(),
    options: { ...opts, quick, v8Flags: flags["v8-flags"] ?? null },
    columns: [],
  };
  const plugins = [];
  for (const dir of dirs) plugins.push(await describePlugin(dir, flags["v8-flags"]));
  for (const plugin of plugins) report.columns.push(await measure(plugin));
  report.machine.loadavgAfter = Deno.loadavg();
  const m = report.machine;
  console.log(
    `teleport-email bench: ${opts.requests} requests × ${opts.reviewers + 1} recipients, ` +
      `${m.cores} cores (${m.cpu}), deno ${m.deno}, load ${
        (m.loadavg as number[]).map((l) => l.toFixed(2)).join(" ")
      }${quick ? " (--quick: figures mean nothing)" : ""}\n`,
  );
  console.log(table(report));
  if (flags.json) await Deno.writeTextFile(flags.json, JSON.stringify(report, null, 2) + "\n");
  const svgPath = flags.svg ??
    (flags.json ? flags.json.replace(/(\.json)?$/, ".svg") : "bench-latency.svg");
  await Deno.writeTextFile(
    svgPath,
    latencySvg(
      report.columns.map((c) => ({ label: c.label, latenciesMs: c.latenciesMs })),
      `teleport-email: latency of ${opts.latencySamples} requests one at a time ` +
        `(${opts.reviewers + 1} recipients each)`,
    ),
  );
  console.log(`\nlatency distribution: ${svgPath}${flags.json ? `, figures: ${flags.json}` : ""}`);
}
