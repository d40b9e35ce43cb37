import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigError } from "../errors.ts";
import { KNOWN_KEYS } from "./decode.ts";
import { EXAMPLE_CONFIG, EXAMPLE_PATHS } from "./example.ts";
import { loadConfig, MAILGUN_API_BASES } from "./load.ts";
import type { Config } from "./types.ts";

/** A unique secret: no message may ever contain it. */
const SECRET = "s3cr3t-Zq9-never-print-me";

interface Fixture {
  dir: string;
  /** Writes `text` to `name` in the fixture directory and returns its path. */
  write(name: string, text: string): Promise<string>;
  /** Loads `toml` (written as config.toml). */
  load(toml: string): Promise<Config>;
  /** Loads `toml` and returns the ConfigError it must fail with. */
  fail(toml: string): Promise<ConfigError>;
  /** `[teleport]` with an existing identity file. */
  teleport: string;
  configPath: string;
}

async function withFixture(fn: (f: Fixture) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "teleport-email-config-" });
  try {
    const write = async (name: string, text: string) => {
      const p = join(dir, name);
      await Deno.writeTextFile(p, text);
      return p;
    };
    const identity = await write("identity", "not checked at load time\n");
    const configPath = join(dir, "config.toml");
    const load = async (toml: string) => {
      await Deno.writeTextFile(configPath, toml);
      return await loadConfig(configPath);
    };
    const fail = async (toml: string) => {
      await Deno.writeTextFile(configPath, toml);
      try {
        await loadConfig(configPath);
      } catch (err) {
        assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${err}`);
        assert.ok(err.message.startsWith(`${configPath}`), err.message);
        assert.equal(err.file, configPath);
        assert.ok(!err.message.includes("\n"), `not one line: ${err.message}`);
        assert.ok(!err.message.includes(SECRET), `secret leaked: ${err.message}`);
        assert.ok(!(err.hint ?? "").includes(SECRET), `secret leaked: ${err.hint}`);
        return err;
      }
      throw new assert.AssertionError({ message: `expected ${toml} to fail` });
    };
    const teleport = `[teleport]\nidentity = ${JSON.stringify(identity)}\n`;
    await fn({ dir, write, load, fail, teleport, configPath });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const MAILGUN = `[mailgun]\ndomain = "x"\nprivate_key = "${SECRET}"\n`;
const SMTP = `[smtp]\nhost = "smtp.example.com"\nusername = "user1"\npassword = "${SECRET}"\n`;
const SENDER = `[delivery]\nsender = "email@example.org"\n`;
const RTR = `[role_to_recipients]\n"*" = "admin@example.org"\n`;

/** A valid file: teleport + smtp + sender + recipients, with `extra` appended. */
function valid(f: Fixture, extra = ""): string {
  return f.teleport + SMTP + SENDER + RTR + extra;
}

async function assertFails(
  f: Fixture,
  toml: string,
  key: string,
  fragment: string | RegExp,
): Promise<ConfigError> {
  const err = await f.fail(toml);
  assert.equal(err.key, key, err.message);
  if (typeof fragment === "string") assert.ok(err.message.includes(fragment), err.message);
  else assert.match(err.message, fragment);
  return err;
}

// ---- Ported from the Go plugin's config_test.go: TestRecipients -------------------------------

Deno.test("loadConfig() moves delivery.recipients to role_to_recipients[*] (Go TestRecipients 1)", async () => {
  await withFixture(async (f) => {
    const cfg = await f.load(
      f.teleport + MAILGUN +
        `[delivery]\nsender = "email@example.org"\nrecipients = ["email1@example.org", "email2@example.org"]\n`,
    );
    assert.deepEqual({ ...cfg.roleToRecipients }, {
      "*": ["email1@example.org", "email2@example.org"],
    });
    assert.ok(
      cfg.warnings.some((w) => w.includes("delivery.recipients config option is deprecated")),
    );
  });
});

Deno.test("loadConfig() reads role_to_recipients strings and arrays (Go TestRecipients 2)", async () => {
  await withFixture(async (f) => {
    const cfg = await f.load(
      f.teleport + MAILGUN + SENDER +
        `[role_to_recipients]\n"dev" = ["dev@example.org", "sre@example.org"]\n"*" = "admin@example.org"\n`,
    );
    assert.deepEqual({ ...cfg.roleToRecipients }, {
      "dev": ["dev@example.org", "sre@example.org"],
      "*": ["admin@example.org"],
    });
  });
});

Deno.test("loadConfig() rejects role_to_recipients without a wildcard (Go TestRecipients 3)", async () => {
  await withFixture(async (f) => {
    await assertFails(
      f,
      f.teleport + MAILGUN + SENDER +
        `[role_to_recipients]\n"dev" = ["dev@example.org", "sre@example.org"]\n`,
      'role_to_recipients."*"',
      ": missing required value role_to_recipients[*]",
    );
  });
});

Deno.test("loadConfig() rejects an empty wildcard list (Go TestRecipients 4)", async () => {
  await withFixture(async (f) => {
    await assertFails(
      f,
      f.teleport + MAILGUN + SENDER +
        `[role_to_recipients]\n"dev" = "email@example.org"\n"*" = []\n`,
      'role_to_recipients."*"',
      "missing required value role_to_recipients[*]",
    );
  });
});

Deno.test("loadConfig() rejects a config without recipients (Go TestRecipients 5)", async () => {
  await withFixture(async (f) => {
    const err = await assertFails(
      f,
      f.teleport + MAILGUN + SENDER,
      "role_to_recipients",
      "missing required value role_to_recipients",
    );
    assert.ok(!err.message.includes("[*]"));
  });
});

Deno.test("loadConfig() ignores [slack] and asks for a mailer (Go TestRecipients 6)", async () => {
  await withFixture(async (f) => {
    const err = await assertFails(
      f,
      `[slack]\ntoken = "token"\nrecipients = ["email1@example.org"]\n` + SENDER +
        `[role_to_recipients]\n"dev" = ["dev@example.org"]\n"*" = "admin@example.org"\n`,
      "smtp",
      "provide either [mailgun] or [smtp] sections to work with plugin",
    );
    assert.equal(
      err.message,
      `${f.configPath}: provide either [mailgun] or [smtp] sections to work with plugin`,
    );
  });
});

Deno.test("loadConfig() rejects delivery.recipients together with role_to_recipients", async () => {
  await withFixture(async (f) => {
    await assertFails(
      f,
      f.teleport + MAILGUN +
        `[delivery]\nsender = "a@b.c"\nrecipients = ["x@example.org"]\n` + RTR,
      "delivery.recipients",
      "provide either delivery.recipients or role_to_recipients, not both",
    );
  });
});

// ---- Ported from config_test.go: TestSMTPStartTLSPolicy ----------------------------------------

const GO_SMTP = `[smtp]\nhost = "http://example.org/"\nusername = "user1"\npassword = "hidden"\n`;

for (
  const [name, line, expected] of [
    ["no policy should fallback to mandatory", "", "mandatory"],
    [
      "mandatory policy should return Mandatory policy",
      'starttls_policy = "mandatory"',
      "mandatory",
    ],
    [
      "opportunistic policy should return Opportunistic policy",
      'starttls_policy = "opportunistic"',
      "opportunistic",
    ],
    ["disabled policy should return NoStartTLS policy", 'starttls_policy = "disabled"', "disabled"],
  ] as const
) {
  Deno.test(`loadConfig() smtp.starttls_policy: ${name} (Go TestSMTPStartTLSPolicy)`, async () => {
    await withFixture(async (f) => {
      const cfg = await f.load(f.teleport + GO_SMTP + line + "\n" + SENDER + RTR);
      assert.equal(cfg.smtp?.starttlsPolicy, expected);
      assert.equal(cfg.smtp?.host, "http://example.org/");
      assert.equal(cfg.smtp?.port, 587);
      assert.equal(cfg.mailgun, undefined);
    });
  });
}

Deno.test("loadConfig() smtp.starttls_policy: invalid policy should return an error (Go TestSMTPStartTLSPolicy)", async () => {
  await withFixture(async (f) => {
    const err = await assertFails(
      f,
      f.teleport + GO_SMTP + 'starttls_policy = "insecure"\n' + SENDER + RTR,
      "smtp.starttls_policy",
      "invalid smtp.starttls_policy",
    );
    assert.ok(err.message.endsWith(
      `: invalid smtp.starttls_policy: unsupported starttls_policy "insecure" - provide one of mandatory, opportunistic, disabled or leave empty to default to mandatory`,
    ));
  });
});

Deno.test("loadConfig() matches smtp.starttls_policy case-sensitively, like the Go plugin", async () => {
  await withFixture(async (f) => {
    await assertFails(
      f,
      f.teleport + GO_SMTP + 'starttls_policy = "Mandatory"\n' + SENDER + RTR,
      "smtp.starttls_policy",
      'unsupported starttls_policy "Mandatory"',
    );
  });
});

// ---- A complete valid file ----------------------------------------------------------------------

Deno.test("loadConfig() returns every value with defaults applied", async () => {
  await withFixture(async (f) => {
    const cfg = await f.load(valid(f));
    assert.equal(cfg.path, f.configPath);
    assert.deepEqual(cfg.teleport, {
      addr: "localhost:3025",
      identity: join(f.dir, "identity"),
      refreshIdentity: false,
      refreshIdentityIntervalMs: 60_000,
      clientKey: "",
      clientCrt: "",
      rootCas: "",
    });
    assert.deepEqual(cfg.smtp, {
      host: "smtp.example.com",
      port: 587,
      username: "user1",
      password: SECRET,
      passwordFile: "",
      starttlsPolicy: "mandatory",
      caFile: "",
    });
    assert.deepEqual(cfg.delivery, { sender: "email@example.org", notifyRequester: false });
    assert.deepEqual(cfg.log, { output: "stderr", severity: "info", format: "text" });
    assert.deepEqual(cfg.warnings, []);
  });
});

Deno.test("loadConfig() returns role_to_recipients without an Object prototype", async () => {
  await withFixture(async (f) => {
    const cfg = await f.load(valid(f));
    assert.equal(cfg.roleToRecipients["constructor"], undefined);
    assert.equal(cfg.roleToRecipients["toString"], undefined);
  });
});

Deno.test("loadConfig() accepts the Go field names of untagged keys (Host, Port, …)", async () => {
  await withFixture(async (f) => {
    const cfg = await f.load(
      f.teleport +
        `[smtp]\nHost = "h"\nPort = 2525\nUsername = "u"\nPassword = "p"\n[delivery]\nSender = "a@b.c"\n` +
        RTR,
    );
    assert.equal(cfg.smtp?.host, "h");
    assert.equal(cfg.smtp?.port, 2525);
    assert.equal(cfg.delivery.sender, "a@b.c");
    assert.deepEqual(cfg.warnings, []);
  });
});

// ---- File and syntax errors ---------------------------------------------------------------------

Deno.test("loadConfig() reports a missing file with its path", async () => {
  await withFixture(async (f) => {
    const p = join(f.dir, "nope.toml");
    await assert.rejects(loadConfig(p), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.message, `${p}: cannot read the configuration file: file not found`);
      assert.match(err.hint ?? "", /teleport-email configure/);
      return true;
    });
  });
});

Deno.test("loadConfig() reports a TOML syntax error with line and column", async () => {
  await withFixture(async (f) => {
    const err = await f.fail(`[smtp]\nhost = "x"\npassword = "${SECRET}\n`);
    assert.equal(err.key, "");
    assert.match(err.message, /config\.toml:3:\d+: invalid TOML: /);
  });
});

Deno.test("loadConfig() reports a redefined key as a TOML error", async () => {
  await withFixture(async (f) => {
    const err = await f.fail(`[smtp]\nhost = "x"\nhost = "y"\n`);
    assert.match(err.message, /config\.toml:3:1: invalid TOML: .*redefine/);
  });
});

// ---- Types --------------------------------------------------------------------------------------

for (
  const [toml, key, fragment] of [
    ['[smtp]\nport = "x"\n', "smtp.port", "invalid smtp.port: expected an integer, got a string"],
    ["[smtp]\nport = 25.5\n", "smtp.port", "expected an integer, got a float"],
    [
      "[teleport]\nidentity = 5\n",
      "teleport.identity",
      "invalid teleport.identity: expected a string, got an integer",
    ],
    [
      '[teleport]\nrefresh_identity = "yes"\n',
      "teleport.refresh_identity",
      "expected a boolean (true or false), got a string",
    ],
    ['[delivery]\nnotify_requester = "true"\n', "delivery.notify_requester", "expected a boolean"],
    [
      '[delivery]\nrecipients = "a@b.c"\n',
      "delivery.recipients",
      "invalid delivery.recipients: expected an array of strings, got a string",
    ],
    [
      '[delivery]\nrecipients = ["a@b.c", 1]\n',
      "delivery.recipients",
      "got an array containing an integer",
    ],
    ["[delivery]\nsender = ['a@b.c']\n", "delivery.sender", "expected a string, got an array"],
    [
      "[smtp]\npassword = 12345\n",
      "smtp.password",
      "invalid smtp.password: expected a string, got an integer",
    ],
    ["[mailgun]\nprivate_key = true\n", "mailgun.private_key", "expected a string, got a boolean"],
    ["[log]\nseverity = 1\n", "log.severity", "expected a string, got an integer"],
    ["[teleport]\naddr = 1979-05-27T07:32:00Z\n", "teleport.addr", "got a date-time"],
    ['smtp = "x"\n', "smtp", "invalid [smtp]: expected a table, got a string"],
    ['[teleport.addr]\nhost = "x"\n', "teleport.addr", "expected a string, got a table"],
    [
      'role_to_recipients = "a@b.c"\n',
      "role_to_recipients",
      "invalid role_to_recipients: unexpected type for recipients string",
    ],
    [
      '[role_to_recipients]\n"*" = 5\n',
      "role_to_recipients.*",
      "unexpected type for recipients value int64",
    ],
    [
      '[role_to_recipients]\n"*" = ["a@b.c", true]\n',
      "role_to_recipients.*",
      "got an array containing a boolean",
    ],
    [
      "[teleport]\nrefresh_identity_interval = 60\n",
      "teleport.refresh_identity_interval",
      "expected a duration string, got an integer",
    ],
  ] as const
) {
  Deno.test(`loadConfig() rejects the wrong type for ${key} (${JSON.stringify(toml.trim())})`, async () => {
    await withFixture(async (f) => {
      await assertFails(f, toml, key, fragment);
    });
  });
}

Deno.test("loadConfig() type errors never show the value", async () => {
  await withFixture(async (f) => {
    const err = await assertFails(
      f,
      `[smtp]\npassword = ["${SECRET}"]\n`,
      "smtp.password",
      "expected a string, got an array",
    );
    assert.ok(!err.message.includes(SECRET));
  });
});

// ---- role_to_recipients addresses --------------------------------------------------------------

Deno.test("loadConfig() reports the first invalid address in sorted role order", async () => {
  await withFixture(async (f) => {
    const err = await assertFails(
      f,
      f.teleport + SMTP + SENDER +
        `[role_to_recipients]\n"zeta" = "bad zeta"\n"*" = "admin@example.org"\n"alpha" = ["ok@example.org", "Alpha <a@example.org>"]\n`,
      "role_to_recipients.alpha",
      "invalid email address Alpha <a@example.org> in role_to_recipients.alpha",
    );
    assert.match(err.hint ?? "", /bare addresses/);
  });
});

for (
  const addr of ["", "admin", "admin@", "admin@example.org.", " admin@example.org", "a@b.c,d@e.f"]
) {
  Deno.test(`loadConfig() rejects the recipient ${JSON.stringify(addr)}`, async () => {
    await withFixture(async (f) => {
      await assertFails(
        f,
        f.teleport + SMTP + SENDER + `[role_to_recipients]\n"*" = ${JSON.stringify(addr)}\n`,
        "role_to_recipients.*",
        `invalid email address ${addr} in role_to_recipients.*`,
      );
    });
  });
}

Deno.test("loadConfig() keeps invalid-address messages on one line", async () => {
  await withFixture(async (f) => {
    const err = await assertFails(
      f,
      f.teleport + SMTP + SENDER + `[role_to_recipients]\n"*" = "a@b.c\\r\\nBcc: x@y.z"\n`,
      "role_to_recipients.*",
      "invalid email address a@b.c\\r\\nBcc: x@y.z in role_to_recipients.*",
    );
    assert.ok(!err.message.includes("\r"));
  });
});

Deno.test("loadConfig() accepts a role mapped to an empty list", async () => {
  await withFixture(async (f) => {
    const cfg = await f.load(
      f.teleport + SMTP + SENDER + `[role_to_recipients]\n"dev" = []\n"*" = "a@localhost"\n`,
    );
    assert.deepEqual({ ...cfg.roleToRecipients }, { "dev": [], "*": ["a@localhost"] });
  });
});

// ---- Mailers ------------------------------------------------------------------------------------

Deno.test("loadConfig() rejects [mailgun] and [smtp] together, naming both", async () => {
  await withFixture(async (f) => {
    const err = await assertFails(
      f,
      valid(f, MAILGUN),
      "mailgun",
      "both [mailgun] and [smtp] sections are present: keep only one of them",
    );
    assert.match(err.hint ?? "", /silently used \[smtp\]/);
  });
});

Deno.test("loadConfig() reads [mailgun] with the US API base by default", async () => {
  await withFixture(async (f) => {
    const cfg = await f.load(f.teleport + MAILGUN + SENDER + RTR);
    assert.deepEqual(cfg.mailgun, {
      domain: "x",
      privateKey: SECRET,
      privateKeyFile: "",
      apiBase: "https://api.mailgun.net/v3",
    });
    assert.equal(cfg.smtp, undefined);
  });
});

Deno.test("loadConfig() maps mailgun.region to the API base", async () => {
  await withFixture(async (f) => {
    for (const [region, base] of [["eu", MAILGUN_API_BASES.eu], ["US", MAILGUN_API_BASES.us]]) {
      const cfg = await f.load(f.teleport + MAILGUN + `region = "${region}"\n` + SENDER + RTR);
      assert.equal(cfg.mailgun?.apiBase, base);
    }
  });
});

Deno.test("loadConfig() accepts mailgun.api_base and drops its trailing slash", async () => {
  await withFixture(async (f) => {
    const cfg = await f.load(
      f.teleport + MAILGUN + `api_base = "http://127.0.0.1:8080/v3/"\n` + SENDER + RTR,
    );
    assert.equal(cfg.mailgun?.apiBase, "http://127.0.0.1:8080/v3");
  });
});

for (
  const [extra, key, fragment] of [
    [
      'region = "eu"\napi_base = "https://x/v3"\n',
      "mailgun.api_base",
      "set either mailgun.api_base or mailgun.region, not both",
    ],
    ['region = "ap"\n', "mailgun.region", 'invalid mailgun.region "ap": expected "us" or "eu"'],
    [
      'api_base = "ftp://x/v3"\n',
      "mailgun.api_base",
      "invalid mailgun.api_base: expected an http(s) URL",
    ],
    [`api_base = "https://api:${SECRET}@x/v3"\n`, "mailgun.api_base", "without credentials"],
    ['api_base = "not a url"\n', "mailgun.api_base", "invalid mailgun.api_base"],
  ] as const
) {
  Deno.test(`loadConfig() rejects mailgun ${extra.trim()}`, async () => {
    await withFixture(async (f) => {
      await assertFails(f, f.teleport + MAILGUN + extra + SENDER + RTR, key, fragment);
    });
  });
}

Deno.test("loadConfig() requires a Mailgun key", async () => {
  await withFixture(async (f) => {
    await assertFails(
      f,
      f.teleport + `[mailgun]\ndomain = "x"\n` + SENDER + RTR,
      "mailgun.private_key",
      "specify mailgun.private_key or mailgun.private_key_file",
    );
  });
});

Deno.test("loadConfig() checks the Mailgun key before the domain, like the Go plugin", async () => {
  await withFixture(async (f) => {
    await assertFails(
      f,
      f.teleport + `[mailgun]\n` + SENDER + RTR,
      "mailgun.private_key",
      "specify mailgun.private_key or mailgun.private_key_file",
    );
    await assertFails(
      f,
      f.teleport + `[mailgun]\nprivate_key = "${SECRET}"\n` + SENDER + RTR,
      "mailgun.domain",
      "provide mailgun.domain to use Mailgun",
    );
  });
});

Deno.test("loadConfig() reads mailgun.private_key_file trimmed", async () => {
  await withFixture(async (f) => {
    const p = await f.write("mg", `\n  ${SECRET}  \n\n`);
    const cfg = await f.load(
      f.teleport + `[mailgun]\ndomain = "x"\nprivate_key_file = "${p}"\n` + SENDER + RTR,
    );
    assert.equal(cfg.mailgun?.privateKey, SECRET);
    assert.equal(cfg.mailgun?.privateKeyFile, p);
  });
});

Deno.test("loadConfig() rejects an empty mailgun.private_key_file with the Go message", async () => {
  await withFixture(async (f) => {
    const p = await f.write("mg", " \n\t\n");
    await assertFails(
      f,
      f.teleport + `[mailgun]\ndomain = "x"\nprivate_key_file = "${p}"\n` + SENDER + RTR,
      "mailgun.private_key_file",
      `provide mailgun.private_key or mailgun.private_key_file to use Mailgun and ensure that password file ${p} is not empty`,
    );
  });
});

Deno.test("loadConfig() reports a missing mailgun.private_key_file with the Go message", async () => {
  await withFixture(async (f) => {
    const p = join(f.dir, "missing");
    await assertFails(
      f,
      f.teleport + `[mailgun]\ndomain = "x"\nprivate_key_file = "${p}"\n` + SENDER + RTR,
      "mailgun.private_key_file",
      `cannot read mailgun.private_key_file: Error reading password from ${p}: file not found`,
    );
  });
});

Deno.test("loadConfig() prefers the inline key and warns that the key file is ignored", async () => {
  await withFixture(async (f) => {
    const cfg = await f.load(
      f.teleport + MAILGUN + `private_key_file = "/nonexistent"\n` + SENDER + RTR,
    );
    assert.equal(cfg.mailgun?.privateKey, SECRET);
    assert.ok(cfg.warnings.includes(
      "mailgun.private_key_file is ignored because mailgun.private_key is set",
    ));
  });
});

for (
  const [smtp, key, message] of [
    [
      `[smtp]\nusername = "u"\npassword = "${SECRET}"\n`,
      "smtp.host",
      "provide smtp.host to use SMTP",
    ],
    [
      `[smtp]\nhost = "h"\npassword = "${SECRET}"\n`,
      "smtp.username",
      "provide smtp.username to use SMTP",
    ],
    [
      `[smtp]\nhost = "h"\nusername = "u"\n`,
      "smtp.password",
      "specify smtp.password or smtp.password_file",
    ],
    [`[smtp]\n`, "smtp.host", "provide smtp.host to use SMTP"],
  ] as const
) {
  Deno.test(`loadConfig() requires ${key}`, async () => {
    await withFixture(async (f) => {
      const err = await assertFails(f, f.teleport + smtp + SENDER + RTR, key, message);
      assert.equal(err.message, `${f.configPath}: ${message}`);
    });
  });
}

Deno.test("loadConfig() defaults smtp.port to 587 and keeps other ports", async () => {
  await withFixture(async (f) => {
    for (
      const [line, port] of [["", 587], ["port = 0", 587], ["port = 465", 465], [
        "port = 25",
        25,
      ]] as const
    ) {
      const cfg = await f.load(f.teleport + SMTP + line + "\n" + SENDER + RTR);
      assert.equal(cfg.smtp?.port, port, line);
    }
  });
});

for (const port of ["-1", "65536", "100000000000000000000"]) {
  Deno.test(`loadConfig() rejects smtp.port = ${port}`, async () => {
    await withFixture(async (f) => {
      await assertFails(
        f,
        f.teleport + SMTP + `port = ${port}\n` + SENDER + RTR,
        "smtp.port",
        `invalid smtp.port ${port}: expected a port number from 1 to 65535`,
      );
    });
  });
}

Deno.test("loadConfig() reads smtp.password_file: first 2000 bytes, trimmed", async () => {
  await withFixture(async (f) => {
    const p = await f.write("pw", `  ${SECRET}\n`);
    const cfg = await f.load(
      f.teleport + `[smtp]\nhost = "h"\nusername = "u"\npassword_file = "${p}"\n` + SENDER + RTR,
    );
    assert.equal(cfg.smtp?.password, SECRET);
    assert.equal(cfg.smtp?.passwordFile, p);

    const long = await f.write("long", "a".repeat(1999) + "bcdef");
    const cfg2 = await f.load(
      f.teleport + `[smtp]\nhost = "h"\nusername = "u"\npassword_file = "${long}"\n` + SENDER +
        RTR,
    );
    assert.equal(cfg2.smtp?.password, "a".repeat(1999) + "b");
    assert.ok(cfg2.warnings.some((w) => w.includes("longer than 2000 bytes")));
  });
});

Deno.test("loadConfig() rejects an empty smtp.password_file with the Go message", async () => {
  await withFixture(async (f) => {
    const p = await f.write("pw", "\n\n");
    await assertFails(
      f,
      f.teleport + `[smtp]\nhost = "h"\nusername = "u"\npassword_file = "${p}"\n` + SENDER + RTR,
      "smtp.password_file",
      `provide smtp.password or smtp.password_file and ensure that password file ${p} is not empty`,
    );
  });
});

Deno.test("loadConfig() reports a missing smtp.password_file with the Go message and the key", async () => {
  await withFixture(async (f) => {
    const p = join(f.dir, "missing");
    await assertFails(
      f,
      f.teleport + `[smtp]\nhost = "h"\nusername = "u"\npassword_file = "${p}"\n` + SENDER + RTR,
      "smtp.password_file",
      `cannot read smtp.password_file: Error reading password from ${p}: file not found`,
    );
  });
});

Deno.test("loadConfig() reports an unreadable smtp.password_file", async () => {
  await withFixture(async (f) => {
    await assertFails(
      f,
      f.teleport + `[smtp]\nhost = "h"\nusername = "u"\npassword_file = "${f.dir}"\n` + SENDER +
        RTR,
      "smtp.password_file",
      `Error reading password from ${f.dir}: `,
    );
  });
});

Deno.test("loadConfig() checks smtp.ca_file", async () => {
  await withFixture(async (f) => {
    const missing = join(f.dir, "ca.pem");
    await assertFails(
      f,
      valid(f).replace("[smtp]\n", `[smtp]\nca_file = "${missing}"\n`),
      "smtp.ca_file",
      `cannot read smtp.ca_file "${missing}": file not found`,
    );
    const junk = await f.write("junk.pem", "hello");
    await assertFails(
      f,
      valid(f).replace("[smtp]\n", `[smtp]\nca_file = "${junk}"\n`),
      "smtp.ca_file",
      `invalid smtp.ca_file "${junk}": no PEM certificate found`,
    );
    const pem = await f.write(
      "ca.pem",
      "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    );
    const cfg = await f.load(valid(f).replace("[smtp]\n", `[smtp]\nca_file = "${pem}"\n`));
    assert.equal(cfg.smtp?.caFile, pem);
  });
});

Deno.test("loadConfig() reads smtp.local_name and rejects what is not a host name", async () => {
  await withFixture(async (f) => {
    const withName = (name: string) =>
      valid(f).replace("[smtp]\n", `[smtp]\nlocal_name = ${JSON.stringify(name)}\n`);
    const cfg = await f.load(withName("mail.example.com"));
    assert.equal(cfg.smtp?.localName, "mail.example.com");
    assert.ok(!cfg.warnings.some((w) => w.includes("local_name")), cfg.warnings.join("; "));
    assert.equal((await f.load(valid(f))).smtp?.localName, undefined);
    for (const bad of ["mail example.com", "-mail.example.com", "mail..example.com", "a@b"]) {
      await assertFails(f, withName(bad), "smtp.local_name", `invalid smtp.local_name "${bad}"`);
    }
  });
});

// ---- Sender -------------------------------------------------------------------------------------

Deno.test("loadConfig() requires delivery.sender", async () => {
  await withFixture(async (f) => {
    const err = await assertFails(
      f,
      f.teleport + SMTP + RTR,
      "delivery.sender",
      "missing required value delivery.sender",
    );
    assert.match(err.hint ?? "", /Teleport <noreply@example.com>/);
  });
});

for (
  const sender of ["noreply", "Teleport", "a@b.c, d@e.f", "Team, Ops <a@b.c>", "<>", "a@b.c\n"]
) {
  Deno.test(`loadConfig() rejects delivery.sender = ${JSON.stringify(sender)}`, async () => {
    await withFixture(async (f) => {
      await assertFails(
        f,
        f.teleport + SMTP + `[delivery]\nsender = ${JSON.stringify(sender)}\n` + RTR,
        "delivery.sender",
        `invalid delivery.sender "${sender.replace("\n", "\\n")}": expected an email address`,
      );
    });
  });
}

Deno.test("loadConfig() accepts a sender with a display name", async () => {
  await withFixture(async (f) => {
    for (const sender of ["Teleport <noreply@example.com>", '"Team, Ops" <a@b.c>', "a@localhost"]) {
      const cfg = await f.load(
        f.teleport + SMTP +
          `[delivery]\nsender = ${JSON.stringify(sender)}\nnotify_requester = true\n` +
          RTR,
      );
      assert.equal(cfg.delivery.sender, sender);
      assert.equal(cfg.delivery.notifyRequester, true);
    }
  });
});

// ---- Log ----------------------------------------------------------------------------------------

Deno.test("loadConfig() accepts the Go logger's output and severity aliases", async () => {
  await withFixture(async (f) => {
    const cases: [string, string, string, string][] = [
      ["error", "ERR", "stderr", "error"],
      ["2", "Warning", "stderr", "warn"],
      ["out", "WARN", "stdout", "warn"],
      ["1", "trace", "stdout", "debug"],
      ["STDOUT", "", "stdout", "info"],
      ["/var/log/te.log", "Debug", "/var/log/te.log", "debug"],
      ["", "info", "stderr", "info"],
    ];
    for (const [output, severity, wantOutput, wantSeverity] of cases) {
      const cfg = await f.load(
        valid(f, `[log]\noutput = "${output}"\nseverity = "${severity}"\nformat = "JSON"\n`),
      );
      assert.deepEqual(cfg.log, { output: wantOutput, severity: wantSeverity, format: "json" });
    }
  });
});

Deno.test("loadConfig() falls back to stderr for log.output = syslog, with a warning", async () => {
  await withFixture(async (f) => {
    const cfg = await f.load(valid(f, `[log]\noutput = "syslog"\n`));
    assert.equal(cfg.log.output, "stderr");
    assert.ok(cfg.warnings.some((w) => w.startsWith('log.output "syslog" is not supported')));
  });
});

Deno.test("loadConfig() rejects an unknown log.severity with the Go message", async () => {
  await withFixture(async (f) => {
    await assertFails(
      f,
      valid(f, `[log]\nseverity = "verbose"\n`),
      "log.severity",
      'invalid log.severity: unsupported logger severity: "verbose"',
    );
  });
});

Deno.test("loadConfig() rejects an unknown log.format with the Go message", async () => {
  await withFixture(async (f) => {
    await assertFails(
      f,
      valid(f, `[log]\nformat = "logfmt"\n`),
      "log.format",
      'invalid log.format: unsupported log output format : "logfmt"',
    );
  });
});

// ---- Teleport -----------------------------------------------------------------------------------

Deno.test("loadConfig() uses teleport.auth_server when addr is empty, with the Go warning", async () => {
  await withFixture(async (f) => {
    const cfg = await f.load(
      valid(f).replace("[teleport]\n", `[teleport]\nauth_server = "auth.example.com:3025"\n`),
    );
    assert.equal(cfg.teleport.addr, "auth.example.com:3025");
    assert.ok(cfg.warnings.includes(
      "Configuration setting `auth_server` is deprecated, consider to change it to `addr`",
    ));
  });
});

Deno.test("loadConfig() prefers teleport.addr over auth_server", async () => {
  await withFixture(async (f) => {
    const cfg = await f.load(
      valid(f).replace(
        "[teleport]\n",
        `[teleport]\naddr = "proxy.example.com:443"\nauth_server = "auth:3025"\n`,
      ),
    );
    assert.equal(cfg.teleport.addr, "proxy.example.com:443");
    assert.ok(cfg.warnings.some((w) => w.includes("ignored because teleport.addr is set")));
  });
});

Deno.test("loadConfig() parses teleport.refresh_identity_interval as a Go duration", async () => {
  await withFixture(async (f) => {
    for (
      const [value, ms] of [["1h30m", 5_400_000], ["1.5h", 5_400_000], ["300ms", 300], [
        "0",
        60_000,
      ]] as const
    ) {
      const cfg = await f.load(
        valid(f).replace(
          "[teleport]\n",
          `[teleport]\nrefresh_identity = true\nrefresh_identity_interval = "${value}"\n`,
        ),
      );
      assert.equal(cfg.teleport.refreshIdentityIntervalMs, ms, value);
      assert.equal(cfg.teleport.refreshIdentity, true);
    }
  });
});

for (
  const [value, fragment] of [
    ["1d", 'invalid teleport.refresh_identity_interval: time: unknown unit "d" in duration "1d"'],
    ["60", 'time: missing unit in duration "60"'],
    ["soon", 'time: invalid duration "soon"'],
    ["-1m", 'invalid teleport.refresh_identity_interval "-1m": must not be negative'],
    ["10us", "must be at least 1ms"],
  ] as const
) {
  Deno.test(`loadConfig() rejects teleport.refresh_identity_interval = "${value}"`, async () => {
    await withFixture(async (f) => {
      await assertFails(
        f,
        valid(f).replace("[teleport]\n", `[teleport]\nrefresh_identity_interval = "${value}"\n`),
        "teleport.refresh_identity_interval",
        fragment,
      );
    });
  });
}

Deno.test("loadConfig() rejects a partial TLS key pair with the Go message", async () => {
  await withFixture(async (f) => {
    await assertFails(
      f,
      `[teleport]\nclient_key = "k"\n` + SMTP + SENDER + RTR,
      "teleport.client_crt",
      "configuration setting(s) `client_key` are provided but setting(s) `client_crt`, `root_cas` are missing",
    );
    await assertFails(
      f,
      `[teleport]\nclient_crt = "c"\nroot_cas = "r"\nidentity = "i"\n` + SMTP + SENDER + RTR,
      "teleport.client_key",
      "configuration setting(s) `client_crt`, `root_cas` are provided but setting(s) `client_key` are missing",
    );
  });
});

Deno.test("loadConfig() rejects identity together with a TLS key pair", async () => {
  await withFixture(async (f) => {
    await assertFails(
      f,
      valid(f).replace(
        "[teleport]\n",
        `[teleport]\nclient_key = "k"\nclient_crt = "c"\nroot_cas = "r"\n`,
      ),
      "teleport.identity",
      "configuration setting `identity` is mutually exclusive with all the `client_crt`, `client_key` and `root_cas` settings",
    );
  });
});

Deno.test("loadConfig() rejects refresh_identity without identity", async () => {
  await withFixture(async (f) => {
    await assertFails(
      f,
      `[teleport]\nrefresh_identity = true\n` + SMTP + SENDER + RTR,
      "teleport.refresh_identity",
      "`refresh_identity` requires that `identity` be set",
    );
  });
});

Deno.test("loadConfig() rejects a config without Teleport credentials", async () => {
  await withFixture(async (f) => {
    const err = await assertFails(
      f,
      SMTP + SENDER + RTR,
      "teleport.identity",
      "no credentials configured",
    );
    assert.match(err.hint ?? "", /teleport\.identity/);
  });
});

Deno.test("loadConfig() reports a missing identity file, saying so", async () => {
  await withFixture(async (f) => {
    const p = join(f.dir, "nope");
    const err = await assertFails(
      f,
      `[teleport]\nidentity = "${p}"\n` + SMTP + SENDER + RTR,
      "teleport.identity",
      `cannot read teleport.identity "${p}": file not found`,
    );
    assert.match(err.hint ?? "", /tctl auth sign/);
  });
});

Deno.test("loadConfig() accepts and checks a TLS key pair", async () => {
  await withFixture(async (f) => {
    const key = await f.write("auth.key", "k");
    const crt = await f.write("auth.crt", "c");
    const cas = join(f.dir, "auth.cas");
    const toml =
      `[teleport]\naddr = "a:3025"\nclient_key = "${key}"\nclient_crt = "${crt}"\nroot_cas = "${cas}"\n` +
      SMTP + SENDER + RTR;
    await assertFails(f, toml, "teleport.root_cas", `cannot read teleport.root_cas "${cas}"`);
    await f.write("auth.cas", "r");
    const cfg = await f.load(toml);
    assert.equal(cfg.teleport.clientKey, key);
    assert.equal(cfg.teleport.identity, "");
  });
});

// ---- Unknown keys, order ------------------------------------------------------------------------

Deno.test("loadConfig() warns about unknown keys and sections", async () => {
  await withFixture(async (f) => {
    const cfg = await f.load(
      `top = 1\n[slack]\ntoken = "x"\n` +
        valid(f).replace("[smtp]\n", `[smtp]\nhostname = "typo"\n`),
    );
    assert.deepEqual(cfg.warnings, [
      `unknown key "top" in ${f.configPath} (ignored)`,
      `unknown section [slack] in ${f.configPath} (ignored)`,
      `unknown key "smtp.hostname" in ${f.configPath} (ignored)`,
    ]);
  });
});

Deno.test("loadConfig() checks recipients before mailers and mailers before Teleport", async () => {
  await withFixture(async (f) => {
    await assertFails(f, "", "role_to_recipients", "missing required value role_to_recipients");
    await assertFails(f, RTR, "smtp", "provide either [mailgun] or [smtp]");
    await assertFails(f, RTR + SMTP, "delivery.sender", "missing required value delivery.sender");
    await assertFails(f, RTR + SMTP + SENDER, "teleport.identity", "no credentials configured");
  });
});

Deno.test("loadConfig() stops when the signal is aborted", async () => {
  await withFixture(async (f) => {
    await Deno.writeTextFile(f.configPath, valid(f));
    const ac = new AbortController();
    ac.abort(new Error("stop"));
    await assert.rejects(loadConfig(f.configPath, { signal: ac.signal }), { message: "stop" });
  });
});

// ---- The example printed by `configure` ---------------------------------------------------------

Deno.test("loadConfig() on the example fails only because the placeholder files are missing", async () => {
  await withFixture(async (f) => {
    await assertFails(
      f,
      EXAMPLE_CONFIG,
      "smtp.password_file",
      `Error reading password from ${EXAMPLE_PATHS.smtpPasswordFile}: file not found`,
    );
    const pw = await f.write("smtp_password", `${SECRET}\n`);
    await assertFails(
      f,
      EXAMPLE_CONFIG.replace(EXAMPLE_PATHS.smtpPasswordFile, pw),
      "teleport.identity",
      `cannot read teleport.identity "${EXAMPLE_PATHS.identity}": file not found`,
    );
  });
});

Deno.test("loadConfig() loads the example once its placeholder files exist", async () => {
  await withFixture(async (f) => {
    const pw = await f.write("smtp_password", `${SECRET}\n`);
    const id = join(f.dir, "identity");
    const cfg = await f.load(
      EXAMPLE_CONFIG.replace(EXAMPLE_PATHS.smtpPasswordFile, pw).replace(
        EXAMPLE_PATHS.identity,
        id,
      ),
    );
    assert.deepEqual(cfg.warnings, []);
    assert.deepEqual(cfg.teleport, {
      addr: "teleport.example.com:443",
      identity: id,
      refreshIdentity: true,
      refreshIdentityIntervalMs: 60_000,
      clientKey: "",
      clientCrt: "",
      rootCas: "",
    });
    assert.deepEqual(cfg.smtp, {
      host: "smtp.gmail.com",
      port: 587,
      username: "username@gmail.com",
      password: SECRET,
      passwordFile: pw,
      starttlsPolicy: "mandatory",
      caFile: "",
    });
    assert.equal(cfg.mailgun, undefined);
    assert.deepEqual(cfg.delivery, {
      sender: "Teleport <noreply@example.com>",
      notifyRequester: false,
    });
    assert.deepEqual({ ...cfg.roleToRecipients }, {
      "dev": ["dev-manager@example.com"],
      "*": ["root@example.com", "admin@example.com"],
    });
    assert.deepEqual(cfg.log, { output: "stderr", severity: "info", format: "text" });
  });
});

/** Keys the example leaves out: deprecated spellings, and `local_name` (not in it yet). */
const NOT_IN_EXAMPLE = ["teleport.auth_server", "delivery.recipients"];

Deno.test("EXAMPLE_CONFIG mentions every key, including the commented-out ones", () => {
  const keys = ["[role_to_recipients]"];
  for (const [section, names] of Object.entries(KNOWN_KEYS)) {
    keys.push(`[${section}]`, ...names.filter((n) => !NOT_IN_EXAMPLE.includes(`${section}.${n}`)));
  }
  for (const key of keys) {
    assert.match(
      EXAMPLE_CONFIG,
      new RegExp(`^#? ?${key.replace(/[[\]]/g, "\\$&")}(?!\\w)`, "m"),
      key,
    );
  }
});
