import assert from "node:assert/strict";
import MailComposer from "nodemailer/lib/mail-composer";
import MimeNode from "nodemailer/lib/mime-node";
import { Buffer } from "node:buffer";
import { PassThrough } from "node:stream";
import { AUTOMATED_HEADERS } from "./mailer.ts";
import {
  assembleMessage,
  encodeContent,
  encodePart,
  encodesNatively,
  envelopeOf,
  headerLine,
  HTML_TYPE,
  loadHeaderEncoder,
  plainHeaderValue,
  plainRecipient,
  TEXT_TYPE,
} from "./mime.ts";

interface Case {
  name: string;
  sender: string;
  to: string;
  subject: string;
  text: string;
  html: string;
  thread: string;
}

const CASES: Case[] = [
  {
    name: "ASCII, a follow-up",
    sender: "Teleport <noreply@example.com>",
    to: "alice@example.com",
    subject: "teleport.example.com Role Request 0b4c2cfe-3b5e-4bd6-9a33-0d5b1a1e5c9e",
    text: "You have a new Role Request:\nUser: bob\nRoles: editor\n",
    html: "<html><body><p>You have a new Role Request</p></body></html>",
    thread: "<LXKQ1Z2.3ABCD@host.example>",
  },
  {
    name: "non-ASCII subject and sender name, long lines",
    sender: "Téléport Accès <noreply@example.com>",
    to: "reviewer+teleport@sub.example.org",
    subject: "Zugriffsanfrage für Ünïcødé ✓ — approved by a reviewer with a long name indeed",
    text: "Grüße ✅ " + "long line ".repeat(30) + "\r\nsecond line\n\nthird",
    html: "<p>Grüße ✅</p>" + "<span>x</span>".repeat(40),
    thread: "",
  },
  {
    name: "a long ASCII subject that folds, an empty HTML part",
    sender: "noreply@example.com",
    to: "x@y.z",
    subject: "a very long cluster name that keeps on going and going.example.com Role Request 1",
    text: "",
    html: "",
    thread: "<id-with-dots.and.more@mg.example.com>",
  },
];

/** The automated-mail headers and `From`, as SmtpMailer writes them. */
function headLines(sender: string): string[] {
  return [
    ...Object.entries(AUTOMATED_HEADERS).map(([k, v]) => headerLine(k, v)),
    headerLine("From", sender),
  ];
}

/** What SmtpMailer sent before `mime.ts`: nodemailer's MailComposer from the fields. */
async function viaNodemailer(c: Case, messageId: string, date: Date, base: string) {
  const content = encodeContent(c.subject, c.text, c.html);
  const mail = {
    from: c.sender,
    to: c.to,
    subject: c.subject,
    alternatives: [
      { contentType: TEXT_TYPE, raw: content.text },
      { contentType: HTML_TYPE, raw: content.html },
    ],
    messageId,
    date,
    headers: { ...AUTOMATED_HEADERS },
    baseBoundary: base,
    ...(c.thread ? { inReplyTo: c.thread, references: c.thread } : {}),
  };
  return (await new MailComposer(mail).compile().build()).toString("latin1");
}

for (const c of CASES) {
  Deno.test(`assembleMessage() writes what nodemailer writes: ${c.name}`, async () => {
    // The non-ASCII sender name and subject are encoded by nodemailer's MIME node.
    await loadHeaderEncoder();
    const messageId = "<LXKQ9Z8.7QWERTY@host.example>";
    const date = new Date("2026-05-04T03:02:01.123Z");
    const content = encodeContent(c.subject, c.text, c.html);
    const ours = assembleMessage(
      { headLines: headLines(c.sender), to: c.to, thread: c.thread, messageId, date },
      content,
    ).toString("latin1");
    const base = /boundary="--_NmP-([0-9a-f]{16})-Part_1"/.exec(ours)?.[1];
    assert.ok(base, ours);
    assert.equal(ours, await viaNodemailer(c, messageId, date, base));
  });
}

Deno.test("assembleMessage() draws a new boundary for every message", () => {
  const content = encodeContent("s", "t", "h");
  const headers = {
    headLines: headLines("a@b.c"),
    to: "d@e.f",
    thread: "",
    messageId: "<x@y>",
    date: new Date(),
  };
  const a = assembleMessage(headers, content).toString();
  const b = assembleMessage(headers, content).toString();
  assert.notEqual(a, b);
});

Deno.test("headerLine() encodes and folds like nodemailer and drops an empty value", async () => {
  await loadHeaderEncoder();
  assert.equal(headerLine("Subject", "plain"), "Subject: plain");
  assert.match(headerLine("Subject", "für"), /^Subject: =\?UTF-8\?Q\?f=C3=BCr\?=$/);
  assert.match(headerLine("Subject", "word ".repeat(30)), /\r\n /);
  assert.equal(headerLine("Subject", ""), "");
  assert.equal(headerLine("Subject", "  "), "");
  assert.equal(
    headerLine("From", "Teleport <noreply@example.com>"),
    "From: Teleport <noreply@example.com>",
  );
});

Deno.test("encodesNatively() leaves MIME words, quoted names and IDN addresses to nodemailer", () => {
  const sender = ["From", "Teleport Access <noreply@example.com>"] as const;
  assert.equal(encodesNatively([sender, ["Subject", "teleport Role Request 1"]], ["a@b.c"]), true);
  assert.equal(encodesNatively([["Subject", ""]]), true);
  assert.equal(encodesNatively([["Subject", "für"]]), false);
  assert.equal(encodesNatively([["Subject", 'say "hi"']]), false);
  assert.equal(encodesNatively([["Subject", "=?UTF-8?Q?x?="]]), false);
  assert.equal(encodesNatively([["From", "Téléport <noreply@example.com>"]]), false);
  assert.equal(encodesNatively([["From", '"Ops, Inc." <noreply@example.com>']]), false);
  assert.equal(encodesNatively([["Message-ID", "<x@y>"]]), false);
  assert.equal(encodesNatively([], ["bob@bücher.example"]), false);
  assert.equal(encodesNatively([], ['"a b"@example.com']), false);
});

Deno.test("envelopeOf() normalises addresses as nodemailer's setEnvelope() does", async () => {
  assert.deepEqual(envelopeOf("noreply@Example.COM", "Bob@Sub.Example.org"), {
    from: "noreply@example.com",
    to: ["Bob@sub.example.org"],
  });
  await loadHeaderEncoder();
  assert.deepEqual(envelopeOf("noreply@exämple.com", "bob@bücher.example"), {
    from: "noreply@xn--exmple-cua.com",
    to: ["bob@xn--bcher-kva.example"],
  });
});

Deno.test("plainRecipient() is the To value nodemailer writes, for plain addresses only", async () => {
  await loadHeaderEncoder();
  for (const to of ["alice@example.com", "Carol@Example.COM", "a.b+c@Sub.Example.org"]) {
    assert.equal(`To: ${plainRecipient(to)}`, headerLine("To", to));
  }
  for (const to of ["bob@bücher.example", `${"b".repeat(60)}@example.com`, '"a b"@example.com']) {
    assert.equal(plainRecipient(to), undefined, to);
  }
});

Deno.test("plainHeaderValue() accepts short printable ASCII without spaces only", () => {
  assert.equal(plainHeaderValue("alice@example.com"), true);
  assert.equal(plainHeaderValue(""), true);
  assert.equal(plainHeaderValue("a b@example.com"), false);
  assert.equal(plainHeaderValue("ü@example.com"), false);
  assert.equal(plainHeaderValue(`${"a".repeat(60)}@example.com`), false);
});

/** A part as nodemailer streams it inside its multipart parent (what `encodePart()` matches). */
function streamedPart(contentType: string, content: string): Promise<Buffer> {
  const part = new MimeNode("multipart/alternative").createChild(contentType);
  part.setContent(content);
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on("data", (chunk: Buffer) => chunks.push(chunk));
  return new Promise((resolve, reject) => {
    out.on("end", () => resolve(Buffer.concat(chunks)));
    (part as unknown as {
      stream(out: PassThrough, o: object, done: (err?: Error | null) => void): void;
    }).stream(out, {}, (err) => err ? reject(err) : out.end());
  });
}

Deno.test("encodePart() writes the bytes nodemailer streams for a part, in every encoding", async () => {
  const contents = [
    ...CASES.flatMap((c) => [c.text, c.html]),
    "plain ASCII, short lines\nno encoding needed\n", // 7bit
    "Заявка на доступ: пользователь запросил роль ✓\n".repeat(20), // mostly non-Latin: base64
    "trailing spaces \t \nand a line ending in a tab\t\r\nlone\rCR and =equals= signs",
    "x".repeat(65_530) + "   \n" + "ü ".repeat(40_000), // over 64 KiB, whitespace at a slice edge
    "a".repeat(200) + " " + "b".repeat(80), // a long line without a break
  ];
  for (const type of [TEXT_TYPE, HTML_TYPE]) {
    for (const content of contents) {
      const ours = encodePart(type, content).toString("latin1");
      assert.equal(
        ours,
        (await streamedPart(type, content)).toString("latin1"),
        content.slice(0, 40),
      );
    }
  }
});

Deno.test("encodePart() matches nodemailer's stream for generated contents", async () => {
  // A 32-bit LCG with a fixed seed: the same contents on every run.
  let state = 20261207;
  const next = (n: number) => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return Math.floor((state / 2 ** 32) * n);
  };
  const pieces = [
    "word ",
    "a",
    " ",
    "\t",
    "\n",
    "\r\n",
    "\r",
    "=",
    ".",
    ",",
    "!",
    "ü",
    "✓",
    "日本語",
    "😀",
    "=3D",
    "x".repeat(70),
    "<td>cell</td>",
  ];
  for (let i = 0; i < 200; i++) {
    let content = "";
    for (let n = next(400); n > 0; n--) content += pieces[next(pieces.length)];
    for (const type of [TEXT_TYPE, HTML_TYPE]) {
      assert.equal(
        encodePart(type, content).toString("latin1"),
        (await streamedPart(type, content)).toString("latin1"),
        JSON.stringify(content.slice(0, 80)),
      );
    }
  }
});
