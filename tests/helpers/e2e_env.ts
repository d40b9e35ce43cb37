/**
 * A complete local environment for end-to-end runs of the real CLI: a test certificate authority,
 * the test Teleport Auth server, a real SMTP server (STARTTLS + AUTH) or the fake Mailgun API, an
 * identity file for the plugin user, and a configuration file. Used by `tests/e2e_*_test.ts`, the
 * demo (`scripts/demo.ts`) and the benchmark.
 *
 * ```ts
 * await using env = await E2eEnv.start({ mailer: "smtp" });
 * const plugin = await env.startPlugin();        // waits for "Plugin is ready"
 * const req = env.teleport.createAccessRequest({ user: "requester-oss@example.com", roles: ["editor"] });
 * const mails = await env.waitForEmailsFor(req.id, 1); // emails whose subject names the request
 * await env.waitForNoMoreEmails();                      // quiet period before exact counts
 * checkThreading(env.emailsFor(req.id));                // In-Reply-To/References, bracketed once
 * ```
 *
 * Closing the environment kills its plugins and fails if a secret (the SMTP password, the Mailgun
 * key, identity key material, also as AUTH/Basic encodings) appeared in any plugin's output.
 * @module
 */
import { parse, stringify } from "smol-toml";
import { join } from "node:path";
import { TestCertificateAuthority } from "./ca.ts";
import { TeleportTestServer, type TeleportTestServerOptions } from "./teleport_server.ts";
import { type SinkMessage, SmtpSink } from "./smtp_sink.ts";
import { FakeMailgun } from "./fake_mailgun.ts";
import { PluginProcess, type PluginProcessOptions } from "./plugin_process.ts";
import type { PluginDataMap } from "../../src/teleport/types.ts";

/** One delivered email, whichever transport carried it. */
export interface DeliveredEmail {
  from: string;
  to: string;
  subject: string;
  text: string;
  html: string;
  /** Message-ID as sent (SMTP) or as returned by Mailgun, with angle brackets. */
  messageId: string;
  inReplyTo?: string;
  references?: string;
  /** The SMTP message, when the transport is SMTP. */
  smtp?: SinkMessage;
}

/** {@link E2E_SECRETS} as they travel on the wire, by what they are. */
const ENCODED_SECRETS: readonly [string, string][] = [
  ["SMTP AUTH PLAIN", btoa("\0teleport-email\0e2e-smtp-secret")],
  ["SMTP AUTH LOGIN password", btoa("e2e-smtp-secret")],
  ["Mailgun Basic authorization", btoa("api:e2e-mailgun-key")],
];

/** Options of {@link E2eEnv.start}. */
export interface E2eEnvOptions {
  mailer?: "smtp" | "mailgun";
  clusterName?: string;
  /** Options passed to the test Teleport server (the CA is always the environment's). */
  server?: Omit<TeleportTestServerOptions, "ca">;
  roleToRecipients?: Record<string, string | string[]>;
  sender?: string;
  /** Extra `[delivery]` keys (e.g. `{ notify_requester: true }`). */
  delivery?: Record<string, unknown>;
  /** Roles of the plugin's identity; default `["access-plugin"]`. */
  pluginRoles?: string[];
  /** Log severity of the plugin; default `debug`. */
  severity?: string;
  /** Edits the configuration (as a TOML table) before it is written. */
  config?: (config: Record<string, unknown>) => void;
}

/**
 * Strings that must never appear in the plugin's output: the SMTP password, the Mailgun key and
 * identity key material. Checked by {@link E2eEnv.close} over every plugin it started.
 */
export const E2E_SECRETS: readonly string[] = ["e2e-smtp-secret", "e2e-mailgun-key", "PRIVATE KEY"];

/** See the module documentation. Always dispose it (`await using`, or {@link close}). */
export class E2eEnv {
  readonly dir: string;
  readonly ca: TestCertificateAuthority;
  readonly teleport: TeleportTestServer;
  readonly smtp?: SmtpSink;
  readonly mailgun?: FakeMailgun;
  readonly configPath: string;
  readonly identityPath: string;
  readonly #plugins: PluginProcess[] = [];
  #keyBody = "";

  private constructor(init: {
    dir: string;
    ca: TestCertificateAuthority;
    teleport: TeleportTestServer;
    smtp?: SmtpSink;
    mailgun?: FakeMailgun;
    configPath: string;
    identityPath: string;
  }) {
    this.dir = init.dir;
    this.ca = init.ca;
    this.teleport = init.teleport;
    this.smtp = init.smtp;
    this.mailgun = init.mailgun;
    this.configPath = init.configPath;
    this.identityPath = init.identityPath;
  }

  static async start(opts: E2eEnvOptions = {}): Promise<E2eEnv> {
    const dir = await Deno.makeTempDir({ prefix: "teleport_email_e2e_" });
    const ca = await TestCertificateAuthority.create({
      clusterName: opts.clusterName ?? "teleport.example.com",
    });
    const teleport = await TeleportTestServer.start({ ...opts.server, ca });
    const identityPath = await ca.writeIdentityFile(join(dir, "auth_id"), {
      user: "plugin",
      roles: opts.pluginRoles ?? ["access-plugin"],
    });
    const config: Record<string, unknown> = {
      teleport: { addr: teleport.addr, identity: identityPath },
    };
    let smtp: SmtpSink | undefined;
    let mailgun: FakeMailgun | undefined;
    if ((opts.mailer ?? "smtp") === "smtp") {
      const tls = await ca.issueServerCert({ dnsNames: ["localhost"] });
      const caFile = join(dir, "smtp_ca.pem");
      await Deno.writeTextFile(caFile, ca.hostCaPem);
      const passwordFile = join(dir, "smtp_password");
      await Deno.writeTextFile(passwordFile, "e2e-smtp-secret\n", { mode: 0o600 });
      smtp = await SmtpSink.start({
        tls: { key: tls.keyPem, cert: tls.certPem },
        auth: { username: "teleport-email", password: "e2e-smtp-secret" },
      });
      config.smtp = {
        host: "localhost",
        port: smtp.port,
        username: "teleport-email",
        password_file: passwordFile,
        starttls_policy: "mandatory",
        ca_file: caFile,
      };
    } else {
      mailgun = await FakeMailgun.start({ apiKey: "e2e-mailgun-key", domain: "mg.example.com" });
      const keyFile = join(dir, "mailgun_key");
      await Deno.writeTextFile(keyFile, "e2e-mailgun-key\n", { mode: 0o600 });
      config.mailgun = {
        domain: "mg.example.com",
        private_key_file: keyFile,
        api_base: mailgun.apiBase,
      };
    }
    config.delivery = { sender: opts.sender ?? "noreply@example.com", ...opts.delivery };
    config.role_to_recipients = opts.roleToRecipients ?? { "*": ["all@example.com"] };
    config.log = { output: "stderr", severity: opts.severity ?? "debug", format: "json" };
    opts.config?.(config);
    const configPath = join(dir, "teleport-email.toml");
    await Deno.writeTextFile(configPath, stringify(config) + "\n");
    const env = new E2eEnv({ dir, ca, teleport, smtp, mailgun, configPath, identityPath });
    const identity = await Deno.readTextFile(identityPath);
    env.#keyBody = /PRIVATE KEY-----\r?\n([A-Za-z0-9+/=]{40})/.exec(identity)?.[1] ?? "";
    if (!env.#keyBody) throw new Error("E2eEnv: no private key found in the identity file");
    return env;
  }

  /**
   * Starts `teleport-email start -c <config>` and waits until it logs `Plugin is ready`. Its
   * liveness socket goes to the environment's folder (`RUNTIME_DIRECTORY`), shared by every
   * plugin of the environment as by restarts on one host.
   */
  async startPlugin(
    opts: PluginProcessOptions & { waitReady?: boolean; args?: string[] } = {},
  ): Promise<PluginProcess> {
    // Liveness sockets in the environment's folder, not /tmp (killed plugins leave theirs).
    const env = { RUNTIME_DIRECTORY: this.dir, ...opts.env };
    const plugin = PluginProcess.start(opts.args ?? ["start", "-c", this.configPath], {
      ...opts,
      env,
    });
    this.#plugins.push(plugin);
    if (opts.waitReady ?? true) {
      try {
        await plugin.ready();
      } catch (err) {
        plugin.kill();
        await plugin.exited;
        throw err;
      }
    }
    return plugin;
  }

  /** The plugins started by {@link startPlugin}, in order. */
  get plugins(): readonly PluginProcess[] {
    return this.#plugins;
  }

  /** Rewrites the configuration file: `mutate` edits the parsed TOML table. */
  async updateConfig(mutate: (config: Record<string, unknown>) => void): Promise<void> {
    const config = parse(await Deno.readTextFile(this.configPath)) as Record<string, unknown>;
    mutate(config);
    // Atomically (a new file renamed over the old one), as configuration management writes it:
    // a reload running meanwhile reads the old file or the new one, never a truncated one.
    const next = `${this.configPath}.next`;
    await Deno.writeTextFile(next, stringify(config) + "\n");
    await Deno.rename(next, this.configPath);
  }

  /** Emails delivered so far whose subject names `requestId`, in arrival order. */
  emailsFor(requestId: string): DeliveredEmail[] {
    return this.emails.filter((e) => e.subject.includes(requestId));
  }

  /** Waits until at least `n` emails about `requestId` were delivered; returns them. */
  async waitForEmailsFor(requestId: string, n: number, timeoutMs = 20_000) {
    const deadline = Date.now() + timeoutMs;
    while (this.emailsFor(requestId).length < n) {
      if (Date.now() > deadline) {
        throw new Error(
          `timed out waiting for ${n} emails about ${requestId}; got:\n` +
            this.emailsFor(requestId).map((e) => `  to=${e.to} text=${e.text.split("\n")[0]}`)
              .join("\n"),
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.emailsFor(requestId);
  }

  /**
   * Waits until no email arrived for `quietMs` (default 1500), within `timeoutMs`; returns all
   * emails. Use before asserting exact counts ("and nothing more").
   */
  async waitForNoMoreEmails(quietMs = 1500, timeoutMs = 30_000): Promise<DeliveredEmail[]> {
    const deadline = Date.now() + timeoutMs;
    let count = this.emails.length;
    let since = Date.now();
    while (Date.now() - since < quietMs) {
      if (Date.now() > deadline) {
        throw new Error(`emails kept arriving for ${timeoutMs} ms (${this.emails.length} so far)`);
      }
      await new Promise((r) => setTimeout(r, 20));
      if (this.emails.length !== count) {
        count = this.emails.length;
        since = Date.now();
      }
    }
    return this.emails;
  }

  /** Waits until the `email` plugin data of `requestId` satisfies `pred`; returns it. */
  async waitForPluginData(
    requestId: string,
    pred: (data: PluginDataMap) => boolean,
    timeoutMs = 20_000,
  ): Promise<PluginDataMap> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const data = this.teleport.getPluginData(requestId, "email");
      if (data && pred(data)) return data;
      if (Date.now() > deadline) {
        throw new Error(
          `timed out waiting for plugin data of ${requestId}; have ${JSON.stringify(data)}`,
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Secrets found in the output of any plugin started so far (see {@link E2E_SECRETS}). */
  leakedSecrets(): string[] {
    const out = this.#plugins.map((p) => p.stderrLines.join("\n") + "\n" + p.stdout).join("\n");
    const leaked = E2E_SECRETS.filter((s) => out.includes(s));
    // The same secrets as they travel on the wire: SMTP AUTH PLAIN/LOGIN and HTTP Basic.
    for (const [name, encoded] of ENCODED_SECRETS) if (out.includes(encoded)) leaked.push(name);
    // The identity's private key itself (base64 body), in case it leaks without its PEM label.
    if (this.#keyBody && out.includes(this.#keyBody)) leaked.push("identity private key");
    return leaked;
  }

  /** Emails delivered so far, in arrival order. */
  get emails(): DeliveredEmail[] {
    if (this.smtp) return this.smtp.messages.map(fromSmtp);
    return (this.mailgun?.messages ?? []).map((m) => ({
      from: m.from,
      to: m.to,
      subject: m.subject,
      text: m.text,
      html: m.html ?? "",
      messageId: m.id,
      inReplyTo: m.headers["In-Reply-To"],
      references: m.headers["References"],
    }));
  }

  /** Waits until at least `n` emails were delivered in total; returns them all. */
  async waitForEmails(n: number, timeoutMs = 20_000): Promise<DeliveredEmail[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.emails.length < n) {
      if (Date.now() > deadline) {
        throw new Error(
          `timed out waiting for ${n} emails; got ${this.emails.length}:\n` +
            this.emails.map((e) => `  to=${e.to} subject=${e.subject}`).join("\n"),
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.emails;
  }

  /**
   * Kills the plugins, stops the servers and removes the directory; then fails if a secret
   * appeared in any plugin's output (the shared after-check of the end-to-end tests).
   */
  async close(): Promise<void> {
    for (const p of this.#plugins) {
      p.kill();
      await p.exited;
    }
    await this.teleport.close();
    await this.smtp?.close();
    await this.mailgun?.close();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
    const leaked = this.leakedSecrets();
    if (leaked.length > 0) {
      throw new Error(`secrets appeared in the plugin's output: ${leaked.join(", ")}`);
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

function fromSmtp(m: SinkMessage): DeliveredEmail {
  return {
    from: m.headers.get("from") ?? "",
    to: m.envelope.to.join(", "),
    subject: m.subject ?? "",
    text: m.text ?? "",
    html: m.html ?? "",
    messageId: m.messageId ?? "",
    inReplyTo: m.inReplyTo,
    references: m.references.join(" "),
    smtp: m,
  };
}

/** The `email_threads` entries of plugin data (Go encoding: `email/timestamp/id`, `,`-joined). */
export function storedThreads(
  data: PluginDataMap | undefined,
): { email: string; timestamp: string; messageId: string }[] {
  const raw = data?.email_threads ?? "";
  if (raw === "") return [];
  return raw.split(",").map((entry) => {
    const [email, timestamp, messageId] = entry.split("/");
    return { email, timestamp, messageId };
  });
}

/**
 * Checks the threading of `emails` (all about one request, in arrival order): the first email to
 * each recipient starts a thread (no `In-Reply-To`); every later one to that recipient has
 * `In-Reply-To` and `References` equal to the thread's Message-ID, bracketed exactly once.
 * Returns the thread-starting emails by recipient.
 */
export function checkThreading(emails: DeliveredEmail[]): Map<string, DeliveredEmail> {
  const first = new Map<string, DeliveredEmail>();
  const ids = new Set<string>();
  for (const e of emails) {
    if (ids.has(e.messageId)) throw new Error(`duplicate Message-ID ${e.messageId}`);
    ids.add(e.messageId);
    if (!/^<[^<>]+>$/.test(e.messageId)) throw new Error(`bad Message-ID ${e.messageId}`);
    const thread = first.get(e.to);
    if (!thread) {
      if (e.inReplyTo) throw new Error(`thread email to ${e.to} has In-Reply-To ${e.inReplyTo}`);
      first.set(e.to, e);
      continue;
    }
    if (e.inReplyTo !== thread.messageId || e.references !== thread.messageId) {
      throw new Error(
        `follow-up to ${e.to}: In-Reply-To ${e.inReplyTo}, References ${e.references}, ` +
          `expected ${thread.messageId}`,
      );
    }
    const raw = e.smtp?.rawHeaders ?? `${e.inReplyTo} ${e.references}`;
    if (raw.includes("<<") || raw.includes(">>")) {
      throw new Error(`follow-up to ${e.to} has a double-bracketed id: ${raw}`);
    }
  }
  return first;
}
