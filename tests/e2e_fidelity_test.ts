/**
 * What current Teleport and real mail systems expect, through the real CLI: resources requested
 * through `RequestedResourceAccessIDs` (field 26 only, as current Teleport may send them) are
 * listed in the email, and every email is marked automatic (`Auto-Submitted`) with a fully
 * qualified EHLO name and Message-ID domain.
 */
import assert from "node:assert/strict";
import { E2eEnv } from "./helpers/e2e_env.ts";

const RESOURCES = [
  { clusterName: "teleport.example.com", kind: "node", name: "web-1", subResourceName: "" },
  {
    clusterName: "teleport.example.com",
    kind: "node",
    name: "db-2",
    subResourceName: "",
    constraints: { kind: "ssh" as const, values: ["root"] },
  },
];

for (const mailer of ["smtp", "mailgun"] as const) {
  Deno.test(`e2e ${mailer}: resources of field 26 are listed and emails are marked automatic`, async () => {
    await using env = await E2eEnv.start({ mailer });
    await env.startPlugin();
    const req = env.teleport.createAccessRequest({
      user: "requester@example.com",
      roles: ["editor"],
      reason: "resources",
      requestedResources: RESOURCES,
      resourceFields: "26",
    });
    const [email] = await env.waitForEmailsFor(req.id, 1);
    assert.ok(email.text.includes("Requested resources:"), email.text);
    assert.match(email.text, / {2}\/teleport\.example\.com\/node\/web-1\r?\n/);
    assert.ok(email.text.includes("  /teleport.example.com/node/db-2 (logins: root)"), email.text);
    assert.ok(email.html.includes("/teleport.example.com/node/db-2</code> (logins: root)"));
    if (email.smtp) {
      const headers = email.smtp.headers;
      assert.equal(headers.get("auto-submitted"), "auto-generated");
      assert.equal(headers.get("x-auto-response-suppress"), "All");
      const domain = email.messageId.replace(/^<[^@]*@/, "").replace(/>$/, "");
      assert.ok(domain.includes("."), `Message-ID domain not fully qualified: ${email.messageId}`);
      assert.equal(email.smtp.heloName, domain, "EHLO name and Message-ID domain");
    } else {
      const sent = env.mailgun?.messages.find((m) => m.subject.includes(req.id));
      assert.equal(sent?.headers["Auto-Submitted"], "auto-generated");
      assert.equal(sent?.headers["X-Auto-Response-Suppress"], "All");
    }
  });
}
