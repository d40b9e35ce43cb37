/**
 * The command line, kingpin-compatible with the Go plugin:
 * `help [<command>...] | configure | version | start [-c FILE] [-d]`, `--help` everywhere, plus
 * our `check [-c FILE] [--send-test ADDRESS] [-d]`.
 *
 * The only place that prints errors and picks exit codes: 0 success (also `help`, `--help` and
 * no command at all, like kingpin), 1 failure, 2 usage error (unknown command, flag or argument;
 * kingpin used 1). Help and usage go to stderr, like kingpin; `configure` and `version` write to
 * stdout. Errors are one line on stderr, never a stack trace:
 * - before logging is set up (configuration errors): `ERROR: <message>`;
 * - after: logged as `Terminating with fatal error` with attribute `error` (one record per inner
 *   error of an AggregateFailure, with `error_number`), and also `ERROR: <message>` on stderr when
 *   the log output is not stderr.
 *
 * Reads the environment only through `config/env.ts` (`readEnvSettings`), at `start` (and in
 * `check`, which reports a bad value).
 *
 * Loads code only on the path that needs it: `help`, `configure` and `version` import nothing but
 * this file's leaves (errors, version, the example configuration, the flag parsers); `start` and
 * `check` get the configuration loader, logging, the daemon, the checks and the metrics from
 * {@link CliDeps.modules}, which the entry point provides (`src/start_modules.ts`).
 * @module
 */
import { parseArgs } from "node:util";
import type { runApp } from "./app.ts";
import type { PromMetrics } from "./diag/metrics.ts";
import { type DiagAddr, parseDiagAddr, startDiagServer } from "./diag/server.ts";
import { isBareEmailAddress } from "./email_address.ts";
import { EXAMPLE_CONFIG } from "./config/example.ts";
import { type EnvSettings, readEnvSettings } from "./config/env.ts";
import { type Config, DEFAULT_CONFIG_PATH } from "./config/types.ts";
import {
  AggregateFailure,
  ConfigError,
  formatError,
  TeleportEmailError,
  UsageError,
} from "./errors.ts";
import { GIT_REF, VERSION, versionLine } from "./version.ts";

/** Where the CLI writes; tests may replace it. Defaults to the process's stdout and stderr. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

/** Replaceable parts, for tests of the CLI's lifecycle handling. */
/** The modules `start` and `check` need beyond the CLI's leaves (`src/start_modules.ts`). */
export type StartModules = typeof import("./start_modules.ts");
type Logger = ReturnType<StartModules["getLogger"]>;

export interface CliDeps {
  /** Loads `src/start_modules.ts` (the entry point's way: on demand, or already imported). */
  modules: () => Promise<StartModules>;
  /** Defaults to `runApp` of {@link modules}. */
  runApp?: typeof runApp;
  /** Defaults to {@link SHUTDOWN_TIMEOUT_MS}. */
  shutdownTimeoutMs?: number;
}

/** How long a graceful shutdown may take before the CLI gives up (the Go plugin's 15 s). */
export const SHUTDOWN_TIMEOUT_MS = 15_000;

const PROGRAM = "teleport-email";
const APP_HELP = "Teleport plugin for access requests approval via E-mail.";
const HELP_FLAG_HELP = "Show context-sensitive help (also try --help-long and --help-man).";

interface CommandSpec {
  usage: string;
  help: string;
  flags: { left: string; help: string }[];
}

const COMMANDS: Record<string, CommandSpec> = {
  help: { usage: "help [<command>...]", help: "Show help.", flags: [] },
  configure: { usage: "configure", help: "Prints an example .TOML configuration file.", flags: [] },
  version: { usage: "version", help: "Prints teleport-email version and exits.", flags: [] },
  start: {
    usage: "start [<flags>]",
    // The typo "a the" is the Go plugin's; kept byte for byte.
    help: "Starts a the Teleport Email plugin.",
    flags: [
      { left: `-c, --config="${DEFAULT_CONFIG_PATH}"`, help: "TOML config file path" },
      { left: "-d, --debug", help: "Enable verbose logging to stderr" },
      {
        left: "--diag-addr=DIAG-ADDR",
        help: "Serve /healthz, /readyz and /metrics on HOST:PORT (off by default)",
      },
    ],
  },
  check: {
    usage: "check [<flags>]",
    help:
      "Checks the configuration, Teleport credentials, connection and permissions, and the mail transport, then exits.",
    flags: [
      { left: `-c, --config="${DEFAULT_CONFIG_PATH}"`, help: "TOML config file path" },
      { left: "--send-test=ADDRESS", help: "Also send one test email to ADDRESS" },
      { left: "-d, --debug", help: "Enable verbose logging to stderr" },
    ],
  },
};

function writerFor(f: { writeSync(p: Uint8Array): number }): (text: string) => void {
  const encoder = new TextEncoder();
  return (text) => {
    let bytes = encoder.encode(text);
    for (let guard = 0; bytes.length > 0 && guard <= bytes.length; guard++) {
      bytes = bytes.subarray(f.writeSync(bytes));
    }
  };
}

const DEFAULT_IO: CliIo = { stdout: writerFor(Deno.stdout), stderr: writerFor(Deno.stderr) };

/** kingpin's two-column flag list. */
function formatFlags(flags: { left: string; help: string }[]): string {
  const all = [
    { left: "    --help", help: HELP_FLAG_HELP },
    ...flags.map((f) => ({
      left: f.left.startsWith("-") && !f.left.startsWith("--") ? f.left : `    ${f.left}`,
      help: f.help,
    })),
  ];
  const width = Math.max(...all.map((f) => f.left.length).filter((n) => n <= 30));
  return all.map((f) =>
    f.left.length > width
      ? `  ${f.left}\n  ${" ".repeat(width)}  ${f.help}\n`
      : `  ${f.left.padEnd(width)}  ${f.help}\n`
  ).join("");
}

/** Usage of the whole program (kingpin's layout). */
export function appUsage(): string {
  let s = `usage: ${PROGRAM} [<flags>] <command> [<args> ...]\n\n${APP_HELP}\n\n`;
  s += `Flags:\n  --help  ${HELP_FLAG_HELP}\n\nCommands:\n`;
  for (const name of ["help", "configure", "version", "start", "check"]) {
    const c = COMMANDS[name];
    s += `  ${c.usage}\n    ${c.help}\n\n`;
  }
  return s;
}

/** Usage of one command (kingpin's layout). */
export function commandUsage(name: string): string {
  const c = COMMANDS[name];
  return `usage: ${PROGRAM} ${c.usage}\n\n${c.help}\n\nFlags:\n${formatFlags(c.flags)}\n`;
}

interface ParsedArgs {
  command?: string;
  rest: string[];
  help: boolean;
  config: string;
  debug: boolean;
  /** `--diag-addr`: where to serve diagnostics; undefined = off. */
  diagAddr?: DiagAddr;
  /** `check --send-test ADDRESS`. */
  sendTest?: string;
}

/** Parses the arguments; throws UsageError (exit 2) on an unknown command, flag or argument. */
export function parseCliArgs(args: string[]): ParsedArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      options: {
        config: { type: "string", short: "c" },
        debug: { type: "boolean", short: "d" },
        "diag-addr": { type: "string" },
        "send-test": { type: "string" },
        help: { type: "boolean" },
        "help-long": { type: "boolean" },
        "help-man": { type: "boolean" },
      },
    });
  } catch (err) {
    const code = (err as { code?: string }).code;
    const flag = /'([^']+)'/.exec((err as Error).message)?.[1] ?? "";
    if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      throw new UsageError(`unknown flag '${flag}'`);
    }
    if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE") {
      const name = flag.split(",").pop()!.trim().split(" ")[0];
      throw new UsageError(
        /argument missing/.test((err as Error).message)
          ? `expected argument for flag '${name}'`
          : `flag '${name}' takes no value`,
      );
    }
    throw new UsageError(formatError(err));
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  const help = Boolean(values.help || values["help-long"] || values["help-man"]);
  if (command !== undefined && !Object.hasOwn(COMMANDS, command)) {
    throw new UsageError(`expected command but got "${command}"`);
  }
  if (command !== "start" && command !== "check") {
    if (values.config !== undefined) throw new UsageError("unknown short flag '-c'");
    if (values.debug !== undefined) throw new UsageError("unknown short flag '-d'");
  }
  if (command !== "start" && values["diag-addr"] !== undefined) {
    throw new UsageError("unknown long flag '--diag-addr'");
  }
  const sendTest = values["send-test"];
  if (sendTest !== undefined) {
    if (command !== "check") throw new UsageError("unknown long flag '--send-test'");
    if (!isBareEmailAddress(sendTest)) {
      throw new UsageError(`invalid address "${sendTest}" for flag '--send-test'`);
    }
  }
  if (command === "help") {
    for (const name of rest) {
      if (!Object.hasOwn(COMMANDS, name)) {
        throw new UsageError(`expected command but got "${name}"`);
      }
    }
  } else if (rest.length > 0) {
    throw new UsageError(`unexpected ${rest[0]}`);
  }
  return {
    command,
    rest,
    help,
    config: values.config ?? DEFAULT_CONFIG_PATH,
    debug: values.debug ?? false,
    diagAddr: values["diag-addr"] === undefined ? undefined : parseDiagAddr(values["diag-addr"]),
    sendTest,
  };
}

/**
 * Runs the command line `args` (without the program name) and resolves with the exit code.
 * Never throws and never exits the process (`main.ts` does).
 */
export async function runCli(
  args: string[],
  io: CliIo = DEFAULT_IO,
  deps: CliDeps,
): Promise<number> {
  let parsed: ParsedArgs;
  try {
    parsed = parseCliArgs(args);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    const command = args.find((a) => Object.hasOwn(COMMANDS, a));
    io.stderr(`${PROGRAM}: error: ${err.message}, try --help\n`);
    io.stderr(command && command !== "help" ? commandUsage(command) : appUsage());
    return 2;
  }

  const { command } = parsed;
  if (command === undefined) {
    io.stderr(appUsage());
    return 0;
  }
  if (parsed.help || command === "help") {
    const target = command === "help" ? parsed.rest[0] : command;
    io.stderr(target === undefined ? appUsage() : commandUsage(target));
    return 0;
  }
  try {
    switch (command) {
      case "configure":
        io.stdout(EXAMPLE_CONFIG);
        return 0;
      case "version":
        io.stdout(`${versionLine()}\n`);
        return 0;
      case "start":
        return await start(parsed.config, parsed.debug, io, deps, parsed.diagAddr);
      case "check":
        return await (await deps.modules()).runCheck({
          configPath: parsed.config,
          sendTest: parsed.sendTest,
          debug: parsed.debug,
          write: io.stdout,
        });
    }
  } catch (err) {
    io.stderr(`ERROR: ${oneLine(formatError(err))}\n`);
    return 1;
  }
  return 1;
}

function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, " ");
}

/** LogTape reads `{name}` as a placeholder: double the braces of a literal message. */
function literal(message: string): string {
  return message.replace(/[{}]/g, (c) => c + c);
}

/** `start`: load the configuration, set up logging, run the app until a signal. */
async function start(
  configPath: string,
  debug: boolean,
  io: CliIo,
  deps: CliDeps,
  diagAddr?: DiagAddr,
): Promise<number> {
  const modules = await deps.modules();
  const { loadConfig, getLogger, resetLogging, setupLogging } = modules;
  const config: Config = await loadConfig(configPath);
  try {
    await setupLogging(config.log, { debug });
  } catch (err) {
    throw new ConfigError("log.output", `${configPath}: ${formatError(err)}`, { file: configPath });
  }
  const log = getLogger();
  const toStderrToo = config.log.output !== "stderr";
  let diag: { metrics: PromMetrics; close(): Promise<void> } | undefined;
  try {
    for (const warning of config.warnings) log.warn(literal(warning));
    log.info("Starting Teleport Access Email Plugin", { version: VERSION, git_ref: GIT_REF });
    const env = readEnvSettings(); // A bad value is a fatal error, logged like the others.
    if (diagAddr !== undefined) {
      const metrics = new (await modules.loadMetrics()).PromMetrics();
      diag = { metrics, ...startDiagServer(diagAddr, metrics, { log: getLogger(["diag"]) }) };
    }
    const run = deps.runApp ?? modules.runApp;
    const result = await runUntilSignal(
      config,
      debug,
      env,
      { ...deps, runApp: run },
      log,
      diag?.metrics,
    );
    if (result === "forced") {
      if (toStderrToo) io.stderr("ERROR: Graceful shutdown failed, attempting fast shutdown\n");
      return 1;
    }
    log.info("Successfully shut down");
    return 0;
  } catch (err) {
    if (err instanceof AggregateFailure) {
      err.errors.forEach((e, i) =>
        log.error("Terminating with fatal error", { error: e, error_number: i + 1 })
      );
    } else {
      log.error("Terminating with fatal error", { error: err });
    }
    if (toStderrToo) io.stderr(`ERROR: ${oneLine(formatError(err))}\n`);
    return 1;
  } finally {
    await diag?.close();
    await resetLogging();
  }
}

/**
 * How a running app is stopped: the first SIGINT/SIGTERM (or an unhandled rejection) aborts it
 * gracefully; a second SIGINT, or a graceful shutdown longer than the timeout, gives up waiting
 * ("forced").
 */
class Shutdown {
  readonly ac = new AbortController();
  readonly forced: Promise<"forced">;
  /** The first unhandled rejection, when one caused the shutdown. */
  unexpected: { reason: unknown } | undefined;
  #forceResolve: (v: "forced") => void = () => {};
  #timer: ReturnType<typeof setTimeout> | undefined;
  #removers: (() => void)[] = [];

  constructor(private readonly log: Logger, private readonly timeoutMs: number) {
    this.forced = new Promise<"forced">((r) => (this.#forceResolve = r));
  }

  /** Listens for SIGINT, SIGTERM and unhandled rejections until {@link dispose}. */
  listen(): void {
    for (const sig of ["SIGINT", "SIGTERM"] as const) {
      const fn = () => this.#onSignal(sig);
      try {
        Deno.addSignalListener(sig, fn);
        this.#removers.push(() => Deno.removeSignalListener(sig, fn));
      } catch {
        // SIGTERM cannot be listened to on Windows.
      }
    }
    // A rejected promise nobody handled is a bug; left alone, Deno would end the process with a
    // stack trace. Log it as one line, shut down gracefully (in-flight sends finish, a restart
    // catches up on the rest), and exit 1.
    const onUnhandled = (e: PromiseRejectionEvent) => {
      e.preventDefault();
      if (this.unexpected) return;
      this.unexpected = { reason: e.reason };
      this.log.error("Unexpected internal error, shutting down", { error: e.reason });
      if (!this.ac.signal.aborted) this.#begin("internal error");
    };
    globalThis.addEventListener("unhandledrejection", onUnhandled);
    this.#removers.push(() => globalThis.removeEventListener("unhandledrejection", onUnhandled));
  }

  dispose(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    for (const remove of this.#removers.splice(0)) remove();
  }

  #onSignal(name: "SIGINT" | "SIGTERM"): void {
    if (!this.ac.signal.aborted) {
      this.log.info("Attempting graceful shutdown", { signal: name });
      this.#begin(`received ${name}`);
    } else if (name === "SIGINT") {
      this.#force();
    }
  }

  #begin(reason: string): void {
    this.ac.abort(new DOMException(reason, "AbortError"));
    this.#timer = setTimeout(() => this.#force(), this.timeoutMs);
  }

  #force(): void {
    this.log.error("Graceful shutdown failed, attempting fast shutdown");
    this.#forceResolve("forced");
  }
}

/** Runs the app until it ends or a {@link Shutdown} stops it. */
async function runUntilSignal(
  config: Config,
  debug: boolean,
  env: EnvSettings,
  deps: CliDeps & { runApp: typeof runApp },
  log: Logger,
  observer?: PromMetrics,
): Promise<"done" | "forced"> {
  const shutdown = new Shutdown(log, deps.shutdownTimeoutMs ?? SHUTDOWN_TIMEOUT_MS);
  const { signal } = shutdown.ac;
  shutdown.listen();
  try {
    const app = deps.runApp(config, { signal, debug, env, observer }).then(
      () => "done" as const,
      (err) => {
        // An abort-caused rejection after a signal is a graceful shutdown.
        if (signal.aborted && (err === signal.reason || isAbortError(err))) return "done" as const;
        throw err;
      },
    );
    const result = await Promise.race([app, shutdown.forced]);
    if (shutdown.unexpected) {
      const reason = shutdown.unexpected.reason;
      throw new TeleportEmailError(`Unexpected internal error: ${formatError(reason)}`, {
        cause: reason,
        hint: "this is a bug in teleport-email, please report it; a restart resumes the work",
      });
    }
    return result;
  } finally {
    shutdown.dispose();
  }
}

function isAbortError(err: unknown): boolean {
  return err instanceof Error && (err.name === "AbortError" || err.name === "TimeoutError");
}
