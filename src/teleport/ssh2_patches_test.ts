import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import crypto from "node:crypto";
import type { AddressInfo } from "node:net";
import ssh2Esm from "ssh2";
import { TeleportError } from "../errors.ts";
import { bounded } from "../../tests/helpers/bounded.ts";
import { startTunnelServer } from "../../tests/helpers/tunnel_server.ts";
import {
  acceptCustomChannels,
  ChannelOpenError,
  HOST_CERT_ALGORITHMS,
  installSsh2Patches,
  missingSsh2Internals,
  openSshChannel,
  parseSsh2PrivateKey,
  sendChannelRequest,
  SSH2_PINNED_VERSION,
  ssh2Module,
  sshCertificateAuthKey,
  sshCertificateHostKeys,
} from "./ssh2_patches.ts";
import {
  checkSshCertificate,
  parseAuthorizedKey,
  parseSshCertificate,
  sshBlobType,
  verifySshSignature,
} from "./ssh_cert.ts";
import {
  signSshCertificate,
  sshAuthorizedKey,
  sshPublicKeyBlob,
  TestCertificateAuthority,
} from "../../tests/helpers/ca.ts";

Deno.test("ssh2 internals used by the patches are all present (ssh2 pinned)", () => {
  // If this fails after an ssh2 upgrade, re-check ssh2_patches.ts against the new internals.
  assert.deepEqual(missingSsh2Internals(), []);
  installSsh2Patches();
  installSsh2Patches(); // idempotent
  assert.deepEqual(missingSsh2Internals(), []);
  assert.equal(
    ssh2Module().Client,
    ssh2Esm.Client,
    "createRequire and import must share one ssh2 instance",
  );
  assert.equal(SSH2_PINNED_VERSION, "1.17.0");
});

Deno.test("parseSsh2PrivateKey() reads PKCS#8, PKCS#1 and SEC1 keys without leaking them in errors", () => {
  for (
    const [type, opts] of [["ed25519", {}], ["ec", { namedCurve: "P-256" }], ["rsa", {
      modulusLength: 2048,
    }]] as const
  ) {
    const { privateKey } = crypto.generateKeyPairSync(type as "ec", opts as { namedCurve: string });
    const pem = privateKey.export({ format: "pem", type: "pkcs8" }).toString();
    const key = parseSsh2PrivateKey(pem);
    assert.equal(key.isPrivateKey(), true);
    assert.deepEqual(
      Buffer.from(key.getPublicSSH()),
      sshPublicKeyBlob(crypto.createPublicKey(privateKey)),
    );
  }
  assert.throws(
    () => parseSsh2PrivateKey("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
    (e) =>
      e instanceof TeleportError && /^Cannot read the SSH private key/.test(e.message) &&
      !/AAAA/.test(e.message),
  );
});

interface Fixture {
  port: number;
  hostCa: Uint8Array;
  userCa: Uint8Array;
  requests: string[];
  close(): Promise<void>;
}

/** An ssh2 server presenting `hostKeys`, accepting user certs of `userCa` and echoing "teleport-transport" channels. */
async function startServer(
  hostKeys: unknown[],
  userCa: Uint8Array,
  hostCa: Uint8Array,
): Promise<Fixture> {
  const requests: string[] = [];
  const conns = new Set<{ end(): void }>();
  const server = new (ssh2Module().Server)({ hostKeys: hostKeys as Buffer[] }, (conn) => {
    conns.add(conn);
    conn.on("close", () => conns.delete(conn));
    conn.on("error", () => {});
    acceptCustomChannels(conn, ["teleport-transport"], (open) => {
      const ch = open.accept();
      ch.stderr.write(" ");
      ch.on(
        "channel-request",
        (req: { type: string; data: Uint8Array; reply(ok: boolean): void }) => {
          requests.push(`${req.type} ${Buffer.from(req.data).toString()}`);
          const ok = JSON.parse(Buffer.from(req.data).toString()).address === "@remote-auth-server";
          if (!ok) ch.stderr.write("connection rejected: nope");
          req.reply(ok);
          if (!ok) ch.close();
          else ch.pipe(ch); // echo
        },
      );
    });
    conn.on("authentication", (ctx) => {
      if (ctx.method !== "publickey") return ctx.reject(["publickey"]);
      let cert;
      try {
        cert = parseSshCertificate(ctx.key.data);
      } catch {
        return ctx.reject(["publickey"]);
      }
      if (
        checkSshCertificate(cert, { type: "user", authorities: [userCa], principal: ctx.username })
      ) {
        return ctx.reject(["publickey"]);
      }
      if (!ctx.signature) return ctx.accept();
      const sigOk = verifySshSignature(cert.publicKey, ctx.signature, ctx.blob!);
      return sigOk ? ctx.accept() : ctx.reject(["publickey"]);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    hostCa,
    userCa,
    requests,
    close: async () => {
      for (const c of conns) c.end();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

function connect(
  f: Fixture,
  key: unknown,
  username: string,
): Promise<{ client: import("ssh2").Client; hostKeyType: string }> {
  return new Promise((resolve, reject) => {
    const client = new (ssh2Module().Client)();
    let hostKeyType = "";
    client.on("ready", () => resolve({ client, hostKeyType }));
    client.on("error", reject);
    client.connect({
      host: "127.0.0.1",
      port: f.port,
      username,
      readyTimeout: 10_000,
      algorithms: { serverHostKey: [...HOST_CERT_ALGORITHMS] as never },
      hostVerifier: (blob: Buffer) => {
        hostKeyType = sshBlobType(blob);
        const cert = parseSshCertificate(blob);
        return checkSshCertificate(cert, {
          type: "host",
          authorities: [f.hostCa],
          principal: "127.0.0.1",
        }) ===
          undefined;
      },
      authHandler: [{ type: "publickey", username, key }] as never,
    });
  });
}

async function roundTrip(client: import("ssh2").Client): Promise<string> {
  const ch = await openSshChannel(client, "teleport-transport");
  const ok = await sendChannelRequest(
    ch,
    "teleport-transport-dial",
    Buffer.from(JSON.stringify({ address: "@remote-auth-server", conn_type: "node" })),
  );
  assert.equal(ok, true);
  ch.stderr.resume();
  const got = new Promise<string>((resolve) => {
    let buf = "";
    ch.on("data", (d: Buffer) => {
      buf += d.toString();
      if (buf.length >= 5) resolve(buf);
    });
  });
  ch.write("hello");
  const s = await bounded(got, "the echo");
  ch.close();
  return s;
}

for (const keyType of ["ed25519", "ec", "rsa"] as const) {
  Deno.test(`ssh2 patches: ${keyType} user certificate auth, ${keyType} host certificate, custom channel`, async () => {
    const ca = await TestCertificateAuthority.create();
    const hostCaKey = crypto.generateKeyPairSync("ed25519");
    const hostPair = keyType === "ed25519"
      ? crypto.generateKeyPairSync("ed25519")
      : keyType === "ec"
      ? crypto.generateKeyPairSync("ec", { namedCurve: "P-256" })
      : crypto.generateKeyPairSync("rsa", { modulusLength: 2048 });
    const hostCert = signSshCertificate({
      publicKey: hostPair.publicKey,
      caKey: hostCaKey.privateKey,
      type: "host",
      keyId: "proxy",
      principals: ["127.0.0.1"],
      validAfter: new Date(Date.now() - 60_000),
      validBefore: new Date(Date.now() + 3_600_000),
    });
    const hostKeys = sshCertificateHostKeys(
      hostPair.privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
      sshAuthorizedKey(hostCert),
    );
    const f = await startServer(
      hostKeys,
      parseAuthorizedKey(ca.sshUserCaPublicKey).blob,
      sshPublicKeyBlob(hostCaKey.publicKey),
    );
    try {
      const user = await ca.issueUser({ user: "bot", roles: ["r"], keyType });
      const { client, hostKeyType } = await connect(
        f,
        sshCertificateAuthKey(user.keyPem, user.sshCert),
        "bot",
      );
      try {
        assert.equal(hostKeyType, parseSshCertificate(hostCert).certType);
        assert.equal(await roundTrip(client), "hello");
        assert.deepEqual(f.requests, [
          'teleport-transport-dial {"address":"@remote-auth-server","conn_type":"node"}',
        ]);
        // A refused request: reply false, text on stderr.
        const ch = await openSshChannel(client, "teleport-transport");
        const stderr: Buffer[] = [];
        ch.stderr.on("data", (d: Buffer) => stderr.push(d));
        const closed = new Promise((r) => ch.once("close", r));
        ch.resume();
        assert.equal(
          await sendChannelRequest(
            ch,
            "teleport-transport-dial",
            Buffer.from('{"address":"10.0.0.1:22"}'),
          ),
          false,
        );
        await bounded(closed, "the refused channel closes");
        assert.equal(Buffer.concat(stderr).toString().trim(), "connection rejected: nope");
        // An unknown channel type is refused with reason 3.
        await assert.rejects(
          openSshChannel(client, "no-such-type"),
          (e: Error & { reason?: number }) => e.reason === 3,
        );
      } finally {
        client.end();
      }
    } finally {
      await f.close();
    }
  });
}

Deno.test("ssh2 patches: a host key that is not a certificate is refused by a certificate-only client", async () => {
  const ca = await TestCertificateAuthority.create();
  const plain = crypto.generateKeyPairSync("ed25519");
  const f = await startServer(
    [{
      key: parseSsh2PrivateKey(
        plain.privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
      ),
    }],
    parseAuthorizedKey(ca.sshUserCaPublicKey).blob,
    parseAuthorizedKey(ca.sshHostCaPublicKey).blob,
  );
  try {
    const user = await ca.issueUser({ user: "bot", keyType: "ed25519" });
    await assert.rejects(
      connect(f, sshCertificateAuthKey(user.keyPem, user.sshCert), "bot"),
      /no matching host key format/,
    );
  } finally {
    await f.close();
  }
});

Deno.test("sshCertificateAuthKey() refuses a certificate for another key", async () => {
  const ca = await TestCertificateAuthority.create();
  const a = await ca.issueUser({ user: "a", keyType: "ed25519" });
  const b = await ca.issueUser({ user: "b", keyType: "ed25519" });
  assert.throws(
    () => sshCertificateAuthKey(a.keyPem, b.sshCert),
    (e) =>
      e instanceof TeleportError &&
      e.message === "The SSH certificate does not match the private key of the identity",
  );
  assert.equal(sshBlobType(parseAuthorizedKey(a.sshCert).blob), "ssh-ed25519-cert-v01@openssh.com");
});

Deno.test("openSshChannel() reports a refused channel with its reason and description", async () => {
  const ca = await TestCertificateAuthority.create();
  const tunnel = await startTunnelServer({ ca, authAddr: "127.0.0.1:9" });
  try {
    const user = await ca.issueUser({ user: "bot", roles: ["r"], keyType: "ed25519" });
    const f = {
      port: Number(tunnel.addr.split(":")[1]),
      hostCa: parseAuthorizedKey(ca.sshHostCaPublicKey).blob,
    } as Fixture;
    const { client } = await connect(f, sshCertificateAuthKey(user.keyPem, user.sshCert), "bot");
    try {
      await assert.rejects(openSshChannel(client, "session"), (e) => {
        assert.ok(e instanceof ChannelOpenError);
        assert.equal(e.reason, 2);
        assert.equal(
          e.description,
          "Cannot open new SSH session on reverse tunnel. Are you connecting to the right port?",
        );
        return true;
      });
    } finally {
      client.end();
    }
  } finally {
    await tunnel.close();
  }
});
