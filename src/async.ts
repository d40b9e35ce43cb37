/**
 * Small async building blocks shared by the watcher, the notification engine and the
 * compare-and-swap helpers: {@link delay}, {@link abortable}, {@link settledWithin},
 * {@link pool}, {@link Limiter} and {@link withRetry} (decorrelated-jitter backoff bounded by an
 * AbortSignal).
 */

/**
 * Resolves after `ms`; rejects with `signal.reason` as soon as `signal` aborts (at once when it
 * already has).
 */
export function delay(ms: number, opts: { signal?: AbortSignal } = {}): Promise<void> {
  const { signal } = opts;
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * `promise`, or a rejection with `signal.reason` if `signal` aborts first (`promise` itself
 * without a signal). `cleanup` runs on that abort, before the rejection: it can stop the work
 * behind `promise` (close its socket, say); without one the work goes on, so pass the signal to
 * it too when it accepts one. A late settling of `promise` after the abort is handled.
 */
export function abortable<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  cleanup?: () => void,
): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) {
    // Nobody awaits `promise` any more: its rejection must not go unhandled.
    promise.catch(() => {});
    cleanup?.();
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      cleanup?.();
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * `promise`'s outcome, or `onTimeout` when it has not settled within `ms`. The timer is cleared
 * either way; the work behind `promise` is not cancelled.
 */
export async function settledWithin<T, U>(
  promise: Promise<T>,
  ms: number,
  onTimeout: U,
): Promise<T | U> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<U>((resolve) => {
    timer = setTimeout(() => resolve(onTimeout), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs `fn` on every item, at most `limit` at once, in order of the items. Never rejects: an
 * error of one item goes to `onError` and the others go on (so nothing started is left running
 * unobserved when this resolves).
 */
export async function pool<T>(
  items: readonly T[],
  limit: number,
  fn: (item: T) => Promise<void>,
  onError: (err: unknown) => void,
): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(Math.max(1, limit), items.length) }, async () => {
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
 * A FIFO counting semaphore. {@link run} waits for a free slot (rejecting with the signal's
 * reason when it aborts first), runs `fn`, and frees the slot.
 */
export class Limiter {
  readonly #limit: number;
  #active = 0;
  readonly #waiters: Array<() => void> = [];

  constructor(limit: number) {
    this.#limit = Math.max(1, limit);
  }

  /** Calls running now. */
  get active(): number {
    return this.#active;
  }

  /** Calls waiting for a slot. */
  get waiting(): number {
    return this.#waiters.length;
  }

  async run<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    signal?.throwIfAborted();
    if (this.#active >= this.#limit) await this.#waitForSlot(signal);
    else this.#active++;
    try {
      return await fn();
    } finally {
      // Hand the slot straight to the next waiter (the count stays), or free it.
      const next = this.#waiters.shift();
      if (next !== undefined) next();
      else this.#active--;
    }
  }

  #waitForSlot(signal: AbortSignal | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
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
  }
}

/** Options of {@link withRetry}. */
export interface RetryOptions {
  /** The deadline: once it aborts, no new attempt starts and the last error is rethrown. */
  signal?: AbortSignal;
  /**
   * Whether another attempt may help. Default: the error has `retryable === true`
   * (as `MailerError` and `TeleportError` do).
   */
  isRetryable?: (err: unknown) => boolean;
  /** First and minimum delay in milliseconds. Default 250. */
  baseMs?: number;
  /** Maximum delay in milliseconds. Default 5000. */
  capMs?: number;
  /** Maximum number of attempts, the first included. Default: unlimited (the signal bounds it). */
  maxAttempts?: number;
  /** Called before each wait, after attempt `attempt` failed with `error`. */
  onRetry?: (info: { attempt: number; delayMs: number; error: unknown }) => void;
  /** Random source in [0, 1), for tests. Default `Math.random`. */
  random?: () => number;
}

/** The default retryability test: `err.retryable === true`. */
export function isRetryableError(err: unknown): boolean {
  return typeof err === "object" && err !== null &&
    (err as { retryable?: unknown }).retryable === true;
}

/**
 * The next decorrelated-jitter delay: uniform in `[base, previous * 3]`, capped at `cap`
 * (AWS "Exponential Backoff And Jitter").
 */
export function nextDelay(
  previousMs: number,
  baseMs: number,
  capMs: number,
  random: number,
): number {
  const upper = Math.max(baseMs, previousMs * 3);
  return Math.min(capMs, Math.round(baseMs + random * (upper - baseMs)));
}

/**
 * Calls `fn(attempt, progressed)` (attempt counts from 1) until it resolves, the error is not retryable, `maxAttempts` is reached or
 * `signal` aborts; then rethrows the last error. If the signal is already aborted before the
 * first attempt, throws `signal.reason` without calling `fn`. `fn` should pass the same signal
 * to its own I/O so an attempt in flight also stops. An attempt that got far enough (e.g. a
 * stream connected) calls `progressed()`: its failure is then retried after the shortest delay
 * again, not after one grown by earlier failures.
 */
export async function withRetry<T>(
  fn: (attempt: number, progressed: () => void) => Promise<T>,
  opts: RetryOptions = {},
): Promise<T> {
  const {
    signal,
    isRetryable = isRetryableError,
    baseMs = 250,
    capMs = 5000,
    maxAttempts = Infinity,
    onRetry,
    random = Math.random,
  } = opts;
  signal?.throwIfAborted();
  let previous = baseMs;
  const progressed = () => {
    previous = baseMs;
  };
  for (let attempt = 1;; attempt++) {
    try {
      return await fn(attempt, progressed);
    } catch (err) {
      if (attempt >= maxAttempts || signal?.aborted || !isRetryable(err)) throw err;
      previous = nextDelay(previous, baseMs, capMs, random());
      onRetry?.({ attempt, delayMs: previous, error: err });
      try {
        await delay(previous, { signal });
      } catch {
        throw err;
      }
    }
  }
}
