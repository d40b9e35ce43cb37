/**
 * What `start` and `check` need beyond the CLI's leaves, gathered in one module that the entry points hand
 * to `runCli` ({@link StartModules} in `cli.ts`): `main.ts` imports it on demand with a computed
 * specifier, so `deno run main.ts version` (also `configure`, `help`) neither evaluates nor even
 * loads the daemon's module graph; `main_compiled.ts` (the release binary) imports it statically,
 * because `deno compile` of Deno 2.9.6 crashes with a stack overflow on a graph with dynamic
 * imports of these modules (denoland/deno#36746 reports the same crash).
 * @module
 */
export { loadConfig } from "./config/load.ts";
export { getLogger, resetLogging, setupLogging } from "./log.ts";
export { runApp } from "./app.ts";
export { runCheck } from "./check/run.ts";
export { PromMetrics } from "./diag/metrics.ts";
