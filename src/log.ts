/**
 * Logging, set up from `[log]` with LogTape.
 *
 * How other modules log:
 *
 * ```ts
 * import { getLogger } from "./log.ts";
 * const log = getLogger(["smtp"]); // category ["teleport-email", "smtp"]
 * log.info("Successfully sent", { email, message_id: id, kind: "new threads" });
 * log.error("Failed to process request", { error: err }); // errors are printed with formatError()
 * const rlog = log.with({ request_id: req.id }); // attributes carried by every record
 * ```
 *
 * Messages are fixed strings (the Go plugin's, where it has one) and the variable parts go in
 * attributes with the Go plugin's snake_case names. Don't put `{`/`}` in messages: LogTape reads
 * `{name}` as a placeholder for the attribute `name`. Never log a secret.
 *
 * Output lines:
 * - text: `2026-11-24T05:00:00.000Z INFO  Starting Teleport Access Email Plugin version=0.1.0 git_ref=`
 *   (level padded to 5, then `key=value` attributes; values with spaces, quotes, `=` or control
 *   characters are JSON-quoted);
 * - json: `{"time":"2026-11-24T05:00:00.000Z","level":"INFO","msg":"Starting …","version":"0.1.0"}`.
 *
 * Before {@link setupLogging} runs, nothing is logged (LogTape drops records without a sink).
 * On SIGHUP the app calls {@link reloadLogging}: the (re-read) `[log]` takes effect at once and
 * a log file is reopened, so logrotate's `postrotate` can send SIGHUP.
 * @module
 */
import { AsyncLocalStorage } from "node:async_hooks";
import {
  configureSync,
  getLogger as logtapeGetLogger,
  type Logger,
  type LogLevel,
  type LogRecord,
  reset,
} from "@logtape/logtape";
import { ConfigError, formatError } from "./errors.ts";
import type { LogConfig, LogSeverity } from "./config/types.ts";

/** The root category; every logger of this program is below it. */
export const ROOT_CATEGORY = "teleport-email";

/** Options of {@link setupLogging}. */
export interface SetupLoggingOptions {
  /** `--debug`: force the debug level and log `DEBUG logging enabled`. */
  debug?: boolean;
  /** For tests: receive each formatted line (with its newline) instead of writing to `output`. */
  sink?: (line: string) => void;
  /** Aborts opening the log file. */
  signal?: AbortSignal;
}

const LEVEL_NAMES: Record<LogLevel, string> = {
  trace: "DEBUG",
  debug: "DEBUG",
  info: "INFO",
  warning: "WARN",
  error: "ERROR",
  fatal: "ERROR",
};

const LOWEST_LEVEL: Record<LogSeverity, LogLevel> = {
  debug: "debug",
  info: "info",
  warn: "warning",
  error: "error",
};

/** Where formatted lines go. */
interface Output {
  write(line: string): void;
  close(): void;
}

/** The current setup, kept so that {@link reloadLogging} can switch it at once. */
interface LogState {
  cfg: LogConfig;
  debug: boolean;
  sink?: (line: string) => void;
  output: Output;
}

let state: LogState | undefined;
const contextLocalStorage = new AsyncLocalStorage<Record<string, unknown>>();

/**
 * Configures logging from `[log]`: `output` (`stderr`, `stdout` or a file path, appended to and
 * created with mode 0644 if missing), `severity`, `format` (`text`|`json`). Replaces any previous
 * setup. Throws a {@link ConfigError} (key `log.output`) when the file cannot be opened.
 */
export async function setupLogging(
  cfg: LogConfig,
  opts: SetupLoggingOptions = {},
): Promise<void> {
  opts.signal?.throwIfAborted();
  await resetLogging();
  const debug = opts.debug ?? false;
  install({ cfg, debug, sink: opts.sink, output: openOutput(cfg, opts.sink) });
  if (debug) getLogger().debug("DEBUG logging enabled");
}

/**
 * Switches to `cfg` (a reloaded `[log]`) without losing a line: opens its output anew (a log
 * file is reopened, so after logrotate moved it the lines go to the new file), switches every
 * logger to it at once, then closes the previous output. `--debug` stays in force. When the new
 * output cannot be opened, throws a {@link ConfigError} (key `log.output`) and the previous
 * setup stays. Does nothing before {@link setupLogging}.
 */
export function reloadLogging(cfg: LogConfig): void {
  if (state === undefined) return;
  const output = openOutput(cfg, state.sink);
  const previous = state.output;
  install({ ...state, cfg, output });
  previous.close();
}

/** The `[log]` in force (undefined before {@link setupLogging}). */
export function currentLogConfig(): LogConfig | undefined {
  return state?.cfg;
}

/** Undoes {@link setupLogging} (closes the log file). For tests and shutdown. */
export async function resetLogging(): Promise<void> {
  await reset();
  state?.output.close();
  state = undefined;
}

/** Points LogTape at `next` in one synchronous step (no record can fall in between). */
function install(next: LogState): void {
  const format = next.cfg.format === "json" ? formatJsonLine : formatTextLine;
  const severity: LogSeverity = next.debug ? "debug" : next.cfg.severity;
  const { output } = next;
  configureSync({
    reset: true,
    contextLocalStorage,
    sinks: {
      main: (record: LogRecord) => {
        try {
          output.write(format(record));
        } catch {
          // A log line that cannot be written (closed pipe, full disk) must not crash the daemon.
        }
      },
    },
    loggers: [
      { category: [ROOT_CATEGORY], lowestLevel: LOWEST_LEVEL[severity], sinks: ["main"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["main"] },
    ],
  });
  state = next;
}

function openOutput(cfg: LogConfig, sink?: (line: string) => void): Output {
  const none = () => {};
  if (sink) return { write: sink, close: none };
  if (cfg.output === "stderr" || cfg.output === "") {
    return { write: writerFor(Deno.stderr), close: none };
  }
  if (cfg.output === "stdout") return { write: writerFor(Deno.stdout), close: none };
  return fileOutput(cfg.output);
}

/**
 * A log file at `path`, opened for appending now (throws a {@link ConfigError} when it cannot
 * be), and reopened whenever it was moved or deleted (logrotate without a signal), like the Go
 * plugin's logger. One `stat` per line: cheap at this program's log volume.
 */
function fileOutput(path: string): Output {
  const open = () => Deno.openSync(path, { append: true, create: true, mode: 0o644 });
  let file: Deno.FsFile | undefined;
  try {
    file = open();
  } catch (err) {
    throw new ConfigError("log.output", `cannot open log.output "${path}": ${reason(err)}`, {
      cause: err,
    });
  }
  let ino = file.statSync().ino;
  const close = () => {
    try {
      file?.close();
    } catch {
      // Already closed.
    }
    file = undefined;
  };
  const write = (line: string) => {
    let current: number | null | undefined;
    try {
      current = Deno.statSync(path).ino;
    } catch {
      current = undefined; // Deleted or moved away: create it again.
    }
    if (file === undefined || current === undefined || current !== ino) {
      close();
      file = open();
      ino = file.statSync().ino;
    }
    writerFor(file)(line);
  };
  return { write, close };
}

/**
 * A logger under `["teleport-email", ...category]`: `getLogger(["watcher"])`. Use the returned
 * logger's `debug/info/warn/error(message, attributes)`.
 */
export function getLogger(category: string[] = []): Logger {
  return logtapeGetLogger([ROOT_CATEGORY, ...category]);
}

function writerFor(w: { writeSync(p: Uint8Array): number }): (line: string) => void {
  const encoder = new TextEncoder();
  return (line) => {
    let bytes = encoder.encode(line);
    // writeSync may write less than asked; bounded because each call writes at least one byte.
    for (let guard = 0; bytes.length > 0 && guard <= bytes.length; guard++) {
      const n = w.writeSync(bytes);
      bytes = bytes.subarray(n);
    }
  };
}

function reason(err: unknown): string {
  if (err instanceof Deno.errors.NotFound) return "directory not found";
  if (err instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (err instanceof Deno.errors.IsADirectory) return "is a directory";
  return formatError(err);
}

/** The rendered message of a record (template values interpolated). */
function renderMessage(record: LogRecord): string {
  return record.message.map((part, i) => (i % 2 === 0 ? String(part) : attrText(part))).join("");
}

/** An attribute value as text: errors through formatError, objects as JSON. */
function attrText(value: unknown): string {
  if (value instanceof Error) return formatError(value);
  if (typeof value === "string") return value;
  if (value === undefined) return "";
  if (value instanceof Date) return value.toISOString();
  if (typeof value === "object" && value !== null) {
    try {
      return JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
    } catch {
      return String(value);
    }
  }
  return String(value);
}

/** The value in JSON output: errors as their formatted message, the rest as is. */
function attrJson(value: unknown): unknown {
  if (value instanceof Error) return formatError(value);
  if (typeof value === "bigint") return value.toString();
  return value;
}

/** A `key=value` value: quoted when it contains spaces, quotes, `=` or control characters. */
function quoteIfNeeded(s: string): string {
  // deno-lint-ignore no-control-regex
  return /[\s"=\u0000-\u001f\u007f]/.test(s) ? JSON.stringify(s) : s;
}

// deno-lint-ignore no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/g;

/** One text line (with the newline) for a record. */
export function formatTextLine(record: LogRecord): string {
  const level = LEVEL_NAMES[record.level].padEnd(5);
  const msg = renderMessage(record).replace(CONTROL_CHARS, (c) => JSON.stringify(c).slice(1, -1));
  const attrs = Object.entries(record.properties).map(([k, v]) =>
    ` ${k}=${quoteIfNeeded(attrText(v))}`
  ).join("");
  return `${new Date(record.timestamp).toISOString()} ${level} ${msg}${attrs}\n`;
}

/** One JSON line (with the newline) for a record. */
export function formatJsonLine(record: LogRecord): string {
  const obj: Record<string, unknown> = {
    time: new Date(record.timestamp).toISOString(),
    level: LEVEL_NAMES[record.level],
    msg: renderMessage(record),
  };
  for (const [k, v] of Object.entries(record.properties)) {
    if (k === "time" || k === "level" || k === "msg") obj[`attr_${k}`] = attrJson(v);
    else obj[k] = attrJson(v);
  }
  try {
    return JSON.stringify(obj, (_k, v) => (typeof v === "bigint" ? v.toString() : v)) + "\n";
  } catch {
    return JSON.stringify({ time: obj.time, level: obj.level, msg: obj.msg }) + "\n";
  }
}
