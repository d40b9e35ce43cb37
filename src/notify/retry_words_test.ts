import assert from "node:assert/strict";
import { MailerError, TeleportError } from "../errors.ts";
import {
  formatDelay,
  PERMANENT,
  retriesExhausted,
  retryScheduled,
  sendFailureRetry,
  TEMPORARY,
} from "./retry_words.ts";

const mailerError = (recipient: string, retryable: boolean) =>
  new MailerError(`Cannot send email to "${recipient}"`, { recipient, retryable });

Deno.test("sendFailureRetry() says in words whether each failed send is retried", () => {
  assert.equal(sendFailureRetry([mailerError("bad@x", false)]), PERMANENT);
  assert.equal(PERMANENT, "no: permanent failure, will not be retried");
  assert.equal(sendFailureRetry([mailerError("a@x", true), mailerError("b@x", true)]), TEMPORARY);
  assert.match(TEMPORARY, /^yes: temporary failure, the request will be retried/);
  // A failed record in Teleport (not a mailer error) is retried too.
  assert.equal(
    sendFailureRetry([new TeleportError("connection_problem", "Teleport is down")]),
    TEMPORARY,
  );
  assert.equal(
    sendFailureRetry([mailerError("bad@x", false), mailerError("slow@x", true)]),
    "bad@x: no (permanent failure); slow@x: yes (temporary failure, retried with the request)",
  );
});

Deno.test("retryScheduled() and retriesExhausted() say when the request is tried again", () => {
  const now = new Date("2026-12-06T19:00:00.000Z");
  assert.equal(
    retryScheduled(1500, now, 1, 30),
    "yes, in 1.5 s at 2026-12-06T19:00:01.500Z (retry 1 of 30)",
  );
  assert.equal(
    retryScheduled(270_000, now, 30, 30),
    "yes, in 4.5 min at 2026-12-06T19:04:30.000Z (retry 30 of 30)",
  );
  assert.match(retriesExhausted(30), /^not on a timer any more \(30 retries failed\)/);
  assert.match(retriesExhausted(30), /periodic catch-up \(every 5 min\)/);
  assert.deepEqual([formatDelay(0), formatDelay(42_400), formatDelay(600_000)], [
    "0.0 s",
    "42 s",
    "10.0 min",
  ]);
});
