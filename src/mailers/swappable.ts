/**
 * A {@link Mailer} that forwards to a replaceable one, so that a reload (SIGHUP) can change the
 * transport, its settings or the sender without stopping the handlers: sends started before
 * {@link SwappableMailer.replace} finish on the previous mailer, which is closed once the last
 * of them has settled; sends started after it use the new one.
 */
import type { Mailer, OutgoingEmail, SentEmail } from "./mailer.ts";

/** See the module documentation. */
export class SwappableMailer implements Mailer {
  #current: Mailer;
  /** Sends in flight per mailer (only mailers with some are listed). */
  readonly #inFlight = new Map<Mailer, number>();
  /** Replaced mailers whose sends are still running. */
  readonly #retired = new Set<Mailer>();
  /** Closings of replaced mailers, awaited by {@link close}. */
  readonly #closing = new Set<Promise<void>>();

  constructor(first: Mailer) {
    this.#current = first;
  }

  get kind(): Mailer["kind"] {
    return this.#current.kind;
  }

  /** The mailer new sends go to. */
  get current(): Mailer {
    return this.#current;
  }

  async send(email: OutgoingEmail, opts: { signal?: AbortSignal } = {}): Promise<SentEmail> {
    const mailer = this.#current;
    this.#inFlight.set(mailer, (this.#inFlight.get(mailer) ?? 0) + 1);
    try {
      return await mailer.send(email, opts);
    } finally {
      const left = this.#inFlight.get(mailer)! - 1;
      if (left > 0) this.#inFlight.set(mailer, left);
      else {
        this.#inFlight.delete(mailer);
        if (this.#retired.delete(mailer)) this.#closeLater(mailer);
      }
    }
  }

  healthCheck(opts: { signal?: AbortSignal; recipient?: string } = {}): Promise<string | void> {
    return this.#current.healthCheck(opts);
  }

  /** Sends from now on go to `next`; the previous mailer closes once its sends settled. */
  replace(next: Mailer): void {
    const previous = this.#current;
    if (previous === next) return;
    this.#current = next;
    if (this.#inFlight.has(previous)) this.#retired.add(previous);
    else this.#closeLater(previous);
  }

  /** Closes the current mailer and the previous ones (at shutdown, their sends have ended). */
  async close(): Promise<void> {
    for (const mailer of this.#retired) this.#closeLater(mailer);
    this.#retired.clear();
    await this.#current.close();
    while (this.#closing.size > 0) await Promise.all([...this.#closing]);
  }

  #closeLater(mailer: Mailer): void {
    const done: Promise<void> = mailer.close().catch(() => {}).finally(() =>
      this.#closing.delete(done)
    );
    this.#closing.add(done);
  }
}
