/**
 * The SMTP mailer's messages, built the way nodemailer builds them (same headers, order,
 * encodings, folding and layout; see `mime_test.ts`), but from parts encoded once per content:
 * a request's email goes to several recipients, and nodemailer's per-message work (header
 * normalisation and encoding, the MIME tree streamed through transforms, quoted-printable) was
 * the largest cost per email. Here only the per-recipient headers (`To`, `Message-ID`, `Date`,
 * `In-Reply-To`, `References`) and the boundary are written per message, and the message is
 * handed to nodemailer whole (`raw`), so it is streamed as one piece.
 *
 * Values nodemailer would encode or fold differently (non-ASCII, long) are not written here:
 * {@link plainHeaderValue} says which ones can be; the caller builds the others with nodemailer.
 * @module
 */
import MimeNode from "nodemailer/lib/mime-node";
import { Buffer } from "node:buffer";
import { PassThrough } from "node:stream";

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
 * The line(s) nodemailer writes for header `key` with `value` (address parsing and encoding for
 * `From`, RFC 2047 encoded words, folding at 76), without the final line break; "" when
 * nodemailer leaves the header out (an empty value).
 */
export function headerLine(key: string, value: string): string {
  const node = new MimeNode("text/plain");
  node.setHeader(key, value);
  const lines = node.buildHeaders().split("\r\n");
  const at = lines.findIndex((l) => l.startsWith(`${key}:`));
  if (at < 0) return "";
  let end = at + 1;
  while (end < lines.length && /^[ \t]/.test(lines[end])) end++;
  return lines.slice(at, end).join("\r\n");
}

/**
 * One body part as nodemailer writes it inside a multipart message: its Content-Type and
 * Content-Transfer-Encoding headers (the encoding chosen by nodemailer) and the encoded content.
 */
export function encodePart(contentType: string, content: string): Promise<Buffer> {
  // A child node (a root node would add Date, Message-ID and MIME-Version), streamed the way its
  // parent streams it (build() would add a final line break).
  const part = new MimeNode("multipart/alternative").createChild(contentType);
  part.setContent(content);
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on("data", (chunk: Buffer) => chunks.push(chunk));
  return new Promise((resolve, reject) => {
    out.on("end", () => resolve(Buffer.concat(chunks)));
    (part as unknown as NodeStreamable).stream(out, {}, (err) => {
      if (err) reject(err);
      else out.end();
    });
  });
}

/** `MimeNode.stream()`, which nodemailer's types leave out. */
interface NodeStreamable {
  stream(out: PassThrough, options: object, done: (err?: Error | null) => void): void;
}

/** Encodes the shared parts of a message: the subject line, the text and HTML parts. */
export async function encodeContent(
  subject: string,
  text: string,
  html: string,
): Promise<EncodedContent> {
  const [t, h] = await Promise.all([encodePart(TEXT_TYPE, text), encodePart(HTML_TYPE, html)]);
  return { subjectLine: headerLine("Subject", subject), text: t, html: h };
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

/** The whole multipart/alternative message (text, then HTML), as nodemailer would write it. */
export function assembleMessage(h: MessageHeaders, content: EncodedContent): Buffer {
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
  ]);
}
