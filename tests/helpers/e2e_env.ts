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
 * const mails = await env.waitForEmails(2);
 * ```
 * @module
 */
import { stringify } from "smol-toml";
import { join } from "node:path";
import { TestCertificateAuthority } from "./ca.ts";
import { TeleportTestServer, type TeleportTestServerOptions } from "./teleport_server.ts";
import { type SinkMessage, SmtpSink } from "./smtp_sink.ts";
import { FakeMailgun } from "./fake_mailgun.ts";
import { PluginProcess, type PluginProcessOptions } from "./plugin_process.ts";

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
}

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
    const configPath = join(dir, "teleport-email.toml");
    await Deno.writeTextFile(configPath, stringify(config) + "\n");
    return new E2eEnv({ dir, ca, teleport, smtp, mailgun, configPath, identityPath });
  }

  /** Starts `teleport-email start -c <config>` and waits until it logs `Plugin is ready`. */
  async startPlugin(
    opts: PluginProcessOptions & { waitReady?: boolean; args?: string[] } = {},
  ): Promise<PluginProcess> {
    const plugin = PluginProcess.start(opts.args ?? ["start", "-c", this.configPath], opts);
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

  async close(): Promise<void> {
    for (const p of this.#plugins) {
      p.kill();
      await p.exited;
    }
    await this.teleport.close();
    await this.smtp?.close();
    await this.mailgun?.close();
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
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
