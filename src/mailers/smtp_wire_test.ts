import assert from "node:assert/strict";
import { dataPayload, wireForm } from "./smtp_wire.ts";

const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);
const bytes = (s: string) => new TextEncoder().encode(s);

Deno.test("wireForm() makes every line end CRLF and doubles a dot that starts a line", () => {
  const cases: Array<[string, string]> = [
    ["a\r\nb\r\n", "a\r\nb\r\n"],
    ["a\nb\n", "a\r\nb\r\n"],
    [".top\r\nmid\r\n.\r\n", "..top\r\nmid\r\n..\r\n"],
    ["x\n.y\r\n..z", "x\r\n..y\r\n...z"],
    ["no dot. here\r\n", "no dot. here\r\n"],
  ];
  for (const [input, want] of cases) assert.equal(text(wireForm(bytes(input))), want, input);
  const clean = bytes("already\r\nclean\r\n");
  assert.equal(wireForm(clean), clean, "unchanged bytes are not copied");
});

Deno.test("dataPayload() ends the message with a dot on its own line", () => {
  assert.equal(text(dataPayload(bytes("body\r\n"))), "body\r\n.\r\n");
  assert.equal(text(dataPayload(bytes("body"))), "body\r\n.\r\n");
  assert.equal(text(dataPayload(bytes("a\n.b"))), "a\r\n..b\r\n.\r\n");
});
