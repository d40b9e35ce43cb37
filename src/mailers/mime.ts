/**
 * The SMTP mailer's messages, built the way nodemailer builds them (same headers, order,
 * encodings, folding and layout; see `mime_test.ts`), but from parts encoded once per content:
 * a request's email goes to several recipients, and nodemailer's per-message work (header
 * normalisation and encoding, the MIME tree streamed through transforms, quoted-printable) was
 * the largest cost per email. Here only the per-recipient headers (`To`, `Message-ID`, `Date`,
 * `In-Reply-To`, `References`) and the boundary are written per message.
 *
 * The encodings are nodemailer's, ported (`mime_native.ts`), so that a daemon does not load
 * nodemailer. A header value they do not cover (MIME words for non-ASCII, an address with a
 * quoted name or an IDN domain) is encoded by nodemailer's MIME node, loaded first by
 * {@link loadHeaderEncoder} when {@link encodesNatively} says it is needed. Values nodemailer
 * would encode or fold differently in the per-recipient headers are not written here:
 * {@link plainHeaderValue} says which ones can be; the caller builds the others with nodemailer.
 * @module
 */
import type MimeNode from "nodemailer/lib/mime-node";
import { Buffer } from "node:buffer";
import {
  base64Lines,
  foldLines,
  plainAddress,
  plainMailbox,
  plainTextValue,
  quotedPrintable,
  transferEncoding,
} from "./mime_native.ts";

export const TEXT_TYPE = "text/plain; charset=utf-8";
export const HTML_TYPE = "text/html; charset=utf-8";

/** The parts of a message shared by all its recipients, encoded once. */
export interface EncodedContent {
  /** The `Subject:` header line(s) as nodemailer writes them (encoded, folded), or "". */
  subjectLine: string;
  /** The text and HTML parts: headers, blank line, encoded body. */
  text: Buffer;
  html: Buffer;
}

/** What differs per message. */
export interface MessageHeaders {
  /**
   * The header lines before `To`, as nodemailer writes them ({@link headerLine}): the custom
   * headers, then `From`.
   */
  headLines: readonly string[];
  /** One plain address ({@link plainHeaderValue}). */
  to: string;
  /** `<id>` of the thread's first email ({@link plainHeaderValue}), or "" for none. */
  thread: string;
  /** `<id>`. */
  messageId: string;
  date: Date;
}

/**
 * Whether `value` is written the same by nodemailer as is in a header line `Name: value`:
 * printable ASCII without spaces, short enough never to be folded.
 */
export function plainHeaderValue(value: string): boolean {
  return value.length <= 60 && /^[\x21-\x7e]*$/.test(value);
}

/**
 * The `To` value nodemailer writes for `address` (the domain in lower case), when that is a
 * {@link plainHeaderValue}; undefined when nodemailer must write it.
 */
export function plainRecipient(address: string): string | undefined {
  const normalised = plainAddress(address);
  return normalised !== undefined && plainHeaderValue(normalised) ? normalised : undefined;
}

/** Header keys whose values nodemailer writes as unstructured text. */
const TEXT_KEYS = new Set(["Subject", "Auto-Submitted", "X-Auto-Response-Suppress"]);

/** The value of header `key` as nodemailer encodes it, when that needs no nodemailer. */
function nativeValue(key: string, value: string): string | undefined {
  if (key === "From") return plainMailbox(value);
  return TEXT_KEYS.has(key) ? plainTextValue(value) : undefined;
}

/** nodemailer's MIME node, once {@link loadHeaderEncoder} has loaded it. */
let mimeNode: typeof MimeNode | undefined;

/** Loads nodemailer's MIME node, for the header values and addresses it alone encodes. */
export async function loadHeaderEncoder(): Promise<void> {
  mimeNode ??= (await import("nodemailer/lib/mime-node")).default;
}

function loadedMimeNode(): typeof MimeNode {
  if (mimeNode === undefined) {
    throw new Error("internal error: nodemailer's MIME node is needed and was not loaded");
  }
  return mimeNode;
}

/**
 * Whether {@link headerLine} writes these headers, and {@link envelopeOf} an envelope of these
 * addresses, without nodemailer (else {@link loadHeaderEncoder} must have run).
 */
export function encodesNatively(
  headers: readonly (readonly [string, string])[],
  addresses: readonly string[] = [],
): boolean {
  return headers.every(([key, value]) =>
    value.trim() === "" || nativeValue(key, value) !== undefined
  ) &&
    addresses.every((a) => plainAddress(a) !== undefined);
}

/**
 * The line(s) nodemailer writes for header `key` with `value` (address parsing and encoding for
 * `From`, RFC 2047 encoded words, folding at 76), without the final line break; "" when
 * nodemailer leaves the header out (an empty value).
 */
export function headerLine(key: string, value: string): string {
  if (value.trim() === "") return "";
  const native = nativeValue(key, value);
  return native !== undefined ? foldLines(`${key}: ${native}`) : nodemailerHeaderLine(key, value);
}

/**
 * {@link headerLine} as nodemailer's MIME node writes it, for any value (what `mime_native.ts`
 * is checked against). Needs {@link loadHeaderEncoder} first.
 */
export function nodemailerHeaderLine(key: string, value: string): string {
  // A child node: a root node would also make a Date, a Message-ID and the MIME headers.
  const node = new (loadedMimeNode())("multipart/alternative").createChild("text/plain");
  node.setHeader(key, value);
  const lines = node.buildHeaders().split("\r\n");
  const at = lines.findIndex((l) => l.startsWith(`${key}:`));
  if (at < 0) return "";
  let end = at + 1;
  while (end < lines.length && /^[ \t]/.test(lines[end])) end++;
  return lines.slice(at, end).join("\r\n");
}

/**
 * The envelope (`MAIL FROM` and `RCPT TO` addresses) of a message from `sender` to `recipient` as
 * nodemailer's `setEnvelope()` normalises it (address parsing, IDN domains in punycode, the domain
 * in lower case). `from` is "" and `to` empty when nodemailer finds no address.
 */
export function envelopeOf(sender: string, recipient: string): { from: string; to: string[] } {
  const from = plainAddress(sender);
  const to = plainAddress(recipient);
  if (from !== undefined && to !== undefined) return { from, to: [to] };
  const node = new (loadedMimeNode())();
  const envelope = node.setEnvelope({ from: sender, to: [recipient] }).getEnvelope();
  return { from: envelope.from || "", to: envelope.to };
}

/**
 * One body part as nodemailer writes it inside a multipart message: its Content-Type and
 * Content-Transfer-Encoding headers (the encoding chosen by nodemailer) and the encoded content,
 * the same bytes as streaming the part (`MimeNode.stream()`, see `mime_test.ts`).
 */
export function encodePart(contentType: string, content: string): Buffer {
  const encoding = transferEncoding(content);
  const head = partHead(contentType, encoding);
  const bytes = Buffer.from(content);
  switch (encoding) {
    case "quoted-printable":
      return Buffer.concat([head, Buffer.from(quotedPrintable(bytes), "latin1")]);
    case "base64":
      return Buffer.concat([head, Buffer.from(base64Lines(bytes), "latin1")]);
    default:
      return Buffer.concat([head, bytes]);
  }
}

/** Part headers by content type and transfer encoding (a handful: two content types). */
const partHeads = new Map<string, Buffer>();

/** The headers of a part and the blank line after them. */
function partHead(contentType: string, encoding: string | false): Buffer {
  const key = `${contentType}\n${encoding}`;
  let head = partHeads.get(key);
  if (head === undefined) {
    const lines = [`Content-Type: ${contentType}`];
    if (encoding) lines.push(`Content-Transfer-Encoding: ${encoding}`);
    head = Buffer.from(`${lines.join("\r\n")}\r\n\r\n`);
    if (partHeads.size < 64) partHeads.set(key, head);
  }
  return head;
}

/** Encodes the shared parts of a message: the subject line, the text and HTML parts. */
export function encodeContent(subject: string, text: string, html: string): EncodedContent {
  return {
    subjectLine: headerLine("Subject", subject),
    text: encodePart(TEXT_TYPE, text),
    html: encodePart(HTML_TYPE, html),
  };
}

/** Random bytes drawn 4 KiB at a time (one call into the runtime per 512 boundaries). */
const randomPool = { bytes: new Uint8Array(4096), used: 4096 };
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/**
 * A boundary as nodemailer makes them for the root node (`--_NmP-<16 hex>-Part_1`): random, so
 * text in a request (its reason, say) cannot guess it and close the part early.
 */
function boundary(): string {
  if (randomPool.used + 8 > randomPool.bytes.length) {
    crypto.getRandomValues(randomPool.bytes);
    randomPool.used = 0;
  }
  let hex = "";
  for (let i = 0; i < 8; i++) hex += HEX[randomPool.bytes[randomPool.used++]];
  return `--_NmP-${hex}-Part_1`;
}

/** The end of an SMTP DATA payload, after a message that ends with a line break. */
const DATA_END = Buffer.from(".\r\n");

/**
 * The whole multipart/alternative message (text, then HTML), as nodemailer would write it. With
 * `dataEnd`, followed by the end marker of SMTP's DATA (`.` on its own line), so that a message
 * whose parts are in wire form (`smtp_session.ts`) is sent without another copy.
 */
export function assembleMessage(
  h: MessageHeaders,
  content: EncodedContent,
  dataEnd = false,
): Buffer {
  const b = boundary();
  const lines = [...h.headLines, `To: ${h.to}`];
  if (h.thread !== "") lines.push(`In-Reply-To: ${h.thread}`, `References: ${h.thread}`);
  if (content.subjectLine !== "") lines.push(content.subjectLine);
  lines.push(
    `Message-ID: ${h.messageId}`,
    `Date: ${h.date.toUTCString().replace(/GMT/, "+0000")}`,
    "MIME-Version: 1.0",
    `Content-Type: multipart/alternative;\r\n boundary="${b}"`,
  );
  return Buffer.concat([
    Buffer.from(`${lines.join("\r\n")}\r\n\r\n--${b}\r\n`),
    content.text,
    Buffer.from(`\r\n--${b}\r\n`),
    content.html,
    Buffer.from(`\r\n--${b}--\r\n`),
    ...(dataEnd ? [DATA_END] : []),
  ]);
}
