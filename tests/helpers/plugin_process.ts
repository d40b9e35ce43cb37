/**
 * Runs the real `teleport-email` CLI (`deno run main.ts …`) as a child process, the way an
 * operator does, and reads its JSON log lines. Used by the end-to-end tests and the demo.
 *
 * ```ts
 * const plugin = PluginProcess.start(["start", "-c", configPath]);
 * await plugin.waitForLog((l) => l.msg === "Plugin is ready");
 * const code = await plugin.stop(); // SIGTERM, then the exit code
 * ```
 * @module
 */

import { DAEMON_PERMISSIONS } from "../../src/permissions.ts";

const MAIN_TS = new URL("../../main.ts", import.meta.url).pathname;

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
   * Starts `deno run <the daemon's permissions> main.ts <args>`: the same permissions as the
   * release binary, so a test fails when the daemon needs one it will not have.
   */
  static start(args: string[], opts: PluginProcessOptions = {}): PluginProcess {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", ...DAEMON_PERMISSIONS, "--quiet", MAIN_TS, ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", ...opts.env },
    }).spawn();
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
