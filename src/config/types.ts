/**
 * The validated configuration, as `loadConfig()` returns it. TOML keys keep the Go plugin's
 * spelling; here they are camelCase. Every field is filled (defaults applied).
 */

/** Default configuration file path, as in the Go plugin. */
export const DEFAULT_CONFIG_PATH = "/etc/teleport-email.toml";

/** `[teleport]`: how to reach and authenticate to the Teleport Auth Service. */
export interface TeleportConfig {
  /** `addr` (or the deprecated `auth_server`); `localhost:3025` when both are empty. */
  addr: string;
  /** `identity`: path of an identity file (`tctl auth sign --format=file`, tbot); "" if unset. */
  identity: string;
  /** `refresh_identity`: re-read the identity file every `refreshIdentityIntervalMs`. */
  refreshIdentity: boolean;
  /** `refresh_identity_interval` in milliseconds; default 60 000. */
  refreshIdentityIntervalMs: number;
  /** `client_key`, `client_crt`, `root_cas`: the `--format=tls` triple; "" if unset. */
  clientKey: string;
  clientCrt: string;
  rootCas: string;
}

/** `[mailgun]`. */
export interface MailgunConfig {
  domain: string;
  /** The API key, read from `private_key` or `private_key_file`. Secret: never log it. */
  privateKey: string;
  /** `private_key_file` as configured ("" if the key was given inline). */
  privateKeyFile: string;
  /** API base URL without trailing slash, e.g. `https://api.mailgun.net/v3` or the EU one. */
  apiBase: string;
}

export type StartTlsPolicy = "mandatory" | "opportunistic" | "disabled";

/** `[smtp]`. */
export interface SmtpConfig {
  host: string;
  /** Default 587; 465 means implicit TLS (SMTPS). */
  port: number;
  username: string;
  /** Read from `password` or `password_file`. Secret: never log it. */
  password: string;
  passwordFile: string;
  starttlsPolicy: StartTlsPolicy;
  /** Extension: `ca_file`, PEM bundle of extra CAs trusted for the SMTP server's certificate. */
  caFile: string;
  /**
   * Extension: `local_name`, the EHLO name and Message-ID domain. Unset: the host's fully
   * qualified name, else the sender's domain (`mailers/local_name.ts`).
   */
  localName?: string;
}

/** `[delivery]`. */
export interface DeliveryConfig {
  /** `From:` address, possibly with a display name (`Teleport <noreply@example.com>`). */
  sender: string;
  /** Extension: also email the requester (when their user name is an email address). */
  notifyRequester: boolean;
}

export type LogSeverity = "debug" | "info" | "warn" | "error";

/** `[log]`. */
export interface LogConfig {
  /** `stderr`, `stdout`, or a file path. */
  output: "stderr" | "stdout" | string;
  severity: LogSeverity;
  format: "text" | "json";
}

export interface Config {
  /** Absolute path of the file this was loaded from. */
  path: string;
  teleport: TeleportConfig;
  /** Exactly one of `mailgun` and `smtp` is set. */
  mailgun?: MailgunConfig;
  smtp?: SmtpConfig;
  delivery: DeliveryConfig;
  /** `[role_to_recipients]`, always with a non-empty `"*"`. */
  roleToRecipients: Record<string, string[]>;
  log: LogConfig;
  /** Non-fatal findings (deprecated keys, unknown keys), to be logged once logging is set up. */
  warnings: string[];
}
