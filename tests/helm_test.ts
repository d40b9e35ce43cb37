/**
 * Tests of the Helm chart `deploy/helm/teleport-plugin-email`, rendered with
 * `scripts/render_helm.ts` (no helm binary here): the rendered teleport-email.toml is loaded by
 * the real `loadConfig()` after its /var/lib/teleport/plugins/email/ paths are moved into a
 * temporary directory holding the mounted files; the Deployment and Secret are checked.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../src/config/load.ts";
import type { Config } from "../src/config/types.ts";
import { ConfigError } from "../src/errors.ts";
import { parseDiagAddr } from "../src/diag/server.ts";
import { REPO_ROOT } from "../scripts/release.ts";
import {
  mergeValues,
  parseYaml,
  parseYamlDocuments,
  renderChart,
  RenderError,
  toYaml,
} from "../scripts/render_helm.ts";

const CHART = `${REPO_ROOT}/deploy/helm/teleport-plugin-email`;
const MOUNT = "/var/lib/teleport/plugins/email/";

type Doc = Record<string, unknown>;

/** Renders the chart with values given as YAML text; returns the manifests by kind. */
async function render(valuesYaml: string, releaseName = "rel"): Promise<Map<string, Doc>> {
  const values = (parseYaml(valuesYaml) ?? {}) as Record<string, unknown>;
  const files = await renderChart(CHART, { values: [values], releaseName });
  const docs = new Map<string, Doc>();
  for (const f of files) {
    for (const doc of parseYamlDocuments(f.text)) docs.set(String((doc as Doc).kind), doc as Doc);
  }
  return docs;
}

function tomlOf(docs: Map<string, Doc>): string {
  const cm = docs.get("ConfigMap") as { data: Record<string, string> };
  return cm.data["teleport-email.toml"];
}

/**
 * Loads the rendered TOML with `loadConfig()`, the Kubernetes mounts replaced by files in a
 * temporary directory (identity file, mailer secret).
 */
async function loadRendered(toml: string): Promise<{ config: Config; dir: string }> {
  const dir = await Deno.makeTempDir({ prefix: "helm-test-" });
  try {
    const moved = toml.replaceAll(MOUNT, `${dir}/`);
    const identity = /^identity = "([^"]+)"$/m.exec(moved)?.[1];
    if (identity) {
      await Deno.mkdir(identity.slice(0, identity.lastIndexOf("/")), { recursive: true });
      await Deno.writeTextFile(identity, "identity file placeholder\n");
    }
    await Deno.writeTextFile(`${dir}/smtp_password`, "smtp-secret\n");
    await Deno.writeTextFile(`${dir}/mailgun_private_key`, "key-123\n");
    await Deno.writeTextFile(`${dir}/teleport-email.toml`, moved);
    return { config: await loadConfig(`${dir}/teleport-email.toml`), dir };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const SMTP_VALUES = `
teleport:
  address: teleport.example.com:443
  identitySecretName: email-identity
smtp:
  enabled: true
  host: smtp.example.com
  port: 465
  username: "mailer@example.com"
  password: "s3cret"
  starttlsPolicy: opportunistic
delivery:
  sender: 'Teleport "Access" <noreply@example.com>'
roleToRecipients:
  "*": "admin@example.com"
  dev:
    - dev-manager@example.com
    - "devops@example.com"
  empty: []
log:
  severity: DEBUG
  output: stderr
`;

Deno.test("chart: SMTP values render a config loadConfig() accepts, string and list recipients kept", async () => {
  const docs = await render(SMTP_VALUES);
  const { config, dir } = await loadRendered(tomlOf(docs));
  assert.equal(config.teleport.addr, "teleport.example.com:443");
  assert.equal(config.teleport.identity, `${dir}/teleport-identity/auth_id`);
  assert.equal(config.teleport.refreshIdentity, true);
  assert.equal(config.mailgun, undefined);
  assert.equal(config.smtp?.host, "smtp.example.com");
  assert.equal(config.smtp?.port, 465);
  assert.equal(config.smtp?.username, "mailer@example.com");
  assert.equal(config.smtp?.password, "smtp-secret");
  assert.equal(config.smtp?.passwordFile, `${dir}/smtp_password`);
  assert.equal(config.smtp?.starttlsPolicy, "opportunistic");
  assert.equal(config.delivery.sender, 'Teleport "Access" <noreply@example.com>');
  assert.deepEqual({ ...config.roleToRecipients }, {
    "*": ["admin@example.com"],
    dev: ["dev-manager@example.com", "devops@example.com"],
    empty: [],
  });
  assert.equal(config.log.severity, "debug");
  assert.equal(config.log.output, "stderr");
});

Deno.test("chart: Mailgun values (key from an existing Secret) render a config loadConfig() accepts", async () => {
  const docs = await render(`
teleport:
  address: auth.example.svc:3025
  identitySecretName: id
  identitySecretPath: my_identity
mailgun:
  enabled: true
  domain: mg.example.com
  privateKeyFromSecret: mailgun-key
  privateKeySecretPath: key
delivery:
  sender: noreply@example.com
roleToRecipients:
  "*": ["a@example.com", "b@example.com"]
`);
  const { config, dir } = await loadRendered(tomlOf(docs));
  assert.equal(config.teleport.identity, `${dir}/teleport-identity/my_identity`);
  assert.equal(config.smtp, undefined);
  assert.equal(config.mailgun?.domain, "mg.example.com");
  assert.equal(config.mailgun?.privateKey, "key-123");
  assert.deepEqual({ ...config.roleToRecipients }, { "*": ["a@example.com", "b@example.com"] });
  assert.equal(config.log.output, "stdout");
  // The key comes from the existing Secret: the chart creates none and mounts that one.
  assert.equal(docs.has("Secret"), false);
  const pod = podSpec(docs);
  const volume = (pod.volumes as Doc[]).find((v) => v.name === "password-file") as { secret: Doc };
  assert.equal(volume.secret.secretName, "mailgun-key");
  const mount = container(docs).volumeMounts.find((m) => m.name === "password-file");
  assert.deepEqual(mount, {
    name: "password-file",
    mountPath: "/var/lib/teleport/plugins/email/mailgun_private_key",
    subPath: "key",
  });
});

Deno.test("chart: deprecated delivery.recipients becomes role_to_recipients[*] in the loaded config", async () => {
  const docs = await render(`
teleport:
  address: teleport.example.com:443
  identitySecretName: id
smtp:
  enabled: true
  host: smtp.example.com
  username: u
  password: p
delivery:
  sender: noreply@example.com
  recipients: ["ops@example.com", "sec@example.com"]
`);
  assert.match(tomlOf(docs), /^recipients = \["ops@example\.com","sec@example\.com"\]$/m);
  assert.doesNotMatch(tomlOf(docs), /role_to_recipients/);
  const { config } = await loadRendered(tomlOf(docs));
  assert.deepEqual({ ...config.roleToRecipients }, { "*": ["ops@example.com", "sec@example.com"] });
  assert.equal(config.smtp?.port, 587);
});

Deno.test("chart: with tbot and no teleport.address, the proxy (then auth) address and tbot's Secret are used", async () => {
  const proxy = await render(
    `
tbot:
  enabled: true
  clusterName: example.com
  teleportProxyAddress: proxy.example.com:443
  teleportAuthAddress: auth.example.com:3025
smtp: { enabled: true, host: smtp.example.com, username: u, password: p }
delivery: { sender: noreply@example.com }
roleToRecipients: { "*": admin@example.com }
`,
    "prod",
  );
  const { config, dir } = await loadRendered(tomlOf(proxy));
  assert.equal(config.teleport.addr, "proxy.example.com:443");
  assert.equal(config.teleport.identity, `${dir}/teleport-identity/identity`);
  const identity = (podSpec(proxy).volumes as Doc[]).find((v) =>
    v.name === "teleport-identity"
  ) as { secret: Doc };
  assert.equal(identity.secret.secretName, "prod-tbot-out");

  const auth = await render(`
tbot: { enabled: true, teleportAuthAddress: auth.example.com:3025 }
smtp: { enabled: true, host: smtp.example.com, username: u, password: p }
delivery: { sender: noreply@example.com }
roleToRecipients: { "*": admin@example.com }
`);
  assert.equal((await loadRendered(tomlOf(auth))).config.teleport.addr, "auth.example.com:3025");
});

Deno.test("chart: without a mailer the plugin refuses the config like upstream (provide either [mailgun] or [smtp])", async () => {
  const docs = await render(`
teleport: { address: t.example.com:443, identitySecretName: id }
delivery: { sender: noreply@example.com }
roleToRecipients: { "*": admin@example.com }
`);
  await assert.rejects(
    loadRendered(tomlOf(docs)),
    (err: unknown) =>
      err instanceof ConfigError &&
      err.message.includes("provide either [mailgun] or [smtp] sections"),
  );
  // No mailer secret volume either.
  assert.equal((podSpec(docs).volumes as Doc[]).some((v) => v.name === "password-file"), false);
});

Deno.test("chart: values that would break TOML quoting are escaped (toJson)", async () => {
  const docs = await render(`
teleport: { address: 't.example.com:443"\\n[evil]', identitySecretName: id }
smtp: { enabled: true, host: 'smtp"host', username: 'back\\slash', password: p }
delivery: { sender: noreply@example.com }
roleToRecipients: { "*": admin@example.com, 'we"ird': admin@example.com }
`);
  const { config } = await loadRendered(tomlOf(docs));
  assert.equal(config.teleport.addr, 't.example.com:443"\\n[evil]');
  assert.equal(config.smtp?.host, 'smtp"host');
  assert.equal(config.smtp?.username, "back\\slash");
  assert.deepEqual(Object.keys(config.roleToRecipients).sort(), ["*", 'we"ird']);
});

function podSpec(docs: Map<string, Doc>): Doc {
  return ((docs.get("Deployment") as { spec: { template: { spec: Doc } } }).spec.template.spec);
}

function container(docs: Map<string, Doc>): { volumeMounts: Doc[] } & Doc {
  return (podSpec(docs).containers as Array<{ volumeMounts: Doc[] } & Doc>)[0];
}

Deno.test("chart: the Deployment runs teleport-plugin start with FAIL_FAST, mounts, 0600 secrets, no probes", async () => {
  const docs = await render(SMTP_VALUES);
  const deployment = docs.get("Deployment") as { spec: Doc; metadata: Doc };
  assert.equal(deployment.spec.replicas, 1);
  assert.equal((deployment.metadata as Doc).name, "rel-teleport-plugin-email");
  const c = container(docs);
  assert.deepEqual(c.command, [
    "/usr/local/bin/teleport-plugin",
    "start",
    "--config",
    "/etc/teleport-email.toml",
  ]);
  assert.deepEqual(c.env, [{ name: "TELEPORT_PLUGIN_FAIL_FAST", value: "true" }]);
  assert.equal(c.image, "teleport-plugin-email:0.1.0");
  for (const key of ["livenessProbe", "readinessProbe", "startupProbe", "ports"]) {
    assert.equal(key in c, false, key);
  }
  assert.deepEqual(c.volumeMounts, [
    { name: "config", mountPath: "/etc/teleport-email.toml", subPath: "teleport-email.toml" },
    { name: "teleport-identity", mountPath: "/var/lib/teleport/plugins/email/teleport-identity" },
    {
      name: "password-file",
      mountPath: "/var/lib/teleport/plugins/email/smtp_password",
      subPath: "smtpPassword",
    },
  ]);
  const pod = podSpec(docs);
  assert.deepEqual(pod.volumes, [
    { name: "config", configMap: { name: "rel-teleport-plugin-email", defaultMode: 0o600 } },
    { name: "teleport-identity", secret: { secretName: "email-identity", defaultMode: 0o600 } },
    {
      name: "password-file",
      secret: { secretName: "rel-teleport-plugin-email-secret", defaultMode: 0o600 },
    },
  ]);
  // The image runs as 65532: fsGroup makes the 0600 secrets readable unless the user sets one.
  assert.deepEqual(pod.securityContext, { fsGroup: 65532 });
  const own = podSpec(
    await render(SMTP_VALUES + "podSecurityContext: { fsGroup: 1000, runAsUser: 1000 }\n"),
  );
  assert.deepEqual(own.securityContext, { fsGroup: 1000, runAsUser: 1000 });
  const secret = docs.get("Secret") as { data: Record<string, string>; metadata: Doc };
  assert.equal(secret.metadata.name, "rel-teleport-plugin-email-secret");
  assert.deepEqual(secret.data, { smtpPassword: btoa("s3cret") });
});

Deno.test("chart: the pod template's checksum changes with the configuration", async () => {
  const checksum = async (values: string) =>
    ((
      docs,
    ) => ((docs.get("Deployment") as { spec: { template: { metadata: { annotations: Doc } } } })
      .spec.template.metadata
      .annotations["checksum/config"]))(await render(values));
  const a = await checksum(SMTP_VALUES);
  assert.match(String(a), /^[0-9a-f]{64}$/);
  assert.equal(await checksum(SMTP_VALUES), a);
  assert.notEqual(await checksum(SMTP_VALUES.replace("severity: DEBUG", "severity: INFO")), a);
});

Deno.test("chart: Chart.yaml follows deno.json's version and values.yaml has every upstream key", async () => {
  const chart = parseYaml(await Deno.readTextFile(`${CHART}/Chart.yaml`)) as Doc;
  const denoJson = JSON.parse(await Deno.readTextFile(`${REPO_ROOT}/deno.json`)) as {
    version: string;
  };
  assert.equal(chart.name, "teleport-plugin-email");
  assert.equal(chart.version, denoJson.version);
  assert.equal(chart.appVersion, denoJson.version);
  const values = parseYaml(await Deno.readTextFile(`${CHART}/values.yaml`)) as Doc;
  const keys = [
    "teleport.address",
    "teleport.identitySecretName",
    "teleport.identitySecretPath",
    "mailgun.enabled",
    "mailgun.domain",
    "mailgun.privateKey",
    "mailgun.privateKeyFromSecret",
    "mailgun.privateKeySecretPath",
    "smtp.enabled",
    "smtp.host",
    "smtp.port",
    "smtp.username",
    "smtp.password",
    "smtp.passwordFromSecret",
    "smtp.passwordSecretPath",
    "smtp.starttlsPolicy",
    "delivery.sender",
    "delivery.recipients",
    "roleToRecipients",
    "log.severity",
    "log.output",
    "tbot.enabled",
    "tbot.clusterName",
    "tbot.teleportProxyAddress",
    "tbot.teleportAuthAddress",
    "tbot.joinMethod",
    "tbot.token",
    "tbot.nameOverride",
    "tbot.defaultOutput.enabled",
    "secretVolumeName",
    "annotations.config",
    "annotations.deployment",
    "annotations.pod",
    "annotations.secret",
    "image.repository",
    "image.pullPolicy",
    "image.tag",
    "imagePullSecrets",
    "nameOverride",
    "fullnameOverride",
    "podAnnotations",
    "podSecurityContext",
    "securityContext",
    "resources",
    "nodeSelector",
    "tolerations",
    "affinity",
  ];
  for (const key of keys) {
    let v: unknown = values;
    for (const part of key.split(".")) {
      assert.ok(v && typeof v === "object" && part in v, `values.yaml lacks ${key}`);
      v = (v as Doc)[part];
    }
  }
  assert.equal((values.smtp as Doc).port, 587);
  assert.equal((values.log as Doc).output, "stdout");
  assert.equal((values.teleport as Doc).identitySecretPath, "auth_id");
});

const GUIDE_BASE = `
teleport:
  address: teleport.example.com:443
  identitySecretName: teleport-plugin-email-identity
delivery:
  sender: teleport@example.com
roleToRecipients:
  "*": admin@example.com
`;

Deno.test("chart: the Teleport guide's values without enabled: true render a working mailer", async () => {
  // Mailgun: domain and a key from an existing Secret, no mailgun.enabled.
  const mg = await render(
    GUIDE_BASE + `
mailgun:
  domain: mg.example.com
  privateKeyFromSecret: mailgun-private-key
`,
  );
  const mgConfig = (await loadRendered(tomlOf(mg))).config;
  assert.equal(mgConfig.mailgun?.domain, "mg.example.com");
  assert.equal(mgConfig.smtp, undefined);
  assert.equal(mg.has("Secret"), false, "the key's Secret exists already");
  const mgVolume = (podSpec(mg).volumes as Doc[]).find((v) => v.name === "password-file");
  assert.deepEqual(mgVolume, {
    name: "password-file",
    secret: { secretName: "mailgun-private-key", defaultMode: 0o600 },
  });

  // SMTP: host (and a password), no smtp.enabled.
  const smtp = await render(
    GUIDE_BASE + `
smtp:
  host: smtp.example.com
  username: mailer
  password: s3cret
`,
  );
  const smtpConfig = (await loadRendered(tomlOf(smtp))).config;
  assert.equal(smtpConfig.smtp?.host, "smtp.example.com");
  assert.equal(smtpConfig.mailgun, undefined);
  assert.deepEqual((smtp.get("Secret") as { data: Doc }).data, { smtpPassword: btoa("s3cret") });
  assert.ok(container(smtp).volumeMounts.some((m) => m.name === "password-file"));
});

Deno.test("chart: enabled: false turns a mailer off, and an enabled mailer wins over an implicit one", async () => {
  const off = await render(GUIDE_BASE + "smtp: { enabled: false, host: smtp.example.com }\n");
  await assert.rejects(
    loadRendered(tomlOf(off)),
    (err: unknown) => err instanceof ConfigError && err.message.includes("provide either"),
  );
  assert.equal((podSpec(off).volumes as Doc[]).some((v) => v.name === "password-file"), false);

  const explicit = await render(
    GUIDE_BASE + `
mailgun: { domain: mg.example.com, privateKey: k }
smtp: { enabled: true, host: smtp.example.com, username: u, password: p }
`,
  );
  const { config } = await loadRendered(tomlOf(explicit));
  assert.equal(config.smtp?.host, "smtp.example.com");
  assert.equal(config.mailgun, undefined);
  assert.deepEqual((explicit.get("Secret") as { data: Doc }).data, { smtpPassword: btoa("p") });

  // Both implicit: Mailgun, as when both are enabled.
  const both = await render(
    GUIDE_BASE + `
mailgun: { domain: mg.example.com, privateKey: k }
smtp: { host: smtp.example.com, username: u, password: p }
`,
  );
  assert.equal((await loadRendered(tomlOf(both))).config.mailgun?.domain, "mg.example.com");
});

Deno.test("chart: replicaCount is honoured (default 1)", async () => {
  const replicas = async (extra: string) =>
    ((await render(SMTP_VALUES + extra)).get("Deployment") as { spec: Doc }).spec.replicas;
  assert.equal(await replicas(""), 1);
  assert.equal(await replicas("replicaCount: 3\n"), 3);
  assert.equal(await replicas("replicaCount: 0\n"), 0);
  const template = await Deno.readTextFile(`${CHART}/templates/deployment.yaml`);
  assert.doesNotMatch(template, /race/, "no comment saying replicas would race");
});

Deno.test("chart: diagnostics off by default; on: --diag-addr, the diag port and probes on /healthz and /readyz", async () => {
  const off = await render(SMTP_VALUES);
  for (const kind of ["Service", "ServiceMonitor"]) assert.equal(off.has(kind), false, kind);
  assert.equal((container(off).command as string[]).some((a) => a.startsWith("--diag")), false);

  const on = await render(SMTP_VALUES + "diagnostics: { enabled: true }\n");
  const c = container(on);
  const flag = (c.command as string[]).find((a) => a.startsWith("--diag-addr="))!;
  assert.deepEqual(parseDiagAddr(flag.slice("--diag-addr=".length)), {
    hostname: "0.0.0.0",
    port: 3000,
  });
  assert.deepEqual(c.ports, [{ name: "diag", containerPort: 3000, protocol: "TCP" }]);
  assert.deepEqual(c.livenessProbe, {
    httpGet: { path: "/healthz", port: "diag" },
    periodSeconds: 10,
    timeoutSeconds: 5,
    failureThreshold: 6,
  });
  assert.deepEqual(c.readinessProbe, {
    httpGet: { path: "/readyz", port: "diag" },
    periodSeconds: 10,
    timeoutSeconds: 5,
    failureThreshold: 3,
  });
  assert.equal(on.has("ServiceMonitor"), false, "the ServiceMonitor is optional");

  const v6 = await render(
    SMTP_VALUES + 'diagnostics: { enabled: true, port: 9102, bindAddress: "::" }\n',
  );
  const v6Flag = (container(v6).command as string[]).find((a) => a.startsWith("--diag-addr="))!;
  assert.equal(v6Flag, "--diag-addr=[::]:9102");
  assert.deepEqual(parseDiagAddr(v6Flag.slice("--diag-addr=".length)), {
    hostname: "::",
    port: 9102,
  });
});

Deno.test("chart: diagnostics.serviceMonitor renders a Service and a ServiceMonitor on the diag port", async () => {
  const docs = await render(
    SMTP_VALUES + `
diagnostics:
  enabled: true
  serviceMonitor:
    enabled: true
    interval: 15s
    labels: { release: prometheus }
`,
  );
  const service = docs.get("Service") as { metadata: Doc; spec: Doc };
  assert.equal(service.metadata.name, "rel-teleport-plugin-email-diag");
  assert.deepEqual(service.spec.ports, [
    { name: "diag", port: 3000, targetPort: "diag", protocol: "TCP" },
  ]);
  const selector = service.spec.selector as Doc;
  const podLabels = (docs.get("Deployment") as { spec: { template: { metadata: Doc } } }).spec
    .template.metadata.labels as Doc;
  for (const [k, v] of Object.entries(selector)) assert.equal(podLabels[k], v, k);
  const monitor = docs.get("ServiceMonitor") as { apiVersion: string; metadata: Doc; spec: Doc };
  assert.equal(monitor.apiVersion, "monitoring.coreos.com/v1");
  assert.equal((monitor.metadata.labels as Doc).release, "prometheus");
  assert.deepEqual(monitor.spec.endpoints, [{ port: "diag", path: "/metrics", interval: "15s" }]);
  assert.deepEqual((monitor.spec.selector as Doc).matchLabels, selector);

  await assert.rejects(
    render(SMTP_VALUES + "diagnostics: { serviceMonitor: { enabled: true } }\n"),
    (err: unknown) =>
      err instanceof RenderError && err.message.includes("needs diagnostics.enabled: true"),
  );
});

/** Every manifest of a render, as `render_helm.ts` prints them. */
function printed(files: { name: string; text: string }[]): string {
  return files.map((f) => `---\n# Source: ${f.name}\n${f.text.replace(/^\n+/, "")}\n`).join("");
}

Deno.test("chart: upstream-style values files render the same manifests as before (tests/testdata/helm)", async () => {
  // Goldens made before the diagnostics values, replicaCount and the implicit mailer, with:
  //   deno run --allow-read --allow-env=LOG_STREAM,LOG_TOKENS scripts/render_helm.ts \
  //     -f tests/testdata/helm/X.yaml --release-name rel > tests/testdata/helm/X.golden
  // Every value set names its mailer with `enabled`, as upstream's do, so none of that may change
  // what Kubernetes gets (compared as parsed documents: template comments may change).
  const dir = `${REPO_ROOT}/tests/testdata/helm`;
  const names = [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.endsWith(".yaml"));
  assert.ok(names.length >= 7, names.join(" "));
  for (const name of names.sort()) {
    const values = parseYaml(await Deno.readTextFile(`${dir}/${name}`)) as Doc;
    const files = await renderChart(CHART, { values: [values], releaseName: "rel" });
    const golden = await Deno.readTextFile(`${dir}/${name.replace(/\.yaml$/, ".golden")}`);
    assert.deepEqual(parseYamlDocuments(printed(files)), parseYamlDocuments(golden), name);
  }
});

// ---------------------------------------------------------------------------------------------
// The renderer itself

Deno.test("parseYaml() reads the subset: nesting, lists of maps, flow, quotes, comments, block scalars", () => {
  assert.deepEqual(
    parseYaml(`# top
a: 1 # trailing
b:
  c: "x # not a comment"
  d: 'it''s'
  e: [1, "two", {f: g}]
list:
- name: one
  value: "1"
-  plain
empty: {}
none: ~
octal: 0600
flag: true
text: |
  line one

  line three
stripped: |-
  kept
`),
    {
      a: 1,
      b: { c: "x # not a comment", d: "it's", e: [1, "two", { f: "g" }] },
      list: [{ name: "one", value: "1" }, "plain"],
      empty: {},
      none: null,
      octal: 0o600,
      flag: true,
      text: "line one\n\nline three\n",
      stripped: "kept",
    },
  );
  assert.throws(() => parseYaml("a: 1\n  b: 2\n"), RenderError);
});

Deno.test("toYaml() sorts keys and quotes what YAML would misread", () => {
  assert.equal(
    toYaml({ b: ["x", { k: "yes" }], a: { m: 1, s: "1", e: {}, n: "x" } }),
    'a:\n  e: {}\n  m: 1\n  "n": x\n  s: "1"\nb:\n- x\n- k: "yes"',
  );
  assert.deepEqual(parseYaml(toYaml({ z: [{ a: "b", c: ["d"] }], t: "true" })), {
    z: [{ a: "b", c: ["d"] }],
    t: "true",
  });
});

Deno.test("mergeValues() merges maps, replaces lists and deletes keys set to null", () => {
  assert.deepEqual(
    mergeValues({ a: { b: 1, c: 2 }, l: [1, 2], d: 1 }, { a: { c: 3 }, l: [9], d: null }),
    { a: { b: 1, c: 3 }, l: [9] },
  );
});

Deno.test("renderChart() rejects a template using an unsupported function instead of ignoring it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "helm-render-" });
  try {
    await Deno.mkdir(`${dir}/templates`);
    await Deno.writeTextFile(`${dir}/Chart.yaml`, "name: t\nversion: 1.0.0\nappVersion: 1.0.0\n");
    await Deno.writeTextFile(`${dir}/values.yaml`, "x: 1\n");
    await Deno.writeTextFile(`${dir}/templates/a.yaml`, "v: {{ .Values.x | lookup }}\n");
    await assert.rejects(
      renderChart(dir),
      (err: unknown) =>
        err instanceof RenderError && err.message.includes('function "lookup" not defined'),
    );
    await Deno.writeTextFile(
      `${dir}/templates/a.yaml`,
      "{{- range $k, $v := .Values.m }}\n{{ $k }}={{ $v }}\n{{- else }}\nnone\n{{- end }}\n{{ if eq .Values.x 1 }}one{{ else if eq .Values.x 2 }}two{{ end }}\n",
    );
    assert.equal(
      (await renderChart(dir, { values: [{ m: { b: 2, a: 1 } }] }))[0].text,
      "\na=1\nb=2\none\n",
    );
    assert.equal((await renderChart(dir, { values: [{ x: 2 }] }))[0].text, "\nnone\ntwo\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
