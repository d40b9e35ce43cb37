import assert from "node:assert/strict";
import {
  decodePluginData,
  type EmailPluginData,
  emptyPluginData,
  encodePluginData,
  expectedPluginData,
  formatGoTimestamp,
  threadEncodingProblem,
} from "./plugin_data.ts";

// Vectors from the Go plugin's plugindata_test.go (TestEncodeDecodePluginData).
const GO_RECORD: EmailPluginData = {
  user: "user-foo",
  roles: ["role-foo", "role-bar"],
  requestReason: "foo reason",
  reviewsCount: 3,
  resolution: { tag: "APPROVED", reason: "foo ok" },
  threads: [
    { email: "E1", timestamp: "0000001", messageId: "M1" },
    { email: "E2", timestamp: "0000002", messageId: "M2" },
  ],
};
const GO_ENCODED = {
  user: "user-foo",
  roles: "role-foo,role-bar",
  request_reason: "foo reason",
  reviews_count: "3",
  resolution: "APPROVED",
  resolve_reason: "foo ok",
  email_threads: "E1/0000001/M1,E2/0000002/M2",
};
const EMPTY_ENCODED = {
  user: "",
  roles: "",
  request_reason: "",
  reviews_count: "",
  resolution: "",
  resolve_reason: "",
  email_threads: "",
};

Deno.test("encodePluginData() matches the Go vector for a full record", () => {
  assert.deepEqual(encodePluginData(GO_RECORD), GO_ENCODED);
});

Deno.test("decodePluginData() gives the Go vector's record back", () => {
  assert.deepEqual(decodePluginData(GO_ENCODED), GO_RECORD);
});

Deno.test("encodePluginData() writes all 7 keys empty for the empty record", () => {
  assert.deepEqual(encodePluginData(emptyPluginData()), EMPTY_ENCODED);
});

Deno.test("decodePluginData() gives the zero record for undefined and an empty map", () => {
  assert.deepEqual(decodePluginData(undefined), emptyPluginData());
  assert.deepEqual(decodePluginData({}), emptyPluginData());
  assert.deepEqual(decodePluginData(EMPTY_ENCODED), emptyPluginData());
});

Deno.test("decodePluginData() treats a bad or negative reviews_count as 0", () => {
  for (const v of ["", "x", "3x", "-2", "1.5", " 3"]) {
    assert.equal(decodePluginData({ reviews_count: v }).reviewsCount, 0, v);
  }
  assert.equal(decodePluginData({ reviews_count: "+4" }).reviewsCount, 4);
  assert.equal(decodePluginData({ reviews_count: "012" }).reviewsCount, 12);
});

Deno.test("decodePluginData() drops thread entries that do not have 3 parts", () => {
  const d = decodePluginData({
    email_threads: "a@x/t1/m1,bad,b@x/t2/m2/extra,c@x/t3/,/t4/m4",
  });
  assert.deepEqual(d.threads, [
    { email: "a@x", timestamp: "t1", messageId: "m1" },
    { email: "c@x", timestamp: "t3", messageId: "" },
    { email: "", timestamp: "t4", messageId: "m4" },
  ]);
});

Deno.test("decodePluginData() prepends a thread from the legacy email and timestamp keys", () => {
  const d = decodePluginData({ email: "old@x", timestamp: "T0", email_threads: "a@x/t1/m1" });
  assert.deepEqual(d.threads, [
    { email: "old@x", timestamp: "T0", messageId: "" },
    { email: "a@x", timestamp: "t1", messageId: "m1" },
  ]);
  assert.deepEqual(decodePluginData({ email: "old@x" }).threads, []);
  assert.deepEqual(decodePluginData({ timestamp: "T0" }).threads, []);
});

Deno.test("decodePluginData() keeps PROMOTED and maps unknown resolutions to EXPIRED", () => {
  assert.equal(decodePluginData({ resolution: "PROMOTED" }).resolution.tag, "PROMOTED");
  assert.equal(decodePluginData({ resolution: "WHATEVER" }).resolution.tag, "EXPIRED");
  assert.equal(decodePluginData({ resolution: "DENIED" }).resolution.tag, "DENIED");
});

Deno.test("encodePluginData() round-trips roles, reasons with newlines and non-ASCII", () => {
  const d: EmailPluginData = {
    user: "alice@example.com",
    roles: ["editor"],
    requestReason: "line 1\nline 2 — ünïcödé, with / and ,",
    reviewsCount: 0,
    resolution: { tag: "", reason: "" },
    threads: [{ email: "a@x", timestamp: formatGoTimestamp(new Date(0)), messageId: "<1.2@h>" }],
  };
  const m = encodePluginData(d);
  assert.equal(m.reviews_count, "");
  assert.deepEqual(decodePluginData(m), d);
});

Deno.test("encodePluginData() leaves out threads containing / or , and warns", () => {
  const warnings: Array<[string, Record<string, unknown>]> = [];
  const d = emptyPluginData();
  d.threads = [
    { email: "a/b@x", timestamp: "t", messageId: "m" },
    { email: "ok@x", timestamp: "t", messageId: "m" },
    { email: "c@x", timestamp: "t", messageId: "m,1" },
  ];
  const m = encodePluginData(d, { warn: (msg, attrs) => warnings.push([msg, attrs]) });
  assert.equal(m.email_threads, "ok@x/t/m");
  assert.equal(warnings.length, 2);
  assert.equal(warnings[0][0], "Cannot store email thread in plugin data");
  assert.equal(warnings[0][1].email, "a/b@x");
  assert.match(String(warnings[1][1].error), /message ID "m,1"/);
});

Deno.test("threadEncodingProblem() accepts normal threads", () => {
  assert.equal(
    threadEncodingProblem({
      email: "a@x",
      timestamp: "2024-05-01 10:11:12.123 +0000 UTC",
      messageId: "<2011@samples.mailgun.org>",
    }),
    undefined,
  );
  assert.match(
    threadEncodingProblem({ email: "a@x", timestamp: "1/2", messageId: "" }) ?? "",
    /timestamp/,
  );
});

Deno.test("expectedPluginData() expects the stored values, absent keys as empty", () => {
  assert.deepEqual(expectedPluginData(undefined), EMPTY_ENCODED);
  assert.deepEqual(expectedPluginData({ user: "u", email: "old@x", resolution: "FOO" }), {
    ...EMPTY_ENCODED,
    user: "u",
    resolution: "FOO",
    email: "old@x",
  });
});

Deno.test("formatGoTimestamp() formats like Go time.String() in UTC", () => {
  assert.equal(
    formatGoTimestamp(new Date(Date.UTC(2024, 4, 1, 10, 11, 12, 123)), 456_789),
    "2024-05-01 10:11:12.123456789 +0000 UTC",
  );
  assert.equal(
    formatGoTimestamp(new Date(Date.UTC(2024, 4, 1, 10, 11, 12, 120))),
    "2024-05-01 10:11:12.12 +0000 UTC",
  );
  assert.equal(
    formatGoTimestamp(new Date(Date.UTC(2026, 10, 24, 5, 0, 0, 0))),
    "2026-11-24 05:00:00 +0000 UTC",
  );
  assert.equal(formatGoTimestamp(new Date(0), 1), "1970-01-01 00:00:00.000000001 +0000 UTC");
});
