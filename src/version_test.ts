import assert from "node:assert/strict";
import { versionLine } from "./version.ts";

Deno.test("versionLine() names the program, the version and the Deno version", () => {
  assert.match(versionLine(), /^teleport-email v\d+\.\d+\.\d+(-[\w.]+)? deno\d+\.\d+\.\d+$/);
});
