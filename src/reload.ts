/**
 * The parts of a reload (SIGHUP) that need no I/O: what changed between two configurations, what
 * that change needs, and a queue that runs reloads one at a time without losing a request.
 *
 * What a reload may change, and how it takes effect (the README's "Reloading the
 * configuration" says the same to operators):
 * - in place, at once: `role_to_recipients` and `delivery.notify_requester` (for requests first
 *   seen from then on: the recipients of a request are chosen once), `[log]` (the log file is
 *   reopened in any case), the mailer (`[smtp]`, `[mailgun]`, `delivery.sender`; password and
 *   key files are re-read), built and health-checked before it replaces the old one, whose
 *   sends in flight finish;
 * - with a new Teleport connection: `[teleport]` (address, identity, refresh), a different
 *   certificate in the identity file, or a change between SMTP and Mailgun. The new connection
 *   is made and watching before the old one stops, and the work is handed over through plugin
 *   data as on a restart (see `pipeline.ts`);
 * - never (restart needed): the environment variables and command-line flags.
 */
import type { Config } from "./config/types.ts";

/** What changed, by TOML key or section, in the order an operator reads them. */
export type ConfigChange =
  | "teleport"
  | "identity"
  | "smtp"
  | "mailgun"
  | "delivery.sender"
  | "delivery.notify_requester"
  | "role_to_recipients"
  | "log";

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * The sections and keys that differ between `before` and `after` (`identity`, a new certificate
 * in an unchanged identity file, is found by the app, which re-reads the file).
 */
export function configChanges(before: Config, after: Config): ConfigChange[] {
  const changes: ConfigChange[] = [];
  if (!same(before.teleport, after.teleport)) changes.push("teleport");
  if (!same(before.smtp, after.smtp)) changes.push("smtp");
  if (!same(before.mailgun, after.mailgun)) changes.push("mailgun");
  if (before.delivery.sender !== after.delivery.sender) changes.push("delivery.sender");
  if (before.delivery.notifyRequester !== after.delivery.notifyRequester) {
    changes.push("delivery.notify_requester");
  }
  if (!same(before.roleToRecipients, after.roleToRecipients)) changes.push("role_to_recipients");
  if (!same(before.log, after.log)) changes.push("log");
  return changes;
}

/** Whether `changes` need a new mailer. */
export function needsNewMailer(changes: readonly ConfigChange[]): boolean {
  return changes.some((c) => c === "smtp" || c === "mailgun" || c === "delivery.sender");
}

/** Whether `changes` need a new Teleport connection (and so a new pipeline). */
export function needsNewConnection(before: Config, after: Config): boolean {
  return !same(before.teleport, after.teleport) ||
    (before.smtp === undefined) !== (after.smtp === undefined);
}

/**
 * Runs reloads one at a time. A request while one runs is queued (several queued requests make
 * one more reload, which reads the newest file: nothing is lost). Requests made while paused
 * (during start-up) run once {@link resume} is called.
 */
export class ReloadQueue {
  readonly #run: () => Promise<void>;
  #pending = false;
  #paused = true;
  #stopped = false;
  #running: Promise<void> | undefined;

  constructor(run: () => Promise<void>) {
    this.#run = run;
  }

  /** Asks for a reload. */
  request(): void {
    if (this.#stopped) return;
    this.#pending = true;
    if (!this.#paused) this.#running ??= this.#loop();
  }

  /** Starts running requests (the app is ready). */
  resume(): void {
    this.#paused = false;
    if (this.#pending) this.#running ??= this.#loop();
  }

  /** Takes no more requests; resolves once the running reload (if any) has ended. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#running;
  }

  async #loop(): Promise<void> {
    // Bounded: each turn consumes the pending flag, which only a new request sets again.
    while (this.#pending && !this.#stopped) {
      this.#pending = false;
      await this.#run().catch(() => {}); // The reload reports its own failures.
    }
    this.#running = undefined;
  }
}
