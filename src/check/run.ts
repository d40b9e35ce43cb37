/**
 * `teleport-email check [-c FILE] [--send-test ADDRESS] [-d]`: every start-up step of `start`
 * up to, not including, "Plugin is ready" (configuration, credentials, connection, mailer), plus
 * permission probes that change nothing, then exits. One line per check, in this order:
 * configuration (warnings included), credentials, connection, permissions, mailer, test email.
 * A check whose input is missing is printed as SKIP with the reason (no connection → no
 * permission probes). Resolves with the exit code: 0 when nothing FAILed, 1 otherwise.
 *
 * Nothing is logged unless `-d` is given (then debug records go to stderr); the lines go to
 * `write` (the CLI's stdout). Never prints a secret.
 * @module
 */
import { INIT_TIMEOUT_MS, PLUGIN_NAME } from "../app.ts";
import { type EnvSettings, readEnvSettings } from "../config/env.ts";
import { loadConfig } from "../config/load.ts";
import type { Config } from "../config/types.ts";
import { getLogger, resetLogging, setupLogging } from "../log.ts";
import type { Mailer } from "../mailers/mailer.ts";
import type { CredentialsSource } from "../teleport/credentials.ts";
import type { TeleportConnection } from "../teleport/connect.ts";
import { versionLine } from "../version.ts";
import { checkMailer, closeQuietly, sendTestEmail, transportName } from "./mailer.ts";
import { checkPermissions } from "./permissions.ts";
import { CheckReport } from "./report.ts";
import { checkConnection, checkCredentials } from "./teleport.ts";
import { errorMessage } from "../errors.ts";

/** Options of {@link runCheck}. */
export interface RunCheckOptions {
  configPath: string;
  /** `--send-test ADDRESS`: one real test email to this address. */
  sendTest?: string;
  /** `-d`: debug log records on stderr. */
  debug: boolean;
  /** Receives the output lines. */
  write: (text: string) => void;
  /** Reads an environment variable (the ones `start` reads). */
  env?: (name: string) => string | undefined;
}

/** Runs the checks; resolves with the exit code (0 or 1). Never throws. */
export async function runCheck(opts: RunCheckOptions): Promise<number> {
  const report = new CheckReport(opts.write);
  const loaded = await checkConfiguration(report, opts);
  if (!loaded) {
    const steps = ["credentials", "connection", "permissions", "mailer"];
    if (opts.sendTest !== undefined) steps.push(`test email to ${opts.sendTest}`);
    for (const step of steps) report.skip(step, "the configuration did not load");
    report.summary();
    return 1;
  }
  const { config, env } = loaded;
  report.addSecret(config.smtp?.password);
  report.addSecret(config.mailgun?.privateKey);
  if (opts.debug) {
    await setupLogging({ ...config.log, output: "stderr" }, { debug: true }).catch(() => {});
  }
  try {
    const clusterName = await checkTeleport(report, config, env);
    await checkMail(report, config, opts.sendTest, clusterName);
  } finally {
    if (opts.debug) await resetLogging();
  }
  report.summary();
  return report.failed ? 1 : 0;
}

/**
 * Loads the configuration and reads the environment as `start` does; prints OK (or FAIL) and a
 * WARN per warning.
 */
async function checkConfiguration(
  report: CheckReport,
  opts: RunCheckOptions,
): Promise<{ config: Config; env: EnvSettings } | undefined> {
  let config: Config;
  let env: EnvSettings;
  try {
    config = await loadConfig(opts.configPath);
    env = readEnvSettings(opts.env);
  } catch (err) {
    const hint = (err as { hint?: string }).hint;
    report.fail(
      `configuration: ${errorMessage(err)}`,
      hint ?? "fix the key named in the message (teleport-email configure prints an example)",
    );
    return undefined;
  }
  const roles = Object.keys(config.roleToRecipients).length;
  report.ok(
    `configuration: ${JSON.stringify(config.path)} loaded (${transportName(config)}, ` +
      `Teleport ${JSON.stringify(config.teleport.addr)}, ${roles} role_to_recipients ` +
      `entr${roles === 1 ? "y" : "ies"}, log output ${JSON.stringify(config.log.output)})`,
  );
  for (const warning of config.warnings) {
    report.warn(`configuration: ${warning}`, "see the key named in the message");
  }
  return { config, env };
}

/**
 * Credentials, connection (dialing with the environment `start` would use) and permissions;
 * resolves with the cluster name when connected.
 */
async function checkTeleport(
  report: CheckReport,
  config: Config,
  env: EnvSettings,
): Promise<string | undefined> {
  const log = getLogger(["teleport"]);
  const signal = AbortSignal.timeout(INIT_TIMEOUT_MS * 4);
  const opts = { signal, log, timeoutMs: INIT_TIMEOUT_MS, dialEnv: env.dial };
  let creds: CredentialsSource | undefined;
  let conn: TeleportConnection | undefined;
  try {
    creds = await checkCredentials(report, config.teleport, opts);
    if (creds) conn = await checkConnection(report, config.teleport, creds, opts);
    else report.skip("connection", "no valid credentials");
    if (conn) {
      await checkPermissions(report, conn.client, {
        plugin: PLUGIN_NAME,
        signal,
        watchTimeoutMs: INIT_TIMEOUT_MS,
      });
    } else {
      report.skip("permissions", "no connection to Teleport");
    }
    return conn?.ping.clusterName;
  } finally {
    conn?.close();
    creds?.close();
  }
}

/** The mailer check, then the test email when asked for. */
async function checkMail(
  report: CheckReport,
  config: Config,
  sendTest: string | undefined,
  clusterName: string | undefined,
): Promise<void> {
  const signal = AbortSignal.timeout(INIT_TIMEOUT_MS * 2);
  let mailer: Mailer | undefined;
  try {
    mailer = await checkMailer(report, config, { signal, log: getLogger(["mailer"]) });
    if (sendTest === undefined) return;
    if (!mailer) {
      report.skip(`test email to ${sendTest}`, "the mailer check failed");
      return;
    }
    await sendTestEmail(report, mailer, sendTest, {
      clusterName,
      hostname: hostname(),
      version: versionLine(),
      transport: transportName(config),
      sentAt: new Date(),
    }, signal);
  } finally {
    await closeQuietly(mailer);
  }
}

function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "unknown";
  }
}
