/**
 * Entry point of the release binary (`deno compile`, `scripts/release.ts`): runs the CLI like
 * `main.ts`, with `src/start_modules.ts` imported statically. `main.ts` imports it on demand with
 * a computed specifier, which `deno compile` cannot see; and `deno compile` of Deno 2.9.6 crashes
 * with a stack overflow on a graph where these modules are imported dynamically
 * (denoland/deno#36746 reports the same crash), so the binary's graph has no dynamic import.
 */
import { runCli } from "./src/cli.ts";
import * as startModules from "./src/start_modules.ts";

if (import.meta.main) {
  const code = await runCli(Deno.args, undefined, { modules: () => Promise.resolve(startModules) });
  Deno.exit(code);
}
