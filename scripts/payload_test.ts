import assert from "node:assert/strict";
import {
  ALLOWLIST_PATH,
  comparePayload,
  embeddedPackages,
  parseAllowList,
  payloadExcludes,
  payloadMismatch,
  runtimePackages,
} from "./payload.ts";

const LISTING = `Check main.ts
Compile main.ts to out

Embedded Files

out
├── deno.json (1.79KB)
├── main.ts (620B)
├─┬ node_modules (14.18MB - 13.55MB unique)
│ ├─┬ .deno (14.18MB - 13.55MB unique)
│ │ ├── .deno.lock (12B)
│ │ ├── @bufbuild+protobuf@2.17.0/* (1.92MB - 1.5MB unique)
│ │ ├── @types+node@18.19.130/node_modules/@types/* (1.98MB)
│ │ ├─┬ node_modules (0B)
│ │ │ ├── @grpc/* (0B)
│ │ │ └── long --> node_modules/.deno/long@5.3.2/node_modules/long
│ │ ├── nodemailer@10.6.0/* (1.73MB - 1.58MB unique)
│ │ ├─┬ protobufjs@7.6.6 (2.91MB - 2.91MB unique)
│ │ │ └─┬ node_modules (2.91MB)
│ │ │   └── protobufjs/* (2.91MB)
│ │ └── smol-toml@1.9.1/* (137.12KB - 137.11KB unique)
│ ├── nodemailer --> node_modules/.deno/nodemailer@10.6.0/node_modules/nodemailer
│ └── @grpc/* (0B)
└─┬ src (1.11MB)
  └── cli.ts (31.21KB)

Files: 14.88MB
`;

Deno.test("embeddedPackages() reads the package names under node_modules/.deno/ of deno compile's listing", () => {
  assert.deepEqual(embeddedPackages(LISTING), [
    "@bufbuild/protobuf",
    "@types/node",
    "nodemailer",
    "protobufjs",
    "smol-toml",
  ]);
  // With colours, as a terminal shows it.
  assert.deepEqual(
    embeddedPackages(LISTING.replaceAll("nodemailer@", "\x1b[1mnodemailer\x1b[0m@")),
    embeddedPackages(LISTING),
  );
});

Deno.test("embeddedPackages() reads the global-cache layout, and refuses a collapsed or missing listing", () => {
  const global = `Embedded Files

out
├─┬ .deno_compile_node_modules (2MB)
│ └─┬ localhost (2MB)
│   ├─┬ @grpc (2.58MB)
│   │ └── grpc-js/1.14.7/* (2.47MB)
│   └── smol-toml/1.9.1/* (137KB)
└── main.ts (620B)
`;
  assert.deepEqual(embeddedPackages(global), ["@grpc/grpc-js", "smol-toml"]);
  assert.equal(embeddedPackages("Embedded Files\n\nout\n├── node_modules/* (61.1MB)\n"), undefined);
  assert.equal(embeddedPackages("Check main.ts\n"), undefined);
  assert.deepEqual(embeddedPackages("Embedded Files\n\nout\n└── main.ts (1KB)\n"), []);
});

Deno.test("runtimePackages() follows the graph's npm packages and their dependencies, without @types and NOT_LOADED ones", () => {
  const path = (folder: string, name: string) =>
    `/r/node_modules/.deno/${folder}/node_modules/${name}`;
  const packages = runtimePackages({
    modules: [
      { kind: "esm" },
      { kind: "npm", npmPackage: "b@1.0.0" },
      { kind: "npm", npmPackage: "@s/a@2.0.0_b@1.0.0" },
    ],
    npmPackages: {
      "@s/a@2.0.0_b@1.0.0": {
        name: "@s/a",
        version: "2.0.0",
        dependencies: ["b@1.0.0", "@types/node@18.0.0"],
        localPath: path("@s+a@2.0.0", "@s/a"),
      },
      "b@1.0.0": {
        name: "b",
        version: "1.0.0",
        dependencies: ["c@3.0.0", "yargs@17.0.0"],
        localPath: path("b@1.0.0", "b"),
      },
      "c@3.0.0": { name: "c", version: "3.0.0", localPath: path("c@3.0.0", "c") },
      "@types/node@18.0.0": { name: "@types/node", version: "18.0.0", dependencies: ["u@1.0.0"] },
      // Declared by b but never loaded (NOT_LOADED), with what only it pulls in.
      "yargs@17.0.0": { name: "yargs", version: "17.0.0", dependencies: ["cliui@8.0.0"] },
      "cliui@8.0.0": { name: "cliui", version: "8.0.0" },
      "u@1.0.0": { name: "u", version: "1.0.0" },
      "unused@1.0.0": { name: "unused", version: "1.0.0" },
    },
  });
  assert.deepEqual(packages, [
    { name: "@s/a", version: "2.0.0", folder: "@s+a@2.0.0" },
    { name: "b", version: "1.0.0", folder: "b@1.0.0" },
    { name: "c", version: "3.0.0", folder: "c@3.0.0" },
  ]);
});

Deno.test("payloadExcludes() leaves out every folder and link of a package not kept, and .bin", () => {
  const keep = [{ name: "a", version: "1.0.0", folder: "a@1.0.0" }, {
    name: "@s/b",
    version: "1.0.0",
    folder: "@s+b@1.0.0",
  }, { name: "bintrees", version: "1.0.2", folder: "bintrees@1.0.2" }];
  assert.deepEqual(
    payloadExcludes(keep, {
      folders: ["@s+b@1.0.0", "a@1.0.0", "bintrees@1.0.2", "dev@1.0.0"],
      links: [
        ".deno/dev@1.0.0/node_modules/x",
        ".deno/a@1.0.0/node_modules/@types/node",
        ".deno/a@1.0.0/node_modules/@s/b",
        ".deno/node_modules/@s/b",
        ".deno/node_modules/dev",
        "@s/b",
        "a",
        "bintrees",
        "dev",
      ],
    }),
    [
      "node_modules/.bin",
      "node_modules/.deno/a@1.0.0/node_modules/@types/node",
      "node_modules/.deno/bintrees@1.0.2/node_modules/bintrees/examples",
      "node_modules/.deno/bintrees@1.0.2/node_modules/bintrees/test",
      "node_modules/.deno/dev@1.0.0",
      "node_modules/.deno/node_modules/dev",
      "node_modules/dev",
    ],
  );
});

Deno.test("comparePayload() and payloadMismatch() name each extra and missing package", () => {
  const allowed = parseAllowList("# comment\nnodemailer\n\nsmol-toml  # the TOML parser\nssh2\n");
  assert.deepEqual(allowed, ["nodemailer", "smol-toml", "ssh2"]);
  assert.equal(payloadMismatch(comparePayload(allowed, [...allowed]), "list.txt"), undefined);
  // An unused package (and what it pulls in) added to the runtime graph fails the check.
  const diff = comparePayload(allowed, [
    "axios",
    "form-data",
    "mailgun.js",
    "nodemailer",
    "smol-toml",
  ]);
  assert.deepEqual(diff, { extra: ["axios", "form-data", "mailgun.js"], missing: ["ssh2"] });
  assert.equal(
    payloadMismatch(diff, "list.txt"),
    "The binary's npm packages differ from the allow-list: embedded but not in list.txt: " +
      "axios, form-data, mailgun.js (add it if the daemon needs it at run time, else remove the " +
      "import that pulls it in); in list.txt but not embedded: ssh2 (remove it from the list)",
  );
});

Deno.test("the allow-list holds no test-only, type-only or removed package", async () => {
  const allowed = parseAllowList(await Deno.readTextFile(ALLOWLIST_PATH));
  for (
    const name of [
      "mailgun.js",
      "form-data",
      "axios",
      "@peculiar/x509",
      "reflect-metadata",
      "smtp-server",
      "mailparser",
      "typescript",
      "@bufbuild/protoc-gen-es",
    ]
  ) {
    assert.ok(!allowed.includes(name), name);
  }
  assert.ok(!allowed.some((n) => n.startsWith("@types/")));
  assert.deepEqual(allowed, [...allowed].sort((a, b) => a.localeCompare(b)));
});
