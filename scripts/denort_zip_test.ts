import assert from "node:assert/strict";
import { fakeDenort, makeZip } from "../tests/helpers/zip.ts";
import {
  denoVersionOf,
  elfMachineOf,
  inspectDenortZip,
  readZip,
  sha256Hex,
  stageDenoDir,
} from "./denort_zip.ts";

Deno.test("readZip() reads stored and deflated entries", () => {
  const a = new TextEncoder().encode("hello ".repeat(100));
  for (const method of [0, 8] as const) {
    const files = readZip(makeZip({ denort: a, "x/y": new Uint8Array([1, 2]) }, method));
    assert.deepEqual([...files.keys()], ["denort", "x/y"]);
    assert.deepEqual(files.get("denort"), a);
  }
  assert.throws(() => readZip(new Uint8Array(100)), /not a zip archive/);
});

Deno.test("denoVersionOf() reads the Deno release of the running deno and of a fake runtime", async () => {
  assert.equal(denoVersionOf(await Deno.readFile(Deno.execPath())), Deno.version.deno);
  assert.equal(denoVersionOf(fakeDenort("2.9.5")), "2.9.5");
  assert.equal(denoVersionOf(new TextEncoder().encode("Deno/2.9.6 only")), undefined);
  const two = new Uint8Array([...fakeDenort("2.9.5"), ...fakeDenort("2.9.6")]);
  assert.equal(denoVersionOf(two), undefined, "two different versions: unknown");
  assert.equal(elfMachineOf(fakeDenort("2.9.5", 183)), 183);
  assert.equal(elfMachineOf(new Uint8Array(4)), undefined);
});

Deno.test("inspectDenortZip() reports the zip's digest, Deno version and CPU, and says what is wrong", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const zip = makeZip({ denort: fakeDenort("2.9.5", 183) });
    await Deno.writeFile(`${dir}/ok.zip`, zip);
    assert.deepEqual(await inspectDenortZip(`${dir}/ok.zip`), {
      sha256: await sha256Hex(zip),
      denoVersion: "2.9.5",
      machine: 183,
    });
    await Deno.writeFile(`${dir}/other.zip`, makeZip({ deno: fakeDenort("2.9.5") }));
    await assert.rejects(
      inspectDenortZip(`${dir}/other.zip`),
      /holds no "denort" file \(holds: deno\)/,
    );
    await Deno.writeFile(`${dir}/plain.zip`, makeZip({ denort: new Uint8Array(10) }));
    await assert.rejects(inspectDenortZip(`${dir}/plain.zip`), /carries no Deno version string/);
    await Deno.writeTextFile(`${dir}/text.zip`, "not a zip");
    await assert.rejects(inspectDenortZip(`${dir}/text.zip`), /cannot read it as a zip/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("stageDenoDir() shares the real cache but dl/, and links each zip under dl/release/v<version>/", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/real/npm`, { recursive: true });
    await Deno.mkdir(`${dir}/real/dl/release/v1.0.0`, { recursive: true });
    await Deno.writeTextFile(`${dir}/zip.zip`, "z");
    const staged = await stageDenoDir(`${dir}/real`, "2.9.6", [`${dir}/zip.zip`]);
    try {
      const names = [];
      for await (const e of Deno.readDir(staged)) names.push(e.name);
      assert.deepEqual(names.sort(), ["dl", "npm"]);
      assert.equal(await Deno.realPath(`${staged}/npm`), await Deno.realPath(`${dir}/real/npm`));
      assert.equal(await Deno.readTextFile(`${staged}/dl/release/v2.9.6/zip.zip`), "z");
    } finally {
      await Deno.remove(staged, { recursive: true });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
