/**
 * A pool of {@link SmtpSession}s: at most `maxConnections` open at once, each used for one
 * transaction at a time and for at most `maxMessages` messages (then closed, as nodemailer's
 * pool does, so one connection does not stay open forever), closed after `idleMs` unused.
 * Senders beyond the pool size wait in arrival order.
 */
import { abortable as abortableBy } from "../async.ts";
import { SmtpError } from "./smtp_error.ts";
import type { SmtpSession } from "./smtp_session.ts";

/** Limits of a {@link SmtpPool}. */
export interface PoolLimits {
  maxConnections: number;
  maxMessages: number;
  /** An unused connection is closed (QUIT) after this long. */
  idleMs: number;
}

interface Idle {
  session: SmtpSession;
  timer: ReturnType<typeof setTimeout>;
}

interface Waiter {
  resolve: (session: SmtpSession | undefined) => void;
}

/** Pooled SMTP connections, opened on demand by `open`. */
export class SmtpPool {
  readonly #open: () => Promise<SmtpSession>;
  readonly #limits: PoolLimits;
  readonly #idle: Idle[] = [];
  readonly #waiters: Waiter[] = [];
  /** Connections open or opening (idle ones included). */
  #count = 0;
  #closed = false;

  constructor(open: () => Promise<SmtpSession>, limits: PoolLimits) {
    this.#open = open;
    this.#limits = limits;
  }

  /**
   * Runs `use` on a pooled session (opening one when none is free and the pool has room).
   * Aborting `signal` rejects with an `EABORT` error at once; a session then in use is closed
   * (what it was doing may still complete on the server).
   */
  async use<T>(use: (session: SmtpSession) => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (signal?.aborted) throw abortError();
    const acquiring = this.#acquire(signal);
    let session: SmtpSession;
    try {
      session = await abortable(acquiring, signal);
    } catch (err) {
      // Aborted while a connection was opening: it goes to the pool when it is ready.
      acquiring.then((s) => this.#release(s), () => {});
      throw err;
    }
    const onAbort = () => session.close();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      return await abortable(use(session), signal);
    } finally {
      signal?.removeEventListener("abort", onAbort);
      this.#release(session);
    }
  }

  /** Closes every idle connection and every connection as it is released. */
  close(): void {
    this.#closed = true;
    for (const idle of this.#idle.splice(0)) this.#discard(idle);
    for (const waiter of this.#waiters.splice(0)) waiter.resolve(undefined);
  }

  async #acquire(signal?: AbortSignal): Promise<SmtpSession> {
    for (;;) {
      if (this.#closed) throw new SmtpError("The SMTP pool is closed", { code: "ECONNECTION" });
      const idle = this.#idle.pop();
      if (idle !== undefined) {
        clearTimeout(idle.timer);
        if (idle.session.usable) return idle.session;
        this.#count--;
        continue;
      }
      if (this.#count < this.#limits.maxConnections) {
        this.#count++;
        try {
          return await this.#open();
        } catch (err) {
          this.#count--;
          this.#waiters.shift()?.resolve(undefined);
          throw err;
        }
      }
      const handed = await this.#wait(signal);
      if (handed !== undefined) return handed;
    }
  }

  /** Waits for a session handed over on release (undefined: room to open one, or closed). */
  #wait(signal?: AbortSignal): Promise<SmtpSession | undefined> {
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        resolve: (session) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(session);
        },
      };
      const onAbort = () => {
        const i = this.#waiters.indexOf(waiter);
        if (i >= 0) this.#waiters.splice(i, 1);
        reject(abortError());
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(waiter);
    });
  }

  /** Back to the pool, to a waiter, or closed (unusable, or its message budget spent). */
  #release(session: SmtpSession): void {
    const reusable = !this.#closed && session.usable &&
      session.messages < this.#limits.maxMessages;
    if (!reusable) {
      void session.quit();
      this.#count--;
      this.#waiters.shift()?.resolve(undefined);
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) {
      waiter.resolve(session);
      return;
    }
    const idle: Idle = {
      session,
      timer: setTimeout(() => {
        const i = this.#idle.indexOf(idle);
        if (i < 0) return;
        this.#idle.splice(i, 1);
        this.#discard(idle);
      }, this.#limits.idleMs),
    };
    this.#idle.push(idle);
  }

  #discard(idle: Idle): void {
    clearTimeout(idle.timer);
    this.#count--;
    void idle.session.quit();
  }
}

function abortError(): Error {
  return new SmtpError("the operation was cancelled (deadline exceeded)", { code: "EABORT" });
}

/**
 * `promise`, rejected early when `signal` aborts (`async.ts`'s `abortable`), with an EABORT error
 * in SMTP's shape instead of the signal's reason.
 */
export function abortable<T>(promise: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return promise;
  return abortableBy(promise, signal).catch((err) => {
    throw signal.aborted && err === signal.reason ? abortError() : err;
  });
}
