import assert from "node:assert/strict";
import { MailerError } from "../errors.ts";
import type { Mailer } from "../mailers/mailer.ts";
import { instrumentMailer, sendFailure } from "./instrument.ts";
import { PromMetrics } from "./metrics.ts";
import { FAILED_SENDS_UNREADY, Readiness } from "./readiness.ts";

/** `name{labels}` → value of the Prometheus text. */
async function scrape(m: PromMetrics): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const line of (await m.render()).split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

Deno.test("PromMetrics exposes every teleport_email_ series at 0 before anything happens", async () => {
  const m = new PromMetrics({ processMetrics: false });
  const s = await scrape(m);
  for (const kind of ["new", "review", "resolution", "other"]) {
    assert.equal(s.get(`teleport_email_emails_sent_total{kind="${kind}"}`), 0);
    for (const reason of ["temporary", "permanent"]) {
      assert.equal(
        s.get(`teleport_email_send_failures_total{kind="${kind}",reason="${reason}"}`),
        0,
      );
    }
  }
  assert.equal(s.get("teleport_email_send_duration_seconds_count"), 0);
  assert.equal(s.get("teleport_email_watch_reconnects_total"), 0);
  assert.equal(s.get("teleport_email_requests_in_flight"), 0);
  assert.equal(s.get("teleport_email_last_event_timestamp_seconds"), 0);
  assert.equal(s.get("teleport_email_ready"), 0);
  assert.equal(s.get("teleport_email_identity_expiry_timestamp_seconds"), 0, "unknown: 0");
  assert.match([...s.keys()].find((k) => k.startsWith("teleport_email_build_info"))!, /version="/);
  assert.match(m.contentType, /^text\/plain; version=0\.0\.4/);
});

Deno.test("PromMetrics counts sends by kind and failures by kind and reason, with durations", async () => {
  const m = new PromMetrics({ processMetrics: false });
  m.emailSent("new", 0.2);
  m.emailSent("new", 0.3);
  m.emailSent("resolution", 3);
  m.emailSent(undefined, 0.01);
  m.sendFailed("review", "temporary", 12);
  m.sendFailed("review", "permanent", 0.04);
  const s = await scrape(m);
  assert.equal(s.get('teleport_email_emails_sent_total{kind="new"}'), 2);
  assert.equal(s.get('teleport_email_emails_sent_total{kind="resolution"}'), 1);
  assert.equal(s.get('teleport_email_emails_sent_total{kind="review"}'), 0);
  assert.equal(s.get('teleport_email_emails_sent_total{kind="other"}'), 1);
  assert.equal(s.get('teleport_email_send_failures_total{kind="review",reason="temporary"}'), 1);
  assert.equal(s.get('teleport_email_send_failures_total{kind="review",reason="permanent"}'), 1);
  assert.equal(s.get("teleport_email_send_duration_seconds_count"), 6);
  assert.equal(s.get('teleport_email_send_duration_seconds_bucket{le="0.05"}'), 2);
  assert.equal(s.get('teleport_email_send_duration_seconds_bucket{le="0.25"}'), 3);
  assert.equal(s.get('teleport_email_send_duration_seconds_bucket{le="10"}'), 5);
  assert.equal(s.get('teleport_email_send_duration_seconds_bucket{le="+Inf"}'), 6);
});

Deno.test("PromMetrics reads in-flight, identity expiry and readiness at scrape time", async () => {
  let now = 1_800_000_000_000;
  const m = new PromMetrics({ processMetrics: false, now: () => now });
  let inFlight = 3;
  let expiry: Date | undefined = new Date("2030-01-02T03:04:05Z");
  m.trackInFlight(() => inFlight);
  m.trackIdentityExpiry(() => expiry);
  m.mailerChecked();
  m.eventReceived();
  m.watching();
  let s = await scrape(m);
  assert.equal(s.get("teleport_email_requests_in_flight"), 3);
  assert.equal(s.get("teleport_email_identity_expiry_timestamp_seconds"), 1893553445);
  assert.equal(s.get("teleport_email_last_event_timestamp_seconds"), 1_800_000_000);
  assert.equal(s.get("teleport_email_ready"), 1);

  inFlight = 0;
  expiry = undefined;
  now += 5000;
  m.eventReceived();
  m.reconnecting("stream lost");
  s = await scrape(m);
  assert.equal(s.get("teleport_email_requests_in_flight"), 0);
  assert.equal(s.get("teleport_email_identity_expiry_timestamp_seconds"), 0, "unknown: 0");
  assert.equal(s.get("teleport_email_last_event_timestamp_seconds"), 1_800_000_005);
  assert.equal(s.get("teleport_email_watch_reconnects_total"), 1);
  assert.equal(s.get("teleport_email_ready"), 0);
});

Deno.test("PromMetrics with process metrics: memory from Deno.memoryUsage(), no /proc gauges reading 0", async () => {
  const m = new PromMetrics();
  const s = await scrape(m);
  assert.ok(s.get("process_resident_memory_bytes")! > 0);
  assert.ok(s.has("process_cpu_seconds_total"));
  assert.ok(s.has("nodejs_heap_size_used_bytes"));
  for (const gone of ["process_virtual_memory_bytes", "process_heap_bytes", "process_open_fds"]) {
    assert.equal(s.has(gone), false, gone);
  }
});

Deno.test("Readiness: starting, watching, reconnecting, and N failed sends in a row", () => {
  const r = new Readiness();
  assert.deepEqual(r.status(), {
    ready: false,
    reason: "starting: connecting to Teleport and checking the mailer",
  });
  r.mailerChecked();
  assert.match(r.status().reason, /^starting: waiting for the watch stream's INIT event$/);
  r.watching();
  assert.deepEqual(r.status(), { ready: true, reason: "" });
  r.reconnecting("Connection problem:\n  14 UNAVAILABLE");
  assert.deepEqual(r.status(), {
    ready: false,
    reason: "reconnecting to Teleport: Connection problem: 14 UNAVAILABLE",
  });
  r.watching();
  for (let i = 1; i < FAILED_SENDS_UNREADY; i++) r.sendFailed("temporary");
  assert.equal(r.status().ready, true, "one short of the threshold");
  r.sendFailed("permanent");
  assert.deepEqual(r.status(), {
    ready: false,
    reason:
      `the last ${FAILED_SENDS_UNREADY} email send attempts all failed (last failure: permanent)`,
  });
  r.sendSucceeded();
  assert.equal(r.status().ready, true, "one success resets the count");
});

Deno.test("Readiness: a long reason is cut to one line of 200 characters", () => {
  const r = new Readiness({ failedSendsUnready: 1 });
  r.mailerChecked();
  r.watching();
  r.reconnecting("x".repeat(500));
  assert.equal(r.status().reason.length, "reconnecting to Teleport: ".length + 200);
});

function fakeMailer(outcomes: Array<Error | undefined>): Mailer & { checked: number } {
  return {
    kind: "smtp",
    checked: 0,
    send() {
      const next = outcomes.shift();
      return next ? Promise.reject(next) : Promise.resolve({ messageId: "id@x" });
    },
    healthCheck() {
      this.checked++;
      return Promise.resolve();
    },
    close: () => Promise.resolve(),
  };
}

Deno.test("instrumentMailer() reports each attempt with its kind and passes results and errors through", async () => {
  const m = new PromMetrics({ processMetrics: false });
  const permanent = new MailerError("550 no such user", { retryable: false });
  const temporary = new MailerError("421 try later", { retryable: true });
  const inner = fakeMailer([undefined, temporary, permanent]);
  let t = 0;
  const mailer = instrumentMailer(inner, m, () => (t += 500));
  assert.equal(mailer.kind, "smtp");
  const email = { to: "a@example.com", subject: "s", text: "t", html: "h" };
  assert.deepEqual(await mailer.send({ ...email, kind: "new" }), { messageId: "id@x" });
  await assert.rejects(mailer.send({ ...email, kind: "review" }), (e) => e === temporary);
  await assert.rejects(mailer.send({ ...email, kind: "resolution" }), (e) => e === permanent);
  assert.equal(
    m.readiness.status().reason,
    "starting: connecting to Teleport and checking the mailer",
  );
  await mailer.healthCheck();
  assert.equal(inner.checked, 1);
  const s = await scrape(m);
  assert.equal(s.get('teleport_email_emails_sent_total{kind="new"}'), 1);
  assert.equal(s.get('teleport_email_send_failures_total{kind="review",reason="temporary"}'), 1);
  assert.equal(
    s.get('teleport_email_send_failures_total{kind="resolution",reason="permanent"}'),
    1,
  );
  assert.equal(s.get("teleport_email_send_duration_seconds_sum"), 1.5);
  assert.match(m.readiness.status().reason, /INIT/, "health check passed: mailer checked");
});

Deno.test("sendFailure(): permanent MailerError, temporary otherwise, nothing when the caller aborted", () => {
  assert.equal(sendFailure(new MailerError("x", { retryable: false })), "permanent");
  assert.equal(sendFailure(new MailerError("x", { retryable: true })), "temporary");
  assert.equal(sendFailure(new Error("boom")), "temporary");
  const shutdown = new AbortController();
  shutdown.abort(new Error("shutting down"));
  assert.equal(sendFailure(new Error("aborted"), shutdown.signal), undefined);
  const deadline = new AbortController();
  deadline.abort(new DOMException("deadline", "TimeoutError"));
  assert.equal(sendFailure(new Error("aborted"), deadline.signal), "temporary");
});
