/**
 * SSH wire format (RFC 4251 §5): a bounds-checked reader, the encoders of `string`, `uint32` and
 * `uint64`, and the unencrypted OpenSSH (`openssh-key-v1`) private key format for Ed25519 keys
 * (what `ssh2` reads for Ed25519, and what OpenSSH's `sshd` reads as a host key).
 *
 * Shared by `ssh_cert.ts`, `identity.ts`, `ssh2_patches.ts` and the test certificate authority.
 *
 * @module
 */
import crypto from "node:crypto";
import { Buffer } from "node:buffer";
import { TeleportError } from "../errors.ts";

/** The error for malformed SSH data: `Cannot parse <what>: <detail>` (kind `bad_parameter`). */
export function sshParseError(what: string, detail: string): TeleportError {
  return new TeleportError("bad_parameter", `Cannot parse ${what}: ${detail}`);
}

/**
 * A bounds-checked reader of SSH wire data. Reading past the end throws
 * {@link sshParseError} (`Cannot parse <what>: truncated data`).
 */
export class SshReader {
  #b: Buffer;
  #what: string;
  /** Current offset. */
  pos = 0;

  /** Reads `data`; `what` names it in errors (default "SSH data"). */
  constructor(data: Uint8Array, what = "SSH data") {
    this.#b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    this.#what = what;
  }

  #need(n: number): void {
    if (this.pos + n > this.#b.length) throw sshParseError(this.#what, "truncated data");
  }

  /** Reads a uint32. */
  u32(): number {
    this.#need(4);
    const v = this.#b.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  /** Reads a uint64. */
  u64(): bigint {
    this.#need(8);
    const v = this.#b.readBigUInt64BE(this.pos);
    this.pos += 8;
    return v;
  }

  /** Reads a byte. */
  u8(): number {
    this.#need(1);
    return this.#b[this.pos++];
  }

  /** Reads a `string` as bytes. */
  bytes(): Buffer {
    const n = this.u32();
    this.#need(n);
    const v = this.#b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  /** Reads a `string` as UTF-8. */
  str(): string {
    return this.bytes().toString("utf8");
  }

  /** Whether everything was read. */
  get done(): boolean {
    return this.pos >= this.#b.length;
  }

  /** The bytes between two offsets. */
  slice(from: number, to: number): Buffer {
    return this.#b.subarray(from, to);
  }
}

/** Encodes an SSH `string` (UTF-8 for a JavaScript string). */
export function sshString(v: Uint8Array | string): Buffer {
  const b = typeof v === "string" ? Buffer.from(v, "utf8") : Buffer.from(v);
  return Buffer.concat([sshUint32(b.length), b]);
}

/** Encodes an SSH `uint32`. */
export function sshUint32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

/** Encodes an SSH `uint64`. */
export function sshUint64(n: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(n);
  return b;
}

/**
 * An Ed25519 private key as an unencrypted OpenSSH private key PEM (`openssh-key-v1`, cipher and
 * KDF `none`, one key, random check integers, padding 1, 2, 3, ...), base64 wrapped at 70
 * columns like `ssh-keygen`.
 * @throws {Error} when `key` is not an Ed25519 private key.
 */
export function openSshEd25519PrivateKeyPem(key: crypto.KeyObject, comment = ""): string {
  if (key.type !== "private" || key.asymmetricKeyType !== "ed25519") {
    throw new Error(`Not an Ed25519 private key (${key.type} ${key.asymmetricKeyType})`);
  }
  const jwk = key.export({ format: "jwk" }) as JsonWebKey;
  const pub = Buffer.from(jwk.x!, "base64url");
  const seed = Buffer.from(jwk.d!, "base64url");
  const check = crypto.randomBytes(4);
  let priv = Buffer.concat([
    check,
    check,
    sshString("ssh-ed25519"),
    sshString(pub),
    sshString(Buffer.concat([seed, pub])),
    sshString(comment),
  ]);
  const pad: number[] = [];
  for (let i = 1; (priv.length + pad.length) % 8 !== 0; i++) pad.push(i);
  priv = Buffer.concat([priv, Buffer.from(pad)]);
  const body = Buffer.concat([
    Buffer.from("openssh-key-v1\0", "latin1"),
    sshString("none"),
    sshString("none"),
    sshString(""),
    sshUint32(1),
    sshString(Buffer.concat([sshString("ssh-ed25519"), sshString(pub)])),
    sshString(priv),
  ]);
  const b64 = body.toString("base64").replace(/(.{70})/g, "$1\n").replace(/\n$/, "");
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${b64}\n-----END OPENSSH PRIVATE KEY-----\n`;
}
