import assert from "node:assert/strict";
import { captureLogs } from "../../tests/helpers/logs.ts";
import { ALL, fakeHandler } from "../../tests/helpers/notify_rig.ts";
import {
  FakeMailer,
  FakeTeleportClient,
  makeRequest,
  makeReview,
  waitFor,
} from "../../tests/helpers/fakes.ts";
import type { AccessRequest } from "../teleport/types.ts";
import { RequestBusyError, RequestFailure, TeleportError } from "../errors.ts";
import { decodeDelivery, DELIVERY_KEY, type LeaseLock } from "./delivery_state.ts";
import type { HandlerOptions } from "./handler.ts";
import type { RequestEvent } from "./plan.ts";
import { parseGoTimestamp, Watermark } from "./watermark.ts";
import { decodePluginData } from "./plugin_data.ts";

const R1 = "reviewer1@example.com";
const R2 = "reviewer2@example.com";

function setup(over: Partial<HandlerOptions> = {}) {
  const client = new FakeTeleportClient();
  const mailer = new FakeMailer();
  const handler = fakeHandler(client, mailer, { sendBackoffMs: 1, ...over });
  return { client, mailer, handler };
}

function put(req: AccessRequest): RequestEvent {
  return { op: "put", request: structuredClone(req) };
}

function stored(client: FakeTeleportClient, id: string) {
  const raw = client.pluginData.get(id)?.get("email");
  return { raw, data: decodePluginData(raw), delivery: decodeDelivery(raw?.[DELIVERY_KEY]) };
}

/** Creates a pending request with `reviewers` and handles its PUT. */
async function newRequest(
  t: ReturnType<typeof setup>,
  id: string,
  reviewers: string[] = [R1],
): Promise<AccessRequest> {
  const req = makeRequest({ id, suggestedReviewers: reviewers });
  t.client.putRequest(req, false);
  await t.handler.handle(put(req));
  return req;
}

Deno.test("handle() PENDING sends one new-request email per recipient and stores 3 threads", async () => {
  const t = setup();
  const req = await newRequest(t, "req-1", [R1, R2]);
  assert.deepEqual(t.mailer.sent.map((e) => e.to).sort(), [ALL, R1, R2]);
  for (const e of t.mailer.sent) {
    assert.ok(e.subject.includes(req.id));
    assert.ok(e.text.includes("User: requester@example.com"));
    assert.ok(e.text.includes("Reason: because of"));
    assert.ok(e.text.includes("Status: ⏳ PENDING"));
    assert.equal(e.inReplyTo, undefined);
  }
  const s = stored(t.client, req.id);
  assert.equal(s.data.threads.length, 3);
  assert.deepEqual(
    s.data.threads.map((th) => th.messageId).sort(),
    t.mailer.sent.map((e) => e.messageId).sort(),
  );
  assert.equal(s.data.user, "requester@example.com");
  assert.deepEqual(s.data.roles, ["editor"]);
  assert.equal(s.delivery?.lock, undefined, "the lease is released");
  for (const key of ["user", "roles", "request_reason", "email_threads"]) {
    assert.ok(s.raw !== undefined && key in s.raw, `Go key ${key} is stored`);
  }
});

Deno.test("handle() the same event twice sends nothing more and writes nothing", async () => {
  const t = setup();
  const req = await newRequest(t, "req-1", [R1]);
  const writes = t.client.writes;
  const res = await t.handler.handle(put(req));
  assert.deepEqual(res, { sent: 0, noop: true });
  assert.equal(t.mailer.sent.length, 2);
  assert.equal(t.client.writes, writes);
});

for (
  const [state, reason, status] of [
    ["APPROVED", "okay", "Status: ✅ APPROVED (okay)"],
    ["DENIED", "not okay", "Status: ❌ DENIED (not okay)"],
  ] as const
) {
  Deno.test(`handle() ${state} replies to every thread with the resolution once`, async () => {
    const t = setup();
    const req = await newRequest(t, "req-1", [R1]);
    const threads = new Map(t.mailer.sent.map((e) => [e.to, e.messageId]));
    const resolved = { ...req, state, resolveReason: reason };
    await t.handler.handle(put(resolved));
    await t.handler.handle(put(resolved));
    const replies = t.mailer.sent.slice(2);
    assert.deepEqual(replies.map((e) => e.to).sort(), [ALL, R1]);
    for (const e of replies) {
      assert.ok(e.text.includes(status), e.text);
      assert.ok(e.text.startsWith("Role Request has been resolved:"));
      assert.equal(e.inReplyTo, threads.get(e.to));
    }
    assert.equal(stored(t.client, req.id).data.resolution.tag, state);
  });
}

Deno.test("handle() DELETE of a pending request sends EXPIRED once; deleting a resolved one sends nothing", async () => {
  const t = setup();
  const req = await newRequest(t, "req-1", [R1]);
  t.client.deleteRequest(req.id, false);
  await t.handler.handle({ op: "delete", requestId: req.id });
  await t.handler.handle({ op: "delete", requestId: req.id });
  assert.equal(t.mailer.sent.length, 4);
  for (const e of t.mailer.sent.slice(2)) assert.ok(e.text.includes("Status: ⌛ EXPIRED"));

  const req2 = await newRequest(t, "req-2", [R1]);
  await t.handler.handle(put({ ...req2, state: "APPROVED", resolveReason: "ok" }));
  const before = t.mailer.sent.length;
  await t.handler.handle({ op: "delete", requestId: req2.id });
  assert.equal(t.mailer.sent.length, before);
  assert.equal(stored(t.client, req2.id).data.resolution.tag, "APPROVED");
});

Deno.test("handle() events for a request never seen pending send nothing", async () => {
  const t = setup();
  const req = makeRequest({ id: "req-x", state: "APPROVED", resolveReason: "ok" });
  t.client.putRequest(req, false);
  assert.deepEqual(await t.handler.handle(put(req)), { sent: 0, noop: true });
  assert.deepEqual(await t.handler.handle({ op: "delete", requestId: "req-x" }), {
    sent: 0,
    noop: true,
  });
  assert.equal(t.mailer.sent.length, 0);
  assert.equal(t.client.writes, 0);
});

Deno.test("handle() review replies go to every thread, each review once", async () => {
  const t = setup();
  const req = await newRequest(t, "req-1", [R1]);
  req.reviews = [makeReview(R1, "APPROVED", "okay")];
  await t.handler.handle(put(req));
  await t.handler.handle(put(req));
  let replies = t.mailer.sent.slice(2);
  assert.equal(replies.length, 2);
  for (const e of replies) {
    assert.ok(e.text.includes(`${R1} reviewed the request`));
    assert.ok(e.text.includes("Resolution: ✅ APPROVED"));
    assert.ok(e.text.includes("Reason: okay"));
  }
  req.reviews.push(makeReview(R2, "DENIED", "not okay"));
  await t.handler.handle(put(req));
  replies = t.mailer.sent.slice(4);
  assert.equal(replies.length, 2);
  for (const e of replies) {
    assert.ok(e.text.includes(`${R2} reviewed the request`));
    assert.ok(e.text.includes("Resolution: ❌ DENIED"));
  }
  assert.equal(stored(t.client, req.id).raw?.reviews_count, "2");
});

for (
  const [state, first, last, status] of [
    ["APPROVED", "okay", "finally okay", "Status: ✅ APPROVED (finally okay)"],
    ["DENIED", "not okay", "finally not okay", "Status: ❌ DENIED (finally not okay)"],
  ] as const
) {
  Deno.test(`handle() ${state} by review sends the deciding review before the resolution`, async () => {
    const t = setup();
    const req = await newRequest(t, "req-1", [R1]);
    req.reviews = [makeReview(R1, state, first)];
    await t.handler.handle(put(req));
    // The second review crosses the threshold: Teleport sends one PUT, already resolved.
    const resolved = {
      ...req,
      state,
      resolveReason: last,
      reviews: [...req.reviews, makeReview(R2, state, last)],
    };
    await t.handler.handle(put(resolved));
    for (const to of [ALL, R1]) {
      const texts = t.mailer.to(to).map((e) => e.text);
      assert.equal(texts.length, 4);
      assert.ok(texts[0].includes("You have a new Role Request"));
      assert.ok(texts[1].includes(`${R1} reviewed the request`));
      assert.ok(texts[2].includes(`${R2} reviewed the request`));
      assert.ok(texts[3].includes(status), texts[3]);
    }
  });
}

Deno.test("handle() a permanent failure for one of 3 recipients stores 2 threads and replies only to them", async () => {
  const t = setup();
  t.mailer.failFor(R2, { retryable: false, times: Infinity });
  const req = await newRequest(t, "req-1", [R1, R2]);
  const s = stored(t.client, req.id);
  assert.deepEqual(s.data.threads.map((th) => th.email).sort(), [ALL, R1]);
  assert.deepEqual(s.delivery?.failed, [R2]);
  t.mailer.heal(R2);
  await t.handler.handle(put({ ...req, state: "APPROVED", resolveReason: "ok" }));
  assert.deepEqual(t.mailer.sent.slice(2).map((e) => e.to).sort(), [ALL, R1]);
  assert.equal(t.mailer.to(R2).length, 0);
});

Deno.test("handle() total retryable failure fails the event; a later attempt sends each email once", async () => {
  const t = setup({ sendAttempts: 2 });
  for (const r of [ALL, R1, R2]) t.mailer.failFor(r, { retryable: true, times: Infinity });
  const req = makeRequest({ id: "req-1", suggestedReviewers: [R1, R2] });
  t.client.putRequest(req, false);
  await assert.rejects(
    t.handler.handle(put(req)),
    (err) => err instanceof RequestFailure && err.retryable && /injected failure/.test(err.message),
  );
  assert.equal(t.mailer.sent.length, 0);
  assert.equal(stored(t.client, req.id).data.threads.length, 0);
  for (const r of [ALL, R1, R2]) t.mailer.heal(r);
  req.reviews = [makeReview(R1, "APPROVED", "okay")];
  await t.handler.handle(put(req));
  await t.handler.handle(put(req));
  // Each recipient: the new-request email, then the review that arrived meanwhile.
  for (const r of [ALL, R1, R2]) {
    const texts = t.mailer.to(r).map((e) => e.text);
    assert.equal(texts.length, 2, r);
    assert.ok(texts[0].includes("You have a new Role Request"));
    assert.ok(texts[1].includes("reviewed the request"));
  }
});

Deno.test("handle() a retryable failure for one recipient retries only that one later", async () => {
  const t = setup({ sendAttempts: 1 });
  t.mailer.failFor(R2, { retryable: true, times: 1 });
  const req = makeRequest({ id: "req-1", suggestedReviewers: [R1, R2] });
  t.client.putRequest(req, false);
  await assert.rejects(t.handler.handle(put(req)), RequestFailure);
  assert.equal(t.mailer.sent.length, 2);
  await t.handler.handle(put(req));
  assert.deepEqual(t.mailer.sent.map((e) => e.to).sort(), [ALL, R1, R2]);
  assert.equal(stored(t.client, req.id).data.threads.length, 3);
});

Deno.test("handle() a retryable failure within the event is retried in the event", async () => {
  const t = setup({ sendAttempts: 3 });
  t.mailer.failFor(R1, { retryable: true, times: 2 });
  await newRequest(t, "req-1", [R1]);
  assert.equal(t.mailer.to(R1).length, 1);
  assert.equal(t.mailer.attempts, 4);
});

Deno.test("handle() a failed review reply to one thread is resent later only to that thread", async () => {
  const t = setup({ sendAttempts: 1 });
  const req = await newRequest(t, "req-1", [R1]);
  req.reviews = [makeReview(R2, "APPROVED", "okay")];
  t.mailer.failFor(R1, { retryable: true, times: 1 });
  await assert.rejects(t.handler.handle(put(req)), RequestFailure);
  assert.equal(stored(t.client, req.id).raw?.reviews_count ?? "", "");
  const resolved = { ...req, state: "APPROVED" as const, resolveReason: "ok" };
  await t.handler.handle(put(resolved));
  assert.equal(t.mailer.to(ALL).length, 3);
  const r1 = t.mailer.to(R1).map((e) => e.text);
  assert.equal(r1.length, 3);
  assert.ok(r1[1].includes("reviewed the request"));
  assert.ok(r1[2].includes("Status: ✅ APPROVED (ok)"));
});

Deno.test("handle() no recipients stores the request and never sends", async () => {
  const t = setup({ recipients: () => [] });
  const req = await newRequest(t, "req-1", []);
  assert.equal(t.mailer.sent.length, 0);
  assert.equal(stored(t.client, req.id).data.user, "requester@example.com");
  const writes = t.client.writes;
  await t.handler.handle(put({ ...req, state: "APPROVED" }));
  await t.handler.handle(put(req));
  assert.equal(t.mailer.sent.length, 0);
  assert.ok(t.client.writes <= writes + 2);
});

Deno.test("handle() PROMOTED resolves once with the Access List title; a later delete sends nothing", async () => {
  const t = setup();
  const req = await newRequest(t, "req-1", [R1]);
  const promoted: AccessRequest = {
    ...req,
    state: "PROMOTED",
    resolveReason: "",
    promotedAccessList: { name: "al-1", title: "Database admins" },
  };
  await t.handler.handle(put(promoted));
  const replies = t.mailer.sent.slice(2);
  assert.equal(replies.length, 2);
  for (const e of replies) {
    assert.ok(e.text.includes("PROMOTED"), e.text);
    assert.ok(e.text.includes("Database admins"), e.text);
  }
  t.client.deleteRequest(req.id, false);
  await t.handler.handle({ op: "delete", requestId: req.id });
  assert.equal(t.mailer.sent.length, 4);
  assert.equal(stored(t.client, req.id).raw?.resolution, "PROMOTED");
});

Deno.test("handle() NONE state is logged as unknown and does nothing", async () => {
  const t = setup();
  const req = makeRequest({ id: "req-1", state: "NONE" });
  t.client.putRequest(req, false);
  assert.deepEqual(await t.handler.handle(put(req)), { sent: 0, noop: true });
  assert.equal(t.client.calls.get("getPluginData") ?? 0, 0);
});

Deno.test("handle() continues plugin data written by the Go plugin", async () => {
  const t = setup();
  const req = makeRequest({
    id: "req-go",
    user: "user-foo",
    roles: ["role-foo", "role-bar"],
    requestReason: "foo reason",
    reviews: [1, 2, 3, 4].map((i) => makeReview(`rev${i}@example.com`, "APPROVED", `r${i}`)),
  });
  t.client.putRequest(req, false);
  // The Go test vector, unresolved: 3 reviews already emailed to threads E1 and E2.
  t.client.pluginData.set(
    req.id,
    new Map([["email", {
      user: "user-foo",
      roles: "role-foo,role-bar",
      request_reason: "foo reason",
      reviews_count: "3",
      resolution: "",
      resolve_reason: "",
      email_threads: "E1/0000001/M1,E2/0000002/M2",
    }]]),
  );
  await t.handler.handle(put({ ...req, state: "APPROVED", resolveReason: "foo ok" }));
  for (const e of t.mailer.sent) assert.equal(e.inReplyTo, e.to === "E1" ? "M1" : "M2");
  for (const to of ["E1", "E2"]) {
    const texts = t.mailer.to(to).map((e) => e.text);
    assert.equal(texts.length, 2);
    assert.ok(texts[0].includes("rev4@example.com reviewed the request"));
    assert.ok(texts[1].includes("Status: ✅ APPROVED (foo ok)"));
    assert.ok(texts[1].includes("Role(s): role-foo,role-bar"));
  }
  const raw = t.client.pluginData.get(req.id)!.get("email")!;
  assert.equal(raw.reviews_count, "4");
  assert.equal(raw.resolution, "APPROVED");
  assert.equal(raw.email_threads, "E1/0000001/M1,E2/0000002/M2");
});

Deno.test("handle() Go plugin data already resolved: a delete sends nothing", async () => {
  const t = setup();
  t.client.pluginData.set(
    "req-go",
    new Map([["email", {
      user: "user-foo",
      roles: "role-foo",
      request_reason: "",
      reviews_count: "",
      resolution: "DENIED",
      resolve_reason: "no",
      email_threads: "E1/0000001/M1",
    }]]),
  );
  assert.deepEqual(await t.handler.handle({ op: "delete", requestId: "req-go" }), {
    sent: 0,
    noop: true,
  });
  assert.equal(t.mailer.sent.length, 0);
});

Deno.test("handle() a live lease of another instance makes the event busy; an expired one is taken over", async () => {
  const t = setup();
  const req = makeRequest({ id: "req-1", suggestedReviewers: [R1] });
  t.client.putRequest(req, false);
  const lockedData = (until: number) => ({
    user: req.user,
    roles: "editor",
    request_reason: req.requestReason,
    [DELIVERY_KEY]: JSON.stringify({
      v: 1,
      recipients: [ALL, R1],
      failed: [],
      threads: {},
      lock: { owner: "other/1", until },
    }),
  });
  const until = Date.now() + 60_000;
  t.client.pluginData.set(req.id, new Map([["email", lockedData(until)]]));
  await assert.rejects(
    t.handler.handle(put(req)),
    (err) =>
      err instanceof RequestBusyError && err.until === until &&
      err.message.includes('Request "req-1" is being handled by another instance'),
  );
  assert.equal(t.mailer.sent.length, 0);
  t.client.pluginData.set(req.id, new Map([["email", lockedData(Date.now() - 1)]]));
  await t.handler.handle(put(req));
  assert.deepEqual(t.mailer.sent.map((e) => e.to).sort(), [ALL, R1]);
});

Deno.test("handle() two replicas handling the same events send each email exactly once", async () => {
  const client = new FakeTeleportClient();
  const mailer = new FakeMailer();
  mailer.delayMs = 2;
  const mk = () => fakeHandler(client, mailer, { clusterName: "c" });
  const replicas = [mk(), mk()];
  const req = makeRequest({ id: "req-1", suggestedReviewers: [R1, R2] });
  client.putRequest(req, false);
  const events: RequestEvent[] = [
    put(req),
    put({ ...req, reviews: [makeReview(R1, "APPROVED", "okay")] }),
    put({
      ...req,
      state: "APPROVED",
      resolveReason: "fine",
      reviews: [makeReview(R1, "APPROVED", "okay"), makeReview(R2, "APPROVED", "fine")],
    }),
  ];
  for (const ev of events) {
    // Both replicas see each event; a busy one retries until the other has finished.
    await Promise.all(replicas.map(async (h) => {
      for (let i = 0; i < 200; i++) {
        try {
          await h.handle(ev);
          return;
        } catch (err) {
          if (!(err instanceof RequestBusyError)) throw err;
          await new Promise((r) => setTimeout(r, 2));
        }
      }
      throw new Error("replica stayed busy");
    }));
  }
  // 3 threads + 2 reviews × 3 + 3 resolutions.
  assert.equal(mailer.sent.length, 12);
  assert.equal(new Set(mailer.sent.map((e) => e.messageId)).size, 12);
  for (const r of [ALL, R1, R2]) assert.equal(mailer.to(r).length, 4);
});

Deno.test("handle() race: N concurrent requests get 12 emails each with unique Message-IDs", async () => {
  const t = setup();
  const n = 16;
  const reqs = Array.from(
    { length: n },
    (_, i) => makeRequest({ id: `race-${i}`, suggestedReviewers: [R1, R2] }),
  );
  for (const r of reqs) t.client.putRequest(r, false);
  await Promise.all(reqs.map(async (req) => {
    await t.handler.handle(put(req));
    req.reviews = [makeReview(R1, "APPROVED", "okay")];
    await t.handler.handle(put(req));
    req.reviews.push(makeReview(R2, "APPROVED", "okay"));
    await t.handler.handle(put({ ...req, state: "APPROVED", resolveReason: "okay" }));
  }));
  assert.equal(t.mailer.sent.length, 12 * n);
  assert.equal(new Set(t.mailer.sent.map((e) => e.messageId)).size, 12 * n);
  for (const req of reqs) {
    const mine = t.mailer.sent.filter((e) => e.subject.endsWith(` ${req.id}`));
    assert.equal(mine.filter((e) => e.text.includes("You have a new Role Request")).length, 3);
    assert.equal(mine.filter((e) => e.text.includes("reviewed the request")).length, 6);
    assert.equal(mine.filter((e) => e.text.includes("has been resolved")).length, 3);
  }
});

Deno.test("handle() logs Go's messages with the request context", async () => {
  await captureLogs(async (records) => {
    const t = setup();
    const req = await newRequest(t, "req-log", [R1]);
    req.reviews = [makeReview(R1, "APPROVED", "okay")];
    await t.handler.handle(put({ ...req, state: "APPROVED", resolveReason: "okay" }));
    await t.handler.handle(put(makeRequest({ id: "req-none", state: "NONE" })));
    const msgs = records.map((r) => r.rawMessage);
    const sent = records.filter((r) => r.rawMessage === "Successfully sent");
    assert.deepEqual(
      sent.map((r) => r.properties.kind).sort(),
      [
        "new review",
        "new review",
        "new threads",
        "new threads",
        "request resolved",
        "request resolved",
      ],
    );
    for (const r of sent) {
      assert.equal(r.properties.request_id, "req-log");
      assert.equal(r.properties.request_op, "put");
      assert.ok(typeof r.properties.message_id === "string");
      assert.ok(typeof r.properties.timestamp === "string");
      assert.ok(typeof r.properties.email === "string");
    }
    const review = records.find((r) => r.rawMessage === "New review for request");
    assert.deepEqual(
      [review?.properties.author, review?.properties.state],
      [R1, "APPROVED"],
    );
    const resolved = records.find((r) =>
      r.rawMessage === "Marked request with resolution and sent emails"
    );
    assert.equal(resolved?.properties.resolution, "APPROVED");
    assert.equal(resolved?.properties.request_state, "APPROVED");
    const unknown = records.find((r) => r.rawMessage === "Unknown request state");
    assert.equal(unknown?.level, "warning");
    assert.equal(unknown?.properties.request_id, "req-none");
    assert.ok(msgs.length > 0);
  });
});

Deno.test("handle() a short Teleport outage while recording loses and duplicates nothing", async () => {
  const t = setup();
  const req = makeRequest({ id: "req-1", suggestedReviewers: [R1] });
  t.client.putRequest(req, false);
  const outage = () => new TeleportError("connection_problem", "auth unavailable");
  let n = 0;
  const update = t.client.updatePluginData.bind(t.client);
  t.client.updatePluginData = (...args) => {
    n++;
    if (n >= 2 && n <= 4) return Promise.reject(outage());
    return update(...args);
  };
  await t.handler.handle(put(req));
  assert.equal(t.mailer.sent.length, 2);
  assert.equal(stored(t.client, req.id).data.threads.length, 2);
  await t.handler.handle(put(req));
  assert.equal(t.mailer.sent.length, 2);
});

Deno.test("handle() a long Teleport outage fails the event; the retry resends only unrecorded emails", async () => {
  const t = setup({ timing: { recordTimeoutMs: 30 }, sendConcurrency: 1 });
  // One send after the other, each taking a while: the first is recorded while the second is
  // under way (records do not wait for sends that started after them).
  t.mailer.delayMs = 5;
  const req = makeRequest({ id: "req-1", suggestedReviewers: [R1] });
  t.client.putRequest(req, false);
  let n = 0;
  let down = false;
  const update = t.client.updatePluginData.bind(t.client);
  t.client.updatePluginData = (...args) => {
    n++;
    if (n === 3) down = true; // acquire and the first record succeed
    if (down) return Promise.reject(new TeleportError("connection_problem", "auth unavailable"));
    return update(...args);
  };
  await assert.rejects(t.handler.handle(put(req)), /auth unavailable/);
  assert.equal(t.mailer.sent.length, 2);
  assert.equal(stored(t.client, req.id).data.threads.length, 1);
  assert.ok(stored(t.client, req.id).delivery?.lock, "the release failed too");
  down = false;
  t.client.updatePluginData = update;
  // Same instance, next attempt: its own stale lease does not block it.
  await t.handler.handle(put(req));
  // At-least-once when a record is lost: the unrecorded recipient gets the email again, once.
  assert.equal(t.mailer.sent.length, 3);
  assert.equal(stored(t.client, req.id).data.threads.length, 2);
  await t.handler.handle(put(req));
  assert.equal(t.mailer.sent.length, 3);
});

Deno.test("handle() total permanent failure is not retried and later events send nothing", async () => {
  const t = setup();
  for (const r of [ALL, R1]) t.mailer.failFor(r, { retryable: false, times: Infinity });
  const req = await newRequest(t, "req-1", [R1]); // resolves: nothing to retry
  const s = stored(t.client, req.id);
  assert.equal(s.data.threads.length, 0);
  assert.deepEqual(s.delivery?.failed.sort(), [ALL, R1]);
  for (const r of [ALL, R1]) t.mailer.heal(r);
  const attempts = t.mailer.attempts;
  assert.deepEqual(await t.handler.handle(put(req)), { sent: 0, noop: true });
  await t.handler.handle(put({ ...req, state: "APPROVED", resolveReason: "ok" }));
  assert.equal(t.mailer.attempts, attempts);
  assert.equal(t.mailer.sent.length, 0);
});

Deno.test("handle() a thread that Go's format cannot store is sent once and never resent", async () => {
  const t = setup();
  const odd = "a/b@example.com";
  const req = await newRequest(t, "req-1", [odd]);
  assert.equal(t.mailer.to(odd).length, 1);
  assert.deepEqual(stored(t.client, req.id).delivery?.failed, [odd]);
  await t.handler.handle(put({ ...req, state: "APPROVED", resolveReason: "ok" }));
  assert.equal(t.mailer.to(odd).length, 1);
  assert.equal(t.mailer.to(ALL).length, 2);
});

Deno.test("handle() with maxParallelSends sends at most that many emails at once over all requests", async () => {
  const t = setup({ maxParallelSends: 2 });
  t.mailer.delayMs = 3;
  const reqs = Array.from(
    { length: 4 },
    (_, i) => makeRequest({ id: `lim-${i}`, suggestedReviewers: [R1, R2] }),
  );
  for (const r of reqs) t.client.putRequest(r, false);
  await Promise.all(reqs.map((r) => t.handler.handle(put(r))));
  assert.equal(t.mailer.sent.length, 12);
  assert.equal(t.mailer.maxInFlight, 2);
});

Deno.test("handle() a send still waiting for a slot when the deadline fires never reaches the mailer", async () => {
  const t = setup({ maxParallelSends: 1, sendAttempts: 1 });
  t.mailer.gate = new Promise(() => {}); // The first send hangs until the deadline.
  const req = makeRequest({ id: "req-1", suggestedReviewers: [R1] });
  t.client.putRequest(req, false);
  const deadline = new AbortController();
  const handling = t.handler.handle(put(req), { signal: deadline.signal });
  await waitFor(() => t.mailer.inFlight === 1, "the first send");
  deadline.abort(new Error("deadline"));
  await assert.rejects(handling, (err) => err instanceof RequestFailure && err.retryable);
  assert.equal(t.mailer.attempts, 1, "the queued send was dropped before the mailer");
  assert.equal(stored(t.client, req.id).delivery?.lock, undefined, "the lease is released");
});

Deno.test("handle() sends that finish together are recorded in one write, with the release", async () => {
  const t = setup();
  let release!: () => void;
  t.mailer.gate = new Promise((r) => (release = r));
  const req = makeRequest({ id: "req-1", suggestedReviewers: [R1, R2] });
  t.client.putRequest(req, false);
  const handling = t.handler.handle(put(req));
  await waitFor(() => t.mailer.inFlight === 3, "three sends");
  release(); // All three finish together: the first waits for the other two.
  await handling;
  // The lease, then the three records with the release.
  assert.equal(t.client.writes, 2);
  const s = stored(t.client, req.id);
  assert.deepEqual(s.data.threads.map((th) => th.email).sort(), [ALL, R1, R2]);
  assert.deepEqual(Object.keys(s.delivery?.threads ?? {}).sort(), [ALL, R1, R2]);
  assert.equal(s.delivery?.lock, undefined);
});

Deno.test("handle() a record does not wait for sends that started after it was asked for", async () => {
  const t = setup({ sendConcurrency: 1 });
  t.mailer.delayMs = 5; // One send after the other, each taking a while.
  const req = makeRequest({ id: "req-1", suggestedReviewers: [R1] });
  t.client.putRequest(req, false);
  const threadsStored: number[] = [];
  const send = t.mailer.send.bind(t.mailer);
  t.mailer.send = async (...args) => {
    const sent = await send(...args);
    threadsStored.push(stored(t.client, req.id).data.threads.length);
    return sent;
  };
  await t.handler.handle(put(req));
  // The lease; the first email's record, written while the second was being sent; the second's
  // record with the release.
  assert.equal(t.client.writes, 3);
  assert.deepEqual(threadsStored, [0, 1], "threads stored as each send ends");
  assert.equal(stored(t.client, req.id).data.threads.length, 2);
  assert.equal(stored(t.client, req.id).delivery?.lock, undefined);
});

Deno.test("handle() reads the plugin data once per event: records under the lease start from the last write", async () => {
  const t = setup();
  const req = makeRequest({ id: "req-1", suggestedReviewers: [R1, R2] });
  t.client.putRequest(req, false);
  await t.handler.handle(put(req));
  const reads = t.client.calls.get("getPluginData") ?? 0;
  const writes = t.client.writes;
  const approved = {
    ...req,
    state: "APPROVED" as const,
    reviews: [makeReview(R1, "APPROVED", "ok"), makeReview(R2, "APPROVED", "ok")],
  };
  await t.handler.handle(put(approved));
  // 3 threads x (2 reviews + resolution) sent and recorded.
  assert.equal(t.mailer.sent.length, 3 + 9);
  assert.ok(t.client.writes - writes >= 4, "the lease, several records and the release");
  assert.equal((t.client.calls.get("getPluginData") ?? 0) - reads, 1, "one read, for the lease");
  const s = stored(t.client, req.id);
  for (const r of [ALL, R1, R2]) {
    assert.deepEqual(s.delivery?.threads[r], { reviews: 2, resolved: true });
  }
  assert.equal(s.data.reviewsCount, 2);
  assert.equal(s.delivery?.lock, undefined);
});

// ---- Requests first seen resolved (the watermark) ----

/** A watermark at 09:00 on the day of {@link makeRequest}'s `created` (10:00). */
const BEFORE_CREATED = { value: () => Date.parse("2024-05-01T09:00:00Z") };
/** A watermark at 11:00, after {@link makeRequest}'s `created`. */
const AFTER_CREATED = { value: () => Date.parse("2024-05-01T11:00:00Z") };

function resolvedUnseen(id: string, state: "APPROVED" | "DENIED" = "APPROVED"): AccessRequest {
  return makeRequest({
    id,
    state,
    resolveReason: "while away",
    suggestedReviewers: [R1],
    reviews: [makeReview(R1, "APPROVED", "first"), makeReview(R2, state, "second")],
  });
}

Deno.test("parseGoTimestamp() reads our format and Go's time.String() with zone and monotonic clock", () => {
  assert.equal(
    parseGoTimestamp("2024-05-01 10:11:12.123456789 +0000 UTC m=+42.000000001"),
    Date.parse("2024-05-01T10:11:12.123Z"),
  );
  assert.equal(
    parseGoTimestamp("2024-05-01 10:11:12.5 +0000 UTC"),
    Date.parse("2024-05-01T10:11:12.500Z"),
  );
  assert.equal(
    parseGoTimestamp("2024-05-01 10:11:12 +0000 UTC"),
    Date.parse("2024-05-01T10:11:12Z"),
  );
  assert.equal(
    parseGoTimestamp("2024-05-01 12:11:12.1 +0200 CEST"),
    Date.parse("2024-05-01T10:11:12.100Z"),
  );
  assert.equal(
    parseGoTimestamp("2024-05-01 05:11:12 -0500 EST"),
    Date.parse("2024-05-01T10:11:12Z"),
  );
  for (const bad of ["0000001", "", "2024-13-01 10:11:12 +0000 UTC", "2024-05-01T10:11:12Z"]) {
    assert.equal(parseGoTimestamp(bad), undefined, bad);
  }
});

Deno.test("Watermark is unknown before INIT, then the earlier of INIT and the first newest thread, minus the margin", () => {
  const w = new Watermark({ marginMs: 60_000 });
  const thread = (ts: string) => ({ email_threads: `a@example.com/${ts}/m1` });
  w.noteThreads([thread("2024-05-01 08:00:00 +0000 UTC")]);
  assert.equal(w.value(), undefined, "no INIT yet");
  w.noteInit(new Date("2024-05-01T10:00:00Z"));
  w.noteInit(new Date("2024-05-01T12:00:00Z"));
  assert.equal(w.value(), Date.parse("2024-05-01T07:59:00Z"));
  // A later listing sees newer threads (ours): the watermark does not move forward.
  w.noteThreads([
    thread("2024-05-01 08:00:00 +0000 UTC"),
    thread("2024-05-01 10:30:00 +0000 UTC m=+1.5"),
  ]);
  assert.equal(w.value(), Date.parse("2024-05-01T07:59:00Z"));

  const fresh = new Watermark({ marginMs: 60_000 });
  fresh.noteInit(new Date("2024-05-01T10:00:00Z"));
  fresh.noteThreads([{ email_threads: "" }, { email_threads: "a/0000001/m" }]);
  assert.equal(fresh.value(), Date.parse("2024-05-01T09:59:00Z"), "no parsable thread: INIT only");
  fresh.noteThreads([thread("2024-05-01 11:00:00 +0000 UTC")]);
  assert.equal(fresh.value(), Date.parse("2024-05-01T09:59:00Z"), "a newer thread changes nothing");
  assert.equal(new Watermark().value(), undefined);
});

Deno.test("handle() a request first seen resolved after the watermark gets its thread, reviews and resolution once", async () => {
  const t = setup({ watermark: BEFORE_CREATED });
  const req = resolvedUnseen("req-late");
  t.client.putRequest(req, false);
  assert.equal(t.handler.needsWork(put(req), undefined), true);
  const res = await t.handler.handle(put(req));
  assert.deepEqual(res, { sent: 8, noop: false });
  for (const to of [ALL, R1]) {
    const mine = t.mailer.to(to);
    assert.equal(mine.length, 4, to);
    assert.ok(mine[0].text.includes("You have a new Role Request"), mine[0].text);
    assert.equal(mine[0].inReplyTo, undefined);
    assert.ok(mine[1].text.includes(`${R1} reviewed the request`), mine[1].text);
    assert.ok(mine[2].text.includes(`${R2} reviewed the request`), mine[2].text);
    assert.ok(mine[3].text.includes("Status: ✅ APPROVED (while away)"), mine[3].text);
    for (const reply of mine.slice(1)) assert.equal(reply.inReplyTo, mine[0].messageId);
  }
  const s = stored(t.client, req.id);
  assert.equal(s.data.resolution.tag, "APPROVED");
  assert.equal(s.data.reviewsCount, 2);
  assert.equal(s.data.threads.length, 2);
  assert.equal(s.delivery?.late, true);
  assert.equal(s.delivery?.decided, "APPROVED");
  assert.equal(s.delivery?.lock, undefined);
  // Again, and a held stale PENDING event of the same request: nothing more.
  const writes = t.client.writes;
  assert.equal(t.handler.needsWork(put(req), s.raw), false);
  assert.deepEqual(await t.handler.handle(put(req)), { sent: 0, noop: true });
  assert.deepEqual(
    await t.handler.handle(put({ ...req, state: "PENDING", reviews: [] })),
    { sent: 0, noop: true },
  );
  assert.equal(t.client.writes, writes);
  assert.equal(t.mailer.sent.length, 8);
});

Deno.test("handle() a request first seen resolved before the watermark, or without created time, or with no watermark, sends and writes nothing", async () => {
  await captureLogs(async (records) => {
    const cases: Array<[Partial<HandlerOptions>, AccessRequest]> = [
      [{ watermark: AFTER_CREATED }, resolvedUnseen("req-old")],
      [{ watermark: BEFORE_CREATED }, { ...resolvedUnseen("req-no-time"), created: undefined }],
      [{ watermark: { value: () => undefined } }, resolvedUnseen("req-no-init")],
      [{}, resolvedUnseen("req-no-watermark")],
    ];
    for (const [over, req] of cases) {
      const t = setup(over);
      t.client.putRequest(req, false);
      assert.equal(t.handler.needsWork(put(req), undefined), false, req.id);
      assert.deepEqual(await t.handler.handle(put(req)), { sent: 0, noop: true }, req.id);
      assert.equal(t.mailer.sent.length, 0, req.id);
      assert.equal(t.client.writes, 0, req.id);
    }
    const skipped = records.filter((r) =>
      r.rawMessage === "Request first seen resolved predates the plugin; not notifying"
    );
    assert.equal(skipped.length, 4);
    assert.ok(skipped.every((r) => r.level === "debug"));
  });
});

Deno.test("handle() a request deleted before it was ever seen stays silent whatever the watermark", async () => {
  const t = setup({ watermark: BEFORE_CREATED });
  assert.equal(t.handler.needsWork({ op: "delete", requestId: "req-gone" }, undefined), false);
  assert.deepEqual(await t.handler.handle({ op: "delete", requestId: "req-gone" }), {
    sent: 0,
    noop: true,
  });
  assert.equal(t.mailer.sent.length, 0);
  assert.equal(t.client.writes, 0);
});

Deno.test("handle() first seen resolved: a retryable failure of one thread is finished by the next attempt without duplicates", async () => {
  const t = setup({ watermark: BEFORE_CREATED, sendAttempts: 1 });
  const req = resolvedUnseen("req-late", "DENIED");
  t.client.putRequest(req, false);
  t.mailer.failFor(R1, { retryable: true, times: 1 });
  await assert.rejects(
    t.handler.handle(put(req)),
    (err) => err instanceof RequestFailure && err.retryable,
  );
  assert.equal(t.mailer.to(ALL).length, 4);
  assert.equal(t.mailer.to(R1).length, 0);
  t.mailer.heal(R1);
  // The recipients were chosen once: a later event does not recompute them.
  const later = fakeHandler(t.client, t.mailer, {
    recipients: () => ["someone-else@example.com"],
    watermark: BEFORE_CREATED,
  });
  assert.deepEqual(await later.handle(put(req)), { sent: 4, noop: false });
  const mine = t.mailer.to(R1);
  assert.deepEqual(
    mine.map((e) => e.text.split("\n")[0]),
    [
      "You have a new Role Request:",
      ...mine.slice(1, 3).map((e) => e.text.split("\n")[0]),
      "Role Request has been resolved:",
    ],
  );
  assert.ok(mine[3].text.includes("DENIED (while away)"), mine[3].text);
  assert.equal(t.mailer.to(ALL).length, 4);
  assert.equal(t.mailer.sent.length, 8);
  assert.deepEqual(await later.handle(put(req)), { sent: 0, noop: true });
});

// ---- Taking over from the Go plugin after it advanced our data ----

/** Rewrites the stored `email` data like the Go plugin would (our `email_delivery` kept). */
function goUpdate(
  client: FakeTeleportClient,
  id: string,
  change: Record<string, string>,
  stripDelivery: string[] = [],
) {
  const raw = { ...client.pluginData.get(id)!.get("email")!, ...change };
  if (stripDelivery.length > 0) {
    const d = JSON.parse(raw[DELIVERY_KEY]) as Record<string, unknown>;
    for (const k of stripDelivery) delete d[k];
    raw[DELIVERY_KEY] = JSON.stringify(d);
  }
  client.pluginData.get(id)!.set("email", raw);
}

const REV = [
  makeReview(R1, "APPROVED", "one"),
  makeReview(R2, "APPROVED", "two"),
  makeReview("reviewer3@example.com", "APPROVED", "three"),
];

Deno.test("handle() reviews the Go plugin sent on our data (reviews_count raised) are not resent", async () => {
  const t = setup();
  const req = await newRequest(t, "req-1", [R1]);
  await t.handler.handle(put({ ...req, reviews: REV.slice(0, 1) }));
  assert.equal(t.mailer.sent.length, 4);
  assert.equal(stored(t.client, req.id).delivery?.rc, 1);
  // The Go plugin took over and emailed the second review to both threads.
  goUpdate(t.client, req.id, { reviews_count: "2" });
  assert.equal(
    t.handler.needsWork(put({ ...req, reviews: REV.slice(0, 2) }), stored(t.client, req.id).raw),
    false,
  );
  assert.deepEqual(await t.handler.handle(put({ ...req, reviews: REV.slice(0, 2) })), {
    sent: 0,
    noop: true,
  });
  await t.handler.handle(put({ ...req, reviews: REV }));
  const replies = t.mailer.sent.slice(4);
  assert.deepEqual(replies.map((e) => e.to).sort(), [ALL, R1]);
  for (const e of replies) assert.ok(e.text.includes("reviewer3@example.com reviewed"), e.text);
  assert.equal(stored(t.client, req.id).data.reviewsCount, 3);
});

Deno.test("handle() a resolution the Go plugin stored (and sent) on our data is not resent, also on deletion", async () => {
  for (const strip of [[], ["decided", "rc"]]) {
    const t = setup();
    const req = await newRequest(t, "req-1", [R1]);
    goUpdate(t.client, req.id, { resolution: "DENIED", resolve_reason: "go said no" }, strip);
    const denied = { ...req, state: "DENIED" as const, resolveReason: "go said no" };
    assert.deepEqual(await t.handler.handle(put(denied)), { sent: 0, noop: true }, `${strip}`);
    assert.deepEqual(await t.handler.handle({ op: "delete", requestId: req.id }), {
      sent: 0,
      noop: true,
    });
    assert.equal(t.mailer.sent.length, 2, `${strip}`);
  }
});

Deno.test("handle() our own resolution still pending for a thread is sent, with or without the decided marker (older data)", async () => {
  for (const strip of [[], ["decided", "rc"]]) {
    const t = setup({ sendAttempts: 1 });
    const req = await newRequest(t, "req-1", [R1]);
    t.mailer.failFor(R1, { retryable: true, times: Infinity });
    const approved = { ...req, state: "APPROVED" as const, resolveReason: "ok" };
    await assert.rejects(t.handler.handle(put(approved)), RequestFailure);
    assert.equal(stored(t.client, req.id).delivery?.decided, "APPROVED");
    // Rewritten by an older version of our code: no `decided`, no `rc`; one thread resolved.
    if (strip.length > 0) goUpdate(t.client, req.id, {}, strip);
    t.mailer.heal(R1);
    assert.deepEqual(await t.handler.handle(put(approved)), { sent: 1, noop: false }, `${strip}`);
    const last = t.mailer.sent.at(-1)!;
    assert.equal(last.to, R1);
    assert.ok(last.text.includes("Status: ✅ APPROVED (ok)"), last.text);
    assert.equal(t.mailer.to(ALL).length, 2, `${strip}`);
  }
});

Deno.test("handle() older data (no decided marker) with a resolution and no thread resolved counts it as sent: no duplicate", async () => {
  const t = setup({ sendAttempts: 1 });
  const req = await newRequest(t, "req-1", [R1]);
  goUpdate(t.client, req.id, { resolution: "APPROVED", resolve_reason: "ok" }, ["rc"]);
  const approved = { ...req, state: "APPROVED" as const, resolveReason: "ok" };
  assert.deepEqual(await t.handler.handle(put(approved)), { sent: 0, noop: true });
  assert.equal(t.mailer.sent.length, 2);
});

Deno.test("handle() a thread behind the stored reviews_count through our own bookkeeping still gets its review", async () => {
  for (const strip of [[], ["rc"]]) {
    const t = setup({ sendAttempts: 1 });
    const req = makeRequest({ id: "req-1", suggestedReviewers: [R1] });
    t.client.putRequest(req, false);
    // R1's new-request email fails (retryable); ALL gets its thread and the first review, so
    // reviews_count becomes 1 (the minimum over the stored threads).
    t.mailer.failFor(R1, { retryable: true, times: 2 });
    await assert.rejects(t.handler.handle(put(req)), RequestFailure);
    await assert.rejects(
      t.handler.handle(put({ ...req, reviews: REV.slice(0, 1) })),
      RequestFailure,
    );
    assert.equal(t.mailer.to(ALL).length, 2);
    assert.equal(t.mailer.to(R1).length, 0);
    // R1's thread is created, but its review fails (retryable): progress 0, reviews_count 1.
    t.mailer.failFor(R1, { retryable: true, times: 1, textIncludes: "reviewed the request" });
    await assert.rejects(
      t.handler.handle(put({ ...req, reviews: REV.slice(0, 1) })),
      RequestFailure,
    );
    const s = stored(t.client, req.id);
    assert.equal(s.data.reviewsCount, 1);
    assert.equal(s.delivery?.threads[R1]?.reviews, 0);
    if (strip.length > 0) goUpdate(t.client, req.id, {}, strip);
    // Not someone else's progress: R1 still gets the review, ALL nothing more.
    assert.deepEqual(await t.handler.handle(put({ ...req, reviews: REV.slice(0, 1) })), {
      sent: 1,
      noop: false,
    }, `${strip}`);
    const mine = t.mailer.to(R1);
    assert.equal(mine.length, 2);
    assert.ok(mine[1].text.includes(`${R1} reviewed the request`), mine[1].text);
    assert.equal(t.mailer.to(ALL).length, 2);
  }
});

Deno.test("handle() older data (no rc) whose reviews_count is above every thread's progress counts those reviews as sent", async () => {
  const t = setup();
  const req = await newRequest(t, "req-1", [R1]);
  await t.handler.handle(put({ ...req, reviews: REV.slice(0, 1) }));
  goUpdate(t.client, req.id, { reviews_count: "2" }, ["rc"]);
  await t.handler.handle(put({ ...req, reviews: REV }));
  const replies = t.mailer.sent.slice(4);
  assert.equal(replies.length, 2);
  for (const e of replies) assert.ok(e.text.includes("reviewer3@example.com reviewed"), e.text);
});

Deno.test("handle() two replicas first seeing the same resolved request at once: each email once", async () => {
  const t = setup({ watermark: BEFORE_CREATED });
  const other = fakeHandler(t.client, t.mailer, { watermark: BEFORE_CREATED });
  const req = resolvedUnseen("req-late");
  t.client.putRequest(req, false);
  const results = await Promise.allSettled([t.handler.handle(put(req)), other.handle(put(req))]);
  for (const r of results) {
    if (r.status === "rejected") assert.ok(r.reason instanceof RequestBusyError, String(r.reason));
  }
  // Whoever was busy retries after the holder released the lease: nothing left to send.
  assert.deepEqual(await other.handle(put(req)), { sent: 0, noop: true });
  assert.deepEqual(await t.handler.handle(put(req)), { sent: 0, noop: true });
  assert.equal(t.mailer.sent.length, 8);
  assert.equal(new Set(t.mailer.sent.map((e) => `${e.to} ${e.text}`)).size, 8);
});

// ---- Taking over the lease of a process that exited (a restart on the same host) ----

function heldBy(req: AccessRequest, lock: Record<string, unknown>) {
  return new Map([["email", {
    user: req.user,
    roles: "editor",
    request_reason: req.requestReason,
    [DELIVERY_KEY]: JSON.stringify({ v: 1, recipients: [ALL, R1], failed: [], threads: {}, lock }),
  }]]);
}

const DEAD = { host: "h1", pid: 41, start: 1000, probe: "/tmp/teleport-email-41-x.sock" };

Deno.test("handle() takes over at once a live lease whose holder is gone, and says so", async () => {
  await captureLogs(async (records) => {
    const seen: LeaseLock[] = [];
    const t = setup({
      holder: { host: "h1", pid: 42, start: 2000, probe: "/tmp/teleport-email-42-y.sock" },
      holderGone: (lock) => {
        seen.push(lock);
        return Promise.resolve(true);
      },
    });
    const req = makeRequest({ id: "req-1", suggestedReviewers: [R1] });
    t.client.putRequest(req, false);
    const until = Date.now() + 60_000;
    t.client.pluginData.set(req.id, heldBy(req, { owner: "dead/1", until, holder: DEAD }));
    await t.handler.handle(put(req));
    assert.deepEqual(t.mailer.sent.map((e) => e.to).sort(), [ALL, R1]);
    assert.deepEqual(seen, [{ owner: "dead/1", until, holder: DEAD }]);
    const took = records.find((r) =>
      r.rawMessage === "Took over the lease of a process that is no longer running"
    );
    assert.equal(took?.properties.holder_pid, 41);
    assert.equal(took?.properties.request_id, "req-1");
    assert.equal(stored(t.client, req.id).delivery?.lock, undefined, "released when done");
  });
});

Deno.test("handle() a live lease whose holder runs, or cannot be told, stays busy until it expires", async () => {
  const t = setup({ holderGone: () => Promise.resolve(false) });
  const req = makeRequest({ id: "req-1", suggestedReviewers: [R1] });
  t.client.putRequest(req, false);
  const until = Date.now() + 60_000;
  t.client.pluginData.set(req.id, heldBy(req, { owner: "other/1", until }));
  await assert.rejects(
    t.handler.handle(put(req)),
    (err) => err instanceof RequestBusyError && err.until === until,
  );
  assert.equal(t.mailer.sent.length, 0);
});

Deno.test("handle() does not take over a lease that changed hands while its holder was probed", async () => {
  const t = setup();
  const req = makeRequest({ id: "req-1", suggestedReviewers: [R1] });
  t.client.putRequest(req, false);
  const until = Date.now() + 60_000;
  t.client.pluginData.set(req.id, heldBy(req, { owner: "dead/1", until, holder: DEAD }));
  const h = fakeHandler(t.client, t.mailer, {
    holderGone: () => {
      // Meanwhile a third instance took over the dead holder's lease.
      t.client.pluginData.set(req.id, heldBy(req, { owner: "third/1", until: until + 1 }));
      return Promise.resolve(true);
    },
  });
  await assert.rejects(
    h.handle(put(req)),
    (err) => err instanceof RequestBusyError && err.until === until + 1,
  );
  assert.equal(t.mailer.sent.length, 0);
});

Deno.test("handle() writes who holds the lease into it while sending", async () => {
  const holder = { host: "h1", pid: 42, start: 2000, probe: "/tmp/teleport-email-42-y.sock" };
  const t = setup({ holder });
  const req = makeRequest({ id: "req-1", suggestedReviewers: [R1] });
  t.client.putRequest(req, false);
  let open!: () => void;
  t.mailer.gate = new Promise<void>((r) => (open = r));
  const handling = t.handler.handle(put(req));
  await waitFor(() => t.mailer.inFlight > 0, "a send to start");
  assert.deepEqual(stored(t.client, req.id).delivery?.lock?.holder, holder);
  open();
  await handling;
  assert.equal(stored(t.client, req.id).delivery?.lock, undefined);
});

Deno.test("handle() takes a new request's lease without reading its plugin data first", async () => {
  const t = setup();
  const req = await newRequest(t, "req-1", [R1]);
  assert.equal(t.client.calls.get("getPluginData") ?? 0, 0);
  assert.equal(t.mailer.sent.length, 2);
  // A later event of a request this instance handled reads first (and needs nothing here).
  assert.deepEqual(await t.handler.handle(put(req)), { sent: 0, noop: true });
  assert.equal(t.client.calls.get("getPluginData"), 1);
  assert.equal(t.mailer.sent.length, 2);
});

Deno.test("handle() of a new-looking request another instance already handled sends nothing again", async () => {
  const first = setup();
  const req = await newRequest(first, "req-1", [R1]);
  // A second instance (same Teleport) sees the request's first PUT late: its guess that nothing
  // is stored fails the compare, it reads, and finds nothing to do.
  const second = fakeHandler(first.client, first.mailer, { sendBackoffMs: 1 });
  const writes = first.client.writes;
  assert.deepEqual(await second.handle(put(req)), { sent: 0, noop: true });
  assert.equal(first.mailer.sent.length, 2);
  assert.equal(first.client.writes, writes);
});
