/**
 * nodemailer's encodings for the values the SMTP mailer writes without loading nodemailer: body
 * parts (transfer encoding chosen as nodemailer chooses it, quoted-printable, base64), header
 * folding, and the header values and addresses it leaves as they are or only lowercases.
 *
 * Loading nodemailer's MIME node (and with it its address parser, MIME type table, HTTP client
 * and punycode codec) kept ~2 MiB more resident in an idle daemon. Ported from nodemailer 10.6.0
 * (MIT-0: `qp/index.js`, `base64/index.js`, `mime-funcs` `foldLines`, `isPlainText`,
 * `hasLongerLines`, `MimeNode` `getTransferEncoding`, `_getTextEncoding`), and checked against it
 * byte for byte by `mime_native_test.ts` and `mime_test.ts`. What is not covered here (a header
 * value to encode as MIME words, an address with a quoted name or an IDN domain) returns
 * `undefined`, and the caller asks nodemailer (`mime.ts`).
 * @module
 */
import { Buffer } from "node:buffer";

/** A body part's Content-Transfer-Encoding; `false` for an empty part (no header at all). */
export type TransferEncoding = "7bit" | "quoted-printable" | "base64" | false;

/** Line length of encoded bodies and folded headers. */
const LINE = 76;

/** nodemailer's `MimeNode.getTransferEncoding()` for a text part with string content. */
export function transferEncoding(content: string): TransferEncoding {
  if (content === "") return false;
  if (isPlainText(content) && !hasLongerLines(content, LINE)) return "7bit";
  return textEncoding(content) === "Q" ? "quoted-printable" : "base64";
}

function isPlainText(value: string): boolean {
  // deno-lint-ignore no-control-regex -- control characters are what it looks for
  return !/[\x00-\x08\x0b\x0c\x0e-\x1f\u0080-\uFFFF]/.test(value);
}

function hasLongerLines(str: string, lineLength: number): boolean {
  // nodemailer does not look into values over 128 kB.
  return str.length > 128 * 1024 || new RegExp(`^.{${lineLength + 1},}`, "m").test(str);
}

/** `Q` when Latin letters outnumber binary and non-ASCII characters, else `B`. */
function textEncoding(value: string): "Q" | "B" {
  let nonLatin = 0;
  let latin = 0;
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (
      code <= 0x08 || code === 0x0b || code === 0x0c || (code >= 0x0e && code <= 0x1f) ||
      code >= 0x80
    ) {
      nonLatin++;
    } else if ((code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a)) {
      latin++;
    }
  }
  return nonLatin < latin ? "Q" : "B";
}

/** `bytes` in base64, in lines of 76 joined by CRLF (no line break at the end). */
export function base64Lines(bytes: Uint8Array): string {
  const b64 = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
  const lines: string[] = [];
  for (let at = 0; at < b64.length; at += LINE) lines.push(b64.slice(at, at + LINE));
  return lines.join("\r\n");
}

/** Bytes written as themselves: TAB, LF, CR, and printable ASCII but `=`. */
const QP_LITERAL = new Uint8Array(256).map((_, b) =>
  b === 0x09 || b === 0x0a || b === 0x0d || (b >= 0x20 && b <= 0x7e && b !== 0x3d) ? 1 : 0
);
const HEX = new TextEncoder().encode("0123456789ABCDEF");
const isBlank = (b: number | undefined) => b === 0x20 || b === 0x09;

/**
 * `bytes` quoted-printable as nodemailer's `qp.Encoder` writes a text part given all of it at
 * once: line breaks kept as they are, lines soft-wrapped at 76. Trailing blanks are held back
 * and encoded last, and input is encoded 64 KiB at a time, as the encoder does (both change
 * where lines wrap).
 */
export function quotedPrintable(bytes: Uint8Array): string {
  let end = bytes.length;
  while (end > 0 && isBlank(bytes[end - 1])) end--;
  const out: string[] = [];
  const state = { line: "" };
  encodeSlices(bytes.subarray(0, end), state, out);
  encodeSlices(bytes.subarray(end), state, out);
  out.push(state.line);
  return out.join("");
}

const SLICE = 64 * 1024;

function encodeSlices(buf: Uint8Array, state: { line: string }, out: string[]): void {
  for (let start = 0; start < buf.length; start += SLICE) {
    const end = Math.min(start + SLICE, buf.length);
    const next = end < buf.length ? buf[end] : undefined;
    const wrapped = qpWrap(state.line + qpBytes(buf.subarray(start, end), next), LINE);
    const lastLf = wrapped.lastIndexOf("\n");
    state.line = wrapped.substring(lastLf + 1);
    out.push(wrapped.substring(0, lastLf + 1));
  }
}

/** nodemailer's `encodeBytes()` (text mode): `next` is the byte after `buf`, if any. */
function qpBytes(buf: Uint8Array, next: number | undefined): string {
  // Written as bytes and decoded once: appending to a string byte by byte allocated ~15% of
  // what a burst of emails allocates.
  const out = new Uint8Array(buf.length * 3);
  let at = 0;
  for (let i = 0; i < buf.length; i++) {
    const b = buf[i];
    const following = i + 1 < buf.length ? buf[i + 1] : next;
    const blankAtEnd = isBlank(b) &&
      (following === undefined || following === 0x0a || following === 0x0d);
    if (QP_LITERAL[b] && !blankAtEnd) {
      out[at++] = b;
    } else {
      out[at++] = 0x3d; // =
      out[at++] = HEX[b >> 4];
      out[at++] = HEX[b & 15];
    }
  }
  return Buffer.from(out.buffer, 0, at).toString("latin1");
}

/** nodemailer's `qp.wrap()`: soft line breaks (`=` CRLF) so that no line exceeds `max`. */
function qpWrap(str: string, max: number): string {
  if (str.length <= max) return str;
  const margin = Math.floor(max / 3);
  let pos = 0;
  let result = "";
  while (pos < str.length) {
    let line = str.substr(pos, max);
    let m: RegExpMatchArray | null;
    if ((m = line.match(/\r\n/))) {
      line = line.substr(0, m.index! + 2);
      result += line;
      pos += line.length;
      continue;
    }
    if (line.endsWith("\n")) {
      result += line;
      pos += line.length;
      continue;
    }
    if ((m = line.substr(-margin).match(/\n.*?$/))) {
      line = line.substr(0, line.length - (m[0].length - 1));
      result += line;
      pos += line.length;
      continue;
    }
    line = qpBreak(line, str.length - pos, max, margin) || str.substr(pos, max);
    if (pos + line.length < str.length && !line.endsWith("\n")) {
      if (line.length === max && /[=][\da-f]{2}$/i.test(line)) line = line.substr(0, max - 3);
      else if (line.length === max) line = line.substr(0, max - 1);
      pos += line.length;
      line += "=\r\n";
    } else {
      pos += line.length;
    }
    result += line;
  }
  return result;
}

/**
 * Where `qpWrap` cuts `line` (of `left` characters still to write): after the last blank or
 * punctuation within the margin, or before an escape (`=XX`) it would split, keeping the escapes
 * of one UTF-8 character together.
 */
function qpBreak(line: string, left: number, max: number, margin: number): string {
  let m: RegExpMatchArray | null;
  if (line.length > max - margin && (m = line.substr(-margin).match(/[ \t.,!?][^ \t.,!?]*$/))) {
    return line.substr(0, line.length - (m[0].length - 1));
  }
  if (!/[=][\da-f]{0,2}$/i.test(line)) return line;
  if ((m = line.match(/[=][\da-f]{0,1}$/i))) line = line.substr(0, line.length - m[0].length);
  while (
    line.length > 3 && line.length < left && !/^(?:=[\da-f]{2}){1,4}$/i.test(line) &&
    (m = line.match(/[=][\da-f]{2}$/gi))
  ) {
    const code = parseInt(m[0].substr(1, 2), 16);
    if (code < 128) break;
    line = line.substr(0, line.length - 3);
    if (code >= 0xc0) break;
  }
  return line;
}

/** nodemailer's `foldLines()`: a header line folded at whitespace into lines of at most 76. */
export function foldLines(str: string, max = LINE): string {
  let pos = 0;
  let result = "";
  while (pos < str.length) {
    let line = str.substr(pos, max);
    if (line.length < max) {
      result += line;
      break;
    }
    let m: RegExpMatchArray | null;
    if ((m = line.match(/^[^\n\r]*(\r?\n|\r)/))) {
      result += m[0];
      pos += m[0].length;
      continue;
    }
    if ((m = line.match(/(\s+)[^\s]*$/)) && m[0].length < line.length) {
      line = line.substr(0, line.length - m[0].length);
    } else if ((m = str.substr(pos + line.length).match(/^[^\s]+(\s*)/))) {
      line = line + m[0].substr(0, m[0].length - (m[1] || "").length);
    }
    result += line;
    pos += line.length;
    if (pos < str.length) result += "\r\n";
  }
  return result;
}

/**
 * An unstructured header value (`Subject`, the automated-mail headers) that nodemailer writes as
 * it is: printable ASCII, without a `"` or a `=?` (which it would encode as MIME words). Returns
 * the value, or undefined when nodemailer must encode it.
 */
export function plainTextValue(value: string): string | undefined {
  return /^[\x20\x21\x23-\x7e]*$/.test(value) && !value.includes("=?") ? value : undefined;
}

/** A DNS name in ASCII: letters, digits and inner hyphens per label, not an `xn--` label. */
const LDH_DOMAIN =
  /^(?!xn--)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.(?!xn--)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/i;
/** A dot-atom local part of letters, digits and `._+-`. */
const SIMPLE_LOCAL = /^[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*$/;

/**
 * `local@domain` as nodemailer normalises a bare address of a simple local part and an ASCII
 * domain: the domain in lower case (WHATWG's `domainToASCII`). Undefined for any other address.
 */
export function plainAddress(address: string): string | undefined {
  const at = address.lastIndexOf("@");
  if (at < 0) return undefined;
  const local = address.slice(0, at);
  const domain = address.slice(at + 1);
  if (!SIMPLE_LOCAL.test(local) || domain.length > 253 || !LDH_DOMAIN.test(domain)) {
    return undefined;
  }
  return `${local}@${domain.toLowerCase()}`;
}

/**
 * The value nodemailer writes for an address header (`From`) of one address, bare or after a
 * name of words of letters, digits and `_` (`Teleport Bot <bot@example.com>`), when
 * {@link plainAddress} covers the address. Undefined otherwise.
 */
export function plainMailbox(value: string): string | undefined {
  const named = /^([A-Za-z0-9_]+(?: [A-Za-z0-9_]+)*) <([^<>\s]+)>$/.exec(value);
  if (named === null) return plainAddress(value);
  const address = plainAddress(named[2]);
  return address === undefined ? undefined : `${named[1]} <${address}>`;
}
