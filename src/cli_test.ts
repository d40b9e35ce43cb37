/**
 * In-process tests of `start`'s lifecycle around `runApp` (signals, graceful shutdown, fatal error
 * logging), with a stand-in `runApp` and real signals sent to this process. The black-box tests of
 * the command line are in `tests/cli_test.ts`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { type CliDeps, type CliIo, runCli } from "./cli.ts";
import { AggregateFailure, TeleportEmailError } from "./errors.ts";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  log: string[];
}

async function start(over: Omit<CliDeps, "modules">): Promise<Run> {
  const deps: CliDeps = { modules: () => import("./start_modules.ts"), ...over };
  const dir = await Deno.makeTempDir({ prefix: "teleport-email-cli-unit-" });
  try {
    const identity = join(dir, "identity");
    const logFile = join(dir, "email.log");
    await Deno.writeTextFile(identity, "x");
    const config = join(dir, "config.toml");
    await Deno.writeTextFile(
      config,
      `[teleport]\nidentity = "${identity}"\n[smtp]\nhost = "h"\nusername = "u"\npassword = "p"\n` +
        `[delivery]\nsender = "a@b.c"\n[role_to_recipients]\n"*" = "x@y.z"\n` +
        `[log]\noutput = "${logFile}"\n`,
    );
    let stdout = "";
    let stderr = "";
    const io: CliIo = { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) };
    const code = await runCli(["start", "-c", config], io, deps);
    const log = (await Deno.readTextFile(logFile)).split("\n").filter((l) => l !== "")
      .map((l) => l.slice(25));
    return { code, stdout, stderr, log };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Resolves when `signal` aborts. The interval stands for the real app's sockets: Deno's signal
 * listeners alone do not keep the event loop alive.
 */
async function waitForAbort(signal: AbortSignal): Promise<void> {
  const keepAlive = setInterval(() => {}, 1000);
  try {
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      signal.addEventListener("abort", () => resolve(), { once: true });
    });
  } finally {
    clearInterval(keepAlive);
  }
}

// SIGINT cannot be tested in-process: `deno test` itself stops on SIGINT. It shares the code path
// of SIGTERM, except that a second SIGINT forces the exit like the timeout below.

Deno.test("runCli() start: SIGTERM aborts runApp's signal and a clean return exits 0", async () => {
  const r = await start({
    runApp: async (_config, { signal, debug }) => {
      assert.equal(debug, false);
      Deno.kill(Deno.pid, "SIGTERM");
      await waitForAbort(signal);
    },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "");
  assert.deepEqual(r.log, [
    "INFO  Starting Teleport Access Email Plugin version=0.1.0 git_ref=",
    "INFO  Attempting graceful shutdown signal=SIGTERM",
    "INFO  Successfully shut down",
  ]);
});

Deno.test("runCli() start: an abort error from runApp after SIGTERM is a graceful shutdown", async () => {
  const r = await start({
    runApp: async (_config, { signal }) => {
      Deno.kill(Deno.pid, "SIGTERM");
      await waitForAbort(signal);
      signal.throwIfAborted();
    },
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.log.at(-1), "INFO  Successfully shut down");
});

Deno.test("runCli() start: a shutdown that outlasts the limit gives up and exits 1", async () => {
  let release = () => {};
  const stuck = new Promise<void>((resolve) => (release = resolve));
  const r = await start({
    shutdownTimeoutMs: 50,
    runApp: async (_config, { signal }) => {
      Deno.kill(Deno.pid, "SIGTERM");
      await waitForAbort(signal);
      // Never finishes on its own: stands for a handler that ignores the abort.
      await stuck;
    },
  });
  release();
  assert.equal(r.code, 1);
  assert.equal(r.stderr, "ERROR: Graceful shutdown failed, attempting fast shutdown\n");
  assert.equal(r.log.at(-1), "ERROR Graceful shutdown failed, attempting fast shutdown");
});

Deno.test("runCli() start: a fatal error is logged and printed once on stderr", async () => {
  const r = await start({
    runApp: () => Promise.reject(new TeleportEmailError("Cannot connect", { hint: "check addr" })),
  });
  assert.equal(r.code, 1);
  assert.equal(r.stderr, "ERROR: Cannot connect (hint: check addr)\n");
  assert.equal(
    r.log.at(-1),
    'ERROR Terminating with fatal error error="Cannot connect (hint: check addr)"',
  );
});

Deno.test("runCli() start: an aggregate failure is logged one error per line with error_number", async () => {
  const r = await start({
    runApp: () =>
      Promise.reject(new AggregateFailure("Two failed", [new Error("one"), new Error("two")])),
  });
  assert.equal(r.code, 1);
  assert.equal(r.stderr, "ERROR: Two failed: one; two\n");
  assert.deepEqual(r.log.slice(-2), [
    "ERROR Terminating with fatal error error=one error_number=1",
    "ERROR Terminating with fatal error error=two error_number=2",
  ]);
});

Deno.test("runCli() start: an unhandled rejection shuts down gracefully and exits 1 with one line", async () => {
  let drained = false;
  const r = await start({
    runApp: async (_config, { signal }) => {
      // A bug: a promise that rejects with nobody listening.
      void Promise.reject(new Error("connection closed during the TLS handshake"));
      await waitForAbort(signal);
      drained = true;
    },
  });
  assert.equal(r.code, 1);
  assert.ok(drained, "runApp's signal was aborted and it could finish");
  assert.match(
    r.stderr,
    /^ERROR: Unexpected internal error: connection closed during the TLS handshake \(hint: this is a bug/,
  );
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  assert.ok(
    r.log.some((l) => l.startsWith("ERROR Unexpected internal error, shutting down")),
    r.log.join("\n"),
  );
});
