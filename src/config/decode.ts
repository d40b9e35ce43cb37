/**
 * Step 1 of loading (go-toml's decoding step): every known key of the parsed TOML document is read
 * with its type checked, unknown keys and sections become warnings, and the result is a
 * {@link RawConfig} of plain values for `validate.ts`. No defaults and no cross-key rules here.
 */
import { TomlDate } from "smol-toml";
import type { TeleportConfig } from "./types.ts";
import { type LoadContext, show } from "./context.ts";
import { parseGoDuration } from "./duration.ts";
import { GO_FIELD_NAMES } from "./legacy.ts";

/** A TOML table as smol-toml returns it (integers as bigint). */
export type Table = Record<string, unknown>;

/** `[teleport]` as decoded; `auth_server` is resolved into `addr` by validation. */
export interface RawTeleport {
  config: TeleportConfig;
  authServer: string;
}

export interface RawMailgun {
  domain: string;
  privateKey: string;
  privateKeyFile: string;
  apiBase: string;
  region: string;
}

export interface RawSmtp {
  host: string;
  port: bigint;
  username: string;
  password: string;
  passwordFile: string;
  starttlsPolicy: string;
  caFile: string;
  localName: string;
}

export interface RawLog {
  output: string;
  severity: string;
  format: string;
}

/** Every key of the file, type-checked, before defaults and validation. */
export interface RawConfig {
  teleport: RawTeleport;
  mailgun?: RawMailgun;
  smtp?: RawSmtp;
  sender: string;
  /** `delivery.recipients`; `undefined` when absent (to tell `recipients = []` from none). */
  recipients?: string[];
  notifyRequester: boolean;
  roleToRecipients: Record<string, string[]>;
  log: RawLog;
}

/** The keys of each section (`role_to_recipients` takes any); others are warned about and ignored. */
export const KNOWN_KEYS: Record<string, readonly string[]> = {
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
  smtp: [
    "host",
    "port",
    "username",
    "password",
    "password_file",
    "starttls_policy",
    "ca_file",
    "local_name",
  ],
  delivery: ["sender", "recipients", "notify_requester"],
  log: ["output", "severity", "format"],
};

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

/** The Go type go-toml decodes a TOML value to, for the Go plugin's `unexpected type` messages. */
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

/** Decodes the parsed document `root`; throws a `ConfigError` for the first type error. */
export function decodeConfig(ctx: LoadContext, root: Table): RawConfig {
  const d = new Decoder(ctx);
  d.warnUnknownSections(root);
  const tp = d.section(root, "teleport");
  const mg = d.section(root, "mailgun");
  const sm = d.section(root, "smtp");
  const dl = d.section(root, "delivery");
  const rt = d.section(root, "role_to_recipients");
  const lg = d.section(root, "log");
  const named = [["teleport", tp], ["mailgun", mg], ["smtp", sm], ["delivery", dl], ["log", lg]];
  for (const [name, t] of named as [string, Table | undefined][]) d.warnUnknown(t, name);

  const teleport = d.teleport(tp);
  const mailgun = mg === undefined ? undefined : d.mailgun(mg);
  const smtp = sm === undefined ? undefined : d.smtp(sm);
  const sender = d.string(dl, "delivery", "sender");
  const recipients = d.stringArray(dl, "delivery", "recipients");
  const notifyRequester = d.bool(dl, "delivery", "notify_requester");
  const roleToRecipients = d.roleToRecipients(rt);
  const log = {
    output: d.string(lg, "log", "output"),
    severity: d.string(lg, "log", "severity"),
    format: d.string(lg, "log", "format"),
  };
  return { teleport, mailgun, smtp, sender, recipients, notifyRequester, roleToRecipients, log };
}

/** Typed reads of single keys; every error names `section.key` and the type found. */
class Decoder {
  constructor(readonly ctx: LoadContext) {}

  warnUnknownSections(root: Table): void {
    const known = new Set([...Object.keys(KNOWN_KEYS), "role_to_recipients"]);
    for (const [name, value] of Object.entries(root)) {
      if (known.has(name)) continue;
      this.ctx.warn(
        isTable(value)
          ? `unknown section [${show(name)}] in ${show(this.ctx.file)} (ignored)`
          : `unknown key "${show(name)}" in ${show(this.ctx.file)} (ignored)`,
      );
    }
  }

  section(root: Table, name: string): Table | undefined {
    const value = root[name];
    if (value === undefined) return undefined;
    if (!isTable(value)) {
      if (name === "role_to_recipients") {
        throw this.ctx.error(
          name,
          `invalid ${name}: unexpected type for recipients ${goTypeName(value)}: expected a table`,
        );
      }
      throw this.ctx.error(name, `invalid [${name}]: expected a table, got ${describeType(value)}`);
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
      throw this.ctx.error(
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
      throw this.ctx.error(
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
      throw this.ctx.error(
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
      throw this.ctx.error(
        k,
        `invalid ${k}: expected an array of strings, got ${describeType(value)}`,
      );
    }
    for (const item of value) {
      if (typeof item !== "string") {
        throw this.ctx.error(
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
      this.ctx.warn(
        `unknown key "${show(section)}.${show(key)}" in ${show(this.ctx.file)} (ignored)`,
      );
    }
  }

  teleport(tp: Table | undefined): RawTeleport {
    const intervalMs = this.refreshInterval(tp);
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

  /** `teleport.refresh_identity_interval` in milliseconds; 0 when absent. */
  refreshInterval(tp: Table | undefined): number {
    const intervalKey = "teleport.refresh_identity_interval";
    const intervalRaw = this.raw(tp, "refresh_identity_interval");
    if (intervalRaw === undefined) return 0;
    const hint = 'use Go duration syntax such as "30s", "5m" or "1h30m"';
    if (typeof intervalRaw !== "string") {
      throw this.ctx.error(
        intervalKey,
        `invalid ${intervalKey}: expected a duration string, got ${describeType(intervalRaw)}`,
        hint,
      );
    }
    let ns: number;
    try {
      ns = parseGoDuration(intervalRaw);
    } catch (err) {
      throw this.ctx.error(
        intervalKey,
        `invalid ${intervalKey}: ${show((err as Error).message)}`,
        hint,
      );
    }
    if (ns < 0) {
      throw this.ctx.error(
        intervalKey,
        `invalid ${intervalKey} "${show(intervalRaw)}": must not be negative`,
      );
    }
    if (ns !== 0 && ns < 1e6) {
      throw this.ctx.error(
        intervalKey,
        `invalid ${intervalKey} "${show(intervalRaw)}": must be at least 1ms`,
      );
    }
    return Math.round(ns / 1e6);
  }

  mailgun(mg: Table): RawMailgun {
    return {
      domain: this.string(mg, "mailgun", "domain"),
      privateKey: this.string(mg, "mailgun", "private_key"),
      privateKeyFile: this.string(mg, "mailgun", "private_key_file"),
      apiBase: this.string(mg, "mailgun", "api_base"),
      region: this.string(mg, "mailgun", "region"),
    };
  }

  smtp(sm: Table): RawSmtp {
    return {
      host: this.string(sm, "smtp", "host"),
      port: this.integer(sm, "smtp", "port"),
      username: this.string(sm, "smtp", "username"),
      password: this.string(sm, "smtp", "password"),
      passwordFile: this.string(sm, "smtp", "password_file"),
      starttlsPolicy: this.string(sm, "smtp", "starttls_policy"),
      caFile: this.string(sm, "smtp", "ca_file"),
      localName: this.string(sm, "smtp", "local_name"),
    };
  }

  roleToRecipients(rt: Table | undefined): Record<string, string[]> {
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
        throw this.ctx.error(
          key,
          `invalid ${show(key)}: unexpected type for recipients value ${
            goTypeName(value)
          }: expected a string or an array of strings, got ${what}`,
        );
      }
    }
    return out;
  }
}
