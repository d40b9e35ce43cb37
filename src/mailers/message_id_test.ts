import assert from "node:assert/strict";
import {
  bare,
  bracketed,
  generateMessageId,
  localHostname,
  sanitizeHostname,
} from "./message_id.ts";
import { addressOf, checkRecipient, isLoopbackHost, oneLine } from "./address.ts";
import { MailerError } from "../errors.ts";

Deno.test("generateMessageId() follows the Go plugin's format", () => {
  const id = generateMessageId({
    hostname: "mail.example.com",
    nowNs: 1_700_000_000_123_456_789n,
    random: 2n ** 64n - 1n,
  });
  assert.equal(
    id,
    `<${(1_700_000_000_123_456_789n).toString(36).toUpperCase()}.3W5E11264SGSF@mail.example.com>`,
  );
  const live = generateMessageId();
  assert.match(live, /^<[0-9A-Z]+\.[0-9A-Z]+@[a-z0-9.-]+>$/);
  assert.ok(live.endsWith(`@${localHostname()}>`));
  const [time] = live.slice(1).split(".");
  const ns = [...time.toLowerCase()].reduce((n, c) => n * 36n + BigInt(parseInt(c, 36)), 0n);
  const nowNs = BigInt(Date.now()) * 1_000_000n;
  assert.ok(ns > nowNs - 60_000_000_000n && ns <= nowNs + 1_000_000_000n, `time part ${ns}`);
});

Deno.test("generateMessageId() gives distinct IDs", () => {
  const ids = new Set(Array.from({ length: 1000 }, () => generateMessageId()));
  assert.equal(ids.size, 1000);
});

Deno.test("sanitizeHostname() keeps a valid domain and falls back to localhost", () => {
  assert.equal(sanitizeHostname("Mail-01.Example.COM"), "mail-01.example.com");
  assert.equal(sanitizeHostname("my host_name..local."), "my-host-name.local");
  assert.equal(sanitizeHostname("-edge-.x"), "edge.x");
  assert.equal(sanitizeHostname(""), "localhost");
  assert.equal(sanitizeHostname("<>@"), "localhost");
  assert.equal(sanitizeHostname("a".repeat(100)), "a".repeat(63));
  assert.ok(sanitizeHostname(Array(100).fill("abc").join(".")).length <= 253);
});

Deno.test("bracketed() adds exactly one pair of angle brackets", () => {
  assert.equal(bracketed("a@b"), "<a@b>");
  assert.equal(bracketed("<a@b>"), "<a@b>");
  assert.equal(bracketed("<<a@b>>"), "<a@b>");
  assert.equal(bracketed("  <a@b> "), "<a@b>");
  assert.equal(bracketed(""), "");
  assert.equal(bracketed("<>"), "");
});

Deno.test("bare() removes all surrounding angle brackets", () => {
  assert.equal(bare("<<a@b>>"), "a@b");
  assert.equal(bare("<a@b>"), "a@b");
  assert.equal(bare("a@b"), "a@b");
});

Deno.test("addressOf() extracts the bare address from a From value", () => {
  assert.equal(addressOf("Teleport <noreply@example.com>"), "noreply@example.com");
  assert.equal(addressOf('"Ops, Team" <ops@example.com> '), "ops@example.com");
  assert.equal(addressOf(" noreply@example.com "), "noreply@example.com");
});

Deno.test("checkRecipient() accepts one address and rejects lists and headers", () => {
  checkRecipient("first.last+tag@sub.example.com");
  for (
    const bad of ["", "a@b.com,c@d.com", "a@b.com c@d.com", "Bob <b@x.com>", "a@b\r\nBcc: x@y", "x"]
  ) {
    assert.throws(() => checkRecipient(bad), (err: unknown) => {
      assert.ok(err instanceof MailerError);
      assert.equal(err.retryable, false);
      assert.match(err.message, /^Invalid recipient address/);
      return true;
    });
  }
});

Deno.test("oneLine() turns CR and LF into spaces", () => {
  assert.equal(oneLine("a\r\nb\nc\rd"), "a b c d");
});

Deno.test("isLoopbackHost() recognises loopback names and addresses", () => {
  for (
    const h of ["localhost", "LOCALHOST", "127.0.0.1", "127.1.2.3", "::1", "[::1]", "x.localhost"]
  ) {
    assert.equal(isLoopbackHost(h), true, h);
  }
  for (const h of ["smtp.example.com", "10.0.0.1", "::2", "localhost.example.com", "128.0.0.1"]) {
    assert.equal(isLoopbackHost(h), false, h);
  }
});
