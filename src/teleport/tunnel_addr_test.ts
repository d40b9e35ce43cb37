import assert from "node:assert/strict";
import { requirePort, tunnelAddrFromFind } from "./tunnel_addr.ts";

Deno.test("tunnelAddrFromFind() follows Go's TunnelAddr rules", () => {
  const find = (tls: boolean, ssh: Record<string, string>) => ({
    proxy: { tls_routing_enabled: tls, ssh },
  });
  const cases: [ReturnType<typeof find>, string][] = [
    [
      find(false, {
        ssh_tunnel_public_addr: "tunnel.example.com:4024",
        public_addr: "public.example.com",
        ssh_public_addr: "ssh.example.com",
        tunnel_listen_addr: "[::]:5024",
        web_listen_addr: "proxy.example.com",
      }),
      "tunnel.example.com:4024",
    ],
    [
      find(false, {
        ssh_public_addr: "ssh.example.com",
        public_addr: "public.example.com",
        tunnel_listen_addr: "[::]:5024",
        web_listen_addr: "proxy.example.com",
      }),
      "ssh.example.com:5024",
    ],
    [
      find(false, {
        public_addr: "public.example.com",
        tunnel_listen_addr: "[::]:5024",
        web_listen_addr: "proxy.example.com",
      }),
      "public.example.com:5024",
    ],
    [
      find(false, { public_addr: "public.example.com", web_listen_addr: "proxy.example.com" }),
      "public.example.com:3024",
    ],
    [find(false, { web_listen_addr: "proxy.example.com" }), "proxy.example.com:3024"],
    [
      find(true, {
        public_addr: "public.example.com",
        tunnel_listen_addr: "[::]:5024",
        ssh_tunnel_public_addr: "tpa.example.com:3032",
        web_listen_addr: "proxy.example.com:443",
      }),
      "public.example.com:443",
    ],
    [
      find(true, {
        public_addr: "public.example.com:443",
        tunnel_listen_addr: "[::]:5024",
        web_listen_addr: "proxy.example.com:443",
      }),
      "public.example.com:443",
    ],
    [
      find(true, { tunnel_listen_addr: "[::]:5024", web_listen_addr: "proxy.example.com:443" }),
      "proxy.example.com:443",
    ],
    [
      find(true, { tunnel_listen_addr: "[::]:5024", web_listen_addr: "proxy.example.com" }),
      "proxy.example.com:443",
    ],
  ];
  for (const [f, want] of cases) assert.equal(tunnelAddrFromFind(f), want, JSON.stringify(f));
  assert.equal(
    tunnelAddrFromFind(find(false, {}), { TELEPORT_TUNNEL_PUBLIC_ADDR: "tunnel.example.com:4024" }),
    "tunnel.example.com:4024",
  );
  assert.throws(() => tunnelAddrFromFind(find(false, {})), /advertises no reverse tunnel address/);
});

Deno.test("tunnelAddrFromFind() follows Go's TunnelAddr() order", () => {
  const ssh = (o: Record<string, string>) => ({ proxy: { ssh: o } });
  assert.throws(() => tunnelAddrFromFind(ssh({}), {}), /advertises no reverse tunnel address/);
  const cases: [Record<string, string>, Record<string, string>, string][] = [
    [{ public_addr: "p.example.com:3080" }, {}, "p.example.com:3024"],
    [{ public_addr: "p:3080", tunnel_listen_addr: "0.0.0.0:4024" }, {}, "p:4024"],
    [{ public_addr: "p:1", ssh_public_addr: "s:3023", ssh_tunnel_public_addr: "t:5" }, {}, "t:5"],
    [{ public_addr: "p:1", ssh_public_addr: "s:3023" }, {}, "s:3024"],
    // Go's last case is parseAndJoinHostPort(WebListenAddr, WithDefaultPort(tunnelPort)): the
    // tunnel port only fills in a missing port.
    [{ web_listen_addr: "w:3080" }, {}, "w:3080"],
    [{ web_listen_addr: "w" }, {}, "w:3024"],
    [{ web_listen_addr: "w:3080" }, { TELEPORT_TUNNEL_PUBLIC_ADDR: "e:1" }, "e:1"],
    // Go: tunnel_listen_addr comes before web_listen_addr; the tunnel port is the default port
    // of ssh_tunnel_public_addr too; a bare TELEPORT_TUNNEL_PUBLIC_ADDR host stays without a
    // port (Go's parseAndJoinHostPort without a default), so dialing it fails as in Go.
    [{ tunnel_listen_addr: "[::]:5024", web_listen_addr: "w:3080" }, {}, "[::]:5024"],
    [{ ssh_tunnel_public_addr: "t", tunnel_listen_addr: "0.0.0.0:4024" }, {}, "t:4024"],
    [{}, { TELEPORT_TUNNEL_PUBLIC_ADDR: "e" }, "e"],
    [{ web_listen_addr: "w:3080" }, { TELEPORT_TUNNEL_PUBLIC_ADDR: "[::1]" }, "::1"],
    [{}, { TELEPORT_TUNNEL_PUBLIC_ADDR: "[::1]:7" }, "[::1]:7"],
  ];
  for (const [fields, env, want] of cases) {
    assert.equal(tunnelAddrFromFind(ssh(fields), env), want, JSON.stringify([fields, env]));
  }
});

Deno.test("requirePort() fails like Go's dial for an address without a port", () => {
  requirePort("t.example.com:3024");
  requirePort("[::1]:3024");
  assert.throws(() => requirePort("e"), /^Error: address e: missing port in address$/);
});
