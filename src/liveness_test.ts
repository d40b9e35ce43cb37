import assert from "node:assert/strict";
import { LivenessProbe, mayBeGone, PROBE_PREFIX, probeRefused } from "./liveness.ts";
import type { LeaseHolder, LeaseLock } from "./notify/delivery_state.ts";

const SELF: LeaseHolder = { host: "h1", pid: 10, start: 1000, probe: "/run/x/me.sock" };

function lock(holder?: Partial<LeaseHolder> | null): LeaseLock {
  const l: LeaseLock = { owner: "other/1", until: Date.now() + 30_000 };
  if (holder !== null) l.holder = { ...SELF, pid: 20, probe: "/run/x/other.sock", ...holder };
  return l;
}

/** Starts a process listening on a Unix socket at `path`, then SIGKILLs it. */
async function killedListener(path: string): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `Deno.listen({ transport: "unix", path: ${JSON.stringify(path)} }); console.log("up");` +
      "setInterval(() => {}, 1000);",
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.getReader();
  const { value } = await reader.read();
  assert.match(new TextDecoder().decode(value), /up/);
  child.kill("SIGKILL");
  await child.status;
  reader.releaseLock();
  await child.stdout.cancel();
}

Deno.test("mayBeGone() only for a named holder on the same host with another probe", () => {
  assert.equal(mayBeGone(lock(), SELF), true);
  assert.equal(mayBeGone(lock(null), SELF), false, "a lease of an older version: expiry rule");
  assert.equal(mayBeGone(lock({ host: "h2" }), SELF), false, "another host: expiry rule");
  assert.equal(mayBeGone(lock({ probe: undefined }), SELF), false, "no probe to ask");
  assert.equal(mayBeGone(lock({ probe: SELF.probe }), SELF), false, "our own probe");
  assert.equal(mayBeGone(lock({ pid: 10 }), SELF), false, "this very process");
  assert.equal(mayBeGone(lock({ pid: 10, start: 999 }), SELF), true, "same pid, another start");
});

Deno.test("LivenessProbe: a running holder answers, an exited one is refused, an unknown one is not taken over", async () => {
  const dir = await Deno.makeTempDir({ prefix: "liveness_test" });
  const me = LivenessProbe.start({ dir, hostName: "h1" });
  const other = LivenessProbe.start({ dir, hostName: "h1" });
  try {
    assert.equal(me.holder.host, "h1");
    assert.equal(me.holder.pid, Deno.pid);
    assert.ok(me.holder.probe!.startsWith(`${dir}/${PROBE_PREFIX}${Deno.pid}-`));
    const held = (holder: LeaseHolder): LeaseLock => ({ owner: "o/1", until: 0, holder });
    // Same host, but the other "process" differs by its start time (it is this test process).
    const otherHolder = { ...other.holder, start: other.holder.start - 1 };
    assert.equal(await probeRefused(other.holder.probe!), false);
    assert.equal(await me.holderGone(held(otherHolder)), false, "running: expiry rule");
    // A process that listened on a probe and was killed: its socket file stays, nobody listens.
    await Deno.writeTextFile(`${dir}/placeholder`, "");
    const crashed = `${dir}/${PROBE_PREFIX}crashed.sock`;
    await killedListener(crashed);
    assert.equal(await probeRefused(crashed), true);
    assert.equal(await me.holderGone(held({ ...otherHolder, probe: crashed })), true);
    assert.equal(
      await me.holderGone(held({ ...otherHolder, probe: crashed, host: "h2" })),
      false,
      "another host's holder is never declared gone",
    );
    assert.equal(await probeRefused(`${dir}/missing.sock`), undefined);
    assert.equal(
      await me.holderGone(held({ ...otherHolder, probe: `${dir}/missing.sock` })),
      false,
    );
    // Sweeping removes the dead probe only.
    assert.equal(await me.sweep(), 1);
    const left = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    const name = (p: LivenessProbe) => p.holder.probe!.slice(dir.length + 1);
    assert.deepEqual(left, [name(me), name(other), "placeholder"].sort());
  } finally {
    await me.close();
    await other.close();
    await Deno.remove(dir, { recursive: true });
  }
});
