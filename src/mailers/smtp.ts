/**
 * SMTP transport: pooled connections on Deno's sockets (`smtp_session.ts`, `smtp_pool.ts`), messages
 * built as nodemailer builds them (`mime.ts`; nodemailer's composer for the rare message whose
 * addresses or thread ID need encoding).
 *
 * Behaviour (compared with the Go plugin, `gopkg.in/mail.v2`):
 * - Port 465 (or `implicitTls`) is implicit TLS and overrides `starttls_policy`.
 * - `mandatory` (default): STARTTLS is required; a server without it fails with a permanent
 *   error. `opportunistic`: upgrade when STARTTLS is offered, else plain text. Like Go, an
 *   offered STARTTLS that fails (for example an untrusted certificate) is an error, not a
 *   fall-back to plain text. `disabled`: never upgrade.
 * - Certificates are checked against the runtime's default roots plus `smtp.ca_file` (Deno's
 *   `caCerts` add to them); the server name is the host (SNI only when the host is a name, not
 *   an IP address).
 * - AUTH picks the mechanism as Go's mail library does (`smtp_session.ts`).
 * - AUTH only when the server advertises it. Credentials over an unencrypted connection to a
 *   non-loopback host: Go always refuses (issue #66685). Here they are allowed only with an
 *   explicit `starttls_policy = "disabled"` (a warning is logged once at start-up). With
 *   `opportunistic`, a connection that did not upgrade is refused before AUTH (`ECLEARTEXT`,
 *   permanent), checked on every new connection.
 * - Unlike Go (one connection per message), connections are pooled: at most `maxConnections`,
 *   100 messages each, closed after 30 s unused.
 */

import type { Buffer } from "node:buffer";
import { ConfigError, MailerError } from "../errors.ts";
import type { SmtpConfig, StartTlsPolicy } from "../config/types.ts";
import {
  AUTOMATED_HEADERS,
  DEFAULT_SMTP_MAX_CONNECTIONS,
  type Mailer,
  type OutgoingEmail,
  type SentEmail,
} from "./mailer.ts";
import { bare, bracketed, generateMessageId } from "./message_id.ts";
import { mailLocalName } from "./local_name.ts";
import { addressOf, checkRecipient, isLoopbackHost, oneLine } from "./address.ts";
import { connectFailureDetail } from "./net_error.ts";
import { secretForms, type SessionOptions, SmtpSession } from "./smtp_session.ts";
import { dataPayload, wireForm } from "./smtp_wire.ts";
import { abortable, SmtpPool } from "./smtp_pool.ts";
import {
  assembleMessage,
  encodeContent,
  type EncodedContent,
  encodesNatively,
  envelopeOf,
  headerLine,
  HTML_TYPE,
  loadHeaderEncoder,
  plainHeaderValue,
  plainRecipient,
  TEXT_TYPE,
} from "./mime.ts";

/** The logging surface the mailers use; a LogTape `Logger` fits. */
export interface MailerLog {
  debug(message: string, properties?: Record<string, unknown>): void;
  info(message: string, properties?: Record<string, unknown>): void;
  warn(message: string, properties?: Record<string, unknown>): void;
}

/** Options of {@link SmtpMailer} that are not part of the TOML configuration. */
export interface SmtpMailerOptions {
  /**
   * Implicit TLS (SMTPS). Default: `port === 465`. Tests set it because their port is random;
   * when true, `starttls_policy` has no effect (as with port 465).
   */
  implicitTls?: boolean;
  /** Extra trusted CA certificates (PEM). Default: the contents of `smtp.ca_file` when set. */
  ca?: string;
  /** Maximum pooled connections. Default {@link DEFAULT_SMTP_MAX_CONNECTIONS} (5). */
  maxConnections?: number;
  /** TCP connect timeout in ms. Default 10 000 (the Go plugin's dial timeout). */
  connectionTimeoutMs?: number;
  /** Wait for the server greeting in ms. Default 10 000. */
  greetingTimeoutMs?: number;
  /** Inactivity timeout of a connection in ms. Default 30 000. */
  socketTimeoutMs?: number;
  /**
   * EHLO name and Message-ID domain. Default: the host's fully qualified name, else the sender's
   * domain (`local_name.ts`).
   */
  clientName?: string;
  /** Where warnings (clear-text password) and pool errors go. */
  log?: MailerLog;
  /**
   * Treat the host as non-loopback for the clear-text password rules. For tests, which may
   * only use loopback addresses.
   */
  assumeRemote?: boolean;
}

const DEFAULT_TIMEOUT_MS = 10_000;
/** How many encoded contents (subject, text and HTML parts) {@link SmtpMailer} keeps for reuse. */
const BODY_CACHE_SIZE = 32;
const NETWORK_CODES = new Set(["ECONNECTION", "ETIMEDOUT", "ESOCKET", "EDNS", "EPROTOCOL"]);
const CERT_ERROR =
  /certificate|self[- ]signed|altnames|unable to (get|verify)|CERT_|DEPTH_ZERO|UNABLE_TO_/i;

interface NodemailerErrorLike {
  message?: string;
  code?: string;
  responseCode?: number;
  response?: string;
  command?: string;
}

/** SMTP transport. See the module documentation for the TLS and AUTH rules. */
export class SmtpMailer implements Mailer {
  readonly kind = "smtp" as const;
  readonly #cfg: SmtpConfig;
  readonly #sender: string;
  readonly #envelopeFrom: string;
  readonly #implicitTls: boolean;
  readonly #sessionOptions: SessionOptions;
  readonly #pool: SmtpPool;
  readonly #secrets: string[];
  readonly #log?: MailerLog;
  readonly #remote: boolean;
  /**
   * Opportunistic STARTTLS with credentials to a remote host: every connection is checked
   * before AUTH (refused when it did not upgrade).
   */
  readonly #guardedAuth: boolean;
  /** True when the password may travel unencrypted to a non-loopback host. */
  readonly clearTextAuth: boolean;
  /** The EHLO name and the right-hand side of Message-IDs (see `local_name.ts`). */
  readonly localName: string;
  /**
   * Encoded MIME parts by the content's HTML (see {@link #encodedContent}). One email's content
   * goes to every recipient of a request: encoding it once (quoted-printable, line folding)
   * instead of per recipient, saves most of the per-message work.
   */
  readonly #bodies = new Map<string, CachedContent[]>();
  /** The entries of {@link #bodies}, oldest first. */
  readonly #bodyOrder: CachedContent[] = [];
  /** Envelope addresses, normalised once. */
  readonly #envelopes: EnvelopeAddresses;
  /** The headers every message starts with (automated-mail headers, `From`). */
  readonly #headValues: readonly (readonly [string, string])[];
  /** {@link #headValues} encoded, once (at the first send when nodemailer must encode one). */
  #headLines: string[] | undefined;

  /**
   * Builds the pooled transport; connects lazily. Throws ConfigError when `smtp.ca_file`
   * cannot be read or holds no certificate.
   */
  constructor(cfg: SmtpConfig, sender: string, opts: SmtpMailerOptions = {}) {
    this.#cfg = cfg;
    this.#sender = sender;
    this.localName = opts.clientName ?? mailLocalName(sender, { localName: cfg.localName });
    this.#envelopeFrom = addressOf(sender);
    this.#envelopes = new EnvelopeAddresses(this.#envelopeFrom);
    this.#headValues = [...Object.entries(AUTOMATED_HEADERS), ["From", sender]];
    this.#log = opts.log;
    this.#implicitTls = opts.implicitTls ?? cfg.port === 465;
    this.#remote = opts.assumeRemote ?? !isLoopbackHost(cfg.host);
    const ca = opts.ca ?? (cfg.caFile ? readCaFile(cfg.caFile) : undefined);
    const policy: StartTlsPolicy = cfg.starttlsPolicy;
    this.#guardedAuth = !this.#implicitTls && policy === "opportunistic" && !!cfg.username &&
      this.#remote;
    this.#sessionOptions = {
      host: cfg.host,
      port: cfg.port,
      implicitTls: this.#implicitTls,
      policy,
      // Added to the default roots (Deno's `caCerts`), as Go adds them to the system pool.
      caCerts: ca ? [ca] : [],
      name: this.localName,
      connectionTimeoutMs: opts.connectionTimeoutMs ?? DEFAULT_TIMEOUT_MS,
      greetingTimeoutMs: opts.greetingTimeoutMs ?? DEFAULT_TIMEOUT_MS,
      socketTimeoutMs: opts.socketTimeoutMs ?? 30_000,
      auth: cfg.username ? { user: cfg.username, pass: cfg.password } : undefined,
      beforeAuth: (session) => this.#refuseClearText(session),
    };
    this.#pool = new SmtpPool(() => SmtpSession.open(this.#sessionOptions), {
      maxConnections: opts.maxConnections ?? DEFAULT_SMTP_MAX_CONNECTIONS,
      maxMessages: 100,
      idleMs: opts.socketTimeoutMs ?? 30_000,
    });
    this.#secrets = secretForms(cfg.username, cfg.password);
    this.clearTextAuth = !this.#implicitTls && policy === "disabled" && !!cfg.username &&
      this.#remote;
    if (this.clearTextAuth) {
      this.#log?.warn(
        'smtp.starttls_policy is "disabled": the SMTP password is sent in clear text to a non-loopback host',
        { host: cfg.host, port: cfg.port },
      );
    }
  }

  /** `host:port` for messages. */
  get #where(): string {
    return `${this.#cfg.host}:${this.#cfg.port}`;
  }

  /**
   * Sends one email. Generates the Message-ID (returned without brackets). Aborting the signal
   * rejects with a retryable MailerError (`code: "EABORT"`), but a message already handed to the
   * server may still be delivered.
   */
  async send(email: OutgoingEmail, opts: { signal?: AbortSignal } = {}): Promise<SentEmail> {
    checkRecipient(email.to);
    const messageId = generateMessageId({ hostname: this.localName });
    const thread = email.inReplyTo ? bracketed(email.inReplyTo) : "";
    const subject = oneLine(email.subject);
    let message: Outgoing;
    try {
      await this.#loadEncoders(subject, email.to);
      const ids = { thread, messageId };
      const to = plainRecipient(email.to);
      message = to !== undefined && plainHeaderValue(thread)
        ? this.#plainMessage(email, to, subject, ids)
        : await this.#composedMessage(email, subject, ids);
    } catch (err) {
      throw this.#classify(err, "send", email.to);
    }
    for (let attempt = 1;; attempt++) {
      try {
        await this.#pool.use(
          (session) => session.send(message.envelope, message.data),
          opts.signal,
        );
        return { messageId: bare(messageId) };
      } catch (err) {
        // A pooled connection the server closed while idle (421 or EOF) fails at MAIL FROM,
        // before anything was sent: re-send once at once, as Go's mail library re-dials.
        if (attempt === 1 && isStaleConnection(err) && !opts.signal?.aborted) continue;
        throw this.#classify(err, "send", email.to);
      }
    }
  }

  /**
   * Loads nodemailer's header encoder when a header or address of this message needs it (see
   * `mime.ts`), and encodes the headers every message starts with, once.
   */
  async #loadEncoders(subject: string, to: string): Promise<void> {
    if (this.#headLines === undefined) {
      if (!encodesNatively(this.#headValues, [this.#envelopeFrom])) await loadHeaderEncoder();
      this.#headLines = this.#headValues.map(([key, value]) => headerLine(key, value))
        .filter((line) => line !== "");
    }
    if (!encodesNatively([["Subject", subject]], [to])) await loadHeaderEncoder();
  }

  /**
   * A message whose recipient (`to`, as nodemailer writes it) and thread ID are plain header
   * values, assembled here (`mime.ts`) around the content's cached parts, which are in wire form;
   * our header lines never start with a dot, so the message goes out as assembled, with DATA's
   * end marker.
   */
  #plainMessage(email: OutgoingEmail, to: string, subject: string, ids: MessageIds): Outgoing {
    const content = this.#encodedContent(subject, email.text, email.html);
    const headers = { headLines: this.#headLines!, to, date: new Date(), ...ids };
    const data = assembleMessage(headers, content, true);
    return { envelope: this.#envelopes.envelope(email.to), data };
  }

  /**
   * Any other message, built by nodemailer's composer (which encodes and folds the recipient and
   * thread ID; loaded only then), from parts encoded for it (not the cache's wire form).
   */
  async #composedMessage(
    email: OutgoingEmail,
    subject: string,
    { thread, messageId }: MessageIds,
  ): Promise<Outgoing> {
    const content = encodeContent(subject, email.text, email.html);
    const { default: MailComposer } = await import("nodemailer/lib/mail-composer");
    const root = new MailComposer({
      from: this.#sender,
      to: email.to,
      subject,
      // multipart/alternative: text, then HTML (as nodemailer builds it from text and html).
      alternatives: [
        { contentType: TEXT_TYPE, raw: content.text },
        { contentType: HTML_TYPE, raw: content.html },
      ],
      messageId,
      date: new Date(),
      headers: { ...AUTOMATED_HEADERS },
      ...(thread ? { inReplyTo: thread, references: thread } : {}),
    }).compile();
    const bytes: Buffer = await root.build();
    return { envelope: this.#envelopes.envelope(email.to), data: dataPayload(bytes) };
  }

  /** How many encoded contents are kept for reuse (at most 32). */
  get cachedBodies(): number {
    return this.#bodyOrder.length;
  }

  /**
   * The subject line and the text and HTML parts of a content, encoded once, cached. Looked up
   * by the HTML first, the same string for every recipient of an email (hashed once), not by a
   * key joined from the three, which would copy all three per message.
   */
  #encodedContent(subject: string, text: string, html: string): EncodedContent {
    const same = this.#bodies.get(html);
    const cached = same?.find((b) => b.text === text && b.subject === subject);
    if (cached !== undefined) return cached.parts;
    // A content that fails to encode throws here and is not cached.
    const encoded = encodeContent(subject, text, html);
    // In wire form once here (CRLF line ends, dots doubled), so no message needs it again.
    const parts = { ...encoded, text: wireForm(encoded.text), html: wireForm(encoded.html) };
    const entry = { html, subject, text, parts };
    this.#bodies.set(html, [...(same ?? []), entry]);
    this.#bodyOrder.push(entry);
    if (this.#bodyOrder.length > BODY_CACHE_SIZE) this.#forgetOldest();
    return entry.parts;
  }

  #forgetOldest(): void {
    const entry = this.#bodyOrder.shift()!;
    const rest = this.#bodies.get(entry.html)!.filter((b) => b !== entry);
    if (rest.length === 0) this.#bodies.delete(entry.html);
    else this.#bodies.set(entry.html, rest);
  }

  /**
   * Connects, upgrades per policy, authenticates when the server offers AUTH, then probes the
   * envelope without sending anything: `MAIL FROM` (the sender), `RCPT TO` (only when
   * `opts.recipient` is given), `RSET`, and quits. So a server that refuses the sender (e.g.
   * `530 Must issue a STARTTLS command first` under `starttls_policy = "disabled"`) fails here,
   * at start-up, and not at the first email. Resolves with a description of what was checked;
   * throws a MailerError whose message names the server and the cause.
   */
  async healthCheck(opts: { signal?: AbortSignal; recipient?: string } = {}): Promise<string> {
    if (opts.recipient !== undefined) checkRecipient(opts.recipient);
    const opening = SmtpSession.open(this.#sessionOptions);
    let session: SmtpSession | undefined;
    try {
      session = await abortable(opening, opts.signal);
      const probing = this.#probeEnvelope(session, opts.recipient);
      return await abortable(probing, opts.signal);
    } catch (err) {
      opening.then((s) => s.close(), () => {});
      throw this.#classify(err, "connect");
    } finally {
      void session?.quit();
    }
  }

  /** `MAIL FROM`, `RCPT TO` (when `recipient` is set) and `RSET` on an open connection. */
  async #probeEnvelope(session: SmtpSession, recipient: string | undefined): Promise<string> {
    const command = async (line: string, name: "MAIL FROM" | "RCPT TO") => {
      const reply = await session.command(line, name);
      if (reply.code !== 250 && reply.code !== 251) {
        throw this.#envelopeRefusal(reply.text, name, session.secure, recipient);
      }
    };
    const sent = await this.#probeAddresses(recipient);
    await command(`MAIL FROM:<${sent.from}>`, "MAIL FROM");
    if (recipient !== undefined) await command(`RCPT TO:<${sent.to[0]}>`, "RCPT TO");
    await session.command("RSET", "RSET");
    const tls = !session.secure ? "no TLS" : this.#implicitTls ? "implicit TLS" : "STARTTLS";
    const auth = session.authenticated
      ? `AUTH as ${JSON.stringify(this.#cfg.username)}`
      : "no AUTH";
    const envelope = recipient === undefined ? "MAIL FROM" : `MAIL FROM and RCPT TO ${recipient}`;
    return `${tls} (starttls_policy "${this.#cfg.starttlsPolicy}"), ${auth}, ${envelope} accepted, then RSET (nothing sent)`;
  }

  /**
   * The envelope addresses a send would use (nodemailer's normalisation: the domain lower-cased, an
   * IDN domain in punycode), so that the probe asks the server what a send will.
   */
  async #probeAddresses(recipient: string | undefined): Promise<{ from: string; to: string[] }> {
    const to = recipient ?? this.#envelopeFrom;
    if (!encodesNatively([], [this.#envelopeFrom, to])) await loadHeaderEncoder();
    return this.#envelopes.envelope(to);
  }

  /** The error for a refused `MAIL FROM` or `RCPT TO` of the envelope probe, with a hint. */
  #envelopeRefusal(
    reply: string,
    command: "MAIL FROM" | "RCPT TO",
    secure: boolean,
    recipient: string | undefined,
  ): MailerError {
    const code = Number(reply.slice(0, 3)) || undefined;
    const what = command === "MAIL FROM"
      ? `the sender ${JSON.stringify(this.#envelopeFrom)}`
      : `the recipient ${JSON.stringify(recipient)}`;
    let hint: string;
    if (code === 530 && !secure && /STARTTLS|TLS/i.test(reply)) {
      hint =
        'the server requires STARTTLS: set smtp.starttls_policy = "mandatory" (or "opportunistic"), or use port 465';
    } else if (code === 530) {
      hint =
        "the server requires AUTH: set smtp.username and smtp.password (or smtp.password_file)";
    } else if (command === "MAIL FROM") {
      hint = "check delivery.sender: the server must accept it as a sender (for smtp.username)";
    } else {
      hint = "the server does not accept mail for this recipient (relay rules, or no such mailbox)";
    }
    return new MailerError(
      this.#redact(`SMTP server "${this.#where}" refused ${what} at ${command}: ${oneLine(reply)}`),
      { code: code ?? "EENVELOPE", retryable: code !== undefined && code < 500, hint, recipient },
    );
  }

  /**
   * Refuses (ECLEARTEXT) to authenticate in clear text to a remote host under `opportunistic`
   * (only `disabled` allows it); runs on every new connection, before AUTH.
   */
  #refuseClearText(session: SmtpSession): void {
    if (this.#guardedAuth && !session.secure && session.allowsAuth) {
      throw Object.assign(
        new Error(
          "the server does not offer STARTTLS; refusing to send the SMTP password in clear text",
        ),
        { code: "ECLEARTEXT" },
      );
    }
  }

  /** Closes the pooled connections. */
  close(): Promise<void> {
    this.#pool.close();
    return Promise.resolve();
  }

  #redact(text: string): string {
    let out = text;
    for (const secret of this.#secrets) out = out.split(secret).join("[redacted]");
    return out;
  }

  /** Maps a nodemailer (or abort) error to a MailerError with `retryable` set. */
  #classify(err: unknown, action: "send" | "connect", recipient?: string): MailerError {
    if (err instanceof MailerError) return err;
    const e = (typeof err === "object" && err !== null ? err : {}) as NodemailerErrorLike;
    // A host with several addresses that all failed: an AggregateError with an empty message.
    const raw = this.#redact(connectFailureDetail(err) ?? e.message ?? String(err));
    const responseCode = typeof e.responseCode === "number" && e.responseCode >= 200
      ? e.responseCode
      : undefined;
    let retryable: boolean;
    let detail = raw;
    let hint: string | undefined;
    if (e.code === "EABORT") {
      retryable = true;
    } else if (e.code === "ECLEARTEXT") {
      retryable = false;
      hint =
        'enable STARTTLS on the server, or set smtp.starttls_policy = "disabled" to send the password unencrypted';
    } else if (e.code === "ETLS" && (responseCode === undefined || responseCode >= 500)) {
      retryable = false;
      detail =
        `the server does not support STARTTLS, which smtp.starttls_policy "mandatory" requires (${raw})`;
      hint =
        'set smtp.starttls_policy = "opportunistic" or "disabled", or use port 465 for implicit TLS';
    } else if (e.code === "EAUTH") {
      retryable = responseCode !== undefined && responseCode < 500;
      detail = `authentication as ${JSON.stringify(this.#cfg.username)} failed: ${raw}`;
      hint = /STARTTLS/i.test(raw)
        ? 'the server requires STARTTLS before AUTH: set smtp.starttls_policy = "mandatory" (or "opportunistic")'
        : "check smtp.username and smtp.password (or smtp.password_file)";
    } else if (responseCode !== undefined) {
      retryable = responseCode < 500;
    } else if (e.code === "ESOCKET" && CERT_ERROR.test(raw)) {
      retryable = false;
      detail = `TLS certificate check failed: ${raw}`;
      hint = "trust the server's certificate authority with smtp.ca_file (a PEM file)";
    } else {
      retryable = e.code !== undefined && NETWORK_CODES.has(e.code);
    }
    const message = action === "send"
      ? `Cannot send email to ${
        JSON.stringify(recipient)
      } via SMTP server "${this.#where}": ${detail}`
      : `Cannot connect to SMTP server "${this.#where}": ${detail}`;
    const cause = Object.assign(new Error(raw), {
      code: e.code,
      responseCode: e.responseCode,
      command: e.command,
    });
    return new MailerError(this.#redact(message), {
      cause,
      hint,
      recipient,
      code: responseCode ?? e.code ?? "EUNKNOWN",
      retryable,
    });
  }
}

/** The threading headers of a message: the thread's first Message-ID (or ""), and its own. */
interface MessageIds {
  thread: string;
  messageId: string;
}

/** A message ready for the pool: its envelope and DATA payload (end marker included). */
interface Outgoing {
  envelope: { from: string; to: string[] };
  data: Uint8Array;
}

/** An encoded content of {@link SmtpMailer}'s cache, by its HTML part. */
interface CachedContent {
  html: string;
  subject: string;
  text: string;
  parts: EncodedContent;
}

/** How many recipients' envelope addresses {@link EnvelopeAddresses} keeps. */
const ENVELOPE_CACHE_SIZE = 1024;

/**
 * The envelope of a message to one recipient, as `sendMail()` normalised it with
 * `MimeNode.setEnvelope()` (`envelopeOf()` in `mime.ts`), each recipient's once (the last
 * {@link ENVELOPE_CACHE_SIZE} recipients kept).
 */
class EnvelopeAddresses {
  readonly #sender: string;
  readonly #envelopes = new Map<string, { from: string; to: string[] }>();

  constructor(sender: string) {
    this.#sender = sender;
  }

  /** A new envelope object (the connection writes its progress into it). */
  envelope(recipient: string): { from: string; to: string[] } {
    let envelope = this.#envelopes.get(recipient);
    if (envelope === undefined) {
      envelope = envelopeOf(this.#sender, recipient);
      if (this.#envelopes.size >= ENVELOPE_CACHE_SIZE) this.#envelopes.clear();
      this.#envelopes.set(recipient, envelope);
    }
    return { from: envelope.from, to: [...envelope.to] };
  }
}

/** A failure at MAIL FROM caused by a connection the server had already closed. */
function isStaleConnection(err: unknown): boolean {
  const e = (typeof err === "object" && err !== null ? err : {}) as NodemailerErrorLike;
  return e.command === "MAIL FROM" &&
    (e.responseCode === 421 || e.code === "ECONNECTION" || e.code === "ESOCKET" ||
      e.code === "ETIMEDOUT");
}

function readCaFile(path: string): string {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (err) {
    const reason = err instanceof Deno.errors.NotFound
      ? "file not found"
      : err instanceof Error
      ? err.message
      : String(err);
    throw new ConfigError("smtp.ca_file", `Cannot read "smtp.ca_file" "${path}": ${reason}`, {
      cause: err,
    });
  }
  if (!text.includes("-----BEGIN CERTIFICATE-----")) {
    throw new ConfigError(
      "smtp.ca_file",
      `Cannot use "smtp.ca_file" "${path}": no PEM certificate found`,
    );
  }
  return text;
}
