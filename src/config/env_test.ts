import assert from "node:assert/strict";
import { ConfigError } from "../errors.ts";
import {
  DIAL_ENV_NAMES,
  HOSTNAME_ENV,
  parseFailFast,
  parseWatermarkMargin,
  readEnvSettings,
  WATERMARK_MARGIN_ENV,
} from "./env.ts";

Deno.test("parseFailFast() accepts Go's ParseBool values and rejects others", () => {
  for (const v of ["1", "t", "T", "TRUE", "true", "True"]) assert.equal(parseFailFast(v), true);
  for (const v of ["0", "f", "F", "FALSE", "false", "False", "", undefined]) {
    assert.equal(parseFailFast(v), false);
  }
  assert.throws(
    () => parseFailFast("yes"),
    (err) =>
      err instanceof ConfigError &&
      err.message ===
        "failed to parse content 'yes' of the TELEPORT_PLUGIN_FAIL_FAST environment variable",
  );
});

Deno.test("parseWatermarkMargin() leaves the default when unset, accepts milliseconds and rejects anything else", () => {
  assert.equal(parseWatermarkMargin(undefined), undefined);
  assert.equal(parseWatermarkMargin(""), undefined);
  assert.equal(parseWatermarkMargin("0"), 0);
  assert.equal(parseWatermarkMargin("30000"), 30_000);
  for (const bad of ["-1", "2m", "1.5", " 5"]) {
    assert.throws(
      () => parseWatermarkMargin(bad),
      (err) =>
        err instanceof ConfigError && err.key === WATERMARK_MARGIN_ENV &&
        err.message.includes(`"${bad}"`),
      bad,
    );
  }
});

Deno.test("readEnvSettings() reads both variables and names the bad one", () => {
  const env = (vars: Record<string, string>) => (name: string) => vars[name];
  const { failFast, watermarkMarginMs } = readEnvSettings(env({}));
  assert.deepEqual({ failFast, watermarkMarginMs }, {
    failFast: false,
    watermarkMarginMs: undefined,
  });
  const set = readEnvSettings(
    env({ TELEPORT_PLUGIN_FAIL_FAST: "true", [WATERMARK_MARGIN_ENV]: "0" }),
  );
  assert.deepEqual(
    { failFast: set.failFast, watermarkMarginMs: set.watermarkMarginMs },
    { failFast: true, watermarkMarginMs: 0 },
  );
  assert.throws(
    () => readEnvSettings(env({ TELEPORT_PLUGIN_FAIL_FAST: "maybe" })),
    (err) => err instanceof ConfigError && err.key === "TELEPORT_PLUGIN_FAIL_FAST",
  );
});

Deno.test("readEnvSettings() snapshots the Teleport dialers' variables, and only those", () => {
  const vars: Record<string, string> = {
    HTTPS_PROXY: "http://proxy:3128",
    no_proxy: "internal.example",
    TELEPORT_TLS_ROUTING_CONN_UPGRADE: "0;teleport.example.com:443=1",
    TELEPORT_TUNNEL_PUBLIC_ADDR: "tunnel.example.com:3024",
    SSL_CERT_FILE: "/etc/ssl/proxy-ca.pem",
    HOME: "/root",
  };
  const { dial } = readEnvSettings((name) => vars[name]);
  assert.deepEqual(Object.keys(dial ?? {}).sort(), [...DIAL_ENV_NAMES].sort());
  for (const [name, value] of Object.entries(vars)) {
    assert.equal(dial?.[name], name === "HOME" ? undefined : value, name);
  }
  // A variable the process may not read counts as unset.
  const denied = readEnvSettings((name) => {
    if (name === "HTTPS_PROXY") throw new Deno.errors.NotCapable("no --allow-env");
    return undefined;
  });
  assert.equal(denied.dial?.HTTPS_PROXY, undefined);
});

Deno.test("readEnvSettings() reads the lease host name and the liveness socket's directory", () => {
  const vars: Record<string, string> = {
    [HOSTNAME_ENV]: "replica-a",
    RUNTIME_DIRECTORY: "/run/teleport-email:/run/other",
    TMPDIR: "/var/tmp",
  };
  const set = readEnvSettings((n) => vars[n]);
  assert.equal(set.hostName, "replica-a");
  assert.equal(set.probeDir, "/run/teleport-email");
  assert.equal(
    readEnvSettings((n) => (n === "TMPDIR" ? "/var/tmp" : undefined)).probeDir,
    "/var/tmp",
  );
  const unset = readEnvSettings((n) => (n === HOSTNAME_ENV ? "" : undefined));
  assert.equal(unset.hostName, undefined, "empty: the system's host name");
  assert.equal(unset.probeDir, undefined, "unset: /tmp");
});
