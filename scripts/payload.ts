/**
 * What goes into the release binary's payload, and the check that nothing else does.
 *
 * `deno compile` embeds the whole `node_modules/` unless told otherwise. The release embeds only
 * the npm packages `main.ts`'s module graph reaches (`deno info --json main.ts`, dynamic
 * `import()`s with literal specifiers included) and their dependencies, leaving out type-only
 * `@types/*` packages and declared dependencies nothing loads ({@link NOT_LOADED}); every other folder of `node_modules/` is passed to `--exclude`. The
 * package names `deno compile` then lists under "Embedded Files" must equal
 * `scripts/payload_packages.txt`, the allow-list: a package added to the runtime graph, or one
 * that is missing, fails the build with its name.
 * @module
 */

/** The allow-list of npm package names embedded in the binary (one a line, `#` comments). */
export const ALLOWLIST_PATH: string = new URL("./payload_packages.txt", import.meta.url).pathname;

/** One npm package of `deno info --json`'s `npmPackages`. */
interface NpmPackageInfo {
  name: string;
  version: string;
  dependencies?: string[];
  localPath?: string;
}

/** The parts of `deno info --json` read here. */
export interface DenoInfo {
  modules: Array<{ kind?: string; npmPackage?: string }>;
  npmPackages?: Record<string, NpmPackageInfo>;
}

/** An npm package the runtime needs: its name and its folder under `node_modules/.deno/`. */
export interface RuntimePackage {
  name: string;
  version: string;
  /** e.g. `@grpc+grpc-js@1.14.7` (`undefined` without a local `node_modules/`). */
  folder?: string;
}

/**
 * Folders of runtime packages that hold no runtime code and break `deno compile`, left out too
 * (package name → paths inside the package). `bintrees` (prom-client → tdigest → bintrees) ships
 * `test/perf/100k`, 2 MB of numbers one a line without a file extension: deno 2.9.6 parses it
 * as one script, a 100,000-term expression, and its compile dies with "thread
 * 'tokio-runtime-worker' has overflowed its stack".
 */
export const NON_RUNTIME_PATHS: Readonly<Record<string, readonly string[]>> = {
  bintrees: ["test", "examples"],
};

/**
 * Dependencies that runtime packages declare but that nothing loads when the daemon runs, left
 * out with everything only they pull in (package name → why). The e2e checks against a tree
 * pruned this way (tests/release_test.ts: signals, SMTP scenarios, SSH tunnel) guard the list.
 */
export const NOT_LOADED: Readonly<Record<string, string>> = {
  "cpu-features": "ssh2 tries it in a try/catch; a native addon whose build Deno skips",
  "nan": "C++ headers for building native addons",
  "buildcheck": "cpu-features' install-time build check",
  "yargs": "@grpc/proto-loader's command-line generator only (bin/proto-loader-gen-types.js)",
};

/** Type-only packages and {@link NOT_LOADED} ones: never loaded at run time, never embedded. */
function isTypeOnly(name: string): boolean {
  return name.startsWith("@types/") || name in NOT_LOADED;
}

/**
 * The npm packages the module graph in `info` reaches, with every dependency of each (type-only
 * `@types/*` packages, {@link NOT_LOADED} ones and what only they pull in left out), sorted by
 * name then version.
 */
export function runtimePackages(info: DenoInfo): RuntimePackage[] {
  const npm = info.npmPackages ?? {};
  const seen = new Set<string>();
  const todo = info.modules.flatMap((m) => m.kind === "npm" && m.npmPackage ? [m.npmPackage] : []);
  while (todo.length > 0) {
    const key = todo.pop()!;
    const pkg = npm[key];
    if (seen.has(key) || !pkg || isTypeOnly(pkg.name)) continue;
    seen.add(key);
    todo.push(...pkg.dependencies ?? []);
  }
  return [...seen].map((key) => {
    const pkg = npm[key];
    const folder = /\/node_modules\/\.deno\/([^/]+)\//.exec(pkg.localPath ?? "")?.[1];
    return { name: pkg.name, version: pkg.version, folder };
  }).sort((a, b) => a.name.localeCompare(b.name) || a.version.localeCompare(b.version));
}

/**
 * `--exclude` paths (relative to the tree) that leave out of `node_modules/` everything but
 * `keep`: the other `.deno/<package>` folders, every link to a package not kept (top-level
 * `<name>` and `@scope/<name>`, hoisted `.deno/node_modules/...`, and a kept package's own
 * `.deno/<package>/node_modules/<dependency>`, which deno compile would otherwise follow and
 * embed), `.bin/`, and the {@link NON_RUNTIME_PATHS} of kept packages. `entries` lists the
 * tree's `node_modules/` ({@link listNodeModules}).
 */
export function payloadExcludes(
  keep: readonly RuntimePackage[],
  entries: NodeModulesEntries,
): string[] {
  const folders = new Set(keep.flatMap((p) => p.folder ? [p.folder] : []));
  const names = new Set(keep.map((p) => p.name));
  const out: string[] = [];
  for (const folder of entries.folders) {
    if (!folders.has(folder)) out.push(`node_modules/.deno/${folder}`);
  }
  for (const p of keep) {
    for (const path of p.folder ? NON_RUNTIME_PATHS[p.name] ?? [] : []) {
      out.push(`node_modules/.deno/${p.folder}/node_modules/${p.name}/${path}`);
    }
  }
  for (const link of entries.links) {
    const inFolder = /^\.deno\/([^/]+)\/node_modules\//.exec(link)?.[1];
    if (inFolder !== undefined && inFolder !== "node_modules" && !folders.has(inFolder)) continue;
    const name = link.replace(/^\.deno\/([^/]+\/)?node_modules\//, "");
    if (!names.has(name)) out.push(`node_modules/${link}`);
  }
  if (entries.links.length > 0 || entries.folders.length > 0) out.push("node_modules/.bin");
  return out.sort();
}

/** A `node_modules/` folder's package folders and links, relative to it. */
export interface NodeModulesEntries {
  /** `.deno/<name with + for />@<version>` folder names. */
  folders: string[];
  /**
   * Links to packages: `<name>`, `.deno/node_modules/<name>` and
   * `.deno/<folder>/node_modules/<name>` (that folder's dependencies), `<name>` possibly scoped.
   */
  links: string[];
}

/** Lists `<tree>/node_modules/` for {@link payloadExcludes}; empty when it does not exist. */
export async function listNodeModules(tree: string): Promise<NodeModulesEntries> {
  const root = `${tree}/node_modules`;
  const folders: string[] = [];
  const links: string[] = [];
  const read = async (dir: string): Promise<Deno.DirEntry[]> => {
    const list: Deno.DirEntry[] = [];
    try {
      for await (const e of Deno.readDir(`${root}/${dir}`)) list.push(e);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    return list;
  };
  for (const e of await read(".deno")) {
    if (e.isDirectory && e.name !== "node_modules") folders.push(e.name);
  }
  for (
    const base of [
      "",
      ".deno/node_modules/",
      ...folders.map((f) => `.deno/${f}/node_modules/`),
    ]
  ) {
    for (const e of await read(base || ".")) {
      if (e.name.startsWith(".")) continue;
      if (e.name.startsWith("@") && e.isDirectory) {
        for (const s of await read(`${base}${e.name}`)) {
          if (s.isSymlink) links.push(`${base}${e.name}/${s.name}`);
        }
      } else if (e.isSymlink) {
        links.push(`${base}${e.name}`);
      }
    }
  }
  return { folders: folders.sort(), links: links.sort() };
}

/** Strips ANSI colours. */
function plain(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/\x1b\[[0-9;]*m/g, "");
}

/**
 * The npm package names in `deno compile`'s "Embedded Files" listing: the entries under
 * `node_modules/.deno/` (`<name with + for />@<version>`), or under
 * `.deno_compile_node_modules/localhost/` (no local `node_modules/`). Returns `undefined` when the
 * listing shows `node_modules` collapsed (`node_modules/*`, nothing excluded) or has no such
 * section, so a caller can never mistake "not listed" for "not embedded".
 */
export function embeddedPackages(listing: string): string[] | undefined {
  const lines = plain(listing).split("\n");
  const start = lines.findIndex((l) => l.trim() === "Embedded Files");
  if (start < 0) return undefined;
  // Each entry: tree-drawing prefix (2 characters per level), then "name (size)" or "name/* (size)".
  const entries: Array<{ depth: number; name: string }> = [];
  for (const line of lines.slice(start + 1)) {
    const m = /^([\s│├└─┬]*)(\S.*?)(?: \([^()]*\))?$/.exec(line);
    if (!m || m[1] === "" || !/[├└]/.test(m[1])) continue;
    // "├── " is the first level; each further level adds two characters ("│ " or "  ").
    entries.push({ depth: (m[1].length - 2) / 2, name: m[2].replace(/ --> .*$/, "") });
  }
  const path: string[] = [];
  const names = new Set<string>();
  let sawNodeModules = false;
  for (const { depth, name } of entries) {
    path.length = depth - 1;
    path.push(name);
    const full = path.join("/");
    if (full === "node_modules/*" || full === "node_modules/.deno/*") return undefined;
    const local = /^node_modules\/\.deno\/((?:@[^/+]+\+)?[^/@]+)@[^/]+(\/.*)?$/.exec(full);
    const global = /^\.deno_compile_node_modules\/localhost\/((?:@[^/]+\/)?[^/@*]+)\/[^/*]+/.exec(
      full,
    );
    if (full.startsWith("node_modules") || full.startsWith(".deno_compile_node_modules")) {
      sawNodeModules = true;
    }
    if (local) names.add(local[1].replace("+", "/"));
    else if (global) names.add(global[1]);
  }
  return sawNodeModules ? [...names].sort() : [];
}

/** Parses the allow-list file's text: one package name a line, `#` starts a comment. */
export function parseAllowList(text: string): string[] {
  return [
    ...new Set(
      text.split("\n").map((l) => l.replace(/#.*$/, "").trim()).filter((l) => l !== ""),
    ),
  ].sort();
}

/** What differs between the allow-list and the payload. */
export interface PayloadDiff {
  /** Embedded but not allowed. */
  extra: string[];
  /** Allowed but not embedded. */
  missing: string[];
}

/** Compares allowed and embedded package names. */
export function comparePayload(
  allowed: readonly string[],
  embedded: readonly string[],
): PayloadDiff {
  const a = new Set(allowed);
  const e = new Set(embedded);
  return {
    extra: [...e].filter((n) => !a.has(n)).sort(),
    missing: [...a].filter((n) => !e.has(n)).sort(),
  };
}

/** The one-line error for a {@link PayloadDiff}, or `undefined` when they match. */
export function payloadMismatch(diff: PayloadDiff, allowListName: string): string | undefined {
  if (diff.extra.length === 0 && diff.missing.length === 0) return undefined;
  const parts: string[] = [];
  if (diff.extra.length > 0) {
    parts.push(
      `embedded but not in ${allowListName}: ${diff.extra.join(", ")} ` +
        "(add it if the daemon needs it at run time, else remove the import that pulls it in)",
    );
  }
  if (diff.missing.length > 0) {
    parts.push(
      `in ${allowListName} but not embedded: ${diff.missing.join(", ")} (remove it from the list)`,
    );
  }
  return `The binary's npm packages differ from the allow-list: ${parts.join("; ")}`;
}
