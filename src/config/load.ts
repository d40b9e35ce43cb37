/**
 * Loads and validates the TOML configuration file, with the Go plugin's keys, defaults, validation
 * order and error messages (see the README "Configuration" section).
 *
 * Every error is a {@link ConfigError} whose message is one line, starts with the file path and
 * names the TOML key: `/etc/teleport-email.toml: provide smtp.host to use SMTP`. Where the Go
 * plugin has a message, it appears verbatim after the path. No message ever contains a secret
 * (passwords, API keys) nor the content of a file.
 *
 * The steps, each in its own file: reading and TOML syntax (here); value types and unknown keys
 * (`decode.ts`); deprecated keys (`legacy.ts`); defaults and the rules between keys, in the Go
 * plugin's order (`validate.ts`); the files the configuration names (`secrets.ts`).
 */
import { resolve } from "node:path";
import { parse, TomlError } from "smol-toml";
import { ConfigError } from "../errors.ts";
import type { Config } from "./types.ts";
import { LoadContext, reason, show } from "./context.ts";
import { decodeConfig, type Table } from "./decode.ts";
import { validateConfig } from "./validate.ts";

export { MAILGUN_API_BASES } from "./validate.ts";

/** Options of {@link loadConfig}. */
export interface LoadConfigOptions {
  /** Aborts reading the file and the files it names. */
  signal?: AbortSignal;
}

export { DEFAULT_CONFIG_PATH } from "./types.ts";

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
  const ctx = new LoadContext(file, signal);
  const raw = decodeConfig(ctx, parseToml(file, text));
  return await validateConfig(ctx, raw, resolve(path));
}

/** The TOML document, integers as bigint; syntax errors name the line and column. */
function parseToml(file: string, text: string): Table {
  try {
    return parse(text, { integersAsBigInt: true }) as Table;
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
}
