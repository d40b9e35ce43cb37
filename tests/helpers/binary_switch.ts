/**
 * Re-runs a few CLI and end-to-end tests in a child `deno test` against another program under
 * test (`TELEPORT_EMAIL_BIN`): the launcher script in every run (tests/binary_switch_test.ts), a
 * compiled binary where a runtime exists (tests/release_test.ts).
 */

const REPO = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

/**
 * The tests re-run: one-shot commands, daemons started and stopped by signals, the OSS scenarios
 * over SMTP, and the SSH reverse tunnel (the only user of ssh2).
 */
export const SWITCH_FILTER = "/^(teleport-email version prints|teleport-email configure prints|" +
  "e2e: SIGTERM and SIGINT|e2e smtp: OSS suite|e2e: SSH reverse tunnel)/";

/** How many tests {@link SWITCH_FILTER} selects. */
export const SWITCH_COUNT = 5;

/**
 * Runs the CLI, start-up, scenario and connection test files filtered by {@link SWITCH_FILTER}
 * in a child `deno test` with `TELEPORT_EMAIL_BIN=bin` and `env`; returns its exit code and
 * output.
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
      ...["cli", "e2e_startup", "e2e_scenarios", "e2e_connection"].map((f) =>
        `${REPO}/tests/${f}_test.ts`
      ),
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
