import assert from "node:assert/strict";

/** Modules of the SSH reverse-tunnel stack, loaded only when that mode is tried. */
const TUNNEL_STACK = ["dial_tunnel.ts", "ssh2_patches.ts", "ssh_cert.ts"];

interface InfoModule {
  specifier: string;
  dependencies?: { code?: { specifier: string }; isDynamic?: boolean }[];
}

/** Specifiers `root` loads when evaluated: static value imports only (no types, no import()). */
async function staticClosure(relative: string): Promise<Set<string>> {
  const root = new URL(relative, import.meta.url).href;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", root],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as { modules: InfoModule[] };
  const bySpecifier = new Map(info.modules.map((m) => [m.specifier, m]));
  const seen = new Set<string>();
  const todo = [root];
  while (todo.length > 0) {
    const s = todo.pop()!;
    if (seen.has(s)) continue;
    seen.add(s);
    for (const d of bySpecifier.get(s)?.dependencies ?? []) {
      if (d.code && !d.isDynamic) todo.push(d.code.specifier);
    }
  }
  return seen;
}

Deno.test("connectTeleport() loads the SSH tunnel stack (ssh2) only through a dynamic import()", async () => {
  const loaded = [...await staticClosure("./connect.ts")];
  assert.ok(loaded.some((s) => s.endsWith("/teleport/dial.ts")), "dial.ts is in the graph");
  for (const name of TUNNEL_STACK) {
    assert.deepEqual(loaded.filter((s) => s.endsWith(`/teleport/${name}`)), [], name);
  }
  assert.deepEqual(loaded.filter((s) => /ssh2@/.test(s)), []);
});

Deno.test("connectTeleport() loads the WebSocket client (npm:ws) only through a dynamic import()", async () => {
  const loaded = [...await staticClosure("./connect.ts")];
  assert.deepEqual(
    loaded.filter((s) => s.endsWith("/teleport/websocket.ts") || /\/ws@/.test(s)),
    [],
  );
});
