/**
 * The watermark: since when the plugin is responsible for requests, which decides whether a
 * request first seen already resolved (created and resolved while the plugin, or its watch
 * stream, was down) is notified (see "Requests first seen resolved" in `plan.ts`).
 */
import type { PluginDataMap } from "../teleport/types.ts";
import { decodePluginData } from "./plugin_data.ts";

/** Default margin subtracted from the {@link Watermark} for clock skew, in ms (2 min). */
export const DEFAULT_WATERMARK_MARGIN_MS = 120_000;

const GO_TIME =
  /^(-?\d{4,})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))? ([+-])(\d{2})(\d{2})(?: |$)/;

/**
 * Parses a thread timestamp written by Go's `time.Time.String()`
 * (`2024-05-01 10:11:12.123456789 +0000 UTC m=+42.000000001`, any zone offset) or by us
 * (`formatGoTimestamp()`) into unix ms; undefined when it is not in that format.
 */
export function parseGoTimestamp(text: string): number | undefined {
  const m = GO_TIME.exec(text);
  if (m === null) return undefined;
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number);
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return undefined;
  const ms = Number((m[7] ?? "").padEnd(3, "0").slice(0, 3));
  const offset = (m[8] === "-" ? -1 : 1) * (Number(m[9]) * 60 + Number(m[10])) * 60_000;
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d);
  date.setUTCHours(h, mi, s, ms);
  const t = date.getTime() - offset;
  return Number.isFinite(t) ? t : undefined;
}

/**
 * Since when the plugin is responsible for requests (see "Requests first seen resolved" in
 * `plan.ts`): the earlier of this process's first successful INIT ({@link noteInit}) and the
 * newest thread timestamp in the plugin data listed by the first catch-up that saw any
 * ({@link noteThreads}), minus a margin. Unknown (undefined) before the first INIT. Shared by
 * the watcher (which feeds it) and the handler (which reads it).
 */
export class Watermark {
  readonly #marginMs: number;
  #init: number | undefined;
  #thread: number | undefined;

  constructor(opts: { marginMs?: number } = {}) {
    this.#marginMs = Math.max(0, opts.marginMs ?? DEFAULT_WATERMARK_MARGIN_MS);
  }

  /** Records a successful INIT at `at` (only the first one counts). */
  noteInit(at: Date): void {
    this.#init ??= at.getTime();
  }

  /**
   * Records the newest thread timestamp found in `data` (plugin data of every request, as
   * listed). Only the earliest such value over all calls counts, so the watermark never moves
   * forward once known.
   */
  noteThreads(data: Iterable<PluginDataMap>): void {
    let newest: number | undefined;
    for (const raw of data) {
      for (const t of decodePluginData(raw).threads) {
        const at = parseGoTimestamp(t.timestamp);
        if (at !== undefined && (newest === undefined || at > newest)) newest = at;
      }
    }
    if (newest !== undefined && (this.#thread === undefined || newest < this.#thread)) {
      this.#thread = newest;
    }
  }

  /** The watermark (unix ms), or undefined before the first INIT. */
  value(): number | undefined {
    if (this.#init === undefined) return undefined;
    const since = this.#thread === undefined ? this.#init : Math.min(this.#init, this.#thread);
    return since - this.#marginMs;
  }
}
