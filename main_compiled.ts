/**
 * Entry point of the release binary (`deno compile`, `scripts/release.ts`): runs the CLI like
 * `main.ts`, and imports `src/start_modules.ts` on demand like it, but with a literal specifier,
 * which `deno compile` follows to embed the daemon (`main.ts` computes its specifier so that
 * `deno run` does not read the daemon's module graph before `version`). `scripts/release.ts`
 * compiles this file (`COMPILE_ENTRY` in `src/runtime_flags.ts`); its payload check uses this
 * graph.
 */
import { runCli } from "./src/cli.ts";

if (import.meta.main) {
  const code = await runCli(Deno.args, undefined, {
    modules: () => import("./src/start_modules.ts"),
  });
  Deno.exit(code);
}
