import assert from "node:assert/strict";
import crypto from "node:crypto";
import { Buffer } from "node:buffer";
import ssh2 from "ssh2";
import {
  parseSshCertificate,
  sshAuthorizedKey,
  sshPublicKeyBlob,
  TestCertificateAuthority,
} from "./ca.ts";
import { verifySshCertificateSignature } from "../../src/teleport/ssh_cert.ts";

async function run(
  cmd: string,
  args: string[],
): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  return {
    code: r.code,
    out: new TextDecoder().decode(r.stdout),
    err: new TextDecoder().decode(r.stderr),
  };
}

function errorOf(r: object): string {
  return "error" in r ? String(r.error) : "(no error)";
}

function pemBlocks(text: string): string[] {
  return [...text.matchAll(/-----BEGIN [^-]+-----\n[\s\S]*?-----END [^-]+-----\n/g)].map((m) =>
    m[0]
  );
}

Deno.test("TestCertificateAuthority.writeIdentityFile() writes tctl's layout for every key type", async () => {
  const ca = await TestCertificateAuthority.create({ clusterName: "test.example" });
  const dir = await Deno.makeTempDir();
  try {
    const headers = {
      rsa: "RSA PRIVATE KEY",
      ec: "PRIVATE KEY",
      "ec-sec1": "EC PRIVATE KEY",
      ed25519: "PRIVATE KEY",
    } as const;
    for (const keyType of ["rsa", "ec", "ec-sec1", "ed25519"] as const) {
      const path = await ca.writeIdentityFile(`${dir}/id-${keyType}`, {
        user: "email-plugin",
        roles: ["access-plugin", "editor"],
        keyType,
      });
      assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
      const text = await Deno.readTextFile(path);
      const lines = text.split("\n");
      assert.equal(lines[0], `-----BEGIN ${headers[keyType]}-----`);
      const blocks = pemBlocks(text);
      assert.equal(blocks.length, 3, "key, client cert, host CA");
      // Order: key, SSH cert line, TLS cert, @cert-authority, host CA.
      const keyEnd = text.indexOf(blocks[0]) + blocks[0].length;
      const sshLine = text.slice(keyEnd).split("\n")[0];
      assert.match(sshLine, /^[a-z0-9-]+-cert-v01@openssh\.com [A-Za-z0-9+/=]+$/);
      const certStart = text.indexOf(blocks[1]);
      const caLineIdx = text.indexOf("@cert-authority ");
      assert.ok(keyEnd < certStart && certStart < caLineIdx && caLineIdx < text.indexOf(blocks[2]));
      assert.match(
        text,
        /^@cert-authority test\.example,\*\.test\.example ssh-ed25519 [A-Za-z0-9+/=]+ type=host$/m,
      );
      assert.equal(blocks[2], ca.hostCaPem);

      // openssl parses the key and the certificates.
      await Deno.writeTextFile(`${dir}/key.pem`, blocks[0]);
      await Deno.writeTextFile(`${dir}/crt.pem`, blocks[1]);
      const pkey = await run("openssl", ["pkey", "-in", `${dir}/key.pem`, "-noout"]);
      assert.equal(pkey.code, 0, pkey.err);
      const x = await run("openssl", ["x509", "-in", `${dir}/crt.pem`, "-noout", "-subject"]);
      assert.equal(x.code, 0, x.err);
      assert.match(x.out, /CN ?= ?email-plugin/);
      assert.match(x.out, /O ?= ?access-plugin/);

      // The TLS cert is issued by the user CA and belongs to the key.
      const cert = new crypto.X509Certificate(blocks[1]);
      const userCa = new crypto.X509Certificate(ca.userCaPem);
      assert.ok(cert.checkIssued(userCa));
      assert.ok(cert.verify(userCa.publicKey));
      assert.ok(cert.checkPrivateKey(crypto.createPrivateKey(blocks[0])));
      assert.ok(!cert.checkIssued(new crypto.X509Certificate(ca.hostCaPem)));

      // The SSH certificate certifies the same key and is signed by the SSH user CA.
      const sshCert = parseSshCertificate(sshLine);
      assert.deepEqual(
        Buffer.from(sshCert.publicKey),
        sshPublicKeyBlob(crypto.createPrivateKey(blocks[0])),
      );
      assert.equal(sshCert.type, 1);
      assert.deepEqual(sshCert.principals, ["email-plugin"]);
      assert.ok(verifySshCertificateSignature(sshCert));
      assert.equal(sshAuthorizedKey(sshCert.signatureKey), ca.sshUserCaPublicKey);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TestCertificateAuthority.issueUser() SSH cert and sshKeyPem are accepted by ssh-keygen and ssh2", async () => {
  const ca = await TestCertificateAuthority.create();
  const dir = await Deno.makeTempDir();
  try {
    for (const keyType of ["ed25519", "ec", "rsa"] as const) {
      const u = await ca.issueUser({ user: "bot", roles: ["r1"], keyType });
      await Deno.writeTextFile(`${dir}/k`, u.sshKeyPem, { mode: 0o600 });
      await Deno.writeTextFile(`${dir}/k-cert.pub`, u.sshCert + "\n");
      const l = await run("ssh-keygen", ["-L", "-f", `${dir}/k-cert.pub`]);
      assert.equal(l.code, 0, l.err);
      assert.match(l.out, /Type: .*user certificate/);
      assert.match(l.out, /Principals: \n\s+bot/);
      assert.match(l.out, /teleport-roles/);
      const y = await run("ssh-keygen", ["-y", "-f", `${dir}/k`]);
      assert.equal(y.code, 0, y.err);
      const certKey = sshAuthorizedKey(parseSshCertificate(u.sshCert).publicKey);
      assert.equal(y.out.trim().split(" ").slice(0, 2).join(" "), certKey);
      const parsed = ssh2.utils.parseKey(u.sshKeyPem);
      assert.ok(!(parsed instanceof Error), String(parsed));
      const ok = ca.verifySshUserCert(u.sshCert, { principal: "bot" });
      assert.ok("user" in ok, "error" in ok ? ok.error : "");
      assert.equal(ok.user, "bot");
      assert.deepEqual(ok.roles, ["r1"]);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TestCertificateAuthority.verifySshUserCert() rejects foreign, expired and wrong principal", async () => {
  const ca = await TestCertificateAuthority.create();
  const foreign = await ca.issueUser({ user: "bot", signedBy: "foreign" });
  assert.match(
    errorOf(ca.verifySshUserCert(foreign.sshCert)),
    /not signed by the SSH user CA/,
  );
  const expired = await ca.issueUser({ user: "bot", notAfter: new Date(Date.now() - 60_000) });
  assert.match(errorOf(ca.verifySshUserCert(expired.sshCert)), /expired/);
  const ok = await ca.issueUser({ user: "bot" });
  assert.match(
    errorOf(ca.verifySshUserCert(ok.sshCert, { principal: "root" })),
    /principal "root"/,
  );
});

Deno.test("TestCertificateAuthority.issueServerCert() signs the Auth cert with the host CA and SANs", async () => {
  const ca = await TestCertificateAuthority.create();
  const { keyPem, certPem } = await ca.issueServerCert();
  const cert = new crypto.X509Certificate(certPem);
  const hostCa = new crypto.X509Certificate(ca.hostCaPem);
  assert.ok(cert.checkIssued(hostCa) && cert.verify(hostCa.publicKey));
  assert.ok(cert.checkPrivateKey(crypto.createPrivateKey(keyPem)));
  assert.equal(cert.checkHost("teleport.cluster.local"), "teleport.cluster.local");
  assert.match(cert.subjectAltName ?? "", /DNS:\*\.teleport\.cluster\.local/);
  assert.equal(cert.checkIP("127.0.0.1"), "127.0.0.1");
  const web = await ca.issueServerCert({ dnsNames: ["localhost"], signedBy: "web-ca" });
  const webCert = new crypto.X509Certificate(web.certPem);
  assert.ok(!webCert.checkIssued(hostCa));
  assert.ok(webCert.verify(new crypto.X509Certificate(ca.webCaPem).publicKey));
  assert.equal(webCert.checkHost("teleport.cluster.local"), undefined);
});

Deno.test("TestCertificateAuthority.verifyClientCert() returns user and roles, rejects foreign and expired", async () => {
  const ca = await TestCertificateAuthority.create();
  const good = await ca.issueUser({ user: "alice", roles: ["editor", "requester"] });
  assert.deepEqual(ca.verifyClientCert(good.certPem), {
    user: "alice",
    roles: ["editor", "requester"],
  });
  const der = new crypto.X509Certificate(good.certPem).raw;
  assert.deepEqual(ca.verifyClientCert(new Uint8Array(der)), {
    user: "alice",
    roles: ["editor", "requester"],
  });
  const foreign = await ca.issueUser({ user: "alice", signedBy: "foreign" });
  assert.match(errorOf(ca.verifyClientCert(foreign.certPem)), /not signed by the user CA/);
  const expired = await ca.issueUser({ user: "alice", notAfter: new Date(Date.now() - 1000) });
  assert.match(errorOf(ca.verifyClientCert(expired.certPem)), /expired/);
  const other = await TestCertificateAuthority.create();
  const otherUser = await other.issueUser({ user: "alice" });
  assert.match(errorOf(ca.verifyClientCert(otherUser.certPem)), /not signed/);
});

Deno.test("TestCertificateAuthority.writeTlsFiles() writes the key, cert and host CAs", async () => {
  const ca = await TestCertificateAuthority.create();
  const dir = await Deno.makeTempDir();
  try {
    const f = await ca.writeTlsFiles(dir, { user: "bot", roles: ["a"], keyType: "rsa" });
    assert.match(await Deno.readTextFile(f.key), /^-----BEGIN RSA PRIVATE KEY-----/);
    const cert = new crypto.X509Certificate(await Deno.readTextFile(f.crt));
    assert.ok(cert.checkPrivateKey(crypto.createPrivateKey(await Deno.readTextFile(f.key))));
    assert.equal(await Deno.readTextFile(f.cas), ca.hostCaPem);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TestCertificateAuthority.issueSshHostCert() issues a host cert ssh-keygen accepts", async () => {
  const ca = await TestCertificateAuthority.create({ clusterName: "c.test" });
  const h = ca.issueSshHostCert({ principals: ["proxy.c.test", "127.0.0.1"] });
  const c = parseSshCertificate(h.certBlob);
  assert.equal(c.type, 2);
  assert.deepEqual(c.principals, ["proxy.c.test", "127.0.0.1"]);
  assert.ok(verifySshCertificateSignature(c));
  assert.equal(sshAuthorizedKey(c.signatureKey), ca.sshHostCaPublicKey);
  assert.ok(ca.certAuthorityLine().includes(ca.sshHostCaPublicKey));
  assert.equal(sshAuthorizedKey(c.publicKey), h.publicKey);
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/h-cert.pub`, h.cert + "\n");
    const l = await run("ssh-keygen", ["-L", "-f", `${dir}/h-cert.pub`]);
    assert.equal(l.code, 0, l.err);
    assert.match(l.out, /host certificate/);
    assert.ok(!(ssh2.utils.parseKey(h.keyPem) instanceof Error));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
