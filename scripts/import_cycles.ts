/**
 * Fails when the local import graph has a cycle. Builds the graph with `deno info --json` from
 * every TypeScript file under the given files or folders (default: `main.ts`, `src`,
 * `scripts`; test files and generated code under `gen/` included only when named), counting
 * value and type-only imports alike (a type-only cycle still ties two files together), and
 * prints each cycle as `a.ts -> b.ts -> a.ts`.
 *
 * ```sh
 * deno run --allow-read --allow-write --allow-run scripts/import_cycles.ts [PATH...]
 * ```
 *
 * Exit 0 without a cycle, 1 with one (run by `deno task check`).
 */
import { relative } from "node:path";
import { pathToFileURL } from "node:url";

interface InfoModule {
  specifier: string;
  dependencies?: Array<{ code?: { specifier?: string }; type?: { specifier?: string } }>;
}

async function* tsFiles(root: string, top: boolean): AsyncGenerator<string> {
  const info = await Deno.stat(root);
  if (info.isFile) {
    if (root.endsWith(".ts") && (top || !root.endsWith("_test.ts"))) yield root;
    return;
  }
  for await (const e of Deno.readDir(root)) {
    if (e.name === "gen" || e.name === "node_modules") continue;
    yield* tsFiles(`${root}/${e.name}`, false);
  }
}

/** The local module graph (file URL → imported file URLs) reachable from `files`. */
export async function importGraph(files: string[]): Promise<Map<string, Set<string>>> {
  const dir = await Deno.makeTempDir({ prefix: "import_cycles" });
  try {
    const entry = `${dir}/entry.ts`;
    const lines = files.map((f) =>
      `import ${JSON.stringify(pathToFileURL(Deno.realPathSync(f)).href)};`
    );
    await Deno.writeTextFile(entry, lines.join("\n") + "\n");
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", entry],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(`deno info failed: ${new TextDecoder().decode(out.stderr).trim()}`);
    }
    const info = JSON.parse(new TextDecoder().decode(out.stdout)) as { modules: InfoModule[] };
    const entryUrl = pathToFileURL(Deno.realPathSync(entry)).href;
    const graph = new Map<string, Set<string>>();
    for (const m of info.modules) {
      if (!m.specifier.startsWith("file:") || m.specifier === entryUrl) continue;
      const deps = new Set<string>();
      for (const d of m.dependencies ?? []) {
        for (const s of [d.code?.specifier, d.type?.specifier]) {
          if (s !== undefined && s.startsWith("file:") && s.endsWith(".ts")) deps.add(s);
        }
      }
      graph.set(m.specifier, deps);
    }
    return graph;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** The strongly connected components of more than one module (or a self-import): the cycles. */
export function cycles(graph: Map<string, Set<string>>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const connect = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) !== idx.get(v)) return;
    const scc: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      scc.push(w);
    } while (w !== v);
    if (scc.length > 1 || graph.get(v)?.has(v)) found.push(scc.sort());
  };
  for (const v of [...graph.keys()].sort()) if (!idx.has(v)) connect(v);
  return found;
}

/** One path around the cycle through `scc`, starting and ending at its first module. */
function loop(graph: Map<string, Set<string>>, scc: string[]): string[] {
  const members = new Set(scc);
  const start = scc[0];
  const prev = new Map<string, string>();
  const queue = [start];
  while (queue.length > 0) {
    const v = queue.shift()!;
    for (const w of graph.get(v) ?? []) {
      if (!members.has(w)) continue;
      if (w === start) {
        const path = [start];
        for (let u: string | undefined = v; u !== undefined && u !== start; u = prev.get(u)) {
          path.splice(1, 0, u);
        }
        return [...path, start];
      }
      if (!prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  return [...scc, start];
}

async function main(args: string[]): Promise<number> {
  const roots = args.length > 0 ? args : ["main.ts", "src", "scripts"];
  const files: string[] = [];
  for (const root of roots) for await (const f of tsFiles(root, true)) files.push(f);
  const graph = await importGraph(files);
  const found = cycles(graph);
  const cwd = Deno.cwd();
  const name = (url: string) => relative(cwd, new URL(url).pathname);
  for (const scc of found) console.log(`import cycle: ${loop(graph, scc).map(name).join(" -> ")}`);
  if (found.length > 0) {
    console.log(`${found.length} import cycle(s) among ${graph.size} local modules`);
    return 1;
  }
  console.log(`No import cycle among ${graph.size} local modules`);
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
