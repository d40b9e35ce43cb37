/**
 * Retry with decorrelated-jitter backoff, bounded by an AbortSignal (the caller's deadline).
 * Used by the engine around `Mailer.send`.
 */

/** Options of {@link withRetry}. */
export interface RetryOptions {
  /** The deadline: once it aborts, no new attempt starts and the last error is rethrown. */
  signal?: AbortSignal;
  /**
   * Whether another attempt may help. Default: the error has `retryable === true`
   * (as {@link MailerError} and `TeleportError` do).
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
 * Calls `fn(attempt)` (attempt counts from 1) until it resolves, the error is not retryable,
 * `maxAttempts` is reached or `signal` aborts; then rethrows the last error. If the signal is
 * already aborted before the first attempt, throws `signal.reason` without calling `fn`.
 * `fn` should pass the same signal to its own I/O so an attempt in flight also stops.
 */
export async function withRetry<T>(
  fn: (attempt: number) => Promise<T>,
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
  let delay = baseMs;
  for (let attempt = 1;; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (attempt >= maxAttempts || signal?.aborted || !isRetryable(err)) throw err;
      delay = nextDelay(delay, baseMs, capMs, random());
      onRetry?.({ attempt, delayMs: delay, error: err });
      const completed = await sleep(delay, signal);
      if (!completed) throw err;
    }
  }
}

/** Waits `ms`; resolves false early when `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
