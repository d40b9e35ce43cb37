/**
 * Our extension of the Go plugin's plugin data: one extra key, `email_delivery`, holding JSON
 * with per-recipient delivery progress and a short lease ("lock") that lets one plugin instance
 * at a time send for a request. The Go plugin ignores unknown keys and never writes this one, so
 * data stays readable by Go; data written by Go (no `email_delivery`) is read as "every stored
 * thread has received `reviews_count` reviews, and the resolution when one is stored".
 *
 * Format (version 1):
 * `{"v":1,"recipients":[...],"failed":[...],"threads":{"<email>":{"reviews":N,"resolved":B}},
 *   "lock":{"owner":"...","until":<unix ms>,"holder":{...}},"title":"...","decided":"APPROVED",
 *   "rc":N,"late":true}`
 * `decided`, `rc`, `late` and `lock.holder` were added compatibly (older versions of our code
 * neither write nor need them; they keep the other fields when rewriting, but drop these, which
 * is safe: see {@link reconcileDelivery}, and a lease without `holder` follows the expiry rule).
 *
 * Taking over after the Go plugin advanced our data ({@link reconcileDelivery}, applied on every
 * decode): Go never reads or writes `email_delivery`, it only raises `reviews_count` after
 * sending reviews to every thread, and sets `resolution` (once) before sending it to every
 * thread. So:
 * - Reviews: `rc` is the `reviews_count` we last wrote. A stored `reviews_count` above it was
 *   written by someone else, who sent the reviews up to it to every thread: each thread's
 *   progress becomes at least the stored value. Without `rc` (older data), a stored value above
 *   every thread's progress is taken as Go's (our writer never stores more than the largest
 *   progress); otherwise the progress is trusted.
 * - Resolution: `decided` is the resolution tag we decided. A stored `resolution` we did not
 *   decide was decided, and sent to every thread, by Go: every thread counts as resolved.
 *   Without `decided` (older data), a stored resolution with at least one of our threads marked
 *   resolved is ours (Go never marks threads); with none marked resolved it is ambiguous (ours
 *   with every resolution email still pending, or Go's): it is taken as sent, so there is never
 *   a duplicate, at the risk of a missing resolution email in that rare case.
 */
import type { EmailPluginData, ResolutionTag } from "./plugin_data.ts";

/** The plugin data key holding {@link DeliveryState} as JSON. */
export const DELIVERY_KEY = "email_delivery";

/** Delivery progress of one thread (one recipient). */
export interface ThreadProgress {
  /** How many of the request's reviews (in Teleport's order) were handled for this thread. */
  reviews: number;
  /** Whether the resolution email was handled for this thread. */
  resolved: boolean;
}

/**
 * Which process holds a lease, so that a restarted process on the same host can tell that the
 * holder is gone (see `lease_holder.ts`).
 */
export interface LeaseHolder {
  /** Host name of the holder. */
  host: string;
  /** Process ID of the holder. */
  pid: number;
  /** When the holder process started (unix ms). */
  start: number;
  /** Path of the holder's liveness socket (a Unix socket it listens on while it runs). */
  probe?: string;
}

/** The lease: who may send for a request until when. */
export interface LeaseLock {
  /** `<instance id>/<invocation>`. */
  owner: string;
  /** Expiry, unix ms (the holder's clock). */
  until: number;
  /** Absent in data written by older versions. */
  holder?: LeaseHolder;
}

/** The decoded `email_delivery` value. */
export interface DeliveryState {
  /** The recipients chosen when the request was first seen (threads are only created for these). */
  recipients: string[];
  /** Recipients whose first email failed permanently (never retried). */
  failed: string[];
  /** Progress per thread, by email. "Handled" = delivered, or failed permanently. */
  threads: Record<string, ThreadProgress>;
  /** Who may send for this request until when. */
  lock?: LeaseLock;
  /** Access List title of a PROMOTED request, for its resolution email. */
  title?: string;
  /** The resolution tag we decided (absent: none yet, or data of an older version). */
  decided?: Exclude<ResolutionTag, "">;
  /** The `reviews_count` we last wrote (absent: not yet, or data of an older version). */
  rc?: number;
  /**
   * The request was first seen already resolved (created while the plugin was away): its
   * recipients still get their thread (the new-request email) although it is resolved.
   */
  late?: boolean;
}

const DECIDED_TAGS: ReadonlySet<string> = new Set(["APPROVED", "DENIED", "EXPIRED", "PROMOTED"]);

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((x) => typeof x === "string");
}

/** Decodes `email_delivery`; undefined when absent or not ours (then the data is Go's). */
export function decodeDelivery(raw: string | undefined): DeliveryState | undefined {
  if (raw === undefined || raw === "") return undefined;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return undefined;
  }
  if (typeof v !== "object" || v === null) return undefined;
  const o = v as Record<string, unknown>;
  if (o.v !== 1) return undefined;
  const state: DeliveryState = {
    recipients: isStringArray(o.recipients) ? o.recipients : [],
    failed: isStringArray(o.failed) ? o.failed : [],
    threads: {},
  };
  if (typeof o.threads === "object" && o.threads !== null) {
    for (const [email, p] of Object.entries(o.threads as Record<string, unknown>)) {
      if (typeof p !== "object" || p === null) continue;
      const q = p as Record<string, unknown>;
      state.threads[email] = {
        reviews: typeof q.reviews === "number" && q.reviews >= 0 ? Math.trunc(q.reviews) : 0,
        resolved: q.resolved === true,
      };
    }
  }
  const lock = decodeLock(o.lock);
  if (lock !== undefined) state.lock = lock;
  if (typeof o.title === "string") state.title = o.title;
  if (typeof o.decided === "string" && DECIDED_TAGS.has(o.decided)) {
    state.decided = o.decided as Exclude<ResolutionTag, "">;
  }
  if (typeof o.rc === "number" && Number.isSafeInteger(o.rc) && o.rc >= 0) state.rc = o.rc;
  if (o.late === true) state.late = true;
  return state;
}

function decodeLock(v: unknown): LeaseLock | undefined {
  if (typeof v !== "object" || v === null) return undefined;
  const l = v as Record<string, unknown>;
  if (typeof l.owner !== "string" || typeof l.until !== "number") return undefined;
  const lock: LeaseLock = { owner: l.owner, until: l.until };
  const h = typeof l.holder === "object" && l.holder !== null
    ? l.holder as Record<string, unknown>
    : undefined;
  if (
    h !== undefined && typeof h.host === "string" && Number.isSafeInteger(h.pid) &&
    typeof h.start === "number"
  ) {
    lock.holder = { host: h.host, pid: h.pid as number, start: h.start };
    if (typeof h.probe === "string") lock.holder.probe = h.probe;
  }
  return lock;
}

/** Encodes `state` as the `email_delivery` value. */
export function encodeDelivery(state: DeliveryState): string {
  const out: Record<string, unknown> = {
    v: 1,
    recipients: state.recipients,
    failed: state.failed,
    threads: state.threads,
  };
  if (state.lock !== undefined) out.lock = state.lock;
  if (state.title !== undefined) out.title = state.title;
  if (state.decided !== undefined) out.decided = state.decided;
  if (state.rc !== undefined) out.rc = state.rc;
  if (state.late === true) out.late = true;
  return JSON.stringify(out);
}

/**
 * Folds into `state` (our `email_delivery`, decoded) what another writer (the Go plugin) did to
 * the 7 keys `data` since we last wrote them (see the file header). Mutates and returns `state`;
 * afterwards `decided` is the stored resolution, if any.
 */
export function reconcileDelivery(state: DeliveryState, data: EmailPluginData): DeliveryState {
  const stored = data.reviewsCount;
  const progress = data.threads.map((t) => state.threads[t.email]?.reviews ?? stored);
  const othersSentReviews = state.rc !== undefined
    ? stored > state.rc
    : progress.length > 0 && stored > Math.max(...progress);
  if (othersSentReviews) {
    for (const t of data.threads) {
      const p = state.threads[t.email];
      if (p !== undefined && p.reviews < stored) state.threads[t.email] = { ...p, reviews: stored };
    }
  }
  const tag = data.resolution.tag;
  if (tag !== "" && state.decided !== tag) {
    const oursFromOlderVersion = state.decided === undefined &&
      data.threads.some((t) => state.threads[t.email]?.resolved === true);
    if (!oursFromOlderVersion) {
      for (const t of data.threads) {
        const p = state.threads[t.email];
        if (p !== undefined) state.threads[t.email] = { ...p, resolved: true };
      }
    }
    state.decided = tag;
  }
  return state;
}

/**
 * The delivery state implied by data without `email_delivery` (written by the Go plugin): the
 * stored threads are the recipients, each has had `reviews_count` reviews, and the resolution
 * when one is stored (Go sends it right after storing it).
 */
export function deliveryFromGo(data: EmailPluginData): DeliveryState {
  const threads: Record<string, ThreadProgress> = {};
  for (const t of data.threads) {
    threads[t.email] = { reviews: data.reviewsCount, resolved: data.resolution.tag !== "" };
  }
  return { recipients: data.threads.map((t) => t.email), failed: [], threads };
}
