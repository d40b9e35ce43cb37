/**
 * Lists production functions longer than a limit (default 80 lines), longest first: every
 * function, method, constructor, accessor and arrow function in the given files or folders
 * (default `src/`), skipping `*_test.ts` and generated code (`src/teleport/gen/`). A nested
 * function is listed on its own and also counts towards the function around it.
 *
 * ```sh
 * deno run --allow-read --allow-env scripts/long_functions.ts [--max=80] [PATH...]
 * ```
 *
 * Prints `<lines>  <file>:<line>  <name>` per function, then a count; exits 0 (it is evidence
 * for reviews, not a gate).
 */
import ts from "typescript";

/** A function longer than the limit. */
export interface LongFunction {
  file: string;
  line: number;
  name: string;
  lines: number;
}

function isProduction(path: string): boolean {
  return path.endsWith(".ts") && !path.endsWith("_test.ts") && !path.endsWith(".d.ts") &&
    !path.includes("/gen/");
}

async function* files(root: string): AsyncGenerator<string> {
  const info = await Deno.stat(root);
  if (info.isFile) {
    if (isProduction(root)) yield root;
    return;
  }
  const entries = [];
  for await (const e of Deno.readDir(root)) entries.push(e);
  entries.sort((a, b) => a.name.localeCompare(b.name));
  for (const e of entries) {
    const path = `${root}/${e.name}`;
    if (e.isDirectory) yield* files(path);
    else if (e.isFile && isProduction(path)) yield path;
  }
}

function nameOf(node: ts.Node, sf: ts.SourceFile): string {
  const own = (ts.isFunctionDeclaration(node) || ts.isMethodDeclaration(node) ||
      ts.isGetAccessor(node) || ts.isSetAccessor(node) || ts.isFunctionExpression(node)) &&
      node.name !== undefined
    ? node.name.getText(sf)
    : ts.isConstructorDeclaration(node)
    ? "constructor"
    : undefined;
  const parent = node.parent;
  const cls = parent !== undefined && ts.isClassLike(parent) && parent.name !== undefined
    ? `${parent.name.getText(sf)}.`
    : "";
  if (own !== undefined) return cls + own;
  if (parent !== undefined && ts.isVariableDeclaration(parent)) return parent.name.getText(sf);
  if (parent !== undefined && ts.isPropertyAssignment(parent)) return parent.name.getText(sf);
  if (parent !== undefined && ts.isPropertyDeclaration(parent)) {
    return cls || `${parent.name.getText(sf)}`;
  }
  return "<anonymous>";
}

/** The functions of `source` (a file's text) longer than `max` lines. */
export function longFunctions(file: string, source: string, max: number): LongFunction[] {
  const sf = ts.createSourceFile(file, source, ts.ScriptTarget.Latest, true);
  const out: LongFunction[] = [];
  const visit = (node: ts.Node) => {
    if (ts.isFunctionLike(node) && "body" in node && node.body !== undefined) {
      const start = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line;
      const end = sf.getLineAndCharacterOfPosition(node.getEnd()).line;
      const lines = end - start + 1;
      if (lines > max) out.push({ file, line: start + 1, name: nameOf(node, sf), lines });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

async function main(args: string[]): Promise<void> {
  let max = 80;
  const roots: string[] = [];
  for (const arg of args) {
    const m = /^--max=(\d+)$/.exec(arg);
    if (m !== null) max = Number(m[1]);
    else roots.push(arg.replace(/\/+$/, ""));
  }
  if (roots.length === 0) roots.push("src");
  const found: LongFunction[] = [];
  for (const root of roots) {
    for await (const file of files(root)) {
      found.push(...longFunctions(file, await Deno.readTextFile(file), max));
    }
  }
  found.sort((a, b) => b.lines - a.lines || a.file.localeCompare(b.file) || a.line - b.line);
  for (const f of found) {
    console.log(`${String(f.lines).padStart(5)}  ${f.file}:${f.line}  ${f.name}`);
  }
  console.log(`${found.length} production function(s) over ${max} lines`);
}

if (import.meta.main) await main(Deno.args);
