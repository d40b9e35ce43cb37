import assert from "node:assert/strict";
import crypto from "node:crypto";
import { Buffer } from "node:buffer";
import { ConfigError } from "../errors.ts";
import {
  sshAuthorizedKey,
  sshPublicKeyBlob,
  TestCertificateAuthority,
} from "../../tests/helpers/ca.ts";
import {
  parseIdentityFile,
  parsePrivateKeyPem,
  readIdentityFile,
  readTlsFiles,
  splitIdentityFile,
} from "./identity.ts";

const ca = await TestCertificateAuthority.create({ clusterName: "id.test" });

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "identity_test" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function rejectsConfig(p: Promise<unknown>, key: string, fragment: string | RegExp) {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    assert.equal(err.key, key);
    if (typeof fragment === "string") assert.ok(err.message.includes(fragment), err.message);
    else assert.match(err.message, fragment);
    assert.doesNotMatch(err.message, /BEGIN|PRIVATE KEY-----|[A-Za-z0-9+/]{60}/);
    return true;
  });
}

Deno.test("readIdentityFile() reads identity files of every key type", async () => {
  await withDir(async (dir) => {
    for (const keyType of ["rsa", "ec", "ec-sec1", "ed25519"] as const) {
      const path = await ca.writeIdentityFile(`${dir}/id-${keyType}`, {
        user: "email-plugin",
        roles: ["access-plugin", "viewer"],
        keyType,
        extraCaPems: [ca.userCaPem],
      });
      const id = await readIdentityFile(path);
      assert.equal(id.user, "email-plugin");
      assert.deepEqual(id.roles, ["access-plugin", "viewer"]);
      assert.equal(id.source, path);
      assert.deepEqual(id.caPems, [ca.hostCaPem, ca.userCaPem]);
      assert.match(id.sshCert ?? "", /-cert-v01@openssh\.com /);
      assert.deepEqual(id.sshCertAuthorities, [ca.certAuthorityLine()]);
      assert.match(id.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
      assert.ok(new crypto.X509Certificate(id.certPem).checkPrivateKey(id.privateKey));
      assert.ok(id.notAfter.getTime() > Date.now() + 50 * 60_000);
      assert.ok(id.notBefore.getTime() < Date.now());
    }
  });
});

Deno.test("readIdentityFile() reads an expired certificate and reports its end of validity", async () => {
  await withDir(async (dir) => {
    const path = await ca.writeIdentityFile(`${dir}/id`, {
      user: "bot",
      notAfter: new Date(Date.now() - 60_000),
    });
    const id = await readIdentityFile(path);
    assert.ok(id.notAfter.getTime() < Date.now());
  });
});

Deno.test("parsePrivateKeyPem() ignores the header and tries PKCS#8, PKCS#1 and SEC1", async () => {
  const rsa = await ca.issueUser({ user: "a", keyType: "rsa" });
  const sec1 = await ca.issueUser({ user: "a", keyType: "ec-sec1" });
  const swap = (pem: string, label: string) =>
    pem.replace(/-----(BEGIN|END) [A-Z ]+-----/g, `-----$1 ${label}-----`);
  assert.equal(parsePrivateKeyPem(swap(rsa.keyPem, "PRIVATE KEY"))?.asymmetricKeyType, "rsa");
  assert.equal(parsePrivateKeyPem(swap(sec1.keyPem, "RSA PRIVATE KEY"))?.asymmetricKeyType, "ec");
  assert.equal(
    parsePrivateKeyPem(swap(sec1.keyPem, "OPENSSH PRIVATE KEY"))?.asymmetricKeyType,
    "ec",
  );
  assert.equal(
    parsePrivateKeyPem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
    undefined,
  );
});

Deno.test("splitIdentityFile() assigns PEM blocks by position and keeps the last SSH cert line", () => {
  const text = [
    "  -----BEGIN PRIVATE KEY-----  ",
    "AAAA",
    "-----END PRIVATE KEY-----",
    "ssh-ed25519-cert-v01@openssh.com AAAAfirst",
    "",
    "some junk line",
    "-----BEGIN CERTIFICATE-----",
    "BBBB",
    "-----END CERTIFICATE-----",
    "@cert-authority a,*.a ssh-ed25519 CCCC type=host",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com AAAAsecond comment",
    "-----BEGIN CERTIFICATE-----",
    "DDDD",
    "-----END CERTIFICATE-----",
    "-----BEGIN CERTIFICATE-----",
    "EEEE",
    "-----END CERTIFICATE-----",
  ].join("\r\n");
  const p = splitIdentityFile(text.replace(/\r\n/g, "\n"));
  assert.equal(p.privateKey, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n");
  assert.equal(p.tlsCert, "-----BEGIN CERTIFICATE-----\nBBBB\n-----END CERTIFICATE-----\n");
  assert.equal(p.tlsCas.length, 2);
  assert.match(p.tlsCas[1], /EEEE/);
  assert.equal(p.sshCert, "ecdsa-sha2-nistp256-cert-v01@openssh.com AAAAsecond comment");
  assert.deepEqual(p.sshCas, ["@cert-authority a,*.a ssh-ed25519 CCCC type=host"]);
  assert.throws(
    () => splitIdentityFile("-----BEGIN CERTIFICATE-----\nAAAA\n"),
    /PEM block "CERTIFICATE" is not closed/,
  );
});

Deno.test("readIdentityFile() rejects malformed identity files with a clear message", async () => {
  const u = await ca.issueUser({ user: "bot", keyType: "ec" });
  const other = await ca.issueUser({ user: "bot", keyType: "ec" });
  const caLine = ca.certAuthorityLine();
  await withDir(async (dir) => {
    const cases: [string, string, string | RegExp][] = [
      [
        "no-ssh",
        [u.keyPem, u.certPem, caLine, ca.hostCaPem].join(""),
        "no SSH certificate line found",
      ],
      [
        "open-block",
        [
          u.keyPem,
          u.sshCert + "\n",
          u.certPem,
          caLine + "\n",
          ca.hostCaPem.split("\n").slice(0, 3).join("\n"),
        ]
          .join(""),
        'PEM block "CERTIFICATE" is not closed',
      ],
      [
        "bad-key",
        [
          "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
          u.sshCert + "\n",
          u.certPem,
          ca.hostCaPem,
        ]
          .join(""),
        "private key is not PKCS#8, PKCS#1 or SEC1",
      ],
      [
        "mismatch",
        [other.keyPem, u.sshCert + "\n", u.certPem, ca.hostCaPem].join(""),
        "private key does not match the TLS certificate",
      ],
      [
        "no-cas",
        [u.keyPem, u.sshCert + "\n", u.certPem].join(""),
        "no trusted TLS CA certificates found",
      ],
      ["no-cert", [u.keyPem, u.sshCert + "\n"].join(""), "no TLS certificate found"],
      ["empty", "", "no SSH certificate line found"],
      [
        "cert-garbage",
        [
          u.keyPem,
          u.sshCert + "\n",
          "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
          ca.hostCaPem,
        ]
          .join(""),
        "TLS certificate cannot be parsed",
      ],
    ];
    for (const [name, text, fragment] of cases) {
      const path = `${dir}/${name}`;
      await Deno.writeTextFile(path, text);
      await rejectsConfig(
        readIdentityFile(path),
        "teleport.identity",
        `Cannot read identity file "${path}": `,
      );
      await rejectsConfig(readIdentityFile(path), "teleport.identity", fragment);
    }
    await rejectsConfig(
      readIdentityFile(`${dir}/missing`),
      "teleport.identity",
      /"[^"]+\/missing": file not found/,
    );
  });
});

Deno.test("readIdentityFile() falls back to <path>-cert.pub for the SSH certificate", async () => {
  const u = await ca.issueUser({ user: "bot", keyType: "ed25519" });
  await withDir(async (dir) => {
    const path = `${dir}/identity`;
    await Deno.writeTextFile(path, [u.keyPem, u.certPem, ca.hostCaPem].join(""));
    await Deno.writeTextFile(`${path}-cert.pub`, u.sshCert + " bot@host\n");
    const id = await readIdentityFile(path);
    assert.equal(id.sshCert, u.sshCert + " bot@host");
    assert.equal(id.sshCertAuthorities.length, 0);
  });
});

Deno.test("readTlsFiles() reads the client_key, client_crt, root_cas triple", async () => {
  await withDir(async (dir) => {
    const f = await ca.writeTlsFiles(dir, { user: "plugin", roles: ["r"], keyType: "rsa" });
    const id = await readTlsFiles({ clientKey: f.key, clientCrt: f.crt, rootCas: f.cas });
    assert.equal(id.user, "plugin");
    assert.deepEqual(id.roles, ["r"]);
    assert.deepEqual(id.caPems, [ca.hostCaPem]);
    assert.equal(id.sshCert, undefined);
    await rejectsConfig(
      readTlsFiles({ clientKey: f.key, clientCrt: f.crt, rootCas: `${dir}/nope` }),
      "teleport.root_cas",
      "file not found",
    );
    const other = await ca.issueUser({ user: "x", keyType: "ec" });
    await Deno.writeTextFile(`${dir}/other.key`, other.keyPem);
    await rejectsConfig(
      readTlsFiles({ clientKey: `${dir}/other.key`, clientCrt: f.crt, rootCas: f.cas }),
      "teleport.client_key",
      "private key does not match the TLS certificate",
    );
  });
});

Deno.test("parseIdentityFile() never puts key material in its errors", () => {
  assert.throws(
    () => parseIdentityFile("-----BEGIN PRIVATE KEY-----\nc2VjcmV0c2VjcmV0\n", { path: "/x" }),
    (err: unknown) => err instanceof ConfigError && !err.message.includes("c2Vj"),
  );
});

Deno.test("parsePrivateKeyPem() reads unencrypted OpenSSH keys (ed25519, ecdsa, rsa)", async () => {
  await withDir(async (dir) => {
    for (
      const [type, bits] of [["ed25519", ""], ["ecdsa", "256"], ["ecdsa", "384"], ["rsa", "2048"]]
    ) {
      const path = `${dir}/${type}${bits}`;
      const args = ["-q", "-t", type, "-N", "", "-f", path, ...(bits ? ["-b", bits] : [])];
      const gen = await new Deno.Command("ssh-keygen", { args, stdout: "null", stderr: "piped" })
        .output();
      assert.equal(gen.code, 0, new TextDecoder().decode(gen.stderr));
      const pem = await Deno.readTextFile(path);
      assert.match(pem, /^-----BEGIN OPENSSH PRIVATE KEY-----/);
      const key = parsePrivateKeyPem(pem);
      assert.ok(key, `${type}${bits} parsed`);
      const pub = (await Deno.readTextFile(`${path}.pub`)).split(" ").slice(0, 2).join(" ");
      if (type !== "ecdsa" || bits === "256") {
        assert.equal(sshAuthorizedKey(sshPublicKeyBlob(key)), pub, `${type}${bits} public key`);
      }
      // The key signs and verifies (RSA needs consistent CRT parameters).
      const alg = type === "ed25519" ? null : "sha256";
      const sig = crypto.sign(alg, Buffer.from("x"), key);
      assert.ok(crypto.verify(alg, Buffer.from("x"), crypto.createPublicKey(key), sig));
    }
    const encrypted = `${dir}/enc`;
    await new Deno.Command("ssh-keygen", {
      args: ["-q", "-t", "ed25519", "-N", "secret", "-f", encrypted],
      stdout: "null",
    }).output();
    assert.equal(parsePrivateKeyPem(await Deno.readTextFile(encrypted)), undefined);
  });
});
