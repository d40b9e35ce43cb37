/**
 * Teleport's predicate language, as used by Access Monitoring Rule conditions
 * (`lib/accessmonitoring` + `lib/expression` + `lib/utils/typical` on top of
 * `vulcand/predicate`, which parses Go expression syntax).
 *
 * Supported, with Teleport's names and semantics:
 *
 * - literals: `"interpreted"` strings with Go escapes, `` `raw` `` strings, decimal integers,
 *   `true`, `false`;
 * - variables: `access_request.spec.roles` (set), `access_request.spec.suggested_reviewers`
 *   (set), `access_request.spec.system_annotations` (map of sets, indexed with `["key"]` or
 *   `.key`), `access_request.spec.user`, `access_request.spec.request_reason` (strings),
 *   `access_request.spec.creation_time`, `access_request.spec.expiry` (times),
 *   `plugin.spec.name` (string);
 * - operators: `&&`, `||` (short-circuit), `!`, and `==`, `!=` on strings and integers;
 * - functions: `set(s...)`, `union(set...)`, `contains_any(set, set)`, `contains_all(set, set)`
 *   (false when the second set is empty), `is_empty(set)`, `ifelse(bool, a, b)`,
 *   `strings.upper|lower(string|set)`, `strings.replaceall(string|set, old, new)`,
 *   `strings.split(set, sep)`, `email.local(set)`, `regexp.replace(set, re, replacement)`,
 *   `time.RFC3339(string)`, `before(t, u)`, `after(t, u)`, `between(t, a, b)`,
 *   `choose(option(cond, value)...)`;
 * - methods: `set.contains(s)`, `set.add(s...)`, `set.remove(s...)`, `set.contains_any(set)`,
 *   `set.contains_all(set)`, `set.isempty()`, `t.before(u)`, `t.after(u)`, `t.between(a, b)`.
 *
 * `regexp.replace` uses Go's RE2 syntax (`(?i)`, `(?P<name>…)`, `\pL`; no backreferences or
 * lookaround) and Go's `ReplaceAllString` template (`$1`, `${name}`, `$$`), see `go_regexp.ts`.
 *
 * Types are checked when compiling, as `typical` does: a string where a set is expected,
 * `==` on sets, an unknown identifier or function are compile errors ({@link PredicateError}
 * with `phase: "parse"` and the 0-based `position` in the source). Unlike Go, a condition whose
 * type is known not to be boolean is rejected too (Go would parse it and never match).
 *
 * Not supported (compile error): `dict`/`pair`/`put`/`add_values`, the newer
 * `access_request.spec.requested_resources`, `user.traits` and `has_labels` (they need extra
 * Teleport lookups), and semver comparisons.
 *
 * @module
 */
import { goParseAddress } from "../email_address.ts";
import { errorMessage, TeleportEmailError } from "../errors.ts";
import type { RE2JS } from "re2js";
import { compileGoRegexp, goMatchString, goReplaceAll } from "./go_regexp.ts";
import type { AccessRequest } from "../teleport/types.ts";

/** A predicate that failed to compile (`parse`) or to evaluate (`evaluate`). */
export class PredicateError extends TeleportEmailError {
  readonly phase: "parse" | "evaluate";
  /** 0-based offset in the source of the offending token, when known. */
  readonly position?: number;

  constructor(
    phase: "parse" | "evaluate",
    message: string,
    options: { position?: number; cause?: unknown } = {},
  ) {
    super(
      options.position === undefined ? message : `${message} at position ${options.position}`,
      { cause: options.cause },
    );
    this.phase = phase;
    this.position = options.position;
  }
}

/** The variables a condition can read (Go's `AccessRequestExpressionEnv`). */
export interface PredicateEnv {
  roles: readonly string[];
  suggestedReviewers: readonly string[];
  annotations: Readonly<Record<string, readonly string[]>>;
  user: string;
  requestReason: string;
  creationTime: Date;
  expiry: Date;
  /** `plugin.spec.name`: the plugin's name, `email` here. */
  pluginName: string;
}

/** Go's zero `time.Time` (0001-01-01 00:00:00 UTC), for unset timestamps. */
export const GO_ZERO_TIME: Date = (() => {
  const d = new Date(0);
  d.setUTCFullYear(1, 0, 1);
  return d;
})();

/** The evaluation environment of an access request, as the Go plugin builds it. */
export function accessRequestEnv(req: AccessRequest, pluginName = "email"): PredicateEnv {
  return {
    roles: req.roles,
    suggestedReviewers: req.suggestedReviewers,
    annotations: req.systemAnnotations,
    user: req.user,
    requestReason: req.requestReason,
    creationTime: req.created ?? GO_ZERO_TIME,
    expiry: req.expires ?? GO_ZERO_TIME,
    pluginName,
  };
}

// ---------------------------------------------------------------------------------------------
// Lexer

type TokenKind = "ident" | "string" | "int" | "op" | "eof";
interface Token {
  kind: TokenKind;
  /** Identifier name, decoded string, digits, or operator text. */
  text: string;
  pos: number;
}

const OPERATORS = [
  "&&",
  "||",
  "==",
  "!=",
  "<=",
  ">=",
  "<<",
  ">>",
  "&^",
  "!",
  "(",
  ")",
  "[",
  "]",
  ",",
  ".",
  "<",
  ">",
  "+",
  "-",
  "*",
  "/",
  "%",
  "&",
  "|",
  "^",
  "{",
  "}",
  ":",
  ";",
  "=",
];

function parseError(message: string, pos: number): PredicateError {
  return new PredicateError("parse", message, { position: pos });
}

function decodeGoString(src: string, start: number, end: number): string {
  // src[start] is the opening quote, src[end-1] the closing one.
  let out = "";
  let i = start + 1;
  const last = end - 1;
  while (i < last) {
    const c = src[i];
    if (c !== "\\") {
      out += c;
      i++;
      continue;
    }
    const e = src[i + 1];
    const simple: Record<string, string> = {
      a: "\x07",
      b: "\b",
      f: "\f",
      n: "\n",
      r: "\r",
      t: "\t",
      v: "\v",
      "\\": "\\",
      '"': '"',
    };
    if (e in simple) {
      out += simple[e];
      i += 2;
      continue;
    }
    const hex = (n: number) => {
      const digits = src.slice(i + 2, i + 2 + n);
      if (digits.length !== n || !/^[0-9a-fA-F]+$/.test(digits)) {
        throw parseError("invalid escape sequence in string literal", i);
      }
      return Number.parseInt(digits, 16);
    };
    if (e === "x") {
      // A byte; Go strings are bytes, ours are code points: take it as Latin-1.
      out += String.fromCharCode(hex(2));
      i += 4;
    } else if (e === "u" || e === "U") {
      const n = e === "u" ? 4 : 8;
      const cp = hex(n);
      if (cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000)) {
        throw parseError("invalid Unicode code point in string literal", i);
      }
      out += String.fromCodePoint(cp);
      i += 2 + n;
    } else if (e >= "0" && e <= "7") {
      const digits = src.slice(i + 1, i + 4);
      if (!/^[0-7]{3}$/.test(digits) || Number.parseInt(digits, 8) > 255) {
        throw parseError("invalid octal escape in string literal", i);
      }
      out += String.fromCharCode(Number.parseInt(digits, 8));
      i += 4;
    } else {
      throw parseError("unknown escape sequence in string literal", i);
    }
  }
  return out;
}

function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (c === " " || c === "\t" || c === "\n" || c === "\r") {
      i++;
      continue;
    }
    if (/[\p{L}_]/u.test(c)) {
      let j = i + 1;
      while (j < src.length && /[\p{L}\p{Nd}_]/u.test(src[j])) j++;
      tokens.push({ kind: "ident", text: src.slice(i, j), pos: i });
      i = j;
      continue;
    }
    if (/[0-9]/.test(c)) {
      let j = i;
      while (j < src.length && /[0-9A-Za-z_.]/.test(src[j])) j++;
      const text = src.slice(i, j);
      if (!/^(0|[1-9][0-9]*)$/.test(text)) {
        throw parseError(`unsupported number literal ${JSON.stringify(text)}`, i);
      }
      tokens.push({ kind: "int", text, pos: i });
      i = j;
      continue;
    }
    if (c === '"') {
      let j = i + 1;
      while (j < src.length && src[j] !== '"') {
        if (src[j] === "\n") break;
        j += src[j] === "\\" ? 2 : 1;
      }
      if (j >= src.length || src[j] !== '"') throw parseError("string literal not terminated", i);
      tokens.push({ kind: "string", text: decodeGoString(src, i, j + 1), pos: i });
      i = j + 1;
      continue;
    }
    if (c === "`") {
      const j = src.indexOf("`", i + 1);
      if (j < 0) throw parseError("raw string literal not terminated", i);
      tokens.push({ kind: "string", text: src.slice(i + 1, j).replaceAll("\r", ""), pos: i });
      i = j + 1;
      continue;
    }
    if (c === "'") throw parseError("character literals are not supported", i);
    const op = OPERATORS.find((o) => src.startsWith(o, i));
    if (op === undefined) throw parseError(`unexpected character ${JSON.stringify(c)}`, i);
    tokens.push({ kind: "op", text: op, pos: i });
    i += op.length;
  }
  tokens.push({ kind: "eof", text: "", pos: src.length });
  return tokens;
}

// ---------------------------------------------------------------------------------------------
// Parser: Go expression syntax, restricted to what vulcand/predicate accepts.

type Ast =
  | { k: "string"; v: string; pos: number }
  | { k: "int"; v: number; pos: number }
  | { k: "ident"; name: string; pos: number }
  | { k: "sel"; x: Ast; name: string; pos: number }
  | { k: "index"; x: Ast; key: Ast; pos: number }
  | { k: "call"; fn: Ast; args: Ast[]; pos: number }
  | { k: "not"; x: Ast; pos: number }
  | { k: "bin"; op: string; l: Ast; r: Ast; pos: number };

const BINARY_PRECEDENCE: Record<string, number> = {
  "||": 1,
  "&&": 2,
  "==": 3,
  "!=": 3,
  "<": 3,
  "<=": 3,
  ">": 3,
  ">=": 3,
  "+": 4,
  "-": 4,
  "|": 4,
  "^": 4,
  "*": 5,
  "/": 5,
  "%": 5,
  "<<": 5,
  ">>": 5,
  "&": 5,
  "&^": 5,
};
const SUPPORTED_BINARY = new Set(["||", "&&", "==", "!="]);
const MAX_DEPTH = 200;

class Parser {
  #t: Token[];
  #i = 0;
  #depth = 0;

  constructor(tokens: Token[]) {
    this.#t = tokens;
  }

  get #peek(): Token {
    return this.#t[this.#i];
  }

  #next(): Token {
    return this.#t[this.#i++];
  }

  #isOp(text: string): boolean {
    return this.#peek.kind === "op" && this.#peek.text === text;
  }

  #expectOp(text: string): Token {
    if (!this.#isOp(text)) throw this.#unexpected(`expected "${text}"`);
    return this.#next();
  }

  #unexpected(what: string): PredicateError {
    const t = this.#peek;
    const found = t.kind === "eof" ? "end of expression" : `${JSON.stringify(t.text)}`;
    return parseError(`${what}, found ${found}`, t.pos);
  }

  parse(): Ast {
    const e = this.#binary(1);
    if (this.#peek.kind !== "eof") throw this.#unexpected("expected end of expression");
    return e;
  }

  #binary(minPrec: number): Ast {
    if (++this.#depth > MAX_DEPTH) {
      throw parseError("expression is nested too deeply", this.#peek.pos);
    }
    let left = this.#unary();
    for (;;) {
      const t = this.#peek;
      const prec = t.kind === "op" ? BINARY_PRECEDENCE[t.text] : undefined;
      if (prec === undefined || prec < minPrec) break;
      if (!SUPPORTED_BINARY.has(t.text)) {
        throw parseError(`operator ${JSON.stringify(t.text)} is not supported`, t.pos);
      }
      this.#next();
      const right = this.#binary(prec + 1);
      left = { k: "bin", op: t.text, l: left, r: right, pos: t.pos };
    }
    this.#depth--;
    return left;
  }

  #unary(): Ast {
    const t = this.#peek;
    if (t.kind === "op" && t.text === "!") {
      this.#next();
      if (++this.#depth > MAX_DEPTH) throw parseError("expression is nested too deeply", t.pos);
      const x = this.#unary();
      this.#depth--;
      return { k: "not", x, pos: t.pos };
    }
    if (
      t.kind === "op" &&
      (t.text === "-" || t.text === "+" || t.text === "^" || t.text === "*" || t.text === "&")
    ) {
      throw parseError(`operator ${JSON.stringify(t.text)} is not supported`, t.pos);
    }
    return this.#postfix(this.#primary());
  }

  #primary(): Ast {
    const t = this.#next();
    switch (t.kind) {
      case "string":
        return { k: "string", v: t.text, pos: t.pos };
      case "int": {
        const v = Number(t.text);
        if (!Number.isSafeInteger(v)) throw parseError("integer literal out of range", t.pos);
        return { k: "int", v, pos: t.pos };
      }
      case "ident":
        return { k: "ident", name: t.text, pos: t.pos };
      case "op":
        if (t.text === "(") {
          const e = this.#binary(1);
          this.#expectOp(")");
          return e;
        }
    }
    this.#i--;
    throw this.#unexpected("expected an operand");
  }

  #postfix(x: Ast): Ast {
    for (;;) {
      if (this.#isOp(".")) {
        const dot = this.#next();
        const name = this.#next();
        if (name.kind !== "ident") {
          this.#i--;
          throw this.#unexpected('expected a name after "."');
        }
        x = { k: "sel", x, name: name.text, pos: dot.pos };
      } else if (this.#isOp("[")) {
        const open = this.#next();
        const key = this.#binary(1);
        this.#expectOp("]");
        x = { k: "index", x, key, pos: open.pos };
      } else if (this.#isOp("(")) {
        const open = this.#next();
        const args: Ast[] = [];
        if (!this.#isOp(")")) {
          for (;;) {
            args.push(this.#binary(1));
            if (this.#isOp(",")) {
              this.#next();
              if (this.#isOp(")")) break; // Go allows a trailing comma.
              continue;
            }
            break;
          }
        }
        this.#expectOp(")");
        x = { k: "call", fn: x, args, pos: open.pos };
      } else {
        return x;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Type checking and compilation

type Type = "bool" | "string" | "int" | "set" | "dict" | "time" | "option" | "any";
type Value = boolean | string | number | Set<string> | Map<string, Set<string>> | Date | Option;
interface Option {
  option: true;
  cond: boolean;
  value: Value;
}
type Eval = (env: PredicateEnv) => Value;
interface Expr {
  type: Type;
  ev: Eval;
  /** Source position, for errors. */
  pos: number;
}

function typeOfValue(v: Value): Type {
  if (typeof v === "boolean") return "bool";
  if (typeof v === "string") return "string";
  if (typeof v === "number") return "int";
  if (v instanceof Set) return "set";
  if (v instanceof Map) return "dict";
  if (v instanceof Date) return "time";
  return "option";
}

function evalError(message: string, pos: number): PredicateError {
  return new PredicateError("evaluate", message, { position: pos });
}

/** Coerces `e` to `want` at compile time; `any` is checked at evaluation time (as Go does). */
function coerce(e: Expr, want: Type, context: string): Expr {
  if (want === "any" || e.type === want) return e;
  if (e.type === "any") {
    return {
      type: want,
      pos: e.pos,
      ev: (env) => {
        const v = e.ev(env);
        const got = typeOfValue(v);
        if (got !== want) {
          throw evalError(`${context}: expected ${want}, got value of type ${got}`, e.pos);
        }
        return v;
      },
    };
  }
  throw parseError(`${context}: expected ${want}, got ${e.type}`, e.pos);
}

/** A function's signature: fixed parameter types, then an optional variadic type. */
interface FuncDef {
  params: Type[];
  variadic?: Type;
  result: Type | ((args: Expr[]) => Type);
  impl: (args: Value[], pos: number) => Value;
}

const asSet = (v: Value) => v as Set<string>;
const asStr = (v: Value) => v as string;
const asTime = (v: Value) => v as Date;

function stringTransform(name: string, v: Value, f: (s: string) => string, pos: number): Value {
  if (typeof v === "string") return f(v);
  if (v instanceof Set) return new Set([...v].map(f));
  throw evalError(
    `failed to evaluate argument to ${name}: expected string or set, got value of type ${
      typeOfValue(v)
    }`,
    pos,
  );
}

/** `strings.upper` and friends return a set for a set and a string for a string. */
const sameAsFirst = (args: Expr[]): Type =>
  args[0].type === "string" || args[0].type === "set" ? args[0].type : "any";

function goRegexp(re: string, pos: number): RE2JS {
  try {
    return compileGoRegexp(re);
  } catch (cause) {
    const detail = errorMessage(cause);
    throw evalError(`invalid regexp ${JSON.stringify(re)}: ${detail}`, pos);
  }
}

const FUNCTIONS: Record<string, FuncDef> = {
  set: { params: [], variadic: "string", result: "set", impl: (a) => new Set(a.map(asStr)) },
  union: {
    params: [],
    variadic: "set",
    result: "set",
    impl: (a) => new Set(a.flatMap((s) => [...asSet(s)])),
  },
  contains_any: {
    params: ["set", "set"],
    result: "bool",
    impl: ([s1, s2]) => [...asSet(s2)].some((v) => asSet(s1).has(v)),
  },
  contains_all: {
    params: ["set", "set"],
    result: "bool",
    impl: ([s1, s2]) => asSet(s2).size > 0 && [...asSet(s2)].every((v) => asSet(s1).has(v)),
  },
  is_empty: { params: ["set"], result: "bool", impl: ([s]) => asSet(s).size === 0 },
  ifelse: {
    params: ["bool", "any", "any"],
    result: (args) => (args[1].type === args[2].type ? args[1].type : "any"),
    impl: ([c, a, b]) => (c ? a : b),
  },
  "strings.upper": {
    params: ["any"],
    result: sameAsFirst,
    impl: ([v], pos) => stringTransform("strings.upper", v, (s) => s.toUpperCase(), pos),
  },
  "strings.lower": {
    params: ["any"],
    result: sameAsFirst,
    impl: ([v], pos) => stringTransform("strings.lower", v, (s) => s.toLowerCase(), pos),
  },
  "strings.replaceall": {
    params: ["any", "string", "string"],
    result: sameAsFirst,
    impl: ([v, m, r], pos) =>
      stringTransform("strings.replaceall", v, (s) => s.replaceAll(asStr(m), asStr(r)), pos),
  },
  "strings.split": {
    params: ["set", "string"],
    result: "set",
    impl: ([s, sep]) => new Set([...asSet(s)].flatMap((v) => goSplit(v, asStr(sep)))),
  },
  "email.local": {
    params: ["set"],
    result: "set",
    impl: ([s], pos) =>
      new Set([...asSet(s)].map((v) => {
        if (v === "") throw evalError("email.local: address is empty", pos);
        const parsed = goParseAddress(v);
        if (parsed === undefined) {
          throw evalError(`email.local: failed to parse address ${JSON.stringify(v)}`, pos);
        }
        return parsed.address.slice(0, parsed.address.lastIndexOf("@"));
      })),
  },
  "regexp.replace": {
    params: ["set", "string", "string"],
    result: "set",
    impl: ([s, re, repl], pos) => {
      const rx = goRegexp(asStr(re), pos);
      const out = new Set<string>();
      for (const v of asSet(s)) {
        if (goMatchString(rx, v)) out.add(goReplaceAll(rx, v, asStr(repl)));
      }
      return out;
    },
  },
  "time.RFC3339": {
    params: ["string"],
    result: "time",
    impl: ([s], pos) => {
      const v = asStr(s);
      const ok = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(v);
      const d = new Date(v);
      if (!ok || Number.isNaN(d.getTime())) {
        throw evalError(`cannot parse ${JSON.stringify(v)} as RFC 3339 time`, pos);
      }
      return d;
    },
  },
  before: {
    params: ["time", "time"],
    result: "bool",
    impl: ([t, u]) => asTime(t).getTime() < asTime(u).getTime(),
  },
  after: {
    params: ["time", "time"],
    result: "bool",
    impl: ([t, u]) => asTime(t).getTime() > asTime(u).getTime(),
  },
  between: {
    params: ["time"],
    variadic: "time",
    result: "bool",
    impl: ([t, ...interval], pos) => {
      if (interval.length !== 2) {
        throw evalError(`between expected 2 parameters: got ${interval.length}`, pos);
      }
      let [a, b] = interval.map((x) => asTime(x).getTime());
      if (a > b) [a, b] = [b, a];
      const v = asTime(t).getTime();
      return v > a && v < b;
    },
  },
  choose: {
    params: [],
    variadic: "option",
    result: "any",
    impl: (opts, pos) => {
      for (const o of opts as Option[]) if (o.cond) return o.value;
      throw evalError(
        'evaluating choose expression: no option could be selected, consider adding a default option by hardcoding the condition to "true"',
        pos,
      );
    },
  },
  option: {
    params: ["bool", "any"],
    result: "option",
    impl: ([c, v]) => ({ option: true, cond: c as boolean, value: v }),
  },
};

const METHODS: Record<string, FuncDef> = {
  contains: { params: ["set", "string"], result: "bool", impl: ([s, v]) => asSet(s).has(asStr(v)) },
  add: {
    params: ["set"],
    variadic: "string",
    result: "set",
    impl: ([s, ...vs]) => new Set([...asSet(s), ...vs.map(asStr)]),
  },
  remove: {
    params: ["set"],
    variadic: "string",
    result: "set",
    impl: ([s, ...vs]) => {
      const out = new Set(asSet(s));
      for (const v of vs) out.delete(asStr(v));
      return out;
    },
  },
  contains_any: FUNCTIONS.contains_any,
  contains_all: FUNCTIONS.contains_all,
  isempty: FUNCTIONS.is_empty,
  before: FUNCTIONS.before,
  after: FUNCTIONS.after,
  between: FUNCTIONS.between,
};

function goSplit(s: string, sep: string): string[] {
  if (sep === "") return [...s]; // Go splits into UTF-8 sequences.
  return s.split(sep);
}

interface VarDef {
  type: Type;
  get: (env: PredicateEnv) => Value;
}

const VARIABLES: Record<string, VarDef> = {
  true: { type: "bool", get: () => true },
  false: { type: "bool", get: () => false },
  "access_request.spec.roles": { type: "set", get: (e) => new Set(e.roles) },
  "access_request.spec.suggested_reviewers": {
    type: "set",
    get: (e) => new Set(e.suggestedReviewers),
  },
  "access_request.spec.system_annotations": {
    type: "dict",
    get: (e) => new Map(Object.entries(e.annotations).map(([k, v]) => [k, new Set(v)])),
  },
  "access_request.spec.user": { type: "string", get: (e) => e.user },
  "access_request.spec.request_reason": { type: "string", get: (e) => e.requestReason },
  "access_request.spec.creation_time": { type: "time", get: (e) => e.creationTime },
  "access_request.spec.expiry": { type: "time", get: (e) => e.expiry },
  "plugin.spec.name": { type: "string", get: (e) => e.pluginName },
};

/** Where the source text of `node` starts. */
function startPos(node: Ast): number {
  switch (node.k) {
    case "sel":
    case "index":
      return startPos(node.x);
    case "call":
      return startPos(node.fn);
    case "bin":
      return startPos(node.l);
    default:
      return node.pos;
  }
}

/** The identifier path of `a.b.c`, or undefined when `node` is not a pure selector chain. */
function selectorPath(node: Ast): string[] | undefined {
  if (node.k === "ident") return [node.name];
  if (node.k === "sel") {
    const base = selectorPath(node.x);
    return base === undefined ? undefined : [...base, node.name];
  }
  return undefined;
}

function indexDict(dict: Expr, key: Expr, pos: number): Expr {
  const k = coerce(key, "string", "parsing key of index expression");
  return {
    type: "set",
    pos,
    ev: (env) => {
      const m = dict.ev(env) as Map<string, Set<string>>;
      return m.get(k.ev(env) as string) ?? new Set<string>();
    },
  };
}

/** typical's getIdentifier: the longest known variable prefix, allowing `map.key`. */
function resolveIdentifier(path: string[], pos: number): Expr {
  let joined = "";
  for (let i = 0; i < path.length; i++) {
    joined += (i > 0 ? "." : "") + path[i];
    const v = VARIABLES[joined];
    if (v === undefined) continue;
    const remaining = path.length - i - 1;
    const base: Expr = { type: v.type, ev: v.get, pos };
    if (remaining === 0) return base;
    if (remaining === 1 && v.type === "dict") {
      const key = path[i + 1];
      return indexDict(base, { type: "string", ev: () => key, pos }, pos);
    }
  }
  throw parseError(`unknown identifier: ${JSON.stringify(path.join("."))}`, pos);
}

function buildCall(name: string, def: FuncDef, args: Expr[], pos: number): Expr {
  const fixed = def.params.length;
  if (args.length < fixed || (def.variadic === undefined && args.length > fixed)) {
    const expected = def.variadic === undefined ? `${fixed}` : `${fixed} or more`;
    throw parseError(
      `function (${name}) accepts ${expected} argument${
        fixed === 1 && !def.variadic ? "" : "s"
      }, given ${args.length}`,
      pos,
    );
  }
  const typed = args.map((a, i) =>
    coerce(
      a,
      i < fixed ? def.params[i] : def.variadic!,
      `parsing argument ${i + 1} to function (${name})`,
    )
  );
  const result = typeof def.result === "function" ? def.result(typed) : def.result;
  return {
    type: result,
    pos,
    ev: (env) => def.impl(typed.map((a) => a.ev(env)), pos),
  };
}

function compileCall(node: Extract<Ast, { k: "call" }>): Expr {
  const path = selectorPath(node.fn);
  if (path !== undefined) {
    const fullName = path.join(".");
    const fn = Object.hasOwn(FUNCTIONS, fullName) ? FUNCTIONS[fullName] : undefined;
    if (fn !== undefined && fullName.startsWith("regexp.")) compilingRegexp = true;
    if (fn !== undefined) return buildCall(fullName, fn, node.args.map(compileNode), node.pos);
  }
  if (node.fn.k === "sel") {
    const method = Object.hasOwn(METHODS, node.fn.name) ? METHODS[node.fn.name] : undefined;
    if (method !== undefined) {
      const receiver = compileNode(node.fn.x);
      return buildCall(
        node.fn.name,
        method,
        [receiver, ...node.args.map(compileNode)],
        node.pos,
      );
    }
  }
  const name = path?.join(".") ?? (node.fn.k === "sel" ? node.fn.name : "expression");
  throw parseError(`unsupported function: ${name}`, startPos(node.fn));
}

function compileBinary(node: Extract<Ast, { k: "bin" }>): Expr {
  const l = compileNode(node.l);
  const r = compileNode(node.r);
  if (node.op === "&&" || node.op === "||") {
    const lb = coerce(l, "bool", `parsing lhs of (${node.op}) operator`);
    const rb = coerce(r, "bool", `parsing rhs of (${node.op}) operator`);
    return node.op === "&&"
      ? {
        type: "bool",
        pos: node.pos,
        ev: (env) => (lb.ev(env) as boolean) && (rb.ev(env) as boolean),
      }
      : {
        type: "bool",
        pos: node.pos,
        ev: (env) => (lb.ev(env) as boolean) || (rb.ev(env) as boolean),
      };
  }
  // == and !=: the type of the first operand whose type is known.
  const operand = l.type === "any" ? r : l;
  if (operand.type === "any") {
    throw parseError(
      `operator (${node.op}) can only be used when at least one operand type is known at parse time`,
      node.pos,
    );
  }
  if (operand.type !== "string" && operand.type !== "int") {
    throw parseError(`operator (${node.op}) not supported for type: ${operand.type}`, node.pos);
  }
  const lt = coerce(l, operand.type, `parsing lhs of (${node.op}) operator`);
  const rt = coerce(r, operand.type, `parsing rhs of (${node.op}) operator`);
  const negate = node.op === "!=";
  return { type: "bool", pos: node.pos, ev: (env) => (lt.ev(env) === rt.ev(env)) !== negate };
}

function compileNode(node: Ast): Expr {
  switch (node.k) {
    case "string": {
      const v = node.v;
      return { type: "string", ev: () => v, pos: node.pos };
    }
    case "int": {
      const v = node.v;
      return { type: "int", ev: () => v, pos: node.pos };
    }
    case "ident":
    case "sel": {
      const path = selectorPath(node);
      if (path === undefined) {
        throw parseError(
          `cannot select ${JSON.stringify((node as { name: string }).name)} of an expression`,
          node.pos,
        );
      }
      return resolveIdentifier(path, startPos(node));
    }
    case "index": {
      const x = compileNode(node.x);
      if (x.type !== "dict") {
        throw parseError(`cannot take index of unexpected type ${x.type}`, node.pos);
      }
      return indexDict(x, compileNode(node.key), node.pos);
    }
    case "call":
      return compileCall(node);
    case "not": {
      const x = coerce(compileNode(node.x), "bool", "parsing target of (!) operator");
      return { type: "bool", pos: node.pos, ev: (env) => !x.ev(env) };
    }
    case "bin":
      return compileBinary(node);
  }
}

/**
 * A compiled condition: true when it matches `env`. Throws {@link PredicateError} (`evaluate`).
 * `usesRegexp`: it calls `regexp.replace`, which needs `loadGoRegexp()` before it is evaluated.
 */
export type CompiledPredicate = ((env: PredicateEnv) => boolean) & { readonly usesRegexp: boolean };

/** Set by the compilation under way when the condition calls a function of `re2js`. */
let compilingRegexp = false;

/**
 * Parses and type-checks `src`. Throws {@link PredicateError} with `phase: "parse"` on a syntax
 * error, an unknown identifier or function, a type mismatch, or a non-boolean condition. The
 * result evaluates the condition; as in Go, a value that is not a boolean (possible only through
 * `ifelse`/`choose`) counts as no match.
 */
export function compilePredicate(src: string): CompiledPredicate {
  if (src === "") throw new PredicateError("parse", "empty expression");
  const ast = new Parser(tokenize(src)).parse();
  compilingRegexp = false;
  const expr = compileNode(ast);
  if (expr.type !== "bool" && expr.type !== "any") {
    throw parseError(`condition must be a boolean expression, not ${expr.type}`, expr.pos);
  }
  return Object.assign((env: PredicateEnv) => expr.ev(env) === true, {
    usesRegexp: compilingRegexp,
  });
}
