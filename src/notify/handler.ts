/**
 * The state decisions for one access request event (Go: `onPendingRequest`, `onResolvedRequest`,
 * `onDeletedRequest`), rebuilt as an idempotent reconciliation: given the request (or its
 * deletion) and the stored plugin data, send exactly the emails that are still missing.
 *
 * Stored state (plugin data `email`): the Go plugin's 7 keys (request data, `reviews_count`,
 * `resolution`, `email_threads`) plus our `email_delivery` key (see `delivery_state.ts`): the
 * planned recipients, permanently failed recipients, per-thread progress and a lease.
 *
 * Invariants:
 * 1. Recipients are chosen once, when the request is first seen with no plugin data
 *    (create-if-absent CAS, like Go): PENDING, or resolved but created after the watermark (see
 *    "Requests first seen resolved" below). Only those recipients ever get a thread.
 * 2. A lease (`email_delivery.lock`, taken by CAS, default 30 s, renewed by every record) lets
 *    one handler invocation in the whole fleet send for a request at a time. An invocation that
 *    finds a live lease of someone else sends nothing and fails with {@link RequestBusyError}
 *    (retryable, carrying the lease's expiry `until`): the caller retries just after `until`
 *    (the engine does), and by then the holder has released the lease or died.
 * 3. Every send is recorded by a CAS started right after it succeeds (thread appended, or the
 *    thread's review/resolution progress raised; sends that succeed while such a write is in
 *    flight share the next one), and a thread's next email waits for that record, so at most
 *    one email per thread is "sent but not recorded" at any time. Records use their own short
 *    budget, not the event deadline.
 * 4. A recipient or thread whose send failed *permanently* is marked handled (failed list, or
 *    progress raised) and never retried. A *retryable* failure (after in-event retries) leaves it
 *    unhandled: the event fails, and the next attempt (retry, next event, catch-up) sends it.
 * 5. Per thread, emails go in order: new-request email, reviews in Teleport's order, then the
 *    resolution (a thread's resolution waits until its reviews are handled, except on deletion,
 *    when the reviews are no longer known). `reviews_count` = the minimum review progress over
 *    all threads, so the Go plugin reading our data would not resend.
 * 6. The resolution is decided once (first APPROVED/DENIED/PROMOTED/deletion while unresolved)
 *    and is then emailed from the stored request data. No new threads after a resolution,
 *    except for a request first seen resolved (`email_delivery.late`, below).
 * 7. An event that needs nothing reads the plugin data once and writes nothing.
 *
 * Requests first seen resolved (APPROVED/DENIED/PROMOTED with no plugin data: created and
 * resolved while the plugin, or its watch stream, was down). Such a request is notified as if
 * the plugin had been up, but only when the plugin was responsible for it: when its `created`
 * time is at or after the {@link Watermark} (the earlier of this process's first successful
 * INIT and the newest thread timestamp stored in any `email` plugin data at the first catch-up,
 * minus a 2 min margin for clock skew). Then, once and under the same CAS/lease guarantees: the
 * recipients are computed as for a pending request, the record is created with the resolution
 * already decided and `late: true`, each recipient gets the new-request email (starting the
 * thread), then every review in Teleport's order, then the resolution. Otherwise (created before
 * the watermark, no `created` time, or no watermark known yet) nothing is sent and nothing is
 * written (debug log `Request first seen resolved predates the plugin; not notifying`): on a
 * first install, the resolved requests that predate the plugin stay silent. This holds for the
 * catch-up and for live events alike. Pending requests are always notified; a request deleted
 * before it was ever seen stays silent (nothing is known about it).
 *
 * Taking over from the Go plugin: every decode reconciles our `email_delivery` with the 7 keys
 * (a `reviews_count` or `resolution` that Go advanced counts as sent; see `delivery_state.ts`).
 *
 * Lease length (default {@link DEFAULT_LEASE_MS} = 30 s). The lease must outlast everything a
 * live holder does without renewing it, or a second instance could take over while the first
 * still sends (duplicates). A holder's invocation runs under the caller's event deadline
 * (engine: 15 s from before the lease is taken): every send, and every in-event send retry, is
 * started under that signal and abandoned when it fires, so no send starts or is awaited more
 * than 15 s after the lease was taken. The record of a send then gets its own budget
 * ({@link DEFAULT_RECORD_TIMEOUT_MS} = 5 s) and renews the lease to now + 30 s when it lands.
 * So the longest a live holder goes from taking (or renewing) the lease to its last renewing
 * write is 15 s + 5 s = 20 s, leaving 10 s for clock skew between replicas (the expiry is the
 * holder's wall clock, compared with the reader's). What the 30 s does not cover, no lease
 * length would: Teleport refusing records for longer than their budget (the sent emails stay
 * unrecorded and are resent: at-least-once) and an SMTP transaction already handed to the server
 * when the deadline fired (with {@link HandlerOptions.maxParallelSends} set to the SMTP pool
 * size, a send still waiting for a connection waits here, where the deadline cancels it, not in
 * nodemailer's queue, from which it would still go out late). A shorter lease matters after a
 * crash: a new process (or another replica) retries just after the dead holder's lease
 * expires, so recovery takes at most ~30 s (measured: the missing emails were recorded 30.2 s
 * after a SIGKILL mid-send, was ~102 s with a 60 s lease and the exponential backoff).
 *
 * Trade-off: sending and recording cannot be atomic. If a process dies after a send and before
 * its record (a window of one email), its lease expires and the email is sent again
 * (at-least-once on crash). Everything else is exactly-once across retries and replicas.
 */
import { getLogger, type Logger } from "@logtape/logtape";
import { MailerError, TeleportEmailError, TeleportError } from "../errors.ts";
import type { Mailer } from "../mailers/mailer.ts";
import type { TeleportClient } from "../teleport/client.ts";
import type { AccessRequest, AccessReview, PluginDataMap } from "../teleport/types.ts";
import {
  type EmailContent,
  newRequestEmail,
  type RequestContext,
  resolutionEmail,
  type ResolutionInfo,
  reviewEmail,
} from "../templates/mod.ts";
import { withRetry } from "../mailers/retry.ts";
import { casPluginDataMap } from "./cas.ts";
import { sendFailureRetry } from "./retry_words.ts";
import {
  decodeDelivery,
  DELIVERY_KEY,
  deliveryFromGo,
  type DeliveryState,
  encodeDelivery,
  reconcileDelivery,
} from "./delivery_state.ts";
import {
  decodePluginData,
  type EmailPluginData,
  encodePluginData,
  formatGoTimestamp,
  type ResolutionTag,
  threadEncodingProblem,
} from "./plugin_data.ts";

/** An access request event, as the handler sees it. */
export type RequestEvent =
  | { op: "put"; request: AccessRequest }
  | { op: "delete"; requestId: string };

/** The request ID of `ev`. */
export function eventRequestId(ev: RequestEvent): string {
  return ev.op === "put" ? ev.request.id : ev.requestId;
}

/** The templates; default: `src/templates/`. Tests may substitute their own. */
export interface Composer {
  newRequest(ctx: RequestContext): EmailContent;
  resolution(ctx: RequestContext, res: ResolutionInfo): EmailContent;
  review(ids: { clusterName: string; requestId: string }, review: AccessReview): EmailContent;
}

/** The default {@link Composer}: our templates. */
export const DEFAULT_COMPOSER: Composer = {
  newRequest: newRequestEmail,
  resolution: resolutionEmail,
  review: reviewEmail,
};

/** Default margin subtracted from the {@link Watermark} for clock skew, in ms (2 min). */
export const DEFAULT_WATERMARK_MARGIN_MS = 120_000;

const GO_TIME =
  /^(-?\d{4,})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))? ([+-])(\d{2})(\d{2})(?: |$)/;

/**
 * Parses a thread timestamp written by Go's `time.Time.String()`
 * (`2024-05-01 10:11:12.123456789 +0000 UTC m=+42.000000001`, any zone offset) or by us
 * ({@link formatGoTimestamp}) into unix ms; undefined when it is not in that format.
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
 * Since when the plugin is responsible for requests (see "Requests first seen resolved" in this
 * file's header): the earlier of this process's first successful INIT ({@link noteInit}) and the
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

/** Default lease length, in ms (see "Lease length" in this file's header). */
export const DEFAULT_LEASE_MS = 30_000;
/** Default budget of each bookkeeping write after a send, in ms. */
export const DEFAULT_RECORD_TIMEOUT_MS = 5000;

/** Thrown when another handler (this or another replica) holds the request's lease. */
export class RequestBusyError extends TeleportEmailError {
  readonly retryable = true;
  /**
   * When the holder's lease expires (unix ms, as stored by the holder): from then on the
   * request can be taken over, so that is when to try again. The holder renews it while it
   * records sends and releases it when done.
   */
  readonly until: number;

  constructor(message: string, until: number, options: { cause?: unknown; hint?: string } = {}) {
    super(message, options);
    this.until = until;
  }
}

/**
 * The abort reason a caller gives the handler's signal when the process shuts down (the engine
 * does after its drain limit): the handler then reports unsent emails as left for the next start
 * or another replica, not as failures.
 */
export class ShutdownAbort extends TeleportEmailError {
  constructor() {
    super("Shutting down");
  }
}

/**
 * Thrown when shutdown ({@link ShutdownAbort}) cut a handler call off before it sent every email;
 * the handler has already logged each unsent one as a warning.
 */
export class RequestInterrupted extends TeleportEmailError {
  /** Recipients whose email was not sent. */
  readonly unsent: readonly string[];

  constructor(requestId: string, unsent: readonly string[]) {
    super(
      `Shutdown interrupted request "${requestId}" before ${unsent.length} email(s) were sent`,
    );
    this.unsent = unsent;
  }
}

/** Some emails for a request could not be sent (yet). */
export class RequestFailure extends TeleportEmailError {
  /** Whether another attempt may succeed (some failures were retryable). */
  readonly retryable: boolean;
  readonly errors: readonly Error[];

  constructor(message: string, errors: readonly Error[], retryable: boolean) {
    super(`${message}: ${errors.map((e) => e.message).join("; ")}`);
    this.errors = errors;
    this.retryable = retryable;
  }
}

/** Options of {@link RequestHandler}. */
export interface HandlerOptions {
  client: TeleportClient;
  mailer: Mailer;
  /** Default: the templates of `src/templates/`. */
  composer?: Composer;
  /** The recipients of a new request (AMR rules, role_to_recipients, suggested reviewers). */
  recipients: (req: AccessRequest) => string[];
  clusterName: string;
  /** Set only with AdvancedAccessWorkflows: emails then link to the web UI. */
  webProxyAddr?: string;
  /** Plugin data name; default `email`. */
  plugin?: string;
  /** Parallel sends per request; default 4. */
  sendConcurrency?: number;
  /**
   * Parallel sends over all requests handled by this handler; default unlimited. Set it to what
   * the transport can do at once (the SMTP pool size): sends beyond it wait here, in arrival
   * order, where the event deadline can still cancel them, instead of in the transport's queue.
   */
  maxParallelSends?: number;
  /** Attempts per email within one event for retryable failures; default 3. */
  sendAttempts?: number;
  /** First backoff between send attempts, in ms; default 250 (doubles, with jitter). */
  sendBackoffMs?: number;
  /** Budget of each bookkeeping write after a send, in ms; default 5000. */
  recordTimeoutMs?: number;
  /**
   * Lease length, in ms; default {@link DEFAULT_LEASE_MS} (30 s). Must exceed the caller's
   * event deadline plus one record budget, with room for clock skew between replicas.
   */
  leaseMs?: number;
  /**
   * Decides which requests first seen resolved are notified (see the file header); default
   * none (a resolved request with no plugin data is never notified).
   */
  watermark?: Pick<Watermark, "value">;
  /** Identifies this instance in leases; default a random UUID. */
  instanceId?: string;
  log?: Logger;
  /** Clock, for tests. */
  now?: () => Date;
}

/** What one {@link RequestHandler.handle} call did. */
export interface HandleResult {
  /** Emails sent by this call. */
  sent: number;
  /** True when nothing needed doing (no write happened). */
  noop: boolean;
}

interface Rec {
  exists: boolean;
  data: EmailPluginData;
  delivery: DeliveryState;
}

interface Reply {
  email: string;
  messageId: string;
  fromReview: number;
  toReview: number;
  resolution: boolean;
}

interface Plan {
  create: boolean;
  /** Created already resolved (`email_delivery.late`). */
  late?: boolean;
  /** First seen resolved, but created before the watermark: skipped. */
  predates?: boolean;
  decide?: ResolutionInfo;
  newThreads: string[];
  replies: Reply[];
}

const RESOLVED_STATES: ReadonlySet<string> = new Set(["APPROVED", "DENIED", "PROMOTED"]);

function decodeRec(raw: PluginDataMap | undefined): Rec {
  const data = decodePluginData(raw);
  const ours = decodeDelivery(raw?.[DELIVERY_KEY]);
  const delivery = ours === undefined ? deliveryFromGo(data) : reconcileDelivery(ours, data);
  return { exists: raw !== undefined, data, delivery };
}

/** A deep copy of `r` (cheaper than decoding the stored map again). */
function cloneRec(r: Rec): Rec {
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
      ...(r.delivery.lock === undefined ? {} : { lock: { ...r.delivery.lock } }),
    },
  };
}

function encodeRec(r: Rec, warn: (msg: string, attrs: Record<string, unknown>) => void) {
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

function isRetryable(err: unknown): boolean {
  if (err instanceof MailerError) return err.retryable;
  return true;
}

function errorOf(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * A FIFO counting semaphore. {@link run} waits for a free slot (rejecting with the signal's
 * reason when it aborts first), runs `fn`, and frees the slot.
 */
export class SendLimiter {
  readonly #limit: number;
  #active = 0;
  readonly #waiters: Array<() => void> = [];

  constructor(limit: number) {
    this.#limit = Math.max(1, limit);
  }

  /** Sends running now. */
  get active(): number {
    return this.#active;
  }

  /** Sends waiting for a slot. */
  get waiting(): number {
    return this.#waiters.length;
  }

  async run<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted();
    if (this.#active >= this.#limit) {
      await new Promise<void>((resolve, reject) => {
        const wake = () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        };
        const onAbort = () => {
          const i = this.#waiters.indexOf(wake);
          if (i >= 0) this.#waiters.splice(i, 1);
          reject(signal!.reason);
        };
        signal?.addEventListener("abort", onAbort, { once: true });
        this.#waiters.push(wake);
      });
    } else {
      this.#active++;
    }
    try {
      return await fn();
    } finally {
      // Hand the slot straight to the next waiter (the count stays), or free it.
      const next = this.#waiters.shift();
      if (next !== undefined) next();
      else this.#active--;
    }
  }
}

/**
 * Runs `fn` on every item, at most `limit` at once. Never rejects: an error of one item goes to
 * `onError` and the others go on (so no send is left running unobserved after the lease ends).
 */
async function pool<T>(
  items: T[],
  limit: number,
  fn: (item: T) => Promise<void>,
  onError: (err: unknown) => void,
): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      try {
        await fn(items[next++]);
      } catch (err) {
        onError(err);
      }
    }
  });
  await Promise.all(workers);
}

/**
 * Handles access request events: decides from the stored plugin data what is missing and sends
 * it (see the invariants in this file's header). Safe to call concurrently for different
 * requests; the caller serialises events of one request.
 */
export class RequestHandler {
  private readonly o: HandlerOptions;
  private readonly plugin: string;
  private readonly log: Logger;
  private readonly instanceId: string;
  private readonly composer: Composer;
  private readonly limiter: SendLimiter | undefined;
  private seq = 0;

  constructor(opts: HandlerOptions) {
    this.o = opts;
    this.plugin = opts.plugin ?? "email";
    this.log = opts.log ?? getLogger(["teleport-email", "notify"]);
    this.instanceId = opts.instanceId ?? crypto.randomUUID();
    this.composer = opts.composer ?? DEFAULT_COMPOSER;
    const max = opts.maxParallelSends;
    this.limiter = max !== undefined && Number.isFinite(max) ? new SendLimiter(max) : undefined;
  }

  private now(): Date {
    return this.o.now?.() ?? new Date();
  }

  /** The log context of an event: `request_id`, `request_op` and (puts) `request_state`. */
  eventContext(ev: RequestEvent): Record<string, string> {
    return ev.op === "put"
      ? { request_id: ev.request.id, request_op: "put", request_state: ev.request.state }
      : { request_id: ev.requestId, request_op: "delete" };
  }

  /**
   * Whether `ev` would need any work given the stored data `raw` (pure; used by the catch-up to
   * skip requests that are up to date without a read per request).
   */
  needsWork(ev: RequestEvent, raw: PluginDataMap | undefined): boolean {
    if (ev.op === "put" && !this.knownState(ev.request.state)) return false;
    return !this.isNoop(this.plan(decodeRec(raw), ev, () => ["?"]));
  }

  private knownState(state: string): boolean {
    return state === "PENDING" || RESOLVED_STATES.has(state);
  }

  private plan(rec: Rec, ev: RequestEvent, recipients: () => string[]): Plan {
    const p: Plan = { create: false, newThreads: [], replies: [] };
    const state = ev.op === "put" ? ev.request.state : "DELETED";
    if (!rec.exists) {
      // Never seen: a pending request starts threads; a resolved one only when the plugin was
      // responsible for it (see the file header); a deleted one stays silent (nothing known).
      if (ev.op === "delete") return p;
      if (state !== "PENDING") {
        const since = this.o.watermark?.value();
        const created = ev.request.created?.getTime();
        if (since === undefined || created === undefined || !(created >= since)) {
          p.predates = true;
          return p;
        }
        p.late = true;
        p.decide = this.decision(ev.request);
      }
      p.create = true;
      p.newThreads = [...new Set(recipients())];
      return p;
    }
    let tag = rec.data.resolution.tag;
    if (tag === "") {
      if (ev.op === "delete") {
        p.decide = { tag: "EXPIRED", reason: "" };
      } else if (RESOLVED_STATES.has(state)) {
        p.decide = this.decision(ev.request);
      }
      if (p.decide) tag = p.decide.tag;
    }
    const d = rec.delivery;
    if (tag === "" || (d.late === true && ev.op === "put")) {
      const have = new Set(rec.data.threads.map((t) => t.email));
      const failed = new Set(d.failed);
      p.newThreads = d.recipients.filter((r) => !have.has(r) && !failed.has(r));
    }
    const reviews = ev.op === "put" ? ev.request.reviews.length : undefined;
    for (const t of uniqueThreads(rec.data)) {
      const prog = d.threads[t.email] ?? { reviews: rec.data.reviewsCount, resolved: tag !== "" };
      if (prog.resolved) continue;
      const toReview = reviews === undefined ? prog.reviews : Math.max(prog.reviews, reviews);
      const resolution = tag !== "";
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

  private decision(req: AccessRequest): ResolutionInfo {
    const state = req.state;
    return {
      tag: state as "APPROVED" | "DENIED" | "PROMOTED",
      reason: req.resolveReason,
      accessListTitle: state === "PROMOTED" ? req.promotedAccessList?.title : undefined,
    };
  }

  private isNoop(p: Plan): boolean {
    return !p.create && p.decide === undefined && p.newThreads.length === 0 &&
      p.replies.length === 0;
  }

  /**
   * Handles one event. Returns normally when everything needed was done or failed permanently;
   * throws {@link RequestBusyError} or a retryable {@link RequestFailure} when a later attempt
   * should finish the job, and rethrows Teleport errors of reads and writes.
   */
  async handle(ev: RequestEvent, opts: { signal?: AbortSignal } = {}): Promise<HandleResult> {
    const signal = opts.signal ?? new AbortController().signal;
    const requestId = eventRequestId(ev);
    const log = this.log.with(this.eventContext(ev));
    if (ev.op === "put" && !this.knownState(ev.request.state)) {
      log.warn("Unknown request state");
      return { sent: 0, noop: true };
    }
    const warn = (msg: string, attrs: Record<string, unknown>) => log.warn(msg, attrs);
    const owner = `${this.instanceId}/${++this.seq}`;
    const leaseMs = this.o.leaseMs ?? DEFAULT_LEASE_MS;
    let recipients: string[] | undefined;
    const recipientsOnce = () => {
      if (recipients === undefined) {
        recipients = ev.op === "put" ? this.o.recipients(ev.request) : [];
      }
      return recipients;
    };

    // 1. Decide and take the lease in one CAS (nothing is written when nothing is needed).
    let outcome = "go" as "noop" | "busy" | "go";
    let busyUntil = 0;
    let decided: ResolutionInfo | undefined;
    let created = false;
    let predates = false;
    const acquired = await casPluginDataMap(this.o.client, requestId, this.plugin, (cur) => {
      const rec = decodeRec(cur);
      const p = this.plan(rec, ev, recipientsOnce);
      decided = p.decide;
      created = p.create;
      predates = p.predates === true;
      if (this.isNoop(p)) {
        outcome = "noop";
        return undefined;
      }
      const lock = rec.delivery.lock;
      // Our own instance's older lease is stale: the caller serialises a request's events, so
      // that invocation has ended (its release failed). Anyone else's live lease: busy.
      const ours = lock?.owner.startsWith(`${this.instanceId}/`) ?? false;
      if (lock !== undefined && !ours && lock.until > this.now().getTime()) {
        outcome = "busy";
        busyUntil = lock.until;
        return undefined;
      }
      outcome = "go";
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
        if (p.decide.accessListTitle !== undefined) {
          rec.delivery.title = p.decide.accessListTitle;
        }
      }
      rec.delivery.lock = { owner, until: this.now().getTime() + leaseMs };
      return encodeRec(rec, warn);
    }, { signal, expectKeys: [DELIVERY_KEY] });
    if (outcome === "noop") {
      if (predates) {
        log.debug("Request first seen resolved predates the plugin; not notifying", {
          created: ev.op === "put" ? ev.request.created?.toISOString() ?? "" : "",
          watermark: ((w) => w === undefined ? "unknown" : new Date(w).toISOString())(
            this.o.watermark?.value(),
          ),
        });
      }
      return { sent: 0, noop: true };
    }
    if (outcome === "busy") {
      throw new RequestBusyError(
        `Request "${requestId}" is being handled by another instance (lease until ${
          new Date(busyUntil).toISOString()
        })`,
        busyUntil,
      );
    }

    let rec = decodeRec(acquired.new);
    // What we last wrote, raw and decoded: under our lease nobody else writes, so records skip
    // the read, and start from a copy of the decoded record instead of parsing it again.
    let lastRaw = acquired.new ?? null;
    let lastRec = rec;
    const current = (cur: PluginDataMap | undefined): Rec =>
      cur !== undefined && cur === lastRaw ? cloneRec(lastRec) : decodeRec(cur);
    if (created && rec.delivery.recipients.length === 0) log.warn("No recipients to send");

    // Bookkeeping: one CAS at a time, under our lease, each on its own budget. Records asked for
    // while a write is in flight share the next write (group commit): fewer round trips, and
    // every send is still recorded by the first write that starts after it succeeded.
    const recordTimeout = this.o.recordTimeoutMs ?? DEFAULT_RECORD_TIMEOUT_MS;
    let queued: Array<{ mutate: (r: Rec) => void; done: (err?: unknown) => void }> = [];
    let writing: Promise<void> | undefined;
    const write = async (mutates: Array<(r: Rec) => void>): Promise<void> => {
      // A short Teleport outage must not lose the record of an email already sent: retry
      // transient errors within the record budget.
      const budget = AbortSignal.timeout(recordTimeout);
      let written: Rec | undefined;
      const res = await withRetry(
        () =>
          casPluginDataMap(this.o.client, requestId, this.plugin, (cur) => {
            const r = current(cur);
            if (r.delivery.lock?.owner !== owner) {
              throw new TeleportEmailError(
                `Lost the lease on request "${requestId}" while sending; another instance took over`,
              );
            }
            for (const mutate of mutates) mutate(r);
            // Renew the lease with every record, so a slow but live invocation keeps it.
            r.delivery.lock.until = this.now().getTime() + leaseMs;
            written = r;
            return encodeRec(r, warn);
          }, { signal: budget, expectKeys: [DELIVERY_KEY], initial: lastRaw }),
        {
          signal: budget,
          isRetryable: (err) =>
            err instanceof TeleportError && (err.retryable || err.kind === "compare_failed"),
          baseMs: 50,
          capMs: 1000,
        },
      );
      // `written` is what the successful attempt encoded (modify ran last for it).
      rec = written!;
      lastRec = written!;
      lastRaw = res.new ?? null;
    };
    const writeQueued = async (): Promise<void> => {
      while (queued.length > 0) {
        const batch = queued;
        queued = [];
        let error: unknown;
        try {
          await write(batch.map((b) => b.mutate));
        } catch (err) {
          error = err ?? new Error("record failed");
        }
        for (const b of batch) b.done(error);
      }
      writing = undefined;
    };
    const record = (mutate: (r: Rec) => void): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        queued.push({ mutate, done: (err) => err === undefined ? resolve() : reject(err) });
        writing ??= writeQueued();
      });

    const failures: Error[] = [];
    /** Emails not sent (yet) for a retryable reason, for the shutdown warning. */
    const unsent: Array<{ email: string; kind: string }> = [];
    let retryable = false;
    let sent = 0;
    const fail = (err: unknown, email?: string, kind?: string) => {
      failures.push(errorOf(err));
      if (isRetryable(err)) {
        retryable = true;
        if (email !== undefined && kind !== undefined) unsent.push({ email, kind });
      }
    };

    try {
      // 2. New threads.
      const p1 = this.plan(rec, ev, recipientsOnce);
      if (p1.newThreads.length > 0 && ev.op === "put") {
        const content = this.composer.newRequest(this.requestContext(rec, ev));
        await pool(p1.newThreads, this.o.sendConcurrency ?? 4, async (email) => {
          try {
            const res = await this.send(email, content, undefined, signal);
            const timestamp = formatGoTimestamp(this.now());
            sent++;
            const thread = { email, timestamp, messageId: res.messageId };
            const problem = threadEncodingProblem(thread);
            await record((r) => {
              if (problem !== undefined) {
                // Go's thread list cannot hold it: sent, but no replies (never resent).
                if (!r.delivery.failed.includes(email)) r.delivery.failed.push(email);
                return;
              }
              if (!r.data.threads.some((t) => t.email === email)) r.data.threads.push(thread);
              r.delivery.threads[email] = { reviews: 0, resolved: false };
            });
            if (problem !== undefined) {
              log.warn("Cannot store email thread in plugin data", { email, error: problem });
            }
            log.info("Successfully sent", {
              email,
              timestamp,
              message_id: res.messageId,
              kind: "new threads",
            });
          } catch (err) {
            if (err instanceof MailerError && !err.retryable) {
              await record((r) => {
                if (!r.delivery.failed.includes(email)) r.delivery.failed.push(email);
              });
            }
            fail(err, email, "new threads");
          }
        }, fail);
      }

      // 3. Replies: reviews, then the resolution, per thread.
      const p2 = this.plan(rec, ev, recipientsOnce);
      const logged = new Set<number>();
      const reviews = ev.op === "put" ? ev.request.reviews : [];
      let resolutionContent: EmailContent | undefined;
      let resolutionSent = false;
      await pool(p2.replies, this.o.sendConcurrency ?? 4, async (reply) => {
        for (let i = reply.fromReview; i < reply.toReview; i++) {
          const review = reviews[i];
          if (!logged.has(i)) {
            logged.add(i);
            log.info("New review for request", {
              request_id: requestId,
              author: review.author,
              state: review.proposedState,
            });
          }
          const content = this.composer.review(
            { clusterName: this.o.clusterName, requestId },
            review,
          );
          const ok = await this.reply(
            reply,
            content,
            "new review",
            signal,
            log,
            fail,
            record,
            (r) => {
              const prog = r.delivery.threads[reply.email] ?? { reviews: 0, resolved: false };
              prog.reviews = Math.max(prog.reviews, i + 1);
              r.delivery.threads[reply.email] = prog;
            },
          );
          if (ok === "retry") return;
          if (ok === "sent") sent++;
        }
        if (!reply.resolution) return;
        resolutionContent ??= this.resolutionContent(rec, ev);
        const ok = await this.reply(
          reply,
          resolutionContent,
          "request resolved",
          signal,
          log,
          fail,
          record,
          (r) => {
            const prog = r.delivery.threads[reply.email] ?? { reviews: 0, resolved: false };
            prog.resolved = true;
            r.delivery.threads[reply.email] = prog;
          },
        );
        if (ok === "sent") {
          sent++;
          resolutionSent = true;
        }
      }, fail);
      if (resolutionSent || (decided !== undefined && failures.length === 0)) {
        log.info("Marked request with resolution and sent emails", {
          resolution: rec.data.resolution.tag,
        });
      }
    } finally {
      // 4. Release the lease (best effort: it expires anyway).
      while (writing !== undefined) await writing;
      try {
        await casPluginDataMap(this.o.client, requestId, this.plugin, (cur) => {
          const r = current(cur);
          if (r.delivery.lock?.owner !== owner) return undefined;
          delete r.delivery.lock;
          return encodeRec(r, warn);
        }, {
          signal: AbortSignal.timeout(recordTimeout),
          expectKeys: [DELIVERY_KEY],
          initial: lastRaw,
        });
      } catch (err) {
        log.debug("Failed to release the request lease", { error: errorOf(err).message });
      }
    }

    if (
      failures.length > 0 && unsent.length === failures.length &&
      signal.reason instanceof ShutdownAbort
    ) {
      // Cut off by shutdown: nothing failed, the emails are simply not sent yet. The lease was
      // released above, so the next start (or another replica, at once) sends them.
      for (const u of unsent) {
        log.warn(
          "Email not sent because the plugin is shutting down; the next start or another replica will send it",
          { email: u.email, kind: u.kind },
        );
      }
      throw new RequestInterrupted(requestId, unsent.map((u) => u.email));
    }
    if (failures.length > 0) {
      const failure = new RequestFailure("Failed to send emails", failures, retryable);
      log.error("Failed send one or more messages", {
        error: failure.message,
        retry: sendFailureRetry(failures),
      });
      if (retryable) throw failure;
    }
    return { sent, noop: false };
  }

  private async reply(
    reply: Reply,
    content: EmailContent,
    kind: string,
    signal: AbortSignal,
    log: Logger,
    fail: (err: unknown, email?: string, kind?: string) => void,
    record: (mutate: (r: Rec) => void) => Promise<void>,
    mark: (r: Rec) => void,
  ): Promise<"sent" | "failed" | "retry"> {
    try {
      const res = await this.send(reply.email, content, reply.messageId || undefined, signal);
      await record(mark);
      log.info("Successfully sent", {
        email: reply.email,
        timestamp: formatGoTimestamp(this.now()),
        message_id: res.messageId,
        kind,
      });
      return "sent";
    } catch (err) {
      fail(err, reply.email, kind);
      if (err instanceof MailerError && !err.retryable) {
        // Permanently undeliverable to this thread: count it as handled, move on.
        await record(mark);
        return "failed";
      }
      return "retry";
    }
  }

  /** Sends one email, retrying retryable failures with backoff while the event has time. */
  private async send(
    to: string,
    content: EmailContent,
    inReplyTo: string | undefined,
    signal: AbortSignal,
  ) {
    const email = { to, ...content, inReplyTo };
    const limiter = this.limiter;
    return await withRetry(
      () =>
        limiter === undefined
          ? this.o.mailer.send(email, { signal })
          : limiter.run(() => this.o.mailer.send(email, { signal }), signal),
      {
        signal,
        isRetryable,
        maxAttempts: Math.max(1, this.o.sendAttempts ?? 3),
        baseMs: this.o.sendBackoffMs ?? 250,
        capMs: 2000,
      },
    );
  }

  private requestContext(rec: Rec, ev: RequestEvent): RequestContext {
    const req = ev.op === "put" ? ev.request : undefined;
    return {
      clusterName: this.o.clusterName,
      requestId: eventRequestId(ev),
      user: rec.data.user,
      roles: rec.data.roles,
      requestReason: rec.data.requestReason,
      webProxyAddr: this.o.webProxyAddr,
      requestedResources: req?.requestedResources,
      expires: req?.expires,
    };
  }

  private resolutionContent(rec: Rec, ev: RequestEvent): EmailContent {
    const tag = rec.data.resolution.tag as Exclude<ResolutionTag, "">;
    return this.composer.resolution(this.requestContext(rec, ev), {
      tag,
      reason: rec.data.resolution.reason,
      accessListTitle: tag === "PROMOTED" ? rec.delivery.title : undefined,
    });
  }
}
