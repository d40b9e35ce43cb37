import assert from "node:assert/strict";
import { FakeMailer } from "../../tests/helpers/fakes.ts";
import { SwappableMailer } from "./swappable.ts";

const EMAIL = { to: "a@example.com", subject: "s", text: "t", html: "h" };

Deno.test("SwappableMailer: a send in flight finishes on the old mailer, which closes after it", async () => {
  const first = new FakeMailer();
  const second = new FakeMailer();
  let release = () => {};
  first.gate = new Promise<void>((r) => (release = r));
  const mailer = new SwappableMailer(first);
  const inFlight = mailer.send(EMAIL);
  mailer.replace(second);
  assert.equal(mailer.current, second);
  await mailer.send({ ...EMAIL, to: "b@example.com" });
  assert.equal(first.closed, false, "closed while its send was running");
  release();
  await inFlight;
  assert.deepEqual(first.sent.map((e) => e.to), ["a@example.com"]);
  assert.deepEqual(second.sent.map((e) => e.to), ["b@example.com"]);
  await mailer.close();
  assert.equal(first.closed, true);
  assert.equal(second.closed, true);
});

Deno.test("SwappableMailer: an idle mailer closes as soon as it is replaced", async () => {
  const first = new FakeMailer();
  const mailer = new SwappableMailer(first);
  mailer.replace(new FakeMailer());
  await mailer.close();
  assert.equal(first.closed, true);
});
