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
 * @module
 */
import { AsyncLocalStorage } from "node:async_hooks";
import {
  configure,
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

let openFile: Deno.FsFile | undefined;

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
  let write: (line: string) => void;
  if (opts.sink) {
    write = opts.sink;
  } else if (cfg.output === "stderr" || cfg.output === "") {
    write = writerFor(Deno.stderr);
  } else if (cfg.output === "stdout") {
    write = writerFor(Deno.stdout);
  } else {
    try {
      openFile = await Deno.open(cfg.output, { append: true, create: true, mode: 0o644 });
    } catch (err) {
      throw new ConfigError(
        "log.output",
        `cannot open log.output "${cfg.output}": ${reason(err)}`,
        {
          cause: err,
        },
      );
    }
    write = fileWriter(cfg.output);
  }
  const format = cfg.format === "json" ? formatJsonLine : formatTextLine;
  const severity: LogSeverity = opts.debug ? "debug" : cfg.severity;
  await configure({
    reset: true,
    contextLocalStorage: new AsyncLocalStorage(),
    sinks: {
      main: (record: LogRecord) => {
        try {
          write(format(record));
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
  if (opts.debug) getLogger().debug("DEBUG logging enabled");
}

/** Undoes {@link setupLogging} (closes the log file). For tests and shutdown. */
export async function resetLogging(): Promise<void> {
  await reset();
  if (openFile) {
    try {
      openFile.close();
    } catch {
      // Already closed.
    }
    openFile = undefined;
  }
}

/**
 * A logger under `["teleport-email", ...category]`: `getLogger(["watcher"])`. Use the returned
 * logger's `debug/info/warn/error(message, attributes)`.
 */
export function getLogger(category: string[] = []): Logger {
  return logtapeGetLogger([ROOT_CATEGORY, ...category]);
}

/**
 * Appends to the log file at `path`, reopening it when it was moved or deleted (logrotate), like
 * the Go plugin's logger. One `stat` per line: cheap at this program's log volume.
 */
function fileWriter(path: string): (line: string) => void {
  let ino = openFile?.statSync().ino;
  return (line) => {
    let current: number | null | undefined;
    try {
      current = Deno.statSync(path).ino;
    } catch {
      current = undefined; // Deleted or moved away: create it again.
    }
    if (openFile === undefined || current === undefined || current !== ino) {
      try {
        openFile?.close();
      } catch {
        // Already closed.
      }
      openFile = Deno.openSync(path, { append: true, create: true, mode: 0o644 });
      ino = openFile.statSync().ino;
    }
    writerFor(openFile)(line);
  };
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
