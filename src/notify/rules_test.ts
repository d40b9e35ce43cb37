import assert from "node:assert/strict";
import type { AccessMonitoringRule, AccessRequest } from "../teleport/types.ts";
import {
  AccessMonitoringRuleCache,
  effectiveCondition,
  RULE_PARSE_WARNING,
  ruleApplies,
} from "./rules.ts";
import { goRegexpLoaded } from "./go_regexp.ts";
import { makeBareRequest } from "../../tests/helpers/fakes.ts";

const REQ: AccessRequest = makeBareRequest({ user: "alice@example.com" });

function rule(name: string, over: Partial<AccessMonitoringRule> = {}): AccessMonitoringRule {
  return {
    name,
    subjects: ["access_request"],
    states: [],
    condition: 'access_request.spec.roles.contains("dev")',
    notification: { name: "", recipients: [`${name}@example.com`] },
    ...over,
  };
}

function collectWarnings() {
  const warnings: Array<{ msg: string; attrs: Record<string, unknown> }> = [];
  return {
    warnings,
    warn: (msg: string, attrs: Record<string, unknown>) => warnings.push({ msg, attrs }),
  };
}

Deno.test("AccessMonitoringRuleCache keeps only rules whose subjects include access_request", () => {
  const c = new AccessMonitoringRuleCache();
  c.set(rule("a"));
  c.set(rule("b", { subjects: ["access_list"] }));
  assert.equal(c.size, 1);
  assert.equal(ruleApplies(rule("x", { subjects: ["foo", "access_request"] })), true);
  // A PUT of a rule that no longer applies removes it.
  c.set(rule("a", { subjects: [] }));
  assert.equal(c.size, 0);
});

Deno.test("AccessMonitoringRuleCache.set() replaces, delete() removes, replaceAll() resets", () => {
  const c = new AccessMonitoringRuleCache();
  c.set(rule("a"));
  c.set(rule("a", { condition: 'access_request.spec.roles.contains("ops")' }));
  assert.equal(c.size, 1);
  assert.deepEqual(c.match(REQ), []);
  c.set(rule("b"));
  assert.deepEqual(c.match(REQ).map((r) => r.name), ["b"]);
  c.delete("b");
  c.delete("unknown");
  assert.deepEqual(c.match(REQ), []);
  c.replaceAll([rule("z"), rule("m"), rule("n", { subjects: ["other"] })]);
  assert.equal(c.size, 2);
  assert.deepEqual(c.match(REQ).map((r) => r.name), ["m", "z"], "sorted by name");
  assert.deepEqual(c.rules().map((r) => r.name), ["m", "z"]);
  c.replaceAll([]);
  assert.equal(c.size, 0);
});

Deno.test("effectiveCondition() applies the notification-name rewrite with parentheses", () => {
  assert.equal(
    effectiveCondition(
      rule("a", { condition: "a || b", notification: { name: "email", recipients: [] } }),
    ),
    'plugin.spec.name == "email" && (a || b)',
  );
  assert.equal(effectiveCondition(rule("a", { condition: "x" })), "x");
});

Deno.test("match() honours notification.name: other plugins' rules never match", () => {
  const c = new AccessMonitoringRuleCache();
  c.set(rule("slack-rule", { notification: { name: "slack", recipients: ["#dev"] } }));
  c.set(rule("email-rule", { notification: { name: "email", recipients: ["x@example.com"] } }));
  // Parenthesised: with Go's unparenthesised rewrite `... && false || true` this would match.
  c.set(
    rule("or-rule", {
      condition: "false || true",
      notification: { name: "slack", recipients: [] },
    }),
  );
  c.set(rule("any-plugin", { condition: 'plugin.spec.name == "email"' }));
  assert.deepEqual(c.match(REQ, "email").map((r) => r.name), ["any-plugin", "email-rule"]);
});

Deno.test("match() skips rules that do not parse or evaluate, with Go's warning", () => {
  const { warnings, warn } = collectWarnings();
  const c = new AccessMonitoringRuleCache({ warn });
  c.set(rule("bad-syntax", { condition: "access_request.spec.roles.contains(" }));
  c.set(rule("bad-eval", { condition: "choose(option(false, true))" }));
  c.set(rule("empty", { condition: "" }));
  c.set(rule("good"));
  assert.deepEqual(c.match(REQ).map((r) => r.name), ["good"]);
  assert.deepEqual(warnings.map((w) => [w.msg, w.attrs.rule]), [
    [RULE_PARSE_WARNING, "bad-eval"],
    [RULE_PARSE_WARNING, "bad-syntax"],
    [RULE_PARSE_WARNING, "empty"],
  ]);
  assert.match(String(warnings[1].attrs.error), /expected an operand/);
  assert.match(String(warnings[2].attrs.error), /empty expression/);
});

Deno.test("match() ignores spec.states, as the Go plugin does", () => {
  const c = new AccessMonitoringRuleCache();
  c.set(rule("a", { states: ["reviewed"] }));
  assert.deepEqual(c.match(REQ).map((r) => r.name), ["a"]);
});

const REGEXP_RULE = rule("rx", {
  condition: 'regexp.replace(access_request.spec.roles, "^d(.*)$", "x$1").contains("xev")',
});

Deno.test("a rule that calls regexp.replace matches once set() has loaded re2js", async () => {
  const c = new AccessMonitoringRuleCache();
  await c.set(REGEXP_RULE);
  assert.equal(goRegexpLoaded(), true);
  assert.deepEqual(c.match(REQ).map((r) => r.name), ["rx"]);
  await c.replaceAll([REGEXP_RULE, rule("b")]);
  assert.deepEqual(c.match(REQ).map((r) => r.name), ["b", "rx"]);
});

Deno.test("until re2js has loaded, a regexp rule is neither matched nor warned about", async () => {
  // In a fresh process: this one may have loaded re2js already (tests run in any order).
  const rules = new URL("./rules.ts", import.meta.url).href;
  const regexp = new URL("./go_regexp.ts", import.meta.url).href;
  const code = `
    import { AccessMonitoringRuleCache } from ${JSON.stringify(rules)};
    import { goRegexpLoaded } from ${JSON.stringify(regexp)};
    const req = ${JSON.stringify(REQ)};
    const warnings = [];
    const c = new AccessMonitoringRuleCache({ warn: (msg) => warnings.push(msg) });
    const plain = ${JSON.stringify(rule("b"))};
    const pending = c.replaceAll([${JSON.stringify(REGEXP_RULE)}, plain]);
    const loadedBefore = goRegexpLoaded();
    const before = c.match(req).map((r) => r.name);
    await pending;
    const after = c.match(req).map((r) => r.name);
    console.log(JSON.stringify({ loadedBefore, before, after, warnings }));
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", code],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(out.stdout)), {
    loadedBefore: false,
    before: ["b"],
    after: ["b", "rx"],
    warnings: [],
  });
});
