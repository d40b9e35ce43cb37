/**
 * A small stand-in for `helm template`, used because no `helm` binary is available here (not in
 * Debian, not on npm). It interprets the subset of Go templates and Sprig functions that
 * `deploy/helm/teleport-plugin-email/templates/` uses, reads values files with `npm:yaml` (as
 * YAML 1.1, like Helm), and renders the chart's manifests.
 *
 * ```text
 * deno run --allow-read --allow-env=LOG_STREAM,LOG_TOKENS scripts/render_helm.ts [CHART_DIR] [-f values.yaml]... [--release-name NAME] [--namespace NS]
 * ```
 *
 * Supported template syntax: text and `{{ }}` actions with `{{-`/`-}}` trimming, comments,
 * `if`/`else if`/`else`/`end`, `with`/`else`/`end`, `range` (lists and maps, sorted keys, with
 * `$k, $v :=`), `define`/`include`, variables (`$x := …`, `$`), pipelines, parentheses, and the
 * functions listed in {@link FUNCTIONS}. Anything else is an error, never silently ignored.
 */
import { createHash } from "node:crypto";
import { parseArgs } from "node:util";
import { parse, parseAllDocuments } from "yaml";
import { TeleportEmailError } from "../src/errors.ts";

/** The chart or a values file cannot be read, parsed or rendered. */
export class RenderError extends TeleportEmailError {}

// ---------------------------------------------------------------------------------------------
// YAML

type Yaml = null | boolean | number | string | Yaml[] | { [key: string]: Yaml };

/**
 * Values and manifests are read as YAML 1.1, like Helm (sigs.k8s.io/yaml): `0600` is octal,
 * `yes`/`on` are booleans.
 */
const YAML_OPTIONS = { version: "1.1" } as const;

function yamlError(err: unknown): RenderError {
  const message = err instanceof Error ? err.message.split("\n")[0] : String(err);
  return new RenderError(`Invalid YAML: ${message}`, { cause: err });
}

/** Parses a YAML stream (documents separated by `---`); empty documents are left out. */
export function parseYamlDocuments(text: string): Yaml[] {
  const out: Yaml[] = [];
  for (const doc of parseAllDocuments(text, YAML_OPTIONS)) {
    if (doc.errors.length > 0) throw yamlError(doc.errors[0]);
    const value = doc.toJS() as Yaml;
    if (value !== null) out.push(value);
  }
  return out;
}

/** Parses one YAML document (`npm:yaml`). Throws {@link RenderError} when it is not valid YAML. */
export function parseYaml(text: string): Yaml {
  try {
    return (parse(text, YAML_OPTIONS) ?? null) as Yaml;
  } catch (err) {
    throw yamlError(err);
  }
}

/** How Helm would read `text` as a plain (unquoted) YAML scalar; for {@link toYaml}'s quoting. */
function plainScalar(text: string): Yaml {
  try {
    return parse(text, YAML_OPTIONS) as Yaml;
  } catch {
    return text;
  }
}

/** Serialises like Helm's `toYaml`: keys sorted, no trailing newline, `{}`/`[]` for empties. */
export function toYaml(value: unknown): string {
  return emitYaml(value, 0).replace(/\n$/, "");
}

function emitYaml(value: unknown, indent: number): string {
  const pad = " ".repeat(indent);
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]\n";
    return value.map((v) => {
      if (isMap(v) && Object.keys(v).length > 0) {
        const inner = emitYaml(v, indent + 2);
        return `${pad}- ${inner.slice(indent + 2)}`;
      }
      if (Array.isArray(v) && v.length > 0) return `${pad}-\n${emitYaml(v, indent + 2)}`;
      return `${pad}- ${yamlScalar(v)}\n`;
    }).join("");
  }
  if (isMap(value)) {
    const keys = Object.keys(value).sort();
    if (keys.length === 0) return "{}\n";
    return keys.map((k) => {
      const v = value[k];
      const key = yamlScalar(k);
      if ((isMap(v) && Object.keys(v).length > 0) || (Array.isArray(v) && v.length > 0)) {
        return `${pad}${key}:\n${emitYaml(v, Array.isArray(v) ? indent : indent + 2)}`;
      }
      return `${pad}${key}: ${yamlScalar(v)}\n`;
    }).join("");
  }
  return `${yamlScalar(value)}\n`;
}

function yamlScalar(value: unknown): string {
  if (value === null || value === undefined) return "null";
  if (isMap(value)) return "{}";
  if (Array.isArray(value)) return "[]";
  if (typeof value === "string") {
    const plainSafe = /^[A-Za-z_/][A-Za-z0-9 _./@-]*$/.test(value) && !/ $/.test(value) &&
      typeof plainScalar(value) === "string" && !/^(yes|no|on|off|y|n)$/i.test(value);
    return plainSafe ? value : JSON.stringify(value);
  }
  return String(value);
}

/** Sprig's `kindOf` for values from YAML (numbers are Go float64s after Helm's JSON round trip). */
function kindOf(value: unknown): string {
  if (value === null || value === undefined) return "invalid";
  if (typeof value === "boolean") return "bool";
  if (typeof value === "number") return "float64";
  if (typeof value === "string") return "string";
  return Array.isArray(value) ? "slice" : "map";
}

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// ---------------------------------------------------------------------------------------------
// Go templates

type Node =
  | { kind: "text"; text: string }
  | { kind: "action"; pipe: Pipe; decl?: string }
  | { kind: "if"; branches: Array<{ cond: Pipe; body: Node[] }>; otherwise: Node[] }
  | { kind: "with"; pipe: Pipe; body: Node[]; otherwise: Node[] }
  | {
    kind: "range";
    pipe: Pipe;
    keyVar?: string;
    valueVar?: string;
    body: Node[];
    otherwise: Node[];
  };

type Pipe = Command[];
type Command = Operand[];
type Operand =
  | { kind: "field"; base: "dot" | string; path: string[] }
  | { kind: "literal"; value: unknown }
  | { kind: "ident"; name: string }
  | { kind: "paren"; pipe: Pipe };

interface Token {
  kind: "text" | "action";
  text: string;
  line: number;
}

function tokenize(source: string, name: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  let line = 1;
  while (i < source.length) {
    const open = source.indexOf("{{", i);
    if (open < 0) {
      tokens.push({ kind: "text", text: source.slice(i), line });
      break;
    }
    let text = source.slice(i, open);
    const trimLeft = source.startsWith("{{- ", open) || source.startsWith("{{-\n", open);
    if (trimLeft) text = text.replace(/\s+$/, "");
    tokens.push({ kind: "text", text, line });
    line += countLines(source.slice(i, open));
    let start = open + (trimLeft ? 3 : 2);
    let close: number;
    if (source.slice(start).trimStart().startsWith("/*")) {
      const end = source.indexOf("*/", start);
      if (end < 0) throw new RenderError(`${name}:${line}: unclosed comment`);
      close = source.indexOf("}}", end);
      start = -1;
    } else {
      close = findActionEnd(source, start);
    }
    if (close < 0) throw new RenderError(`${name}:${line}: unclosed action`);
    const trimRight = source[close - 1] === "-" && /\s/.test(source[close - 2] ?? "");
    if (start >= 0) {
      tokens.push({
        kind: "action",
        text: source.slice(start, trimRight ? close - 1 : close).trim(),
        line,
      });
    }
    line += countLines(source.slice(open, close + 2));
    i = close + 2;
    if (trimRight) {
      const m = /^\s*/.exec(source.slice(i))!;
      line += countLines(m[0]);
      i += m[0].length;
    }
  }
  return tokens;
}

function findActionEnd(source: string, start: number): number {
  for (let i = start; i < source.length - 1; i++) {
    const c = source[i];
    if (c === '"') {
      for (i++; i < source.length && source[i] !== '"'; i++) if (source[i] === "\\") i++;
    } else if (c === "`") {
      i = source.indexOf("`", i + 1);
      if (i < 0) return -1;
    } else if (c === "}" && source[i + 1] === "}") {
      return i;
    }
  }
  return -1;
}

function countLines(text: string): number {
  return text.split("\n").length - 1;
}

/** Splits an action into words, keeping strings and parentheses whole. */
function lexAction(text: string, where: string): string[] {
  const words: string[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (/\s/.test(c)) {
      i++;
    } else if (c === '"' || c === "`") {
      let j = i + 1;
      for (; j < text.length && text[j] !== c; j++) if (c === '"' && text[j] === "\\") j++;
      if (j >= text.length) throw new RenderError(`${where}: unterminated string`);
      words.push(text.slice(i, j + 1));
      i = j + 1;
    } else if (c === "(" || c === ")" || c === "|") {
      words.push(c);
      i++;
    } else if (c === ":" && text[i + 1] === "=") {
      words.push(":=");
      i += 2;
    } else if (c === ",") {
      words.push(",");
      i++;
    } else {
      const m = /^[^\s()|,"`]+/.exec(text.slice(i))!;
      words.push(m[0]);
      i += m[0].length;
    }
  }
  return words;
}

function parsePipe(words: string[], where: string): Pipe {
  let pos = 0;
  const pipe = (): Pipe => {
    const commands: Pipe = [[]];
    while (pos < words.length && words[pos] !== ")") {
      const w = words[pos++];
      if (w === "|") {
        commands.push([]);
        continue;
      }
      const cmd = commands[commands.length - 1];
      if (w === "(") {
        const inner = pipe();
        if (words[pos++] !== ")") throw new RenderError(`${where}: missing ")"`);
        cmd.push({ kind: "paren", pipe: inner });
      } else {
        cmd.push(operand(w, where));
      }
    }
    if (commands.some((c) => c.length === 0)) {
      throw new RenderError(`${where}: empty command in pipeline`);
    }
    return commands;
  };
  const result = pipe();
  if (pos !== words.length) throw new RenderError(`${where}: unexpected ")"`);
  return result;
}

function operand(word: string, where: string): Operand {
  if (word === ".") return { kind: "field", base: "dot", path: [] };
  if (word.startsWith(".")) return { kind: "field", base: "dot", path: word.slice(1).split(".") };
  if (word.startsWith("$")) {
    const [base, ...path] = word.split(".");
    return { kind: "field", base, path };
  }
  if (word.startsWith('"')) return { kind: "literal", value: JSON.parse(word) };
  if (word.startsWith("`")) return { kind: "literal", value: word.slice(1, -1) };
  if (word === "true" || word === "false") return { kind: "literal", value: word === "true" };
  if (word === "nil") return { kind: "literal", value: null };
  if (/^-?\d+(\.\d+)?$/.test(word)) return { kind: "literal", value: Number(word) };
  if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(word)) {
    if (!(word in FUNCTIONS) && word !== "include") {
      throw new RenderError(`${where}: function "${word}" not defined`);
    }
    return { kind: "ident", name: word };
  }
  throw new RenderError(`${where}: cannot parse "${word}"`);
}

interface Template {
  name: string;
  body: Node[];
}

/** Parses one template file; `define`d templates are added to `defines`. */
function parseTemplate(source: string, name: string, defines: Map<string, Template>): Node[] {
  const tokens = tokenize(source, name);
  let pos = 0;
  const block = (terminators: string[]): { nodes: Node[]; end: string } => {
    const nodes: Node[] = [];
    while (pos < tokens.length) {
      const t = tokens[pos++];
      const where = `${name}:${t.line}`;
      if (t.kind === "text") {
        if (t.text) nodes.push({ kind: "text", text: t.text });
        continue;
      }
      const words = lexAction(t.text, where);
      const keyword = words[0];
      if (terminators.includes(keyword)) {
        pos--;
        return { nodes, end: keyword };
      }
      if (keyword === "if") {
        const branches = [{ cond: parsePipe(words.slice(1), where), body: [] as Node[] }];
        let otherwise: Node[] = [];
        for (;;) {
          const r = block(["else", "end"]);
          branches[branches.length - 1].body = r.nodes;
          const term = lexAction(tokens[pos++].text, where);
          if (term[0] === "end") break;
          if (term[1] === "if") {
            branches.push({ cond: parsePipe(term.slice(2), where), body: [] });
            continue;
          }
          const rest = block(["end"]);
          pos++;
          otherwise = rest.nodes;
          break;
        }
        nodes.push({ kind: "if", branches, otherwise });
      } else if (keyword === "with" || keyword === "range") {
        let rest = words.slice(1);
        let keyVar: string | undefined;
        let valueVar: string | undefined;
        const decl = rest.indexOf(":=");
        if (decl >= 0) {
          const vars = rest.slice(0, decl).filter((w) => w !== ",");
          [keyVar, valueVar] = vars.length === 2 ? vars : [undefined, vars[0]];
          rest = rest.slice(decl + 1);
        }
        const pipe = parsePipe(rest, where);
        const body = block(["else", "end"]);
        const term = lexAction(tokens[pos++].text, where);
        let otherwise: Node[] = [];
        if (term[0] === "else") {
          if (term.length > 1) {
            throw new RenderError(`${where}: "else ${term[1]}" after ${keyword} is not supported`);
          }
          otherwise = block(["end"]).nodes;
          pos++;
        }
        if (keyword === "with") nodes.push({ kind: "with", pipe, body: body.nodes, otherwise });
        else nodes.push({ kind: "range", pipe, keyVar, valueVar, body: body.nodes, otherwise });
      } else if (keyword === "define") {
        const defName = JSON.parse(words[1]) as string;
        const body = block(["end"]);
        pos++;
        defines.set(defName, { name: defName, body: body.nodes });
      } else if (keyword === "end" || keyword === "else") {
        throw new RenderError(`${where}: unexpected {{${keyword}}}`);
      } else if (words[0]?.startsWith("$") && words[1] === ":=") {
        nodes.push({ kind: "action", decl: words[0], pipe: parsePipe(words.slice(2), where) });
      } else if (["template", "block", "break", "continue"].includes(keyword)) {
        throw new RenderError(`${where}: "${keyword}" is not supported by this renderer`);
      } else {
        nodes.push({ kind: "action", pipe: parsePipe(words, where) });
      }
    }
    if (terminators.length > 0) throw new RenderError(`${name}: missing {{end}}`);
    return { nodes, end: "" };
  };
  return block([]).nodes;
}

interface Scope {
  dot: unknown;
  root: unknown;
  vars: Map<string, unknown>;
}

class Renderer {
  constructor(readonly defines: Map<string, Template>) {}

  run(nodes: Node[], scope: Scope): string {
    let out = "";
    for (const node of nodes) {
      switch (node.kind) {
        case "text":
          out += node.text;
          break;
        case "action": {
          const value = this.pipe(node.pipe, scope);
          if (node.decl) scope.vars.set(node.decl, value);
          else out += printValue(value);
          break;
        }
        case "if": {
          const branch = node.branches.find((b) => truthy(this.pipe(b.cond, scope)));
          out += this.run(branch ? branch.body : node.otherwise, childScope(scope, scope.dot));
          break;
        }
        case "with": {
          const value = this.pipe(node.pipe, scope);
          out += truthy(value)
            ? this.run(node.body, childScope(scope, value))
            : this.run(node.otherwise, childScope(scope, scope.dot));
          break;
        }
        case "range": {
          const value = this.pipe(node.pipe, scope);
          const entries: Array<[unknown, unknown]> = Array.isArray(value)
            ? value.map((v, i) => [i, v])
            : isMap(value)
            ? Object.keys(value).sort().map((k) => [k, value[k]])
            : [];
          if (value !== null && value !== undefined && !Array.isArray(value) && !isMap(value)) {
            throw new RenderError(`range over ${typeof value} is not supported`);
          }
          if (entries.length === 0) out += this.run(node.otherwise, childScope(scope, scope.dot));
          for (const [k, v] of entries) {
            const inner = childScope(scope, v);
            if (node.keyVar) inner.vars.set(node.keyVar, k);
            if (node.valueVar) inner.vars.set(node.valueVar, v);
            out += this.run(node.body, inner);
          }
          break;
        }
      }
    }
    return out;
  }

  include(name: string, dot: unknown, root: unknown): string {
    const tpl = this.defines.get(name);
    if (!tpl) throw new RenderError(`no template "${name}" defined`);
    return this.run(tpl.body, { dot, root, vars: new Map() });
  }

  pipe(pipe: Pipe, scope: Scope): unknown {
    let result: unknown = undefined;
    pipe.forEach((cmd, i) => {
      const args = cmd.slice(1).map((o) => this.operand(o, scope));
      if (i > 0) args.push(result);
      const head = cmd[0];
      if (head.kind === "ident") {
        if (head.name === "include") {
          result = this.include(String(args[0]), args[1], scope.root);
        } else {
          result = FUNCTIONS[head.name](...args);
        }
      } else {
        if (args.length > 0) throw new RenderError(`cannot call a non-function with arguments`);
        result = this.operand(head, scope);
      }
    });
    return result;
  }

  operand(o: Operand, scope: Scope): unknown {
    switch (o.kind) {
      case "literal":
        return o.value;
      case "paren":
        return this.pipe(o.pipe, scope);
      case "ident":
        if (o.name === "include") throw new RenderError(`include needs arguments`);
        return FUNCTIONS[o.name]();
      case "field": {
        let value: unknown;
        if (o.base === "dot") value = scope.dot;
        else if (o.base === "$") value = scope.root;
        else if (scope.vars.has(o.base)) value = scope.vars.get(o.base);
        else throw new RenderError(`undefined variable "${o.base}"`);
        for (const key of o.path) {
          if (value === null || value === undefined) return undefined;
          if (!isMap(value)) {
            throw new RenderError(`cannot read field "${key}" of a ${typeof value}`);
          }
          value = value[key];
        }
        return value;
      }
    }
  }
}

function childScope(scope: Scope, dot: unknown): Scope {
  return { dot, root: scope.root, vars: new Map(scope.vars) };
}

function truthy(value: unknown): boolean {
  if (value === null || value === undefined || value === false || value === 0 || value === "") {
    return false;
  }
  if (Array.isArray(value)) return value.length > 0;
  if (isMap(value)) return Object.keys(value).length > 0;
  return true;
}

function printValue(value: unknown): string {
  if (value === null || value === undefined) return "<no value>";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value)) return `[${value.map(printValue).join(" ")}]`;
  return `map[${
    Object.keys(value as object).sort().map((k) =>
      `${k}:${printValue((value as Record<string, unknown>)[k])}`
    ).join(" ")
  }]`;
}

function str(value: unknown): string {
  if (value === null || value === undefined) return "";
  return typeof value === "string" ? value : printValue(value);
}

/** Go's `encoding/json`: map keys sorted, `<`, `>`, `&` escaped. */
function goJson(value: unknown): string {
  const sort = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(sort)
      : isMap(v)
      ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sort(v[k])]))
      : v === undefined
      ? null
      : v;
  return JSON.stringify(sort(value)).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

function indentText(spaces: number, text: string): string {
  const pad = " ".repeat(spaces);
  return text.split("\n").map((l) => pad + l).join("\n");
}

/** The Go template and Sprig functions this renderer implements. */
export const FUNCTIONS: Record<string, (...args: unknown[]) => unknown> = {
  default: (dflt, value) => truthy(value) ? value : dflt,
  coalesce: (...values) => values.find(truthy) ?? null,
  quote: (...values) => values.map((v) => JSON.stringify(str(v))).join(" "),
  toJson: (value) => goJson(value),
  toYaml: (value) => toYaml(value),
  nindent: (n, text) => "\n" + indentText(Number(n), str(text)),
  indent: (n, text) => indentText(Number(n), str(text)),
  trunc: (n, text) => str(text).slice(0, Number(n)),
  trimSuffix: (suffix, text) => {
    const s = str(text);
    return s.endsWith(str(suffix)) ? s.slice(0, s.length - str(suffix).length) : s;
  },
  replace: (from, to, text) => str(text).replaceAll(str(from), str(to)),
  contains: (needle, text) => str(text).includes(str(needle)),
  printf: (format, ...args) => {
    let i = 0;
    return str(format).replace(/%[sdv%]/g, (m) => m === "%%" ? "%" : str(args[i++]));
  },
  print: (...args) => args.map(str).join(""),
  not: (value) => !truthy(value),
  and: (...values) => values.find((v) => !truthy(v)) ?? values[values.length - 1],
  or: (...values) => values.find(truthy) ?? values[values.length - 1],
  eq: (a, ...others) => others.some((b) => a === b),
  ne: (a, b) => a !== b,
  empty: (value) => !truthy(value),
  hasKey: (map, key) => isMap(map) && Object.hasOwn(map, str(key)),
  kindIs: (kind, value) => kindOf(value) === str(kind),
  list: (...values) => values,
  dict: (...kv) => {
    const out: Record<string, unknown> = {};
    for (let i = 0; i + 1 < kv.length; i += 2) out[str(kv[i])] = kv[i + 1];
    return out;
  },
  int: (value) => Math.trunc(Number(value ?? 0)),
  b64enc: (value) => btoa(String.fromCharCode(...new TextEncoder().encode(str(value)))),
  sha256sum: (value) => createHash("sha256").update(str(value)).digest("hex"),
  required: (message, value) => {
    if (!truthy(value) && value !== false && value !== 0) throw new RenderError(str(message));
    return value;
  },
  fail: (message) => {
    throw new RenderError(str(message));
  },
};

// ---------------------------------------------------------------------------------------------
// Chart

/** Options of {@link renderChart}. */
export interface RenderOptions {
  /** Values merged over the chart's `values.yaml`, in order (later wins); `null` deletes a key. */
  values?: Array<Record<string, unknown>>;
  releaseName?: string;
  namespace?: string;
  signal?: AbortSignal;
}

/** One rendered manifest file. */
export interface RenderedFile {
  /** `teleport-plugin-email/templates/configmap.yaml`. */
  name: string;
  /** The rendered text (files that render to whitespace only are left out). */
  text: string;
}

/** Renders every `templates/*.yaml` of the chart, like `helm template`. */
export async function renderChart(
  chartDir: string,
  options: RenderOptions = {},
): Promise<RenderedFile[]> {
  options.signal?.throwIfAborted();
  const chart = parseYaml(await Deno.readTextFile(`${chartDir}/Chart.yaml`)) as Record<
    string,
    unknown
  >;
  const defaults = parseYaml(await Deno.readTextFile(`${chartDir}/values.yaml`)) ?? {};
  let values = defaults as Record<string, unknown>;
  for (const v of options.values ?? []) values = mergeValues(values, v);
  const chartName = str(chart.name);
  const files: Array<{ name: string; source: string }> = [];
  for await (const entry of Deno.readDir(`${chartDir}/templates`)) {
    if (entry.isFile && /\.(ya?ml|tpl)$/.test(entry.name)) {
      files.push({
        name: `${chartName}/templates/${entry.name}`,
        source: await Deno.readTextFile(`${chartDir}/templates/${entry.name}`),
      });
    }
  }
  files.sort((a, b) => a.name.localeCompare(b.name));
  const defines = new Map<string, Template>();
  const parsed = files.map((f) => ({ ...f, body: parseTemplate(f.source, f.name, defines) }));
  for (const f of parsed) defines.set(f.name, { name: f.name, body: f.body });
  const root = {
    Values: values,
    Chart: {
      Name: chart.name,
      Version: chart.version,
      AppVersion: chart.appVersion,
      Description: chart.description,
    },
    Release: {
      Name: options.releaseName ?? "release-name",
      Namespace: options.namespace ?? "default",
      Service: "Helm",
      IsInstall: true,
      IsUpgrade: false,
    },
    Template: { BasePath: `${chartName}/templates` },
  };
  const renderer = new Renderer(defines);
  const out: RenderedFile[] = [];
  for (const f of parsed) {
    const base = f.name.split("/").pop()!;
    if (base.startsWith("_") || base.endsWith(".tpl")) continue;
    const text = renderer.run(f.body, { dot: root, root, vars: new Map() });
    if (text.trim() !== "") out.push({ name: f.name, text });
  }
  return out;
}

/** Helm's values coalescing: maps merge recursively, anything else replaces, `null` deletes. */
export function mergeValues(
  base: Record<string, unknown>,
  over: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    if (v === null) delete out[k];
    else if (isMap(v) && isMap(out[k])) out[k] = mergeValues(out[k] as Record<string, unknown>, v);
    else out[k] = v;
  }
  return out;
}

if (import.meta.main) {
  const { values: flags, positionals } = parseArgs({
    args: Deno.args,
    options: {
      values: { type: "string", short: "f", multiple: true },
      "release-name": { type: "string" },
      namespace: { type: "string" },
    },
    allowPositionals: true,
  });
  const chartDir = positionals[0] ??
    new URL("../deploy/helm/teleport-plugin-email", import.meta.url).pathname;
  try {
    const values: Array<Record<string, unknown>> = [];
    for (const file of flags.values ?? []) {
      values.push((parseYaml(await Deno.readTextFile(file)) ?? {}) as Record<string, unknown>);
    }
    const files = await renderChart(chartDir, {
      values,
      releaseName: flags["release-name"],
      namespace: flags.namespace,
    });
    for (const f of files) console.log(`---\n# Source: ${f.name}\n${f.text.replace(/^\n+/, "")}`);
  } catch (err) {
    console.error(`render_helm: ${err instanceof Error ? err.message : String(err)}`);
    Deno.exitCode = 1;
  }
}
