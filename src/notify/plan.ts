/**
 * What an access request event still needs, decided from the stored plugin data (pure: no I/O).
 * The Go plugin's `onPendingRequest`, `onResolvedRequest` and `onDeletedRequest`, rebuilt as an
 * idempotent reconciliation: given the request (or its deletion) and the stored record, the
 * {@link plan} lists exactly the emails that are still missing.
 *
 * Stored state (plugin data `email`): the Go plugin's 7 keys (request data, `reviews_count`,
 * `resolution`, `email_threads`) plus our `email_delivery` key (see `delivery_state.ts`): the
 * planned recipients, permanently failed recipients, per-thread progress and a lease.
 *
 * Decisions:
 * 1. Recipients are chosen once, when the request is first seen with no plugin data
 *    (create-if-absent CAS, like Go): PENDING, or resolved but created after the watermark (see
 *    "Requests first seen resolved" below). Only those recipients ever get a thread.
 * 2. A recipient or thread whose send failed *permanently* is marked handled (failed list, or
 *    progress raised) and never retried. A *retryable* failure leaves it unhandled: the next
 *    attempt (retry, next event, catch-up) plans it again.
 * 3. Per thread, emails go in order: new-request email, reviews in Teleport's order, then the
 *    resolution (a thread's resolution waits until its reviews are handled, except on deletion,
 *    when the reviews are no longer known). `reviews_count` = the minimum review progress over
 *    all threads ({@link encodeRec}), so the Go plugin reading our data would not resend.
 * 4. The resolution is decided once (first APPROVED/DENIED/PROMOTED/deletion while unresolved)
 *    and is then emailed from the stored request data. No new threads after a resolution,
 *    except for a request first seen resolved (`email_delivery.late`, below).
 * 5. An event that needs nothing is a no-op ({@link isNoop}): nothing is written.
 *
 * Requests first seen resolved (APPROVED/DENIED/PROMOTED with no plugin data: created and
 * resolved while the plugin, or its watch stream, was down). Such a request is notified as if
 * the plugin had been up, but only when the plugin was responsible for it: when its `created`
 * time is at or after the watermark (`watermark.ts`: the earlier of this process's first
 * successful INIT and the newest thread timestamp stored in any `email` plugin data at the first
 * catch-up, minus a 2 min margin for clock skew). Then, once and under the same CAS/lease
 * guarantees: the recipients are computed as for a pending request, the record is created with
 * the resolution already decided and `late: true`, each recipient gets the new-request email
 * (starting the thread), then every review in Teleport's order, then the resolution. Otherwise
 * (created before the watermark, no `created` time, or no watermark known yet) nothing is sent
 * and nothing is written (`predates`): on a first install, the resolved requests that predate
 * the plugin stay silent. This holds for the catch-up and for live events alike. Pending
 * requests are always notified; a request deleted before it was ever seen stays silent (nothing
 * is known about it).
 *
 * Taking over from the Go plugin: every {@link decodeRec} reconciles our `email_delivery` with
 * the 7 keys (a `reviews_count` or `resolution` that Go advanced counts as sent; see
 * `delivery_state.ts`).
 */
import type { AccessRequest, PluginDataMap } from "../teleport/types.ts";
import type { ResolutionInfo } from "../templates/mod.ts";
import {
  decodeDelivery,
  DELIVERY_KEY,
  deliveryFromGo,
  type DeliveryState,
  encodeDelivery,
  type LeaseLock,
  reconcileDelivery,
} from "./delivery_state.ts";
import { decodePluginData, type EmailPluginData, encodePluginData } from "./plugin_data.ts";

/** An access request event, as the handler sees it. */
export type RequestEvent =
  | { op: "put"; request: AccessRequest }
  | { op: "delete"; requestId: string };

/** The request ID of `ev`. */
export function eventRequestId(ev: RequestEvent): string {
  return ev.op === "put" ? ev.request.id : ev.requestId;
}

/** The stored record of one request: the Go plugin's keys and our delivery state. */
export interface Rec {
  exists: boolean;
  data: EmailPluginData;
  delivery: DeliveryState;
}

/** Replies still due on one thread. */
export interface Reply {
  email: string;
  messageId: string;
  /** Reviews `[fromReview, toReview)` (Teleport's order) are still to be sent. */
  fromReview: number;
  toReview: number;
  /** The resolution is still to be sent (after the reviews). */
  resolution: boolean;
}

/** What an event still needs (see the file header). */
export interface Plan {
  /** No record yet: create it (with {@link newThreads} as the recipients). */
  create: boolean;
  /** Created already resolved (`email_delivery.late`). */
  late?: boolean;
  /** First seen resolved, but created before the watermark: skipped. */
  predates?: boolean;
  /** The resolution to decide now. */
  decide?: ResolutionInfo;
  newThreads: string[];
  replies: Reply[];
}

const RESOLVED_STATES: ReadonlySet<string> = new Set(["APPROVED", "DENIED", "PROMOTED"]);

/** Whether the handler knows what to do with a request in `state`. */
export function knownState(state: string): boolean {
  return state === "PENDING" || RESOLVED_STATES.has(state);
}

/** Decodes the stored map (undefined: none) into a {@link Rec}. */
export function decodeRec(raw: PluginDataMap | undefined): Rec {
  const data = decodePluginData(raw);
  const ours = decodeDelivery(raw?.[DELIVERY_KEY]);
  const delivery = ours === undefined ? deliveryFromGo(data) : reconcileDelivery(ours, data);
  return { exists: raw !== undefined, data, delivery };
}

/** A deep copy of `r` (cheaper than decoding the stored map again). */
export function cloneRec(r: Rec): Rec {
  const threads: DeliveryState["threads"] = {};
  for (const [email, p] of Object.entries(r.delivery.threads)) threads[email] = { ...p };
  return {
    exists: r.exists,
    data: {
      ...r.data,
      roles: [...r.data.roles],
      resolution: { ...r.data.resolution },
      threads: r.data.threads.map((t) => ({ ...t })),
    },
    delivery: {
      ...r.delivery,
      recipients: [...r.delivery.recipients],
      failed: [...r.delivery.failed],
      threads,
      ...(r.delivery.lock === undefined ? {} : { lock: cloneLock(r.delivery.lock) }),
    },
  };
}

/** A copy of `l` (its fields, in the same order, so it encodes the same). */
function cloneLock(l: LeaseLock): LeaseLock {
  const lock: LeaseLock = { owner: l.owner, until: l.until };
  if (l.holder !== undefined) lock.holder = { ...l.holder };
  return lock;
}

/**
 * The map to store for `r` (sets `reviews_count` to the least review progress over the threads;
 * mutates `r` accordingly). `warn` reports values Go's format cannot hold.
 */
export function encodeRec(
  r: Rec,
  warn: (msg: string, attrs: Record<string, unknown>) => void,
): PluginDataMap {
  const min = r.data.threads.length === 0
    ? 0
    : Math.min(...r.data.threads.map((t) => r.delivery.threads[t.email]?.reviews ?? 0));
  r.data.reviewsCount = Math.max(r.data.reviewsCount, min);
  r.delivery.rc = r.data.reviewsCount;
  return { ...encodePluginData(r.data, { warn }), [DELIVERY_KEY]: encodeDelivery(r.delivery) };
}

/** Unique threads by email (first one wins, as replies go to one thread per recipient). */
function uniqueThreads(data: EmailPluginData) {
  const seen = new Set<string>();
  return data.threads.filter((t) => !seen.has(t.email) && seen.add(t.email));
}

/** The resolution of a request in a resolved state. */
export function decision(req: AccessRequest): ResolutionInfo {
  const state = req.state;
  return {
    tag: state as "APPROVED" | "DENIED" | "PROMOTED",
    reason: req.resolveReason,
    accessListTitle: state === "PROMOTED" ? req.promotedAccessList?.title : undefined,
  };
}

/** Whether `p` needs nothing at all. */
export function isNoop(p: Plan): boolean {
  return !p.create && p.decide === undefined && p.newThreads.length === 0 &&
    p.replies.length === 0;
}

/**
 * What `ev` still needs given the stored `rec`. `recipients` computes a new request's
 * recipients (called only when the record is to be created); `watermark` is the watermark's
 * value (unix ms), undefined when unknown.
 */
export function plan(
  rec: Rec,
  ev: RequestEvent,
  recipients: () => string[],
  watermark: number | undefined,
): Plan {
  if (!rec.exists) return planFirstSeen(ev, recipients, watermark);
  const p: Plan = { create: false, newThreads: [], replies: [] };
  let tag = rec.data.resolution.tag;
  if (tag === "") {
    if (ev.op === "delete") p.decide = { tag: "EXPIRED", reason: "" };
    else if (RESOLVED_STATES.has(ev.request.state)) p.decide = decision(ev.request);
    if (p.decide) tag = p.decide.tag;
  }
  const d = rec.delivery;
  if (tag === "" || (d.late === true && ev.op === "put")) {
    const have = new Set(rec.data.threads.map((t) => t.email));
    const failed = new Set(d.failed);
    p.newThreads = d.recipients.filter((r) => !have.has(r) && !failed.has(r));
  }
  const reviews = ev.op === "put" ? ev.request.reviews.length : undefined;
  const resolution = tag !== "";
  for (const t of uniqueThreads(rec.data)) {
    const prog = d.threads[t.email] ?? { reviews: rec.data.reviewsCount, resolved: resolution };
    if (prog.resolved) continue;
    const toReview = reviews === undefined ? prog.reviews : Math.max(prog.reviews, reviews);
    if (toReview > prog.reviews || resolution) {
      p.replies.push({
        email: t.email,
        messageId: t.messageId,
        fromReview: prog.reviews,
        toReview,
        resolution,
      });
    }
  }
  return p;
}

/**
 * A request never seen: a pending one starts threads; a resolved one only when the plugin was
 * responsible for it (see the file header); a deleted one stays silent (nothing is known).
 */
function planFirstSeen(
  ev: RequestEvent,
  recipients: () => string[],
  watermark: number | undefined,
): Plan {
  const p: Plan = { create: false, newThreads: [], replies: [] };
  if (ev.op === "delete") return p;
  if (ev.request.state !== "PENDING") {
    const created = ev.request.created?.getTime();
    if (watermark === undefined || created === undefined || !(created >= watermark)) {
      p.predates = true;
      return p;
    }
    p.late = true;
    p.decide = decision(ev.request);
  }
  p.create = true;
  p.newThreads = [...new Set(recipients())];
  return p;
}

/**
 * Applies the start of `p` to `rec` (mutating it), as the lease-taking write stores it: a new
 * record's request data and recipients, and a resolution decided now.
 */
export function startDelivery(rec: Rec, p: Plan, ev: RequestEvent): void {
  if (p.create && ev.op === "put") {
    const req = ev.request;
    rec.data.user = req.user;
    rec.data.roles = [...req.roles];
    rec.data.requestReason = req.requestReason;
    rec.delivery = { recipients: p.newThreads, failed: [], threads: {} };
    if (p.late) rec.delivery.late = true;
  }
  if (p.decide) {
    rec.data.resolution = { tag: p.decide.tag, reason: p.decide.reason };
    rec.delivery.decided = p.decide.tag;
    if (p.decide.accessListTitle !== undefined) rec.delivery.title = p.decide.accessListTitle;
  }
}
