/**
 * Smoke test of `deno task bench --quick`: it runs end to end and its JSON has every row of the
 * table for the measured checkout, and the SVG is written. The figures are not checked (this
 * machine's timings mean nothing to a test).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type BenchReport, ROWS } from "./bench.ts";
import { describePlugin } from "./bench_rows.ts";

const BENCH = new URL("./bench.ts", import.meta.url).pathname;

Deno.test("bench --quick writes every row as JSON and the latency SVG", async () => {
  const dir = await Deno.makeTempDir({ prefix: "teleport_email_bench_" });
  try {
    const json = join(dir, "bench.json");
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", BENCH, "--quick", "--json", json],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(240_000),
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, stderr);
    const report = JSON.parse(await Deno.readTextFile(json)) as BenchReport;
    assert.equal(report.columns.length, 1);
    const [column] = report.columns;
    for (const row of ROWS) assert.ok(row.id in column.rows, `row ${row.id} missing`);
    assert.deepEqual(Object.keys(column.rows).sort(), ROWS.map((r) => r.id).sort());
    assert.ok(column.latenciesMs.length > 0);
    const stdout = new TextDecoder().decode(out.stdout);
    for (const row of ROWS) assert.ok(stdout.includes(`| ${row.label} |`), row.label);
    const svg = await Deno.readTextFile(join(dir, "bench.svg"));
    assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.match(svg, /<\/svg>\n$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("describePlugin reads the start task in its string and its object form", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bench_describe_" });
  try {
    const flags = "--allow-net --no-code-cache --node-modules-dir=manual";
    const forms = [
      `deno run ${flags} main.ts start`,
      { command: `deno run ${flags} main.ts start`, dependencies: ["install"] },
    ];
    for (const start of forms) {
      await Deno.writeTextFile(join(dir, "deno.json"), JSON.stringify({ tasks: { start } }));
      const plugin = await describePlugin(dir);
      assert.deepEqual(plugin.denoArgs, [
        "run",
        ...flags.split(" "),
        "--quiet",
        join(dir, "main.ts"),
      ]);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
