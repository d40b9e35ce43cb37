/**
 * A test certificate authority that issues Teleport-like credentials: TLS host/user CAs, the Auth
 * server certificate, user client certificates, OpenSSH user/host certificates, identity files
 * (`tctl auth sign --format=file`) and the `--format=tls` triple.
 *
 * Test-only; runs under Deno. TLS certificates are made with `@peculiar/x509` over WebCrypto,
 * SSH certificates are encoded here (OpenSSH PROTOCOL.certkeys) and signed with `node:crypto`;
 * parsing and the wire format come from the product (`src/teleport/ssh_cert.ts`, `ssh_wire.ts`).
 *
 * Key sharing: like Teleport, an identity file has ONE private key used for both TLS and SSH.
 * `issueUser()` therefore issues the SSH certificate for the same key as the TLS certificate,
 * whatever the key type (`ssh-rsa-cert-v01`, `ecdsa-sha2-nistp256-cert-v01`,
 * `ssh-ed25519-cert-v01`). `sshKeyPem` is the same key in a form the `ssh2` package parses
 * (PKCS#1 for RSA, SEC1 for EC, OpenSSH for Ed25519).
 */
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import crypto from "node:crypto";
import { Buffer } from "node:buffer";
import {
  parseAuthorizedKey,
  parseSshCertificate as parseCertificateBlob,
  sshBlobType,
  type SshCertificate,
  verifySshCertificateSignature,
} from "../../src/teleport/ssh_cert.ts";
import {
  openSshEd25519PrivateKeyPem,
  sshString,
  sshUint32,
  sshUint64,
} from "../../src/teleport/ssh_wire.ts";

export type { SshCertificate } from "../../src/teleport/ssh_cert.ts";

x509.cryptoProvider.set(globalThis.crypto);

const EC_ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" } as const;
const HOUR = 3_600_000;
const CLOCK_SKEW_MS = 60_000;

/** Key types a user key can have. See {@link IssueUserOptions.keyType}. */
export type UserKeyType = "rsa" | "ec" | "ec-sec1" | "ed25519";

/** Options of {@link TestCertificateAuthority.issueUser}. */
export interface IssueUserOptions {
  /** Teleport user name: the TLS Subject CN and the only SSH principal. */
  user: string;
  /** Teleport roles: one Subject O per role, and the SSH `teleport-roles` extension. */
  roles?: string[];
  /**
   * Private key type. `"rsa"` (2048 bit) is written as PKCS#1 `RSA PRIVATE KEY`, `"ec"` (P-256)
   * as PKCS#8 `PRIVATE KEY`, `"ec-sec1"` (P-256) as `EC PRIVATE KEY`, `"ed25519"` as PKCS#8
   * `PRIVATE KEY`. Default `"ec"`.
   */
  keyType?: UserKeyType;
  /** Validity from now; default one hour. Ignored when `notAfter` is given. */
  ttlMs?: number;
  /** Explicit end of validity (a past date makes an expired certificate). */
  notAfter?: Date;
  /** Which CA signs the TLS and SSH certificates: this cluster's user CA (default) or an unrelated one. */
  signedBy?: "user-ca" | "foreign";
  /** Extra host CA PEMs appended to identity files / `auth.cas` (e.g. CA rotation). */
  extraCaPems?: string[];
}

/** A user's credentials as issued by {@link TestCertificateAuthority.issueUser}. */
export interface IssuedUser {
  /** Private key PEM, in the form `keyType` asks for (what the identity file holds). */
  keyPem: string;
  /** TLS client certificate PEM. */
  certPem: string;
  /** The OpenSSH user certificate as an `authorized_keys` line (no comment). */
  sshCert: string;
  /** The same private key as `keyPem`, in a form `ssh2` parses (PKCS#1, SEC1 or OpenSSH). */
  sshKeyPem: string;
  /** The certificate's end of validity. */
  notAfter: Date;
}

/** An SSH host key and its host certificate (see {@link TestCertificateAuthority.issueSshHostCert}). */
export interface IssuedSshHost {
  /** Ed25519 host private key in OpenSSH format (`ssh2` `hostKeys` accepts it). */
  keyPem: string;
  /** Host public key, `ssh-ed25519 <b64>`. */
  publicKey: string;
  /** Host certificate as an `authorized_keys` line: `ssh-ed25519-cert-v01@openssh.com <b64>`. */
  cert: string;
  /** Raw host certificate blob (what goes on the wire as the server host key). */
  certBlob: Uint8Array;
}

interface TlsCa {
  keys: CryptoKeyPair;
  cert: x509.X509Certificate;
  pem: string;
}

// ---------------------------------------------------------------------------------------------
// SSH wire helpers

function sshMpint(unsigned: Buffer): Buffer {
  let i = 0;
  while (i < unsigned.length - 1 && unsigned[i] === 0) i++;
  let v = unsigned.subarray(i);
  if (v.length > 0 && (v[0] & 0x80)) v = Buffer.concat([Buffer.from([0]), v]);
  return sshString(v);
}

function b64url(s: string): Buffer {
  return Buffer.from(s, "base64url");
}

/** SSH wire-format public key blob for an RSA, P-256 or Ed25519 key. */
export function sshPublicKeyBlob(key: crypto.KeyObject): Buffer {
  const pub = key.type === "private" ? crypto.createPublicKey(key) : key;
  const jwk = pub.export({ format: "jwk" }) as JsonWebKey;
  switch (pub.asymmetricKeyType) {
    case "ed25519":
      return Buffer.concat([sshString("ssh-ed25519"), sshString(b64url(jwk.x!))]);
    case "ec":
      if (jwk.crv !== "P-256") throw new Error(`Unsupported curve ${jwk.crv}`);
      return Buffer.concat([
        sshString("ecdsa-sha2-nistp256"),
        sshString("nistp256"),
        sshString(Buffer.concat([Buffer.from([4]), b64url(jwk.x!), b64url(jwk.y!)])),
      ]);
    case "rsa":
      return Buffer.concat([
        sshString("ssh-rsa"),
        sshMpint(b64url(jwk.e!)),
        sshMpint(b64url(jwk.n!)),
      ]);
    default:
      throw new Error(`Unsupported SSH key type ${pub.asymmetricKeyType}`);
  }
}

/** `authorized_keys` line (`<type> <base64>`) for a public key or certificate blob. */
export function sshAuthorizedKey(blob: Uint8Array): string {
  return `${sshBlobType(blob)} ${Buffer.from(blob).toString("base64")}`;
}

function marshalTuples(tuples: Record<string, string>): Buffer {
  const parts: Buffer[] = [];
  for (const name of Object.keys(tuples).sort()) {
    const value = tuples[name];
    parts.push(sshString(name), sshString(value === "" ? Buffer.alloc(0) : sshString(value)));
  }
  return Buffer.concat(parts);
}

/** Encodes and signs an OpenSSH certificate with an Ed25519 CA key. Returns the cert blob. */
export function signSshCertificate(opts: {
  publicKey: crypto.KeyObject;
  caKey: crypto.KeyObject;
  type: "user" | "host";
  keyId: string;
  principals: string[];
  validAfter: Date;
  validBefore: Date;
  extensions?: Record<string, string>;
  criticalOptions?: Record<string, string>;
  serial?: bigint;
}): Buffer {
  const keyBlob = sshPublicKeyBlob(opts.publicKey);
  const keyType = sshBlobType(keyBlob);
  const certType = `${keyType}-cert-v01@openssh.com`;
  const keyFields = keyBlob.subarray(4 + Buffer.byteLength(keyType));
  const caBlob = sshPublicKeyBlob(opts.caKey);
  const toSecs = (d: Date) => BigInt(Math.max(0, Math.floor(d.getTime() / 1000)));
  const body = Buffer.concat([
    sshString(certType),
    sshString(crypto.randomBytes(32)),
    keyFields,
    sshUint64(opts.serial ?? 0n),
    sshUint32(opts.type === "user" ? 1 : 2),
    sshString(opts.keyId),
    sshString(Buffer.concat(opts.principals.map((p) => sshString(p)))),
    sshUint64(toSecs(opts.validAfter)),
    sshUint64(toSecs(opts.validBefore)),
    sshString(marshalTuples(opts.criticalOptions ?? {})),
    sshString(marshalTuples(opts.extensions ?? {})),
    sshString(""),
    sshString(caBlob),
  ]);
  const sig = crypto.sign(null, body, opts.caKey);
  return Buffer.concat([
    body,
    sshString(Buffer.concat([sshString("ssh-ed25519"), sshString(sig)])),
  ]);
}

/**
 * Parses an OpenSSH certificate blob or `authorized_keys` line with the product parser
 * (`src/teleport/ssh_cert.ts`). Throws on malformed input.
 */
export function parseSshCertificate(cert: Uint8Array | string): SshCertificate {
  return parseCertificateBlob(typeof cert === "string" ? parseAuthorizedKey(cert).blob : cert);
}

// ---------------------------------------------------------------------------------------------
// TLS helpers

async function makeTlsCa(commonName: string, org: string): Promise<TlsCa> {
  const keys = await globalThis.crypto.subtle.generateKey(EC_ALG, true, [
    "sign",
    "verify",
  ]) as CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [commonName] }, { O: [org] }],
    notBefore: new Date(Date.now() - CLOCK_SKEW_MS),
    notAfter: new Date(Date.now() + 10 * 24 * HOUR),
    keys,
    signingAlgorithm: EC_ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign |
          x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { keys, cert, pem: cert.toString("pem") + "\n" };
}

function randomSerial(): string {
  const b = crypto.randomBytes(16);
  b[0] &= 0x7f;
  b[0] |= 0x01;
  return b.toString("hex");
}

function genUserKey(keyType: UserKeyType): crypto.KeyPairKeyObjectResult {
  switch (keyType) {
    case "rsa":
      return crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
    case "ed25519":
      return crypto.generateKeyPairSync("ed25519");
    default:
      return crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
  }
}

function exportKeyPem(key: crypto.KeyObject, keyType: UserKeyType): string {
  switch (keyType) {
    case "rsa":
      return key.export({ format: "pem", type: "pkcs1" }).toString();
    case "ec-sec1":
      return key.export({ format: "pem", type: "sec1" }).toString();
    default:
      return key.export({ format: "pem", type: "pkcs8" }).toString();
  }
}

function exportSshKeyPem(key: crypto.KeyObject, keyType: UserKeyType): string {
  switch (keyType) {
    case "rsa":
      return key.export({ format: "pem", type: "pkcs1" }).toString();
    case "ed25519":
      return openSshEd25519PrivateKeyPem(key);
    default:
      return key.export({ format: "pem", type: "sec1" }).toString();
  }
}

function withNewline(s: string): string {
  return s.endsWith("\n") ? s : s + "\n";
}

/** Hex encoding of a cluster name as Teleport's `utils.EncodeClusterName` (without the domain). */
export function hexClusterName(clusterName: string): string {
  return Buffer.from(clusterName, "utf8").toString("hex");
}

/** A Teleport-like certificate authority for tests. Create with {@link TestCertificateAuthority.create}. */
export class TestCertificateAuthority {
  /** Cluster name (default `"example.com"`). */
  readonly clusterName: string;
  #hostCa: TlsCa;
  #userCa: TlsCa;
  #webCa: TlsCa;
  #foreignCa?: TlsCa;
  #sshUserCa = crypto.generateKeyPairSync("ed25519");
  #sshHostCa = crypto.generateKeyPairSync("ed25519");
  #sshForeignCa = crypto.generateKeyPairSync("ed25519");
  #rsaKey?: crypto.KeyPairKeyObjectResult;
  #userCaX509: crypto.X509Certificate;

  private constructor(clusterName: string, hostCa: TlsCa, userCa: TlsCa, webCa: TlsCa) {
    this.clusterName = clusterName;
    this.#hostCa = hostCa;
    this.#userCa = userCa;
    this.#webCa = webCa;
    this.#userCaX509 = new crypto.X509Certificate(userCa.pem);
  }

  /** Generates fresh CA keys (EC P-256 for TLS, Ed25519 for SSH). */
  static async create(opts: { clusterName?: string } = {}): Promise<TestCertificateAuthority> {
    const clusterName = opts.clusterName ?? "example.com";
    const [host, user, web] = await Promise.all([
      makeTlsCa(clusterName, clusterName),
      makeTlsCa(clusterName, clusterName),
      makeTlsCa("Test Web PKI Root", "Test Web PKI"),
    ]);
    return new TestCertificateAuthority(clusterName, host, user, web);
  }

  /** PEM of the host CA TLS certificate (identity files carry it; it signs the Auth server cert). */
  get hostCaPem(): string {
    return this.#hostCa.pem;
  }

  /** PEM of the user CA TLS certificate (signs client certificates). */
  get userCaPem(): string {
    return this.#userCa.pem;
  }

  /**
   * PEM of an unrelated "public web PKI" CA that signs the Proxy's web certificate
   * (`issueServerCert({ signedBy: "web-ca" })`): like a real Proxy, whose web certificate is
   * not signed by the cluster's host CA.
   */
  get webCaPem(): string {
    return this.#webCa.pem;
  }

  /** SSH user CA public key, `ssh-ed25519 <b64>` (what a tunnel server trusts for user certs). */
  get sshUserCaPublicKey(): string {
    return sshAuthorizedKey(sshPublicKeyBlob(this.#sshUserCa.publicKey));
  }

  /** SSH host CA public key, `ssh-ed25519 <b64>`. */
  get sshHostCaPublicKey(): string {
    return sshAuthorizedKey(sshPublicKeyBlob(this.#sshHostCa.publicKey));
  }

  /** The identity file's known-hosts line for the SSH host CA. */
  certAuthorityLine(): string {
    const c = this.clusterName;
    return `@cert-authority ${c},*.${c} ${this.sshHostCaPublicKey} type=host`;
  }

  /**
   * A server TLS key pair (EC P-256). Default SANs: DNS `teleport.cluster.local`,
   * `*.teleport.cluster.local`, `localhost`, IP `127.0.0.1`. Signed by the host CA (the Auth
   * server certificate) unless `signedBy: "web-ca"` (a Proxy web certificate, see {@link webCaPem}).
   */
  async issueServerCert(
    opts: { dnsNames?: string[]; signedBy?: "host-ca" | "web-ca"; notAfter?: Date } = {},
  ): Promise<{ keyPem: string; certPem: string }> {
    const ca = opts.signedBy === "web-ca" ? this.#webCa : this.#hostCa;
    const dnsNames = opts.dnsNames ??
      ["teleport.cluster.local", "*.teleport.cluster.local", "localhost"];
    const { privateKey, publicKey } = crypto.generateKeyPairSync("ec", { namedCurve: "P-256" });
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: [{ CN: [dnsNames[0] ?? "localhost"] }, { O: [this.clusterName] }],
      issuer: ca.cert.subject,
      notBefore: new Date(Date.now() - CLOCK_SKEW_MS),
      notAfter: opts.notAfter ?? new Date(Date.now() + 24 * HOUR),
      signingKey: ca.keys.privateKey,
      publicKey: new x509.PublicKey(
        new Uint8Array(publicKey.export({ format: "der", type: "spki" })),
      ),
      signingAlgorithm: EC_ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([
          x509.ExtendedKeyUsage.serverAuth,
          x509.ExtendedKeyUsage.clientAuth,
        ]),
        new x509.SubjectAlternativeNameExtension([
          ...dnsNames.map((value) => ({ type: "dns" as const, value })),
          { type: "ip", value: "127.0.0.1" },
        ]),
        await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
      ],
    });
    return {
      keyPem: privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
      certPem: cert.toString("pem") + "\n",
    };
  }

  async #foreign(): Promise<TlsCa> {
    this.#foreignCa ??= await makeTlsCa(this.clusterName, this.clusterName);
    return this.#foreignCa;
  }

  /**
   * A user's credentials like Teleport's: TLS client certificate (Subject CN = user, one O per
   * role, EKU clientAuth) signed by the user CA, and an OpenSSH user certificate for the SAME key
   * (principal = user, key id = user, extension `teleport-roles`) signed by the SSH user CA.
   */
  async issueUser(opts: IssueUserOptions): Promise<IssuedUser> {
    const keyType = opts.keyType ?? "ec";
    const roles = opts.roles ?? [];
    let pair: crypto.KeyPairKeyObjectResult;
    if (keyType === "rsa") {
      this.#rsaKey ??= genUserKey("rsa"); // RSA generation is slow: one per CA.
      pair = this.#rsaKey;
    } else {
      pair = genUserKey(keyType);
    }
    const foreign = opts.signedBy === "foreign";
    const ca = foreign ? await this.#foreign() : this.#userCa;
    const notAfter = opts.notAfter ?? new Date(Date.now() + (opts.ttlMs ?? HOUR));
    const notBefore = new Date(Math.min(Date.now() - CLOCK_SKEW_MS, notAfter.getTime() - HOUR));
    const subject: x509.JsonName = [{ CN: [opts.user] }, ...roles.map((r) => ({ O: [r] }))];
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject,
      issuer: ca.cert.subject,
      notBefore,
      notAfter,
      signingKey: ca.keys.privateKey,
      publicKey: new x509.PublicKey(
        new Uint8Array(pair.publicKey.export({ format: "der", type: "spki" })),
      ),
      signingAlgorithm: EC_ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
          true,
        ),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
        await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
      ],
    });
    const certBlob = signSshCertificate({
      publicKey: pair.publicKey,
      caKey: foreign ? this.#sshForeignCa.privateKey : this.#sshUserCa.privateKey,
      type: "user",
      keyId: opts.user,
      principals: [opts.user],
      validAfter: notBefore,
      validBefore: notAfter,
      extensions: {
        "permit-agent-forwarding": "",
        "permit-port-forwarding": "",
        "permit-pty": "",
        "teleport-roles": JSON.stringify({ version: "v1", roles }),
      },
    });
    return {
      keyPem: exportKeyPem(pair.privateKey, keyType),
      certPem: cert.toString("pem") + "\n",
      sshCert: sshAuthorizedKey(certBlob),
      sshKeyPem: exportSshKeyPem(pair.privateKey, keyType),
      notAfter,
    };
  }

  /** The text of an identity file for `user` (see {@link writeIdentityFile}). */
  identityFileText(user: IssuedUser, extraCaPems: string[] = []): string {
    return [
      user.keyPem,
      user.sshCert,
      user.certPem,
      this.certAuthorityLine(),
      this.hostCaPem,
      ...extraCaPems,
    ].map(withNewline).join("");
  }

  /**
   * Writes an identity file exactly like `tctl auth sign --format=file` (key PEM, SSH cert line,
   * TLS cert PEM, `@cert-authority` line, host CA TLS PEM(s)) with mode 0600. Returns the path.
   */
  async writeIdentityFile(
    path: string,
    opts: IssueUserOptions,
  ): Promise<string> {
    const user = await this.issueUser(opts);
    await Deno.writeTextFile(path, this.identityFileText(user, opts.extraCaPems), { mode: 0o600 });
    await Deno.chmod(path, 0o600);
    return path;
  }

  /** Writes the `--format=tls` triple into `dir`: `auth.key`, `auth.crt`, `auth.cas`. */
  async writeTlsFiles(
    dir: string,
    opts: IssueUserOptions,
  ): Promise<{ key: string; crt: string; cas: string }> {
    const user = await this.issueUser(opts);
    const key = `${dir}/auth.key`, crt = `${dir}/auth.crt`, cas = `${dir}/auth.cas`;
    await Deno.writeTextFile(key, user.keyPem, { mode: 0o600 });
    await Deno.writeTextFile(crt, user.certPem);
    await Deno.writeTextFile(cas, [this.hostCaPem, ...(opts.extraCaPems ?? [])].join(""));
    return { key, crt, cas };
  }

  /**
   * Verifies a client certificate (DER or PEM) against the user CA and its validity period.
   * Returns the Teleport user (CN) and roles (O), or `{ error }` with the reason.
   */
  verifyClientCert(
    cert: Uint8Array | string,
  ): { user: string; roles: string[] } | { error: string } {
    let c: crypto.X509Certificate;
    try {
      c = new crypto.X509Certificate(typeof cert === "string" ? cert : Buffer.from(cert));
    } catch (e) {
      return { error: `unparsable certificate: ${(e as Error).message}` };
    }
    if (!c.checkIssued(this.#userCaX509) || !c.verify(this.#userCaX509.publicKey)) {
      return { error: "certificate is not signed by the user CA" };
    }
    const now = Date.now();
    if (now < new Date(c.validFrom).getTime()) return { error: "certificate is not yet valid" };
    if (now > new Date(c.validTo).getTime()) return { error: "certificate has expired" };
    const parsed = new x509.X509Certificate(new Uint8Array(c.raw));
    const user = parsed.subjectName.getField("CN")[0];
    if (!user) return { error: "certificate has no common name" };
    return { user, roles: parsed.subjectName.getField("O") };
  }

  /**
   * Verifies an OpenSSH user certificate (blob or line) against the SSH user CA: signature,
   * type user, validity window, and (when given) that `principal` is listed. Returns the user
   * (`principals[0]` or key id) and roles from `teleport-roles`, or `{ error }`.
   */
  verifySshUserCert(
    cert: Uint8Array | string,
    opts: { principal?: string } = {},
  ): { user: string; roles: string[]; cert: SshCertificate } | { error: string } {
    let c: SshCertificate;
    try {
      c = parseSshCertificate(cert);
    } catch (e) {
      return { error: (e as Error).message };
    }
    const caBlob = sshPublicKeyBlob(this.#sshUserCa.publicKey);
    if (!Buffer.from(c.signatureKey).equals(caBlob)) {
      return { error: "certificate is not signed by the SSH user CA" };
    }
    if (!verifySshCertificateSignature(c)) return { error: "bad certificate signature" };
    if (c.type !== 1) return { error: "not a user certificate" };
    const now = BigInt(Math.floor(Date.now() / 1000));
    if (now < c.validAfter) return { error: "certificate is not yet valid" };
    if (now >= c.validBefore) return { error: "certificate has expired" };
    if (opts.principal !== undefined && !c.principals.includes(opts.principal)) {
      return { error: `principal "${opts.principal}" is not in the certificate` };
    }
    let roles: string[] = [];
    try {
      roles = JSON.parse(c.extensions["teleport-roles"] ?? "{}").roles ?? [];
    } catch {
      return { error: "bad teleport-roles extension" };
    }
    return { user: c.principals[0] ?? c.keyId, roles, cert: c };
  }

  /**
   * An Ed25519 SSH host key and host certificate signed by the SSH host CA (key id =
   * first principal), valid for `ttlMs` (default 1h) unless `notAfter` is given.
   */
  issueSshHostCert(
    opts: {
      principals: string[];
      ttlMs?: number;
      notAfter?: Date;
      signedBy?: "host-ca" | "foreign";
    },
  ): IssuedSshHost {
    const pair = crypto.generateKeyPairSync("ed25519");
    const notAfter = opts.notAfter ?? new Date(Date.now() + (opts.ttlMs ?? HOUR));
    const certBlob = signSshCertificate({
      publicKey: pair.publicKey,
      caKey: opts.signedBy === "foreign"
        ? this.#sshForeignCa.privateKey
        : this.#sshHostCa.privateKey,
      type: "host",
      keyId: opts.principals[0] ?? "",
      principals: opts.principals,
      validAfter: new Date(Math.min(Date.now() - CLOCK_SKEW_MS, notAfter.getTime() - HOUR)),
      validBefore: notAfter,
    });
    return {
      keyPem: openSshEd25519PrivateKeyPem(pair.privateKey),
      publicKey: sshAuthorizedKey(sshPublicKeyBlob(pair.publicKey)),
      cert: sshAuthorizedKey(certBlob),
      certBlob: new Uint8Array(certBlob),
    };
  }
}
