/**
 * Reads Teleport credentials: identity files (`tctl auth sign --format=file`, tbot `identity`)
 * parsed exactly like Go's `api/identityfile` `decodeIdentityFile`, and the `--format=tls` triple
 * (`client_key`, `client_crt`, `root_cas`).
 *
 * Error messages name the file and the problem and never contain key material.
 */
import crypto from "node:crypto";
import { Buffer } from "node:buffer";
import { ConfigError, errorMessage } from "../errors.ts";
import { SshReader } from "./ssh_wire.ts";

/** Mutual-TLS (and SSH) credentials of the plugin, as read from disk. */
export interface Identity {
  /** The private key re-encoded as PKCS#8 PEM (whatever form the file used); for `node:tls`. */
  keyPem: string;
  /** The private key. Never log it. */
  privateKey: crypto.KeyObject;
  /** The TLS client certificate PEM (signed by the cluster's user CA). */
  certPem: string;
  /** Trusted TLS CA certificates (the cluster's host CA), PEM each; verifies the Auth server. */
  caPems: string[];
  /** The OpenSSH user certificate line (`<type>-cert-v01@openssh.com <b64>`); identity files only. */
  sshCert?: string;
  /** `@cert-authority ...` known-hosts lines (SSH host CAs); identity files only. */
  sshCertAuthorities: string[];
  /** Validity of the TLS certificate. */
  notBefore: Date;
  notAfter: Date;
  /** Teleport user: the TLS certificate's Subject CN. */
  user: string;
  /** Teleport roles: the TLS certificate's Subject O values. */
  roles: string[];
  /** Where it came from, for messages: the identity file path, or the `client_crt` path. */
  source: string;
}

/** The `--format=tls` file triple (`[teleport]` `client_key`, `client_crt`, `root_cas`). */
export interface TlsFiles {
  clientKey: string;
  clientCrt: string;
  rootCas: string;
}

const SSH_CERT_TYPE = /^[a-z0-9\-]+-cert-v[0-9]{2}@openssh\.com$/;

/** The components of an identity file, split as Go's `decodeIdentityFile` does. */
export interface IdentityFileParts {
  /** First PEM block. */
  privateKey?: string;
  /** Second PEM block. */
  tlsCert?: string;
  /** Every later PEM block. */
  tlsCas: string[];
  /** The last SSH certificate line. */
  sshCert?: string;
  sshCas: string[];
}

/**
 * Splits an identity file's text into its parts, line by line, like Go's `decodeIdentityFile`:
 * SSH certificate lines by their first token, `@cert-authority` lines, and PEM blocks by
 * position (key, client cert, then CAs). Throws `Error` (message without a path) when a PEM
 * block is left open at the end of the file.
 */
export function splitIdentityFile(text: string): IdentityFileParts {
  const lines = text.split("\n").map((l) => l.trim());
  if (text.endsWith("\n")) lines.pop(); // the "" after the final newline is not a line
  const parts: IdentityFileParts = { tlsCas: [], sshCas: [] };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (SSH_CERT_TYPE.test(line.split(" ")[0])) {
      parts.sshCert = line;
    } else if (line.startsWith("@cert-authority")) {
      parts.sshCas.push(line);
    } else if (line.startsWith("-----BEGIN")) {
      const block: string[] = [];
      const label = /^-----BEGIN ([^-]*)-----/.exec(line)?.[1] ?? line;
      for (;;) {
        block.push(lines[i]);
        if (lines[i].startsWith("-----END")) break;
        i++;
        if (i >= lines.length) {
          throw new Error(`PEM block "${label}" is not closed`);
        }
      }
      const pem = block.join("\n") + "\n";
      if (parts.privateKey === undefined) parts.privateKey = pem;
      else if (parts.tlsCert === undefined) parts.tlsCert = pem;
      else parts.tlsCas.push(pem);
    }
  }
  return parts;
}

/** Base64 body of a single PEM block (headers such as `Proc-Type:` are rejected). */
function pemBody(pem: string): Buffer | undefined {
  const lines = pem.trim().split("\n").map((l) => l.trim());
  if (lines.length < 2) return undefined;
  const body = lines.slice(1, -1);
  if (body.some((l) => l.includes(":"))) return undefined; // encrypted or with headers
  const b64 = body.join("");
  if (!/^[A-Za-z0-9+/=]*$/.test(b64)) return undefined;
  return Buffer.from(b64, "base64");
}

/**
 * Parses a private key PEM trying PKCS#8, then PKCS#1, then SEC1, whatever the header says
 * (Go's `keys.ParsePrivateKey`), and finally the unencrypted OpenSSH format
 * (`openssh-key-v1`: Ed25519, ECDSA, RSA). Returns undefined when none fits.
 */
export function parsePrivateKeyPem(pem: string): crypto.KeyObject | undefined {
  const der = pemBody(pem);
  if (!der || der.length === 0) return undefined;
  for (const type of ["pkcs8", "pkcs1", "sec1"] as const) {
    try {
      return crypto.createPrivateKey({ key: der, format: "der", type });
    } catch {
      // try the next encoding
    }
  }
  try {
    return parseOpenSshPrivateKey(der);
  } catch {
    return undefined;
  }
}

const OPENSSH_MAGIC = "openssh-key-v1\0";
const CURVES: Record<string, string> = {
  nistp256: "P-256",
  nistp384: "P-384",
  nistp521: "P-521",
};

/** Decodes an unencrypted `openssh-key-v1` private key. Throws on anything else. */
function parseOpenSshPrivateKey(der: Buffer): crypto.KeyObject {
  if (der.subarray(0, OPENSSH_MAGIC.length).toString("latin1") !== OPENSSH_MAGIC) {
    throw new Error("not an OpenSSH private key");
  }
  const r = new SshReader(der.subarray(OPENSSH_MAGIC.length), "OpenSSH private key");
  if (r.str() !== "none" || r.str() !== "none") {
    throw new Error("encrypted OpenSSH private key");
  }
  r.bytes(); // kdf options
  r.u32(); // number of keys (1)
  r.bytes(); // public key
  const p = new SshReader(r.bytes(), "OpenSSH private key");
  p.u32(); // the two check integers
  p.u32();
  const type = p.str();
  let jwk: crypto.JsonWebKey;
  if (type === "ssh-ed25519") jwk = ed25519Jwk(p);
  else if (type.startsWith("ecdsa-sha2-")) jwk = ecdsaJwk(p);
  else if (type === "ssh-rsa") jwk = rsaJwk(p);
  else throw new Error(`unsupported OpenSSH key type ${type}`);
  return crypto.createPrivateKey({ key: jwk, format: "jwk" });
}

function ed25519Jwk(p: SshReader): crypto.JsonWebKey {
  const pub = p.bytes();
  const secret = p.bytes();
  return {
    kty: "OKP",
    crv: "Ed25519",
    x: pub.toString("base64url"),
    d: secret.subarray(0, 32).toString("base64url"),
  };
}

function ecdsaJwk(p: SshReader): crypto.JsonWebKey {
  const crv = CURVES[p.str()];
  if (!crv) throw new Error("unsupported curve");
  const q = p.bytes();
  const d = p.bytes();
  const size = (q.length - 1) / 2;
  let i = 0;
  while (d.length - i > size && d[i] === 0) i++;
  const t = d.subarray(i);
  return {
    kty: "EC",
    crv,
    x: q.subarray(1, 1 + size).toString("base64url"),
    y: q.subarray(1 + size).toString("base64url"),
    d: Buffer.concat([Buffer.alloc(size - t.length), t]).toString("base64url"),
  };
}

function rsaJwk(p: SshReader): crypto.JsonWebKey {
  const n = p.bytes(), e = p.bytes(), d = p.bytes(), iqmp = p.bytes();
  const pp = p.bytes(), qq = p.bytes();
  const b64 = (v: Buffer) => {
    let i = 0;
    while (i < v.length - 1 && v[i] === 0) i++;
    return v.subarray(i).toString("base64url");
  };
  const big = (v: Buffer) => BigInt("0x" + (v.toString("hex") || "0"));
  const hex = (v: bigint) => {
    const h = v.toString(16);
    return Buffer.from(h.length % 2 ? "0" + h : h, "hex");
  };
  const dp = big(d) % (big(pp) - 1n), dq = big(d) % (big(qq) - 1n);
  return {
    kty: "RSA",
    n: b64(n),
    e: b64(e),
    d: b64(d),
    p: b64(pp),
    q: b64(qq),
    dp: b64(hex(dp)),
    dq: b64(hex(dq)),
    qi: b64(iqmp),
  };
}

interface ParsedCert {
  x: crypto.X509Certificate;
  user: string;
  roles: string[];
}

function parseCertPem(pem: string): ParsedCert | undefined {
  let x: crypto.X509Certificate;
  try {
    x = new crypto.X509Certificate(pem);
  } catch {
    return undefined;
  }
  // `subject` is one `KEY=value` line per attribute (node:crypto's multi-line form); Teleport
  // puts the user in CN and one role per O.
  const fields = x.subject.split("\n").map((line) => {
    const eq = line.indexOf("=");
    return { key: line.slice(0, eq), value: line.slice(eq + 1) };
  });
  const user = fields.find((f) => f.key === "CN")?.value ?? "";
  const roles = fields.filter((f) => f.key === "O").map((f) => f.value);
  return { x, user, roles };
}

function pemLabel(pem: string): string {
  return /^-----BEGIN ([^-]*)-----/.exec(pem.trim())?.[1] ?? "";
}

/** Splits a PEM bundle into its blocks (for `root_cas`). */
function pemBlocks(text: string): string[] {
  return [
    ...text.replace(/\r\n/g, "\n").matchAll(/-----BEGIN [^-]*-----[\s\S]*?-----END [^-]*-----/g),
  ]
    .map((m) => m[0] + "\n");
}

/** Builds an Identity from its parts; `fail(detail)` makes the error for the right file/key. */
function assemble(
  parts: {
    keyPem?: string;
    certPem?: string;
    caPems: string[];
    sshCert?: string;
    sshCas: string[];
  },
  source: string,
  fail: (detail: string, part: "key" | "cert" | "cas") => Error,
): Identity {
  if (!parts.keyPem) throw fail("no private key found", "key");
  const privateKey = parsePrivateKeyPem(parts.keyPem);
  if (!privateKey) throw fail("private key is not PKCS#8, PKCS#1 or SEC1", "key");
  if (!parts.certPem) throw fail("no TLS certificate found", "cert");
  if (pemLabel(parts.certPem) !== "CERTIFICATE") {
    throw fail(
      `expected a "CERTIFICATE" PEM block after the private key, found "${
        pemLabel(parts.certPem)
      }"`,
      "cert",
    );
  }
  const cert = parseCertPem(parts.certPem);
  if (!cert) throw fail("TLS certificate cannot be parsed", "cert");
  if (!cert.x.checkPrivateKey(privateKey)) {
    throw fail("private key does not match the TLS certificate", "key");
  }
  if (parts.caPems.length === 0) throw fail("no trusted TLS CA certificates found", "cas");
  parts.caPems.forEach((pem, i) => {
    if (pemLabel(pem) !== "CERTIFICATE" || !parseCertPem(pem)) {
      throw fail(`TLS CA certificate #${i + 1} cannot be parsed`, "cas");
    }
  });
  return {
    keyPem: privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
    privateKey,
    certPem: parts.certPem,
    caPems: parts.caPems,
    sshCert: parts.sshCert,
    sshCertAuthorities: parts.sshCas,
    notBefore: new Date(cert.x.validFrom),
    notAfter: new Date(cert.x.validTo),
    user: cert.user,
    roles: cert.roles,
    source,
  };
}

function describeReadError(err: unknown): string {
  if (err instanceof Deno.errors.NotFound) return "file not found";
  if (err instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (err instanceof Deno.errors.IsADirectory) return "is a directory";
  if (err instanceof Error && err.name === "AbortError") return "aborted";
  return errorMessage(err);
}

/**
 * Parses the text of an identity file. `path` is used in messages and for the
 * `<path>-cert.pub` fallback text `sshCertFallback` (the caller reads it). Throws
 * `ConfigError` (key `teleport.identity`).
 */
export function parseIdentityFile(
  text: string,
  opts: { path: string; sshCertFallback?: string },
): Identity {
  const fail = (detail: string) =>
    new ConfigError("teleport.identity", `Cannot read identity file "${opts.path}": ${detail}`, {
      file: opts.path,
      hint: "sign new credentials with `tctl auth sign --format=file` or check tbot's output",
    });
  let parts: IdentityFileParts;
  try {
    parts = splitIdentityFile(text.replace(/\r\n/g, "\n"));
  } catch (err) {
    throw fail((err as Error).message);
  }
  let sshCert = parts.sshCert;
  if (sshCert === undefined && opts.sshCertFallback !== undefined) {
    const line = opts.sshCertFallback.trim().split("\n")[0]?.trim() ?? "";
    if (SSH_CERT_TYPE.test(line.split(" ")[0])) sshCert = line;
  }
  if (sshCert === undefined) {
    throw fail(`no SSH certificate line found (nor in "${opts.path}-cert.pub")`);
  }
  return assemble(
    {
      keyPem: parts.privateKey,
      certPem: parts.tlsCert,
      caPems: parts.tlsCas,
      sshCert,
      sshCas: parts.sshCas,
    },
    opts.path,
    fail,
  );
}

/** Reads and parses an identity file (with Go's `<path>-cert.pub` fallback for the SSH cert). */
export async function readIdentityFile(
  path: string,
  opts: { signal?: AbortSignal } = {},
): Promise<Identity> {
  let text: string;
  try {
    text = await Deno.readTextFile(path, { signal: opts.signal });
  } catch (err) {
    throw new ConfigError(
      "teleport.identity",
      `Cannot read identity file "${path}": ${describeReadError(err)}`,
      { file: path, cause: err },
    );
  }
  let fallback: string | undefined;
  if (!text.split("\n").some((l) => SSH_CERT_TYPE.test(l.trim().split(" ")[0]))) {
    try {
      fallback = await Deno.readTextFile(`${path}-cert.pub`, { signal: opts.signal });
    } catch {
      fallback = undefined;
    }
  }
  return parseIdentityFile(text, { path, sshCertFallback: fallback });
}

/** Reads the `client_key` / `client_crt` / `root_cas` triple. Throws `ConfigError` naming the key. */
export async function readTlsFiles(
  files: TlsFiles,
  opts: { signal?: AbortSignal } = {},
): Promise<Identity> {
  const read = async (key: string, path: string): Promise<string> => {
    try {
      return await Deno.readTextFile(path, { signal: opts.signal });
    } catch (err) {
      throw new ConfigError(key, `Cannot read "${key}" "${path}": ${describeReadError(err)}`, {
        file: path,
        cause: err,
      });
    }
  };
  const [keyText, crtText, casText] = await Promise.all([
    read("teleport.client_key", files.clientKey),
    read("teleport.client_crt", files.clientCrt),
    read("teleport.root_cas", files.rootCas),
  ]);
  const keyBlocks = pemBlocks(keyText);
  const certBlocks = pemBlocks(crtText);
  return assemble(
    { keyPem: keyBlocks[0], certPem: certBlocks[0], caPems: pemBlocks(casText), sshCas: [] },
    files.clientCrt,
    (detail, part) => {
      const [key, path] = part === "key"
        ? ["teleport.client_key", files.clientKey]
        : part === "cert"
        ? ["teleport.client_crt", files.clientCrt]
        : ["teleport.root_cas", files.rootCas];
      return new ConfigError(key, `Cannot read "${key}" "${path}": ${detail}`, { file: path });
    },
  );
}
