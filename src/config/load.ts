/**
 * Loads and validates the TOML configuration file, with the Go plugin's keys, defaults, validation
 * order and error messages (see the README "Configuration" section).
 *
 * Every error is a {@link ConfigError} whose message is one line, starts with the file path and
 * names the TOML key: `/etc/teleport-email.toml: provide smtp.host to use SMTP`. Where the Go
 * plugin has a message, it appears verbatim after the path. No message ever contains a secret
 * (passwords, API keys) nor the content of a file.
 *
 * Validation order (the Go plugin's, then ours):
 * 1. file read, TOML syntax, value types (Go: go-toml decoding);
 * 2. `delivery.recipients` / `role_to_recipients` and their addresses;
 * 3. `[mailgun]` / `[smtp]` (plus: both present is an error);
 * 4. `delivery.sender` (ours: required and valid);
 * 5. `[log]` (Go: when the logger is set up);
 * 6. `[teleport]` (Go: the shared checks, then the credential files when connecting).
 */
import { isAbsolute, resolve } from "node:path";
import { parse, TomlDate, TomlError } from "smol-toml";
import { ConfigError } from "../errors.ts";
import { isBareEmailAddress, parseMailbox } from "../email_address.ts";
import { parseGoDuration } from "./duration.ts";
import type {
  Config,
  DeliveryConfig,
  LogConfig,
  LogSeverity,
  MailgunConfig,
  SmtpConfig,
  StartTlsPolicy,
  TeleportConfig,
} from "./types.ts";

/** Options of {@link loadConfig}. */
export interface LoadConfigOptions {
  /** Aborts reading the file and the files it names. */
  signal?: AbortSignal;
}

/** Default configuration file path, as in the Go plugin. */
export const DEFAULT_CONFIG_PATH = "/etc/teleport-email.toml";

/** `teleport.addr` when neither `addr` nor `auth_server` is set. */
export const DEFAULT_TELEPORT_ADDR = "localhost:3025";
/** Default `teleport.refresh_identity_interval`: 1 minute. */
export const DEFAULT_REFRESH_IDENTITY_INTERVAL_MS = 60_000;
/** Default `smtp.port`. */
export const DEFAULT_SMTP_PORT = 587;
/** Mailgun API bases for `mailgun.region`. */
export const MAILGUN_API_BASES: Readonly<Record<"us" | "eu", string>> = {
  us: "https://api.mailgun.net/v3",
  eu: "https://api.eu.mailgun.net/v3",
};
/** Only this many bytes of a password or key file are read, as in the Go plugin. */
export const SECRET_FILE_MAX_BYTES = 2000;

const KNOWN_KEYS: Record<string, readonly string[]> = {
  teleport: [
    "addr",
    "auth_server",
    "identity",
    "refresh_identity",
    "refresh_identity_interval",
    "client_key",
    "client_crt",
    "root_cas",
  ],
  mailgun: ["domain", "private_key", "private_key_file", "api_base", "region"],
  smtp: ["host", "port", "username", "password", "password_file", "starttls_policy", "ca_file"],
  delivery: ["sender", "recipients", "notify_requester"],
  log: ["output", "severity", "format"],
};

/**
 * go-toml v1 matches untagged struct fields by their Go name too (`Host` as well as `host`);
 * these are the Go plugin's untagged fields.
 */
const GO_FIELD_NAMES: Record<string, string> = {
  domain: "Domain",
  host: "Host",
  port: "Port",
  username: "Username",
  password: "Password",
  sender: "Sender",
  recipients: "Recipients",
};

const STARTTLS_POLICIES: Record<string, StartTlsPolicy> = {
  "": "mandatory",
  mandatory: "mandatory",
  opportunistic: "opportunistic",
  disabled: "disabled",
};

const SEVERITIES: Record<string, LogSeverity> = {
  "": "info",
  info: "info",
  debug: "debug",
  trace: "debug",
  warn: "warn",
  warning: "warn",
  error: "error",
  err: "error",
};

type Table = Record<string, unknown>;

/**
 * Reads, parses and validates the configuration file at `path`. Resolves with a fully populated
 * {@link Config} (defaults applied, secrets read from their files, `warnings` filled); rejects with
 * a {@link ConfigError} for the first problem found.
 */
export async function loadConfig(path: string, opts: LoadConfigOptions = {}): Promise<Config> {
  const { signal } = opts;
  signal?.throwIfAborted();
  const file = path;
  let text: string;
  try {
    text = await Deno.readTextFile(path, { signal });
  } catch (err) {
    if (signal?.aborted) throw err;
    throw new ConfigError("", `${show(file)}: cannot read the configuration file: ${reason(err)}`, {
      file,
      cause: err,
      hint: "write one with `teleport-email configure > teleport-email.toml`",
    });
  }

  let root: Table;
  try {
    root = parse(text, { integersAsBigInt: true }) as Table;
  } catch (err) {
    if (err instanceof TomlError) {
      const detail = err.message.split("\n")[0].replace(/^Invalid TOML document: /, "");
      throw new ConfigError(
        "",
        `${show(file)}:${err.line}:${err.column}: invalid TOML: ${detail}`,
        {
          file,
        },
      );
    }
    throw err;
  }

  const v = new Validator(file, signal);
  return await v.run(root, resolve(path));
}

/** What a failed file operation means to a user, without the path (callers add it). */
function reason(err: unknown): string {
  if (err instanceof Deno.errors.NotFound) return "file not found";
  if (err instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (err instanceof Deno.errors.IsADirectory) return "is a directory";
  if (err instanceof Deno.errors.NotCapable) return "not allowed (run with --allow-read)";
  if (err instanceof Error) return err.message.replace(/[\r\n]+/g, " ");
  return String(err);
}

/** A value echoed in a message, with control characters escaped so the message stays one line. */
function show(s: string): string {
  // deno-lint-ignore no-control-regex
  return s.replace(/[\u0000-\u001f\u007f]/g, (c) => JSON.stringify(c).slice(1, -1));
}

/** `"a string"`, `"an integer"`, … for type errors. Never shows the value itself. */
function describeType(value: unknown): string {
  if (typeof value === "string") return "a string";
  if (typeof value === "bigint") return "an integer";
  if (typeof value === "number") return "a float";
  if (typeof value === "boolean") return "a boolean";
  if (value instanceof TomlDate || value instanceof Date) return "a date-time";
  if (Array.isArray(value)) return "an array";
  return "a table";
}

/** The Go type go-toml decodes a TOML value to, for the reference's `unexpected type` messages. */
function goTypeName(value: unknown): string {
  if (typeof value === "bigint") return "int64";
  if (typeof value === "number") return "float64";
  if (typeof value === "boolean") return "bool";
  if (value instanceof TomlDate || value instanceof Date) return "time.Time";
  if (Array.isArray(value)) return "[]interface {}";
  if (typeof value === "string") return "string";
  return "*toml.Tree";
}

function isTable(value: unknown): value is Table {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !(value instanceof Date);
}

class Validator {
  readonly warnings: string[] = [];

  constructor(readonly file: string, readonly signal: AbortSignal | undefined) {}

  error(key: string, message: string, hint?: string): ConfigError {
    return new ConfigError(key, `${show(this.file)}: ${message}`, { file: this.file, hint });
  }

  // ---- decoding with type checks -------------------------------------------------------------

  section(root: Table, name: string): Table | undefined {
    const value = root[name];
    if (value === undefined) return undefined;
    if (!isTable(value)) {
      if (name === "role_to_recipients") {
        throw this.error(
          name,
          `invalid ${name}: unexpected type for recipients ${goTypeName(value)}: expected a table`,
        );
      }
      throw this.error(name, `invalid [${name}]: expected a table, got ${describeType(value)}`);
    }
    return value;
  }

  /** The raw value of `section.key`, also accepting the Go field name for untagged fields. */
  raw(t: Table | undefined, key: string): unknown {
    if (t === undefined) return undefined;
    if (t[key] !== undefined) return t[key];
    const goName = GO_FIELD_NAMES[key];
    return goName === undefined ? undefined : t[goName];
  }

  string(t: Table | undefined, section: string, key: string): string {
    const value = this.raw(t, key);
    if (value === undefined) return "";
    if (typeof value !== "string") {
      throw this.error(
        `${section}.${key}`,
        `invalid ${section}.${key}: expected a string, got ${describeType(value)}`,
      );
    }
    return value;
  }

  bool(t: Table | undefined, section: string, key: string): boolean {
    const value = this.raw(t, key);
    if (value === undefined) return false;
    if (typeof value !== "boolean") {
      throw this.error(
        `${section}.${key}`,
        `invalid ${section}.${key}: expected a boolean (true or false), got ${describeType(value)}`,
      );
    }
    return value;
  }

  integer(t: Table | undefined, section: string, key: string): bigint {
    const value = this.raw(t, key);
    if (value === undefined) return 0n;
    if (typeof value !== "bigint") {
      throw this.error(
        `${section}.${key}`,
        `invalid ${section}.${key}: expected an integer, got ${describeType(value)}`,
      );
    }
    return value;
  }

  /** `undefined` when absent (to tell `recipients = []` from no `recipients`). */
  stringArray(t: Table | undefined, section: string, key: string): string[] | undefined {
    const value = this.raw(t, key);
    if (value === undefined) return undefined;
    const k = `${section}.${key}`;
    if (!Array.isArray(value)) {
      throw this.error(
        k,
        `invalid ${k}: expected an array of strings, got ${describeType(value)}`,
      );
    }
    for (const item of value) {
      if (typeof item !== "string") {
        throw this.error(
          k,
          `invalid ${k}: expected an array of strings, got an array containing ${
            describeType(item)
          }`,
        );
      }
    }
    return value as string[];
  }

  warnUnknown(t: Table | undefined, section: string): void {
    if (t === undefined) return;
    const known = new Set(KNOWN_KEYS[section]);
    for (const key of Object.keys(t)) {
      if (known.has(key)) continue;
      const lower = Object.entries(GO_FIELD_NAMES).find(([, go]) => go === key)?.[0];
      if (lower !== undefined && known.has(lower) && t[lower] === undefined) continue;
      this.warnings.push(
        `unknown key "${show(section)}.${show(key)}" in ${show(this.file)} (ignored)`,
      );
    }
  }

  // ---- files --------------------------------------------------------------------------------

  /**
   * Go's `lib.ReadPassword`: the first 2000 bytes, trimmed. A missing file gives the Go message
   * `Error reading password from <path>`.
   */
  async readSecretFile(key: string, path: string): Promise<string> {
    let f: Deno.FsFile;
    try {
      f = await Deno.open(path, { read: true });
    } catch (err) {
      this.signal?.throwIfAborted();
      throw this.error(
        key,
        `cannot read ${key}: Error reading password from ${show(path)}: ${reason(err)}`,
      );
    }
    const buf = new Uint8Array(SECRET_FILE_MAX_BYTES + 1);
    let n = 0;
    try {
      while (n < buf.length) {
        this.signal?.throwIfAborted();
        const got = await f.read(buf.subarray(n));
        if (got === null) break;
        n += got;
      }
    } catch (err) {
      this.signal?.throwIfAborted();
      throw this.error(
        key,
        `cannot read ${key}: Error reading password from ${show(path)}: ${reason(err)}`,
      );
    } finally {
      f.close();
    }
    if (n > SECRET_FILE_MAX_BYTES) {
      n = SECRET_FILE_MAX_BYTES;
      this.warnings.push(
        `${key} "${
          show(path)
        }" is longer than ${SECRET_FILE_MAX_BYTES} bytes: only the first ${SECRET_FILE_MAX_BYTES} are used`,
      );
    }
    return new TextDecoder().decode(buf.subarray(0, n)).trim();
  }

  /** Checks that `path` (the value of `key`) is a readable regular file. */
  async checkReadable(key: string, path: string, hint?: string): Promise<void> {
    this.signal?.throwIfAborted();
    try {
      const st = await Deno.stat(path);
      if (st.isDirectory) throw new Deno.errors.IsADirectory();
      const f = await Deno.open(path, { read: true });
      f.close();
    } catch (err) {
      this.signal?.throwIfAborted();
      throw this.error(key, `cannot read ${key} "${show(path)}": ${reason(err)}`, hint);
    }
  }

  // ---- the whole file -----------------------------------------------------------------------

  async run(root: Table, absPath: string): Promise<Config> {
    // 1. Decode every known key with its type (go-toml's decoding step).
    const known = new Set([...Object.keys(KNOWN_KEYS), "role_to_recipients"]);
    for (const [name, value] of Object.entries(root)) {
      if (known.has(name)) continue;
      this.warnings.push(
        isTable(value)
          ? `unknown section [${show(name)}] in ${show(this.file)} (ignored)`
          : `unknown key "${show(name)}" in ${show(this.file)} (ignored)`,
      );
    }
    const tp = this.section(root, "teleport");
    const mg = this.section(root, "mailgun");
    const sm = this.section(root, "smtp");
    const dl = this.section(root, "delivery");
    const rt = this.section(root, "role_to_recipients");
    const lg = this.section(root, "log");
    for (
      const [name, t] of [["teleport", tp], ["mailgun", mg], ["smtp", sm], ["delivery", dl], [
        "log",
        lg,
      ]] as const
    ) {
      this.warnUnknown(t, name);
    }

    const teleport = this.decodeTeleport(tp);
    const mailgunRaw = mg === undefined ? undefined : {
      domain: this.string(mg, "mailgun", "domain"),
      privateKey: this.string(mg, "mailgun", "private_key"),
      privateKeyFile: this.string(mg, "mailgun", "private_key_file"),
      apiBase: this.string(mg, "mailgun", "api_base"),
      region: this.string(mg, "mailgun", "region"),
    };
    const smtpRaw = sm === undefined ? undefined : {
      host: this.string(sm, "smtp", "host"),
      port: this.integer(sm, "smtp", "port"),
      username: this.string(sm, "smtp", "username"),
      password: this.string(sm, "smtp", "password"),
      passwordFile: this.string(sm, "smtp", "password_file"),
      starttlsPolicy: this.string(sm, "smtp", "starttls_policy"),
      caFile: this.string(sm, "smtp", "ca_file"),
    };
    const sender = this.string(dl, "delivery", "sender");
    const recipients = this.stringArray(dl, "delivery", "recipients");
    const notifyRequester = this.bool(dl, "delivery", "notify_requester");
    const roleToRecipients = this.decodeRoleToRecipients(rt);
    const logRaw = {
      output: this.string(lg, "log", "output"),
      severity: this.string(lg, "log", "severity"),
      format: this.string(lg, "log", "format"),
    };

    // 2. Recipients (Go's CheckAndSetDefaults order).
    if (recipients !== undefined) {
      this.warnings.push(
        'The delivery.recipients config option is deprecated, set role_to_recipients["*"] instead for the same functionality',
      );
    }
    if (recipients !== undefined && recipients.length > 0) {
      if (Object.keys(roleToRecipients).length > 0) {
        throw this.error(
          "delivery.recipients",
          "provide either delivery.recipients or role_to_recipients, not both",
        );
      }
      roleToRecipients["*"] = [...recipients];
    }
    const roles = Object.keys(roleToRecipients).sort();
    if (roles.length === 0) {
      throw this.error("role_to_recipients", "missing required value role_to_recipients");
    }
    if (!roleToRecipients["*"] || roleToRecipients["*"].length === 0) {
      throw this.error('role_to_recipients."*"', "missing required value role_to_recipients[*]");
    }
    for (const role of roles) {
      for (const addr of roleToRecipients[role]) {
        if (!isBareEmailAddress(addr)) {
          throw this.error(
            `role_to_recipients.${role}`,
            `invalid email address ${show(addr)} in role_to_recipients.${show(role)}`,
            "use bare addresses such as ops@example.com, without display names or spaces",
          );
        }
      }
    }

    // 3. Mailers.
    if (mailgunRaw === undefined && smtpRaw === undefined) {
      throw this.error(
        "smtp",
        "provide either [mailgun] or [smtp] sections to work with plugin",
      );
    }
    if (mailgunRaw !== undefined && smtpRaw !== undefined) {
      throw this.error(
        "mailgun",
        "both [mailgun] and [smtp] sections are present: keep only one of them",
        "the Go plugin silently used [smtp]; delete or comment out the [mailgun] section to keep that behaviour",
      );
    }
    const mailgun = mailgunRaw && await this.validateMailgun(mailgunRaw);
    const smtp = smtpRaw && await this.validateSmtp(smtpRaw);

    // 4. Sender (ours: the Go plugin accepted anything and failed when sending).
    if (sender === "") {
      throw this.error(
        "delivery.sender",
        "missing required value delivery.sender",
        'set the From: address, e.g. sender = "Teleport <noreply@example.com>"',
      );
    }
    if (parseMailbox(sender) === undefined) {
      throw this.error(
        "delivery.sender",
        `invalid delivery.sender "${
          show(sender)
        }": expected an email address, optionally with a display name`,
        'e.g. sender = "noreply@example.com" or sender = "Teleport <noreply@example.com>"',
      );
    }
    const delivery: DeliveryConfig = { sender, notifyRequester };

    // 5. Log.
    const log = this.validateLog(logRaw);

    // 6. Teleport.
    await this.validateTeleport(teleport);

    const config: Config = {
      path: isAbsolute(absPath) ? absPath : resolve(absPath),
      teleport: teleport.config,
      delivery,
      roleToRecipients,
      log,
      warnings: this.warnings,
    };
    if (mailgun) config.mailgun = mailgun;
    if (smtp) config.smtp = smtp;
    return config;
  }

  decodeTeleport(tp: Table | undefined): { config: TeleportConfig; authServer: string } {
    const intervalKey = "teleport.refresh_identity_interval";
    const intervalRaw = this.raw(tp, "refresh_identity_interval");
    let intervalMs = 0;
    if (intervalRaw !== undefined) {
      if (typeof intervalRaw !== "string") {
        throw this.error(
          intervalKey,
          `invalid ${intervalKey}: expected a duration string, got ${describeType(intervalRaw)}`,
          'use Go duration syntax such as "30s", "5m" or "1h30m"',
        );
      }
      let ns: number;
      try {
        ns = parseGoDuration(intervalRaw);
      } catch (err) {
        throw this.error(
          intervalKey,
          `invalid ${intervalKey}: ${show((err as Error).message)}`,
          'use Go duration syntax such as "30s", "5m" or "1h30m"',
        );
      }
      if (ns < 0) {
        throw this.error(
          intervalKey,
          `invalid ${intervalKey} "${show(intervalRaw)}": must not be negative`,
        );
      }
      if (ns !== 0 && ns < 1e6) {
        throw this.error(
          intervalKey,
          `invalid ${intervalKey} "${show(intervalRaw)}": must be at least 1ms`,
        );
      }
      intervalMs = Math.round(ns / 1e6);
    }
    return {
      config: {
        addr: this.string(tp, "teleport", "addr"),
        identity: this.string(tp, "teleport", "identity"),
        refreshIdentity: this.bool(tp, "teleport", "refresh_identity"),
        refreshIdentityIntervalMs: intervalMs,
        clientKey: this.string(tp, "teleport", "client_key"),
        clientCrt: this.string(tp, "teleport", "client_crt"),
        rootCas: this.string(tp, "teleport", "root_cas"),
      },
      authServer: this.string(tp, "teleport", "auth_server"),
    };
  }

  decodeRoleToRecipients(rt: Table | undefined): Record<string, string[]> {
    // A null-prototype object: a role named "constructor" must not find Object's.
    const out: Record<string, string[]> = Object.create(null);
    if (rt === undefined) return out;
    for (const role of Object.keys(rt).sort()) {
      const value = rt[role];
      const key = `role_to_recipients.${role}`;
      if (typeof value === "string") {
        out[role] = [value];
      } else if (Array.isArray(value) && value.every((x) => typeof x === "string")) {
        out[role] = [...value];
      } else {
        const what = Array.isArray(value)
          ? `an array containing ${describeType(value.find((x) => typeof x !== "string"))}`
          : describeType(value);
        throw this.error(
          key,
          `invalid ${show(key)}: unexpected type for recipients value ${
            goTypeName(value)
          }: expected a string or an array of strings, got ${what}`,
        );
      }
    }
    return out;
  }

  async validateMailgun(raw: {
    domain: string;
    privateKey: string;
    privateKeyFile: string;
    apiBase: string;
    region: string;
  }): Promise<MailgunConfig> {
    let privateKey = raw.privateKey;
    if (privateKey === "" && raw.privateKeyFile === "") {
      throw this.error(
        "mailgun.private_key",
        "specify mailgun.private_key or mailgun.private_key_file",
      );
    }
    if (privateKey !== "" && raw.privateKeyFile !== "") {
      this.warnings.push(
        "mailgun.private_key_file is ignored because mailgun.private_key is set",
      );
    }
    if (privateKey === "") {
      privateKey = await this.readSecretFile("mailgun.private_key_file", raw.privateKeyFile);
      if (privateKey === "") {
        throw this.error(
          "mailgun.private_key_file",
          `provide mailgun.private_key or mailgun.private_key_file to use Mailgun and ensure that password file ${
            show(raw.privateKeyFile)
          } is not empty`,
        );
      }
    }
    if (raw.domain === "") {
      throw this.error("mailgun.domain", "provide mailgun.domain to use Mailgun");
    }
    let apiBase = MAILGUN_API_BASES.us;
    if (raw.apiBase !== "" && raw.region !== "") {
      throw this.error(
        "mailgun.api_base",
        "set either mailgun.api_base or mailgun.region, not both",
      );
    }
    if (raw.region !== "") {
      const region = raw.region.toLowerCase();
      if (region !== "us" && region !== "eu") {
        throw this.error(
          "mailgun.region",
          `invalid mailgun.region "${show(raw.region)}": expected "us" or "eu"`,
        );
      }
      apiBase = MAILGUN_API_BASES[region];
    }
    if (raw.apiBase !== "") {
      let url: URL | undefined;
      try {
        url = new URL(raw.apiBase);
      } catch {
        url = undefined;
      }
      if (
        url === undefined || (url.protocol !== "https:" && url.protocol !== "http:") ||
        url.username !== "" || url.password !== "" || url.search !== "" || url.hash !== ""
      ) {
        throw this.error(
          "mailgun.api_base",
          "invalid mailgun.api_base: expected an http(s) URL without credentials, query or fragment",
          'e.g. api_base = "https://api.eu.mailgun.net/v3"',
        );
      }
      apiBase = url.href.replace(/\/+$/, "");
    }
    return { domain: raw.domain, privateKey, privateKeyFile: raw.privateKeyFile, apiBase };
  }

  async validateSmtp(raw: {
    host: string;
    port: bigint;
    username: string;
    password: string;
    passwordFile: string;
    starttlsPolicy: string;
    caFile: string;
  }): Promise<SmtpConfig> {
    if (raw.host === "") throw this.error("smtp.host", "provide smtp.host to use SMTP");
    let port = raw.port;
    if (port === 0n) port = BigInt(DEFAULT_SMTP_PORT);
    if (port < 1n || port > 65535n) {
      throw this.error(
        "smtp.port",
        `invalid smtp.port ${port}: expected a port number from 1 to 65535`,
      );
    }
    if (raw.username === "") {
      throw this.error("smtp.username", "provide smtp.username to use SMTP");
    }
    let password = raw.password;
    if (password === "" && raw.passwordFile === "") {
      throw this.error("smtp.password", "specify smtp.password or smtp.password_file");
    }
    if (password !== "" && raw.passwordFile !== "") {
      this.warnings.push("smtp.password_file is ignored because smtp.password is set");
    }
    if (password === "") {
      password = await this.readSecretFile("smtp.password_file", raw.passwordFile);
      if (password === "") {
        throw this.error(
          "smtp.password_file",
          `provide smtp.password or smtp.password_file and ensure that password file ${
            show(raw.passwordFile)
          } is not empty`,
        );
      }
    }
    const policy = Object.hasOwn(STARTTLS_POLICIES, raw.starttlsPolicy)
      ? STARTTLS_POLICIES[raw.starttlsPolicy]
      : undefined;
    if (policy === undefined) {
      throw this.error(
        "smtp.starttls_policy",
        `invalid smtp.starttls_policy: unsupported starttls_policy "${
          show(raw.starttlsPolicy)
        }" - provide one of mandatory, opportunistic, disabled or leave empty to default to mandatory`,
      );
    }
    if (raw.caFile !== "") {
      await this.checkReadable("smtp.ca_file", raw.caFile);
      const pem = await Deno.readTextFile(raw.caFile, { signal: this.signal });
      if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
        throw this.error(
          "smtp.ca_file",
          `invalid smtp.ca_file "${show(raw.caFile)}": no PEM certificate found`,
        );
      }
    }
    return {
      host: raw.host,
      port: Number(port),
      username: raw.username,
      password,
      passwordFile: raw.passwordFile,
      starttlsPolicy: policy,
      caFile: raw.caFile,
    };
  }

  validateLog(raw: { output: string; severity: string; format: string }): LogConfig {
    let output: string = raw.output;
    switch (output.toLowerCase()) {
      case "":
      case "stderr":
      case "error":
      case "2":
        output = "stderr";
        break;
      case "stdout":
      case "out":
      case "1":
        output = "stdout";
        break;
      case "syslog":
        this.warnings.push(
          'log.output "syslog" is not supported: logging to stderr instead (journald and container runtimes collect it)',
        );
        output = "stderr";
        break;
    }
    const sevKey = raw.severity.toLowerCase();
    const severity = Object.hasOwn(SEVERITIES, sevKey) ? SEVERITIES[sevKey] : undefined;
    if (severity === undefined) {
      throw this.error(
        "log.severity",
        `invalid log.severity: unsupported logger severity: "${show(raw.severity)}"`,
        "use debug, info, warn or error",
      );
    }
    const fmt = raw.format.toLowerCase();
    if (fmt !== "" && fmt !== "text" && fmt !== "json") {
      throw this.error(
        "log.format",
        `invalid log.format: unsupported log output format : "${show(raw.format)}"`,
        "use text or json",
      );
    }
    return { output, severity, format: fmt === "json" ? "json" : "text" };
  }

  async validateTeleport(t: { config: TeleportConfig; authServer: string }): Promise<void> {
    const c = t.config;
    if (c.addr === "" && t.authServer === "") {
      c.addr = DEFAULT_TELEPORT_ADDR;
    } else if (c.addr === "") {
      c.addr = t.authServer;
      this.warnings.push(
        "Configuration setting `auth_server` is deprecated, consider to change it to `addr`",
      );
    } else if (t.authServer !== "") {
      this.warnings.push(
        "Configuration setting `auth_server` is deprecated, consider to change it to `addr` (ignored because teleport.addr is set)",
      );
    }

    const triple: [string, string][] = [
      ["client_crt", c.clientCrt],
      ["client_key", c.clientKey],
      ["root_cas", c.rootCas],
    ];
    const provided = triple.filter(([, v]) => v !== "").map(([k]) => `\`${k}\``);
    const missing = triple.filter(([, v]) => v === "").map(([k]) => `\`${k}\``);
    if (provided.length > 0 && provided.length < 3) {
      throw this.error(
        `teleport.${triple.find(([, v]) => v === "")![0]}`,
        `invalid [teleport]: configuration setting(s) ${
          provided.join(", ")
        } are provided but setting(s) ${missing.join(", ")} are missing`,
      );
    }
    if (c.identity !== "" && provided.length > 0) {
      throw this.error(
        "teleport.identity",
        "invalid [teleport]: configuration setting `identity` is mutually exclusive with all the `client_crt`, `client_key` and `root_cas` settings",
      );
    }
    if (c.refreshIdentityIntervalMs === 0) {
      c.refreshIdentityIntervalMs = DEFAULT_REFRESH_IDENTITY_INTERVAL_MS;
    }
    if (c.refreshIdentity && c.identity === "") {
      throw this.error(
        "teleport.refresh_identity",
        "invalid [teleport]: `refresh_identity` requires that `identity` be set",
      );
    }
    if (c.identity === "" && provided.length === 0) {
      throw this.error(
        "teleport.identity",
        "invalid [teleport]: no credentials configured",
        "set teleport.identity, or all of teleport.client_key, teleport.client_crt and teleport.root_cas",
      );
    }
    if (c.identity !== "") {
      await this.checkReadable(
        "teleport.identity",
        c.identity,
        "create it with `tctl auth sign --format=file` or Machine ID (tbot)",
      );
    } else {
      const hint = "create them with `tctl auth sign --format=tls`";
      await this.checkReadable("teleport.client_key", c.clientKey, hint);
      await this.checkReadable("teleport.client_crt", c.clientCrt, hint);
      await this.checkReadable("teleport.root_cas", c.rootCas, hint);
    }
  }
}
