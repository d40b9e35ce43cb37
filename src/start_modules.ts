/**
 * What `start` and `check` need beyond the CLI's leaves, in one module that the entry points hand
 * to `runCli` (`StartModules` in `cli.ts`): `main.ts` imports it on demand with a computed
 * specifier, so `deno run main.ts version` (also `configure`, `help`) neither evaluates nor even
 * reads the daemon's module graph; `main_compiled.ts` (the release binary) imports it on demand with a
 * literal specifier, because `deno compile` does not follow a computed one.
 * @module
 */
export { loadConfig } from "./config/load.ts";
export { getLogger, resetLogging, setupLogging } from "./log.ts";
export { runApp } from "./app.ts";
export { runCheck } from "./check/run.ts";

/**
 * The metrics (`npm:prom-client`, which also loads `@opentelemetry/api`: about 90 modules and
 * 1.5 MiB of idle resident memory), loaded only when `start --diag-addr` serves them. A literal
 * specifier, so that `deno compile` embeds them.
 */
export function loadMetrics(): Promise<typeof import("./diag/metrics.ts")> {
  return import("./diag/metrics.ts");
}
