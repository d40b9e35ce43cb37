/**
 * Black-box CLI helpers. Running the program is {@link runPlugin} in `plugin_process.ts` (the one
 * launcher, which honours `TELEPORT_EMAIL_BIN`); re-exported here under its older name.
 */
export { type CliResult, MAIN_TS, runPlugin as runTeleportEmail } from "./plugin_process.ts";
export type { RunOptions } from "./plugin_process.ts";

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
