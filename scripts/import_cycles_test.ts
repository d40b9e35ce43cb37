import assert from "node:assert/strict";
import { cycles } from "./import_cycles.ts";

const SCRIPT = new URL("./import_cycles.ts", import.meta.url).pathname;

async function runOn(files: Record<string, string>) {
  const dir = await Deno.makeTempDir({ prefix: "import_cycles_test" });
  try {
    for (const [name, text] of Object.entries(files)) {
      await Deno.writeTextFile(`${dir}/${name}`, text);
    }
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-read", "--allow-write", "--allow-run", SCRIPT, "."],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: out.code, stdout: new TextDecoder().decode(out.stdout) };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("import_cycles.ts fails on a cycle through a type-only import and names its files", async () => {
  const res = await runOn({
    "a.ts": 'import { b } from "./b.ts";\nexport const a = () => b;\n',
    "b.ts": 'import type { c } from "./c.ts";\nexport const b = 1;\nexport type B = typeof c;\n',
    "c.ts": 'import type { a } from "./a.ts";\nexport const c = 2;\nexport type C = typeof a;\n',
    "d.ts": 'import { a } from "./a.ts";\nexport const d = a;\n',
  });
  assert.equal(res.code, 1, res.stdout);
  assert.match(res.stdout, /^import cycle: a\.ts -> b\.ts -> c\.ts -> a\.ts$/m);
  assert.match(res.stdout, /1 import cycle\(s\) among 4 local modules/);
});

Deno.test("import_cycles.ts passes an acyclic graph", async () => {
  const res = await runOn({
    "a.ts": 'import { b } from "./b.ts";\nexport const a = b;\n',
    "b.ts": "export const b = 1;\n",
  });
  assert.equal(res.code, 0, res.stdout);
  assert.match(res.stdout, /No import cycle among 2 local modules/);
});

Deno.test("cycles() finds each strongly connected group and self-imports", () => {
  const g = new Map<string, Set<string>>([
    ["a", new Set(["b"])],
    ["b", new Set(["a", "c"])],
    ["c", new Set(["d"])],
    ["d", new Set()],
    ["e", new Set(["e"])],
  ]);
  assert.deepEqual(cycles(g), [["a", "b"], ["e"]]);
});
