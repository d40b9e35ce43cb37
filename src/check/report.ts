/**
 * The output of `teleport-email check`: one line per check, `OK`, `WARN`, `FAIL` (or `SKIP` for a
 * check that could not run), what was checked, and for a failure or warning the fix:
 *
 * ```text
 * OK    configuration: "/etc/teleport-email.toml" loaded
 * FAIL  permission access_plugin_data update: …; fix: add the rule …
 * ```
 *
 * Known secrets (the SMTP password, the Mailgun key) are replaced by `[redacted]` in every line,
 * as a last guard: the messages printed come from errors that already leave them out.
 * @module
 */

/** The status word of a line. */
export type CheckStatus = "OK" | "WARN" | "FAIL" | "SKIP";

/** One printed check. */
export interface CheckLine {
  status: CheckStatus;
  /** What was checked and what was found. */
  what: string;
  /** What to do about a FAIL or WARN (or why a check was skipped). */
  fix?: string;
}

/** Formats one line: the status padded to 6 columns, then `what`, then `; fix: <fix>`. */
export function formatLine(line: CheckLine): string {
  const label = line.status === "SKIP" ? "reason" : "fix";
  const tail = line.fix ? `; ${label}: ${line.fix}` : "";
  return `${line.status.padEnd(6)}${oneLine(line.what)}${oneLine(tail)}`;
}

function oneLine(s: string): string {
  return s.replace(/\s*[\r\n]+\s*/g, " ");
}

/** Collects and prints the lines of one run. */
export class CheckReport {
  readonly lines: CheckLine[] = [];
  readonly #write: (text: string) => void;
  readonly #secrets: string[] = [];

  /** `write` receives each line (with its newline) as soon as it is known. */
  constructor(write: (text: string) => void) {
    this.#write = write;
  }

  /** Whether any check failed (the exit code is then 1). */
  get failed(): boolean {
    return this.lines.some((l) => l.status === "FAIL");
  }

  /** A value that must never be printed (passwords, API keys); ignored when shorter than 4. */
  addSecret(secret: string | undefined): void {
    if (secret && secret.length >= 4) this.#secrets.push(secret);
  }

  ok(what: string): void {
    this.#add({ status: "OK", what });
  }

  warn(what: string, fix?: string): void {
    this.#add({ status: "WARN", what, fix });
  }

  fail(what: string, fix: string): void {
    this.#add({ status: "FAIL", what, fix });
  }

  skip(what: string, reason: string): void {
    this.#add({ status: "SKIP", what, fix: reason });
  }

  /** Prints a block of text (e.g. a role YAML) indented under the last line. */
  block(text: string): void {
    const body = text.replace(/\n+$/, "").split("\n").map((l) => `      ${l}`).join("\n");
    this.#write(`${this.#redact(body)}\n`);
  }

  /** The closing line: how many checks failed, warned and passed. */
  summary(): void {
    const count = (s: CheckStatus) => this.lines.filter((l) => l.status === s).length;
    const verdict = this.failed ? "FAIL" : "OK";
    this.#write(
      `\n${verdict}: ${count("FAIL")} failed, ${count("WARN")} warnings, ${count("OK")} passed, ` +
        `${count("SKIP")} skipped\n`,
    );
  }

  #add(line: CheckLine): void {
    const clean = {
      ...line,
      what: this.#redact(line.what),
      fix: line.fix === undefined ? undefined : this.#redact(line.fix),
    };
    this.lines.push(clean);
    this.#write(`${formatLine(clean)}\n`);
  }

  #redact(text: string): string {
    let out = text;
    for (const secret of this.#secrets) out = out.split(secret).join("[redacted]");
    return out;
  }
}
