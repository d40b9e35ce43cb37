import assert from "node:assert/strict";
import { connUpgradeOverride, connUpgradeRequiredByEnv, parseGoBool } from "./conn_upgrade.ts";

/** Go's `TestIsALPNConnUpgradeRequiredByEnv` (api/client/alpn_conn_upgrade_test.go), then ours. */
const CASES: [name: string, value: string, want: boolean][] = [
  ["upgraded required (for all addr)", "yes", true],
  ["upgraded required (for target addr)", "0;example.teleport.com:443=1", true],
  ["upgraded not required (for all addr)", "false", false],
  ["upgraded not required (no addr match)", "another.teleport.com:443=true", false],
  [
    "upgraded not required (for target addr)",
    "another.teleport.com:443=true,example.teleport.com:443=false",
    false,
  ],
  // The same rules, case by case.
  ["a default mixed with another address", "1,another.teleport.com:443=0", true],
  ["the address condition wins over a later default", "example.teleport.com:443=no;yes", false],
  ["the last default wins", "true;false", false],
  ["substring match of addr=", "xexample.teleport.com:443=yes", true],
  [
    "the first matching condition wins",
    "example.teleport.com:443=on,example.teleport.com:443=off",
    true,
  ],
  ["an unknown word for the address is false", "1,example.teleport.com:443=maybe", false],
  ["an unknown default word is ignored", "true,maybe", true],
  ["empty conditions are skipped", ",;yes;,", true],
  ["Go does not trim spaces", " yes", false],
];

Deno.test("connUpgradeRequiredByEnv() decides like Go's isALPNConnUpgradeRequiredByEnv", () => {
  for (const [name, value, want] of CASES) {
    assert.equal(connUpgradeRequiredByEnv("example.teleport.com:443", value), want, name);
  }
});

Deno.test("connUpgradeOverride() decides whenever the variable is set, even without the address", () => {
  const env = (v?: string) => ({ TELEPORT_TLS_ROUTING_CONN_UPGRADE: v });
  assert.equal(connUpgradeOverride("a:443", {}), undefined);
  assert.equal(connUpgradeOverride("a:443", env("")), undefined);
  assert.equal(connUpgradeOverride("a:443", env("true")), true);
  assert.equal(connUpgradeOverride("a:443", env("0")), false);
  const list = env("a:443=yes,b:443=no");
  assert.equal(connUpgradeOverride("a:443", list), true);
  assert.equal(connUpgradeOverride("b:443", list), false);
  // Set but not naming the address: no upgrade, and no test dial (not undefined).
  assert.equal(connUpgradeOverride("c:443", list), false);
});

Deno.test("parseGoBool() accepts Go's utils.ParseBool words only", () => {
  for (const w of ["yes", "YEAH", "y", "true", "1", "On"]) assert.equal(parseGoBool(w), true, w);
  for (const w of ["no", "Nope", "n", "FALSE", "0", "off"]) assert.equal(parseGoBool(w), false, w);
  for (const w of ["t", "f", "", " yes", "2"]) assert.equal(parseGoBool(w), undefined, w);
});
