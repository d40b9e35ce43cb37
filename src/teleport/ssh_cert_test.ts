import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import crypto from "node:crypto";
import { TeleportError } from "../errors.ts";
import {
  checkSshCertificate,
  parseAuthorizedKey,
  parseCertAuthorityLine,
  parseSshCertificate,
  sshFingerprint,
  verifySshCertificateSignature,
  verifySshSignature,
} from "./ssh_cert.ts";
import { TestCertificateAuthority } from "../../tests/helpers/ca.ts";

const HAS_SSH_KEYGEN = (() => {
  try {
    return new Deno.Command("ssh-keygen", { args: ["-?"], stdout: "null", stderr: "null" })
      .outputSync() !== undefined;
  } catch {
    return false;
  }
})();

async function run(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("ssh-keygen", { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    throw new Error(`ssh-keygen ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Makes a CA and a key with ssh-keygen and signs a certificate; returns the parsed pieces. */
async function opensshCert(opts: {
  caType: "ed25519" | "ecdsa" | "rsa";
  keyType: "ed25519" | "ecdsa" | "rsa";
  host?: boolean;
  principals?: string;
  validity?: string;
  options?: string[];
}) {
  const dir = await Deno.makeTempDir();
  try {
    const bits = (t: string) => (t === "rsa" ? ["-b", "2048"] : t === "ecdsa" ? ["-b", "256"] : []);
    await run(["-q", "-t", opts.caType, ...bits(opts.caType), "-N", "", "-f", "ca"], dir);
    await run(["-q", "-t", opts.keyType, ...bits(opts.keyType), "-N", "", "-f", "key"], dir);
    await run([
      "-q",
      "-s",
      "ca",
      ...(opts.caType === "rsa" ? ["-t", "rsa-sha2-512"] : []),
      "-I",
      "key-id-1",
      ...(opts.host ? ["-h"] : []),
      "-n",
      opts.principals ?? "alice,bob",
      "-V",
      opts.validity ?? "-1h:+1h",
      "-z",
      "42",
      ...(opts.options ?? []).flatMap((o) => ["-O", o]),
      "key.pub",
    ], dir);
    const certLine = await Deno.readTextFile(`${dir}/key-cert.pub`);
    const caLine = await Deno.readTextFile(`${dir}/ca.pub`);
    const keyLine = await Deno.readTextFile(`${dir}/key.pub`);
    return {
      cert: parseSshCertificate(parseAuthorizedKey(certLine).blob),
      ca: parseAuthorizedKey(caLine).blob,
      key: parseAuthorizedKey(keyLine).blob,
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

for (const caType of ["ed25519", "ecdsa", "rsa"] as const) {
  for (const keyType of ["ed25519", "ecdsa", "rsa"] as const) {
    Deno.test({
      name:
        `parseSshCertificate() reads and verifies an ssh-keygen ${keyType} host cert signed by a ${caType} CA` +
        (HAS_SSH_KEYGEN ? "" : " (ignored: ssh-keygen is not installed)"),
      ignore: !HAS_SSH_KEYGEN,
      async fn() {
        const { cert, ca, key } = await opensshCert({ caType, keyType, host: true });
        assert.equal(cert.keyType, keyTypeName(keyType));
        assert.deepEqual(Buffer.from(cert.publicKey), Buffer.from(key));
        assert.deepEqual(Buffer.from(cert.signatureKey), Buffer.from(ca));
        assert.equal(cert.type, 2);
        assert.equal(cert.keyId, "key-id-1");
        assert.equal(cert.serial, 42n);
        assert.deepEqual(cert.principals, ["alice", "bob"]);
        assert.equal(verifySshCertificateSignature(cert), true);
        assert.equal(
          checkSshCertificate(cert, { type: "host", authorities: [ca], principal: "bob" }),
          undefined,
        );
        // One flipped bit in the signed part breaks the signature.
        const tampered = Buffer.from(cert.signedData);
        tampered[tampered.length - 100] ^= 1;
        assert.equal(verifySshSignature(cert.signatureKey, cert.signature, tampered), false);
      },
    });
  }
}

function keyTypeName(t: "ed25519" | "ecdsa" | "rsa"): string {
  return t === "ed25519" ? "ssh-ed25519" : t === "ecdsa" ? "ecdsa-sha2-nistp256" : "ssh-rsa";
}

Deno.test({
  name:
    "checkSshCertificate() reports expiry, not-yet-valid, principal, type and critical options" +
    (HAS_SSH_KEYGEN ? "" : " (ignored: ssh-keygen is not installed)"),
  ignore: !HAS_SSH_KEYGEN,
  async fn() {
    const expired = await opensshCert({
      caType: "ed25519",
      keyType: "ed25519",
      validity: "-2h:-1h",
    });
    assert.equal(
      checkSshCertificate(expired.cert, { type: "user", authorities: [expired.ca] }),
      "certificate has expired",
    );
    const future = await opensshCert({
      caType: "ed25519",
      keyType: "ed25519",
      validity: "+1h:+2h",
    });
    assert.equal(
      checkSshCertificate(future.cert, { type: "user", authorities: [future.ca] }),
      "certificate is not yet valid",
    );
    const user = await opensshCert({
      caType: "ecdsa",
      keyType: "ed25519",
      options: ["force-command=/bin/true"],
    });
    assert.equal(user.cert.type, 1);
    assert.deepEqual(user.cert.criticalOptions, { "force-command": "/bin/true" });
    assert.equal(
      checkSshCertificate(user.cert, { type: "user", authorities: [user.ca] }),
      'certificate has unsupported critical option "force-command"',
    );
    const opts = { authorities: [user.ca], supportedCriticalOptions: ["force-command"] };
    assert.equal(
      checkSshCertificate(user.cert, { ...opts, type: "user", principal: "alice" }),
      undefined,
    );
    assert.equal(
      checkSshCertificate(user.cert, { ...opts, type: "user", principal: "mallory" }),
      '"mallory" is not a principal of the certificate',
    );
    assert.equal(
      checkSshCertificate(user.cert, { ...opts, type: "host" }),
      "certificate is a user certificate, not a host certificate",
    );
    const other = await opensshCert({ caType: "ed25519", keyType: "ed25519" });
    assert.match(
      checkSshCertificate(user.cert, { ...opts, type: "user", authorities: [other.ca] })!,
      /^certificate is signed by an unknown authority \(SHA256:/,
    );
  },
});

Deno.test("checkSshCertificate() accepts the test CA's user and host certificates", async () => {
  const ca = await TestCertificateAuthority.create();
  const userCa = parseAuthorizedKey(ca.sshUserCaPublicKey).blob;
  const hostCa = parseCertAuthorityLine(ca.certAuthorityLine()).publicKey;
  for (const keyType of ["ed25519", "ec", "rsa"] as const) {
    const u = await ca.issueUser({ user: "bot", roles: ["r"], keyType });
    const cert = parseSshCertificate(parseAuthorizedKey(u.sshCert).blob);
    assert.equal(
      checkSshCertificate(cert, { type: "user", authorities: [userCa], principal: "bot" }),
      undefined,
    );
    assert.match(
      checkSshCertificate(cert, { type: "user", authorities: [hostCa] })!,
      /unknown authority/,
    );
  }
  const h = ca.issueSshHostCert({ principals: ["localhost", "127.0.0.1"] });
  const hc = parseSshCertificate(h.certBlob);
  assert.equal(
    checkSshCertificate(hc, { type: "host", authorities: [hostCa], principal: "127.0.0.1" }),
    undefined,
  );
  assert.equal(
    checkSshCertificate(hc, {
      type: "host",
      authorities: [hostCa],
      principal: "proxy.example.com",
    }),
    '"proxy.example.com" is not a principal of the certificate',
  );
});

Deno.test("parseCertAuthorityLine() reads an identity file's known-hosts line", async () => {
  const ca = await TestCertificateAuthority.create({ clusterName: "teleport.example.com" });
  const line = ca.certAuthorityLine();
  const parsed = parseCertAuthorityLine(line);
  assert.deepEqual(parsed.hosts, ["teleport.example.com", "*.teleport.example.com"]);
  assert.equal(parsed.keyType, "ssh-ed25519");
  assert.equal(parsed.comment, "type=host");
  assert.equal(sshFingerprint(parsed.publicKey).startsWith("SHA256:"), true);
});

Deno.test("parseCertAuthorityLine() rejects malformed lines", () => {
  const key = crypto.generateKeyPairSync("ed25519").publicKey.export({ format: "jwk" });
  const blob = Buffer.concat([
    Buffer.from([0, 0, 0, 11]),
    Buffer.from("ssh-ed25519"),
    Buffer.from([0, 0, 0, 32]),
    Buffer.from(key.x!, "base64url"),
  ]);
  const b64 = blob.toString("base64");
  assert.equal(
    parseCertAuthorityLine(`@cert-authority a,*.a ssh-ed25519 ${b64} type=host`).keyType,
    "ssh-ed25519",
  );
  assert.throws(
    () => parseCertAuthorityLine(`@cert-authority a ecdsa-sha2-nistp256 ${b64}`),
    (e) => e instanceof TeleportError && /does not match the key data/.test(e.message),
  );
  assert.throws(
    () => parseCertAuthorityLine(`ssh-ed25519 ${b64}`),
    (e) => e instanceof TeleportError && /Cannot parse @cert-authority line/.test(e.message),
  );
  assert.throws(
    () =>
      parseCertAuthorityLine(
        `@cert-authority a ssh-ed25519 ${blob.subarray(0, 20).toString("base64")}`,
      ),
    (e) => e instanceof TeleportError && e.kind === "bad_parameter",
  );
});

Deno.test("parseSshCertificate() rejects truncated and non-certificate blobs", () => {
  assert.throws(
    () => parseSshCertificate(Buffer.from([0, 0, 0, 5, 0x61])),
    (e) =>
      e instanceof TeleportError && e.message === "Cannot parse SSH certificate: truncated data",
  );
  assert.throws(
    () =>
      parseSshCertificate(Buffer.concat([Buffer.from([0, 0, 0, 11]), Buffer.from("ssh-ed25519")])),
    (e) => e instanceof TeleportError && /"ssh-ed25519" is not a certificate type/.test(e.message),
  );
});
