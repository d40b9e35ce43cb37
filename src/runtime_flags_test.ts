import assert from "node:assert/strict";
import denoJson from "../deno.json" with { type: "json" };
import { DAEMON_PERMISSIONS } from "./permissions.ts";
import {
  COMPILE_ENTRY,
  DAEMON_RUN_FLAGS,
  DAEMON_RUNTIME_FLAGS,
  DAEMON_V8_FLAGS,
} from "./runtime_flags.ts";

Deno.test("deno task start installs the packages, then runs main.ts with the daemon's permissions and flags", () => {
  const start = denoJson.tasks.start;
  const words = start.command.split(/\s+/);
  const main = words.indexOf("main.ts");
  assert.deepEqual(words.slice(0, 2), ["deno", "run"]);
  assert.deepEqual(words.slice(2, main), [...DAEMON_PERMISSIONS, ...DAEMON_RUN_FLAGS]);
  assert.deepEqual(words.slice(main), ["main.ts", "start"]);
  assert.deepEqual(start.dependencies, ["install"]);
  assert.equal(denoJson.tasks.install, "deno install --frozen --quiet");
});

Deno.test("DAEMON_RUN_FLAGS are the runtime flags and installed packages, which compile leaves out", () => {
  assert.deepEqual(DAEMON_RUN_FLAGS, [
    ...DAEMON_RUNTIME_FLAGS,
    "--node-modules-dir=manual",
    "--no-lock",
  ]);
  assert.ok(!DAEMON_RUNTIME_FLAGS.some((f) => /^--(node-modules-dir|no-lock)/.test(f)));
});

Deno.test("DAEMON_RUNTIME_FLAGS is one --v8-flags argument with every V8 flag, and no code cache", () => {
  assert.deepEqual(DAEMON_RUNTIME_FLAGS, [
    `--v8-flags=${DAEMON_V8_FLAGS.join(",")}`,
    "--no-code-cache",
  ]);
  for (const flag of DAEMON_V8_FLAGS) assert.match(flag, /^--[a-z0-9-]+(=[^,\s]+)?$/);
});

Deno.test("main.ts imports the start modules by a computed specifier, the compile entry by a literal one", async () => {
  const read = (path: string) => Deno.readTextFile(new URL(path, import.meta.url));
  const compiled = await read(`../${COMPILE_ENTRY}`);
  // A literal specifier, which deno compile follows to embed the daemon.
  assert.match(compiled, /import\("\.\/src\/start_modules\.ts"\)/);
  assert.doesNotMatch(await read("./cli.ts"), /(?<!typeof )(?<![\w.`])import\(["'`]/);
  assert.match(await read("../main.ts"), /import\(new URL\("\.\/src\/start_modules\.ts"/);
});

Deno.test("version, configure and help load only the CLI's leaves", async () => {
  // V8 logs every script it compiles; the daemon's modules must not be among them.
  const dir = await Deno.makeTempDir({ prefix: "teleport_email_lazy_" });
  try {
    const main = new URL("../main.ts", import.meta.url).pathname;
    for (const args of [["version"], ["configure"], ["help"]]) {
      const log = `${dir}/${args[0]}.log`;
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          ...DAEMON_PERMISSIONS,
          `--v8-flags=--log-function-events,--logfile=${log},--no-logfile-per-isolate`,
          "--quiet",
          main,
          ...args,
        ],
        stdout: "null",
        stderr: "null",
      }).output();
      assert.equal(out.code, 0, args[0]);
      const loaded = new Set(
        [...(await Deno.readTextFile(log)).matchAll(/^script-details,\d+,([^,]+)/gm)]
          .map((m) => m[1]).filter((u) => u.startsWith("file:")),
      );
      const names = [...loaded].map((u) => u.replace(/^.*\/(src\/|main\.ts)/, (_, s) => s));
      assert.ok(names.includes("src/cli.ts"), names.join(" "));
      for (const name of names) {
        assert.ok(
          !/node_modules|src\/(app|log|watcher|pipeline)\.ts|src\/(teleport|notify|mailers)\//.test(
            name,
          ),
          `${args[0]} loaded ${name}`,
        );
      }
      assert.ok(!names.includes("src/start_modules.ts"), `${args[0]} loaded start_modules.ts`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
