/** Entry point of `teleport-email`: runs the CLI. The only place that calls `Deno.exit`. */
import { runCli, type StartModules } from "./src/cli.ts";

/**
 * `src/start_modules.ts`, imported when `start` needs it. The specifier is computed, not a
 * literal: `deno run` loads (resolves and reads) the whole graph of a literal dynamic import
 * before the program starts, which made `version` take about 4× the start-up of an empty module
 * instead of 1.5×. The release binary is compiled from `main_compiled.ts` instead.
 */
function startModules(): Promise<StartModules> {
  return import(new URL("./src/start_modules.ts", import.meta.url).href);
}

if (import.meta.main) {
  const code = await runCli(Deno.args, undefined, { modules: startModules });
  Deno.exit(code);
}
