/**
 * Deno's official runtime archives (`denort-<triple>.zip`) for offline builds: read the `denort`
 * file out of a zip, tell which Deno release it is, and stage zips into a temporary Deno cache
 * (`$DENO_DIR/dl/release/v<version>/`), where `deno compile` takes them without downloading.
 *
 * The Deno version of a `denort` binary: Deno's `cli/lib/version.rs` (shared by `deno` and
 * `denort`) compiles in the user agent both as `Deno/<version>` and, for canary builds,
 * `Deno/<version>+<commit>`; the second form is unique to that string, so the version is the
 * `<version>` of the `Deno/<x.y.z>+<hex>` occurrences (all must agree).
 * @module
 */
import { inflateRawSync } from "node:zlib";

/** Files of a zip archive by name (stored or deflated entries; no zip64, no encryption). */
export function readZip(bytes: Uint8Array): Map<string, Uint8Array> {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // End of central directory: signature 0x06054b50 within the last 64 KiB + 22 bytes.
  let eocd = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 65_557); i--) {
    if (view.getUint32(i, true) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error("not a zip archive (no end of central directory)");
  const count = view.getUint16(eocd + 10, true);
  let at = view.getUint32(eocd + 16, true);
  const files = new Map<string, Uint8Array>();
  const decoder = new TextDecoder();
  for (let n = 0; n < count; n++) {
    if (view.getUint32(at, true) !== 0x02014b50) throw new Error("corrupt zip central directory");
    const method = view.getUint16(at + 10, true);
    const compressed = view.getUint32(at + 20, true);
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    const local = view.getUint32(at + 42, true);
    const name = decoder.decode(bytes.subarray(at + 46, at + 46 + nameLength));
    at += 46 + nameLength + extraLength + commentLength;
    if (view.getUint32(local, true) !== 0x04034b50) throw new Error(`corrupt zip entry "${name}"`);
    const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    const data = bytes.subarray(start, start + compressed);
    if (method === 0) files.set(name, data);
    else if (method === 8) files.set(name, new Uint8Array(inflateRawSync(data)));
    else throw new Error(`zip entry "${name}" uses compression method ${method}`);
  }
  return files;
}

/** ELF `e_machine` of an in-memory binary, `undefined` when it is not ELF. */
export function elfMachineOf(bytes: Uint8Array): number | undefined {
  if (bytes.length < 20 || bytes[0] !== 0x7f || bytes[1] !== 0x45 || bytes[2] !== 0x4c) {
    return undefined;
  }
  if (bytes[3] !== 0x46) return undefined;
  return new DataView(bytes.buffer, bytes.byteOffset, 20).getUint16(18, bytes[5] === 1);
}

/**
 * The Deno release a `deno` or `denort` binary belongs to (see the module doc), or `undefined`
 * when it carries no `Deno/<x.y.z>+<hex>` string or several different ones.
 */
export function denoVersionOf(binary: Uint8Array): string | undefined {
  const marker = new TextEncoder().encode("Deno/");
  const versions = new Set<string>();
  let i = binary.indexOf(marker[0]);
  while (i >= 0 && i < binary.length - marker.length) {
    let match = true;
    for (let j = 1; j < marker.length; j++) {
      if (binary[i + j] !== marker[j]) {
        match = false;
        break;
      }
    }
    if (match) {
      const tail = String.fromCharCode(...binary.subarray(i + 5, i + 5 + 40));
      const m = /^(\d+\.\d+\.\d+)\+[0-9a-f]{7,}/.exec(tail);
      if (m) versions.add(m[1]);
    }
    i = binary.indexOf(marker[0], i + 1);
  }
  return versions.size === 1 ? [...versions][0] : undefined;
}

/** Lower-case hex SHA-256. */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** What {@link inspectDenortZip} found in a runtime zip. */
export interface DenortZip {
  /** SHA-256 of the zip file. */
  sha256: string;
  /** Deno version embedded in its `denort`. */
  denoVersion: string;
  /** ELF `e_machine` of its `denort`. */
  machine: number | undefined;
}

/**
 * Reads `denort` out of the zip at `path` and returns the zip's SHA-256, the Deno version and
 * CPU of the runtime. Throws an `Error` whose message says what is wrong with the file.
 */
export async function inspectDenortZip(path: string): Promise<DenortZip> {
  const bytes = await Deno.readFile(path);
  let files: Map<string, Uint8Array>;
  try {
    files = readZip(bytes);
  } catch (err) {
    throw new Error(`cannot read it as a zip: ${(err as Error).message}`);
  }
  const denort = files.get("denort");
  if (!denort) {
    throw new Error(
      `it holds no "denort" file (holds: ${[...files.keys()].join(", ") || "nothing"})`,
    );
  }
  const denoVersion = denoVersionOf(denort);
  if (!denoVersion) throw new Error(`its "denort" carries no Deno version string`);
  return { sha256: await sha256Hex(bytes), denoVersion, machine: elfMachineOf(denort) };
}

/**
 * Makes a temporary Deno cache directory that shares everything of `realDenoDir` (npm packages,
 * remote modules) but `dl/`, with `dl/release/v<denoVersion>/<zip name>` linked to each zip, so
 * `deno compile` run with `DENO_DIR` set to it uses these zips. Remove it when done.
 */
export async function stageDenoDir(
  realDenoDir: string,
  denoVersion: string,
  zips: readonly string[],
): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "teleport-email-deno-dir-" });
  try {
    for await (const e of Deno.readDir(realDenoDir)) {
      if (e.name !== "dl") await Deno.symlink(`${realDenoDir}/${e.name}`, `${dir}/${e.name}`);
    }
  } catch {
    // An unreadable cache: deno compile fills the new one from the node_modules/ it is given.
  }
  const release = `${dir}/dl/release/v${denoVersion}`;
  await Deno.mkdir(release, { recursive: true });
  for (const zip of zips) {
    await Deno.symlink(zip, `${release}/${zip.slice(zip.lastIndexOf("/") + 1)}`);
  }
  return dir;
}
