/**
 * Start-up connection to Teleport, as the Go plugin's `init()`: credentials → dialer → gRPC
 * client → `Ping` → minimum server version check, all bounded by one timeout (10 s).
 */
import type { TeleportConfig } from "../config/types.ts";
import { readDialEnv } from "../config/env.ts";
import { errorMessage, TeleportError } from "../errors.ts";
import type { TeleportClient } from "./client.ts";
import { createCredentials, type CredentialsSource, type Log } from "./credentials.ts";
import { type AuthDialer, resolveAuthDialer, type ResolveAuthDialerOptions } from "./dial.ts";
import { type AuthDialerLike, GrpcTeleportClient } from "./grpc_client.ts";
import type { PingResult } from "./types.ts";

/** The oldest Auth server the plugin supports (Go: `minServerVersion`). */
export const MIN_SERVER_VERSION = "6.1.0-beta.1";

/** A parsed semantic version (semver 2.0; build metadata ignored). */
export interface SemVer {
  major: number;
  minor: number;
  patch: number;
  prerelease: string[];
}

const SEMVER_RE =
  /^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$/;

/** Parses `1.2.3`, `1.2.3-beta.1`, `v1.2.3+build`; undefined when not a semantic version. */
export function parseSemVer(v: string): SemVer | undefined {
  const m = SEMVER_RE.exec(v.trim());
  if (!m) return undefined;
  return {
    major: Number(m[1]),
    minor: Number(m[2]),
    patch: Number(m[3]),
    prerelease: m[4] ? m[4].split(".") : [],
  };
}

function compareIdentifiers(a: string, b: string): number {
  const na = /^\d+$/.test(a), nb = /^\d+$/.test(b);
  if (na && nb) return Math.sign(Number(a) - Number(b));
  if (na) return -1; // numeric identifiers have lower precedence
  if (nb) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Semver precedence: negative if a < b, 0 if equal, positive if a > b. */
export function compareSemVer(a: SemVer, b: SemVer): number {
  for (const k of ["major", "minor", "patch"] as const) {
    if (a[k] !== b[k]) return Math.sign(a[k] - b[k]);
  }
  if (a.prerelease.length === 0 || b.prerelease.length === 0) {
    // A release is newer than any of its pre-releases.
    return (b.prerelease.length === 0 ? 0 : 1) - (a.prerelease.length === 0 ? 0 : 1);
  }
  const n = Math.min(a.prerelease.length, b.prerelease.length);
  for (let i = 0; i < n; i++) {
    const c = compareIdentifiers(a.prerelease[i], b.prerelease[i]);
    if (c !== 0) return c;
  }
  return Math.sign(a.prerelease.length - b.prerelease.length);
}

/**
 * Throws unless `serverVersion` is at least {@link MIN_SERVER_VERSION}: `incompatible versions:
 * <server> < 6.1.0-beta.1` (the Go plugin's message), or `invalid server version "<v>"`.
 */
export function assertServerVersion(serverVersion: string, min = MIN_SERVER_VERSION): void {
  const actual = parseSemVer(serverVersion);
  if (!actual) {
    throw new TeleportError("bad_parameter", `Invalid Teleport server version "${serverVersion}"`);
  }
  if (compareSemVer(actual, parseSemVer(min)!) < 0) {
    throw new TeleportError("not_implemented", `incompatible versions: ${serverVersion} < ${min}`, {
      hint: `upgrade the Teleport Auth Service to ${min} or newer`,
    });
  }
}

/** Options of {@link connectTeleport} and {@link connectWithDialer}. */
export interface ConnectOptions {
  signal?: AbortSignal;
  log?: Log;
  /** Bound on the whole start-up (credentials, dial, Ping) in ms; default 10 000. */
  timeoutMs?: number;
  /** Deadline of each later unary call in ms; default 10 000. */
  callTimeoutMs?: number;
}

/** Options of {@link connectTeleport}. */
export interface ConnectTeleportOptions extends ConnectOptions {
  /**
   * Passed to `resolveAuthDialer` (e.g. `tunnelDialer`, `env`, `modes`, `dialTimeoutMs`). Without
   * `env`, the dialing variables are read once from the process (`readDialEnv()`).
   */
  dialer?: Omit<ResolveAuthDialerOptions, "signal" | "log" | "timeoutMs">;
  /**
   * Credentials already loaded with `createCredentials` (`check` shows them first); default:
   * load them from `cfg`. Given ones stay open on close: the caller closes them.
   */
  credentials?: CredentialsSource;
}

/** A connected, version-checked Teleport client. */
export interface TeleportConnection {
  client: TeleportClient;
  ping: PingResult;
  /** When the identity in use expires (it changes when the identity file is refreshed). */
  identityExpiry?: () => Date;
  /** The credentials new connections use (a reload re-reads them). */
  credentials?: CredentialsSource;
  /** Closes the client and stops the credentials refresh. */
  close(): void;
}

function withTimeout(
  signal: AbortSignal | undefined,
  ms: number,
): { signal: AbortSignal; done(): void; timedOut(): boolean } {
  const ac = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    ac.abort(
      new TeleportError("deadline_exceeded", `Connecting to Teleport timed out after ${ms} ms`),
    );
  }, ms);
  const onAbort = () => ac.abort(signal?.reason);
  if (signal?.aborted) onAbort();
  else signal?.addEventListener("abort", onAbort, { once: true });
  return {
    signal: ac.signal,
    done: () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
    },
    timedOut: () => timedOut,
  };
}

/**
 * Builds a {@link GrpcTeleportClient} over `dialer`, pings, and checks the server version.
 * On failure the client is closed and a {@link TeleportError} is thrown: for an UNIMPLEMENTED
 * Ping `server version must be at least 6.1.0-beta.1`.
 */
export async function connectWithDialer(
  dialer: AuthDialerLike,
  opts: ConnectOptions = {},
): Promise<{ client: GrpcTeleportClient; ping: PingResult }> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const client = await GrpcTeleportClient.create(dialer, {
    callTimeoutMs: opts.callTimeoutMs ?? 10_000,
    log: opts.log,
    signal: opts.signal,
  });
  const t = withTimeout(opts.signal, timeoutMs);
  try {
    let ping: PingResult;
    try {
      ping = await client.ping({ signal: t.signal });
    } catch (err) {
      if (t.timedOut()) throw t.signal.reason;
      if (err instanceof TeleportError && err.kind === "not_implemented") {
        throw new TeleportError(
          "not_implemented",
          `server version must be at least ${MIN_SERVER_VERSION}`,
          { cause: err, grpcCode: err.grpcCode },
        );
      }
      opts.log?.error("Unable to get Teleport server version", {
        error: errorMessage(err),
      });
      throw err;
    }
    assertServerVersion(ping.serverVersion);
    return { client, ping };
  } catch (err) {
    client.close();
    throw err;
  } finally {
    t.done();
  }
}

/**
 * Connects to Teleport as `[teleport]` says: loads the credentials (`createCredentials`,
 * with `refresh_identity`), picks the connection mode (`resolveAuthDialer`), then
 * {@link connectWithDialer}. The whole start-up is bounded by `timeoutMs` (default 10 s).
 */
export async function connectTeleport(
  cfg: TeleportConfig,
  opts: ConnectTeleportOptions = {},
): Promise<TeleportConnection> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const deadline = Date.now() + timeoutMs;
  const t = withTimeout(opts.signal, timeoutMs);
  let creds: CredentialsSource | undefined;
  let dialer: AuthDialer | undefined;
  try {
    creds = opts.credentials ??
      await createCredentials(cfg, { signal: opts.signal, log: opts.log });
    dialer = await resolveAuthDialer(cfg.addr, creds, {
      ...opts.dialer,
      env: opts.dialer?.env ?? readDialEnv(),
      signal: t.signal,
      log: opts.log,
      timeoutMs: Math.max(1, deadline - Date.now()),
    });
    const { client, ping } = await connectWithDialer(dialer, {
      log: opts.log,
      callTimeoutMs: opts.callTimeoutMs,
      signal: t.signal,
      timeoutMs: Math.max(1, deadline - Date.now()),
    });
    const c = creds;
    const d = dialer;
    return {
      client,
      ping,
      identityExpiry: () => c.current().notAfter,
      credentials: c,
      close() {
        client.close();
        // A tunnel-mode dialer keeps its SSH connection open until closed.
        d.close?.();
        if (!opts.credentials) c.close();
      },
    };
  } catch (err) {
    dialer?.close?.();
    if (!opts.credentials) creds?.close();
    if (t.timedOut()) throw t.signal.reason;
    throw err;
  } finally {
    t.done();
  }
}
