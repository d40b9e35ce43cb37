/**
 * The settings read from environment variables rather than the TOML file. Read once, by the CLI
 * at start-up: a reload (SIGHUP) re-reads the file, not the environment.
 *
 * - `TELEPORT_PLUGIN_FAIL_FAST` (the Go plugin's): exit instead of reconnecting when the watch
 *   stream is lost; parsed like Go's `strconv.ParseBool`.
 * - `TELEPORT_EMAIL_WATERMARK_MARGIN_MS`: the clock-skew margin of the watermark that decides
 *   which requests first seen already resolved are notified (default 120 000 ms, see
 *   `notify/watermark.ts`).
 * - `TELEPORT_EMAIL_HOSTNAME`: the host name written into request leases (default the
 *   system's; see `liveness.ts`), for tests and for containers whose host name is not the
 *   instance's identity.
 * - `RUNTIME_DIRECTORY` (systemd's `RuntimeDirectory=`, its first entry), else `TMPDIR`: where
 *   the liveness socket lives (default `/tmp`).
 *
 * Teleport dialing (the Go client's variables, same names and meaning; {@link readDialEnv}):
 * - `HTTPS_PROXY`/`https_proxy`, `HTTP_PROXY`/`http_proxy`, `NO_PROXY`/`no_proxy`: the HTTP
 *   CONNECT proxy for the outer TCP dial (Go's `httpproxy.FromEnvironment`);
 * - `TELEPORT_TLS_ROUTING_CONN_UPGRADE`: force or forbid the WebSocket connection upgrade;
 * - `TELEPORT_TUNNEL_PUBLIC_ADDR`: overrides the reverse tunnel address a Proxy advertises;
 * - `SSL_CERT_FILE`, `DENO_CERT`: roots that verify the Proxy's web certificate.
 * @module
 */
import { ConfigError } from "../errors.ts";

/** What the environment sets. */
export interface EnvSettings {
  failFast: boolean;
  /** Undefined: the handler's default (2 min). */
  watermarkMarginMs?: number;
  /** The Teleport dialers' variables ({@link DIAL_ENV_NAMES}); undefined: none set. */
  dial?: Env;
  /** Host name for request leases; undefined: the system's. */
  hostName?: string;
  /** Directory of the liveness socket; undefined: `/tmp`. */
  probeDir?: string;
}

export const FAIL_FAST_ENV = "TELEPORT_PLUGIN_FAIL_FAST";
export const WATERMARK_MARGIN_ENV = "TELEPORT_EMAIL_WATERMARK_MARGIN_MS";
export const HOSTNAME_ENV = "TELEPORT_EMAIL_HOSTNAME";
/** Where the liveness socket lives: the first of these that is set. */
export const PROBE_DIR_ENVS = ["RUNTIME_DIRECTORY", "TMPDIR"] as const;

const TRUE_VALUES = new Set(["1", "t", "T", "TRUE", "true", "True"]);
const FALSE_VALUES = new Set(["0", "f", "F", "FALSE", "false", "False"]);

/**
 * Parses `TELEPORT_PLUGIN_FAIL_FAST` like Go's `strconv.ParseBool` (unset or "" = false).
 * Throws {@link ConfigError} for anything else.
 */
export function parseFailFast(value: string | undefined): boolean {
  if (value === undefined || value === "") return false;
  if (TRUE_VALUES.has(value)) return true;
  if (FALSE_VALUES.has(value)) return false;
  throw new ConfigError(
    FAIL_FAST_ENV,
    `failed to parse content '${value}' of the ${FAIL_FAST_ENV} environment variable`,
    { hint: "use true or false" },
  );
}

/**
 * Parses {@link WATERMARK_MARGIN_ENV} (unset or "" = undefined, the default). Throws
 * {@link ConfigError} unless it is a non-negative integer.
 */
export function parseWatermarkMargin(value: string | undefined): number | undefined {
  if (value === undefined || value === "") return undefined;
  if (!/^[0-9]{1,12}$/.test(value)) {
    throw new ConfigError(
      WATERMARK_MARGIN_ENV,
      `Invalid ${WATERMARK_MARGIN_ENV} value "${value}"`,
      { hint: "use a number of milliseconds, e.g. 120000" },
    );
  }
  return Number(value);
}

/**
 * Reads and parses the plugin's variables and snapshots the dialers'; throws
 * {@link ConfigError} naming a bad one.
 */
export function readEnvSettings(
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
): EnvSettings {
  return {
    failFast: parseFailFast(env(FAIL_FAST_ENV)),
    watermarkMarginMs: parseWatermarkMargin(env(WATERMARK_MARGIN_ENV)),
    dial: readEnv(DIAL_ENV_NAMES, env),
    hostName: env(HOSTNAME_ENV) || undefined,
    probeDir: PROBE_DIR_ENVS.map((n) => env(n)?.split(":")[0]).find((d) => !!d),
  };
}

/** A snapshot of environment variables: name → value, `undefined` when unset. */
export type Env = Readonly<Record<string, string | undefined>>;

/** The variables the Teleport dialers read. */
export const DIAL_ENV_NAMES = [
  "HTTPS_PROXY",
  "https_proxy",
  "HTTP_PROXY",
  "http_proxy",
  "NO_PROXY",
  "no_proxy",
  "TELEPORT_TLS_ROUTING_CONN_UPGRADE",
  "TELEPORT_TUNNEL_PUBLIC_ADDR",
  "SSL_CERT_FILE",
  "DENO_CERT",
] as const;

/**
 * Reads `names` from `get` (default the process environment). A variable that cannot be read
 * (no `--allow-env` for it) counts as unset.
 */
export function readEnv(
  names: readonly string[],
  get: (name: string) => string | undefined = (name) => Deno.env.get(name),
): Env {
  const env: Record<string, string | undefined> = {};
  for (const name of names) {
    try {
      env[name] = get(name);
    } catch {
      env[name] = undefined;
    }
  }
  return env;
}

/** The Teleport dialers' variables ({@link DIAL_ENV_NAMES}) from the process environment. */
export function readDialEnv(): Env {
  return readEnv(DIAL_ENV_NAMES);
}
