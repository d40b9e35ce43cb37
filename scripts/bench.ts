/**
 * `deno task bench [--requests N] [--reviewers K] [--mailer smtp|mailgun]`: end-to-end throughput
 * and memory of the real plugin process.
 *
 * Starts the same local environment as the demo (test Teleport over mTLS gRPC, a real SMTP server
 * with STARTTLS and AUTH, or the fake Mailgun API), runs `teleport-email start` as a child process,
 * creates N access requests at once (each with K suggested reviewers plus the `"*"` recipient),
 * waits for every new-request email, then approves them all and waits for every resolution email.
 * Prints emails per second for each phase, the latency from request creation to its last
 * new-request email (p50/p95/max), and the plugin's resident memory (current and peak, from
 * `/proc`). Figures only: nothing is asserted.
 * @module
 */
import { parseArgs } from "node:util";
import { E2eEnv } from "../tests/helpers/e2e_env.ts";

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    requests: { type: "string", default: "200" },
    reviewers: { type: "string", default: "2" },
    mailer: { type: "string", default: "smtp" },
    timeout: { type: "string", default: "300" },
  },
});
const requests = Number(flags.requests);
const reviewers = Number(flags.reviewers);
const mailer = flags.mailer === "mailgun" ? "mailgun" : "smtp";
const timeoutMs = Number(flags.timeout) * 1000;
if (!Number.isInteger(requests) || requests < 1 || !Number.isInteger(reviewers) || reviewers < 0) {
  console.error("--requests must be a positive integer and --reviewers a non-negative integer");
  Deno.exit(2);
}
const perRequest = reviewers + 1;

function memoryMiB(pid: number): { rss: number; peak: number } {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  const kib = (name: string) =>
    Number(status.match(new RegExp(`^${name}:\\s+(\\d+) kB`, "m"))?.[1]);
  return { rss: kib("VmRSS") / 1024, peak: kib("VmHWM") / 1024 };
}

/** CPU seconds (user + system) used so far by process `pid`, from `/proc/<pid>/stat`. */
function cpuSeconds(pid: number): number {
  const fields = Deno.readTextFileSync(`/proc/${pid}/stat`).split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ=100)
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

await using env = await E2eEnv.start({ mailer, severity: "info" });
const plugin = await env.startPlugin();
const idle = memoryMiB(plugin.pid);
console.log(
  `teleport-email bench: ${requests} requests x ${perRequest} recipients over ${mailer}, ` +
    `plugin pid ${plugin.pid}, idle RSS ${idle.rss.toFixed(1)} MiB`,
);

let peak = idle.peak;
const sampler = setInterval(() => {
  try {
    peak = Math.max(peak, memoryMiB(plugin.pid).peak);
  } catch {
    // The process has exited.
  }
}, 50);

const created = new Map<string, number>();
/** Phase 1: when the last new-request email of each request arrived (polled every 5 ms). */
const lastEmailAt = new Map<string, number>();
let seen = 0;

async function stampArrivals(total: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (seen < total) {
    if (Date.now() > deadline) throw new Error(`timed out: ${seen} of ${total} emails arrived`);
    const emails = env.emails;
    const now = performance.now();
    for (; seen < emails.length; seen++) {
      const id = emails[seen].subject.split("Role Request ")[1];
      if (id && seen < requests * perRequest) lastEmailAt.set(id, now);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}
const cpu0 = { plugin: cpuSeconds(plugin.pid), harness: cpuSeconds(Deno.pid) };
const t0 = performance.now();
const ids: string[] = [];
for (let i = 0; i < requests; i++) {
  const req = env.teleport.createAccessRequest({
    user: `user${i}@example.com`,
    roles: ["editor"],
    reason: `bench request ${i}`,
    suggestedReviewers: Array.from({ length: reviewers }, (_, k) => `reviewer${k}@example.com`),
  });
  created.set(req.id, performance.now());
  ids.push(req.id);
}
const phase1 = requests * perRequest;
await stampArrivals(phase1);
const t1 = performance.now();

for (const id of ids) env.teleport.setState(id, "APPROVED", "bench");
await stampArrivals(phase1 * 2);
const t2 = performance.now();
clearInterval(sampler);
const end = memoryMiB(plugin.pid);
const cpuPlugin = cpuSeconds(plugin.pid) - cpu0.plugin;
const cpuHarness = cpuSeconds(Deno.pid) - cpu0.harness;
peak = Math.max(peak, end.peak);
const code = await plugin.stop();

const latencies = ids.map((id) => lastEmailAt.get(id)! - created.get(id)!).sort((a, b) => a - b);
const rate = (n: number, ms: number) => (n / (ms / 1000)).toFixed(0);
console.log(
  `new requests: ${phase1} emails in ${(t1 - t0).toFixed(0)} ms (${rate(phase1, t1 - t0)}/s)`,
);
console.log(
  `resolutions:  ${phase1} emails in ${(t2 - t1).toFixed(0)} ms (${rate(phase1, t2 - t1)}/s)`,
);
console.log(
  `phase-1 completion per request: p50 ${percentile(latencies, 50).toFixed(0)} ms, ` +
    `p95 ${percentile(latencies, 95).toFixed(0)} ms, max ${latencies.at(-1)!.toFixed(0)} ms`,
);
console.log(
  `plugin memory: idle ${idle.rss.toFixed(1)} MiB, end ${end.rss.toFixed(1)} MiB, ` +
    `peak ${peak.toFixed(1)} MiB; exit code ${code}`,
);
console.log(
  `CPU: plugin ${cpuPlugin.toFixed(2)} s, harness (test Teleport + ${mailer} server) ` +
    `${cpuHarness.toFixed(2)} s, wall ${
      ((t2 - t0) / 1000).toFixed(2)
    } s on ${navigator.hardwareConcurrency} cores`,
);
