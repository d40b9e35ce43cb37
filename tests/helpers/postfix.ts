/**
 * A real Postfix with Dovecot SASL (Debian's packages), configured per test in its own directory:
 * its own `main.cf`/`master.cf` (`postfix -c DIR`), queue, Dovecot configuration and Maildirs.
 * Nothing of the system's mail configuration is read or changed.
 *
 * Listeners, all on 127.0.0.1: a plain port (AUTH without TLS, STARTTLS offered), submission (STARTTLS
 * required, then AUTH required: `smtpd_tls_security_level = encrypt`) and SMTPS (implicit TLS,
 * AUTH required). Mail to its users at `example.com` is delivered by `virtual` to `mail/<user>/`
 * Maildirs,
 * which {@link PostfixServer.messages} reads back; anything else fails (`default_transport =
 * error`), so nothing leaves the machine. `recipient_access` makes `reject550@…` get a 550 and
 * `tempfail451@…` a 451 at RCPT TO.
 *
 * @module
 */
import { join } from "node:path";
import { simpleParser } from "mailparser";
import type { TestCertificateAuthority } from "./ca.ts";
import { bounded } from "./bounded.ts";
import { parseHeaderBlock } from "./smtp_sink.ts";
import type { DeliveredEmail } from "./e2e_env.ts";

const BINARIES = ["/usr/sbin/postfix", "/usr/sbin/postconf", "/usr/sbin/dovecot"];
/** The uid/gid Maildirs are written as (`nobody`): `virtual` refuses root. */
const MAIL_ID = 65534;
export const POSTFIX_USER = "teleport-email";
/** The mailboxes {@link PostfixServer.start} creates by default. */
export const DEFAULT_USERS = ["all", "reviewer1", "reviewer2", "requester", "tempfail451"];
/** `recipient_access` (regexp): answers at RCPT TO for the failure cases. */
export const FAILING_RECIPIENTS =
  "/^reject550@/ 550 5.1.1 No such user here\n/^tempfail451@/ 451 4.3.0 Try again later\n";
export const POSTFIX_PASSWORD = "e2e-smtp-secret";

/** Why the Postfix tests cannot run here, or undefined when they can. */
export function postfixMissing(): string | undefined {
  for (const bin of BINARIES) {
    try {
      Deno.statSync(bin);
    } catch {
      return `${bin} is not installed (Debian packages postfix and dovecot-core)`;
    }
  }
  if (Deno.uid?.() !== 0) return "Postfix tests need root (they start Postfix and Dovecot)";
  return undefined;
}

/**
 * A message read back from a Maildir: a {@link DeliveredEmail} (`to` is the Maildir's address),
 * so the e2e checks read it as they read the SMTP sink's.
 */
export interface MaildirMessage extends DeliveredEmail {
  /** The Maildir's user (local part of the recipient). */
  user: string;
  /** The file name (it starts with the delivery time: seconds and microseconds). */
  file: string;
  headers: Map<string, string>;
  raw: string;
}

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")} failed: ${text}`);
  return text;
}

/** Free loopback ports (bound then released; the test starts Postfix right after). */
function freePorts(n: number): number[] {
  const listeners = Array.from(
    { length: n },
    () => Deno.listen({ hostname: "127.0.0.1", port: 0 }),
  );
  const ports = listeners.map((l) => (l.addr as Deno.NetAddr).port);
  for (const l of listeners) l.close();
  return ports;
}

function mainCf(dir: string): string {
  return `compatibility_level = 3.6
queue_directory = ${dir}/queue
data_directory = ${dir}/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = ${dir}/postfix.log
maillog_file_prefixes = ${dir}
myhostname = mx.postfix-test.example
mydomain = postfix-test.example
myorigin = $myhostname
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
default_transport = error:no relay from the test Postfix
relay_transport = error:no relay from the test Postfix
local_transport = error:no local delivery in the test Postfix
alias_maps =
alias_database =
biff = no
virtual_mailbox_domains = example.com
virtual_mailbox_base = ${dir}/mail
virtual_mailbox_maps = texthash:${dir}/etc/vmailbox
virtual_uid_maps = static:${MAIL_ID}
virtual_gid_maps = static:${MAIL_ID}
smtpd_recipient_restrictions = check_recipient_access regexp:${dir}/etc/recipient_access, permit_sasl_authenticated, permit_mynetworks, reject_unauth_destination
smtpd_tls_cert_file = ${dir}/etc/tls.pem
smtpd_tls_key_file = ${dir}/etc/tls.pem
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
smtpd_tls_received_header = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/auth
smtpd_sasl_authenticated_header = yes
`;
}

function masterCf(ports: { plain: number; submission: number; smtps: number }): string {
  const auth = "-o smtpd_sasl_auth_enable=yes " +
    "-o smtpd_client_restrictions=permit_sasl_authenticated,reject";
  return `127.0.0.1:${ports.plain} inet n - n - - smtpd -o smtpd_tls_auth_only=no ${auth}
127.0.0.1:${ports.submission} inet n - n - - smtpd -o smtpd_tls_security_level=encrypt ${auth}
127.0.0.1:${ports.smtps} inet n - n - - smtpd -o smtpd_tls_wrappermode=yes ${auth}
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
tlsmgr unix - - n 1000? 1 tlsmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
proxymap unix - - n - - proxymap
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
virtual unix - n n - - virtual
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
`;
}

function dovecotConf(dir: string): string {
  return `base_dir = ${dir}/dovecot/run
state_dir = ${dir}/dovecot/state
log_path = ${dir}/dovecot/dovecot.log
protocols = none
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = dovecot
default_login_user = dovenull
passdb {
  driver = passwd-file
  args = scheme=PLAIN ${dir}/dovecot/users
}
userdb {
  driver = static
  args = uid=${MAIL_ID} gid=${MAIL_ID} home=/nonexistent
}
service auth {
  unix_listener ${dir}/queue/private/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
}
`;
}

/** See the module documentation. Start with {@link PostfixServer.start}; always {@link close}. */
export class PostfixServer {
  readonly dir: string;
  readonly ports: { plain: number; submission: number; smtps: number };
  /** PEM of the CA that signed the server certificate (for `smtp.ca_file`). */
  readonly caPem: string;
  #running = false;
  #dovecot?: Deno.ChildProcess;

  /** Local parts with a Maildir at `example.com`; other recipients there are unknown (550). */
  readonly users: string[];

  private constructor(
    dir: string,
    ports: PostfixServer["ports"],
    caPem: string,
    users: string[],
  ) {
    this.users = users;
    this.dir = dir;
    this.ports = ports;
    this.caPem = caPem;
  }

  /** Configures Postfix and Dovecot in a new directory and starts both. */
  static async start(
    ca: TestCertificateAuthority,
    opts: {
      users?: string[];
      ports?: Partial<PostfixServer["ports"]>;
      /** Lines added to `main.cf`, e.g. `strict_smtputf8 = yes`. */
      mainCf?: string[];
    } = {},
  ): Promise<PostfixServer> {
    const dir = await Deno.makeTempDir({ prefix: "teleport_email_postfix_" });
    await Deno.chmod(dir, 0o755); // Postfix's daemons run as postfix and need to traverse it
    const [plain, submission, smtps] = freePorts(3);
    const ports = { plain, submission, smtps, ...opts.ports };
    const server = new PostfixServer(dir, ports, ca.hostCaPem, opts.users ?? DEFAULT_USERS);
    try {
      await server.#configure(ca, opts.mainCf ?? []);
      await server.startServices();
    } catch (err) {
      await server.close();
      throw err;
    }
    return server;
  }

  async #configure(ca: TestCertificateAuthority, mainCfLines: string[]): Promise<void> {
    const d = this.dir;
    for (const sub of ["etc", "queue", "data", "mail", "dovecot/run", "dovecot/state"]) {
      await Deno.mkdir(join(d, sub), { recursive: true });
    }
    await Deno.chown(join(d, "data"), await uidOf("postfix"), null);
    await Deno.chown(join(d, "mail"), MAIL_ID, MAIL_ID);
    const tls = await ca.issueServerCert({ dnsNames: ["localhost"] });
    await Deno.writeTextFile(join(d, "etc/tls.pem"), tls.keyPem + tls.certPem, { mode: 0o600 });
    await Deno.writeTextFile(join(d, "etc/main.cf"), mainCf(d) + mainCfLines.join("\n") + "\n");
    await Deno.writeTextFile(join(d, "etc/master.cf"), masterCf(this.ports));
    const mailboxes = this.users.map((u) => `${u}@example.com ${u}/\n`).join("");
    await Deno.writeTextFile(join(d, "etc/vmailbox"), mailboxes);
    await Deno.writeTextFile(join(d, "etc/recipient_access"), FAILING_RECIPIENTS);
    await Deno.writeTextFile(join(d, "dovecot.conf"), dovecotConf(d));
    await Deno.writeTextFile(
      join(d, "dovecot/users"),
      `${POSTFIX_USER}:{PLAIN}${POSTFIX_PASSWORD}::::::\n`,
      { mode: 0o640 },
    );
    await Deno.chown(join(d, "dovecot/users"), null, await gidOf("dovecot"));
  }

  /** Starts Postfix, then Dovecot's auth service; waits until the ports and the socket exist. */
  async startServices(): Promise<void> {
    await run("/usr/sbin/postfix", ["-c", join(this.dir, "etc"), "start"]);
    this.#running = true;
    // In the foreground, as our child: a daemonised Dovecot would keep our output pipes open.
    this.#dovecot = new Deno.Command("/usr/sbin/dovecot", {
      args: ["-F", "-c", join(this.dir, "dovecot.conf")],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    await bounded(this.#waitReady(), () => `Postfix and Dovecot ready in ${this.dir}`, 20_000);
  }

  async #waitReady(): Promise<void> {
    const socket = join(this.dir, "queue/private/auth");
    for (let i = 0; i < 1000; i++) {
      const ok = await Promise.all([
        ...Object.values(this.ports).map((p) => canConnect(p)),
        Deno.stat(socket).then(() => true, () => false),
      ]);
      if (ok.every(Boolean)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error("Postfix or Dovecot did not come up");
  }

  /** Stops Postfix and Dovecot (an outage); {@link startServices} brings them back. */
  async stopServices(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    // abort, not stop: every smtpd goes at once, as in a crash (stop lets sessions finish).
    await run("/usr/sbin/postfix", ["-c", join(this.dir, "etc"), "abort"]).catch(() => "");
    const dovecot = this.#dovecot;
    this.#dovecot = undefined;
    if (dovecot) {
      dovecot.kill("SIGTERM");
      await bounded(dovecot.status, "Dovecot to exit");
    }
    await bounded(
      (async () => {
        for (let i = 0; i < 1000 && await canConnect(this.ports.plain); i++) {
          await new Promise((r) => setTimeout(r, 50));
        }
      })(),
      "Postfix to stop listening",
    );
  }

  /**
   * Replaces the `recipient_access` table (regexp lines) and restarts Postfix: a reload would
   * leave the plugin's pooled connection on an `smtpd` that still has the old table.
   */
  async setRecipientAccess(table: string): Promise<void> {
    await Deno.writeTextFile(join(this.dir, "etc/recipient_access"), table);
    await this.stopServices();
    await this.startServices();
  }

  /** Every message delivered so far, oldest first (by Maildir file name). */
  async messages(): Promise<MaildirMessage[]> {
    const out: MaildirMessage[] = [];
    for await (const user of Deno.readDir(join(this.dir, "mail"))) {
      for (const sub of ["new", "cur"]) {
        const path = join(this.dir, "mail", user.name, sub);
        const files = await Array.fromAsync(Deno.readDir(path)).catch(() => []);
        for (const f of files) {
          out.push(await readMessage(user.name, f.name, join(path, f.name)));
        }
      }
    }
    return out.sort((a, b) => deliveryKey(a.file) - deliveryKey(b.file));
  }

  /** Waits until `pred` holds for the delivered messages (at most `timeoutMs`); returns them. */
  async waitForMessages(
    pred: (messages: MaildirMessage[]) => boolean,
    what: string,
    timeoutMs = 20_000,
  ): Promise<MaildirMessage[]> {
    const deadline = Date.now() + timeoutMs;
    while (true) {
      const messages = await this.messages();
      if (pred(messages)) return messages;
      if (Date.now() > deadline) {
        throw new Error(
          `timed out waiting for ${what}; delivered:\n` +
            messages.map((m) => `  ${m.user}: ${m.subject}`).join("\n") + `\n${await this.log()}`,
        );
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Postfix's log so far (`maillog_file`). */
  log(): Promise<string> {
    return Deno.readTextFile(join(this.dir, "postfix.log")).catch(() => "");
  }

  /** Stops both services and removes the directory. */
  async close(): Promise<void> {
    await this.stopServices().catch(() => {});
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

async function uidOf(user: string): Promise<number> {
  return Number((await run("id", ["-u", user])).trim());
}

async function gidOf(group: string): Promise<number> {
  return Number((await run("id", ["-g", group])).trim());
}

async function canConnect(port: number): Promise<boolean> {
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.close();
    return true;
  } catch {
    return false;
  }
}

/** `1733500000.V801I2a3bM123456.host` → seconds and microseconds as one number. */
function deliveryKey(file: string): number {
  const m = /^(\d+)\.[^.]*?M(\d+)/.exec(file);
  return m ? Number(m[1]) * 1e6 + Number(m[2]) : 0;
}

async function readMessage(user: string, file: string, path: string): Promise<MaildirMessage> {
  const raw = await Deno.readTextFile(path);
  const parsed = await simpleParser(raw);
  const headers = parseHeaderBlock(raw.slice(0, raw.search(/\r?\n\r?\n/)));
  const refs = parsed.references;
  return {
    user,
    file,
    headers,
    from: headers.get("from") ?? "",
    to: `${user}@example.com`,
    subject: parsed.subject ?? "",
    text: parsed.text ?? "",
    html: typeof parsed.html === "string" ? parsed.html : "",
    messageId: parsed.messageId ?? "",
    inReplyTo: parsed.inReplyTo,
    references: refs === undefined ? undefined : Array.isArray(refs) ? refs.join(" ") : refs,
    raw,
  };
}
