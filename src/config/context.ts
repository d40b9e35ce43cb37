/**
 * What every step of loading a configuration file shares: the file's path (the prefix of every
 * message), the abort signal, the warnings found so far, and the helpers that keep a message on
 * one line and free of file contents.
 */
import { ConfigError } from "../errors.ts";

/** The state of one `loadConfig()` call, passed to decoding and validation. */
export class LoadContext {
  /** Non-fatal findings, in the order they were found. */
  readonly warnings: string[] = [];

  constructor(readonly file: string, readonly signal?: AbortSignal) {}

  /** A {@link ConfigError} for `key`, its message prefixed with the file path. */
  error(key: string, message: string, hint?: string): ConfigError {
    return new ConfigError(key, `${show(this.file)}: ${message}`, { file: this.file, hint });
  }

  warn(message: string): void {
    this.warnings.push(message);
  }
}

/** What a failed file operation means to a user, without the path (callers add it). */
export function reason(err: unknown): string {
  if (err instanceof Deno.errors.NotFound) return "file not found";
  if (err instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (err instanceof Deno.errors.IsADirectory) return "is a directory";
  if (err instanceof Deno.errors.NotCapable) return "not allowed (run with --allow-read)";
  if (err instanceof Error) return err.message.replace(/[\r\n]+/g, " ");
  return String(err);
}

/** A value echoed in a message, with control characters escaped so the message stays one line. */
export function show(s: string): string {
  // deno-lint-ignore no-control-regex
  return s.replace(/[\u0000-\u001f\u007f]/g, (c) => JSON.stringify(c).slice(1, -1));
}
