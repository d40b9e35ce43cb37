import assert from "node:assert/strict";
import {
  canonicalNameFromHosts,
  hostFqdn,
  type HostNameSources,
  mailLocalName,
  senderDomain,
} from "./local_name.ts";

function sources(hostname: string, hostsFile?: string): HostNameSources {
  return { hostname: () => hostname, hostsFile: () => hostsFile };
}

const HOSTS = [
  "127.0.0.1 localhost",
  "# 10.0.0.9 vm.commented.example vm",
  "10.0.0.5  node7.corp.example.com   node7  # the host",
  "::1 localhost ip6-localhost",
  "",
].join("\n");

Deno.test("canonicalNameFromHosts() returns the first name of the line listing the host", () => {
  assert.equal(canonicalNameFromHosts(HOSTS, "node7"), "node7.corp.example.com");
  assert.equal(canonicalNameFromHosts(HOSTS, "NODE7"), "node7.corp.example.com");
  assert.equal(canonicalNameFromHosts(HOSTS, "vm"), undefined); // commented out
  assert.equal(canonicalNameFromHosts(HOSTS, "other"), undefined);
});

Deno.test("hostFqdn() takes a dotted host name, else its /etc/hosts canonical name", () => {
  assert.equal(hostFqdn(sources("build.example.net")), "build.example.net");
  assert.equal(hostFqdn(sources("node7", HOSTS)), "node7.corp.example.com");
  assert.equal(hostFqdn(sources("vm", "127.0.0.1 localhost\n127.0.0.1 vm\n")), undefined);
  assert.equal(hostFqdn(sources("vm", "127.0.0.1 localhost.localdomain vm\n")), undefined);
  assert.equal(hostFqdn(sources("pod-7f9c", undefined)), undefined);
  assert.equal(hostFqdn(sources("10.1.2.3")), undefined);
});

Deno.test("senderDomain() reads the domain of a display-name address", () => {
  assert.equal(senderDomain("Teleport <noreply@Example.COM>"), "example.com");
  assert.equal(senderDomain("noreply@mail.example.org"), "mail.example.org");
  assert.equal(senderDomain("noreply"), undefined);
});

Deno.test("mailLocalName() is local_name, else the FQDN, else the sender's domain, never a bare name", () => {
  const sender = "Teleport <noreply@example.com>";
  assert.equal(mailLocalName(sender, { sources: sources("vm", "127.0.0.1 vm\n") }), "example.com");
  assert.equal(
    mailLocalName(sender, { sources: sources("node7", HOSTS) }),
    "node7.corp.example.com",
  );
  assert.equal(
    mailLocalName(sender, { localName: "mx.example.org", sources: sources("node7", HOSTS) }),
    "mx.example.org",
  );
  assert.equal(mailLocalName("noreply", { sources: sources("vm") }), "vm");
});
