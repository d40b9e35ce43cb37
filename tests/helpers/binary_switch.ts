/**
 * Re-runs a few CLI and end-to-end tests in a child `deno test` against another program under
 * test (`TELEPORT_EMAIL_BIN`): the launcher script in every run (tests/e2e_launcher_test.ts), a
 * compiled binary where a runtime exists (tests/release_test.ts).
 */

const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

/** The tests re-run through the launcher: one-shot commands, and a daemon started and stopped. */
export const SWITCH_FILTER =
  "/^(teleport-email version prints|teleport-email configure prints|e2e: SIGTERM and SIGINT)/";

/**
 * Runs `tests/cli_test.ts` and `tests/e2e_startup_test.ts` filtered by {@link SWITCH_FILTER} in a
 * child `deno test` with `TELEPORT_EMAIL_BIN=bin` and `env`; returns its exit code and output.
 */
export async function runSwitchedTests(
  bin: string,
  env: Record<string, string> = {},
): Promise<{ code: number; output: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "test",
      "--allow-all",
      "--no-check=remote",
      "--filter",
      SWITCH_FILTER,
      `${REPO}/tests/cli_test.ts`,
      `${REPO}/tests/e2e_startup_test.ts`,
    ],
    cwd: REPO,
    env: { NO_COLOR: "1", TELEPORT_EMAIL_BIN: bin, ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(300_000),
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, output: dec.decode(out.stdout) + dec.decode(out.stderr) };
}
