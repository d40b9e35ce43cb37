import assert from "node:assert/strict";
import { goParseAddress, isBareEmailAddress, parseIp, parseMailbox } from "./email_address.ts";

Deno.test("isBareEmailAddress() accepts what Go's ParseAddress returns unchanged", () => {
  for (
    const s of [
      "user@example.com",
      "user@localhost",
      "first.last@sub.example.co.uk",
      "user+tag@example.com",
      "o'brien@example.com",
      "a!#$%&'*+-/=?^_`{|}~@example.com",
      "user@[192.0.2.1]",
      "user@[IPv6:2001:db8::1]",
      "user@[IPv6:::1]",
      "user@[::ffff:192.0.2.1]",
      "jörg@bücher.example",
      "用户@例子.广告",
      "x@y",
    ]
  ) {
    assert.equal(isBareEmailAddress(s), true, s);
  }
});

Deno.test("isBareEmailAddress() rejects display names, comments, spaces and bad syntax", () => {
  for (
    const s of [
      "",
      " ",
      "Name <user@example.com>",
      "<user@example.com>",
      "user@example.com (Name)",
      " user@example.com",
      "user@example.com ",
      "\tuser@example.com",
      "user@example.com\r\n",
      "user@example.com\nBcc: evil@example.com",
      "user\r\n@example.com",
      "user@exa\nmple.com",
      "a@b.c,d@e.f",
      "a@b.c, d@e.f",
      "user",
      "user@",
      "@example.com",
      "user@@example.com",
      "user@example.com.",
      "user.@example.com",
      ".user@example.com",
      "us..er@example.com",
      "user@exa..mple.com",
      "user@.example.com",
      '"quoted"@example.com',
      '"john doe"@example.com',
      "user@[192.0.2.256]",
      "user@[01.2.3.4]",
      "user@[2001:db8::1]",
      "user@[IPv6:2001:db8::g]",
      "user@[example.com]",
      "user@[192.0.2.1",
      "user name@example.com",
      "user@exam ple.com",
      "G: a@b.c;",
      "user@example.com\u0000",
      "user@example.com\ud800",
      "user(comment)@example.com",
    ]
  ) {
    assert.equal(isBareEmailAddress(s), false, JSON.stringify(s));
  }
});

Deno.test("goParseAddress() follows Go on quoted local parts and comments", () => {
  assert.deepEqual(goParseAddress('"john doe"@example.com'), {
    name: "",
    address: "john doe@example.com",
  });
  assert.deepEqual(goParseAddress("a@b.c (Ann Smith)"), { name: "Ann Smith", address: "a@b.c" });
  assert.deepEqual(goParseAddress("  a@b.c  "), { name: "", address: "a@b.c" });
  assert.deepEqual(goParseAddress("G: a@b.c;"), { name: "", address: "a@b.c" });
  assert.equal(goParseAddress("G: a@b.c, d@e.f;"), undefined);
  assert.equal(goParseAddress("G: ;"), undefined);
  assert.equal(goParseAddress('"" @b.c'), undefined);
});

Deno.test("parseMailbox() accepts bare addresses and display names", () => {
  assert.deepEqual(parseMailbox("noreply@example.com"), {
    name: "",
    address: "noreply@example.com",
  });
  assert.deepEqual(parseMailbox("Teleport <noreply@example.com>"), {
    name: "Teleport",
    address: "noreply@example.com",
  });
  assert.deepEqual(parseMailbox('"Team, Ops" <a@b.c>'), { name: "Team, Ops", address: "a@b.c" });
  assert.deepEqual(parseMailbox("Teleport Access Bot <bot@localhost>"), {
    name: "Teleport Access Bot",
    address: "bot@localhost",
  });
  assert.deepEqual(parseMailbox("Jörg Müller <j@example.de>"), {
    name: "Jörg Müller",
    address: "j@example.de",
  });
  assert.deepEqual(parseMailbox("=?utf-8?q?J=C3=B6rg?= <j@example.de>"), {
    name: "Jörg",
    address: "j@example.de",
  });
  assert.deepEqual(parseMailbox("=?UTF-8?B?SsO2cmc=?= <j@example.de>"), {
    name: "Jörg",
    address: "j@example.de",
  });
  assert.deepEqual(parseMailbox("<a@b.c>"), { name: "", address: "a@b.c" });
  assert.deepEqual(parseMailbox("a@b.c (Ops)"), { name: "Ops", address: "a@b.c" });
});

Deno.test("parseMailbox() rejects lists, groups, control characters and bad addresses", () => {
  for (
    const s of [
      "",
      "Teleport",
      "Teleport <>",
      "Teleport <noreply>",
      "Teleport <noreply@example.com",
      "Team, Ops <a@b.c>",
      "a@b.c, d@e.f",
      "Ops: a@b.c;",
      "Teleport\r\n <a@b.c>",
      "a@b.c (x\r\nBcc: evil@example.com)",
      "Teleport <a@b.c>\n",
      "Teleport <a@b.c> trailing",
      '"unclosed <a@b.c>',
      "=?koi8-r?q?abc?= <a@b.c>",
    ]
  ) {
    assert.equal(parseMailbox(s), undefined, JSON.stringify(s));
  }
});

Deno.test("parseIp() follows Go's net.ParseIP", () => {
  assert.notEqual(parseIp("192.0.2.1"), undefined);
  assert.notEqual(parseIp("::"), undefined);
  assert.notEqual(parseIp("::1"), undefined);
  assert.notEqual(parseIp("1::"), undefined);
  assert.notEqual(parseIp("2001:db8:0:0:0:0:0:1"), undefined);
  assert.notEqual(parseIp("::ffff:192.0.2.1"), undefined);
  assert.deepEqual(
    Array.from(parseIp("2001:db8::1")!),
    [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
  );
  for (
    const s of [
      "",
      "1.2.3",
      "1.2.3.4.5",
      "01.2.3.4",
      "256.1.1.1",
      "1:2:3:4:5:6:7:8:9",
      "1::2::3",
      "12345::1",
      "1:2:3:4:5:6:7:8::",
      "fe80::1%eth0",
      ":1",
      "1:",
    ]
  ) {
    assert.equal(parseIp(s), undefined, s);
  }
});
