/**
 * Event dispatch: runs the {@link RequestHandler} for access request events with the Go
 * `watcherjob` discipline, plus retries the Go plugin lacks.
 *
 * - Events of one request run one at a time, in arrival order; different requests run
 *   concurrently, at most `maxRunning` at once (the rest wait queued, in arrival order). At most
 *   `maxInFlight` (128) events are queued or running; {@link submit} waits for room, which is
 *   the back-pressure on the stream reader. With `maxRunning` sized to the mail transport (the
 *   app uses a small multiple of the SMTP pool), a burst is taken in as fast as emails go out:
 *   the queued events are only the requests as received, not leases taken, recipients computed
 *   and messages built, waiting for a connection under a running deadline.
 * - Each event gets its own deadline: the handler's `timing.eventTimeoutMs` (15 s), which the
 *   lease rule accounts for (`lease.ts`). It starts when the event runs, not while it waits.
 * - A failure that may pass (a retryable send failure, a busy lease, a Teleport outage) is
 *   retried later with the request's latest event, with exponential backoff, at most
 *   `maxRetries` times; a newer event of the same request replaces a pending retry. A busy
 *   lease ({@link RequestBusyError}) is retried just after the lease expires instead (plus up
 *   to {@link BUSY_JITTER_MS} of jitter, so replicas waiting on the same lease do not collide):
 *   a live holder releases it sooner and its own engine finishes the job, and a dead holder's
 *   emails are taken over as soon as that is safe, not after a long backoff.
 * - {@link drain} stops retries, drops queued events (the catch-up after the next start handles
 *   them) and waits for running handlers, aborting them after the timeout with
 *   {@link ShutdownAbort}: emails cut off then are logged as warnings (left for the next start or
 *   another replica), not as failures.
 */
import { getLogger, type Logger } from "@logtape/logtape";
import {
  formatError,
  RequestBusyError,
  RequestFailure,
  RequestInterrupted,
  ShutdownAbort,
  TeleportError,
} from "../errors.ts";
import { settledWithin } from "../async.ts";
import type { PluginDataMap } from "../teleport/types.ts";
import type { RequestHandler } from "./handler.ts";
import { eventRequestId, type RequestEvent } from "./plan.ts";
import { NOT_RETRIED, retriesExhausted, retryScheduled } from "./retry_words.ts";
/** Most jitter added after a busy lease's expiry before retrying, in ms. */
export const BUSY_JITTER_MS = 250;

/**
 * Request handlers running at once per parallel send the transport allows: the engine's
 * back-pressure from the mail transport to the watcher (see the file header). Each handler also
 * spends Teleport round trips (lease, records, release) between its sends, so a few per pool
 * connection keep the pool busy; more would only take leases and build messages that wait for a
 * connection while their deadline runs (and grow the heap during bursts).
 */
export const HANDLERS_PER_PARALLEL_SEND = 4;
/** Request handlers running at once when the transport has no send limit (Mailgun). */
export const MAX_RUNNING_UNLIMITED_SENDS = 32;

/** The `maxRunning` for a transport that allows `maxParallelSends` sends at once (or any). */
export function runningHandlersFor(maxParallelSends: number | undefined): number {
  return maxParallelSends === undefined || !Number.isFinite(maxParallelSends)
    ? MAX_RUNNING_UNLIMITED_SENDS
    : Math.max(2, HANDLERS_PER_PARALLEL_SEND * maxParallelSends);
}

/** Options of {@link Engine}. */
export interface EngineOptions {
  /** Its `timing.eventTimeoutMs` is the deadline of each call. */
  handler: Pick<RequestHandler, "handle" | "eventContext" | "needsWork" | "timing">;
  /** Events queued or running at once; default 128. */
  maxInFlight?: number;
  /**
   * Handler calls running at once (different requests); default unlimited. Events beyond it
   * wait queued, in arrival order, before their deadline starts.
   */
  maxRunning?: number;
  /** First retry delay, in ms; default 1000 (doubles, with jitter). */
  retryBaseMs?: number;
  /** Longest retry delay, in ms; default 300 000. */
  retryCapMs?: number;
  /**
   * Retries per request before giving up until its next event or the watcher's periodic
   * catch-up; default 30 (about two hours with the default delays).
   */
  maxRetries?: number;
  log?: Logger;
}

interface RetryState {
  attempt: number;
  timer?: ReturnType<typeof setTimeout>;
}

/** Per-request FIFO dispatch with a concurrency cap, deadlines and retries. */
export class Engine {
  private readonly o: EngineOptions;
  private readonly log: Logger;
  private readonly queues = new Map<string, RequestEvent[]>();
  private readonly retries = new Map<string, RetryState>();
  private readonly running = new Set<Promise<void>>();
  private readonly slotWaiters: Array<() => void> = [];
  /** Workers waiting to run a handler call; each is handed a run slot. */
  private readonly runWaiters: Array<() => void> = [];
  private runningCalls = 0;
  private readonly idleWaiters: Array<() => void> = [];
  private readonly hardStop = new AbortController();
  private count = 0;
  private stopping = false;
  /** Events handled (successfully or not), for tests and metrics. */
  handled = 0;
  failed = 0;

  constructor(opts: EngineOptions) {
    this.o = opts;
    this.log = opts.log ?? getLogger(["teleport-email", "notify"]);
  }

  /** Events queued or running. */
  get inFlight(): number {
    return this.count;
  }

  /** Requests with a retry scheduled. */
  get pendingRetries(): number {
    return [...this.retries.values()].filter((r) => r.timer !== undefined).length;
  }

  /** See {@link RequestHandler.needsWork}. */
  needsWork(ev: RequestEvent, raw: PluginDataMap | undefined): boolean {
    return this.o.handler.needsWork(ev, raw);
  }

  /**
   * Queues `ev` behind earlier events of the same request. Resolves once it is queued (waiting
   * while `maxInFlight` events are in flight); rejects when `signal` aborts while waiting.
   * After {@link drain} started, events are dropped.
   */
  async submit(ev: RequestEvent, opts: { signal?: AbortSignal } = {}): Promise<void> {
    const max = this.o.maxInFlight ?? 128;
    while (this.count >= max && !this.stopping) {
      opts.signal?.throwIfAborted();
      await new Promise<void>((resolve) => {
        const onAbort = () => resolve();
        opts.signal?.addEventListener("abort", onAbort, { once: true });
        this.slotWaiters.push(() => {
          opts.signal?.removeEventListener("abort", onAbort);
          resolve();
        });
      });
    }
    opts.signal?.throwIfAborted();
    if (this.stopping) return;
    const id = eventRequestId(ev);
    const retry = this.retries.get(id);
    if (retry?.timer !== undefined) {
      // A newer event supersedes the pending retry (the handler reconciles from the latest).
      clearTimeout(retry.timer);
      retry.timer = undefined;
    }
    this.count++;
    const queue = this.queues.get(id);
    if (queue !== undefined) {
      queue.push(ev);
      return;
    }
    this.queues.set(id, [ev]);
    const worker = this.work(id).finally(() => this.running.delete(worker));
    this.running.add(worker);
  }

  private async work(id: string): Promise<void> {
    const queue = this.queues.get(id)!;
    while (queue.length > 0) {
      const ev = queue[0];
      if (!this.stopping) {
        await this.takeRunSlot();
        try {
          if (!this.stopping) await this.runOne(ev);
        } finally {
          this.releaseRunSlot();
        }
      }
      queue.shift();
      this.count--;
      this.slotWaiters.shift()?.();
    }
    this.queues.delete(id);
    if (this.count === 0) { for (const w of this.idleWaiters.splice(0)) w(); }
  }

  /** Resolves once fewer than `maxRunning` handler calls run (FIFO); the caller holds a slot. */
  private takeRunSlot(): Promise<void> {
    if (this.runningCalls < (this.o.maxRunning ?? Infinity)) {
      this.runningCalls++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.runWaiters.push(resolve));
  }

  /** Hands the slot straight to the next waiting worker (the count stays), or frees it. */
  private releaseRunSlot(): void {
    const next = this.runWaiters.shift();
    if (next !== undefined) next();
    else this.runningCalls--;
  }

  private async runOne(ev: RequestEvent): Promise<void> {
    const id = eventRequestId(ev);
    const signal = AbortSignal.any([
      AbortSignal.timeout(this.o.handler.timing.eventTimeoutMs),
      this.hardStop.signal,
    ]);
    try {
      await this.o.handler.handle(ev, { signal });
      this.handled++;
      this.retries.delete(id);
    } catch (err) {
      this.handled++;
      this.failed++;
      let retry = NOT_RETRIED;
      if (this.shouldRetry(err)) retry = this.scheduleRetry(ev, err);
      else this.retries.delete(id);
      const log = this.log.with(this.o.handler.eventContext(ev));
      if (err instanceof RequestInterrupted) {
        // The handler has warned about each unsent email.
        log.debug("Shutdown interrupted the request", { error: formatError(err) });
      } else if (this.hardStop.signal.aborted) {
        log.warn(
          "Request not handled because the plugin is shutting down; the next start or another replica will handle it",
          { error: formatError(err) },
        );
      } else if (err instanceof RequestBusyError) {
        log.debug("Request is being handled by another instance; will retry", {
          error: formatError(err),
          retry,
        });
      } else {
        log.error(
          ev.op === "delete" ? "Failed to process deleted request" : "Failed to process request",
          { error: formatError(err), retry },
        );
      }
    }
  }

  private shouldRetry(err: unknown): boolean {
    if (this.stopping) return false;
    if (err instanceof RequestBusyError) return true;
    if (err instanceof RequestFailure) return err.retryable;
    if (err instanceof TeleportError) {
      return err.retryable || err.kind === "compare_failed" || err.kind === "unknown" ||
        err.kind === "canceled";
    }
    // Deadline exceeded (AbortSignal.timeout) and unexpected errors: try again later.
    return true;
  }

  /** Schedules the next attempt; returns the log's `retry` words (when, or why not). */
  private scheduleRetry(ev: RequestEvent, err: unknown): string {
    const id = eventRequestId(ev);
    const state = this.retries.get(id) ?? { attempt: 0 };
    state.attempt++;
    const max = this.o.maxRetries ?? 30;
    if (state.attempt > max) {
      this.retries.delete(id);
      return retriesExhausted(max);
    }
    const base = this.o.retryBaseMs ?? 1000;
    const cap = this.o.retryCapMs ?? 300_000;
    let delay: number;
    if (err instanceof RequestBusyError) {
      // Just after the holder's lease expires (bounded, in case of a far-off clock).
      const left = Math.min(cap, Math.max(0, err.until - Date.now()));
      delay = Math.round(left + Math.random() * BUSY_JITTER_MS);
    } else {
      const exp = Math.min(cap, base * 2 ** (state.attempt - 1));
      delay = Math.round(exp / 2 + Math.random() * exp / 2);
    }
    if (state.timer !== undefined) clearTimeout(state.timer);
    state.timer = setTimeout(() => {
      state.timer = undefined;
      this.submit(ev).catch(() => {});
    }, delay);
    this.retries.set(id, state);
    return retryScheduled(delay, new Date(), state.attempt, max);
  }

  /** Resolves when no event is queued or running (retries may still be scheduled). */
  idle(): Promise<void> {
    if (this.count === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /**
   * Stops: cancels retries, drops queued events and waits up to `timeoutMs` for running
   * handlers; then aborts them and waits briefly for their bookkeeping. Returns whether every
   * handler finished in time.
   */
  async drain(timeoutMs = 15_000): Promise<boolean> {
    this.stopping = true;
    for (const r of this.retries.values()) if (r.timer !== undefined) clearTimeout(r.timer);
    this.retries.clear();
    for (const w of this.slotWaiters.splice(0)) w();
    // Waiting workers get a slot each, see `stopping` and drop their events.
    for (const w of this.runWaiters.splice(0)) {
      this.runningCalls++;
      w();
    }
    const all = Promise.all([...this.running]).then(() => true);
    if (await settledWithin(all, timeoutMs, false)) return true;
    this.hardStop.abort(new ShutdownAbort());
    await settledWithin(all, 2000, false);
    return false;
  }
}
