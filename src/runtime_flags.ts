/**
 * How the daemon is run and compiled. Its V8 flags: baked into the release binary
 * (`deno compile --v8-flags`, `scripts/release.ts`), spelled out in `deno task start`
 * (`deno.json`; a test keeps the two equal), and used by the end-to-end tests to run `main.ts`.
 *
 * During a burst of emails the live heap stays near 28 MiB, but by default V8 let the process
 * grow to ~250 MiB resident with garbage: the young generation grows to tens of MiB, and after
 * each full collection the old generation may grow about fourfold before the next one (seen with
 * `--trace-gc`: 100 MiB → 28 MiB). `--max-semi-space-size` (MiB) caps the young generation;
 * `--heap-growing-percent` makes the old generation grow by that percentage between full
 * collections (a pace, not a limit: a larger live heap still gets the room it needs). Chosen
 * with `deno task bench --v8-flags=…` (figures per value tried: the README's "Performance").
 * `--expose-gc` lets the daemon compact its heap once when it is ready (`heap.ts`: ~6 MiB less
 * resident memory at idle).
 */
export const DAEMON_V8_FLAGS: readonly string[] = [
  "--max-semi-space-size=2",
  "--heap-growing-percent=50",
  "--expose-gc",
];

/**
 * The daemon's `deno run` / `deno compile` arguments: {@link DAEMON_V8_FLAGS} as one argument, and
 * no V8 code cache. Under `deno run` the code cache (`$DENO_DIR/v8_code_cache_v2`, an SQLite file
 * the process maps, and the cached code it reads) kept ~3.5 MiB more resident at idle, for ~5 ms
 * less start-up; the release binary never had one (`scripts/release.ts` compiles with
 * `--no-code-cache`), so this also runs `deno task start` the way the binary runs.
 */
export const DAEMON_RUNTIME_FLAGS: readonly string[] = [
  `--v8-flags=${DAEMON_V8_FLAGS.join(",")}`,
  "--no-code-cache",
];

/**
 * How `deno run` starts the daemon (`deno task start`, the tests' launcher and child processes,
 * the bench): {@link DAEMON_RUNTIME_FLAGS}, and the packages taken as installed in `node_modules`
 * (`deno install --frozen`, which `deno task start` runs first) instead of managed by Deno at
 * every start. Managed ("auto"), each start also set up Deno's npm installer, read the lockfile's
 * package list and the cached registry entries of the imported packages, and kept ~3 MiB more
 * resident at idle (75.3 → 72.3 MiB, median of 4 starts each, alternating). The files loaded are
 * the same: `deno install --frozen` checked them against `deno.lock`, which is then not read again
 * (`--no-lock`: nothing else is resolved through it; 72.3 → 71.8 MiB, 4 starts each). The release
 * binary is compiled without these two flags: it carries its own copy of the packages it uses.
 */
export const DAEMON_RUN_FLAGS: readonly string[] = [
  ...DAEMON_RUNTIME_FLAGS,
  "--node-modules-dir=manual",
  "--no-lock",
];

/**
 * The module `deno compile` builds the release binary from: `main.ts` with a literal specifier
 * for the modules it imports on demand (see `main_compiled.ts`).
 */
export const COMPILE_ENTRY = "main_compiled.ts";
