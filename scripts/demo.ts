/**
 * `deno task demo`: the whole plugin on one machine, with nothing to configure.
 *
 * Starts a test Teleport Auth server (real mutual-TLS gRPC), a real SMTP server (STARTTLS and
 * AUTH), writes an identity file and a configuration, runs the real `teleport-email start` as a
 * child process, then plays four access requests through it:
 *
 * 1. approved by two reviews (threshold 2): new request, two review replies, the resolution;
 * 2. denied by an administrator;
 * 3. deleted (expired);
 * 4. promoted to an Access List.
 *
 * Every delivered email is printed (envelope, threading headers, text body) and saved as an
 * `.eml` file under `demo-out/` (or the folder given with `--out`). Exits 0 when every expected
 * email arrived and the plugin stopped cleanly, 1 otherwise.
 * @module
 */
import { parseArgs } from "node:util";
import { join, resolve } from "node:path";
import { type DeliveredEmail, E2eEnv } from "../tests/helpers/e2e_env.ts";
import type { LogLine } from "../tests/helpers/plugin_process.ts";

const STEP_TIMEOUT_MS = 30_000;

const { values: flags } = parseArgs({
  args: Deno.args,
  options: {
    out: { type: "string", default: "demo-out" },
    verbose: { type: "boolean", short: "v", default: false },
  },
});

const outDir = resolve(flags.out!);
const bold = (s: string) => Deno.noColor ? s : `\x1b[1m${s}\x1b[0m`;
const dim = (s: string) => Deno.noColor ? s : `\x1b[2m${s}\x1b[0m`;

function heading(text: string): void {
  console.log(`\n${bold(`== ${text}`)}`);
}

/** A compact rendering of the plugin's JSON log line: level, message, the useful attributes. */
function renderLog(line: LogLine): string {
  const skip = new Set(["time", "level", "msg", "request_op"]);
  const attrs = Object.entries(line)
    .filter(([k]) => !skip.has(k))
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
  return dim(`  [plugin] ${line.level.padEnd(5)} ${line.msg}${attrs ? " " + attrs : ""}`);
}

let printedEmails = 0;
async function printNewEmails(env: E2eEnv): Promise<void> {
  const all = env.emails;
  for (; printedEmails < all.length; printedEmails++) {
    const mail = all[printedEmails];
    const file = join(outDir, `${String(printedEmails + 1).padStart(2, "0")}.eml`);
    if (mail.smtp) await Deno.writeTextFile(file, mail.smtp.toEml());
    printEmail(printedEmails + 1, mail, file);
  }
}

function printEmail(n: number, mail: DeliveredEmail, file: string): void {
  console.log(`\n  ${bold(`--- email #${n}`)} ${dim(`(saved as ${file})`)}`);
  console.log(`  Envelope: ${mail.smtp?.envelope.from ?? mail.from} -> ${mail.to}`);
  console.log(`  From: ${mail.from}`);
  console.log(`  To: ${mail.to}`);
  console.log(`  Subject: ${mail.subject}`);
  console.log(`  Message-ID: ${mail.messageId}`);
  if (mail.inReplyTo) console.log(`  In-Reply-To: ${mail.inReplyTo}`);
  if (mail.references) console.log(`  References: ${mail.references}`);
  console.log("");
  for (const line of mail.text.split("\n")) console.log(`    ${line}`);
}

async function expectEmails(env: E2eEnv, total: number, what: string): Promise<void> {
  try {
    await env.waitForEmails(total, STEP_TIMEOUT_MS);
  } catch (err) {
    throw new Error(`${what}: ${(err as Error).message}`);
  }
  await printNewEmails(env);
}

async function main(): Promise<number> {
  await Deno.mkdir(outDir, { recursive: true });
  for await (const entry of Deno.readDir(outDir)) {
    if (entry.isFile && entry.name.endsWith(".eml")) await Deno.remove(join(outDir, entry.name));
  }

  heading("Starting a test Teleport cluster and an SMTP server (loopback only)");
  await using env = await E2eEnv.start({
    mailer: "smtp",
    clusterName: "teleport.example.com",
    server: { advancedAccessWorkflows: true, proxyPublicAddr: "teleport.example.com:443" },
    roleToRecipients: {
      "*": ["security-team@example.com"],
      "dba": ["dba-oncall@example.com"],
    },
    sender: "Teleport <noreply@example.com>",
    severity: "info",
  });
  console.log(`  Teleport Auth (mTLS gRPC): ${env.teleport.addr}`);
  console.log(`  SMTP server (STARTTLS + AUTH): localhost:${env.smtp!.port}`);
  console.log(`  Identity file for user "plugin" (role access-plugin): ${env.identityPath}`);
  heading(`Configuration (${env.configPath})`);
  const config = await Deno.readTextFile(env.configPath);
  for (const line of config.trimEnd().split("\n")) console.log(`    ${line}`);

  heading("Starting: teleport-email start -c " + env.configPath);
  const plugin = await env.startPlugin({
    echo: (line) => {
      if (!line.startsWith("{")) return console.log(dim(`  [plugin] ${line}`));
      const parsed = JSON.parse(line) as LogLine;
      if (flags.verbose || parsed.level !== "DEBUG") console.log(renderLog(parsed));
    },
  });
  const t = env.teleport;

  heading("1. alice requests the editor role; two reviews approve it (threshold 2)");
  const r1 = t.createAccessRequest({
    user: "alice@example.com",
    roles: ["editor"],
    reason: "Deploy the hotfix for INC-1234",
    suggestedReviewers: ["reviewer1@example.com"],
    thresholds: { approve: 2, deny: 2 },
  });
  await expectEmails(env, 2, "new request emails for request 1");
  t.submitReview(r1.id, {
    author: "reviewer1@example.com",
    proposedState: "APPROVED",
    reason: "looks good",
  });
  await expectEmails(env, 4, "first review emails for request 1");
  t.submitReview(r1.id, {
    author: "reviewer2@example.com",
    proposedState: "APPROVED",
    reason: "approved for today",
  });
  await expectEmails(env, 8, "second review and resolution emails for request 1");

  heading("2. bob requests the dba role; an administrator denies it");
  const r2 = t.createAccessRequest({
    user: "bob@example.com",
    roles: ["dba"],
    reason: "Look at the slow query log",
  });
  await expectEmails(env, 9, "new request email for request 2");
  t.setState(r2.id, "DENIED", "use the read-only replica instead");
  await expectEmails(env, 10, "resolution email for request 2");

  heading("3. carol's request is deleted before anyone reviews it (it expires)");
  const r3 = t.createAccessRequest({ user: "carol@example.com", roles: ["editor"] });
  await expectEmails(env, 11, "new request email for request 3");
  t.deleteAccessRequest(r3.id);
  await expectEmails(env, 12, "expiry email for request 3");

  heading("4. dave's request is promoted to an Access List");
  const r4 = t.createAccessRequest({
    user: "dave@example.com",
    roles: ["editor"],
    reason: "Long-term on-call access",
  });
  await expectEmails(env, 13, "new request email for request 4");
  t.promote(r4.id, { name: "oncall-editors", title: "On-call editors" });
  await expectEmails(env, 14, "promotion email for request 4");

  heading("Stopping the plugin (SIGTERM)");
  const code = await plugin.stop();
  if (code !== 0) throw new Error(`teleport-email exited with code ${code}`);
  console.log(`  teleport-email exited with code ${code}`);

  heading("Summary");
  console.log(`  ${env.emails.length} emails delivered; .eml files in ${outDir}`);
  const stored = t.getPluginData(r1.id, "email") ?? {};
  console.log("  Plugin data stored in Teleport for request 1 (the Go plugin's format):");
  for (const [k, v] of Object.entries(stored)) console.log(`    ${k} = ${JSON.stringify(v)}`);
  return 0;
}

try {
  Deno.exitCode = await main();
} catch (err) {
  console.error(`\ndemo failed: ${err instanceof Error ? err.message : String(err)}`);
  Deno.exitCode = 1;
}
