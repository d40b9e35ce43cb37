import assert from "node:assert/strict";
import { noProxyMatches, parseIp, proxyForTarget } from "./http_proxy.ts";

/** `NO_PROXY` of Go's `x/net/http/httpproxy` `TestUseProxy`. */
const GO_NO_PROXY =
  "foobar.com, .barbaz.net, *.wildcard.io, 192.168.1.1, 192.168.1.2:81, 192.168.1.3:80, " +
  "10.0.0.0/30, 2001:db8::52:0:1, [2001:db8::52:0:2]:443, [2001:db8::52:0:3]:80, 2002:db8:a::45/64";

/** Go's `UseProxyTests`: host (dialled on port 80) → whether the proxy is used. */
const GO_USE_PROXY_CASES: [string, boolean][] = [
  ["localhost", false],
  ["127.0.0.1", false],
  ["127.0.0.2", false],
  ["[::1]", false],
  ["[::2]", true], // not a loopback address
  ["192.168.1.1", false], // matches exact IPv4
  ["192.168.1.2", true], // ports do not match
  ["192.168.1.3", false], // matches exact IPv4:port
  ["192.168.1.4", true], // no match
  ["10.0.0.2", false], // matches IPv4/CIDR
  ["[2001:db8::52:0:1]", false], // matches exact IPv6
  ["[2001:db8::52:0:2]", true], // no match (port 443 only)
  ["[2001:db8::52:0:3]", false], // matches exact [IPv6]:port
  ["[2002:db8:a::123]", false], // matches IPv6/CIDR
  ["[fe80::424b:c8be:1643:a1b6]", true], // no match
  ["barbaz.net", true], // does not match as .barbaz.net
  ["www.barbaz.net", false], // does match as .barbaz.net
  ["foobar.com", false], // does match as foobar.com
  ["www.foobar.com", false], // match because NO_PROXY includes "foobar.com"
  ["foofoobar.com", true], // not match as a part of foobar.com
  ["baz.com", true], // not match as a part of barbaz.com
  ["localhost.net", true], // not match as suffix of address
  ["local.localhost", true], // not match as prefix as address
  ["barbarbaz.net", true], // not match, wrong domain
  ["wildcard.io", true], // does not match as *.wildcard.io
  ["nested.wildcard.io", false], // match as *.wildcard.io
  ["awildcard.io", true], // not a match because of '*'
];

function target(host: string, port = 80) {
  return { host: host.replace(/^\[(.*)\]$/, "$1"), port };
}

Deno.test("proxyForTarget() decides like Go's httpproxy for every case of its TestUseProxy", () => {
  const env = { HTTPS_PROXY: "proxy:3128", NO_PROXY: GO_NO_PROXY };
  for (const [host, useProxy] of GO_USE_PROXY_CASES) {
    assert.equal(proxyForTarget(target(host), env)?.host === "proxy:3128", useProxy, host);
  }
});

Deno.test("proxyForTarget() with NO_PROXY=* never proxies (Go's TestAllNoProxy)", () => {
  for (const [host] of GO_USE_PROXY_CASES) {
    assert.equal(proxyForTarget(target(host), { HTTPS_PROXY: "p:1", NO_PROXY: "*" }), undefined);
  }
});

Deno.test("noProxyMatches() ignores a malformed entry (Go's TestInvalidNoProxy)", () => {
  assert.equal(noProxyMatches(":1", target("example.com")), false);
});

Deno.test("proxyForTarget() reads the variables as Go's FromEnvironment does", () => {
  const t = target("teleport.example.com", 443);
  assert.equal(proxyForTarget(t, {}), undefined);
  assert.equal(proxyForTarget(t, { https_proxy: "lower:1" })?.host, "lower:1");
  // An empty upper-case spelling does not hide the lower-case one.
  assert.equal(proxyForTarget(t, { HTTPS_PROXY: "", https_proxy: "lower:1" })?.host, "lower:1");
  assert.equal(
    proxyForTarget(t, { HTTPS_PROXY: "p:1", NO_PROXY: "", no_proxy: "example.com" }),
    undefined,
  );
  // Teleport's GetProxyURL falls back to the http scheme's proxy.
  assert.equal(proxyForTarget(t, { HTTP_PROXY: "http://plain:8080" })?.host, "plain:8080");
  assert.equal(proxyForTarget(t, { HTTPS_PROXY: "s:1", HTTP_PROXY: "h:2" })?.host, "s:1");
  // NO_PROXY is split on commas only.
  assert.equal(
    proxyForTarget(t, { HTTPS_PROXY: "p:1", NO_PROXY: "a.test teleport.example.com" })?.host,
    "p:1",
  );
  assert.throws(() => proxyForTarget(t, { HTTPS_PROXY: "http://[bad" }), /HTTPS_PROXY/);
});

Deno.test("parseIp() reads IPv4, IPv6 and IPv4-mapped IPv6 as Go's ParseIP", () => {
  assert.deepEqual(parseIp("10.1.2.3"), Uint8Array.from([10, 1, 2, 3]));
  assert.deepEqual(parseIp("::ffff:10.1.2.3"), Uint8Array.from([10, 1, 2, 3]));
  assert.equal(parseIp("::1")?.length, 16);
  assert.equal(parseIp("2001:db8::52:0:1")?.[15], 1);
  for (const bad of ["010.0.0.1", "1.2.3", "256.1.1.1", "1::2::3", "example.com", "", "::g"]) {
    assert.equal(parseIp(bad), undefined, bad);
  }
});
