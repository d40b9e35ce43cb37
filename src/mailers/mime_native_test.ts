/**
 * `mime_native.ts` against nodemailer itself, the implementation it was ported from: the same
 * output for hand-picked edge cases and for a few hundred generated values (a fixed seed, so a
 * failure repeats).
 */
import assert from "node:assert/strict";
import MimeNode from "nodemailer/lib/mime-node";
import * as mimeFuncs from "nodemailer/lib/mime-funcs";
import {
  foldLines,
  plainAddress,
  plainMailbox,
  plainTextValue,
  transferEncoding,
} from "./mime_native.ts";
import { loadHeaderEncoder, nodemailerHeaderLine } from "./mime.ts";

/** A deterministic generator of test strings (a 32-bit LCG). */
function generator(seed: number) {
  let state = seed >>> 0;
  const next = () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0) / 2 ** 32;
  return {
    int: (n: number) => Math.floor(next() * n),
    /** A string of `length` pieces drawn from `pieces`. */
    text(pieces: readonly string[], length: number): string {
      let s = "";
      for (let i = 0; i < length; i++) s += pieces[Math.floor(next() * pieces.length)];
      return s;
    },
  };
}

/** nodemailer's transfer encoding of a text part holding `content`. */
function nodemailerEncoding(content: string): string | false {
  const part = new MimeNode("multipart/alternative").createChild("text/plain; charset=utf-8");
  part.setContent(content);
  return part.getTransferEncoding();
}

Deno.test("transferEncoding() chooses as nodemailer does", () => {
  const g = generator(7);
  const pieces = ["a", "b", " ", "\n", "\r\n", "\t", ".", "ü", "日本", "\u0001", "x".repeat(40)];
  const contents = [
    "",
    "short\nlines",
    "x".repeat(76),
    "x".repeat(77),
    "é",
    "éé abc",
    "Заявка",
    ...Array.from({ length: 300 }, () => g.text(pieces, g.int(12))),
  ];
  for (const content of contents) {
    assert.equal(transferEncoding(content), nodemailerEncoding(content), JSON.stringify(content));
  }
});

Deno.test("foldLines() folds header lines as nodemailer does", () => {
  const g = generator(11);
  const pieces = [
    "word",
    " ",
    "  ",
    "\t",
    "x".repeat(30),
    "a",
    "-",
    ".",
    "verylongtoken".repeat(3),
  ];
  const lines = [
    "",
    "Subject: short",
    `Subject: ${"x".repeat(100)}`,
    `Subject: ${"word ".repeat(40)}`,
    `Subject: ${"a".repeat(70)} ${"b".repeat(10)}`,
    ...Array.from({ length: 400 }, () => `Subject: ${g.text(pieces, g.int(30))}`),
  ];
  for (const line of lines) {
    assert.equal(foldLines(line), mimeFuncs.foldLines(line, 76), JSON.stringify(line));
  }
});

Deno.test("plainTextValue() takes only values nodemailer writes unchanged", async () => {
  await loadHeaderEncoder();
  const g = generator(13);
  const pieces = ["Role", " ", "Request", "-", "0b4c2cfe", ".", "=", "?", ":", "(", "_", "x"];
  const subjects = [
    "teleport.example.com Role Request 0b4c2cfe-3b5e-4bd6-9a33-0d5b1a1e5c9e",
    "a=?b",
    "=?x?=",
    "fine = ? ok",
    ...Array.from({ length: 300 }, () => g.text(pieces, 1 + g.int(25))),
  ];
  let taken = 0;
  for (const subject of subjects) {
    const plain = plainTextValue(subject);
    // A blank value leaves the header out (`headerLine()` in `mime.ts` does that).
    if (plain === undefined || subject.trim() === "") continue;
    taken++;
    assert.equal(foldLines(`Subject: ${plain}`), nodemailerHeaderLine("Subject", subject), subject);
  }
  assert.ok(taken > 200, `only ${taken} values taken`);
  for (const value of ["für", 'say "hi"', "=?UTF-8?Q?x?=", "tab\there", "a\u0001b"]) {
    assert.equal(plainTextValue(value), undefined, value);
  }
});

const ADDRESSES = [
  "alice@example.com",
  "Alice.Smith+teleport@Mail.Example.COM",
  "a_b-c@sub-domain.example.org",
  "x@y.z",
  "reviewer@localhost",
  "UPPER@EXAMPLE.COM",
  "first.last@123.example",
];

Deno.test("plainAddress() normalises bare addresses as nodemailer's envelope does", () => {
  for (const address of ADDRESSES) {
    const node = new MimeNode();
    const envelope = node.setEnvelope({ from: address, to: [address] }).getEnvelope();
    assert.equal(plainAddress(address), envelope.from, address);
    assert.deepEqual([plainAddress(address)], envelope.to, address);
  }
  for (
    const other of [
      "bob@bücher.example",
      "ü@example.com",
      '"a b"@example.com',
      "a..b@example.com",
      ".a@example.com",
      "a@-example.com",
      "a@xn--bcher-kva.example",
      "a@[127.0.0.1]",
      "nobody",
      "a@b@c.com",
      "a@example.com ",
    ]
  ) {
    assert.equal(plainAddress(other), undefined, other);
  }
});

Deno.test("plainMailbox() writes From as nodemailer does, a bare address or after a plain name", async () => {
  await loadHeaderEncoder();
  const values = [
    ...ADDRESSES,
    "Teleport <noreply@example.com>",
    "Teleport Access <NoReply@Example.com>",
    "Teleport_Bot 2 <bot@example.com>",
  ];
  for (const value of values) {
    const ours = plainMailbox(value);
    assert.ok(ours !== undefined, value);
    assert.equal(foldLines(`From: ${ours}`), nodemailerHeaderLine("From", value), value);
  }
  for (
    const other of [
      "Téléport <noreply@example.com>",
      '"Ops, Inc." <noreply@example.com>',
      "Teleport  Access <noreply@example.com>",
      "Ops (team) <noreply@example.com>",
      "Teleport <bob@bücher.example>",
      "<noreply@example.com>",
    ]
  ) {
    assert.equal(plainMailbox(other), undefined, other);
  }
});
