/**
 * Compare-and-swap updates of an access request's plugin data, as the Go plugin does them
 * (`integrations/access/email/app.go` `modifyPluginData`): read, compute, write with `Expect` =
 * what was read, retry from the read on `compare_failed`, up to 5 attempts in total.
 *
 * `Expect` is the exact stored map as read (the Go plugin's 7 keys, "" when absent, plus every
 * other stored key, plus any `expectKeys` the caller manages), not a re-encoding of the decoded
 * record: malformed or extended data then still compares equal, and a key that must stay absent
 * (our `email_delivery` lock) is guarded too.
 */
import { withRetry } from "../async.ts";
import { TeleportError } from "../errors.ts";
import type { TeleportClient } from "../teleport/client.ts";
import type { PluginDataMap } from "../teleport/types.ts";
import { expectedPluginData } from "./plugin_data.ts";

/** Options of the CAS helpers. */
export interface CasOptions {
  signal?: AbortSignal;
  /** Attempts in total, counting the first; default 5 (Go's value). */
  attempts?: number;
  /** Extra keys to guard in `Expect` even when absent (compared as ""). */
  expectKeys?: readonly string[];
  /**
   * What the caller believes is stored (e.g. its own last write). The first attempt uses it
   * instead of reading, saving a round trip; a compare failure falls back to reading.
   * `null` = no belief (read first).
   */
  initial?: PluginDataMap | null;
  /**
   * The first attempt assumes nothing is stored (a request seen for the first time), saving the
   * read; the write then expects every key absent, so a wrong guess costs one compare failure,
   * then the stored value is read. Ignored when `initial` is given.
   */
  assumeAbsent?: boolean;
}

/** What a raw CAS update did. */
export interface CasMapResult {
  /** The stored map as read on the last attempt (undefined when absent). */
  old: PluginDataMap | undefined;
  /** The stored map after the update (equal to `old` when nothing was written). */
  new: PluginDataMap | undefined;
  written: boolean;
}

const DEFAULT_ATTEMPTS = 5;

function isCompareFailed(err: unknown): boolean {
  return err instanceof TeleportError && err.kind === "compare_failed";
}

/**
 * Read-modify-write of the raw plugin data map. `modify` gets the stored map (undefined when
 * absent) and returns the keys to `Set` ("" deletes a key), or undefined to write nothing.
 * `modify` may run several times and must be pure. Throws the last `compare_failed`
 * {@link TeleportError} after `attempts` attempts (with a small jittered backoff between them,
 * so competing replicas do not collide again at once); any other error at once.
 */
export async function casPluginDataMap(
  client: TeleportClient,
  requestId: string,
  plugin: string,
  modify: (current: PluginDataMap | undefined) => PluginDataMap | undefined,
  opts: CasOptions = {},
): Promise<CasMapResult> {
  const { signal } = opts;
  return await withRetry(async (attempt) => {
    signal?.throwIfAborted();
    const believed = opts.initial !== undefined && opts.initial !== null;
    const current = attempt === 1 && believed
      ? opts.initial!
      : attempt === 1 && opts.assumeAbsent
      ? undefined
      : await client.getPluginData(requestId, plugin, { signal });
    const set = modify(current);
    if (set === undefined) return { old: current, new: current, written: false };
    const expect = expectedPluginData(current);
    for (const key of opts.expectKeys ?? []) expect[key] = current?.[key] ?? "";
    await client.updatePluginData(requestId, plugin, set, expect, { signal });
    const next: PluginDataMap = { ...current };
    for (const [key, value] of Object.entries(set)) {
      if (value === "") delete next[key];
      else next[key] = value;
    }
    return { old: current, new: Object.keys(next).length === 0 ? undefined : next, written: true };
  }, {
    signal,
    isRetryable: isCompareFailed,
    maxAttempts: Math.max(1, opts.attempts ?? DEFAULT_ATTEMPTS),
    baseMs: 5,
    capMs: 100,
  });
}
