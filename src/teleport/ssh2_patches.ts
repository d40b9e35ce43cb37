/**
 * Patches to the internals of `ssh2@1.17.0` (pinned in deno.json) for what Teleport's SSH
 * reverse tunnel needs and ssh2 lacks:
 *
 * 1. **User-certificate auth** (client): `publickey` with a `*-cert-v01@openssh.com` key. The
 *    auth request names the certificate algorithm and carries the certificate blob, while the
 *    signature blob names the plain algorithm (`ssh-ed25519`, `ecdsa-sha2-nistp256`,
 *    `rsa-sha2-256`...), as OpenSSH and Go expect.
 * 2. **Host certificates** (client and server): the client can negotiate
 *    `*-cert-v01@openssh.com` host key algorithms (checking the certificate is the caller's
 *    `hostVerifier`'s job; ssh2 then verifies the exchange signature with the certified key),
 *    and a server can present a host certificate as its host key.
 * 3. **Custom channels** (client and server): open a channel of any type
 *    (`teleport-transport`), send a channel request (`teleport-transport-dial`) and wait for
 *    the reply; on the server side accept such channels and answer their requests.
 *
 * The patches reach into non-exported modules (`ssh2/lib/protocol/*`) and are applied by
 * {@link installSsh2Patches}, which first checks that every internal they touch still exists
 * and throws naming the missing ones otherwise. Keep the ssh2 version pinned; the tests in
 * `ssh2_patches_test.ts` fail loudly when an upgrade breaks them.
 *
 * @module
 */
import { createRequire } from "node:module";
import { Buffer } from "node:buffer";
import crypto from "node:crypto";
import type { Duplex, Readable, Writable } from "node:stream";
import { TeleportError } from "../errors.ts";
import {
  isCertificateType,
  parseAuthorizedKey,
  parseSshCertificate,
  type SshCertificate,
  sshKeysEqual,
} from "./ssh_cert.ts";
import { openSshEd25519PrivateKeyPem, sshString, sshUint32 } from "./ssh_wire.ts";

export { withSocketShims } from "./dial_net.ts";

const require = createRequire(import.meta.url);

/** The ssh2 version these patches were written and tested against. */
export const SSH2_PINNED_VERSION = "1.17.0";

// deno-lint-ignore no-explicit-any
type Any = any;

/**
 * The `ssh2` module (`Client`, `Server`, `utils`), from the same instance the patches touch,
 * with the patches installed. Loaded on first use, so a program that never uses the tunnel
 * never loads ssh2.
 */
export function ssh2Module(): typeof import("ssh2") {
  installSsh2Patches();
  return require("ssh2");
}

interface Internals {
  pkg: Any;
  Protocol: Any;
  protoUtils: Any;
  constants: Any;
  keyParser: Any;
  channel: Any;
  /** ssh2's own `authPK`, captured before patching. */
  originalAuthPK: unknown;
}

let loaded: Internals | undefined;

function internalsOf(): Internals {
  if (loaded) return loaded;
  const load = (id: string): Any => {
    try {
      return require(id);
    } catch {
      return undefined;
    }
  };
  const Protocol = load("ssh2/lib/protocol/Protocol.js");
  loaded = {
    pkg: load("ssh2/package.json"),
    Protocol,
    protoUtils: load("ssh2/lib/protocol/utils.js"),
    constants: load("ssh2/lib/protocol/constants.js"),
    keyParser: load("ssh2/lib/protocol/keyParser.js"),
    channel: load("ssh2/lib/Channel.js"),
    originalAuthPK: Protocol?.prototype?.authPK,
  };
  return loaded;
}

/** Host key algorithms for OpenSSH host certificates, in order of preference. */
export const HOST_CERT_ALGORITHMS: readonly string[] = [
  "ssh-ed25519-cert-v01@openssh.com",
  "ecdsa-sha2-nistp256-cert-v01@openssh.com",
  "ecdsa-sha2-nistp384-cert-v01@openssh.com",
  "ecdsa-sha2-nistp521-cert-v01@openssh.com",
  "rsa-sha2-512-cert-v01@openssh.com",
  "rsa-sha2-256-cert-v01@openssh.com",
];

const CERT_SUFFIX = "-cert-v01@openssh.com";
const CERT_BLOB = Symbol("teleport-email.sshCertBlob");
const SIGNING_VIEW = Symbol("teleport-email.sshSigningView");
const KEX_SLOT = Symbol("teleport-email.kex");
const KEX_PATCHED = Symbol("teleport-email.kexPatched");
const CUSTOM_CHANNELS = Symbol("teleport-email.customChannels");

/**
 * Lists the ssh2 internals the patches need that are missing (empty when all is well).
 * The version must be {@link SSH2_PINNED_VERSION}.
 */
export function missingSsh2Internals(): string[] {
  const { pkg, Protocol, protoUtils, constants, keyParser, channel, originalAuthPK } =
    internalsOf();
  const missing: string[] = [];
  const need = (ok: unknown, what: string) => {
    if (!ok) missing.push(what);
  };
  need(
    pkg?.version === SSH2_PINNED_VERSION,
    `ssh2 version ${SSH2_PINNED_VERSION} (found ${pkg?.version})`,
  );
  need(typeof Protocol?.prototype?.authPK === "function", "Protocol.prototype.authPK");
  need(
    Protocol &&
      (!Object.getOwnPropertyDescriptor(Protocol.prototype, "_kex") ||
        Protocol.prototype[KEX_PATCHED]),
    "Protocol.prototype._kex (must be a plain instance property)",
  );
  need(
    typeof originalAuthPK === "function" &&
      /this\._authsQueue\.push\('publickey'\)/.test(String(originalAuthPK)) &&
      /this\._kex\.sessionID/.test(String(originalAuthPK)),
    "Protocol.prototype.authPK internals (_authsQueue, _kex.sessionID)",
  );
  for (const m of ["channelOpenConfirm", "channelOpenFail", "channelSuccess", "channelFailure"]) {
    need(typeof Protocol?.prototype?.[m] === "function", `Protocol.prototype.${m}`);
  }
  need(typeof protoUtils?.sendPacket === "function", "protocol/utils.sendPacket");
  need(typeof protoUtils?.convertSignature === "function", "protocol/utils.convertSignature");
  need(Array.isArray(constants?.SUPPORTED_SERVER_HOST_KEY), "constants.SUPPORTED_SERVER_HOST_KEY");
  for (const m of ["USERAUTH_REQUEST", "CHANNEL_OPEN", "CHANNEL_REQUEST", "KEXDH_REPLY"]) {
    need(typeof constants?.MESSAGE?.[m] === "number", `constants.MESSAGE.${m}`);
  }
  need(typeof constants?.CHANNEL_OPEN_FAILURE === "object", "constants.CHANNEL_OPEN_FAILURE");
  need(typeof keyParser?.parseKey === "function", "keyParser.parseKey");
  need(typeof keyParser?.isParsedKey === "function", "keyParser.isParsedKey");
  need(typeof channel?.Channel === "function", "Channel.Channel");
  need(typeof channel?.MAX_WINDOW === "number", "Channel.MAX_WINDOW");
  need(typeof channel?.PACKET_SIZE === "number", "Channel.PACKET_SIZE");
  return missing;
}

/** Source fragments of the KEX `finish()` that the host-certificate patch relies on. */
const KEX_FINISH_FRAGMENTS = [
  /\? this\._hostKey\.getPublicSSH\(\)\s*: this\._hostKey\)/,
  /bufferParser\.init\(this\._hostKey, 0\)/,
  /const hostKey = this\._hostKey\.slice\(bufferParser\.pos\(\)\)/,
  /if \(sigType !== negotiated\.serverHostKey\)/,
  /const sigType = this\.negotiated\.serverHostKey;/,
];

let installed = false;

/**
 * Applies the patches (once). Safe to call many times.
 * @throws {TeleportError} kind `not_implemented` when the installed ssh2 lacks an internal.
 */
export function installSsh2Patches(): void {
  if (installed) return;
  const missing = missingSsh2Internals();
  if (missing.length > 0) {
    throw new TeleportError(
      "not_implemented",
      `Cannot use the SSH tunnel: the ssh2 package lacks internals it needs: ${missing.join(", ")}`,
      { hint: `pin ssh2 to ${SSH2_PINNED_VERSION} in deno.json` },
    );
  }
  const { Protocol, constants } = internalsOf();

  // (1) user certificate auth
  const origAuthPK = Protocol.prototype.authPK;
  Protocol.prototype.authPK = function (
    this: Any,
    username: string,
    pubKey: Any,
    keyAlgo: Any,
    cbSign: Any,
  ) {
    const certBlob: Buffer | undefined = pubKey?.[CERT_BLOB];
    if (!certBlob) return origAuthPK.call(this, username, pubKey, keyAlgo, cbSign);
    return certAuthPK(this, username, pubKey, certBlob, keyAlgo, cbSign);
  };

  // (2) host certificates: make the algorithms acceptable in `algorithms.serverHostKey`, and hook
  // every key exchange object as it is created (`protocol._kex = createKeyExchange(...)`).
  for (const alg of HOST_CERT_ALGORITHMS) {
    if (!constants.SUPPORTED_SERVER_HOST_KEY.includes(alg)) {
      constants.SUPPORTED_SERVER_HOST_KEY.push(alg);
    }
  }
  Object.defineProperty(Protocol.prototype, "_kex", {
    configurable: true,
    get(this: Any) {
      return this[KEX_SLOT];
    },
    set(this: Any, kex: Any) {
      if (kex && typeof kex === "object" && !kex[KEX_PATCHED]) patchKeyExchange(kex);
      this[KEX_SLOT] = kex;
    },
  });
  Protocol.prototype[KEX_PATCHED] = true;
  installed = true;
}

function rawSend(proto: Any, payload: Buffer): void {
  const w = proto._packetRW.write;
  const start = w.allocStart;
  const packet = w.alloc(payload.length);
  packet.set(payload, start);
  internalsOf().protoUtils.sendPacket(proto, w.finalize(packet));
}

function certAuthPK(
  proto: Any,
  username: string,
  key: Any,
  certBlob: Buffer,
  keyAlgo: Any,
  cbSign: Any,
): void {
  if (proto._server) throw new Error("Client-only method called in server mode");
  if (typeof keyAlgo === "function") {
    cbSign = keyAlgo;
    keyAlgo = undefined;
  }
  const keyType: string = key.type;
  const sigAlgo: string = keyAlgo || keyType; // "rsa-sha2-256" for RSA keys when negotiated
  const body = Buffer.concat([
    Buffer.from([internalsOf().constants.MESSAGE.USERAUTH_REQUEST]),
    sshString(username),
    sshString("ssh-connection"),
    sshString("publickey"),
    Buffer.from([cbSign ? 1 : 0]),
    sshString(sigAlgo + CERT_SUFFIX),
    sshString(certBlob),
  ]);
  if (!cbSign) {
    proto._authsQueue.push("publickey");
    rawSend(proto, body);
    return;
  }
  cbSign(Buffer.concat([sshString(proto._kex.sessionID), body]), (signature: Buffer) => {
    const sig = internalsOf().protoUtils.convertSignature(signature, keyType);
    if (sig === false || sig === undefined) {
      throw new Error("Error while converting handshake signature");
    }
    proto._authsQueue.push("publickey");
    rawSend(
      proto,
      Buffer.concat([body, sshString(Buffer.concat([sshString(sigAlgo), sshString(sig)]))]),
    );
  });
}

/** `ssh-ed25519-cert-v01@openssh.com` → `ssh-ed25519`; `rsa-sha2-256-cert-v01@...` → `rsa-sha2-256`. */
function certSignatureAlgorithm(certAlgorithm: string): string {
  return certAlgorithm.slice(0, -CERT_SUFFIX.length);
}

function patchKeyExchange(kex: Any): void {
  kex[KEX_PATCHED] = true;
  const origFinish = kex.finish;
  const origParse = kex.parse;
  if (typeof origFinish !== "function" || typeof origParse !== "function") return;
  const source = String(origFinish);
  const finishOk = KEX_FINISH_FRAGMENTS.every((re) => re.test(source));

  kex.parse = function (this: Any, payload: Buffer) {
    const neg: unknown = this.negotiated?.serverHostKey;
    // The KEXDH reply carries an `ssh-rsa-cert-v01` blob while `rsa-sha2-*-cert` was negotiated:
    // let ssh2's "host key type matches negotiated" check see the blob's name.
    if (
      !this._protocol._server && typeof neg === "string" && neg.startsWith("rsa-sha2-") &&
      isCertificateType(neg) && payload[0] === internalsOf().constants.MESSAGE.KEXDH_REPLY
    ) {
      this.negotiated.serverHostKey = "ssh-rsa" + CERT_SUFFIX;
      try {
        return origParse.call(this, payload);
      } finally {
        this.negotiated.serverHostKey = neg;
      }
    }
    return origParse.call(this, payload);
  };

  kex.finish = function (this: Any, scOnly: unknown) {
    const neg: unknown = this.negotiated?.serverHostKey;
    if (this._finished || typeof neg !== "string" || !isCertificateType(neg)) {
      return origFinish.call(this, scOnly);
    }
    if (!finishOk) {
      throw new Error("ssh2 key exchange internals changed: cannot use SSH host certificates");
    }
    const sigAlg = certSignatureAlgorithm(neg);
    if (this._protocol._server) {
      // Our host key object presents the certificate; sign with a view of the plain key whose
      // type is the plain type, and name the plain algorithm in the signature.
      const view = this._hostKey?.[SIGNING_VIEW];
      if (!view) return origFinish.call(this, scOnly);
      this._hostKey = view;
      this.negotiated.serverHostKey = sigAlg;
      try {
        return origFinish.call(this, scOnly);
      } finally {
        this.negotiated.serverHostKey = neg;
      }
    }
    // Client: the exchange hash must cover the certificate blob (first read of `_hostKey`), the
    // signature is verified with the certified plain key (later reads).
    const certBlob: Buffer = this._hostKey;
    let plainKey: Buffer;
    try {
      plainKey = Buffer.from(parseSshCertificate(certBlob).publicKey);
    } catch {
      return origFinish.call(this, scOnly);
    }
    let reads = 0;
    const setData = (v: unknown) =>
      Object.defineProperty(this, "_hostKey", {
        value: v,
        writable: true,
        configurable: true,
        enumerable: true,
      });
    Object.defineProperty(this, "_hostKey", {
      configurable: true,
      enumerable: true,
      get: () => (reads++ === 0 ? certBlob : plainKey),
      set: setData,
    });
    this.negotiated.serverHostKey = sigAlg;
    try {
      return origFinish.call(this, scOnly);
    } finally {
      this.negotiated.serverHostKey = neg;
      if (Object.getOwnPropertyDescriptor(this, "_hostKey")?.get) setData(certBlob);
    }
  };
}

// ---------------------------------------------------------------------------------------------
// Keys

/** A key as parsed by ssh2 (`ssh2.ParsedKey`). */
export type Ssh2Key = import("ssh2").ParsedKey;

/**
 * Parses a private key PEM of any form a Teleport identity file holds (PKCS#8, PKCS#1, SEC1 or
 * OpenSSH; RSA, ECDSA or Ed25519) into an ssh2 key. PKCS#8 is converted first (ssh2 does not
 * read it): RSA to PKCS#1, ECDSA to SEC1 (ssh2 under Deno cannot sign with OpenSSH-format ECDSA
 * keys), Ed25519 to the OpenSSH format.
 * @throws {TeleportError} kind `bad_parameter`; the message never contains key material.
 */
export function parseSsh2PrivateKey(pem: string | Uint8Array): Ssh2Key {
  installSsh2Patches();
  const text = typeof pem === "string" ? pem : Buffer.from(pem).toString("utf8");
  let input = text;
  if (!/-----BEGIN OPENSSH PRIVATE KEY-----/.test(text)) {
    let key: crypto.KeyObject;
    try {
      key = crypto.createPrivateKey(text);
    } catch (e) {
      throw new TeleportError(
        "bad_parameter",
        `Cannot read the SSH private key: ${(e as Error).message}`,
      );
    }
    switch (key.asymmetricKeyType) {
      case "rsa":
        input = key.export({ format: "pem", type: "pkcs1" }).toString();
        break;
      case "ec":
        input = key.export({ format: "pem", type: "sec1" }).toString();
        break;
      case "ed25519":
        input = openSshEd25519PrivateKeyPem(key);
        break;
      default:
        throw new TeleportError(
          "bad_parameter",
          `Cannot use a "${key.asymmetricKeyType}" private key for SSH`,
        );
    }
  }
  let parsed: Any = internalsOf().keyParser.parseKey(input);
  if (Array.isArray(parsed)) parsed = parsed[0];
  if (parsed instanceof Error || !parsed?.isPrivateKey?.()) {
    throw new TeleportError(
      "bad_parameter",
      `Cannot read the SSH private key: ${
        parsed instanceof Error ? parsed.message : "not a private key"
      }`,
    );
  }
  return parsed;
}

/**
 * The ssh2 key of `privateKeyPem` with the certificate `cert` (line or blob) for it.
 * @throws {TeleportError} kind `bad_parameter` with `mismatch` when the certificate is for
 *   another key.
 */
function keyWithCertificate(
  privateKeyPem: string | Uint8Array,
  cert: string | Uint8Array,
  mismatch: string,
): { key: Any; blob: Buffer; parsed: SshCertificate } {
  const key: Any = parseSsh2PrivateKey(privateKeyPem);
  const blob = typeof cert === "string"
    ? Buffer.from(parseAuthorizedKey(cert).blob)
    : Buffer.from(cert);
  const parsed = parseSshCertificate(blob);
  if (!sshKeysEqual(parsed.publicKey, key.getPublicSSH())) {
    throw new TeleportError("bad_parameter", mismatch);
  }
  return { key, blob, parsed };
}

/**
 * A client auth key for `authHandler: [{ type: "publickey", username, key }]` that
 * authenticates with the OpenSSH user certificate `cert` (authorized_keys line or blob) and
 * its private key. (ssh2's `privateKey` option cannot carry it.)
 * @throws {TeleportError} kind `bad_parameter` when the certificate does not match the key.
 */
export function sshCertificateAuthKey(
  privateKeyPem: string | Uint8Array,
  cert: string | Uint8Array,
): Ssh2Key {
  const { key, blob } = keyWithCertificate(
    privateKeyPem,
    cert,
    "The SSH certificate does not match the private key of the identity",
  );
  key[CERT_BLOB] = blob;
  return key;
}

/**
 * Host keys for an ssh2 `Server` (`hostKeys: [...]`) that present the OpenSSH host certificate
 * `cert` (line or blob) for the private key `privateKeyPem`, as `{ key }` entries (the form
 * ssh2 accepts parsed keys in). An RSA key yields two entries (`rsa-sha2-512-cert`,
 * `rsa-sha2-256-cert`).
 * @throws {TeleportError} kind `bad_parameter` when the certificate does not match the key.
 */
export function sshCertificateHostKeys(
  privateKeyPem: string | Uint8Array,
  cert: string | Uint8Array,
): { key: Ssh2Key }[] {
  const { key: base, blob, parsed } = keyWithCertificate(
    privateKeyPem,
    cert,
    "The SSH host certificate does not match the host key",
  );
  const view = Object.create(base, { getPublicSSH: { value: () => blob } });
  const algs = base.type === "ssh-rsa"
    ? ["rsa-sha2-512" + CERT_SUFFIX, "rsa-sha2-256" + CERT_SUFFIX]
    : [parsed.certType];
  return algs.map((type) => ({
    key: Object.create(base, {
      type: { value: type },
      getPublicSSH: { value: () => blob },
      [CERT_BLOB]: { value: blob },
      [SIGNING_VIEW]: { value: view },
    }),
  }));
}

// ---------------------------------------------------------------------------------------------
// Custom channels

/** A client-side ssh2 channel: a Duplex with the server's extended data as `stderr`. */
export type Ssh2Channel = Duplex & {
  /** Extended data (SSH stderr) from the server. */
  readonly stderr: Readable;
  /** Sends EOF and CHANNEL_CLOSE. */
  close(): void;
};

/** A server-side channel accepted by {@link acceptCustomChannels}. */
export type Ssh2ServerChannel = Duplex & {
  /** Writes extended data (SSH stderr) to the client. */
  readonly stderr: Writable;
  /** Sends EOF and CHANNEL_CLOSE. */
  close(): void;
};

/** Options of {@link openSshChannel} and {@link sendChannelRequest}. */
export interface ChannelOptions {
  /** Aborts the wait (the channel, if it opens later, is closed). */
  signal?: AbortSignal;
}

/** A failed channel open: `reason` is the SSH reason code (3 = unknown channel type). */
export class ChannelOpenError extends Error {
  /** The SSH reason code (1 prohibited, 2 connect failed, 3 unknown type, 4 resource shortage). */
  readonly reason: number;
  /** The server's description ("" when it gave none). */
  readonly description: string;
  constructor(description: string, reason: number) {
    super(`(SSH) Channel open failure: ${description || `reason ${reason}`}`);
    this.name = "ChannelOpenError";
    this.reason = reason;
    this.description = description;
  }
}

/**
 * Opens a channel of any type on a connected ssh2 `Client` (ssh2 only opens `session`,
 * `direct-tcpip` and `direct-streamlocal`).
 * @throws {ChannelOpenError} when the server refuses; `AbortError`-like `Error` on abort.
 */
export function openSshChannel(
  client: import("ssh2").Client,
  type: string,
  extra: Uint8Array = new Uint8Array(0),
  opts: ChannelOptions = {},
): Promise<Ssh2Channel> {
  installSsh2Patches();
  const conn = client as Any;
  return new Promise((resolve, reject) => {
    const signal = opts.signal;
    if (signal?.aborted) return reject(signal.reason);
    let done = false;
    const onAbort = () => {
      if (done) return;
      done = true;
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
    const wrapper: Any = (err: Any, stream: Any) => {
      signal?.removeEventListener("abort", onAbort);
      if (done) {
        if (!err) stream.close();
        return;
      }
      done = true;
      if (err) {
        // A CHANNEL_OPEN_FAILURE carries a numeric reason; a dying connection does not.
        const prefix = "(SSH) Channel open failure: ";
        reject(
          typeof err.reason === "number"
            ? new ChannelOpenError(
              String(err.message).startsWith(prefix) ? err.message.slice(prefix.length) : "",
              err.reason,
            )
            : err instanceof Error
            ? err
            : new Error(String(err)),
        );
      } else resolve(stream);
    };
    wrapper.type = type;
    if (!conn._sock || !conn._sock.writable || !conn._protocol) {
      done = true;
      return reject(new Error("Not connected"));
    }
    const local = conn._chanMgr.add(wrapper);
    if (local === -1) {
      done = true;
      return reject(new Error("No free channels available"));
    }
    const { MAX_WINDOW, PACKET_SIZE } = internalsOf().channel;
    rawSend(
      conn._protocol,
      Buffer.concat([
        Buffer.from([internalsOf().constants.MESSAGE.CHANNEL_OPEN]),
        sshString(type),
        sshUint32(local),
        sshUint32(MAX_WINDOW),
        sshUint32(PACKET_SIZE),
        Buffer.from(extra),
      ]),
    );
  });
}

/**
 * Sends a channel request with raw type-specific `data` (Go's `Channel.SendRequest` payload)
 * and, with `wantReply`, resolves to the server's answer (true = success). Resolves false when
 * the channel closes before the reply.
 */
export function sendChannelRequest(
  channel: Ssh2Channel,
  type: string,
  data: Uint8Array,
  wantReply = true,
  opts: ChannelOptions = {},
): Promise<boolean> {
  const ch = channel as Any;
  return new Promise((resolve, reject) => {
    const signal = opts.signal;
    if (signal?.aborted) return reject(signal.reason);
    let settled = false;
    const finish = (v: boolean | Error) => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener("abort", onAbort);
      ch.removeListener("close", onClose);
      if (v instanceof Error) reject(v);
      else resolve(v);
    };
    const onAbort = () => finish(signal!.reason);
    const onClose = () => finish(false);
    signal?.addEventListener("abort", onAbort, { once: true });
    ch.once("close", onClose);
    if (wantReply) ch._callbacks.push((hadErr: boolean) => finish(!hadErr));
    rawSend(
      ch._client._protocol,
      Buffer.concat([
        Buffer.from([internalsOf().constants.MESSAGE.CHANNEL_REQUEST]),
        sshUint32(ch.outgoing.id),
        sshString(type),
        Buffer.from([wantReply ? 1 : 0]),
        Buffer.from(data),
      ]),
    );
    if (!wantReply) finish(true);
  });
}

/** A channel open of a custom type received by a server (see {@link acceptCustomChannels}). */
export interface CustomChannelOpen {
  type: string;
  /** The type-specific data after the window fields. */
  data: Uint8Array;
  /** Confirms the open and returns the server-side channel. */
  accept(): Ssh2ServerChannel;
  /** Refuses the open (`reason` defaults to 1, administratively prohibited). */
  reject(reason?: number, description?: string): void;
}

/** A request on an accepted custom channel (emitted as `"channel-request"` on the channel). */
export interface CustomChannelRequest {
  type: string;
  wantReply: boolean;
  /** Raw type-specific data. */
  data: Uint8Array;
  /** Sends success/failure when a reply was wanted (no-op otherwise or when already replied). */
  reply(ok: boolean): void;
}

/**
 * Makes a server-side ssh2 connection (the `Connection` of the `Server`'s `"connection"`
 * event) hand channel opens of the given `types` to `onOpen` instead of refusing them. Requests
 * on accepted channels are emitted on the channel as `"channel-request"` with a
 * {@link CustomChannelRequest}; with no listener they are answered with failure.
 */
export function acceptCustomChannels(
  connection: import("ssh2").Connection,
  types: readonly string[],
  onOpen: (open: CustomChannelOpen) => void,
): void {
  installSsh2Patches();
  const conn = connection as Any;
  const handlers = conn._protocol._handlers;
  const ours: Set<number> = conn[CUSTOM_CHANNELS] ??= new Set<number>();
  const origOpen = handlers.CHANNEL_OPEN;
  const origRequest = handlers.CHANNEL_REQUEST;
  handlers.CHANNEL_OPEN = (p: Any, info: Any) => {
    if (!types.includes(info.type)) return origOpen(p, info);
    openCustomChannel(conn, ours, info, onOpen);
  };
  handlers.CHANNEL_REQUEST = (
    p: Any,
    recipient: number,
    type: string,
    wantReply: boolean,
    data: Any,
  ) => {
    const channel = conn._chanMgr.get(recipient);
    if (!ours.has(recipient) || typeof channel !== "object" || channel === null) {
      return origRequest(p, recipient, type, wantReply, data);
    }
    const proto = conn._protocol;
    let replied = !wantReply;
    const req: CustomChannelRequest = {
      type,
      wantReply,
      data: data instanceof Uint8Array ? data : new Uint8Array(0),
      reply(ok: boolean) {
        if (replied) return;
        replied = true;
        if (channel.outgoing.state !== "open") return;
        if (ok) proto.channelSuccess(channel.outgoing.id);
        else proto.channelFailure(channel.outgoing.id);
      },
    };
    if (!channel.emit("channel-request", req)) req.reply(false);
  };
}

/** Hands one CHANNEL_OPEN of a custom type to `onOpen`, which accepts or rejects it. */
function openCustomChannel(
  conn: Any,
  ours: Set<number>,
  info: Any,
  onOpen: (open: CustomChannelOpen) => void,
): void {
  const proto = conn._protocol;
  const { Channel, MAX_WINDOW, PACKET_SIZE } = internalsOf().channel;
  const failures = internalsOf().constants.CHANNEL_OPEN_FAILURE;
  const prohibited = failures.ADMINISTRATIVELY_PROHIBITED;
  if (!conn.authenticated) return proto.channelOpenFail(info.sender, prohibited, "");
  let replied = false;
  const local = conn._chanMgr.add();
  if (local === -1) return proto.channelOpenFail(info.sender, failures.RESOURCE_SHORTAGE, "");
  onOpen({
    type: info.type,
    data: info.data instanceof Uint8Array ? info.data : new Uint8Array(0),
    accept() {
      if (replied) throw new Error("Channel open already answered");
      replied = true;
      const chanInfo = {
        type: info.type,
        incoming: { id: local, window: MAX_WINDOW, packetSize: PACKET_SIZE, state: "open" },
        outgoing: {
          id: info.sender,
          window: info.window,
          packetSize: info.packetSize,
          state: "open",
        },
      };
      const channel = new Channel(conn, chanInfo, { server: true });
      conn._chanMgr.update(local, channel);
      ours.add(local);
      channel.once("close", () => ours.delete(local));
      proto.channelOpenConfirm(info.sender, local, MAX_WINDOW, PACKET_SIZE);
      return channel;
    },
    reject(reason = prohibited, description = "") {
      if (replied) return;
      replied = true;
      conn._chanMgr.remove(local);
      proto.channelOpenFail(info.sender, reason, description);
    },
  });
}
