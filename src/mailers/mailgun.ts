/**
 * Mailgun transport: one multipart `POST {apiBase}/{domain}/messages` per email, with `fetch` and
 * the built-in `FormData`.
 *
 * Why not `npm:mailgun.js`: the API is one form POST, and calling it directly removes axios,
 * honours our AbortSignal, and gives exact errors (mailgun.js reports network failures and
 * timeouts as HTTP status 400, which would need string matching to classify).
 *
 * Differences from the Go plugin (`mailgun-go`):
 * - `apiBase` is configurable (EU region, issue #61370).
 * - Follow-up headers carry exactly one pair of angle brackets (Go sends `<<id>>`).
 * - Every email carries `Auto-Submitted: auto-generated` and `X-Auto-Response-Suppress: All`
 *   (`h:` parameters), so auto-responders do not answer.
 * - The health check never sends mail: `GET {apiBase}/domains/{domain}` (key and domain); when
 *   that answers 401/403 (a domain *sending* key may only send) or 404, it posts an empty
 *   test-mode message form to `{domain}/messages`, which Mailgun answers with 400 (missing
 *   parameters) once key and domain are accepted, else 401/404. Go instead sends a test-mode
 *   message (`o:testmode=yes`) to the `"*"` recipients, which Mailgun may bill.
 */

import { ConfigError, MailerError } from "../errors.ts";
import type { MailgunConfig } from "../config/types.ts";
import { AUTOMATED_HEADERS, type Mailer, type OutgoingEmail, type SentEmail } from "./mailer.ts";
import { bracketed } from "./message_id.ts";
import { checkRecipient, oneLine } from "./address.ts";

/** Options of {@link MailgunMailer} that are not part of the TOML configuration. */
export interface MailgunMailerOptions {
  /** Per-request timeout in ms. Default 10 000 (as the Go plugin). */
  timeoutMs?: number;
}

/** The US API base, `mailgun-go`'s default. */
export const MAILGUN_US_API_BASE = "https://api.mailgun.net/v3";
/** The EU API base. */
export const MAILGUN_EU_API_BASE = "https://api.eu.mailgun.net/v3";

const FORBIDDEN_DOMAIN_CHARS = /[:&'@(),!?#;%+=<>/\\\s]/;

const AUTH_HINT =
  `check mailgun.private_key (or private_key_file); a domain in Mailgun's EU region needs mailgun.region = "eu" (API base "${MAILGUN_EU_API_BASE}")`;

/**
 * Throws ConfigError unless `domain` is usable: not empty and none of
 * `:&'@(),!?#;%+=<>` (mailgun-go's check), `/`, `\` or white space.
 */
export function validateMailgunDomain(domain: string): void {
  if (domain === "") {
    throw new ConfigError("mailgun.domain", "provide mailgun.domain to use Mailgun");
  }
  if (FORBIDDEN_DOMAIN_CHARS.test(domain)) {
    throw new ConfigError(
      "mailgun.domain",
      `Invalid "mailgun.domain" ${
        JSON.stringify(domain)
      }: it must not contain any of :&'@(),!?#;%+=<>/\\ or spaces`,
    );
  }
}

/** Mailgun HTTP API transport. */
export class MailgunMailer implements Mailer {
  readonly kind = "mailgun" as const;
  readonly #domain: string;
  readonly #key: string;
  readonly #apiBase: string;
  readonly #sender: string;
  readonly #timeoutMs: number;

  /** Validates domain, key and API base (ConfigError); makes no request. */
  constructor(cfg: MailgunConfig, sender: string, opts: MailgunMailerOptions = {}) {
    validateMailgunDomain(cfg.domain);
    if (cfg.privateKey === "") {
      throw new ConfigError(
        "mailgun.private_key",
        "provide mailgun.private_key or mailgun.private_key_file to use Mailgun",
      );
    }
    const apiBase = (cfg.apiBase || MAILGUN_US_API_BASE).replace(/\/+$/, "");
    if (!/^https?:\/\/[^/]/.test(apiBase)) {
      throw new ConfigError(
        "mailgun.api_base",
        `Invalid Mailgun API base ${JSON.stringify(apiBase)}: expected an http(s) URL`,
      );
    }
    this.#domain = cfg.domain;
    this.#key = cfg.privateKey;
    this.#apiBase = apiBase;
    this.#sender = sender;
    this.#timeoutMs = opts.timeoutMs ?? 10_000;
  }

  /** The API base in use (no trailing slash). */
  get apiBase(): string {
    return this.#apiBase;
  }

  /** Sends one email; returns Mailgun's `id` exactly as returned (with angle brackets). */
  async send(email: OutgoingEmail, opts: { signal?: AbortSignal } = {}): Promise<SentEmail> {
    checkRecipient(email.to);
    const form = new FormData();
    form.append("from", this.#sender);
    form.append("to", email.to);
    form.append("subject", oneLine(email.subject));
    form.append("text", email.text);
    if (email.html) form.append("html", email.html);
    form.append("o:require-tls", "true");
    for (const [name, value] of Object.entries(AUTOMATED_HEADERS)) form.append(`h:${name}`, value);
    const thread = email.inReplyTo ? bracketed(email.inReplyTo) : "";
    if (thread) {
      form.append("h:In-Reply-To", thread);
      form.append("h:References", thread);
    }
    const url = `${this.#apiBase}/${encodeURIComponent(this.#domain)}/messages`;
    const where = `Cannot send email to ${
      JSON.stringify(email.to)
    } via Mailgun domain "${this.#domain}"`;
    const res = await this.#request("POST", url, form, where, email.to, opts.signal);
    let id = "";
    try {
      const body = JSON.parse(res.body) as { id?: unknown };
      if (typeof body.id === "string") id = body.id;
    } catch {
      // Accepted but not JSON: the message is queued; threading just has no ID.
    }
    return { messageId: id };
  }

  /**
   * Checks the key and domain without sending mail (see the module documentation).
   * 401/403 → permanent with a hint about the key and the EU region; 404 → domain not found;
   * 429, 5xx and network failures → retryable.
   */
  async healthCheck(opts: { signal?: AbortSignal } = {}): Promise<string> {
    const where = `Cannot verify Mailgun domain "${this.#domain}" at "${this.#apiBase}"`;
    const domainUrl = `${this.#apiBase}/domains/${encodeURIComponent(this.#domain)}`;
    const accepted = `API key and domain ${
      JSON.stringify(this.#domain)
    } accepted by ${this.#apiBase}`;
    try {
      await this.#request("GET", domainUrl, undefined, where, undefined, opts.signal);
      return `${accepted} (domain read, nothing sent)`;
    } catch (err) {
      const code = err instanceof MailerError ? err.code : undefined;
      if (code !== 401 && code !== 403 && code !== 404) throw err;
    }
    // A domain sending key may not read the domain (401/403), and the domains route may move
    // (404): ask the sending endpoint itself. An empty message form is refused with 400
    // (missing parameters) only after the key and the domain were accepted; nothing is sent.
    const probe = new FormData();
    probe.append("o:testmode", "yes");
    const url = `${this.#apiBase}/${encodeURIComponent(this.#domain)}/messages`;
    try {
      await this.#request("POST", url, probe, where, undefined, opts.signal);
    } catch (err) {
      if (err instanceof MailerError && err.code === 400) {
        return `${accepted} (empty test-mode form refused with 400, nothing sent)`;
      }
      throw err;
    }
    // Accepted an empty form: nothing to send, so nothing was sent; key and domain are fine.
    return `${accepted} (nothing sent)`;
  }

  /** Nothing to close (fetch keeps no pool we own). */
  close(): Promise<void> {
    return Promise.resolve();
  }

  async #request(
    method: "GET" | "POST",
    url: string,
    body: FormData | undefined,
    where: string,
    recipient: string | undefined,
    signal: AbortSignal | undefined,
  ): Promise<{ status: number; body: string }> {
    const timeout = AbortSignal.timeout(this.#timeoutMs);
    const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
    let res: Response;
    let text: string;
    try {
      res = await fetch(url, {
        method,
        body,
        headers: { authorization: `Basic ${btoa(`api:${this.#key}`)}` },
        signal: combined,
      });
      text = await res.text();
    } catch (err) {
      const timedOut = timeout.aborted && !signal?.aborted;
      const code = timedOut ? "ETIMEDOUT" : signal?.aborted ? "EABORT" : "ENETWORK";
      const detail = timedOut
        ? `no response within ${this.#timeoutMs} ms from ${method} ${url}`
        : signal?.aborted
        ? `the operation was cancelled (deadline exceeded)`
        : `${method} ${url} failed: ${this.#redact(errorText(err))}`;
      throw new MailerError(`${where}: ${detail}`, {
        cause: err,
        code,
        recipient,
        retryable: true,
      });
    }
    if (res.ok) return { status: res.status, body: text };
    const status = res.status;
    const retryable = status === 429 || status >= 500;
    let hint: string | undefined;
    if (status === 401 || status === 403) hint = AUTH_HINT;
    if (status === 404) hint = `check mailgun.domain; ${AUTH_HINT}`;
    const reason = status === 401 || status === 403
      ? "invalid API key or wrong region (api_base)"
      : status === 404
      ? "domain not found"
      : status === 429
      ? "rate limited"
      : res.statusText || "request failed";
    const detail = `${method} ${url} returned HTTP ${status} (${reason}): ${
      this.#redact(summarize(text))
    }`;
    throw new MailerError(`${where}: ${detail}`, { code: status, recipient, retryable, hint });
  }

  #redact(text: string): string {
    return text.split(this.#key).join("[redacted]");
  }
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : "";
    return `${err.message}${cause}`;
  }
  return String(err);
}

/** The `message` of a JSON error body, or the first 200 characters of the text. */
function summarize(text: string): string {
  try {
    const body = JSON.parse(text) as { message?: unknown };
    if (typeof body.message === "string") return body.message;
  } catch {
    // not JSON
  }
  const flat = text.replace(/\s+/g, " ").trim();
  return flat.length > 200 ? `${flat.slice(0, 200)}…` : flat || "(empty body)";
}
