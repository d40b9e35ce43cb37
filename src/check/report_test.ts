import assert from "node:assert/strict";
import { CheckReport, formatLine } from "./report.ts";
import { formatDuration } from "./teleport.ts";
import { testEmail } from "./test_email.ts";

Deno.test("formatLine() pads the status and appends the fix or the reason on one line", () => {
  assert.equal(
    formatLine({ status: "OK", what: "configuration: loaded" }),
    "OK    configuration: loaded",
  );
  assert.equal(
    formatLine({ status: "FAIL", what: "mailer: refused\nat MAIL FROM", fix: "set x" }),
    "FAIL  mailer: refused at MAIL FROM; fix: set x",
  );
  assert.equal(
    formatLine({ status: "SKIP", what: "permissions", fix: "no connection to Teleport" }),
    "SKIP  permissions; reason: no connection to Teleport",
  );
});

Deno.test("CheckReport redacts secrets, counts failures and prints a summary", () => {
  let out = "";
  const report = new CheckReport((t) => out += t);
  report.addSecret("hunter2-password");
  report.addSecret("abc"); // too short to redact safely: ignored
  report.ok("configuration: loaded");
  report.warn("credentials: 30m left", "renew it");
  assert.equal(report.failed, false);
  report.fail("mailer: password hunter2-password refused", "use hunter2-password");
  report.block("kind: role\n  name: x\n");
  report.summary();
  assert.equal(report.failed, true);
  assert.ok(!out.includes("hunter2-password"), out);
  assert.equal(
    out,
    "OK    configuration: loaded\n" +
      "WARN  credentials: 30m left; fix: renew it\n" +
      "FAIL  mailer: password [redacted] refused; fix: use [redacted]\n" +
      "      kind: role\n" +
      "        name: x\n" +
      "\nFAIL: 1 failed, 1 warnings, 1 passed, 0 skipped\n",
  );
});

Deno.test("formatDuration() gives days, hours, minutes or seconds", () => {
  assert.equal(formatDuration(3 * 86_400_000 + 5 * 3_600_000), "3d 5h");
  assert.equal(formatDuration(2 * 3_600_000 + 7 * 60_000 + 59_000), "2h 7m");
  assert.equal(formatDuration(59 * 60_000), "59m");
  assert.equal(formatDuration(42_000), "42s");
  assert.equal(formatDuration(-5), "0s");
});

Deno.test("testEmail() says it is a test in the subject, the text and the HTML (escaped)", () => {
  const mail = testEmail("ops@example.com", {
    clusterName: "teleport.example.com",
    hostname: "host<1>",
    version: "teleport-email v0.1.0",
    transport: 'SMTP "mail.example.com:587"',
    sentAt: new Date("2026-12-06T19:00:00Z"),
  });
  assert.equal(mail.to, "ops@example.com");
  assert.equal(mail.subject, "[TEST] teleport-email test message for cluster teleport.example.com");
  assert.match(mail.text, /^This is a TEST message sent by "teleport-email check --send-test"\./);
  assert.match(mail.text, /needs no action/);
  assert.match(mail.html, /This is a TEST message/);
  assert.match(mail.html, /host&lt;1&gt;/);
  assert.equal(mail.inReplyTo, undefined);
});
