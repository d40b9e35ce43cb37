/**
 * Teleport's own test cases for the predicate language and its Go (RE2) regular expressions,
 * ported as tables. Sources (gravitational/teleport):
 * - `lib/accessmonitoring/request_mapping_test.go` (`TestEvaluateCondition`, role conditions);
 * - `lib/expression/evaluator_test.go` (`TestEvaluateTraitsMap`: `user.spec.traits.X` is read here
 *   from `access_request.spec.system_annotations.X`, the map variable Access Monitoring Rules have);
 * - `lib/utils/parse/parse_test.go` (`TestInterpolate`, `TestMatch`: `regexp.replace`, bad regexps);
 * - `lib/utils/utils_test.go` (`TestReplaceRegexp`, its regular-expression cases).
 */
import assert from "node:assert/strict";
import {
  accessRequestEnv,
  compilePredicate,
  type PredicateEnv,
  PredicateError,
} from "./predicate.ts";
import { loadGoRegexp } from "./go_regexp.ts";
import type { AccessRequest } from "../teleport/types.ts";

function request(roles: string[], annotations: Record<string, string[]> = {}): AccessRequest {
  return {
    id: "req-1",
    user: "alice@example.com",
    roles,
    state: "PENDING",
    created: new Date("2026-11-24T05:00:00Z"),
    expires: new Date("2026-11-24T17:00:00Z"),
    requestReason: "",
    resolveReason: "",
    reviews: [],
    suggestedReviewers: [],
    systemAnnotations: annotations,
    requestedResources: [],
  };
}

/** Teleport's `baseInputTraits`, as system annotations. */
const TRAITS = accessRequestEnv(
  request([], { groups: ["devs", "security"], username: ["alice"] }),
);
const T = "access_request.spec.system_annotations";

/** A condition true exactly when the set expression `expr` evaluates to `want`. */
function setIs(expr: string, want: string[]): string {
  if (want.length === 0) return `is_empty(${expr})`;
  const lit = `set(${want.map((v) => JSON.stringify(v)).join(", ")})`;
  return `contains_all(${expr}, ${lit}) && contains_all(${lit}, ${expr})`;
}

Deno.test("Teleport's TestEvaluateCondition role cases match as in Go", () => {
  const roles = accessRequestEnv(request(["dev", "stage", "prod"]));
  const none = accessRequestEnv(request([]));
  const table: Array<[string, string, PredicateEnv, boolean]> = [
    [
      "match at least one role",
      'contains_any(access_request.spec.roles, set("dev")) && access_request.spec.roles.contains_any(set("dev"))',
      roles,
      true,
    ],
    [
      "does not match any role",
      'contains_any(access_request.spec.roles, set("no-match")) || access_request.spec.roles.contains_any(set("no-match"))',
      roles,
      false,
    ],
    [
      "matches all requested roles",
      'contains_all(set("dev", "stage", "prod"), access_request.spec.roles) && set("dev", "stage", "prod").contains_all(access_request.spec.roles)',
      roles,
      true,
    ],
    [
      "does not match all requested roles",
      'contains_all(set("dev"), access_request.spec.roles) || set("dev").contains_all(access_request.spec.roles)',
      roles,
      false,
    ],
    [
      "requested roles is empty",
      'contains_all(set("dev"), access_request.spec.roles) || set("dev").contains_all(access_request.spec.roles)',
      none,
      false,
    ],
    [
      "both sets are empty",
      "contains_all(set(), access_request.spec.roles) || set().contains_all(access_request.spec.roles)",
      none,
      false,
    ],
  ];
  for (const [name, src, env, want] of table) {
    assert.equal(compilePredicate(src)(env), want, name);
  }
});

Deno.test("Teleport's TestEvaluateTraitsMap expressions evaluate as in Go", () => {
  const table: Array<[string, string, string[]]> = [
    ["ifelse", 'set(ifelse(true, "correct", "wrong"))', ["correct"]],
    ["ifelse", 'set(ifelse(false, "wrong", "correct"))', ["correct"]],
    ["ifelse", 'set(ifelse(ifelse(true, true, false), "correct", "wrong"))', ["correct"]],
    ["ifelse", 'set(ifelse(true, "correct", "wrong"), "correct")', ["correct"]],
    ["ifelse", `ifelse(true, ${T}.groups, set("wrong"))`, ["devs", "security"]],
    ["set methods", `${T}.groups.add("extra", "surplus")`, [
      "extra",
      "surplus",
      "devs",
      "security",
    ]],
    ["set methods", `${T}.groups.remove("security")`, ["devs"]],
    [
      "set methods",
      `${T}.groups.remove("devs", "security").add("test").remove("test").remove("not-a-group")`,
      [],
    ],
    ["set methods", `${T}.groups.remove("not-a-group")`, ["devs", "security"]],
    [
      "set methods",
      `ifelse(${T}.groups.contains("admins"), ${T}.username.add("root"), ${T}.username)`,
      ["alice"],
    ],
    ["set union", `union(${T}.groups, set("test1", "test2"))`, [
      "test1",
      "test2",
      "devs",
      "security",
    ]],
    [
      "set union",
      'union(set("apple", "banana"), set("cherry"), set("dragonfruit", "eggplant"))',
      ["apple", "banana", "cherry", "dragonfruit", "eggplant"],
    ],
    ["string helpers", 'set(strings.lower("BaNaNa"))', ["banana"]],
    ["string helpers", 'strings.lower(set("cherry", "dragonFRUIT"))', ["cherry", "dragonfruit"]],
    ["string helpers", `strings.upper(${T}.username)`, ["ALICE"]],
    ["string helpers", 'set(strings.replaceall("snake_case_example", "_", "-"))', [
      "snake-case-example",
    ]],
    [
      "string helpers",
      'set(strings.replaceall(strings.replaceall("user@example.com", "@", "_"), ".", "-"))',
      ["user_example-com"],
    ],
    ["string helpers", 'strings.replaceall(set("dev-team", "platform-team"), "-team", "")', [
      "dev",
      "platform",
    ]],
    ["choose", 'set(choose(option(true, "first"), option(false, "second")))', ["first"]],
    ["choose", 'set(choose(option(false, "first"), option(true, "second")))', ["second"]],
    [
      "choose",
      `choose(option(${T}.username.contains("alice"), set("devs", "security", "requester")), option(${T}.username.contains("bob"), set("security", "reviewer")), option(true, set()))`,
      ["devs", "security", "requester"],
    ],
    ["strings.split", 'strings.split(set("alice,bob,charlie"), ",")', ["alice", "bob", "charlie"]],
    [
      "strings.split",
      'email.local(strings.split(set("darrell@example.com  esther@example.com"), "  "))',
      ["darrell", "esther"],
    ],
    ["methods on nil set", `${T}["a"].add("a")`, ["a"]],
    ["methods on nil set", `${T}["e"].remove("e")`, []],
    [
      "contains_all",
      `ifelse(${T}.groups.contains_all(set("security")) || contains_all(${T}.groups, set("security")), set("true"), set("false"))`,
      ["true"],
    ],
    [
      "contains_all",
      `ifelse(${T}.groups.contains_all(set()) || contains_all(${T}.groups, set()), set("true"), set("false"))`,
      ["false"],
    ],
  ];
  for (const [name, expr, want] of table) {
    const src = setIs(expr, want);
    assert.equal(compilePredicate(src)(TRAITS), true, `${name}: ${expr}`);
  }
});

Deno.test("Teleport's regexp.replace cases use Go's RE2 syntax and ReplaceAllString", async () => {
  await loadGoRegexp();
  const table: Array<[string, string[], string, string, string[]]> = [
    // lib/utils/parse TestInterpolate
    ["numeric match", ["bar-baz"], "bar-(.*)", "$1", ["baz"]],
    ["named match", ["bar-baz"], "bar-(?P<suffix>.*)", "$suffix", ["baz"]],
    ["multiple matches", ["foo-bar-baz"], "foo-(.*)-(.*)", "$1.$2", ["bar.baz"]],
    ["no match", ["foo-test1", "bar-test2"], "^bar-(.*)$", "$1-matched", ["test2-matched"]],
    // lib/utils TestReplaceRegexp
    ["simple values are replaced directly", ["value"], "value", "value", ["value"]],
    ["no match", ["val"], "value", "value", []],
    ["full match is supported", ["value"], "^value$", "value", ["value"]],
    ["wildcard replaces to itself", ["value"], "^(.*)$", "$1", ["value"]],
    ["partial conversions are supported", ["test-hello"], "^test-(.*)$", "replace-$1", [
      "replace-hello",
    ]],
    // RE2 syntax that JavaScript's RegExp rejects or reads differently
    ["(?i) flag", ["ADMIN", "admins"], "(?i)^admin$", "admin", ["admin"]],
    ["(?i) scoped group", ["DEV-Team"], "^(?i:dev)-(.*)$", "$1", ["Team"]],
    ["Unicode class \\pL", ["été-1"], "^(\\pL+)-\\d$", "$1", ["été"]],
    ["\\Q…\\E literal", ["a.b", "axb"], "^\\Qa.b\\E$", "ok", ["ok"]],
    ["${name} braced", ["bar-baz"], "bar-(?P<s>.*)", "${s}x", ["bazx"]],
    ["$1x is the group named 1x", ["ab"], "(a)(b)", "$1x", [""]],
    ["$$ is a dollar", ["ab"], "a", "$$", ["$b"]],
    ["empty match after a match is not replaced", ["baaac"], "a*", "X", ["XbXcX"]],
    ["(?U) ungreedy", ["aaa"], "(?U)^(a+)", "[$1]", ["[a]aa"]],
    ["code points", ["😀x"], "^.", "_", ["_x"]],
  ];
  for (const [name, input, re, repl, want] of table) {
    const inputSet = `set(${input.map((v) => JSON.stringify(v)).join(", ")})`;
    const expr = `regexp.replace(${inputSet}, ${JSON.stringify(re)}, ${JSON.stringify(repl)})`;
    assert.equal(compilePredicate(setIs(expr, want))(TRAITS), true, `${name}: ${expr}`);
  }
});

Deno.test("regexp.replace rejects what Go's regexp.Compile rejects", async () => {
  await loadGoRegexp();
  const table: Array<[string, RegExp]> = [
    ["(.*@example.com", /invalid regexp "\(\.\*@example\.com": .*missing closing \)/], // evaluator_test
    ["+foo", /invalid regexp "\+foo": .*missing argument to repetition operator/], // TestMatch
    ["^(($", /invalid regexp "\^\(\(\$"/], // TestReplaceRegexp
    ["(a)\\1", /invalid regexp .*invalid escape sequence/], // no backreferences in RE2
    ["a(?=b)", /invalid regexp "a\(\?=b\)"/], // no lookahead in RE2
    ["a{1001}", /invalid regexp .*invalid repeat count/],
  ];
  for (const [re, want] of table) {
    const p = compilePredicate(
      `regexp.replace(set("alice@example.com"), ${JSON.stringify(re)}, "$1").contains("x")`,
    );
    assert.throws(() => p(TRAITS), (e: unknown) => {
      assert.ok(e instanceof PredicateError, String(e));
      assert.equal(e.phase, "evaluate");
      assert.match(e.message, want, re);
      return true;
    }, re);
  }
});
