import assert from "node:assert/strict";
import { join } from "node:path";
import { ConfigError, TeleportEmailError } from "./errors.ts";
import { currentLogConfig, getLogger, reloadLogging, resetLogging, setupLogging } from "./log.ts";

const TEXT_LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO |WARN |ERROR) /;

async function capture(
  cfg: { severity?: "debug" | "info" | "warn" | "error"; format?: "text" | "json" },
  debug: boolean,
  fn: () => void,
): Promise<string[]> {
  const lines: string[] = [];
  await setupLogging(
    { output: "stderr", severity: cfg.severity ?? "info", format: cfg.format ?? "text" },
    { debug, sink: (l) => lines.push(l) },
  );
  try {
    fn();
  } finally {
    await resetLogging();
  }
  return lines;
}

Deno.test("setupLogging() writes text lines with level, message and key=value attributes", async () => {
  const lines = await capture({}, false, () => {
    getLogger().info("Starting Teleport Access Email Plugin", { version: "0.1.0", git_ref: "" });
    getLogger(["smtp"]).warn(
      "Failed to notify a suggested reviewer with an invalid email address",
      {
        reviewer: "Bob Smith",
      },
    );
    getLogger().error("Terminating with fatal error", {
      error: new TeleportEmailError("boom", { hint: "fix it" }),
      n: 3,
      ok: true,
      q: 'say "hi"',
    });
  });
  assert.equal(lines.length, 3);
  for (const l of lines) {
    assert.match(l, TEXT_LINE);
    assert.ok(l.endsWith("\n") && !l.slice(0, -1).includes("\n"));
  }
  assert.ok(
    lines[0].endsWith(" INFO  Starting Teleport Access Email Plugin version=0.1.0 git_ref=\n"),
    lines[0],
  );
  assert.ok(
    lines[1].includes(
      ' WARN  Failed to notify a suggested reviewer with an invalid email address reviewer="Bob Smith"\n',
    ),
  );
  assert.ok(
    lines[2].endsWith(
      ' ERROR Terminating with fatal error error="boom (hint: fix it)" n=3 ok=true q="say \\"hi\\""\n',
    ),
    lines[2],
  );
});

Deno.test("setupLogging() writes JSON lines", async () => {
  const lines = await capture({ format: "json" }, false, () => {
    getLogger().info("Successfully sent", { email: "a@b.c", message_id: "<1@x>", msg: "clash" });
  });
  assert.equal(lines.length, 1);
  const obj = JSON.parse(lines[0]);
  assert.match(obj.time, /^\d{4}-\d\d-\d\dT/);
  assert.deepEqual({ ...obj, time: "" }, {
    time: "",
    level: "INFO",
    msg: "Successfully sent",
    email: "a@b.c",
    message_id: "<1@x>",
    attr_msg: "clash",
  });
});

Deno.test("setupLogging() honours the severity", async () => {
  const lines = await capture({ severity: "warn" }, false, () => {
    getLogger().debug("d");
    getLogger().info("i");
    getLogger().warn("w");
    getLogger().error("e");
  });
  assert.deepEqual(lines.map((l) => l.slice(25, -1)), ["WARN  w", "ERROR e"]);
});

Deno.test("setupLogging() with debug forces the debug level and says so", async () => {
  const lines = await capture({ severity: "error" }, true, () => {
    getLogger(["watcher"]).debug("Watcher connected");
  });
  assert.deepEqual(lines.map((l) => l.slice(25, -1)), [
    "DEBUG DEBUG logging enabled",
    "DEBUG Watcher connected",
  ]);
});

Deno.test("setupLogging() keeps a message on one line", async () => {
  const lines = await capture({}, false, () => {
    getLogger().info("line one\nline two", { v: "a\nb" });
  });
  assert.equal(lines.length, 1);
  assert.ok(lines[0].endsWith(' INFO  line one\\nline two v="a\\nb"\n'), lines[0]);
});

Deno.test("setupLogging() appends to a file, creating it if missing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "email.log");
    await setupLogging({ output: path, severity: "info", format: "text" });
    getLogger().info("first");
    await resetLogging();
    await setupLogging({ output: path, severity: "info", format: "text" });
    getLogger().info("second");
    await resetLogging();
    const lines = (await Deno.readTextFile(path)).split("\n");
    assert.equal(lines.length, 3);
    assert.ok(lines[0].endsWith(" INFO  first"));
    assert.ok(lines[1].endsWith(" INFO  second"));
    assert.equal(lines[2], "");
    assert.equal((await Deno.stat(path)).mode! & 0o777 & ~0o022, 0o644 & ~0o022);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("setupLogging() reopens the log file after it was rotated away", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "email.log");
    await setupLogging({ output: path, severity: "info", format: "text" });
    getLogger().info("before rotation");
    await Deno.rename(path, `${path}.1`);
    getLogger().info("after rotation");
    await Deno.remove(path);
    getLogger().info("after deletion");
    await resetLogging();
    const old = await Deno.readTextFile(`${path}.1`);
    const current = await Deno.readTextFile(path);
    assert.match(old, / INFO {2}before rotation\n$/);
    assert.match(current, /^\S+ INFO {2}after deletion\n$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("setupLogging() reports a log file that cannot be opened", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "missing-dir", "email.log");
    await assert.rejects(
      setupLogging({ output: path, severity: "info", format: "text" }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.equal(err.key, "log.output");
        assert.equal(err.message, `cannot open log.output "${path}": directory not found`);
        return true;
      },
    );
  } finally {
    await resetLogging();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("getLogger() drops records made before setupLogging() (neither printed nor replayed)", async () => {
  await resetLogging();
  getLogger().error("dropped");
  const lines: string[] = [];
  await setupLogging(
    { output: "stderr", severity: "debug", format: "text" },
    { sink: (l) => lines.push(l) },
  );
  try {
    getLogger().info("kept");
  } finally {
    await resetLogging();
  }
  assert.equal(lines.length, 1);
  assert.match(lines[0], / INFO {2}kept\n$/);
});

Deno.test("reloadLogging() switches severity and format at once and keeps --debug", async () => {
  const lines: string[] = [];
  await setupLogging(
    { output: "stderr", severity: "info", format: "text" },
    { sink: (l) => lines.push(l) },
  );
  try {
    getLogger().debug("hidden");
    getLogger().info("as text");
    reloadLogging({ output: "stderr", severity: "debug", format: "json" });
    getLogger().debug("as json");
    assert.deepEqual(currentLogConfig(), { output: "stderr", severity: "debug", format: "json" });
  } finally {
    await resetLogging();
  }
  assert.equal(lines.length, 2);
  assert.match(lines[0], / INFO {2}as text\n$/);
  assert.equal(JSON.parse(lines[1]).msg, "as json");

  const forced: string[] = [];
  await setupLogging(
    { output: "stderr", severity: "info", format: "text" },
    { debug: true, sink: (l) => forced.push(l) },
  );
  try {
    reloadLogging({ output: "stderr", severity: "error", format: "text" });
    getLogger().debug("still debug");
  } finally {
    await resetLogging();
  }
  assert.match(forced.at(-1)!, / DEBUG still debug\n$/);
});

Deno.test("reloadLogging() reopens the log file: after a rename, new lines go to a new file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "email.log");
    const cfg = { output: path, severity: "info", format: "text" } as const;
    await setupLogging(cfg);
    getLogger().info("before rotation");
    await Deno.rename(path, `${path}.1`);
    reloadLogging(cfg);
    // The new file exists as soon as the reload returns (logrotate's "create" is not needed).
    assert.equal((await Deno.stat(path)).isFile, true);
    getLogger().info("after reload");
    await resetLogging();
    assert.match(await Deno.readTextFile(`${path}.1`), /^\S+ INFO {2}before rotation\n$/);
    assert.match(await Deno.readTextFile(path), /^\S+ INFO {2}after reload\n$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reloadLogging() keeps the previous output when the new one cannot be opened", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "email.log");
    const bad = join(dir, "missing-dir", "email.log");
    await setupLogging({ output: path, severity: "info", format: "text" });
    assert.throws(
      () => reloadLogging({ output: bad, severity: "debug", format: "json" }),
      (err: unknown) => err instanceof ConfigError && err.key === "log.output",
    );
    getLogger().info("still here");
    await resetLogging();
    assert.match(await Deno.readTextFile(path), /^\S+ INFO {2}still here\n$/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
