/**
 * Summarises a V8 CPU profile (`.cpuprofile`, from `deno run --cpu-prof`, e.g. written by
 * `deno task bench --profile DIR`): self time by function and by where the code lives (an npm
 * package, a file of ours, the runtime), heaviest first.
 *
 *   deno run -A scripts/bench_profile.ts FILE.cpuprofile [--top 25] [--per-email N]
 *
 * `--per-email N` also prints each figure divided by N emails (µs per email).
 * @module
 */
import { parseArgs } from "node:util";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** Where a function's code lives: an npm package, a file of this repository, or the runtime. */
export function placeOf(url: string): string {
  if (url === "") return "(runtime, native, GC, idle)";
  const npm = /node_modules\/(?:\.deno\/[^/]+\/node_modules\/)?((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (npm) return `npm:${npm[1]}`;
  const ours = /\/((?:src|scripts|tests)\/.*)$/.exec(url);
  if (ours) return ours[1];
  if (url.startsWith("ext:") || url.startsWith("node:")) {
    return url.split("/").slice(0, 2).join("/");
  }
  return url;
}

/** Self time in ms by function (`name url:line`) and by place, each sorted heaviest first. */
export function summarise(profile: CpuProfile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => {
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  const fns = new Map<string, number>();
  const places = new Map<string, number>();
  let totalUs = 0;
  for (const [id, us] of selfUs) {
    const f = byId.get(id)!.callFrame;
    const name = f.functionName || "(anonymous)";
    if (name === "(idle)" || name === "(program)") continue;
    totalUs += us;
    const key = f.url ? `${name} ${placeOf(f.url)}:${f.lineNumber + 1}` : name;
    fns.set(key, (fns.get(key) ?? 0) + us);
    const place = placeOf(f.url);
    places.set(place, (places.get(place) ?? 0) + us);
  }
  const sorted = (m: Map<string, number>) =>
    [...m].map(([k, us]) => ({ name: k, ms: us / 1000 })).sort((a, b) => b.ms - a.ms);
  return { totalMs: totalUs / 1000, functions: sorted(fns), places: sorted(places) };
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: { top: { type: "string", default: "25" }, "per-email": { type: "string" } },
  });
  const top = Number(values.top);
  const perEmail = values["per-email"] ? Number(values["per-email"]) : undefined;
  for (const file of positionals) {
    const s = summarise(JSON.parse(await Deno.readTextFile(file)) as CpuProfile);
    const fmt = (ms: number) =>
      `${ms.toFixed(1).padStart(9)} ms ${(100 * ms / s.totalMs).toFixed(1).padStart(5)}%` +
      (perEmail ? ` ${(1000 * ms / perEmail).toFixed(1).padStart(7)} µs/email` : "");
    console.log(`${file}: ${s.totalMs.toFixed(0)} ms busy (idle and "(program)" left out)`);
    console.log("\nby place:");
    for (const p of s.places.slice(0, top)) console.log(`${fmt(p.ms)}  ${p.name}`);
    console.log("\nby function (self time):");
    for (const f of s.functions.slice(0, top)) console.log(`${fmt(f.ms)}  ${f.name}`);
  }
}
