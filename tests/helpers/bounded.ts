/**
 * A bound for waits in tests: every await on something a server or a peer must do gets a
 * deadline, so a broken test fails with what it was waiting for instead of hanging.
 *
 * @module
 */

/**
 * Waits for `p`, rejecting with `timed out waiting: <what>` after `ms` (default 10 s). `what` may
 * be a function, evaluated when the time is up (to report the state at that moment).
 */
export async function bounded<T>(
  p: Promise<T>,
  what: string | (() => string),
  ms = 10_000,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(new Error(`timed out waiting: ${typeof what === "function" ? what() : what}`)),
          ms,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
