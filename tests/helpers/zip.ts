/** Zip archives and fake Deno runtimes for the offline-build tests. */
import { deflateRawSync } from "node:zlib";
import { concatBytes } from "./bytes.ts";

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** A zip archive (as Deno's release zips are: one deflated file), for tests. */
export function makeZip(files: Record<string, Uint8Array>, method: 0 | 8 = 8): Uint8Array {
  const enc = new TextEncoder();
  const locals: Uint8Array[] = [];
  const centrals: Uint8Array[] = [];
  let offset = 0;
  for (const [name, data] of Object.entries(files)) {
    const packed = method === 8 ? new Uint8Array(deflateRawSync(data)) : data;
    const n = enc.encode(name);
    const header = (size: number, central: boolean) => {
      const h = new Uint8Array(size);
      const v = new DataView(h.buffer);
      v.setUint32(0, central ? 0x02014b50 : 0x04034b50, true);
      const at = central ? 2 : 0; // the central header has "version made by" first
      v.setUint16(4 + at, 20, true);
      v.setUint16(8 + at, method, true);
      v.setUint32(14 + at, crc32(data), true);
      v.setUint32(18 + at, packed.length, true);
      v.setUint32(22 + at, data.length, true);
      v.setUint16(26 + at, n.length, true);
      if (central) v.setUint32(42, offset, true);
      h.set(n, size - n.length);
      return h;
    };
    const local = header(30 + n.length, false);
    locals.push(local, packed);
    centrals.push(header(46 + n.length, true));
    offset += local.length + packed.length;
  }
  const centralSize = centrals.reduce((s, c) => s + c.length, 0);
  const end = new Uint8Array(22);
  const v = new DataView(end.buffer);
  v.setUint32(0, 0x06054b50, true);
  v.setUint16(8, centrals.length, true);
  v.setUint16(10, centrals.length, true);
  v.setUint32(12, centralSize, true);
  v.setUint32(16, offset, true);
  return concatBytes([...locals, ...centrals, end]);
}

/** A fake runtime: an ELF header for `machine` followed by Deno's user-agent strings. */
export function fakeDenort(version: string, machine = 62): Uint8Array {
  const elf = new Uint8Array(64);
  elf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  new DataView(elf.buffer).setUint16(18, machine, true);
  const text = new TextEncoder().encode(`\0Deno/${version}Deno/${version}+e518fbd\0`);
  const out = new Uint8Array(elf.length + text.length);
  out.set(elf);
  out.set(text, elf.length);
  return out;
}
