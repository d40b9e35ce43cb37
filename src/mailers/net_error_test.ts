import assert from "node:assert/strict";
import { connectFailureDetail } from "./net_error.ts";

const refused = (address: string, port: number) =>
  Object.assign(new Error(`connect ECONNREFUSED ${address}:${port}`), {
    code: "ECONNREFUSED",
    address,
    port,
  });

Deno.test("connectFailureDetail() names each address of an AggregateError and its cause", () => {
  const err = Object.assign(
    new AggregateError([refused("::1", 2600), refused("127.0.0.1", 2600)]),
    {
      code: "ESOCKET",
    },
  );
  assert.equal(err.message, "", "the message is empty, as nodemailer reports it under Deno");
  assert.equal(
    connectFailureDetail(err),
    "every address failed: [::1]:2600: connection refused (ECONNREFUSED); 127.0.0.1:2600: connection refused (ECONNREFUSED)",
  );
  const odd = new AggregateError([
    Object.assign(new Error("weird failure"), { code: "EWEIRD", address: "10.0.0.1" }),
  ]);
  assert.equal(connectFailureDetail(odd), "10.0.0.1: weird failure");
  assert.equal(connectFailureDetail(new Error("plain")), undefined);
  assert.equal(connectFailureDetail(new AggregateError([])), undefined);
});
