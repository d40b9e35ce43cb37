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
 */
export const DAEMON_V8_FLAGS: readonly string[] = [
  "--max-semi-space-size=2",
  "--heap-growing-percent=50",
];

/** {@link DAEMON_V8_FLAGS} as one `deno run` / `deno compile` argument. */
export const DAEMON_RUNTIME_FLAGS: readonly string[] = [
  `--v8-flags=${DAEMON_V8_FLAGS.join(",")}`,
];

/**
 * The module `deno compile` builds the release binary from: `main.ts` with a literal specifier
 * for the modules it imports on demand (see `main_compiled.ts`).
 */
export const COMPILE_ENTRY = "main_compiled.ts";
