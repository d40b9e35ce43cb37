import assert from "node:assert/strict";
import { diffTrees } from "./gen_proto.ts";

function hasNpx(): boolean {
  try {
    return new Deno.Command("npx", { args: ["--version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

Deno.test("diffTrees() reports changed, missing and extra files", async () => {
  const a = await Deno.makeTempDir(), b = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${a}/x`);
    await Deno.mkdir(`${b}/x`);
    await Deno.writeTextFile(`${a}/x/same.ts`, "1");
    await Deno.writeTextFile(`${b}/x/same.ts`, "1");
    await Deno.writeTextFile(`${a}/x/changed.ts`, "1");
    await Deno.writeTextFile(`${b}/x/changed.ts`, "2");
    await Deno.writeTextFile(`${a}/only_a.ts`, "");
    await Deno.writeTextFile(`${b}/only_b.ts`, "");
    assert.deepEqual(await diffTrees(a, b), ["only_a.ts", "only_b.ts", "x/changed.ts"]);
  } finally {
    await Deno.remove(a, { recursive: true });
    await Deno.remove(b, { recursive: true });
  }
});

// Regenerating needs Node's npx and the npm registry (buf is fetched by npx); without npx the
// committed output is still pinned by the hand-computed wire tests in src/teleport/convert_test.ts.
Deno.test({
  name: "deno task proto --check: committed src/teleport/gen matches the .proto files" +
    (hasNpx() ? "" : " (ignored: npx not available)"),
  ignore: !hasNpx(),
  async fn() {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", new URL("./gen_proto.ts", import.meta.url).pathname, "--check"],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(120_000),
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.equal(out.success, true, text);
    assert.match(text, /is up to date/);
  },
});
