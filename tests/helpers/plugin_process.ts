/**
 * Runs the program under test as a child process, the way an operator does, and reads its JSON
 * log lines. Every CLI and end-to-end test and the demo start `teleport-email` through this file.
 *
 * The program is `TELEPORT_EMAIL_BIN` when that variable is set (a compiled `teleport-email`, or
 * `scripts/launcher_for_tests.sh`): run from an empty directory outside the repository, without
 * any `deno` flags, an arm64 binary under `qemu-aarch64` on an x86_64 host. Otherwise it is
 * `deno run <the daemon's permissions> main.ts`, the same permissions the binary is compiled with.
 *
 * ```ts
 * const plugin = PluginProcess.start(["start", "-c", configPath]);
 * await plugin.waitForLog((l) => l.msg === "Plugin is ready");
 * const code = await plugin.stop(); // SIGTERM, then the exit code
 * const r = await runPlugin(["version"]); // one-shot commands: { code, stdout, stderr }
 * ```
 * @module
 */

import { fileURLToPath } from "node:url";
import { DAEMON_PERMISSIONS } from "../../src/permissions.ts";
import { DAEMON_RUN_FLAGS } from "../../src/runtime_flags.ts";
import { which } from "./which.ts";

/** Absolute path of the repository's `main.ts`. */
export const MAIN_TS: string = fileURLToPath(new URL("../../main.ts", import.meta.url));

/** The variable naming the compiled program to test instead of `deno run main.ts`. */
export const BIN_VARIABLE = "TELEPORT_EMAIL_BIN";

/** The command line that starts the program under test. */
export interface PluginCommand {
  /** Executable: `deno`, the binary, or `qemu-aarch64`. */
  cmd: string;
  args: string[];
  /** Working directory of the child (`undefined`: this process's). */
  cwd?: string;
}

/**
 * How `teleport-email <args>` is started now: from `TELEPORT_EMAIL_BIN` when set (in `cwd`, or an
 * empty temporary directory), else with `deno run`. Throws when the binary cannot be run here.
 */
export function pluginCommand(args: string[], opts: { cwd?: string } = {}): PluginCommand {
  const bin = Deno.env.get(BIN_VARIABLE);
  if (!bin) {
    return {
      cmd: Deno.execPath(),
      args: ["run", ...DAEMON_PERMISSIONS, ...DAEMON_RUN_FLAGS, "--quiet", MAIN_TS, ...args],
      cwd: opts.cwd,
    };
  }
  const path = bin.startsWith("/") ? bin : `${Deno.cwd()}/${bin}`;
  const cwd = opts.cwd ?? outsideCwd();
  if (elfMachine(path) === ELF_AARCH64 && Deno.build.arch !== "aarch64") {
    const qemu = which("qemu-aarch64");
    if (!qemu) {
      throw new Error(
        `${BIN_VARIABLE} "${bin}" is an arm64 binary and qemu-aarch64 is not installed ` +
          "(Debian: qemu-user libc6-arm64-cross libgcc-s1-arm64-cross)",
      );
    }
    return { cmd: qemu, args: ["-L", "/usr/aarch64-linux-gnu", path, ...args], cwd };
  }
  return { cmd: path, args, cwd };
}

const ELF_AARCH64 = 183;

/** ELF `e_machine` of `path`, `undefined` for a script or a short file. */
function elfMachine(path: string): number | undefined {
  let header: Uint8Array;
  try {
    using file = Deno.openSync(path);
    header = new Uint8Array(20);
    if (file.readSync(header) !== 20) return undefined;
  } catch (err) {
    throw new Error(`${BIN_VARIABLE} "${path}" cannot be read: ${(err as Error).message}`);
  }
  if (header[0] !== 0x7f || header[1] !== 0x45 || header[2] !== 0x4c || header[3] !== 0x46) {
    return undefined;
  }
  return new DataView(header.buffer).getUint16(18, header[5] === 1);
}

let emptyCwd: string | undefined;

/** An empty directory outside the repository, made once per test process and removed at exit. */
function outsideCwd(): string {
  if (emptyCwd === undefined) {
    const dir = Deno.makeTempDirSync({ prefix: "teleport-email-cwd-" });
    emptyCwd = dir;
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch {
        // best effort
      }
    });
  }
  return emptyCwd;
}

/** What a finished `teleport-email` run produced. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@link runPlugin}. */
export interface RunOptions {
  /** Working directory (default: this process's, or an empty directory for `TELEPORT_EMAIL_BIN`). */
  cwd?: string;
  /** Extra environment variables (the child inherits the parent's environment). */
  env?: Record<string, string>;
  /** Kill the child after this long (default 60 s). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/**
 * The child process of `command` for {@link runPlugin} and {@link PluginProcess.start}: no stdin,
 * stdout and stderr piped, the parent's environment plus `NO_COLOR=1` and `env`.
 */
function childCommand(
  command: PluginCommand,
  env: Record<string, string> | undefined,
  signal?: AbortSignal,
): Deno.Command {
  return new Deno.Command(command.cmd, {
    args: command.args,
    cwd: command.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...env },
    signal,
  });
}

/** Runs `teleport-email <args>` to completion and returns its exit code and output. */
export async function runPlugin(args: string[], opts: RunOptions = {}): Promise<CliResult> {
  const timeout = AbortSignal.timeout(opts.timeoutMs ?? 60_000);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  const out = await childCommand(pluginCommand(args, { cwd: opts.cwd }), opts.env, signal)
    .output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** One parsed JSON log line (`[log] format = "json"`). */
export interface LogLine {
  time: string;
  level: string;
  msg: string;
  [attr: string]: unknown;
}

/** Options of {@link PluginProcess.start}. */
export interface PluginProcessOptions {
  /** Extra environment variables (the child inherits the parent's environment). */
  env?: Record<string, string>;
  /** Echo the child's stderr to this process's stderr (for the demo and for debugging). */
  echo?: (line: string) => void;
  /** Working directory (default: this process's, or an empty directory for `TELEPORT_EMAIL_BIN`). */
  cwd?: string;
  /**
   * `deno` arguments before the CLI's own, replacing {@link pluginCommand}'s choice: the
   * benchmark runs another checkout's `main.ts` this way (`scripts/bench.ts --plugin-dir`).
   */
  denoArgs?: string[];
}

/** A running `teleport-email` child process. Always {@link stop} or {@link kill} it. */
export class PluginProcess {
  /** Every stderr line, raw. */
  readonly stderrLines: string[] = [];
  /** The stderr lines that parsed as JSON log records. */
  readonly logs: LogLine[] = [];
  /** Everything written to stdout. */
  stdout = "";
  /** Resolves with the exit code once the process has exited. */
  readonly exited: Promise<number>;
  readonly #child: Deno.ChildProcess;
  #waiters: (() => void)[] = [];
  #exitCode: number | undefined;

  private constructor(child: Deno.ChildProcess, opts: PluginProcessOptions) {
    this.#child = child;
    const stderrDone = this.#readLines(child.stderr, (line) => {
      this.stderrLines.push(line);
      opts.echo?.(line);
      if (line.startsWith("{")) {
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          // A non-JSON line that starts with "{": kept in stderrLines only.
        }
      }
      this.#notify();
    });
    const stdoutDone = this.#readLines(child.stdout, (line) => {
      this.stdout += line + "\n";
    });
    this.exited = Promise.all([child.status, stderrDone, stdoutDone]).then(([status]) => {
      this.#exitCode = status.code;
      this.#notify();
      return status.code;
    });
  }

  /**
   * Starts `teleport-email <args>` as {@link pluginCommand} says: the compiled program from
   * `TELEPORT_EMAIL_BIN`, or `deno run` with the binary's permissions and V8 flags, so a test fails when the
   * daemon needs a permission it will not have.
   */
  static start(args: string[], opts: PluginProcessOptions = {}): PluginProcess {
    const command = opts.denoArgs === undefined
      ? pluginCommand(args, { cwd: opts.cwd })
      : { cmd: Deno.execPath(), args: [...opts.denoArgs, ...args], cwd: opts.cwd };
    const child = childCommand(command, opts.env).spawn();
    return new PluginProcess(child, opts);
  }

  get pid(): number {
    return this.#child.pid;
  }

  /** The exit code, or undefined while running. */
  get exitCode(): number | undefined {
    return this.#exitCode;
  }

  /**
   * Waits until a log line matches (lines already received count), or fails with the collected
   * stderr when the timeout passes or the process exits first.
   */
  async waitForLog(
    match: (line: LogLine) => boolean,
    opts: { timeoutMs?: number; count?: number } = {},
  ): Promise<LogLine[]> {
    const timeoutMs = opts.timeoutMs ?? 20_000;
    const count = opts.count ?? 1;
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const found = this.logs.filter(match);
      if (found.length >= count) return found;
      if (this.#exitCode !== undefined) {
        throw new Error(
          `teleport-email exited with code ${this.#exitCode} before the expected log line:\n` +
            this.stderrLines.slice(-30).join("\n"),
        );
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `timed out after ${timeoutMs} ms waiting for a log line; last stderr lines:\n` +
            this.stderrLines.slice(-30).join("\n"),
        );
      }
      await this.#changed(left);
    }
  }

  /** Waits for `Plugin is ready`. */
  async ready(timeoutMs = 30_000): Promise<void> {
    await this.waitForLog((l) => l.msg === "Plugin is ready", { timeoutMs });
  }

  /** Sends `signal` (default SIGTERM) and returns the exit code; SIGKILL after `timeoutMs`. */
  async stop(signal: Deno.Signal = "SIGTERM", timeoutMs = 20_000): Promise<number> {
    if (this.#exitCode === undefined) {
      try {
        this.#child.kill(signal);
      } catch {
        // Already exited.
      }
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const killed = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.kill();
        resolve();
      }, timeoutMs);
    });
    const code = await Promise.race([this.exited, killed.then(() => this.exited)]);
    clearTimeout(timer);
    return code;
  }

  /**
   * Sends `signal` (e.g. SIGHUP, to reload) and returns at once; the process keeps running
   * unless the signal ends it. Throws if it has already exited.
   */
  signal(signal: Deno.Signal): void {
    if (this.#exitCode !== undefined) {
      throw new Error(`cannot send ${signal}: teleport-email exited with code ${this.#exitCode}`);
    }
    this.#child.kill(signal);
  }

  /** SIGKILL (no clean shutdown). */
  kill(): void {
    if (this.#exitCode !== undefined) return;
    try {
      this.#child.kill("SIGKILL");
    } catch {
      // Already exited.
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.kill();
    await this.exited;
  }

  #notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }

  #changed(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, timeoutMs);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#waiters.push(done);
    });
  }

  async #readLines(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void) {
    const decoder = new TextDecoder();
    let buffered = "";
    for await (const chunk of stream) {
      buffered += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        onLine(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
      }
    }
    buffered += decoder.decode();
    if (buffered) onLine(buffered);
  }
}
