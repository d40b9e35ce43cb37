/**
 * Our extension of the Go plugin's plugin data: one extra key, `email_delivery`, holding JSON
 * with per-recipient delivery progress and a short lease ("lock") that lets one plugin instance
 * at a time send for a request. The Go plugin ignores unknown keys and never writes this one, so
 * data stays readable by Go; data written by Go (no `email_delivery`) is read as "every stored
 * thread has received `reviews_count` reviews, and the resolution when one is stored".
 *
 * Format (version 1):
 * `{"v":1,"recipients":[...],"failed":[...],"threads":{"<email>":{"reviews":N,"resolved":B}},
 *   "lock":{"owner":"...","until":<unix ms>},"title":"..."}`
 */
import type { EmailPluginData } from "./plugin_data.ts";

/** The plugin data key holding {@link DeliveryState} as JSON. */
export const DELIVERY_KEY = "email_delivery";

/** Delivery progress of one thread (one recipient). */
export interface ThreadProgress {
  /** How many of the request's reviews (in Teleport's order) were handled for this thread. */
  reviews: number;
  /** Whether the resolution email was handled for this thread. */
  resolved: boolean;
}

/** The decoded `email_delivery` value. */
export interface DeliveryState {
  /** The recipients chosen when the request was first seen (threads are only created for these). */
  recipients: string[];
  /** Recipients whose first email failed permanently (never retried). */
  failed: string[];
  /** Progress per thread, by email. "Handled" = delivered, or failed permanently. */
  threads: Record<string, ThreadProgress>;
  /** Who may send for this request until when (unix ms). */
  lock?: { owner: string; until: number };
  /** Access List title of a PROMOTED request, for its resolution email. */
  title?: string;
}

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
  if (typeof o.lock === "object" && o.lock !== null) {
    const l = o.lock as Record<string, unknown>;
    if (typeof l.owner === "string" && typeof l.until === "number") {
      state.lock = { owner: l.owner, until: l.until };
    }
  }
  if (typeof o.title === "string") state.title = o.title;
  return state;
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
  return JSON.stringify(out);
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
