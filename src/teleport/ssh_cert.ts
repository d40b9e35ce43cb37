/**
 * OpenSSH certificates (`*-cert-v01@openssh.com`, PROTOCOL.certkeys) and the `@cert-authority`
 * known-hosts lines of a Teleport identity file: parsing, signature verification with
 * `node:crypto`, and the checks Go's `ssh.CertChecker` makes (type, validity window, principals,
 * critical options, trusted signing key).
 *
 * Supported key and signature types: `ssh-ed25519`, `ecdsa-sha2-nistp256/384/521`, `ssh-rsa`
 * (signatures `rsa-sha2-256`, `rsa-sha2-512`, `ssh-rsa`).
 */
import crypto from "node:crypto";
import { Buffer } from "node:buffer";
import { TeleportError } from "../errors.ts";
import { sshParseError, SshReader, sshString } from "./ssh_wire.ts";

/** Certificate type of a user certificate (`SSH_CERT_TYPE_USER`). */
export const SSH_CERT_TYPE_USER = 1;
/** Certificate type of a host certificate (`SSH_CERT_TYPE_HOST`). */
export const SSH_CERT_TYPE_HOST = 2;
/** `valid before` value meaning "forever" (`CertTimeInfinity`). */
export const SSH_CERT_TIME_INFINITY = 0xffff_ffff_ffff_ffffn;

const CERT_SUFFIX = "-cert-v01@openssh.com";

/** The fields of an OpenSSH certificate. */
export interface SshCertificate {
  /** Certificate key type, e.g. `ssh-ed25519-cert-v01@openssh.com`. */
  certType: string;
  /** The certified key's type, e.g. `ssh-ed25519`. */
  keyType: string;
  /** The certified public key as a plain SSH public key blob (`string type, fields...`). */
  publicKey: Uint8Array;
  serial: bigint;
  /** {@link SSH_CERT_TYPE_USER} or {@link SSH_CERT_TYPE_HOST}. */
  type: number;
  keyId: string;
  principals: string[];
  /** Seconds since the epoch. */
  validAfter: bigint;
  /** Seconds since the epoch; {@link SSH_CERT_TIME_INFINITY} for no end. */
  validBefore: bigint;
  criticalOptions: Record<string, string>;
  extensions: Record<string, string>;
  /** The signing CA's public key blob. */
  signatureKey: Uint8Array;
  /** The signature blob (`string algorithm, string signature`). */
  signature: Uint8Array;
  /** The bytes the signature covers (the blob up to the signature). */
  signedData: Uint8Array;
  /** The whole certificate blob as it goes on the wire. */
  blob: Uint8Array;
}

/** One `@cert-authority` line of an identity file or known_hosts. */
export interface SshCertAuthority {
  /** Host patterns (`example.com`, `*.example.com`). Informational: Teleport matches on the key. */
  hosts: string[];
  /** Key type, e.g. `ssh-ed25519`. */
  keyType: string;
  /** The CA's public key blob. */
  publicKey: Uint8Array;
  /** The comment (`type=host`), or "". */
  comment: string;
}

const malformed = sshParseError;

/** The number of key fields (after the type name) in a public key blob of `keyType`. */
function keyFieldCount(keyType: string): number {
  if (keyType === "ssh-ed25519") return 1;
  if (keyType === "ssh-rsa") return 2; // e, n
  if (keyType.startsWith("ecdsa-sha2-")) return 2; // curve name, Q
  if (keyType === "ssh-dss") return 4;
  throw malformed("SSH public key", `unsupported key type "${keyType}"`);
}

/** The type name at the start of an SSH public key, certificate or signature blob. */
export function sshBlobType(blob: Uint8Array): string {
  return new SshReader(blob, "SSH key").str();
}

/** Whether `type` names an OpenSSH certificate (`*-cert-v01@openssh.com`). */
export function isCertificateType(type: string): boolean {
  return type.endsWith(CERT_SUFFIX);
}

function parseTuples(data: Buffer, what: string): Record<string, string> {
  const r = new SshReader(data, what);
  const out: Record<string, string> = {};
  while (!r.done) {
    const name = r.str();
    const value = r.bytes();
    out[name] = value.length === 0 ? "" : new SshReader(value, what).str();
  }
  return out;
}

/**
 * Parses an OpenSSH certificate from its wire blob. Does not verify anything (see
 * {@link checkSshCertificate}).
 * @throws {TeleportError} kind `bad_parameter` on malformed data.
 */
export function parseSshCertificate(blob: Uint8Array): SshCertificate {
  const what = "SSH certificate";
  const r = new SshReader(blob, what);
  const certType = r.str();
  if (!isCertificateType(certType)) {
    throw malformed(what, `"${certType}" is not a certificate type`);
  }
  const keyType = certType.slice(0, -CERT_SUFFIX.length);
  r.bytes(); // nonce
  const keyStart = r.pos;
  const n = keyFieldCount(keyType);
  for (let i = 0; i < n; i++) r.bytes();
  const publicKey = Buffer.concat([sshString(keyType), r.slice(keyStart, r.pos)]);
  const serial = r.u64();
  const type = r.u32();
  const keyId = r.str();
  const pr = new SshReader(r.bytes(), what);
  const principals: string[] = [];
  while (!pr.done) principals.push(pr.str());
  const validAfter = r.u64();
  const validBefore = r.u64();
  const criticalOptions = parseTuples(r.bytes(), what);
  const extensions = parseTuples(r.bytes(), what);
  r.bytes(); // reserved
  const signatureKey = r.bytes();
  const signedData = r.slice(0, r.pos);
  const signature = r.bytes();
  if (!r.done) throw malformed(what, "trailing data");
  return {
    certType,
    keyType,
    publicKey,
    serial,
    type,
    keyId,
    principals,
    validAfter,
    validBefore,
    criticalOptions,
    extensions,
    signatureKey,
    signature,
    signedData,
    blob: r.slice(0, r.pos),
  };
}

/**
 * Parses an `authorized_keys`-style line `<type> <base64> [comment]` (an SSH public key or
 * certificate). The type must match the blob's own type name.
 * @throws {TeleportError} kind `bad_parameter`.
 */
export function parseAuthorizedKey(
  line: string,
): { type: string; blob: Uint8Array; comment: string } {
  const parts = line.trim().split(/\s+/);
  if (parts.length < 2) throw malformed("SSH public key", 'expected "<type> <base64>"');
  const [type, b64, ...rest] = parts;
  const blob = Buffer.from(b64, "base64");
  if (blob.length === 0) throw malformed("SSH public key", "empty key data");
  const inner = sshBlobType(blob);
  if (inner !== type) {
    throw malformed("SSH public key", `type "${type}" does not match the key data ("${inner}")`);
  }
  return { type, blob, comment: rest.join(" ") };
}

/**
 * Parses one `@cert-authority <hosts> <key-type> <base64> [comment]` line.
 * @throws {TeleportError} kind `bad_parameter`.
 */
export function parseCertAuthorityLine(line: string): SshCertAuthority {
  const trimmed = line.trim();
  const m = /^@cert-authority\s+(\S+)\s+(.+)$/.exec(trimmed);
  if (!m) {
    throw malformed("@cert-authority line", 'expected "@cert-authority <hosts> <type> <key>"');
  }
  const key = parseAuthorizedKey(m[2]);
  if (isCertificateType(key.type)) {
    throw malformed("@cert-authority line", "the key is a certificate");
  }
  sshPublicKeyToKeyObject(key.blob); // rejects unknown key types and malformed keys
  return { hosts: m[1].split(","), keyType: key.type, publicKey: key.blob, comment: key.comment };
}

/** Whether two SSH public key blobs are the same key. */
export function sshKeysEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.byteLength === b.byteLength && crypto.timingSafeEqual(a, b);
}

/** OpenSSH-style fingerprint (`SHA256:<base64 without padding>`) of a public key blob. */
export function sshFingerprint(blob: Uint8Array): string {
  return "SHA256:" + crypto.createHash("sha256").update(blob).digest("base64").replace(/=+$/, "");
}

function unsignedMpint(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
}

const CURVES: Record<string, { crv: string; size: number; hash: string }> = {
  nistp256: { crv: "P-256", size: 32, hash: "sha256" },
  nistp384: { crv: "P-384", size: 48, hash: "sha384" },
  nistp521: { crv: "P-521", size: 66, hash: "sha512" },
};

/**
 * A `node:crypto` public key from an SSH public key blob (Ed25519, ECDSA P-256/384/521, RSA).
 * @throws {TeleportError} kind `bad_parameter`.
 */
export function sshPublicKeyToKeyObject(blob: Uint8Array): crypto.KeyObject {
  const what = "SSH public key";
  const r = new SshReader(blob, what);
  const type = r.str();
  try {
    if (type === "ssh-ed25519") {
      const x = r.bytes();
      if (x.length !== 32) throw malformed(what, "bad Ed25519 key length");
      return crypto.createPublicKey({
        key: { kty: "OKP", crv: "Ed25519", x: x.toString("base64url") },
        format: "jwk",
      });
    }
    if (type === "ssh-rsa") {
      const e = unsignedMpint(r.bytes());
      const n = unsignedMpint(r.bytes());
      return crypto.createPublicKey({
        key: { kty: "RSA", n: n.toString("base64url"), e: e.toString("base64url") },
        format: "jwk",
      });
    }
    if (type.startsWith("ecdsa-sha2-")) {
      const curveName = r.str();
      const curve = CURVES[curveName];
      if (!curve || type !== `ecdsa-sha2-${curveName}`) {
        throw malformed(what, `unsupported curve "${curveName}"`);
      }
      const q = r.bytes();
      if (q.length !== 1 + 2 * curve.size || q[0] !== 4) {
        throw malformed(what, "bad ECDSA point");
      }
      return crypto.createPublicKey({
        key: {
          kty: "EC",
          crv: curve.crv,
          x: q.subarray(1, 1 + curve.size).toString("base64url"),
          y: q.subarray(1 + curve.size).toString("base64url"),
        },
        format: "jwk",
      });
    }
  } catch (e) {
    if (e instanceof TeleportError) throw e;
    throw malformed(what, (e as Error).message);
  }
  throw malformed(what, `unsupported key type "${type}"`);
}

function leftPad(b: Buffer, size: number): Buffer {
  if (b.length >= size) return b.subarray(b.length - size);
  return Buffer.concat([Buffer.alloc(size - b.length), b]);
}

/**
 * Verifies an SSH signature blob (`string algorithm, string signature`) over `data` with the
 * public key blob `publicKey`. The algorithm must fit the key (`rsa-sha2-256`, `rsa-sha2-512`
 * or `ssh-rsa` for RSA keys). Returns false on a bad or unparsable signature.
 */
export function verifySshSignature(
  publicKey: Uint8Array,
  signature: Uint8Array,
  data: Uint8Array,
): boolean {
  try {
    const keyType = sshBlobType(publicKey);
    const r = new SshReader(signature, "SSH signature");
    const alg = r.str();
    const sig = r.bytes();
    const key = sshPublicKeyToKeyObject(publicKey);
    if (keyType === "ssh-ed25519") {
      return alg === "ssh-ed25519" && crypto.verify(null, data, key, sig);
    }
    if (keyType === "ssh-rsa") {
      const hash =
        ({ "ssh-rsa": "sha1", "rsa-sha2-256": "sha256", "rsa-sha2-512": "sha512" } as Record<
          string,
          string
        >)[alg];
      return hash !== undefined && crypto.verify(hash, data, key, sig);
    }
    if (keyType.startsWith("ecdsa-sha2-")) {
      const curve = CURVES[keyType.slice("ecdsa-sha2-".length)];
      if (alg !== keyType || !curve) return false;
      const sr = new SshReader(sig, "SSH signature");
      const rr = unsignedMpint(sr.bytes());
      const ss = unsignedMpint(sr.bytes());
      if (rr.length > curve.size || ss.length > curve.size) return false;
      const p1363 = Buffer.concat([leftPad(rr, curve.size), leftPad(ss, curve.size)]);
      return crypto.verify(curve.hash, data, { key, dsaEncoding: "ieee-p1363" }, p1363);
    }
    return false;
  } catch {
    return false;
  }
}

/** Whether the certificate's signature is valid for its own `signatureKey`. */
export function verifySshCertificateSignature(cert: SshCertificate): boolean {
  return verifySshSignature(cert.signatureKey, cert.signature, cert.signedData);
}

/** Options of {@link checkSshCertificate}. */
export interface CheckSshCertificateOptions {
  /** The certificate type that is acceptable. */
  type: "user" | "host";
  /** Trusted CA public key blobs; the certificate's signing key must be one of them. */
  authorities: readonly Uint8Array[];
  /**
   * The principal that must be listed (the user name, or the dialled host). Like Go's
   * `CertChecker`, an empty principal list accepts any principal.
   */
  principal?: string;
  /** The time to check the validity window at; default now. */
  now?: Date;
  /** Critical options that are understood; any other one fails the check. Default none. */
  supportedCriticalOptions?: readonly string[];
}

/**
 * Checks a certificate like Go's `ssh.CertChecker`: type, trusted signing key, signature,
 * validity window, critical options, principal. Returns `undefined` when acceptable, else the
 * reason (for an error message).
 */
export function checkSshCertificate(
  cert: SshCertificate,
  opts: CheckSshCertificateOptions,
): string | undefined {
  const wantType = opts.type === "user" ? SSH_CERT_TYPE_USER : SSH_CERT_TYPE_HOST;
  if (cert.type !== wantType) {
    return `certificate is a ${
      cert.type === SSH_CERT_TYPE_USER
        ? "user"
        : cert.type === SSH_CERT_TYPE_HOST
        ? "host"
        : `type ${cert.type}`
    } certificate, not a ${opts.type} certificate`;
  }
  if (!opts.authorities.some((a) => sshKeysEqual(a, cert.signatureKey))) {
    return `certificate is signed by an unknown authority (${sshFingerprint(cert.signatureKey)})`;
  }
  if (!verifySshCertificateSignature(cert)) return "certificate signature is invalid";
  const now = BigInt(Math.floor((opts.now ?? new Date()).getTime() / 1000));
  if (now < cert.validAfter) return "certificate is not yet valid";
  if (cert.validBefore !== SSH_CERT_TIME_INFINITY && now >= cert.validBefore) {
    return "certificate has expired";
  }
  const supported = opts.supportedCriticalOptions ?? [];
  for (const name of Object.keys(cert.criticalOptions)) {
    if (!supported.includes(name)) return `certificate has unsupported critical option "${name}"`;
  }
  if (
    opts.principal !== undefined && cert.principals.length > 0 &&
    !cert.principals.includes(opts.principal)
  ) {
    return `"${opts.principal}" is not a principal of the certificate`;
  }
  return undefined;
}
