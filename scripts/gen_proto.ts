/**
 * Regenerates `src/teleport/gen/` from the trimmed Teleport `.proto` copies in `proto/`.
 *
 *   deno task proto           regenerate in place
 *   deno task proto --check   regenerate into a temporary directory and fail if the committed
 *                             output differs (stale)
 *
 * Toolchain (pinned): buf 1.75.0 run through `npx -y @bufbuild/buf@1.75.0` (the npm package ships
 * the binary; it is not in deno.json because Deno would fetch every platform's binary), and
 * protoc-gen-es 2.17.0 from deno.json (`node_modules/.bin/protoc-gen-es`, installed by
 * `deno install`). Both need Node.js and npm at generation time only; nothing reads `.proto`
 * files at run time.
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The pinned buf version. */
export const BUF_VERSION = "1.75.0";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const GEN_DIR = "src/teleport/gen";

async function run(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("npx", {
    args: ["-y", `@bufbuild/buf@${BUF_VERSION}`, ...args],
    cwd,
    stdout: "inherit",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr).split("\n")
    .filter((l) => l && !l.startsWith("npm warn")).join("\n");
  if (!out.success) throw new Error(`buf ${args[0]} failed: ${stderr}`);
  if (stderr) console.error(stderr);
}

async function listFiles(dir: string, prefix = ""): Promise<string[]> {
  const files: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory) files.push(...await listFiles(join(dir, e.name), rel));
    else files.push(rel);
  }
  return files.sort();
}

/** Compares two generated trees; returns the differing relative paths. */
export async function diffTrees(a: string, b: string): Promise<string[]> {
  const [fa, fb] = await Promise.all([listFiles(a), listFiles(b)]);
  const all = [...new Set([...fa, ...fb])].sort();
  const diffs: string[] = [];
  for (const f of all) {
    const [ta, tb] = await Promise.all([
      Deno.readTextFile(join(a, f)).catch(() => undefined),
      Deno.readTextFile(join(b, f)).catch(() => undefined),
    ]);
    if (ta !== tb) diffs.push(f);
  }
  return diffs;
}

async function main(args: string[]): Promise<number> {
  const check = args.includes("--check");
  if (!check) {
    await run(["generate"], ROOT);
    console.log(`Generated ${GEN_DIR}`);
    return 0;
  }
  const tmp = await Deno.makeTempDir({ prefix: "gen_proto_" });
  try {
    await run(["generate", "-o", tmp], ROOT);
    const diffs = await diffTrees(join(ROOT, GEN_DIR), join(tmp, GEN_DIR));
    if (diffs.length > 0) {
      console.error(`${GEN_DIR} is stale (run "deno task proto"): ${diffs.join(", ")}`);
      return 1;
    }
    console.log(`${GEN_DIR} is up to date`);
    return 0;
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

if (import.meta.main) {
  Deno.exitCode = await main(Deno.args);
}
