/**
 * Handles one access request event: plans from the stored plugin data what is still missing
 * (`plan.ts`), takes the request's lease together with the start of the delivery (`lease.ts`),
 * sends and records the missing emails (`delivery.ts`), and releases the lease. Safe to call
 * concurrently for different requests; the caller (the engine) serialises events of one
 * request and gives each call its deadline ({@link LeaseTiming.eventTimeoutMs}).
 *
 * Guarantees (details in those files): each email is sent once across retries, events and
 * replicas (at-least-once only for the one email per thread in flight when a process dies);
 * per thread, emails go in order; an event that needs nothing reads once and writes nothing.
 */
import { getLogger, type Logger } from "@logtape/logtape";
import { Limiter } from "../async.ts";
import { RequestBusyError } from "../errors.ts";
import type { Mailer } from "../mailers/mailer.ts";
import type { TeleportClient } from "../teleport/client.ts";
import type { AccessRequest, PluginDataMap } from "../teleport/types.ts";
import { newRequestEmail, resolutionEmail, reviewEmail } from "../templates/mod.ts";
import { type Composer, Delivery, type SendPolicy } from "./delivery.ts";
import type { LeaseHolder, LeaseLock } from "./delivery_state.ts";
import { type LeaseScope, type LeaseTiming, leaseTiming, takeLease } from "./lease.ts";
import {
  decodeRec,
  eventRequestId,
  isNoop,
  knownState,
  type Plan,
  plan,
  type Rec,
  type RequestEvent,
  startDelivery,
} from "./plan.ts";
import type { Watermark } from "./watermark.ts";

export type { Composer };

/** How many recently handled request IDs a handler remembers (see `firstSight`). */
const SEEN_MAX = 4096;

/** The default {@link Composer}: our templates. */
export const DEFAULT_COMPOSER: Composer = {
  newRequest: newRequestEmail,
  resolution: resolutionEmail,
  review: reviewEmail,
};

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
  /**
   * Lease length, event deadline, record budget and clock-skew allowance; default
   * {@link leaseTiming}'s. Checked against the lease rule: the constructor throws when they
   * break it.
   */
  timing?: Partial<LeaseTiming>;
  /**
   * Decides which requests first seen resolved are notified (see `plan.ts`); default none (a
   * resolved request with no plugin data is never notified).
   */
  watermark?: Pick<Watermark, "value">;
  /** Identifies this instance in leases; default a random UUID. */
  instanceId?: string;
  /** This process, written into the leases it takes; default: not written. */
  holder?: LeaseHolder;
  /**
   * Whether the process holding `lock` (a live lease of another instance) is known to have
   * exited, so the lease can be taken over at once; default: never known.
   */
  holderGone?: (lock: LeaseLock) => Promise<boolean>;
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

/**
 * Handles access request events: decides from the stored plugin data what is missing and sends
 * it (see the file header).
 */
export class RequestHandler {
  /** The lease rule's durations; the caller applies {@link LeaseTiming.eventTimeoutMs}. */
  readonly timing: LeaseTiming;
  private readonly o: HandlerOptions;
  private readonly plugin: string;
  private readonly log: Logger;
  private readonly instanceId: string;
  private readonly policy: SendPolicy;
  private seq = 0;
  /** Requests this instance handled lately (at most {@link SEEN_MAX}), oldest first. */
  private readonly seen = new Set<string>();

  constructor(opts: HandlerOptions) {
    this.o = opts;
    this.timing = leaseTiming(opts.timing);
    this.plugin = opts.plugin ?? "email";
    this.log = opts.log ?? getLogger(["teleport-email", "notify"]);
    this.instanceId = opts.instanceId ?? crypto.randomUUID();
    const max = opts.maxParallelSends;
    this.policy = {
      mailer: opts.mailer,
      composer: opts.composer ?? DEFAULT_COMPOSER,
      clusterName: opts.clusterName,
      webProxyAddr: opts.webProxyAddr,
      limiter: max !== undefined && Number.isFinite(max) ? new Limiter(max) : undefined,
      concurrency: opts.sendConcurrency ?? 4,
      attempts: opts.sendAttempts ?? 3,
      backoffMs: opts.sendBackoffMs ?? 250,
      now: () => this.now(),
    };
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
    if (ev.op === "put" && !knownState(ev.request.state)) return false;
    return !isNoop(plan(decodeRec(raw), ev, () => ["?"], this.o.watermark?.value()));
  }

  /**
   * Handles one event. Returns normally when everything needed was done or failed permanently;
   * throws {@link RequestBusyError} or a retryable `RequestFailure` when a later attempt should
   * finish the job, `RequestInterrupted` when shutdown cut it off, and rethrows Teleport errors
   * of reads and writes.
   */
  async handle(ev: RequestEvent, opts: { signal?: AbortSignal } = {}): Promise<HandleResult> {
    const signal = opts.signal ?? new AbortController().signal;
    const requestId = eventRequestId(ev);
    const log = this.log.with(this.eventContext(ev));
    if (ev.op === "put" && !knownState(ev.request.state)) {
      log.warn("Unknown request state");
      return { sent: 0, noop: true };
    }
    const planFor = this.planner(ev);
    const scope = this.leaseScope(requestId, log);
    const taken = await this.take(scope, planFor, ev, signal, log);
    if (taken.kind === "noop") {
      if (taken.plan.predates) this.logPredates(ev, log);
      return { sent: 0, noop: true };
    }
    const { lease } = taken;
    if (taken.plan.create && lease.rec.delivery.recipients.length === 0) {
      log.warn("No recipients to send");
    }
    const delivery = new Delivery({
      policy: this.policy,
      ev,
      requestId,
      lease,
      plan: planFor,
      signal,
      log,
    });
    try {
      await delivery.newThreads();
      const resolutionSent = await delivery.replies();
      if (resolutionSent || (taken.plan.decide !== undefined && delivery.clean)) {
        log.info("Marked request with resolution and sent emails", {
          resolution: lease.rec.data.resolution.tag,
        });
      }
    } finally {
      const err = await lease.release();
      if (err !== undefined) {
        log.debug("Failed to release the request lease", { error: err.message });
      }
      await delivery.recorded();
    }
    return { sent: delivery.finish(), noop: false };
  }

  /** Plans `ev` against a record; the recipients are computed at most once per event. */
  private planner(ev: RequestEvent): (rec: Rec) => Plan {
    let recipients: string[] | undefined;
    const once = () => recipients ??= ev.op === "put" ? this.o.recipients(ev.request) : [];
    return (rec) => plan(rec, ev, once, this.o.watermark?.value());
  }

  private leaseScope(requestId: string, log: Logger): LeaseScope {
    return {
      client: this.o.client,
      requestId,
      plugin: this.plugin,
      owner: `${this.instanceId}/${++this.seq}`,
      instanceId: this.instanceId,
      timing: this.timing,
      now: () => this.now().getTime(),
      warn: (msg, attrs) => log.warn(msg, attrs),
    };
  }

  /**
   * Takes the lease, or finds nothing to do; throws {@link RequestBusyError} when someone else
   * holds it. A live lease whose holder is known to be gone ({@link HandlerOptions.holderGone})
   * is taken over at once.
   */
  private async take(
    scope: LeaseScope,
    planFor: (rec: Rec) => Plan,
    ev: RequestEvent,
    signal: AbortSignal,
    log: Logger,
  ) {
    const opts = {
      plan: planFor,
      start: (rec: Rec, p: Plan) => startDelivery(rec, p, ev),
      holder: this.o.holder,
      signal,
    };
    let taken = await takeLease(scope, { ...opts, assumeAbsent: this.firstSight(ev) });
    if (taken.kind === "busy" && await this.o.holderGone?.(taken.lock)) {
      const dead = taken.lock;
      taken = await takeLease(scope, { ...opts, deadOwner: dead.owner });
      if (taken.kind === "taken") {
        log.info("Took over the lease of a process that is no longer running", {
          holder_host: dead.holder?.host ?? "",
          holder_pid: dead.holder?.pid ?? 0,
          lease_until: new Date(dead.until).toISOString(),
        });
      }
    }
    if (taken.kind === "busy") {
      const until = taken.lock.until;
      throw new RequestBusyError(
        `Request "${scope.requestId}" is being handled by another instance (lease until ${
          new Date(until).toISOString()
        })`,
        until,
      );
    }
    return taken;
  }

  /**
   * Whether `ev` is likely the first event of a new request: a pending request without reviews
   * that this instance has not handled lately. Its lease is then taken without reading the
   * plugin data first (one round trip less before its emails go out); a wrong guess costs a
   * compare failure.
   */
  private firstSight(ev: RequestEvent): boolean {
    const id = eventRequestId(ev);
    const first = !this.seen.has(id) && ev.op === "put" && ev.request.state === "PENDING" &&
      ev.request.reviews.length === 0;
    this.seen.delete(id);
    this.seen.add(id);
    if (this.seen.size > SEEN_MAX) this.seen.delete(this.seen.values().next().value!);
    return first;
  }

  private logPredates(ev: RequestEvent, log: Logger): void {
    const watermark = this.o.watermark?.value();
    log.debug("Request first seen resolved predates the plugin; not notifying", {
      created: ev.op === "put" ? ev.request.created?.toISOString() ?? "" : "",
      watermark: watermark === undefined ? "unknown" : new Date(watermark).toISOString(),
    });
  }
}
