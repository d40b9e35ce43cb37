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
import * as base64 from "nodemailer/lib/base64";
import * as qp from "nodemailer/lib/qp";

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
  // A child node: a root node would also make a Date, a Message-ID and the MIME headers.
  const node = new MimeNode("multipart/alternative").createChild("text/plain");
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
 *
 * The same bytes as streaming the part (`MimeNode.stream()`, see `mime_test.ts`), without the
 * streams: the headers from the node, the content through nodemailer's own encoder run over the
 * whole content at once (its output does not depend on how the input is split).
 */
export function encodePart(contentType: string, content: string): Buffer {
  // A child node (a root node would add Date, Message-ID and MIME-Version).
  const part = new MimeNode("multipart/alternative").createChild(contentType);
  part.setContent(content);
  const encoding = part.getTransferEncoding();
  const head = partHead(part, contentType, encoding, content);
  const bytes = Buffer.from(content);
  switch (encoding) {
    case "quoted-printable":
      // As MimeNode.stream() makes it for a text part (lone CR and LF are line breaks).
      return encoded(head, new qp.Encoder({ binary: false } as qp.EncoderOptions), bytes);
    case "base64":
      return encoded(head, new base64.Encoder({}), bytes);
    default:
      return Buffer.concat([head, bytes]);
  }
}

/** Part headers by content type, transfer encoding and whether the content is ASCII. */
const partHeads = new Map<string, Buffer>();

/**
 * The headers of `part` and the blank line after them. They depend only on the content type,
 * the transfer encoding and (for the charset) whether the content is ASCII, so they are built
 * once for each of those (a handful: the callers use two content types).
 */
function partHead(
  part: MimeNode,
  contentType: string,
  encoding: string | false,
  content: string,
): Buffer {
  const key = `${contentType}\n${encoding}\n${/[\u0080-\uFFFF]/.test(content)}`;
  let head = partHeads.get(key);
  if (head === undefined) {
    head = Buffer.from(`${part.buildHeaders()}\r\n\r\n`);
    if (partHeads.size < 64) partHeads.set(key, head);
  }
  return head;
}

/** nodemailer's encoder transforms, driven by hand. */
interface EncoderSteps {
  _transform(chunk: Buffer, encoding: string, done: () => void): void;
  _flush(done: () => void): void;
  push(chunk: string | Buffer | null): boolean;
}

/** `head`, then `bytes` through `encoder` in one write and its end, synchronously. */
function encoded(head: Buffer, encoder: qp.Encoder | base64.Encoder, bytes: Buffer): Buffer {
  const steps = encoder as unknown as EncoderSteps;
  const out = [head];
  steps.push = (chunk) => {
    if (chunk !== null) {
      // The encoders push ASCII text: as UTF-8 the same bytes, and converted natively.
      out.push(typeof chunk === "string" ? Buffer.from(chunk) : chunk);
    }
    return true;
  };
  const done = () => {};
  steps._transform(bytes, "buffer", done);
  steps._flush(done);
  return Buffer.concat(out);
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
