/**
 * The Deno permissions the daemon runs with: baked into the release binary by
 * `scripts/release.ts`, and used by the end-to-end tests to run `main.ts`, so the tests guard
 * them (no `-A`; no `run`, `ffi`, `import`). Measured with
 * `DENO_AUDIT_PERMISSIONS` while sending over SMTP, Mailgun's API (fetch) and gRPC, and by
 * running the whole e2e suite (tests/e2e_*) with the daemon under exactly these flags:
 * - net: Teleport, SMTP and Mailgun addresses come from the configuration;
 * - read: the configuration, identity and password files are configuration values;
 * - write: only for `[log] output = "<file>"`, whose path is a configuration value too, so it
 *   cannot be listed at compile time; systemd (`ProtectSystem=strict`) and the container
 *   (non-root user) confine it instead;
 * - env: grpc-js, the gRPC client until the plugin had its own, enumerated the whole environment
 *   at import (`Object.keys(process.env)`), so a variable list was not possible; the names read
 *   without it (the configuration's, the dialers' proxy variables, the libraries') have not been
 *   listed and measured yet;
 * - sys: the SMTP mailer reads the host name (EHLO), and `tls.rootCertificates` (the web API
 *   and tunnel dialers add a CA to the default set) needs sys access
 *   "ca", which Deno 2.9.6 does not accept in a list (`--allow-sys=hostname,ca` fails with
 *   `unknown sys descriptor: 'ca'`), so sys access cannot be narrowed.
 */
export const DAEMON_PERMISSIONS: readonly string[] = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  "--allow-sys",
];
