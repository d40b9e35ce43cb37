import assert from "node:assert/strict";
import { MailerError } from "../errors.ts";
import { isRetryableError, nextDelay, withRetry } from "./retry.ts";

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
