/**
 * Sends what a plan lists, under a lease this invocation holds, and records each send with it
 * (see `lease.ts` for why that is exactly-once, `plan.ts` for what is sent and in which order):
 * first the new threads, then per thread its reviews and the resolution.
 *
 * Failures: a *permanent* failure of a recipient or thread is recorded as handled (never
 * retried); a *retryable* one (after in-event retries with backoff while the event deadline
 * allows) leaves it unhandled, and {@link Delivery.finish} fails the event so a later attempt
 * sends it. A shutdown that cut sends off is reported as {@link RequestInterrupted}, with a
 * warning per unsent email, not as a failure.
 */
import type { Logger } from "@logtape/logtape";
import { type Limiter, pool, withRetry } from "../async.ts";
import { MailerError, RequestFailure, RequestInterrupted, ShutdownAbort } from "../errors.ts";
import type { Mailer, SentEmail } from "../mailers/mailer.ts";
import type { AccessReview } from "../teleport/types.ts";
import type { EmailContent, RequestContext, ResolutionInfo } from "../templates/mod.ts";
import type { Lease } from "./lease.ts";
import type { Plan, Rec, Reply, RequestEvent } from "./plan.ts";
import { formatGoTimestamp, type ResolutionTag, threadEncodingProblem } from "./plugin_data.ts";
import { sendFailureRetry } from "./retry_words.ts";

/** The templates; default: `src/templates/`. Tests may substitute their own. */
export interface Composer {
  newRequest(ctx: RequestContext): EmailContent;
  resolution(ctx: RequestContext, res: ResolutionInfo): EmailContent;
  review(ids: { clusterName: string; requestId: string }, review: AccessReview): EmailContent;
}

/** How sends are made; shared by every invocation of a handler. */
export interface SendPolicy {
  mailer: Mailer;
  composer: Composer;
  clusterName: string;
  webProxyAddr?: string;
  /** Limits parallel sends over all requests; undefined = unlimited. */
  limiter?: Limiter;
  /** Parallel sends per request. */
  concurrency: number;
  /** Attempts per email within one event for retryable failures. */
  attempts: number;
  /** First backoff between send attempts, in ms. */
  backoffMs: number;
  /** Wall clock. */
  now: () => Date;
}

/** One handler invocation's sending, under its lease. */
export interface DeliveryOptions {
  policy: SendPolicy;
  ev: RequestEvent;
  requestId: string;
  lease: Lease;
  /** Plans from the current record (the plan changes as sends are recorded). */
  plan: (rec: Rec) => Plan;
  /** The event deadline (or shutdown). */
  signal: AbortSignal;
  log: Logger;
}

/** What {@link Delivery.reply} sends on one thread. */
interface ReplyEmail {
  reply: Reply;
  content: EmailContent;
  /** The `kind` logged with `Successfully sent`. */
  kind: string;
  /** Marks the email handled in the record. */
  mark: (r: Rec) => void;
}

function isRetryable(err: unknown): boolean {
  return err instanceof MailerError ? err.retryable : true;
}

function errorOf(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** Sends and records the emails one invocation is due to send. */
export class Delivery {
  readonly #o: DeliveryOptions;
  readonly #failures: Error[] = [];
  /** Emails not sent (yet) for a retryable reason, for the shutdown warning. */
  readonly #unsent: Array<{ email: string; kind: string }> = [];
  #retryable = false;
  /** The records of new threads, settled by the release at the latest (see {@link recorded}). */
  readonly #records: Promise<void>[] = [];
  /** Emails sent so far. */
  sent = 0;

  constructor(opts: DeliveryOptions) {
    this.#o = opts;
  }

  /** Whether every planned email was sent or failed permanently so far. */
  get clean(): boolean {
    return this.#failures.length === 0;
  }

  #fail(err: unknown, email?: string, kind?: string): void {
    this.#failures.push(errorOf(err));
    if (!isRetryable(err)) return;
    this.#retryable = true;
    if (email !== undefined && kind !== undefined) this.#unsent.push({ email, kind });
  }

  /** Sends the new-request email to every planned recipient without a thread. */
  async newThreads(): Promise<void> {
    const { ev, lease, policy } = this.#o;
    const p = this.#o.plan(lease.rec);
    if (p.newThreads.length === 0 || ev.op !== "put") return;
    const content = policy.composer.newRequest(this.#context(lease.rec));
    await pool(
      p.newThreads,
      policy.concurrency,
      (email) => this.#newThread(email, content),
      (err) => this.#fail(err),
    );
  }

  /**
   * Sends the new-request email to `email` and asks for its record without waiting for it (no
   * later email of this invocation needs it before {@link replies}, which writes the waiting
   * records first; else the release writes them): `Successfully sent` is logged once recorded.
   */
  async #newThread(email: string, content: EmailContent): Promise<void> {
    const { lease, log } = this.#o;
    let res: SentEmail;
    try {
      res = await this.#send(email, content, undefined);
    } catch (err) {
      if (err instanceof MailerError && !err.retryable) {
        this.#recordLater(lease.record((r) => addFailed(r, email)));
      }
      this.#fail(err, email, "new threads");
      return;
    }
    const timestamp = formatGoTimestamp(this.#o.policy.now());
    this.sent++;
    const thread = { email, timestamp, messageId: res.messageId };
    const problem = threadEncodingProblem(thread);
    const recorded = lease.record((r) => {
      // Go's thread list cannot hold it: sent, but no replies (never resent).
      if (problem !== undefined) return addFailed(r, email);
      if (!r.data.threads.some((t) => t.email === email)) r.data.threads.push(thread);
      r.delivery.threads[email] = { reviews: 0, resolved: false };
    });
    this.#recordLater(
      recorded.then(() => {
        if (problem !== undefined) {
          log.warn("Cannot store email thread in plugin data", { email, error: problem });
        }
        log.info("Successfully sent", {
          email,
          timestamp,
          message_id: res.messageId,
          kind: "new threads",
        });
      }),
      email,
    );
  }

  /** Keeps a record's outcome for {@link recorded}: a failed record fails the event. */
  #recordLater(recorded: Promise<void>, email?: string): void {
    this.#records.push(recorded.catch((err) => this.#fail(err, email, "new threads")));
  }

  /** Waits for every record asked for by {@link newThreads} (call after the release). */
  async recorded(): Promise<void> {
    await Promise.all(this.#records);
  }

  /**
   * Sends every thread its missing reviews, then the resolution when one is due. Returns
   * whether a resolution email was sent.
   */
  async replies(): Promise<boolean> {
    const { ev, lease, policy, requestId, log } = this.#o;
    if (this.#o.plan(lease.rec).replies.length === 0) return false;
    // A thread's next email follows its first one's record.
    await lease.flush();
    const p = this.#o.plan(lease.rec);
    const logged = new Set<number>();
    const reviews = ev.op === "put" ? ev.request.reviews : [];
    let resolution: EmailContent | undefined;
    let resolutionSent = false;
    await pool(p.replies, policy.concurrency, async (reply) => {
      for (let i = reply.fromReview; i < reply.toReview; i++) {
        const review = reviews[i];
        if (!logged.has(i)) {
          logged.add(i);
          log.info("New review for request", {
            request_id: requestId,
            author: review.author,
            state: review.proposedState,
          });
        }
        const content = policy.composer.review(
          { clusterName: policy.clusterName, requestId },
          review,
        );
        const mark = (r: Rec) =>
          progress(r, reply.email, (prog) => prog.reviews = Math.max(prog.reviews, i + 1));
        const ok = await this.#reply({ reply, content, kind: "new review", mark });
        if (ok === "retry") return;
      }
      if (!reply.resolution) return;
      resolution ??= this.#resolutionContent(lease.rec);
      const mark = (r: Rec) => progress(r, reply.email, (prog) => prog.resolved = true);
      const ok = await this.#reply({ reply, content: resolution, kind: "request resolved", mark });
      if (ok === "sent") resolutionSent = true;
    }, (err) => this.#fail(err));
    return resolutionSent;
  }

  async #reply(e: ReplyEmail): Promise<"sent" | "failed" | "retry"> {
    const { lease, log } = this.#o;
    try {
      const res = await this.#send(e.reply.email, e.content, e.reply.messageId || undefined);
      await lease.record(e.mark);
      this.sent++;
      log.info("Successfully sent", {
        email: e.reply.email,
        timestamp: formatGoTimestamp(this.#o.policy.now()),
        message_id: res.messageId,
        kind: e.kind,
      });
      return "sent";
    } catch (err) {
      this.#fail(err, e.reply.email, e.kind);
      if (err instanceof MailerError && !err.retryable) {
        // Permanently undeliverable to this thread: count it as handled, move on.
        await lease.record(e.mark);
        return "failed";
      }
      return "retry";
    }
  }

  /** Sends one email, retrying retryable failures with backoff while the event has time. */
  async #send(to: string, content: EmailContent, inReplyTo: string | undefined) {
    const { policy, signal } = this.#o;
    const email = { to, ...content, inReplyTo };
    const limiter = policy.limiter;
    const { lease } = this.#o;
    const send = () => lease.during(() => policy.mailer.send(email, { signal }));
    const once = (): Promise<SentEmail> =>
      limiter === undefined ? send() : limiter.run(send, signal);
    return await withRetry(once, {
      signal,
      isRetryable,
      maxAttempts: Math.max(1, policy.attempts),
      baseMs: policy.backoffMs,
      capMs: 2000,
    });
  }

  #context(rec: Rec): RequestContext {
    const { ev, policy, requestId } = this.#o;
    const req = ev.op === "put" ? ev.request : undefined;
    return {
      clusterName: policy.clusterName,
      requestId,
      user: rec.data.user,
      roles: rec.data.roles,
      requestReason: rec.data.requestReason,
      webProxyAddr: policy.webProxyAddr,
      requestedResources: req?.requestedResources,
      expires: req?.expires,
    };
  }

  #resolutionContent(rec: Rec): EmailContent {
    const tag = rec.data.resolution.tag as Exclude<ResolutionTag, "">;
    return this.#o.policy.composer.resolution(this.#context(rec), {
      tag,
      reason: rec.data.resolution.reason,
      accessListTitle: tag === "PROMOTED" ? rec.delivery.title : undefined,
    });
  }

  /**
   * The invocation's result once the lease is released: the number of emails sent, or a
   * {@link RequestInterrupted} (cut off by shutdown: the emails are simply not sent yet; the
   * next start or another replica sends them) or a retryable {@link RequestFailure} thrown.
   * Permanent failures are logged and not thrown (nothing to retry).
   */
  finish(): number {
    const { log, requestId, signal } = this.#o;
    const failures = this.#failures;
    if (failures.length === 0) return this.sent;
    if (this.#unsent.length === failures.length && signal.reason instanceof ShutdownAbort) {
      for (const u of this.#unsent) {
        log.warn(
          "Email not sent because the plugin is shutting down; the next start or another replica will send it",
          { email: u.email, kind: u.kind },
        );
      }
      throw new RequestInterrupted(requestId, this.#unsent.map((u) => u.email));
    }
    const failure = new RequestFailure("Failed to send emails", failures, this.#retryable);
    log.error("Failed send one or more messages", {
      error: failure.message,
      retry: sendFailureRetry(failures),
    });
    if (this.#retryable) throw failure;
    return this.sent;
  }
}

function addFailed(r: Rec, email: string): void {
  if (!r.delivery.failed.includes(email)) r.delivery.failed.push(email);
}

function progress(
  r: Rec,
  email: string,
  raise: (prog: { reviews: number; resolved: boolean }) => void,
): void {
  const prog = r.delivery.threads[email] ?? { reviews: 0, resolved: false };
  raise(prog);
  r.delivery.threads[email] = prog;
}
