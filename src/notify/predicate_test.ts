import assert from "node:assert/strict";
import type { AccessRequest } from "../teleport/types.ts";
import {
  accessRequestEnv,
  compilePredicate,
  GO_ZERO_TIME,
  type PredicateEnv,
  PredicateError,
} from "./predicate.ts";
import { loadGoRegexp } from "./go_regexp.ts";

const REQ: AccessRequest = {
  id: "req-1",
  user: "alice@example.com",
  roles: ["editor", "dev"],
  state: "PENDING",
  created: new Date("2026-11-24T05:00:00Z"),
  expires: new Date("2026-11-24T17:00:00Z"),
  requestReason: 'need "prod" access',
  resolveReason: "",
  reviews: [],
  suggestedReviewers: ["bob@example.com"],
  systemAnnotations: { team: ["sre", "ops"], "pagerduty/services": ["svc1"] },
  requestedResources: [],
};
const ENV: PredicateEnv = accessRequestEnv(REQ, "email");

function evalCond(src: string, env: PredicateEnv = ENV): boolean {
  return compilePredicate(src)(env);
}

Deno.test("compilePredicate() evaluates the table of true/false conditions", async () => {
  await loadGoRegexp();
  const table: Array<[string, boolean]> = [
    ["true", true],
    ["false", false],
    ["!false", true],
    ["!!true", true],
    ['access_request.spec.roles.contains("editor")', true],
    ['access_request.spec.roles.contains("admin")', false],
    ['contains_any(access_request.spec.roles, set("admin", "dev"))', true],
    ['contains_any(access_request.spec.roles, set("admin"))', false],
    ['contains_all(access_request.spec.roles, set("editor", "dev"))', true],
    ['contains_all(access_request.spec.roles, set("editor", "admin"))', false],
    ["contains_all(access_request.spec.roles, set())", false],
    ["is_empty(access_request.spec.roles)", false],
    ['is_empty(access_request.spec.system_annotations["missing"])', true],
    ['access_request.spec.system_annotations["team"].contains("sre")', true],
    ["access_request.spec.system_annotations.team.contains(`ops`)", true],
    ['access_request.spec.system_annotations["pagerduty/services"].contains("svc1")', true],
    ['access_request.spec.suggested_reviewers.contains("bob@example.com")', true],
    ['access_request.spec.user == "alice@example.com"', true],
    ['access_request.spec.user != "alice@example.com"', false],
    ['"alice@example.com" == access_request.spec.user', true],
    ['access_request.spec.request_reason == "need \\"prod\\" access"', true],
    ['plugin.spec.name == "email"', true],
    ['plugin.spec.name == "slack" && true', false],
    ['plugin.spec.name == "slack" || access_request.spec.roles.contains("dev")', true],
    ['(plugin.spec.name == "email") && (false || true)', true],
    ["1 == 1", true],
    ["1 != 1", false],
    ['access_request.spec.roles.add("x").contains("x")', true],
    ['access_request.spec.roles.remove("dev").contains("dev")', false],
    ['union(set("a"), access_request.spec.roles).contains("a")', true],
    ['access_request.spec.roles.contains_any(set("dev"))', true],
    ['access_request.spec.roles.contains_all(set("dev", "nope"))', false],
    ["access_request.spec.roles.isempty()", false],
    ['strings.upper(access_request.spec.user) == "ALICE@EXAMPLE.COM"', true],
    ['strings.lower(access_request.spec.roles).contains("editor")', true],
    ['strings.replaceall(access_request.spec.user, "@example.com", "") == "alice"', true],
    ['strings.split(set("a,b"), ",").contains("b")', true],
    ['email.local(set(access_request.spec.user)).contains("alice")', true],
    ['regexp.replace(access_request.spec.roles, "^ed(.*)$", "x$1").contains("xitor")', true],
    ['regexp.replace(access_request.spec.roles, "^ed(.*)$", "x$1").contains("dev")', false],
    ['ifelse(true, "a", "b") == "a"', true],
    ["ifelse(false, 1, 2) == 2", true],
    ['ifelse(false, set("a"), set("b")).contains("b")', true],
    ['choose(option(false, "a"), option(true, "b")) == "b"', true],
    ['access_request.spec.creation_time.before(time.RFC3339("2026-11-25T00:00:00Z"))', true],
    ['after(access_request.spec.expiry, time.RFC3339("2026-11-24T18:00:00Z"))', false],
    [
      'access_request.spec.creation_time.between(time.RFC3339("2026-11-24T00:00:00Z"), time.RFC3339("2026-11-23T00:00:00Z"))',
      false,
    ],
    [
      'between(access_request.spec.creation_time, time.RFC3339("2026-11-25T00:00:00Z"), time.RFC3339("2026-11-24T00:00:00Z"))',
      true,
    ],
    ['"\\x41\\u00e9\\U0001F600\\101\\t" == "Aé😀A\t"', true],
    ['ifelse(true, 1, "x")', false], // a non-boolean result is no match, as in Go
    ['access_request.spec.roles.contains("dev",)', true], // Go allows a trailing comma
  ];
  for (const [src, want] of table) {
    assert.equal(evalCond(src), want, src);
  }
});

Deno.test("compilePredicate() short-circuits && and || like Go", () => {
  // The right-hand side would fail at evaluation time (choose without a true option).
  const bad = "choose(option(false, true))";
  assert.equal(evalCond(`false && ${bad}`), false);
  assert.equal(evalCond(`true || ${bad}`), true);
  assert.throws(() => evalCond(`true && ${bad}`), (e: unknown) => {
    assert.ok(e instanceof PredicateError);
    assert.equal(e.phase, "evaluate");
    assert.match(e.message, /no option could be selected/);
    return true;
  });
});

Deno.test("compilePredicate() rejects bad conditions with typed errors and positions", () => {
  const table: Array<[string, RegExp, number | undefined]> = [
    ["", /empty expression/, undefined],
    ["access_request.spec.rolez", /unknown identifier: "access_request\.spec\.rolez"/, 0],
    ["user.traits", /unknown identifier: "user\.traits"/, 0],
    ['equals(access_request.spec.user, "x")', /unsupported function: equals/, 0],
    ['has_prefix(access_request.spec.user, "x")', /unsupported function: has_prefix/, 0],
    ['regexp.match(access_request.spec.roles, "x")', /unsupported function: regexp\.match/, 0],
    [
      'access_request.spec.roles.nope("x")',
      /unsupported function: access_request\.spec\.roles\.nope/,
      0,
    ],
    [
      'contains_any(access_request.spec.roles, "dev")',
      /argument 2 to function \(contains_any\): expected set, got string/,
      40,
    ],
    ['access_request.spec.roles == "dev"', /operator \(==\) not supported for type: set/, 26],
    [
      'access_request.spec.roles.contains("a", "b")',
      /function \(contains\) accepts 2 arguments, given 3/,
      34,
    ],
    ["set()", /must be a boolean expression, not set/, 3],
    ['"a"', /must be a boolean expression, not string/, 0],
    ["true &&", /expected an operand, found end of expression/, 7],
    ["(true", /expected "\)", found end of expression/, 5],
    ["true false", /expected end of expression, found "false"/, 5],
    ['"unterminated', /string literal not terminated/, 0],
    ['"bad \\q escape"', /unknown escape sequence/, 5],
    ["'c' == 'c'", /character literals are not supported/, 0],
    ["1 < 2", /operator "<" is not supported/, 2],
    ["1.5 == 1.5", /unsupported number literal "1\.5"/, 0],
    ["true # x", /unexpected character "#"/, 5],
    ["!access_request.spec.user", /target of \(!\) operator: expected bool, got string/, 1],
    ['access_request.spec.user["x"] == "y"', /cannot take index of unexpected type string/, 24],
  ];
  for (const [src, re, pos] of table) {
    assert.throws(() => compilePredicate(src), (e: unknown) => {
      assert.ok(e instanceof PredicateError, `${src}: ${e}`);
      assert.equal(e.phase, "parse", src);
      assert.match(e.message, re, src);
      if (pos !== undefined) assert.equal(e.position, pos, `${src}: ${e.message}`);
      return true;
    }, src);
  }
});

Deno.test("compilePredicate() reports type errors of dynamic values at evaluation", () => {
  const p = compilePredicate('ifelse(true, "x", set("a")).contains("a")');
  assert.throws(() => p(ENV), (e: unknown) => {
    assert.ok(e instanceof PredicateError);
    assert.equal(e.phase, "evaluate");
    assert.match(e.message, /expected set, got value of type string/);
    return true;
  });
  const local = compilePredicate('email.local(set("not an email")).contains("x")');
  assert.throws(() => local(ENV), /email\.local: failed to parse address "not an email"/);
});

Deno.test("compilePredicate() refuses absurdly deep nesting instead of overflowing the stack", () => {
  const deep = "(".repeat(5000) + "true" + ")".repeat(5000);
  assert.throws(() => compilePredicate(deep), /nested too deeply/);
  const nots = "!".repeat(5000) + "true";
  assert.throws(() => compilePredicate(nots), /nested too deeply/);
});

Deno.test("accessRequestEnv() maps the request and uses Go's zero time when unset", () => {
  const env = accessRequestEnv({ ...REQ, created: undefined, expires: undefined }, "email");
  assert.equal(env.creationTime.toISOString(), "0001-01-01T00:00:00.000Z");
  assert.equal(env.expiry.getTime(), GO_ZERO_TIME.getTime());
  assert.equal(env.pluginName, "email");
  assert.deepEqual(env.roles, ["editor", "dev"]);
  assert.equal(
    evalCond('access_request.spec.creation_time.before(time.RFC3339("1970-01-01T00:00:00Z"))', env),
    true,
  );
});

Deno.test("a compiled predicate can be evaluated many times against different requests", () => {
  const p = compilePredicate('access_request.spec.roles.contains("dev")');
  assert.equal(p(ENV), true);
  assert.equal(p(accessRequestEnv({ ...REQ, roles: ["ops"] })), false);
  assert.equal(p(ENV), true);
});

Deno.test("compilePredicate() says whether the condition calls regexp.replace", () => {
  const calls = 'regexp.replace(access_request.spec.roles, "a", "b").contains("b")';
  assert.equal(compilePredicate(calls).usesRegexp, true);
  assert.equal(compilePredicate(`true || ${calls}`).usesRegexp, true);
  assert.equal(compilePredicate('access_request.spec.roles.contains("dev")').usesRegexp, false);
  // The name in a string is not a call.
  assert.equal(compilePredicate('access_request.spec.user == "regexp.replace"').usesRegexp, false);
});
