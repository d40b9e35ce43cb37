import assert from "node:assert/strict";
import { MailerError } from "./errors.ts";
import {
  abortable,
  delay,
  isRetryableError,
  Limiter,
  nextDelay,
  pool,
  settledWithin,
  withRetry,
} from "./async.ts";

const retryable = () => new MailerError("try again", { retryable: true, code: 451 });
const permanent = () => new MailerError("no such user", { retryable: false, code: 550 });

Deno.test("withRetry() returns the first success and passes the attempt number", async () => {
  const seen: number[] = [];
  const result = await withRetry((attempt) => {
    seen.push(attempt);
    if (attempt < 3) throw retryable();
    return Promise.resolve(`ok on ${attempt}`);
  }, { baseMs: 1, capMs: 2 });
  assert.equal(result, "ok on 3");
  assert.deepEqual(seen, [1, 2, 3]);
});

Deno.test("withRetry() rethrows a permanent error at once", async () => {
  let calls = 0;
  await assert.rejects(
    withRetry(() => {
      calls++;
      throw permanent();
    }, { baseMs: 1 }),
    (err: unknown) => err instanceof MailerError && err.code === 550,
  );
  assert.equal(calls, 1);
});

Deno.test("withRetry() stops after maxAttempts with the last error", async () => {
  let calls = 0;
  await assert.rejects(
    withRetry(() => {
      calls++;
      throw new MailerError(`failure ${calls}`, { retryable: true });
    }, { baseMs: 1, capMs: 1, maxAttempts: 4 }),
    /failure 4/,
  );
  assert.equal(calls, 4);
});

Deno.test("withRetry() stops when the signal aborts during the wait and rethrows the last error", async () => {
  const controller = new AbortController();
  let calls = 0;
  const delays: number[] = [];
  await assert.rejects(
    withRetry(() => {
      calls++;
      throw new MailerError(`failure ${calls}`, { retryable: true });
    }, {
      signal: controller.signal,
      baseMs: 10_000,
      capMs: 10_000,
      onRetry: ({ delayMs }) => {
        delays.push(delayMs);
        setTimeout(() => controller.abort(), 5);
      },
    }),
    /failure 1/,
  );
  assert.equal(calls, 1);
  assert.deepEqual(delays, [10_000]);
});

Deno.test("withRetry() does not start when the signal is already aborted", async () => {
  let calls = 0;
  await assert.rejects(
    withRetry(() => {
      calls++;
      return Promise.resolve(1);
    }, { signal: AbortSignal.abort(new Error("deadline passed")) }),
    /deadline passed/,
  );
  assert.equal(calls, 0);
});

Deno.test("withRetry() uses a custom isRetryable and reports each retry", async () => {
  const infos: { attempt: number; delayMs: number }[] = [];
  let calls = 0;
  const result = await withRetry(() => {
    calls++;
    if (calls < 3) throw new Error("ECONNRESET");
    return Promise.resolve(calls);
  }, {
    isRetryable: (err) => err instanceof Error && err.message === "ECONNRESET",
    baseMs: 1,
    capMs: 3,
    random: () => 0.5,
    onRetry: ({ attempt, delayMs }) => infos.push({ attempt, delayMs }),
  });
  assert.equal(result, 3);
  assert.deepEqual(infos.map((i) => i.attempt), [1, 2]);
  for (const { delayMs } of infos) assert.ok(delayMs >= 1 && delayMs <= 3);
});

Deno.test("nextDelay() is decorrelated jitter between base and three times the last, capped", () => {
  assert.equal(nextDelay(250, 250, 5000, 0), 250);
  assert.equal(nextDelay(250, 250, 5000, 1), 750);
  assert.equal(nextDelay(1000, 250, 5000, 0.5), 1625);
  assert.equal(nextDelay(4000, 250, 5000, 1), 5000);
  let d = 250;
  for (let i = 0; i < 50; i++) {
    d = nextDelay(d, 250, 5000, Math.random());
    assert.ok(d >= 250 && d <= 5000, `delay ${d}`);
  }
});

Deno.test("isRetryableError() reads the retryable flag", () => {
  assert.equal(isRetryableError(retryable()), true);
  assert.equal(isRetryableError(permanent()), false);
  assert.equal(isRetryableError(new Error("x")), false);
  assert.equal(isRetryableError(null), false);
});

Deno.test("delay() resolves after the time, rejects with the abort reason at once", async () => {
  await delay(1);
  const ac = new AbortController();
  const waiting = delay(60_000, { signal: ac.signal });
  ac.abort(new Error("stop"));
  await assert.rejects(waiting, /stop/);
  await assert.rejects(delay(1, { signal: ac.signal }), /stop/);
});

Deno.test("abortable() passes the result through, or rejects when the signal aborts first", async () => {
  const ac = new AbortController();
  assert.equal(await abortable(Promise.resolve(7), ac.signal), 7);
  await assert.rejects(abortable(Promise.reject(new Error("own")), ac.signal), /own/);
  const never = new Promise<number>(() => {});
  const waiting = abortable(never, ac.signal);
  ac.abort(new Error("gave up"));
  await assert.rejects(waiting, /gave up/);
});

Deno.test("abortable() on an already aborted signal leaves no unhandled rejection behind", async () => {
  const ac = new AbortController();
  ac.abort(new Error("gave up"));
  let fail!: (err: Error) => void;
  const work = new Promise<number>((_, reject) => (fail = reject));
  await assert.rejects(abortable(work, ac.signal), /gave up/);
  // The abandoned work fails later: without a handler, Deno's test would die of it.
  fail(new Error("late failure"));
  await new Promise((r) => setTimeout(r, 0));
});

Deno.test("settledWithin() gives the outcome when it comes in time, else the fallback, and leaves no timer", async () => {
  assert.equal(await settledWithin(Promise.resolve(7), 60_000, "late"), 7);
  await assert.rejects(settledWithin(Promise.reject(new Error("own")), 60_000, "late"), /own/);
  // A promise that never settles: the fallback after the timeout. Deno's test sanitizers fail
  // the test if any of the three timers is left running.
  assert.equal(await settledWithin(new Promise<number>(() => {}), 1, "late"), "late");
});

Deno.test("pool() runs every item at most limit at once and reports errors without stopping", async () => {
  let running = 0;
  let most = 0;
  const done: number[] = [];
  const errors: unknown[] = [];
  await pool([1, 2, 3, 4, 5, 6], 2, async (n) => {
    running++;
    most = Math.max(most, running);
    await delay(1);
    running--;
    if (n === 3) throw new Error("three");
    done.push(n);
  }, (err) => errors.push(err));
  assert.equal(most, 2);
  assert.deepEqual(done.sort(), [1, 2, 4, 5, 6]);
  assert.equal(errors.length, 1);
});

Deno.test("Limiter runs at most its limit at once, in arrival order, and drops a waiter whose signal aborts", async () => {
  const limiter = new Limiter(1);
  const order: string[] = [];
  let release!: () => void;
  const first = limiter.run(() =>
    new Promise<void>((r) => (release = r)).then(() => order.push("a"))
  );
  const ac = new AbortController();
  const cancelled = limiter.run(() => Promise.resolve(order.push("cancelled")), ac.signal);
  const second = limiter.run(() => Promise.resolve(order.push("b")));
  assert.equal(limiter.active, 1);
  assert.equal(limiter.waiting, 2);
  ac.abort(new Error("deadline"));
  await assert.rejects(cancelled, /deadline/);
  release();
  await Promise.all([first, second]);
  assert.deepEqual(order, ["a", "b"]);
  assert.equal(limiter.active, 0);
});

Deno.test("withRetry() starts from the shortest delay again after an attempt reports progress", async () => {
  const delays: number[] = [];
  await withRetry((attempt, progressed) => {
    if (attempt === 3) progressed();
    if (attempt < 5) throw retryable();
    return Promise.resolve();
  }, {
    baseMs: 1,
    capMs: 1000,
    random: () => 1,
    onRetry: ({ delayMs }) => delays.push(delayMs),
  });
  // Each delay triples (random = 1) until attempt 3 progressed.
  assert.deepEqual(delays, [3, 9, 3, 9]);
});

Deno.test("abortable() with an already aborted signal runs cleanup first and leaves no unhandled rejection", async () => {
  const ac = new AbortController();
  ac.abort(new Error("too late"));
  let rejectInner!: (err: Error) => void;
  const inner = new Promise<never>((_, reject) => (rejectInner = reject));
  let cleaned = false;
  // As in `dial_net.ts` tlsOver(): cleanup closes the socket, which makes the inner promise reject.
  const p = abortable(inner, ac.signal, () => {
    cleaned = true;
    queueMicrotask(() => rejectInner(new Error("connection closed during the TLS handshake")));
  });
  await assert.rejects(p, /too late/);
  assert.ok(cleaned);
  // Let the inner rejection happen: Deno fails the test on an unhandled rejection.
  await new Promise((r) => setTimeout(r, 10));
});

Deno.test("abortable() aborted while pending rejects with the reason; the late inner rejection is handled", async () => {
  const ac = new AbortController();
  let rejectInner!: (err: Error) => void;
  const inner = new Promise<never>((_, reject) => (rejectInner = reject));
  const p = abortable(
    inner,
    ac.signal,
    () => queueMicrotask(() => rejectInner(new Error("closed"))),
  );
  ac.abort(new Error("stop"));
  await assert.rejects(p, /stop/);
  await new Promise((r) => setTimeout(r, 10));
});

Deno.test("abortable() passes the value through when not aborted", async () => {
  const ac = new AbortController();
  assert.equal(await abortable(Promise.resolve(42), ac.signal), 42);
  assert.equal(await abortable(Promise.resolve(7), undefined), 7);
});
