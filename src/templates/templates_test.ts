import assert from "node:assert/strict";
import type { AccessReview } from "../teleport/types.ts";
import {
  type EmailContent,
  formatRfc822,
  goPathEscape,
  headerSafe,
  type RequestContext,
  requestLink,
  subjectFor,
} from "./common.ts";
import { newRequestEmail } from "./new_request.ts";
import { resolutionEmail } from "./resolution.ts";
import { reviewEmail } from "./review.ts";

// Golden files: src/templates/testdata/<case>.{subject,text,html}.golden, compared byte for
// byte. Regenerate with `UPDATE_GOLDEN=1 deno test -A src/templates/templates_test.ts` and
// review the diff.
const TESTDATA = new URL("./testdata/", import.meta.url);
const UPDATE = Deno.env.get("UPDATE_GOLDEN") === "1";

async function assertGolden(name: string, got: EmailContent): Promise<void> {
  for (const part of ["subject", "text", "html"] as const) {
    const file = new URL(`${name}.${part}.golden`, TESTDATA);
    if (UPDATE) {
      await Deno.writeTextFile(file, got[part]);
      continue;
    }
    const want = await Deno.readTextFile(file);
    assert.equal(got[part], want, `${name}.${part} differs from its golden file`);
  }
}

const ID = "1f0c6d2e-3b4a-4c5d-8e9f-0a1b2c3d4e5f";
const OSS: RequestContext = {
  clusterName: "teleport.example.com",
  requestId: ID,
  user: "requester-oss@example.com",
  roles: ["editor"],
  requestReason: "because of",
};
const ENTERPRISE: RequestContext = {
  ...OSS,
  user: "alice@example.com",
  webProxyAddr: "teleport.example.com:443",
};
const HOSTILE: RequestContext = {
  clusterName: "evil\r\nBcc: victim@example.com",
  requestId: ID,
  user: "<b>mallory</b>@example.com",
  roles: ["editor", "auditor"],
  requestReason:
    "please\r\n\r\nStatus: ✅ APPROVED\n<script>alert('x')</script> & \"quotes\" \u0007bell\u0000 — Grüße 👋 日本語",
};
const T = new Date(Date.UTC(2026, 10, 24, 5, 0, 7, 250));

function review(over: Partial<AccessReview>): AccessReview {
  return {
    author: "reviewer1@example.com",
    roles: ["reviewer"],
    proposedState: "APPROVED",
    reason: "okay",
    created: T,
    ...over,
  };
}

// --- Reference bodies, written out by hand from the Go plugin's buildBody ---

Deno.test("newRequestEmail() renders the Go OSS body with tsh commands", () => {
  const e = newRequestEmail(OSS);
  assert.equal(e.subject, `teleport.example.com Role Request ${ID}`);
  assert.equal(
    e.text,
    "You have a new Role Request:\n\n" +
      `ID: ${ID}\n` +
      "Cluster: teleport.example.com\n" +
      "User: requester-oss@example.com\n" +
      "Role(s): editor\n" +
      "Reason: because of\n" +
      `Approve: tsh request review --approve ${ID}\n` +
      `Deny: tsh request review --deny ${ID}\n` +
      "\n" +
      "Status: ⏳ PENDING",
  );
});

Deno.test("resolutionEmail() renders the reference Enterprise approved example", () => {
  const e = resolutionEmail(ENTERPRISE, { tag: "APPROVED", reason: "finally okay" });
  assert.equal(
    e.text,
    "Role Request has been resolved:\n\n" +
      `ID: ${ID}\n` +
      "Cluster: teleport.example.com\n" +
      "User: alice@example.com\n" +
      "Role(s): editor\n" +
      "Reason: because of\n" +
      `Link: https://teleport.example.com/web/requests/${ID}\n` +
      "\n" +
      "Status: ✅ APPROVED (finally okay)",
  );
});

Deno.test("resolutionEmail() without a link has no tsh lines", () => {
  const e = resolutionEmail(OSS, { tag: "DENIED", reason: "not okay" });
  assert.ok(!e.text.includes("tsh request review"));
  assert.ok(e.text.endsWith("Reason: because of\n\nStatus: ❌ DENIED (not okay)"));
  const x = resolutionEmail(OSS, { tag: "EXPIRED", reason: "" });
  assert.ok(x.text.endsWith("\n\nStatus: ⌛ EXPIRED"));
});

Deno.test("request emails omit empty user, roles and reason lines and join roles with ','", () => {
  const e = newRequestEmail({ ...OSS, user: "", roles: [], requestReason: "" });
  assert.ok(!/^(User|Role\(s\)|Reason):/m.test(e.text));
  const r = newRequestEmail({ ...OSS, roles: ["a", "b", "c"] });
  assert.match(r.text, /^Role\(s\): a,b,c$/m);
});

Deno.test("resolutionEmail() renders PROMOTED with the Access List title", () => {
  const e = resolutionEmail(ENTERPRISE, {
    tag: "PROMOTED",
    reason: "long-term access",
    accessListTitle: "Prod\nAccess",
  });
  assert.ok(
    e.text.endsWith('\n\nStatus: 🎉 PROMOTED to Access List "Prod Access" (long-term access)'),
  );
  const bare = resolutionEmail(OSS, { tag: "PROMOTED", reason: "" });
  assert.ok(bare.text.endsWith("\n\nStatus: 🎉 PROMOTED"));
});

Deno.test("reviewEmail() renders the Go review reply with and without a reason", () => {
  assert.equal(
    reviewEmail(OSS, review({})).text,
    "reviewer1@example.com reviewed the request at 24 Nov 26 05:00 UTC.\n" +
      "Resolution: ✅ APPROVED.\n" +
      "Reason: okay.",
  );
  assert.equal(
    reviewEmail(OSS, review({ proposedState: "DENIED", reason: "" })).text,
    "reviewer1@example.com reviewed the request at 24 Nov 26 05:00 UTC.\n" +
      "Resolution: ❌ DENIED.\n",
  );
  assert.equal(
    reviewEmail(OSS, review({ proposedState: "PENDING", reason: "", created: undefined })).text,
    "reviewer1@example.com reviewed the request at 01 Jan 01 00:00 UTC.\n" +
      "Resolution:  PENDING.\n",
  );
  assert.equal(reviewEmail(OSS, review({})).subject, `teleport.example.com Role Request ${ID}`);
});

// --- Safety ---

Deno.test("subjects never contain control characters", () => {
  for (
    const e of [
      newRequestEmail(HOSTILE),
      resolutionEmail(HOSTILE, { tag: "DENIED", reason: "a\r\nb" }),
      reviewEmail(HOSTILE, review({ author: "x\r\ny" })),
    ]
  ) {
    assert.equal(e.subject, `evil Bcc: victim@example.com Role Request ${ID}`);
    // deno-lint-ignore no-control-regex
    assert.ok(!/[\u0000-\u001f\u007f]/.test(e.subject));
  }
  assert.equal(headerSafe("a\u2028b\u0085c\td"), "a b c d");
});

Deno.test("a multi-line reason cannot forge a status line in the text body", () => {
  const e = newRequestEmail(HOSTILE);
  const statusLines = e.text.split("\n").filter((l) => l.startsWith("Status:"));
  assert.deepEqual(statusLines, ["Status: ⏳ PENDING"]);
  assert.ok(!e.text.includes("\r"));
  assert.ok(!e.text.includes("\u0007") && !e.text.includes("\u0000"));
  assert.ok(e.text.includes("Reason: please\n  \n  Status: ✅ APPROVED\n  <script>"));
});

Deno.test("HTML parts escape all user input", () => {
  const e = newRequestEmail(HOSTILE);
  assert.ok(!e.html.includes("<script>"));
  assert.ok(!e.html.includes("<b>mallory"));
  assert.ok(
    e.html.includes("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;quotes&quot;"),
  );
  assert.ok(e.html.includes("Grüße 👋 日本語"));
  const r = reviewEmail(HOSTILE, review({ author: "<i>x</i>", reason: "<img src=x>" }));
  assert.ok(!r.html.includes("<img") && !r.html.includes("<i>"));
  for (const html of [e.html, r.html]) {
    assert.ok(
      !/<(script|link|img|iframe|object|style)\b/i.test(html),
      "no active or external content",
    );
  }
});

// --- Helpers ---

Deno.test("requestLink() adds https, strips :443 and path-escapes the ID", () => {
  assert.equal(
    requestLink("proxy.example.com:443", "abc"),
    "https://proxy.example.com/web/requests/abc",
  );
  assert.equal(
    requestLink("proxy.example.com", "abc"),
    "https://proxy.example.com/web/requests/abc",
  );
  assert.equal(
    requestLink("proxy.example.com:3080", "abc"),
    "https://proxy.example.com:3080/web/requests/abc",
  );
  assert.equal(
    requestLink("https://p.example.com:443/", "a"),
    "https://p.example.com/web/requests/a",
  );
  assert.equal(
    requestLink("http://p.example.com:443", "a"),
    "http://p.example.com:443/web/requests/a",
  );
  assert.equal(
    requestLink("http://p.example.com:80", "a"),
    "http://p.example.com:80/web/requests/a",
  );
  assert.equal(requestLink("p", "a b/c?d"), "https://p/web/requests/a%20b%2Fc%3Fd");
  assert.equal(requestLink("", "a"), undefined);
  assert.equal(requestLink(undefined, "a"), undefined);
});

Deno.test("goPathEscape() keeps the characters Go's url.PathEscape keeps", () => {
  assert.equal(goPathEscape("aZ09-_.~$&+:=@"), "aZ09-_.~$&+:=@");
  assert.equal(goPathEscape("/;,?#% !'()*é"), "%2F%3B%2C%3F%23%25%20%21%27%28%29%2A%C3%A9");
});

Deno.test("formatRfc822() uses Go's RFC822 layout in UTC", () => {
  assert.equal(formatRfc822(new Date(Date.UTC(2026, 10, 24, 5, 0, 59))), "24 Nov 26 05:00 UTC");
  assert.equal(formatRfc822(new Date(Date.UTC(2001, 0, 2, 23, 9))), "02 Jan 01 23:09 UTC");
  assert.equal(formatRfc822(undefined), "01 Jan 01 00:00 UTC");
  assert.equal(subjectFor("c", "i"), "c Role Request i");
});

// --- Golden files ---

const RESOURCES = [
  { clusterName: "teleport.example.com", kind: "node", name: "a1b2c3", subResourceName: "" },
  {
    clusterName: "teleport.example.com",
    kind: "node",
    name: "web-1",
    subResourceName: "",
    constraints: { kind: "ssh" as const, values: ["root", "<admin>"] },
  },
  {
    clusterName: "teleport.example.com",
    kind: "kube_cluster",
    name: "prod",
    subResourceName: "ns/default",
  },
];
const EXPIRES = new Date(Date.UTC(2026, 10, 24, 17, 30, 0));
const BIG_REASON = Array.from({ length: 2048 }, (_, i) => `line ${i} <x> & ü ${"a".repeat(40)}\n`)
  .join("").slice(0, 100 * 1024);

const GOLDEN: Array<[string, () => EmailContent]> = [
  ["new_oss", () => newRequestEmail(OSS)],
  ["new_enterprise", () => newRequestEmail(ENTERPRISE)],
  ["new_hostile", () => newRequestEmail(HOSTILE)],
  [
    "new_resources_expiry",
    () => newRequestEmail({ ...ENTERPRISE, requestedResources: RESOURCES, expires: EXPIRES }),
  ],
  ["new_100kb_reason", () => newRequestEmail({ ...OSS, requestReason: BIG_REASON })],
  [
    "resolved_approved_enterprise",
    () => resolutionEmail(ENTERPRISE, { tag: "APPROVED", reason: "finally okay" }),
  ],
  ["resolved_denied_oss", () => resolutionEmail(OSS, { tag: "DENIED", reason: "not okay" })],
  ["resolved_expired_oss", () => resolutionEmail(OSS, { tag: "EXPIRED", reason: "" })],
  [
    "resolved_promoted",
    () =>
      resolutionEmail({ ...ENTERPRISE, expires: EXPIRES }, {
        tag: "PROMOTED",
        reason: "",
        accessListTitle: "Prod <Access>",
      }),
  ],
  [
    "resolved_hostile",
    () => resolutionEmail(HOSTILE, { tag: "DENIED", reason: "no\r\n<script>x</script>" }),
  ],
  ["review_approved", () => reviewEmail(OSS, review({}))],
  [
    "review_denied_no_reason",
    () => reviewEmail(OSS, review({ proposedState: "DENIED", reason: "" })),
  ],
  [
    "review_pending_zero_time",
    () => reviewEmail(OSS, review({ proposedState: "PENDING", created: undefined })),
  ],
  [
    "review_hostile",
    () =>
      reviewEmail(HOSTILE, review({ author: "<b>x</b>", reason: "a\r\nReason: forged\n<script>" })),
  ],
];

for (const [name, render] of GOLDEN) {
  Deno.test(`templates match the golden file ${name}`, async () => {
    await assertGolden(name, render());
  });
}

Deno.test("the 100 KB reason is kept whole in both parts", () => {
  const e = newRequestEmail({ ...OSS, requestReason: BIG_REASON });
  assert.ok(e.text.length > 100 * 1024);
  assert.ok(e.text.includes("\nReason: " + BIG_REASON.replaceAll("\n", "\n  ") + "\n"));
  assert.ok(e.text.endsWith("Status: ⏳ PENDING"));
  assert.ok(e.html.includes("&lt;x&gt; &amp;"));
});
