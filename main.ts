/** Entry point of `teleport-email`: runs the CLI. The only place that calls `Deno.exit`. */
import { runCli } from "./src/cli.ts";

if (import.meta.main) {
  const code = await runCli(Deno.args);
  Deno.exit(code);
}
