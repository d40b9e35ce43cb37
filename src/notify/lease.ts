/**
 * The per-request lease (`email_delivery.lock`) and the records written under it: what keeps
 * sending exactly-once across retries and replicas.
 *
 * 1. The lease is taken by CAS ({@link takeLease}), together with the start of the delivery (a
 *    new record, a resolution decided now), and only when the plan needs something. It lets one
 *    handler invocation in the whole fleet send for a request at a time. An invocation that
 *    finds a live lease of someone else sends nothing: `busy`, with the lease's expiry `until`
 *    (the engine retries just after it; by then the holder has released it or died).
 * 2. Every send is recorded by a CAS ({@link Lease.record}: the thread appended, or its
 *    review/resolution progress raised) started once the sends that were under way when it was
 *    asked for have ended (sends that finish together share one write; records asked for while a
 *    write is in flight share the next one), and a thread's next email waits for that record, so
 *    at most one email per thread is "sent but not recorded" at any time. Records use their own budget
 *    ({@link LeaseTiming.recordTimeoutMs}), not the event deadline, and renew the lease.
 * 3. The lease is released when the invocation ends ({@link Lease.release}, best effort: it
 *    expires anyway), in the same write as the records still waiting: a new request's emails
 *    cost two writes in all (the lease, then the records with the release).
 *
 * The lease rule ({@link leaseTiming} enforces it): the lease must outlast everything a live
 * holder does without renewing it, or a second instance could take over while the first still
 * sends (duplicates). A holder's invocation runs under the event deadline (the engine's, from
 * before the lease is taken): every send, and every in-event send retry, starts under that
 * signal and is abandoned when it fires. The record of a send then gets its own budget and
 * renews the lease when it lands. So the longest a live holder goes from taking (or renewing)
 * the lease to its last renewing write is deadline + record budget, and the rest of the lease
 * covers clock skew between replicas (the expiry is the holder's wall clock, compared with the
 * reader's): lease ≥ event deadline + record budget + clock-skew allowance. What the lease does
 * not cover, no lease length would: Teleport refusing records for longer than their budget (the
 * sent emails stay unrecorded and are resent: at-least-once) and an SMTP transaction already
 * handed to the server when the deadline fired (with `maxParallelSends` set to the SMTP pool
 * size, a send still waiting for a connection waits in the handler, where the deadline cancels
 * it, not in nodemailer's queue, from which it would still go out late). A shorter lease
 * matters after a crash: a new process (or another replica) retries just after the dead
 * holder's lease expires, so recovery takes at most one lease length.
 *
 * Trade-off: sending and recording cannot be atomic. If a process dies after a send and before
 * its record (a window of one email per thread), its lease expires and the email is sent again
 * (at-least-once on crash). Everything else is exactly-once across retries and replicas.
 */
import { withRetry } from "../async.ts";
import { TeleportEmailError, TeleportError } from "../errors.ts";
import type { TeleportClient } from "../teleport/client.ts";
import type { PluginDataMap } from "../teleport/types.ts";
import { casPluginDataMap } from "./cas.ts";
import { DELIVERY_KEY, type LeaseLock } from "./delivery_state.ts";
import { cloneRec, decodeRec, encodeRec, isNoop, type Plan, type Rec } from "./plan.ts";

/** The durations the lease rule relates (see the file header), in ms. */
export interface LeaseTiming {
  /** Lease length. */
  leaseMs: number;
  /** Deadline of one handler invocation (the engine applies it). */
  eventTimeoutMs: number;
  /** Budget of each bookkeeping write after a send. */
  recordTimeoutMs: number;
  /** Clock skew between replicas the lease must still absorb. */
  clockSkewMs: number;
}

/** Default lease length (30 s). */
export const DEFAULT_LEASE_MS = 30_000;
/** Default deadline of one handler invocation (15 s). */
export const DEFAULT_EVENT_TIMEOUT_MS = 15_000;
/** Default budget of each record write (5 s). */
export const DEFAULT_RECORD_TIMEOUT_MS = 5000;
/** Default clock-skew allowance between replicas (10 s). */
export const DEFAULT_CLOCK_SKEW_MS = 10_000;

/**
 * The defaults with `over` applied, checked against the lease rule: throws when
 * `leaseMs < eventTimeoutMs + recordTimeoutMs + clockSkewMs` or a duration is not positive, so a
 * configuration that could send twice never starts.
 */
export function leaseTiming(over: Partial<LeaseTiming> = {}): LeaseTiming {
  const t: LeaseTiming = {
    leaseMs: over.leaseMs ?? DEFAULT_LEASE_MS,
    eventTimeoutMs: over.eventTimeoutMs ?? DEFAULT_EVENT_TIMEOUT_MS,
    recordTimeoutMs: over.recordTimeoutMs ?? DEFAULT_RECORD_TIMEOUT_MS,
    clockSkewMs: over.clockSkewMs ?? DEFAULT_CLOCK_SKEW_MS,
  };
  for (const [name, value] of Object.entries(t)) {
    if (!(Number.isFinite(value) && value > 0)) {
      throw new TeleportEmailError(`Invalid lease timing: ${name} must be positive, got ${value}`);
    }
  }
  const needed = t.eventTimeoutMs + t.recordTimeoutMs + t.clockSkewMs;
  if (t.leaseMs < needed) {
    throw new TeleportEmailError(
      `Invalid lease timing: the lease (${t.leaseMs} ms) must last at least the event deadline ` +
        `(${t.eventTimeoutMs} ms) + the record budget (${t.recordTimeoutMs} ms) + the clock-skew ` +
        `allowance (${t.clockSkewMs} ms) = ${needed} ms, or two instances could send the same email`,
    );
  }
  return t;
}

type Warn = (msg: string, attrs: Record<string, unknown>) => void;

/** Where a lease lives and who takes it. */
export interface LeaseScope {
  client: TeleportClient;
  requestId: string;
  /** Plugin data name. */
  plugin: string;
  /** This invocation's lease owner, `<instance>/<seq>`. */
  owner: string;
  /** This handler instance's ID (the owner's prefix). */
  instanceId: string;
  timing: LeaseTiming;
  /** Wall clock, unix ms. */
  now: () => number;
  warn: Warn;
}

/** What {@link takeLease} found. */
export type TakeResult =
  | { kind: "noop"; plan: Plan }
  | { kind: "busy"; lock: LeaseLock }
  | { kind: "taken"; plan: Plan; lease: Lease };

/** Options of {@link takeLease}. */
export interface TakeOptions {
  /** What the event needs given a stored record (pure: may run several times). */
  plan: (rec: Rec) => Plan;
  /** Applies the start of the plan to the record written with the lease (pure). */
  start: (rec: Rec, plan: Plan) => void;
  /** Extra fields stored in the lease (who holds it). */
  holder?: LeaseLock["holder"];
  /**
   * The owner of a live lease known to be dead: taken over although it has not expired (when it
   * is still the stored one).
   */
  deadOwner?: string;
  /**
   * Write without reading first, expecting nothing stored (a request seen for the first time):
   * one round trip less; a wrong guess fails the compare and reads (see `cas.ts`).
   */
  assumeAbsent?: boolean;
  signal: AbortSignal;
}

/**
 * Decides and takes the lease in one CAS (nothing is written when nothing is needed). Our own
 * instance's older lease is stale (the caller serialises a request's events, so that invocation
 * has ended and its release failed); anyone else's live lease makes the request busy.
 */
export async function takeLease(scope: LeaseScope, opts: TakeOptions): Promise<TakeResult> {
  let result: { kind: "noop"; plan: Plan } | { kind: "busy"; lock: LeaseLock } | undefined;
  let planned!: Plan;
  const acquired = await casPluginDataMap(scope.client, scope.requestId, scope.plugin, (cur) => {
    const rec = decodeRec(cur);
    planned = opts.plan(rec);
    result = undefined;
    if (isNoop(planned)) {
      result = { kind: "noop", plan: planned };
      return undefined;
    }
    const lock = rec.delivery.lock;
    const ours = lock?.owner.startsWith(`${scope.instanceId}/`) ?? false;
    const live = lock !== undefined && lock.until > scope.now();
    if (live && !ours && lock.owner !== opts.deadOwner) {
      result = { kind: "busy", lock };
      return undefined;
    }
    opts.start(rec, planned);
    rec.delivery.lock = { owner: scope.owner, until: scope.now() + scope.timing.leaseMs };
    if (opts.holder !== undefined) rec.delivery.lock.holder = opts.holder;
    return encodeRec(rec, scope.warn);
  }, { signal: opts.signal, expectKeys: [DELIVERY_KEY], assumeAbsent: opts.assumeAbsent });
  if (result !== undefined) return result;
  return { kind: "taken", plan: planned, lease: new Lease(scope, acquired.new) };
}

interface Queued {
  mutate: (r: Rec) => void;
  done: (err?: unknown) => void;
  /** Sends with a lower number were under way when the record was asked for. */
  barrier: number;
}

/**
 * A lease this invocation holds: records sends under it ({@link record}) and releases it
 * ({@link release}). Under our lease nobody else writes, so writes start from what we last
 * wrote (a copy of it, instead of reading and parsing it again).
 */
export class Lease {
  readonly #scope: LeaseScope;
  #lastRaw: PluginDataMap | null;
  #lastRec: Rec;
  #queued: Queued[] = [];
  /** The records of the write in flight. */
  #inFlight: Queued[] = [];
  #writing: Promise<void> | undefined;
  /** The numbers of the sends under way ({@link during}). */
  readonly #sending = new Set<number>();
  #sendNumber = 0;
  /** The write scheduled once sends stopped (a turn later, so a release can take it along). */
  #timer: ReturnType<typeof setTimeout> | undefined;
  #releasing = false;

  constructor(scope: LeaseScope, raw: PluginDataMap | undefined) {
    this.#scope = scope;
    this.#lastRaw = raw ?? null;
    this.#lastRec = decodeRec(raw);
  }

  /**
   * The record with every send recorded or waiting to be ({@link record}): what this invocation
   * has done. Equal to the last write when nothing waits.
   */
  get rec(): Rec {
    const waiting = [...this.#inFlight, ...this.#queued];
    if (waiting.length === 0) return this.#lastRec;
    const r = cloneRec(this.#lastRec);
    for (const q of waiting) q.mutate(r);
    return r;
  }

  /** Runs one send; a record asked for meanwhile waits for it (see {@link record}). */
  async during<T>(send: () => Promise<T>): Promise<T> {
    const n = this.#sendNumber++;
    this.#sending.add(n);
    try {
      return await send();
    } finally {
      this.#sending.delete(n);
      this.#schedule();
    }
  }

  /**
   * Stores `mutate` applied to the record, renewing the lease. The write starts a turn after the
   * sends that were under way ({@link during}) when it was asked for have ended (sends started
   * later do not hold it back); records asked for until then, or while a write is in flight,
   * share the write (group commit): fewer round trips, and every send is still recorded by the
   * first write that starts after it succeeded.
   */
  record(mutate: (r: Rec) => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done = (err?: unknown) => err === undefined ? resolve() : reject(err);
      this.#queued.push({ mutate, done, barrier: this.#sendNumber });
      this.#schedule();
    });
  }

  /** Writes every waiting record now (for an email that must follow them). */
  async flush(): Promise<void> {
    this.#cancelTimer();
    while (this.#writing !== undefined || this.#queued.length > 0) {
      this.#writing ??= this.#writeQueued();
      await this.#writing;
    }
  }

  #schedule(): void {
    if (this.#releasing || this.#writing !== undefined || this.#timer !== undefined) return;
    if (this.#queued.length === 0 || this.#heldBack()) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#writing ??= this.#writeQueued();
    }, 0);
  }

  /**
   * Whether a send under way started before a waiting record was asked for. Barriers only grow
   * along the queue, so the last record's is the highest.
   */
  #heldBack(): boolean {
    const barrier = this.#queued[this.#queued.length - 1].barrier;
    for (const n of this.#sending) if (n < barrier) return true;
    return false;
  }

  #cancelTimer(): void {
    if (this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Removes the lease (best effort: it expires anyway), in one write with the records still
   * waiting, if any. Returns the error of a failed release, if any (a failed write of waiting
   * records also fails their {@link record} promises).
   */
  async release(): Promise<Error | undefined> {
    this.#releasing = true;
    this.#cancelTimer();
    while (this.#writing !== undefined) await this.#writing;
    if (this.#queued.length > 0) {
      const batch = this.#queued;
      this.#queued = [];
      return await this.#writeBatch(batch, true);
    }
    try {
      await casPluginDataMap(
        this.#scope.client,
        this.#scope.requestId,
        this.#scope.plugin,
        (cur) => {
          const r = this.#current(cur);
          if (r.delivery.lock?.owner !== this.#scope.owner) return undefined;
          delete r.delivery.lock;
          return encodeRec(r, this.#scope.warn);
        },
        {
          signal: AbortSignal.timeout(this.#scope.timing.recordTimeoutMs),
          expectKeys: [DELIVERY_KEY],
          initial: this.#lastRaw,
        },
      );
      return undefined;
    } catch (err) {
      return err instanceof Error ? err : new Error(String(err));
    }
  }

  #current(cur: PluginDataMap | undefined): Rec {
    return cur !== undefined && cur === this.#lastRaw ? cloneRec(this.#lastRec) : decodeRec(cur);
  }

  async #writeQueued(): Promise<void> {
    while (this.#queued.length > 0 && !this.#releasing) {
      const batch = this.#queued;
      this.#queued = [];
      await this.#writeBatch(batch, false);
    }
    this.#writing = undefined;
    this.#schedule();
  }

  /** One write of `batch` (and the release with it); settles each record, returns the error. */
  async #writeBatch(batch: Queued[], release: boolean): Promise<Error | undefined> {
    this.#inFlight = batch;
    let error: Error | undefined;
    try {
      await this.#write(batch.map((b) => b.mutate), release);
    } catch (err) {
      error = err instanceof Error ? err : new Error(String(err ?? "record failed"));
    }
    this.#inFlight = [];
    for (const b of batch) b.done(error);
    return error;
  }

  /**
   * One record write. A short Teleport outage must not lose the record of an email already
   * sent: transient errors are retried within the record budget.
   */
  async #write(mutates: Array<(r: Rec) => void>, release: boolean): Promise<void> {
    const { client, requestId, plugin, owner, timing } = this.#scope;
    const budget = AbortSignal.timeout(timing.recordTimeoutMs);
    let written: Rec | undefined;
    const res = await withRetry(
      () =>
        casPluginDataMap(client, requestId, plugin, (cur) => {
          const r = this.#current(cur);
          if (r.delivery.lock?.owner !== owner) {
            throw new TeleportEmailError(
              `Lost the lease on request "${requestId}" while sending; another instance took over`,
            );
          }
          for (const mutate of mutates) mutate(r);
          // Renew the lease with every record, so a slow but live invocation keeps it; the last
          // write of the invocation removes it instead.
          if (release) delete r.delivery.lock;
          else r.delivery.lock.until = this.#scope.now() + timing.leaseMs;
          written = r;
          return encodeRec(r, this.#scope.warn);
        }, { signal: budget, expectKeys: [DELIVERY_KEY], initial: this.#lastRaw }),
      {
        signal: budget,
        isRetryable: (err) =>
          err instanceof TeleportError && (err.retryable || err.kind === "compare_failed"),
        baseMs: 50,
        capMs: 1000,
      },
    );
    // `written` is what the successful attempt encoded (its modify ran last).
    this.#lastRec = written!;
    this.#lastRaw = res.new ?? null;
  }
}
