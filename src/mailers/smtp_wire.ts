/**
 * Message bytes as SMTP's DATA carries them (RFC 5321 4.5.2): CRLF line ends, a dot doubled at
 * the start of a line, and the end marker.
 * @module
 */
import { Buffer } from "node:buffer";

const CRLF = "\r\n";

/** A LF without a CR before it, or a line that starts with a dot. */
const NOT_WIRE_FORM = /(?:^|[^\r])\n|^\.|\n\./;

/**
 * `bytes` as they go inside DATA (RFC 5321 4.5.2): every line end CRLF, and a dot doubled at the
 * start of a line. The same bytes when nothing needs changing (the usual case once the parts of
 * a content have been through this: see `smtp.ts`).
 */
export function wireForm<T extends Uint8Array>(bytes: T): T | Buffer {
  const text = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("latin1");
  if (!NOT_WIRE_FORM.test(text)) return bytes;
  return Buffer.from(text.replace(/\r?\n/g, CRLF).replace(/^\./gm, ".."), "latin1");
}

const END_AFTER_CRLF = Buffer.from(`.${CRLF}`, "latin1");
const END_OTHERWISE = Buffer.from(`${CRLF}.${CRLF}`, "latin1");

/** The DATA payload of a message: its {@link wireForm} and the end marker `.` on its own line. */
export function dataPayload(bytes: Uint8Array): Uint8Array {
  const wire = wireForm(bytes);
  const n = wire.byteLength;
  const endsWithCrlf = n >= 2 && wire[n - 2] === 0x0d && wire[n - 1] === 0x0a;
  return Buffer.concat([wire, endsWithCrlf ? END_AFTER_CRLF : END_OTHERWISE]);
}
