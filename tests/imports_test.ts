/**
 * `deno.json`'s import map holds nothing unused, and the runtime/dev split matches the payload
 * allow-list: every entry is imported by `main.ts`'s module graph (runtime) or by a test or
 * script (dev), or is a tool named in its config file; the runtime graph's packages are all in
 * `scripts/payload_packages.txt` and no dev-only one is.
 */
import assert from "node:assert/strict";
import { ALLOWLIST_PATH, parseAllowList } from "../scripts/payload.ts";
import { COMPILE_ENTRY } from "../src/runtime_flags.ts";

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** Import-map entries used outside the module graph: entry → file that must name it. */
const TOOL_IMPORTS: Record<string, string> = {
  "@bufbuild/protoc-gen-es": "buf.gen.yaml", // node_modules/.bin/protoc-gen-es, run by buf
};

/**
 * The import-map keys none of `specifiers` uses: a key is used by a specifier equal to it, or
 * starting with it when it ends in `/`; `@types/<name>` (Deno takes types from it) when `<name>`
 * is used; a tool key when it is in `tools`.
 */
export function unusedImports(
  importMap: Record<string, string>,
  specifiers: Iterable<string>,
  tools: readonly string[] = [],
): string[] {
  const specs = [...specifiers];
  // A package's key also serves its subpaths (`nodemailer` → `nodemailer/lib/qp`), as in Deno.
  const used = (key: string) =>
    specs.some((s) => s === key || s.startsWith(key.endsWith("/") ? key : `${key}/`));
  return Object.keys(importMap).filter((key) => {
    if (tools.includes(key)) return false;
    const typed = /^@types\/(?:([^_/]+)__)?(.+)$/.exec(key);
    if (typed) {
      const name = typed[1] ? `@${typed[1]}/${typed[2]}` : typed[2];
      return !used(name) && !used(`${name}/`) && !specs.some((s) => s.startsWith(`${name}/`));
    }
    return !used(key);
  }).sort();
}

/** The npm package name an import-map value points at (`npm:@a/b@1.2.3/x` → `@a/b`). */
function packageName(value: string): string {
  return value.replace(/^npm:\/?/, "").replace(/^((?:@[^/]+\/)?[^/@]+).*$/, "$1");
}

/** Raw import specifiers of every local module in `deno info --json` of `entry`. */
async function localSpecifiers(entry: string): Promise<Set<string>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "--config", `${ROOT}/deno.json`, entry],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: Array<{ specifier: string; dependencies?: Array<{ specifier: string }> }>;
  };
  const specs = new Set<string>();
  for (const m of info.modules) {
    if (!m.specifier.startsWith(`file://${ROOT}/`)) continue;
    for (const d of m.dependencies ?? []) specs.add(d.specifier);
  }
  return specs;
}

async function tsFiles(dir: string): Promise<string[]> {
  const files: string[] = [];
  for await (const e of Deno.readDir(`${ROOT}/${dir}`)) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory && e.name !== "gen") files.push(...await tsFiles(path));
    else if (e.isFile && e.name.endsWith(".ts")) files.push(path);
  }
  return files;
}

Deno.test("unusedImports() reports an import-map entry nothing imports, and keeps types and prefixes", () => {
  const map = {
    "nodemailer": "npm:nodemailer@1",
    "@types/nodemailer": "npm:@types/nodemailer@1",
    "@bufbuild/protobuf/": "npm:/@bufbuild/protobuf@2/",
    "mailgun.js": "npm:mailgun.js@14",
    "@types/ssh2": "npm:@types/ssh2@1",
    "tool": "npm:tool@1",
  };
  assert.deepEqual(
    unusedImports(map, ["nodemailer", "@bufbuild/protobuf/wkt"], ["tool"]),
    ["@types/ssh2", "mailgun.js"],
  );
});

Deno.test("unusedImports() counts a package used through a subpath of its key", () => {
  const map = { "nodemailer": "npm:nodemailer@1", "ws": "npm:ws@8" };
  assert.deepEqual(unusedImports(map, ["nodemailer/lib/qp", "wsx"]), ["ws"]);
});

Deno.test("deno.json imports nothing unused; runtime packages are in the payload allow-list, dev-only ones are not", async () => {
  const denoJson = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`)) as {
    imports: Record<string, string>;
  };
  // The binary's graph: main.ts imports the daemon on demand (computed specifier), the compile
  // entry statically.
  const runtime = await localSpecifiers(`${ROOT}/${COMPILE_ENTRY}`);
  // Every test and script, through one temporary module that imports them all.
  const dir = await Deno.makeTempDir({ prefix: "imports-test-" });
  let all: Set<string>;
  try {
    const files = [
      "main.ts",
      COMPILE_ENTRY,
      ...await tsFiles("src"),
      ...await tsFiles("tests"),
      ...await tsFiles("scripts"),
    ];
    await Deno.writeTextFile(
      `${dir}/all.ts`,
      files.map((f) => `import "file://${ROOT}/${f}";`).join("\n") + "\n",
    );
    all = await localSpecifiers(`${dir}/all.ts`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  for (const [tool, file] of Object.entries(TOOL_IMPORTS)) {
    assert.ok(tool in denoJson.imports, `${tool} is not in deno.json`);
    const text = await Deno.readTextFile(`${ROOT}/${file}`);
    assert.ok(text.includes(tool.split("/").pop()!), `${file} does not use ${tool}`);
  }
  assert.deepEqual(unusedImports(denoJson.imports, all, Object.keys(TOOL_IMPORTS)), []);
  const allowed = new Set(parseAllowList(await Deno.readTextFile(ALLOWLIST_PATH)));
  for (const [key, value] of Object.entries(denoJson.imports)) {
    const name = packageName(value);
    const isRuntime = unusedImports({ [key]: value }, runtime).length === 0;
    if (name.startsWith("@types/")) continue;
    if (isRuntime) {
      assert.ok(allowed.has(name), `${name} is imported by main.ts's graph but not allowed`);
    } else {
      assert.ok(!allowed.has(name), `${name} is dev-only but in ${ALLOWLIST_PATH}`);
    }
  }
});
