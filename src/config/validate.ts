/**
 * Steps 2–6 of loading: defaults and the rules between keys, in the Go plugin's order, then ours:
 * 2. `delivery.recipients` / `role_to_recipients` and their addresses;
 * 3. `[mailgun]` / `[smtp]` (plus: both present is an error);
 * 4. `delivery.sender` (ours: required and valid);
 * 5. `[log]` (Go: when the logger is set up);
 * 6. `[teleport]` (Go: the shared checks, then the credential files when connecting).
 */
import { isBareEmailAddress, parseMailbox } from "../email_address.ts";
import type { RawConfig, RawLog, RawMailgun, RawSmtp, RawTeleport } from "./decode.ts";
import { type LoadContext, show } from "./context.ts";
import { applyLegacyRecipients, resolveTeleportAddr } from "./legacy.ts";
import { checkReadable, readSecretFile } from "./secrets.ts";
import type {
  Config,
  LogConfig,
  LogSeverity,
  MailgunConfig,
  SmtpConfig,
  StartTlsPolicy,
} from "./types.ts";

/** Default `teleport.refresh_identity_interval`: 1 minute. */
export const DEFAULT_REFRESH_IDENTITY_INTERVAL_MS = 60_000;
/** Default `smtp.port`. */
export const DEFAULT_SMTP_PORT = 587;
/** Mailgun API bases for `mailgun.region`. */
export const MAILGUN_API_BASES: Readonly<Record<"us" | "eu", string>> = {
  us: "https://api.mailgun.net/v3",
  eu: "https://api.eu.mailgun.net/v3",
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

/** Validates `raw` in the order above; `path` is the file's absolute path. */
export async function validateConfig(
  ctx: LoadContext,
  raw: RawConfig,
  path: string,
): Promise<Config> {
  const roleToRecipients = raw.roleToRecipients;
  validateRecipients(ctx, raw.recipients, roleToRecipients);
  if (raw.mailgun === undefined && raw.smtp === undefined) {
    throw ctx.error("smtp", "provide either [mailgun] or [smtp] sections to work with plugin");
  }
  if (raw.mailgun !== undefined && raw.smtp !== undefined) {
    throw ctx.error(
      "mailgun",
      "both [mailgun] and [smtp] sections are present: keep only one of them",
      "the Go plugin silently used [smtp]; delete or comment out the [mailgun] section to keep that behaviour",
    );
  }
  const mailgun = raw.mailgun && await validateMailgun(ctx, raw.mailgun);
  const smtp = raw.smtp && await validateSmtp(ctx, raw.smtp);
  validateSender(ctx, raw.sender);
  const log = validateLog(ctx, raw.log);
  await validateTeleport(ctx, raw.teleport);

  const config: Config = {
    path,
    teleport: raw.teleport.config,
    delivery: { sender: raw.sender, notifyRequester: raw.notifyRequester },
    roleToRecipients,
    log,
    warnings: ctx.warnings,
  };
  if (mailgun) config.mailgun = mailgun;
  if (smtp) config.smtp = smtp;
  return config;
}

/** Go's `CheckAndSetDefaults` for recipients; fills `roleToRecipients["*"]` from the legacy key. */
function validateRecipients(
  ctx: LoadContext,
  recipients: string[] | undefined,
  roleToRecipients: Record<string, string[]>,
): void {
  applyLegacyRecipients(ctx, recipients, roleToRecipients);
  const roles = Object.keys(roleToRecipients).sort();
  if (roles.length === 0) {
    throw ctx.error("role_to_recipients", "missing required value role_to_recipients");
  }
  if (!roleToRecipients["*"] || roleToRecipients["*"].length === 0) {
    throw ctx.error('role_to_recipients."*"', "missing required value role_to_recipients[*]");
  }
  for (const role of roles) {
    for (const addr of roleToRecipients[role]) {
      if (!isBareEmailAddress(addr)) {
        throw ctx.error(
          `role_to_recipients.${role}`,
          `invalid email address ${show(addr)} in role_to_recipients.${show(role)}`,
          "use bare addresses such as ops@example.com, without display names or spaces",
        );
      }
    }
  }
}

/** Ours: the Go plugin accepted any sender and failed when sending. */
function validateSender(ctx: LoadContext, sender: string): void {
  if (sender === "") {
    throw ctx.error(
      "delivery.sender",
      "missing required value delivery.sender",
      'set the From: address, e.g. sender = "Teleport <noreply@example.com>"',
    );
  }
  if (parseMailbox(sender) === undefined) {
    throw ctx.error(
      "delivery.sender",
      `invalid delivery.sender "${
        show(sender)
      }": expected an email address, optionally with a display name`,
      'e.g. sender = "noreply@example.com" or sender = "Teleport <noreply@example.com>"',
    );
  }
}

/**
 * The secret `key` (`mailgun.private_key`, `smtp.password`): its inline value, else the contents
 * of the file `<key>_file` names, in the Go plugin's words: neither set is an error, both set a
 * warning (the inline value wins), an empty file an error (`use`: what the secret is for).
 */
async function inlineOrFileSecret(
  ctx: LoadContext,
  secret: { key: string; value: string; file: string },
  use: string,
): Promise<string> {
  const { key, value, file } = secret;
  const fileKey = `${key}_file`;
  if (value === "" && file === "") throw ctx.error(key, `specify ${key} or ${fileKey}`);
  if (value !== "") {
    if (file !== "") ctx.warn(`${fileKey} is ignored because ${key} is set`);
    return value;
  }
  const contents = await readSecretFile(ctx, fileKey, file);
  if (contents === "") {
    throw ctx.error(
      fileKey,
      `provide ${key} or ${fileKey}${use} and ensure that password file ${show(file)} is not empty`,
    );
  }
  return contents;
}

async function validateMailgun(ctx: LoadContext, raw: RawMailgun): Promise<MailgunConfig> {
  const privateKey = await inlineOrFileSecret(
    ctx,
    { key: "mailgun.private_key", value: raw.privateKey, file: raw.privateKeyFile },
    " to use Mailgun",
  );
  if (raw.domain === "") {
    throw ctx.error("mailgun.domain", "provide mailgun.domain to use Mailgun");
  }
  const apiBase = mailgunApiBase(ctx, raw);
  return { domain: raw.domain, privateKey, privateKeyFile: raw.privateKeyFile, apiBase };
}

/** `mailgun.api_base` or the base of `mailgun.region` (default `us`), without trailing slash. */
function mailgunApiBase(ctx: LoadContext, raw: RawMailgun): string {
  let apiBase = MAILGUN_API_BASES.us;
  if (raw.apiBase !== "" && raw.region !== "") {
    throw ctx.error("mailgun.api_base", "set either mailgun.api_base or mailgun.region, not both");
  }
  if (raw.region !== "") {
    const region = raw.region.toLowerCase();
    if (region !== "us" && region !== "eu") {
      throw ctx.error(
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
      throw ctx.error(
        "mailgun.api_base",
        "invalid mailgun.api_base: expected an http(s) URL without credentials, query or fragment",
        'e.g. api_base = "https://api.eu.mailgun.net/v3"',
      );
    }
    apiBase = url.href.replace(/\/+$/, "");
  }
  return apiBase;
}

async function validateSmtp(ctx: LoadContext, raw: RawSmtp): Promise<SmtpConfig> {
  if (raw.host === "") throw ctx.error("smtp.host", "provide smtp.host to use SMTP");
  let port = raw.port;
  if (port === 0n) port = BigInt(DEFAULT_SMTP_PORT);
  if (port < 1n || port > 65535n) {
    throw ctx.error(
      "smtp.port",
      `invalid smtp.port ${port}: expected a port number from 1 to 65535`,
    );
  }
  if (raw.username === "") {
    throw ctx.error("smtp.username", "provide smtp.username to use SMTP");
  }
  const password = await inlineOrFileSecret(
    ctx,
    { key: "smtp.password", value: raw.password, file: raw.passwordFile },
    "",
  );
  const policy = Object.hasOwn(STARTTLS_POLICIES, raw.starttlsPolicy)
    ? STARTTLS_POLICIES[raw.starttlsPolicy]
    : undefined;
  if (policy === undefined) {
    throw ctx.error(
      "smtp.starttls_policy",
      `invalid smtp.starttls_policy: unsupported starttls_policy "${
        show(raw.starttlsPolicy)
      }" - provide one of mandatory, opportunistic, disabled or leave empty to default to mandatory`,
    );
  }
  if (raw.caFile !== "") await checkPemFile(ctx, "smtp.ca_file", raw.caFile);
  if (raw.localName !== "" && !isHostName(raw.localName)) {
    throw ctx.error(
      "smtp.local_name",
      `invalid smtp.local_name "${
        show(raw.localName)
      }": expected a host name such as "mail.example.com" (letters, digits, "-" and ".")`,
    );
  }
  return {
    host: raw.host,
    port: Number(port),
    username: raw.username,
    password,
    passwordFile: raw.passwordFile,
    starttlsPolicy: policy,
    caFile: raw.caFile,
    ...(raw.localName !== "" ? { localName: raw.localName } : {}),
  };
}

/** A DNS host name: dot-separated labels of letters, digits and inner hyphens, ≤ 253 chars. */
function isHostName(name: string): boolean {
  const label = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
  return name.length <= 253 && name.split(".").every((l) => label.test(l));
}

/** `path` (the value of `key`) is readable and holds at least one PEM certificate. */
async function checkPemFile(ctx: LoadContext, key: string, path: string): Promise<void> {
  await checkReadable(ctx, key, path);
  const pem = await Deno.readTextFile(path, { signal: ctx.signal });
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
    throw ctx.error(key, `invalid ${key} "${show(path)}": no PEM certificate found`);
  }
}

function validateLog(ctx: LoadContext, raw: RawLog): LogConfig {
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
      ctx.warn(
        'log.output "syslog" is not supported: logging to stderr instead (journald and container runtimes collect it)',
      );
      output = "stderr";
      break;
  }
  const sevKey = raw.severity.toLowerCase();
  const severity = Object.hasOwn(SEVERITIES, sevKey) ? SEVERITIES[sevKey] : undefined;
  if (severity === undefined) {
    throw ctx.error(
      "log.severity",
      `invalid log.severity: unsupported logger severity: "${show(raw.severity)}"`,
      "use debug, info, warn or error",
    );
  }
  const fmt = raw.format.toLowerCase();
  if (fmt !== "" && fmt !== "text" && fmt !== "json") {
    throw ctx.error(
      "log.format",
      `invalid log.format: unsupported log output format : "${show(raw.format)}"`,
      "use text or json",
    );
  }
  return { output, severity, format: fmt === "json" ? "json" : "text" };
}

/** Fills `t.config.addr` and the refresh interval default; checks the credential settings. */
async function validateTeleport(ctx: LoadContext, t: RawTeleport): Promise<void> {
  const c = t.config;
  c.addr = resolveTeleportAddr(ctx, c.addr, t.authServer);
  const triple: [string, string][] = [
    ["client_crt", c.clientCrt],
    ["client_key", c.clientKey],
    ["root_cas", c.rootCas],
  ];
  const provided = triple.filter(([, v]) => v !== "").map(([k]) => `\`${k}\``);
  const missing = triple.filter(([, v]) => v === "").map(([k]) => `\`${k}\``);
  if (provided.length > 0 && provided.length < 3) {
    throw ctx.error(
      `teleport.${triple.find(([, v]) => v === "")![0]}`,
      `invalid [teleport]: configuration setting(s) ${
        provided.join(", ")
      } are provided but setting(s) ${missing.join(", ")} are missing`,
    );
  }
  if (c.identity !== "" && provided.length > 0) {
    throw ctx.error(
      "teleport.identity",
      "invalid [teleport]: configuration setting `identity` is mutually exclusive with all the `client_crt`, `client_key` and `root_cas` settings",
    );
  }
  if (c.refreshIdentityIntervalMs === 0) {
    c.refreshIdentityIntervalMs = DEFAULT_REFRESH_IDENTITY_INTERVAL_MS;
  }
  if (c.refreshIdentity && c.identity === "") {
    throw ctx.error(
      "teleport.refresh_identity",
      "invalid [teleport]: `refresh_identity` requires that `identity` be set",
    );
  }
  if (c.identity === "" && provided.length === 0) {
    throw ctx.error(
      "teleport.identity",
      "invalid [teleport]: no credentials configured",
      "set teleport.identity, or all of teleport.client_key, teleport.client_crt and teleport.root_cas",
    );
  }
  if (c.identity !== "") {
    await checkReadable(
      ctx,
      "teleport.identity",
      c.identity,
      "create it with `tctl auth sign --format=file` or Machine ID (tbot)",
    );
  } else {
    const hint = "create them with `tctl auth sign --format=tls`";
    await checkReadable(ctx, "teleport.client_key", c.clientKey, hint);
    await checkReadable(ctx, "teleport.client_crt", c.clientCrt, hint);
    await checkReadable(ctx, "teleport.root_cas", c.rootCas, hint);
  }
}
