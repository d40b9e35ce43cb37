import assert from "node:assert/strict";
import { ConfigError, errorMessage, formatError } from "./errors.ts";

Deno.test("errorMessage() is an Error's message, or the value as a string, without hint", () => {
  assert.equal(errorMessage(new Error("boom")), "boom");
  assert.equal(
    errorMessage(new ConfigError("smtp.host", "bad key", { hint: "fix it" })),
    "bad key",
  );
  assert.equal(errorMessage("plain"), "plain");
  assert.equal(errorMessage(42), "42");
  assert.equal(errorMessage(undefined), "undefined");
  // formatError() is the one that adds the hint.
  assert.equal(
    formatError(new ConfigError("smtp.host", "bad key", { hint: "fix it" })),
    "bad key (hint: fix it)",
  );
});
