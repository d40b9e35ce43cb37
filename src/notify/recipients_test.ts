import assert from "node:assert/strict";
import type { AccessMonitoringRule } from "../teleport/types.ts";
import {
  computeRecipients,
  INVALID_REVIEWER_WARNING,
  INVALID_RULE_RECIPIENT_WARNING,
  recipientKey,
  type RecipientOptions,
} from "./recipients.ts";
import { AccessMonitoringRuleCache } from "./rules.ts";
import { makeBareRequest } from "../../tests/helpers/fakes.ts";

const req = makeBareRequest;

function setup(over: Partial<RecipientOptions> = {}) {
  const warnings: Array<[string, Record<string, unknown>]> = [];
  const opts: RecipientOptions = {
    roleToRecipients: { dev: ["d@x.example"], "*": ["all@x.example"] },
    rules: new AccessMonitoringRuleCache(),
    notifyRequester: false,
    warn: (msg, attrs) => warnings.push([msg, attrs]),
    ...over,
  };
  return { opts, warnings };
}

function amr(name: string, recipients: string[], condition = "true"): AccessMonitoringRule {
  return {
    name,
    subjects: ["access_request"],
    states: [],
    condition,
    notification: { name: "email", recipients },
  };
}

Deno.test("computeRecipients() uses the role mapping without the wildcard when every role is mapped", () => {
  const { opts } = setup();
  assert.deepEqual(computeRecipients(req({ roles: ["dev"] }), opts), {
    recipients: ["d@x.example"],
    source: "roles",
  });
});

Deno.test("computeRecipients() falls back to the wildcard per unmapped role", () => {
  const { opts } = setup();
  assert.deepEqual(computeRecipients(req({ roles: ["dev", "ops"] }), opts).recipients, [
    "d@x.example",
    "all@x.example",
  ]);
  assert.deepEqual(computeRecipients(req({ roles: ["ops"] }), opts).recipients, ["all@x.example"]);
  const empty = setup({ roleToRecipients: { dev: [], "*": ["all@x.example"] } });
  assert.deepEqual(computeRecipients(req(), empty.opts).recipients, ["all@x.example"]);
});

Deno.test("computeRecipients() adds suggested reviewers after the configured recipients", () => {
  const { opts } = setup({ roleToRecipients: { "*": ["all@example.com"] } });
  // The Go suite's TestNewThreads: 2 suggested reviewers plus all@example.com.
  const r = computeRecipients(
    req({
      roles: ["editor"],
      suggestedReviewers: ["reviewer1@example.com", "reviewer2@example.com"],
    }),
    opts,
  );
  assert.deepEqual(r.recipients, [
    "all@example.com",
    "reviewer1@example.com",
    "reviewer2@example.com",
  ]);
});

Deno.test("computeRecipients() drops an invalid suggested reviewer with Go's warning", () => {
  const { opts, warnings } = setup();
  const r = computeRecipients(
    req({ suggestedReviewers: ["bob", "Bob <b@x.example>", "ok@x.example"] }),
    opts,
  );
  assert.deepEqual(r.recipients, ["d@x.example", "ok@x.example"]);
  assert.deepEqual(warnings, [
    [INVALID_REVIEWER_WARNING, { reviewer: "bob" }],
    [INVALID_REVIEWER_WARNING, { reviewer: "Bob <b@x.example>" }],
  ]);
});

Deno.test("computeRecipients() removes duplicates comparing domains case-insensitively", () => {
  const { opts } = setup({ roleToRecipients: { "*": ["Ann@Example.COM"], dev: [] } });
  const r = computeRecipients(
    req({
      roles: ["dev", "ops"],
      suggestedReviewers: ["Ann@example.com", "ann@example.com", "ANN@EXAMPLE.com"],
    }),
    opts,
  );
  // Same local part and domain → one; a different local-part case is a different mailbox.
  assert.deepEqual(r.recipients, ["Ann@Example.COM", "ann@example.com", "ANN@EXAMPLE.com"]);
  assert.equal(recipientKey("a@B.c"), "a@b.c");
});

Deno.test("computeRecipients() uses matching rule recipients as the whole list", () => {
  const { opts } = setup();
  opts.rules.set(amr("r2", ["team2@x.example", "shared@x.example"]));
  opts.rules.set(amr("r1", ["team1@x.example", "shared@X.EXAMPLE"]));
  opts.rules.set(amr("r3", ["never@x.example"], "false"));
  const r = computeRecipients(req({ suggestedReviewers: ["rev@x.example"] }), opts);
  assert.deepEqual(r, {
    recipients: ["team1@x.example", "shared@X.EXAMPLE", "team2@x.example"],
    source: "rules",
  });
});

Deno.test("computeRecipients() validates rule recipients and falls back to roles when none is valid", () => {
  const { opts, warnings } = setup();
  opts.rules.set(amr("r1", ["#slack-channel", "good@x.example"]));
  assert.deepEqual(computeRecipients(req(), opts).recipients, ["good@x.example"]);
  assert.deepEqual(warnings, [[INVALID_RULE_RECIPIENT_WARNING, {
    recipient: "#slack-channel",
    rule: "r1",
  }]]);

  const only = setup();
  only.opts.rules.set(amr("r1", ["not-an-address"]));
  const r = computeRecipients(req(), only.opts);
  assert.deepEqual(r, { recipients: ["d@x.example"], source: "roles" });
});

Deno.test("computeRecipients() ignores rules of other plugins (notification-name rewrite)", () => {
  const { opts } = setup();
  opts.rules.set({
    ...amr("slack", ["x@x.example"]),
    notification: { name: "slack", recipients: ["x@x.example"] },
  });
  assert.deepEqual(computeRecipients(req(), opts), {
    recipients: ["d@x.example"],
    source: "roles",
  });
});

Deno.test("computeRecipients() adds the requester once when notifyRequester is on", () => {
  const { opts } = setup({ notifyRequester: true });
  assert.deepEqual(computeRecipients(req(), opts), {
    recipients: ["d@x.example", "requester@example.com"],
    requester: "requester@example.com",
    source: "roles",
  });
  const already = computeRecipients(req({ suggestedReviewers: ["requester@EXAMPLE.com"] }), opts);
  assert.deepEqual(already.recipients, ["d@x.example", "requester@EXAMPLE.com"]);
  assert.equal(already.requester, "requester@example.com");
  const notEmail = computeRecipients(req({ user: "alice" }), opts);
  assert.deepEqual(notEmail, { recipients: ["d@x.example"], source: "roles" });
  const off = computeRecipients(req(), setup().opts);
  assert.equal(off.requester, undefined);
});

Deno.test("computeRecipients() returns nothing when no address is valid", () => {
  const { opts } = setup({ roleToRecipients: { "*": ["nope"] } });
  assert.deepEqual(computeRecipients(req({ suggestedReviewers: ["bob"] }), opts), {
    recipients: [],
    source: "roles",
  });
});
