/**
 * Interop of the ssh2 patches with a real OpenSSH server (`sshd` as a child process on
 * 127.0.0.1): host certificates presented by sshd (`HostCertificate`) checked and signature-
 * verified by the patched client, user certificates accepted by sshd (`TrustedUserCAKeys`), and
 * the raw channel helpers. Ignored (with the reason in the name) when `/usr/sbin/sshd` or its
 * privilege separation directory `/run/sshd` is missing, or when not running as root (sshd then
 * cannot log in as "root").
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import crypto from "node:crypto";
import net from "node:net";
import {
  ChannelOpenError,
  HOST_CERT_ALGORITHMS,
  openSshChannel,
  sendChannelRequest,
  ssh2Module,
  sshCertificateAuthKey,
} from "./ssh2_patches.ts";
import { checkSshCertificate, parseSshCertificate, sshBlobType } from "./ssh_cert.ts";
import { openSshEd25519PrivateKeyPem } from "./ssh_wire.ts";
import {
  signSshCertificate,
  sshAuthorizedKey,
  sshPublicKeyBlob,
  TestCertificateAuthority,
} from "../../tests/helpers/ca.ts";

const SSHD = "/usr/sbin/sshd";
const UNAVAILABLE = (() => {
  try {
    Deno.statSync(SSHD);
  } catch {
    return "sshd is not installed";
  }
  try {
    Deno.statSync("/run/sshd");
  } catch {
    return "/run/sshd is missing";
  }
  try {
    if (Deno.uid() !== 0) return "not running as root";
  } catch {
    return "cannot tell the user id";
  }
  return undefined;
})();
const SUFFIX = UNAVAILABLE ? ` (ignored: ${UNAVAILABLE})` : "";

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

type KeyType = "ed25519" | "ec" | "rsa";

function genKey(t: KeyType): crypto.KeyPairKeyObjectResult {
  return t === "ed25519"
    ? crypto.generateKeyPairSync("ed25519")
    : t === "ec"
    ? crypto.generateKeyPairSync("ec", { namedCurve: "P-256" })
    : crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
}

/** Runs sshd with a host certificate of `hostKeyType` signed by `hostCa`, trusting the CA's user CA. */
async function startSshd(ca: TestCertificateAuthority, hostKeyType: KeyType) {
  const dir = await Deno.makeTempDir();
  const hostCa = crypto.generateKeyPairSync("ed25519");
  const host = genKey(hostKeyType);
  const cert = signSshCertificate({
    publicKey: host.publicKey,
    caKey: hostCa.privateKey,
    type: "host",
    keyId: "sshd",
    principals: ["127.0.0.1"],
    validAfter: new Date(Date.now() - 60_000),
    validBefore: new Date(Date.now() + 3_600_000),
  });
  const keyPem = hostKeyType === "ed25519"
    ? openSshEd25519PrivateKeyPem(host.privateKey)
    : host.privateKey.export({ format: "pem", type: hostKeyType === "ec" ? "sec1" : "pkcs1" })
      .toString();
  await Deno.writeTextFile(`${dir}/host_key`, keyPem, { mode: 0o600 });
  await Deno.writeTextFile(`${dir}/host_key-cert.pub`, sshAuthorizedKey(cert) + "\n");
  await Deno.writeTextFile(`${dir}/user_ca.pub`, ca.sshUserCaPublicKey + "\n");
  const port = await freePort();
  await Deno.writeTextFile(
    `${dir}/sshd_config`,
    [
      `ListenAddress 127.0.0.1:${port}`,
      `HostKey ${dir}/host_key`,
      `HostCertificate ${dir}/host_key-cert.pub`,
      `TrustedUserCAKeys ${dir}/user_ca.pub`,
      "AuthorizedKeysFile none",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PermitRootLogin prohibit-password",
      "UsePAM no",
      "StrictModes no",
      `PidFile ${dir}/sshd.pid`,
      "LogLevel VERBOSE",
      "",
    ].join("\n"),
  );
  const child = new Deno.Command(SSHD, {
    args: ["-D", "-e", "-f", `${dir}/sshd_config`],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const log: string[] = [];
  const decoder = new TextDecoder();
  const logDone = (async () => {
    for await (const chunk of child.stderr) log.push(decoder.decode(chunk));
  })();
  // Wait (bounded) until it listens.
  let up = false;
  for (let i = 0; i < 100 && !up; i++) {
    up = await new Promise<boolean>((resolve) => {
      const s = net.connect({ host: "127.0.0.1", port }, () => {
        s.destroy();
        resolve(true);
      });
      s.once("error", () => resolve(false));
    });
    if (!up) await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(up, `sshd did not start: ${log.join("")}`);
  return {
    port,
    hostCa: sshPublicKeyBlob(hostCa.publicKey),
    certType: parseSshCertificate(cert).certType,
    log,
    async close() {
      try {
        child.kill("SIGTERM");
      } catch { /* exited */ }
      await child.status;
      await logDone;
      await Deno.remove(dir, { recursive: true });
    },
  };
}

function connect(port: number, hostCa: Uint8Array, key: unknown, username: string) {
  return new Promise<{ client: import("ssh2").Client; hostKeyType: string }>((resolve, reject) => {
    const client = new (ssh2Module().Client)();
    let hostKeyType = "";
    client.once("ready", () => resolve({ client, hostKeyType }));
    client.once("error", reject);
    client.connect({
      host: "127.0.0.1",
      port,
      username,
      readyTimeout: 10_000,
      algorithms: { serverHostKey: [...HOST_CERT_ALGORITHMS] as never },
      hostVerifier: (blob: Buffer) => {
        hostKeyType = sshBlobType(blob);
        return checkSshCertificate(parseSshCertificate(blob), {
          type: "host",
          authorities: [hostCa],
          principal: "127.0.0.1",
        }) === undefined;
      },
      authHandler: [{ type: "publickey", username, key }] as never,
    });
  });
}

for (const keyType of ["ed25519", "ec", "rsa"] as const) {
  Deno.test({
    name:
      `OpenSSH sshd accepts a ${keyType} user certificate and its ${keyType} host certificate verifies${SUFFIX}`,
    ignore: UNAVAILABLE !== undefined,
    async fn() {
      const ca = await TestCertificateAuthority.create();
      const sshd = await startSshd(ca, keyType);
      try {
        const user = await ca.issueUser({ user: "root", roles: ["r"], keyType });
        const { client, hostKeyType } = await connect(
          sshd.port,
          sshd.hostCa,
          sshCertificateAuthKey(user.keyPem, user.sshCert),
          "root",
        );
        try {
          // RSA host certificates are negotiated with SHA-2 signatures.
          assert.equal(
            hostKeyType,
            keyType === "rsa" ? "ssh-rsa-cert-v01@openssh.com" : sshd.certType,
          );
          // sshd refuses an unknown channel type: reason 2 (connect failed), "open failed".
          await assert.rejects(
            openSshChannel(client, "teleport-transport"),
            (e) =>
              e instanceof ChannelOpenError && e.reason === 2 && e.description === "open failed",
          );
          // A raw session channel plus a raw "exec" request with its reply.
          const ch = await openSshChannel(client, "session");
          const out: Buffer[] = [];
          ch.on("data", (d: Buffer) => out.push(d));
          const closed = new Promise((r) => ch.once("close", r));
          const cmd = Buffer.from("echo tunnel-ok");
          const len = Buffer.alloc(4);
          len.writeUInt32BE(cmd.length);
          assert.equal(await sendChannelRequest(ch, "exec", Buffer.concat([len, cmd])), true);
          let timer: ReturnType<typeof setTimeout> | undefined;
          await Promise.race([
            closed,
            new Promise((_, reject) => {
              timer = setTimeout(() => reject(new Error("exec did not finish")), 10_000);
            }),
          ]).finally(() => clearTimeout(timer));
          assert.equal(Buffer.concat(out).toString(), "tunnel-ok\n");
        } finally {
          client.end();
        }
        const log = sshd.log.join("");
        assert.match(
          log,
          /Accepted publickey for root from 127\.0\.0\.1 .* (ED25519|ECDSA|RSA)-CERT/,
        );
      } finally {
        await sshd.close();
      }
    },
  });
}
