/**
 * The email plugin's per-request state, stored as Teleport plugin data (plugin name `email`),
 * encoded exactly like the Go plugin (`integrations/access/email/plugindata.go`) so that both
 * implementations can take over each other's requests.
 *
 * The Go writer always writes 7 keys: `user`, `roles`, `request_reason`, `reviews_count`,
 * `resolution`, `resolve_reason`, `email_threads`. We write the same 7 keys and nothing else.
 *
 * Thread entries are `<email>/<timestamp>/<messageId>` joined by `,`, with no escaping. A thread
 * whose email, timestamp or message ID contains `/` or `,` cannot be stored without corrupting
 * the list (the Go reader would drop or mis-split it), so {@link encodePluginData} leaves such a
 * thread out and reports it through `opts.warn`; callers should check
 * {@link threadEncodingProblem} before recording a thread. Our own timestamps
 * ({@link formatGoTimestamp}) never contain `/` or `,`.
 */
import type { PluginDataMap } from "../teleport/types.ts";

/** The stored resolution: "" while unresolved. `PROMOTED` is ours (Go reads it as "resolved"). */
export type ResolutionTag = "" | "APPROVED" | "DENIED" | "EXPIRED" | "PROMOTED";

/** One recipient's email thread: where the first email went and its Message-ID. */
export interface EmailThread {
  email: string;
  /** Opaque send time; Go writes `time.Now().String()`. */
  timestamp: string;
  /** As returned by the mailer (SMTP: without angle brackets; Mailgun: with). May be "" (legacy). */
  messageId: string;
}

/** The decoded plugin data of one access request. */
export interface EmailPluginData {
  user: string;
  roles: string[];
  requestReason: string;
  /** How many of the request's reviews have already been emailed. */
  reviewsCount: number;
  resolution: { tag: ResolutionTag; reason: string };
  threads: EmailThread[];
}

/** The 7 keys the Go plugin writes, in its order. */
export const PLUGIN_DATA_KEYS = [
  "user",
  "roles",
  "request_reason",
  "reviews_count",
  "resolution",
  "resolve_reason",
  "email_threads",
] as const;

const KNOWN_TAGS: ReadonlySet<string> = new Set(["APPROVED", "DENIED", "EXPIRED", "PROMOTED"]);

/** The zero record (what decoding absent plugin data gives). */
export function emptyPluginData(): EmailPluginData {
  return {
    user: "",
    roles: [],
    requestReason: "",
    reviewsCount: 0,
    resolution: { tag: "", reason: "" },
    threads: [],
  };
}

/**
 * Why `thread` cannot be stored in `email_threads`, or undefined when it can: a field containing
 * `/` or `,` would corrupt the Go thread list.
 */
export function threadEncodingProblem(thread: EmailThread): string | undefined {
  return threadFieldProblem("email", thread.email) ??
    threadFieldProblem("timestamp", thread.timestamp) ??
    threadFieldProblem("message ID", thread.messageId);
}

/** Why `value` (the thread's `name`) cannot be written in the Go thread list, if it cannot. */
function threadFieldProblem(name: string, value: string): string | undefined {
  if (!value.includes("/") && !value.includes(",")) return undefined;
  return `the thread's ${name} ${JSON.stringify(value)} contains "/" or ","`;
}

/**
 * Encodes `d` as the Go plugin does: always the 7 keys, empty values included. `reviews_count` is
 * "" when 0. Threads that cannot be encoded (see {@link threadEncodingProblem}) are left out and
 * reported through `opts.warn`.
 */
export function encodePluginData(
  d: EmailPluginData,
  opts: { warn?: (msg: string, attrs: Record<string, unknown>) => void } = {},
): PluginDataMap {
  const entries: string[] = [];
  for (const t of d.threads) {
    const problem = threadEncodingProblem(t);
    if (problem !== undefined) {
      opts.warn?.("Cannot store email thread in plugin data", {
        email: t.email,
        message_id: t.messageId,
        error: problem,
      });
      continue;
    }
    entries.push(`${t.email}/${t.timestamp}/${t.messageId}`);
  }
  const count = Number.isSafeInteger(d.reviewsCount) && d.reviewsCount > 0
    ? String(d.reviewsCount)
    : "";
  return {
    user: d.user,
    roles: d.roles.join(","),
    request_reason: d.requestReason,
    reviews_count: count,
    resolution: d.resolution.tag,
    resolve_reason: d.resolution.reason,
    email_threads: entries.join(","),
  };
}

/**
 * Decodes plugin data written by us or by the Go plugin. Absent or empty data gives the zero
 * record. Like Go: an empty `roles` gives no roles; an unparsable `reviews_count` gives 0 (we also
 * treat a negative one as 0); thread entries that do not split into exactly 3 parts on `/` are
 * dropped; legacy `email` + `timestamp` keys (both non-empty) become a first thread with an empty
 * message ID. An unknown non-empty `resolution` still means "resolved"; it decodes as `EXPIRED`.
 */
export function decodePluginData(m: PluginDataMap | undefined): EmailPluginData {
  const d = emptyPluginData();
  if (m === undefined) return d;
  d.user = m.user ?? "";
  const roles = m.roles ?? "";
  d.roles = roles === "" ? [] : roles.split(",");
  d.requestReason = m.request_reason ?? "";
  const count = m.reviews_count ?? "";
  if (/^[+-]?[0-9]+$/.test(count)) {
    const n = Number.parseInt(count, 10);
    d.reviewsCount = Number.isSafeInteger(n) && n > 0 ? n : 0;
  }
  const tag = m.resolution ?? "";
  d.resolution = {
    tag: tag === "" ? "" : KNOWN_TAGS.has(tag) ? tag as ResolutionTag : "EXPIRED",
    reason: m.resolve_reason ?? "",
  };
  const legacyEmail = m.email ?? "";
  const legacyTimestamp = m.timestamp ?? "";
  if (legacyEmail !== "" && legacyTimestamp !== "") {
    d.threads.push({ email: legacyEmail, timestamp: legacyTimestamp, messageId: "" });
  }
  const threads = m.email_threads ?? "";
  if (threads !== "") {
    for (const entry of threads.split(",")) {
      const parts = entry.split("/");
      if (parts.length !== 3) continue;
      d.threads.push({ email: parts[0], timestamp: parts[1], messageId: parts[2] });
    }
  }
  return d;
}

/**
 * The `Expect` map for a compare-and-swap update when the stored data is `current` (as read,
 * undefined when absent): the 7 keys with their stored values ("" when absent), plus any other key
 * stored. Unlike re-encoding the decoded record, this matches the server's state even when the
 * stored data is malformed (dropped thread entries, unknown resolution, legacy keys), so such a
 * request cannot get stuck in endless compare failures.
 */
export function expectedPluginData(current: PluginDataMap | undefined): PluginDataMap {
  const expect: PluginDataMap = {};
  for (const key of PLUGIN_DATA_KEYS) expect[key] = current?.[key] ?? "";
  if (current !== undefined) {
    for (const [key, value] of Object.entries(current)) {
      if (!(key in expect)) expect[key] = value;
    }
  }
  return expect;
}

/**
 * Formats `d` like Go's `time.Time.String()` in UTC, without the monotonic clock suffix:
 * `2006-01-02 15:04:05.999999999 -0700 MST`, i.e. `2024-05-01 10:11:12.123 +0000 UTC`. As in Go,
 * trailing zeros of the fraction are trimmed, and the fraction is omitted when it is zero.
 * `extraNanos` (0–999 999) adds sub-millisecond precision that a `Date` cannot carry.
 */
export function formatGoTimestamp(d: Date, extraNanos = 0): string {
  const pad = (n: number, w: number) => String(n).padStart(w, "0");
  const year = d.getUTCFullYear();
  const yearText = year < 0 ? `-${pad(-year, 4)}` : pad(year, 4);
  const date = `${yearText}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)}`;
  const time = `${pad(d.getUTCHours(), 2)}:${pad(d.getUTCMinutes(), 2)}:${
    pad(d.getUTCSeconds(), 2)
  }`;
  const extra = Math.min(Math.max(Math.trunc(extraNanos), 0), 999_999);
  const nanos = d.getUTCMilliseconds() * 1_000_000 + extra;
  const fraction = nanos === 0 ? "" : "." + pad(nanos, 9).replace(/0+$/, "");
  return `${date} ${time}${fraction} +0000 UTC`;
}
