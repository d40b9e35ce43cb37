/**
 * A real SMTP server for tests and the demo (`npm:smtp-server`), listening on 127.0.0.1 port 0.
 * It can offer STARTTLS or implicit TLS, require AUTH (PLAIN/LOGIN), reject chosen recipients,
 * fail the next N messages, and delay replies. Every accepted message is parsed with
 * `mailparser` and kept in {@link SmtpSink.messages}.
 *
 * Also {@link createTestTls}: a throw-away CA and a server certificate for `localhost` and
 * `127.0.0.1`, made with the `openssl` command.
 */

import { SMTPServer } from "smtp-server";
import type { SMTPServerDataStream, SMTPServerSession } from "smtp-server";
import { simpleParser } from "mailparser";
import { bounded } from "./bounded.ts";
import { concatBytes } from "./bytes.ts";

/** A message the sink accepted. */
export interface SinkMessage {
  envelope: { from: string; to: string[] };
  /** The raw header block exactly as received (folded lines kept). */
  rawHeaders: string;
  /** Header values by lower-case name, unfolded; repeated headers joined with "\n". */
  headers: Map<string, string>;
  /** Parsed by mailparser (with angle brackets). */
  messageId?: string;
  inReplyTo?: string;
  references: string[];
  subject?: string;
  text?: string;
  html?: string;
  /** The whole message as received (CRLF line ends). */
  raw: string;
  /** Whether the session was encrypted (STARTTLS or implicit TLS). */
  secure: boolean;
  /** The authenticated user name, if any. */
  user?: string;
  /** The name the client gave in EHLO/HELO. */
  heloName: string;
  /** The raw message, for saving as a `.eml` file. */
  toEml(): string;
}

/** An SMTP reply used for failure injection. */
export interface SinkReply {
  code: number;
  message: string;
}

/** Options of {@link SmtpSink.start}. */
export interface SmtpSinkOptions {
  /** Server key and certificate chain (PEM). Required for `startTls` and `implicitTls`. */
  tls?: { key: string; cert: string };
  /** Offer STARTTLS. Default: true when `tls` is given and `implicitTls` is not. */
  startTls?: boolean;
  /** TLS from the first byte (SMTPS, port-465 style). */
  implicitTls?: boolean;
  /** Require AUTH (PLAIN or LOGIN) with these credentials. */
  auth?: { username: string; password: string };
  /** Offer AUTH on unencrypted sessions too. Default false (smtp-server's default). */
  allowInsecureAuth?: boolean;
  /** Recipients (lower-case address) rejected at RCPT TO with the given reply. */
  rejectRecipients?: Map<string, SinkReply>;
  /** Delay before answering the end of DATA, in ms. */
  delayMs?: number;
  /** Host name in the greeting. Default `sink.test`. */
  name?: string;
  /**
   * Refuse MAIL FROM on an unencrypted session with `530 5.7.0 Must issue a STARTTLS command
   * first`, before asking for AUTH (Postfix with `smtpd_tls_security_level = encrypt`).
   */
  requireStartTls?: boolean;
  /** Do not advertise PIPELINING (the client must send one command at a time). */
  hidePipelining?: boolean;
  /** AUTH mechanisms offered. Default PLAIN and LOGIN. */
  authMethods?: Array<"PLAIN" | "LOGIN" | "CRAM-MD5">;
}

/** See the module documentation. */
export class SmtpSink {
  /** Accepted messages, in arrival order. */
  readonly messages: SinkMessage[] = [];
  /** Recipients (lower-case) rejected at RCPT; change at any time. */
  readonly rejectRecipients: Map<string, SinkReply>;
  /** Delay before answering the end of DATA, in ms; change at any time. */
  delayMs: number;
  /** Number of SMTP sessions opened so far. */
  connections = 0;
  /** AUTH attempts: user name and whether they succeeded. */
  readonly authAttempts: { user: string; method: string; ok: boolean }[] = [];
  readonly host = "127.0.0.1";
  readonly port: number;
  readonly #server: SMTPServer;
  #failures: { remaining: number; reply: SinkReply; stage: "rcpt" | "data" } | undefined;
  #waiters: (() => void)[] = [];
  #pending = new Set<Promise<unknown>>();

  private constructor(server: SMTPServer, port: number, opts: SmtpSinkOptions) {
    this.#server = server;
    this.port = port;
    this.rejectRecipients = opts.rejectRecipients ?? new Map();
    this.delayMs = opts.delayMs ?? 0;
  }

  /** Starts a sink on 127.0.0.1 with a free port. */
  static async start(opts: SmtpSinkOptions = {}): Promise<SmtpSink> {
    const implicitTls = opts.implicitTls ?? false;
    const startTls = !implicitTls && (opts.startTls ?? opts.tls !== undefined);
    if ((implicitTls || startTls) && !opts.tls) {
      throw new Error("SmtpSink: implicitTls and startTls need opts.tls (see createTestTls)");
    }
    const disabled: string[] = [];
    if (!startTls) disabled.push("STARTTLS");
    if (!opts.auth) disabled.push("AUTH");
    // deno-lint-ignore prefer-const
    let sink: SmtpSink;
    const server = new SMTPServer({
      name: opts.name ?? "sink.test",
      secure: implicitTls,
      key: opts.tls?.key,
      cert: opts.tls?.cert,
      disabledCommands: disabled,
      // With requireStartTls, the AUTH requirement is checked in onMailFrom, after TLS.
      authOptional: !opts.auth || !!opts.requireStartTls,
      authMethods: opts.authMethods ?? ["PLAIN", "LOGIN"],
      hidePIPELINING: opts.hidePipelining ?? false,
      allowInsecureAuth: opts.allowInsecureAuth ?? false,
      disableReverseLookup: true,
      logger: false,
      closeTimeout: 200,
      onConnect(_session, callback) {
        sink.connections++;
        callback();
      },
      onAuth(auth, _session, callback) {
        const ok = !!opts.auth && auth.username === opts.auth.username &&
          (auth.method === "CRAM-MD5"
            ? auth.validatePassword(opts.auth.password)
            : auth.password === opts.auth.password);
        sink.authAttempts.push({ user: auth.username ?? "", method: auth.method, ok });
        if (!ok) {
          return callback(
            Object.assign(new Error("Invalid username or password"), { responseCode: 535 }),
          );
        }
        callback(null, { user: auth.username });
      },
      onMailFrom(_address, session, callback) {
        const refusal = opts.requireStartTls ? startTlsRefusal(session, !!opts.auth) : undefined;
        callback(
          refusal
            ? Object.assign(new Error(refusal.message), { responseCode: refusal.code })
            : undefined,
        );
      },
      onRcptTo(address, _session, callback) {
        const reply = sink.rejectRecipients.get(address.address.toLowerCase()) ??
          sink.#takeFailure("rcpt");
        if (reply) {
          return callback(Object.assign(new Error(reply.message), { responseCode: reply.code }));
        }
        callback();
      },
      onData(stream, session, callback) {
        sink.#track(
          sink.#receive(stream, session).then(
            () => callback(),
            (err: Error & { responseCode?: number }) => callback(err),
          ),
        );
      },
    });
    server.on("error", () => {/* client errors (resets, bad TLS) are expected in tests */});
    await new Promise<void>((resolve, reject) => {
      server.server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    const address = server.server.address();
    if (address === null || typeof address === "string") throw new Error("SmtpSink: no port");
    sink = new SmtpSink(server, address.port, opts);
    return sink;
  }

  /**
   * The next `n` messages fail with `code` (default message by class), at RCPT TO (default)
   * or at the end of DATA.
   */
  failNext(n: number, code: number, opts: { message?: string; stage?: "rcpt" | "data" } = {}) {
    const message = opts.message ??
      (code >= 500 ? "Requested action not taken" : "Temporary failure, try again later");
    this.#failures = { remaining: n, reply: { code, message }, stage: opts.stage ?? "rcpt" };
  }

  /** Resolves once at least `n` messages arrived; rejects after `timeoutMs` (default 5000). */
  async waitFor(n: number, opts: { timeoutMs?: number } = {}): Promise<SinkMessage[]> {
    const timeoutMs = opts.timeoutMs ?? 5000;
    try {
      await bounded(
        (async () => {
          while (this.messages.length < n) {
            await new Promise<void>((resolve) => this.#waiters.push(resolve));
          }
        })(),
        () => `SmtpSink: ${this.messages.length} of ${n} messages after ${timeoutMs} ms`,
        timeoutMs,
      );
    } finally {
      this.#wake();
    }
    return this.messages.slice(0, n);
  }

  /**
   * Ends every open session from the server side with `421` (like a server restart or an idle
   * timeout), while still listening for new ones.
   */
  dropConnections(): void {
    for (const connection of this.#server.connections) {
      connection.send(421, "Connection dropped by SmtpSink");
      connection.close();
    }
  }

  /** Number of sessions open right now. */
  get openConnections(): number {
    return this.#server.connections.size;
  }

  /** Stops listening and closes open sessions. */
  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
    await Promise.allSettled([...this.#pending]);
    this.#wake();
  }

  #wake() {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }

  #track(p: Promise<unknown>) {
    this.#pending.add(p);
    p.finally(() => this.#pending.delete(p));
  }

  #takeFailure(stage: "rcpt" | "data"): SinkReply | undefined {
    const f = this.#failures;
    if (!f || f.stage !== stage || f.remaining <= 0) return undefined;
    f.remaining--;
    return f.reply;
  }

  async #receive(stream: SMTPServerDataStream, session: SMTPServerSession): Promise<void> {
    const chunks: Uint8Array[] = [];
    for await (const chunk of stream) chunks.push(chunk as Uint8Array);
    const raw = new TextDecoder().decode(concatBytes(chunks));
    if (this.delayMs > 0) await new Promise((r) => setTimeout(r, this.delayMs));
    const failure = this.#takeFailure("data");
    if (failure) {
      throw Object.assign(new Error(failure.message), { responseCode: failure.code });
    }
    const parsed = await simpleParser(raw);
    const end = raw.search(/\r?\n\r?\n/);
    const rawHeaders = end < 0 ? raw : raw.slice(0, end);
    const refs = parsed.references;
    const from = session.envelope.mailFrom;
    const message: SinkMessage = {
      envelope: {
        from: from ? from.address : "",
        to: session.envelope.rcptTo.map((r) => r.address),
      },
      rawHeaders,
      headers: parseHeaderBlock(rawHeaders),
      messageId: parsed.messageId,
      inReplyTo: parsed.inReplyTo,
      references: refs === undefined ? [] : Array.isArray(refs) ? refs : [refs],
      subject: parsed.subject,
      text: parsed.text,
      html: typeof parsed.html === "string" ? parsed.html : undefined,
      raw,
      secure: session.secure,
      user: typeof session.user === "string" ? session.user : undefined,
      heloName: session.hostNameAppearsAs,
      toEml: () => raw,
    };
    this.messages.push(message);
    this.#wake();
  }
}

/** Header values by lower-case name, unfolded. */
export function parseHeaderBlock(block: string): Map<string, string> {
  const map = new Map<string, string>();
  const unfolded = block.replace(/\r?\n[ \t]+/g, " ");
  for (const line of unfolded.split(/\r?\n/)) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    const previous = map.get(name);
    map.set(name, previous === undefined ? value : `${previous}\n${value}`);
  }
  return map;
}

/** PEM material from {@link createTestTls}. */
export interface TestTls {
  /** The CA certificate to trust (client side). */
  caPem: string;
  /** The server certificate (for `localhost` and `127.0.0.1`). */
  certPem: string;
  /** The server's private key. */
  keyPem: string;
}

/**
 * Makes a throw-away CA and a server certificate (P-256, valid 2 days, SAN `DNS:localhost`,
 * `IP:127.0.0.1`) with the `openssl` command, in a temporary directory that is removed.
 * `opts.hosts` replaces the SAN list (e.g. `["DNS:mail.example.test"]` for a mismatch test).
 */
export async function createTestTls(opts: { hosts?: string[] } = {}): Promise<TestTls> {
  const dir = await Deno.makeTempDir({ prefix: "smtp_sink_tls_" });
  try {
    const run = async (...args: string[]) => {
      const out = await new Deno.Command("openssl", {
        args,
        cwd: dir,
        stdout: "null",
        stderr: "piped",
      })
        .output();
      if (!out.success) {
        throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
      }
    };
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    await run(
      "req",
      "-x509",
      ...ec,
      "-keyout",
      "ca.key",
      "-out",
      "ca.crt",
      "-days",
      "2",
      "-subj",
      "/CN=teleport-email test CA",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    );
    await run("req", ...ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=localhost");
    const san = (opts.hosts ?? ["DNS:localhost", "IP:127.0.0.1"]).join(",");
    await Deno.writeTextFile(
      `${dir}/ext.cnf`,
      `subjectAltName=${san}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n`,
    );
    await run(
      "x509",
      "-req",
      "-in",
      "srv.csr",
      "-CA",
      "ca.crt",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      "srv.crt",
      "-days",
      "2",
      "-extfile",
      "ext.cnf",
    );
    const [caPem, certPem, keyPem] = await Promise.all(
      ["ca.crt", "srv.crt", "srv.key"].map((f) => Deno.readTextFile(`${dir}/${f}`)),
    );
    return { caPem, certPem, keyPem };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Postfix's answers to MAIL FROM when TLS (then AUTH) is required but missing. */
function startTlsRefusal(session: SMTPServerSession, auth: boolean): SinkReply | undefined {
  if (!session.secure) return { code: 530, message: "5.7.0 Must issue a STARTTLS command first" };
  if (auth && !session.user) return { code: 530, message: "5.7.0 Authentication required" };
  return undefined;
}
