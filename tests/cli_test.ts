/**
 * Black-box tests of the `teleport-email` command line: each case runs the program under test
 * (`deno run main.ts`, or `TELEPORT_EMAIL_BIN`: see helpers/plugin_process.ts) as a child process
 * and checks its exit code, stdout and stderr.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parse } from "smol-toml";
import { EXAMPLE_CONFIG, EXAMPLE_PATHS } from "../src/config/example.ts";
import { loadConfig } from "../src/config/load.ts";
import { type CliResult, mapLimit, runTeleportEmail } from "./helpers/cli.ts";

/** A unique secret put in every password and key: it must never appear in any output. */
const SECRET = "tE-cli-SECRET-8f3a1c";

/** Parallel children: the machine has 2 cores shared with other work. */
const PARALLEL = 3;

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "teleport-email-cli-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function assertNoStack(r: CliResult): void {
  for (const text of [r.stdout, r.stderr]) {
    assert.doesNotMatch(text, /^\s+at /m, `stack trace in output:\n${text}`);
    assert.ok(!text.includes(SECRET), `secret leaked:\n${text}`);
  }
}

// ---- version, help, usage -----------------------------------------------------------------------

Deno.test("teleport-email version prints one version line", async () => {
  const r = await runTeleportEmail(["version"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(
    r.stdout,
    /^teleport-email v\d+\.\d+\.\d+(-[\w.]+)?( git:\S+)? deno\d+\.\d+\.\d+\n$/,
  );
  assert.equal(r.stderr, "");
});

Deno.test("teleport-email help, --help and no command print usage to stderr and exit 0", async () => {
  const cases: [string[], RegExp][] = [
    [[], /^usage: teleport-email \[<flags>\] <command> \[<args> \.\.\.\]\n/],
    [["--help"], /^usage: teleport-email \[<flags>\] <command>/],
    [["help"], /^usage: teleport-email \[<flags>\] <command>/],
    [
      ["help", "start"],
      /^usage: teleport-email start \[<flags>\]\n\nStarts a the Teleport Email plugin\.\n/,
    ],
    [["start", "--help"], /^usage: teleport-email start \[<flags>\]\n/],
    [
      ["configure", "--help"],
      /^usage: teleport-email configure\n\nPrints an example \.TOML configuration file\.\n/,
    ],
    [
      ["--help", "version"],
      /^usage: teleport-email version\n\nPrints teleport-email version and exits\.\n/,
    ],
  ];
  const results = await mapLimit(cases, PARALLEL, ([args]) => runTeleportEmail(args));
  results.forEach((r, i) => {
    const [args, re] = cases[i];
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    assert.equal(r.stdout, "", args.join(" "));
    assert.match(r.stderr, re, args.join(" "));
  });
  const startHelp = results[3].stderr;
  assert.ok(startHelp.includes('-c, --config="/etc/teleport-email.toml"'));
  assert.ok(startHelp.includes("TOML config file path"));
  assert.match(startHelp, /-d, --debug +Enable verbose logging to stderr\n/);
  assert.match(startHelp, /--diag-addr=DIAG-ADDR +Serve \/healthz, \/readyz and \/metrics on/);
  assert.match(
    startHelp,
    /--help +Show context-sensitive help \(also try --help-long and --help-man\)\./,
  );
  const appHelp = results[0].stderr;
  for (
    const line of [
      "Teleport plugin for access requests approval via E-mail.",
      "  help [<command>...]\n    Show help.",
      "  configure\n    Prints an example .TOML configuration file.",
      "  version\n    Prints teleport-email version and exits.",
      "  start [<flags>]\n    Starts a the Teleport Email plugin.",
    ]
  ) {
    assert.ok(appHelp.includes(line), line);
  }
});

Deno.test("teleport-email rejects unknown commands, flags and arguments with usage and exit 2", async () => {
  const cases: [string[], string][] = [
    [["bogus"], 'teleport-email: error: expected command but got "bogus", try --help'],
    [["--bogus"], "teleport-email: error: unknown flag '--bogus', try --help"],
    [["start", "--bogus"], "teleport-email: error: unknown flag '--bogus', try --help"],
    [["start", "-x"], "teleport-email: error: unknown flag '-x', try --help"],
    [["start", "-c"], "teleport-email: error: expected argument for flag '--config', try --help"],
    [["version", "-c", "x"], "teleport-email: error: unknown short flag '-c', try --help"],
    [["configure", "-d"], "teleport-email: error: unknown short flag '-d', try --help"],
    [["version", "extra"], "teleport-email: error: unexpected extra, try --help"],
    [["help", "nope"], 'teleport-email: error: expected command but got "nope", try --help'],
    [["start", "--debug=yes"], "teleport-email: error: flag '--debug' takes no value, try --help"],
  ];
  const results = await mapLimit(cases, PARALLEL, ([args]) => runTeleportEmail(args));
  results.forEach((r, i) => {
    const [args, first] = cases[i];
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.equal(r.stdout, "");
    const lines = r.stderr.split("\n");
    assert.equal(lines[0], first, args.join(" "));
    assert.match(lines[1], /^usage: teleport-email /, args.join(" "));
    assertNoStack(r);
  });
});

// ---- configure ----------------------------------------------------------------------------------

Deno.test("teleport-email configure prints a TOML example that round-trips through the loader", async () => {
  const r = await runTeleportEmail(["configure"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "");
  assert.equal(r.stdout, EXAMPLE_CONFIG);
  assert.ok(r.stdout.startsWith("# Example email plugin configuration TOML file\n"));
  const doc = parse(r.stdout) as Record<string, Record<string, unknown>>;
  assert.equal(doc.mailgun, undefined, "only one mailer is active");
  assert.equal(doc.smtp.starttls_policy, "mandatory");

  await withTempDir(async (dir) => {
    const pw = join(dir, "smtp_password");
    const id = join(dir, "auth_id");
    await Deno.writeTextFile(pw, `${SECRET}\n`);
    await Deno.writeTextFile(id, "identity");
    const path = join(dir, "teleport-email.toml");
    await Deno.writeTextFile(
      path,
      r.stdout.replace(EXAMPLE_PATHS.smtpPasswordFile, pw).replace(EXAMPLE_PATHS.identity, id),
    );
    const cfg = await loadConfig(path);
    assert.deepEqual(cfg.warnings, []);
    assert.equal(cfg.smtp?.password, SECRET);
    assert.equal(cfg.teleport.identity, id);
    assert.deepEqual({ ...cfg.roleToRecipients }, {
      dev: ["dev-manager@example.com"],
      "*": ["root@example.com", "admin@example.com"],
    });
  });
});

Deno.test("teleport-email start on the unchanged example fails only on its placeholder files", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "teleport-email.toml");
    await Deno.writeTextFile(path, EXAMPLE_CONFIG);
    const r1 = await runTeleportEmail(["start", "-c", path]);
    assert.equal(r1.code, 1);
    assert.equal(
      r1.stderr,
      `ERROR: ${path}: cannot read smtp.password_file: Error reading password from ${EXAMPLE_PATHS.smtpPasswordFile}: file not found\n`,
    );
    const pw = join(dir, "pw");
    await Deno.writeTextFile(pw, SECRET);
    await Deno.writeTextFile(path, EXAMPLE_CONFIG.replace(EXAMPLE_PATHS.smtpPasswordFile, pw));
    const r2 = await runTeleportEmail(["start", "-c", path]);
    assert.equal(r2.code, 1);
    assert.match(
      r2.stderr,
      new RegExp(
        `^ERROR: .*: cannot read teleport\\.identity "${EXAMPLE_PATHS.identity}": file not found \\(hint: .*tctl auth sign.*\\)\\n$`,
      ),
    );
    assertNoStack(r2);
  });
});

// ---- start with broken configurations -----------------------------------------------------------

interface Files {
  dir: string;
  identity: string;
  emptyFile: string;
  secretFile: string;
}

const base = (f: Files) => ({
  teleport: `[teleport]\naddr = "teleport.example.com:443"\nidentity = "${f.identity}"\n`,
  smtp: `[smtp]\nhost = "smtp.example.com"\nusername = "user"\npassword = "${SECRET}"\n`,
  mailgun: `[mailgun]\ndomain = "mg.example.com"\nprivate_key = "${SECRET}"\n`,
  delivery: `[delivery]\nsender = "Teleport <noreply@example.com>"\n`,
  rtr: `[role_to_recipients]\n"dev" = "dev@example.com"\n"*" = ["admin@example.com"]\n`,
});

type Parts = ReturnType<typeof base>;

function assemble(p: Parts, extra = ""): string {
  return p.teleport + p.smtp + p.delivery + p.rtr + extra;
}

/** name, config builder, fragment that must appear in the single stderr line. */
const BROKEN: [string, (p: Parts, f: Files) => string, string][] = [
  [
    "TOML syntax error",
    (p) => assemble(p).replace(`password = "${SECRET}"`, `password = "${SECRET}`),
    ":7:",
  ],
  [
    "port is a string",
    (p) => assemble(p).replace("[smtp]\n", '[smtp]\nport = "x"\n'),
    "invalid smtp.port: expected an integer, got a string",
  ],
  [
    "port out of range",
    (p) => assemble(p).replace("[smtp]\n", "[smtp]\nport = 70000\n"),
    "invalid smtp.port 70000",
  ],
  [
    "identity is a number",
    (p) => assemble({ ...p, teleport: "[teleport]\nidentity = 5\n" }),
    "invalid teleport.identity: expected a string",
  ],
  [
    "smtp is not a table",
    (p) => 'smtp = "smtp.example.com"\n' + assemble({ ...p, smtp: "" }),
    "invalid [smtp]: expected a table",
  ],
  [
    "no role_to_recipients",
    (p) => assemble({ ...p, rtr: "" }),
    "missing required value role_to_recipients",
  ],
  [
    "no wildcard",
    (p) => assemble({ ...p, rtr: '[role_to_recipients]\n"dev" = "dev@example.com"\n' }),
    "missing required value role_to_recipients[*]",
  ],
  [
    "empty wildcard",
    (p) => assemble({ ...p, rtr: '[role_to_recipients]\n"*" = []\n' }),
    "missing required value role_to_recipients[*]",
  ],
  [
    "recipient with a display name",
    (p) =>
      assemble({
        ...p,
        rtr: '[role_to_recipients]\n"*" = "a@example.com"\n"dev" = "Dev <dev@example.com>"\n',
      }),
    "invalid email address Dev <dev@example.com> in role_to_recipients.dev",
  ],
  [
    "recipient is a number",
    (p) => assemble({ ...p, rtr: '[role_to_recipients]\n"*" = 42\n' }),
    "role_to_recipients.*",
  ],
  [
    "recipients and role_to_recipients",
    (p) => assemble({ ...p, delivery: p.delivery + 'recipients = ["a@example.com"]\n' }),
    "provide either delivery.recipients or role_to_recipients, not both",
  ],
  [
    "recipients is a string",
    (p) => assemble({ ...p, delivery: p.delivery + 'recipients = "a@example.com"\n' }),
    "invalid delivery.recipients: expected an array of strings",
  ],
  [
    "no mailer",
    (p) => assemble({ ...p, smtp: "" }),
    "provide either [mailgun] or [smtp] sections to work with plugin",
  ],
  ["both mailers", (p) => assemble(p, p.mailgun), "both [mailgun] and [smtp] sections are present"],
  [
    "smtp without host",
    (p) => assemble(p).replace('host = "smtp.example.com"\n', ""),
    "provide smtp.host to use SMTP",
  ],
  [
    "smtp without username",
    (p) => assemble(p).replace('username = "user"\n', ""),
    "provide smtp.username to use SMTP",
  ],
  [
    "smtp without password",
    (p) => assemble(p).replace(`password = "${SECRET}"\n`, ""),
    "specify smtp.password or smtp.password_file",
  ],
  [
    "missing password file",
    (p, f) => assemble(p).replace(`password = "${SECRET}"`, `password_file = "${f.dir}/nope"`),
    `cannot read smtp.password_file: Error reading password from ${"DIR"}/nope: file not found`,
  ],
  [
    "empty password file",
    (p, f) => assemble(p).replace(`password = "${SECRET}"`, `password_file = "${f.emptyFile}"`),
    "provide smtp.password or smtp.password_file and ensure that password file",
  ],
  [
    "password file is a directory",
    (p, f) => assemble(p).replace(`password = "${SECRET}"`, `password_file = "${f.dir}"`),
    "cannot read smtp.password_file: Error reading password from",
  ],
  [
    "bad starttls_policy",
    (p) => assemble(p).replace("[smtp]\n", '[smtp]\nstarttls_policy = "always"\n'),
    'invalid smtp.starttls_policy: unsupported starttls_policy "always"',
  ],
  [
    "missing ca_file",
    (p, f) => assemble(p).replace("[smtp]\n", `[smtp]\nca_file = "${f.dir}/ca.pem"\n`),
    "cannot read smtp.ca_file",
  ],
  [
    "mailgun without key",
    (p) => assemble({ ...p, smtp: '[mailgun]\ndomain = "mg.example.com"\n' }),
    "specify mailgun.private_key or mailgun.private_key_file",
  ],
  [
    "mailgun without domain",
    (p) => assemble({ ...p, smtp: `[mailgun]\nprivate_key = "${SECRET}"\n` }),
    "provide mailgun.domain to use Mailgun",
  ],
  [
    "mailgun empty key file",
    (p, f) =>
      assemble({ ...p, smtp: `[mailgun]\ndomain = "d"\nprivate_key_file = "${f.emptyFile}"\n` }),
    "provide mailgun.private_key or mailgun.private_key_file to use Mailgun and ensure that password file",
  ],
  [
    "mailgun bad region",
    (p) => assemble({ ...p, smtp: p.mailgun + 'region = "asia"\n' }),
    'invalid mailgun.region "asia"',
  ],
  [
    "mailgun region and api_base",
    (p) =>
      assemble({
        ...p,
        smtp: p.mailgun + 'region = "eu"\napi_base = "https://x.example.com/v3"\n',
      }),
    "set either mailgun.api_base or mailgun.region, not both",
  ],
  ["no sender", (p) => assemble({ ...p, delivery: "" }), "missing required value delivery.sender"],
  [
    "bad sender",
    (p) => assemble({ ...p, delivery: '[delivery]\nsender = "noreply"\n' }),
    'invalid delivery.sender "noreply"',
  ],
  [
    "notify_requester is a string",
    (p) => assemble({ ...p, delivery: p.delivery + 'notify_requester = "yes"\n' }),
    "invalid delivery.notify_requester: expected a boolean",
  ],
  [
    "bad severity",
    (p) => assemble(p, '[log]\nseverity = "loud"\n'),
    'invalid log.severity: unsupported logger severity: "loud"',
  ],
  [
    "bad format",
    (p) => assemble(p, '[log]\nformat = "xml"\n'),
    'invalid log.format: unsupported log output format : "xml"',
  ],
  [
    "unopenable log file",
    (p, f) => assemble(p, `[log]\noutput = "${f.dir}/no/such/dir/email.log"\n`),
    'cannot open log.output "',
  ],
  [
    "bad duration",
    (p) =>
      assemble(p).replace("[teleport]\n", '[teleport]\nrefresh_identity_interval = "5 minutes"\n'),
    "invalid teleport.refresh_identity_interval: time: unknown unit",
  ],
  [
    "duration as integer",
    (p) => assemble(p).replace("[teleport]\n", "[teleport]\nrefresh_identity_interval = 60\n"),
    "invalid teleport.refresh_identity_interval: expected a duration string",
  ],
  [
    "identity and key pair",
    (p) =>
      assemble(p).replace(
        "[teleport]\n",
        '[teleport]\nclient_key = "k"\nclient_crt = "c"\nroot_cas = "r"\n',
      ),
    "configuration setting `identity` is mutually exclusive with all the `client_crt`, `client_key` and `root_cas` settings",
  ],
  [
    "partial key pair",
    (p) => assemble({ ...p, teleport: '[teleport]\nclient_crt = "c"\n' }),
    "configuration setting(s) `client_crt` are provided but setting(s) `client_key`, `root_cas` are missing",
  ],
  [
    "refresh_identity without identity",
    (p) => assemble({ ...p, teleport: "[teleport]\nrefresh_identity = true\n" }),
    "`refresh_identity` requires that `identity` be set",
  ],
  [
    "no credentials",
    (p) => assemble({ ...p, teleport: '[teleport]\naddr = "x:3025"\n' }),
    "no credentials configured (hint: set teleport.identity",
  ],
  [
    "missing identity file",
    (p, f) => assemble({ ...p, teleport: `[teleport]\nidentity = "${f.dir}/auth_id"\n` }),
    'cannot read teleport.identity "',
  ],
];

Deno.test(`teleport-email start -c rejects ${BROKEN.length} broken configurations with one clear line`, async () => {
  assert.ok(BROKEN.length >= 25);
  await withTempDir(async (dir) => {
    const files: Files = {
      dir,
      identity: join(dir, "identity"),
      emptyFile: join(dir, "empty"),
      secretFile: join(dir, "secret"),
    };
    await Deno.writeTextFile(files.identity, "identity");
    await Deno.writeTextFile(files.emptyFile, "\n \n");
    await Deno.writeTextFile(files.secretFile, SECRET);
    const parts = base(files);
    const results = await mapLimit(BROKEN, PARALLEL, async ([, build], i) => {
      const path = join(dir, `broken-${i}.toml`);
      await Deno.writeTextFile(path, build(parts, files));
      return { path, r: await runTeleportEmail(["start", "-c", path]) };
    });
    results.forEach(({ path, r }, i) => {
      const [name, , fragment] = BROKEN[i];
      const ctx = `${name}:\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
      assert.equal(r.code, 1, ctx);
      assert.equal(r.stdout, "", ctx);
      const lines = r.stderr.split("\n");
      assert.equal(lines.length, 2, `exactly one line expected: ${ctx}`);
      assert.equal(lines[1], "", ctx);
      assert.ok(lines[0].startsWith(`ERROR: ${path}`), ctx);
      assert.ok(lines[0].includes(fragment.replace("DIR", dir)), `expected ${fragment}: ${ctx}`);
      assertNoStack(r);
    });
  });
});

Deno.test("teleport-email start -c on a missing file says how to create one", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "nope.toml");
    const r = await runTeleportEmail(["start", "-c", path]);
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      `ERROR: ${path}: cannot read the configuration file: file not found (hint: write one with \`teleport-email configure > teleport-email.toml\`)\n`,
    );
  });
});

// ---- start with a valid configuration -----------------------------------------------------------

// ENGINE: these tests run `start` on a valid configuration whose identity file is not a real
// identity, so `runApp` (src/app.ts) must fail: with the placeholder it fails with "not implemented",
// with the engine on the identity file. They check only what the CLI does around `runApp`.
Deno.test("teleport-email start on a valid config logs the start line, then the fatal error", async () => {
  await withTempDir(async (dir) => {
    const identity = join(dir, "identity");
    await Deno.writeTextFile(identity, "identity");
    const files = { dir, identity, emptyFile: "", secretFile: "" };
    const path = join(dir, "ok.toml");
    await Deno.writeTextFile(
      path,
      assemble(base(files)).replace("[teleport]\n", '[teleport]\nauth_server = "auth:3025"\n') +
        '[slack]\ntoken = "x"\n',
    );
    const [plain, debug] = await Promise.all([
      runTeleportEmail(["start", "-c", path]),
      runTeleportEmail(["start", "--debug", "--config", path]),
    ]);
    for (const r of [plain, debug]) {
      assert.equal(r.code, 1, r.stderr);
      assert.equal(r.stdout, "");
      assertNoStack(r);
      assert.match(
        r.stderr,
        /^\d{4}-\d\d-\d\dT[\d:.]+Z INFO {2}Starting Teleport Access Email Plugin version=\d+\.\d+\.\d+\S* git_ref=\S*$/m,
      );
      assert.match(r.stderr, /\n\S+ ERROR Terminating with fatal error error=".+"\n$/);
      assert.match(
        r.stderr,
        new RegExp(`WARN  unknown section \\[slack\\] in ${path} \\(ignored\\)`),
      );
      assert.match(
        r.stderr,
        /WARN {2}Configuration setting `auth_server` is deprecated, consider to change it to `addr`/,
      );
    }
    assert.doesNotMatch(plain.stderr, /DEBUG/);
    assert.match(debug.stderr.split("\n")[0], / DEBUG DEBUG logging enabled$/);
  });
});

Deno.test("teleport-email start logs to the configured file or stdout, and reports the fatal error on stderr once", async () => {
  await withTempDir(async (dir) => {
    const identity = join(dir, "identity");
    await Deno.writeTextFile(identity, "identity");
    const files = { dir, identity, emptyFile: "", secretFile: "" };
    const logFile = join(dir, "email.log");
    await Deno.writeTextFile(logFile, "previous line\n");
    const toFile = join(dir, "file.toml");
    await Deno.writeTextFile(
      toFile,
      assemble(base(files), `[log]\noutput = "${logFile}"\nformat = "json"\n`),
    );
    const toStdout = join(dir, "stdout.toml");
    await Deno.writeTextFile(toStdout, assemble(base(files), `[log]\noutput = "stdout"\n`));
    const [rf, rs] = await Promise.all([
      runTeleportEmail(["start", "-c", toFile]),
      runTeleportEmail(["start", "-c", toStdout]),
    ]);
    assert.equal(rf.code, 1);
    assert.equal(rf.stdout, "");
    assert.match(rf.stderr, /^ERROR: [^\n]+\n$/);
    const expected = rf.stderr;
    const lines = (await Deno.readTextFile(logFile)).split("\n");
    assert.equal(lines[0], "previous line");
    const records = lines.slice(1, -1).map((l) => JSON.parse(l));
    assert.deepEqual([records[0].level, records[0].msg], [
      "INFO",
      "Starting Teleport Access Email Plugin",
    ]);
    assert.deepEqual([records.at(-1).level, records.at(-1).msg], [
      "ERROR",
      "Terminating with fatal error",
    ]);
    assert.equal(records.at(-1).error, expected.slice("ERROR: ".length, -1));

    assert.equal(rs.code, 1);
    assert.equal(rs.stderr, expected);
    assert.match(rs.stdout, / INFO {2}Starting Teleport Access Email Plugin /);
    assert.match(rs.stdout, / ERROR Terminating with fatal error /);
    assertNoStack(rf);
    assertNoStack(rs);
  });
});
