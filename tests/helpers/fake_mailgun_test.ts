import assert from "node:assert/strict";
import { FakeMailgun } from "./fake_mailgun.ts";

function post(url: string, key: string, fields: [string, string][]): Promise<Response> {
  const form = new FormData();
  for (const [k, v] of fields) form.append(k, v);
  return fetch(url, {
    method: "POST",
    body: form,
    headers: { authorization: `Basic ${btoa(`api:${key}`)}` },
  });
}

const base: [string, string][] = [["from", "a@x.test"], ["to", "b@x.test"], ["subject", "s"], [
  "text",
  "t",
]];

Deno.test("FakeMailgun records a message and answers a bracketed id", async () => {
  const fake = await FakeMailgun.start({ apiKey: "k1" });
  try {
    const res = await post(`${fake.apiBase}/${fake.domain}/messages`, "k1", [
      ...base,
      ["h:In-Reply-To", "<x@y>"],
      ["o:tag", "t1"],
      ["v:ignored", "1"],
    ]);
    assert.equal(res.status, 200);
    const body = await res.json();
    assert.match(body.id, /^<[0-9a-f-]{36}@mg\.example\.test>$/);
    assert.equal(body.message, "Queued. Thank you.");
    const [msg] = await fake.waitFor(1);
    assert.equal(msg.id, body.id);
    assert.deepEqual(msg.headers, { "In-Reply-To": "<x@y>" });
    assert.deepEqual(msg.options, { "o:tag": "t1" });
    assert.deepEqual(fake.requests.map((r) => [r.authUser, r.authOk, r.status]), [[
      "api",
      true,
      200,
    ]]);
  } finally {
    await fake.close();
  }
});

Deno.test("FakeMailgun answers like Mailgun for bad requests", async () => {
  const fake = await FakeMailgun.start({ apiKey: "k1" });
  try {
    const url = `${fake.apiBase}/${fake.domain}/messages`;
    const cases: [Promise<Response>, number][] = [
      [post(url, "wrong", base), 401],
      [post(url, "k1", [["from", "a@x.test"]]), 400],
      [post(`${fake.url}/v4/${fake.domain}/messages`, "k1", base), 401],
      [post(`${fake.apiBase}/other.test/messages`, "k1", base), 404],
      [post(url, "k1", [...base, ["o:testmode", "yes"]]), 200],
      [fetch(`${fake.apiBase}/nothing`), 404],
    ];
    for (const [p, status] of cases) {
      const res = await p;
      await res.body?.cancel();
      assert.equal(res.status, status);
    }
    assert.equal(fake.messages.length, 0);
    fake.failNext(1, 429);
    const limited = await post(url, "k1", base);
    assert.equal(limited.status, 429);
    assert.deepEqual(await limited.json(), { message: "Injected failure 429" });
    await assert.rejects(fake.waitFor(1, { timeoutMs: 20 }), /0 of 1 messages after 20 ms/);
  } finally {
    await fake.close();
  }
});
