/**
 * Runs the real `teleport-email` CLI (`deno run --allow-all main.ts ...`) as a child process, for
 * black-box tests.
 */
import { fileURLToPath } from "node:url";

/** Absolute path of the repository's `main.ts`. */
export const MAIN_TS: string = fileURLToPath(new URL("../../main.ts", import.meta.url));

/** What a finished child process produced. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@link runTeleportEmail}. */
export interface RunOptions {
  cwd?: string;
  /** Kill the child after this long (default 60 s). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** Runs `teleport-email <args>` to completion and returns its exit code and output. */
export async function runTeleportEmail(args: string[], opts: RunOptions = {}): Promise<CliResult> {
  const timeout = AbortSignal.timeout(opts.timeoutMs ?? 60_000);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", MAIN_TS, ...args],
    cwd: opts.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
    signal,
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Runs `fn` over `items` with at most `limit` at a time (the machine has few cores). */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
