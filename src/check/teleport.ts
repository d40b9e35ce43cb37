/**
 * `check`: the Teleport start-up steps of `start`, with the same functions: the credentials
 * (`createCredentials`: identity user, roles, expiry and time left) and the connection
 * (`connectTeleport`: connection mode, cluster name, server version against the minimum).
 * @module
 */
import type { Env } from "../config/env.ts";
import type { TeleportConfig } from "../config/types.ts";
import { errorMessage, TeleportEmailError, TeleportError } from "../errors.ts";
import { createCredentials, type CredentialsSource, type Log } from "../teleport/credentials.ts";
import {
  connectTeleport,
  MIN_SERVER_VERSION,
  type TeleportConnection,
} from "../teleport/connect.ts";
import type { CheckReport } from "./report.ts";

/** Below this much validity left, an identity that is not refreshed gets a WARN. */
export const EXPIRY_WARNING_MS = 60 * 60 * 1000;

/** Options of {@link checkCredentials} and {@link checkConnection}. */
export interface TeleportCheckOptions {
  signal: AbortSignal;
  log?: Log;
  /** Bound on the connection step, ms (`start`'s 10 s). */
  timeoutMs: number;
  /** The dialing variables `start` reads (`EnvSettings.dial`); undefined: none set. */
  dialEnv?: Env;
  /** Clock, for tests. */
  now?: () => Date;
}

/** `1d 2h`, `3h 4m`, `5m`, `42s`: a short duration for humans. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m`;
  return `${s}s`;
}

function hintOf(err: unknown): string | undefined {
  return err instanceof TeleportEmailError ? err.hint : undefined;
}

/**
 * Loads the credentials as `start` does and prints one line: user, roles, expiry and time left;
 * WARN when less than an hour is left and `refresh_identity` is off. Resolves with the
 * credentials (the caller closes them), or undefined after a FAIL.
 */
export async function checkCredentials(
  report: CheckReport,
  cfg: TeleportConfig,
  opts: TeleportCheckOptions,
): Promise<CredentialsSource | undefined> {
  let creds: CredentialsSource;
  try {
    creds = await createCredentials(cfg, { signal: opts.signal, log: opts.log, now: opts.now });
  } catch (err) {
    const expired = err instanceof TeleportError && err.kind === "access_denied";
    report.fail(
      `credentials: ${errorMessage(err)}${expired && hintOf(err) ? ` (${hintOf(err)})` : ""}`,
      expired
        ? "sign a new identity (tctl auth sign --format=file --user=<plugin user> --out=<file> --ttl=2190h), or check that tbot renews it"
        : hintOf(err) ?? "check teleport.identity (or client_key, client_crt, root_cas)",
    );
    return undefined;
  }
  const id = creds.current();
  const now = (opts.now ?? (() => new Date()))();
  const left = id.notAfter.getTime() - now.getTime();
  const what = `credentials: ${JSON.stringify(id.source)}: user ${JSON.stringify(id.user)}, ` +
    `roles ${id.roles.length > 0 ? id.roles.join(", ") : "(none)"}, valid until ` +
    `${id.notAfter.toISOString()} (${formatDuration(left)} left` +
    `${
      cfg.refreshIdentity ? ", re-read every " + formatDuration(cfg.refreshIdentityIntervalMs) : ""
    })`;
  if (left < EXPIRY_WARNING_MS && !cfg.refreshIdentity) {
    report.warn(
      what,
      "the plugin stops working when it expires: sign a longer-lived identity (tctl auth sign --ttl=2190h), or let tbot renew it and set teleport.refresh_identity = true",
    );
  } else {
    report.ok(what);
  }
  return creds;
}

/**
 * Connects as `start` does (`connectTeleport` with the loaded credentials: every connection
 * mode that fits, Ping, minimum version) and prints one line. Resolves with the connection
 * (the caller closes it), or undefined after a FAIL.
 */
export async function checkConnection(
  report: CheckReport,
  cfg: TeleportConfig,
  creds: CredentialsSource,
  opts: TeleportCheckOptions,
): Promise<TeleportConnection | undefined> {
  let conn: TeleportConnection;
  try {
    conn = await connectTeleport(cfg, {
      credentials: creds,
      signal: opts.signal,
      timeoutMs: opts.timeoutMs,
      log: opts.log,
      dialer: { env: opts.dialEnv },
    });
  } catch (err) {
    report.fail(`connection: ${errorMessage(err)}`, connectionFix(err));
    return undefined;
  }
  const { ping, client } = conn;
  report.ok(
    `connection: connected to ${JSON.stringify(cfg.addr)} (mode ${client.connectionMode}), ` +
      `cluster ${JSON.stringify(ping.clusterName)}, Teleport ${ping.serverVersion} ` +
      `(minimum ${MIN_SERVER_VERSION})`,
  );
  return conn;
}

function connectionFix(err: unknown): string {
  const hint = hintOf(err);
  if (err instanceof TeleportError && err.kind === "not_implemented") {
    return hint ?? `upgrade the Teleport Auth Service to ${MIN_SERVER_VERSION} or newer`;
  }
  const base =
    "check teleport.addr (the Auth Service, or the Proxy's web address such as teleport.example.com:443), the network path, and that the identity belongs to this cluster";
  return hint ? `${hint}; ${base}` : base;
}
