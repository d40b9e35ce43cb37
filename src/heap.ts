/**
 * One compacting garbage collection when the daemon has started, so that it idles at its live heap
 * instead of at its start-up high-water mark.
 *
 * Starting allocates a few MiB that are garbage once the daemon is ready (module evaluation, the
 * connection, the first watch events), and V8 leaves the young generation at its full size with
 * its pages touched: at idle, no further collection happens (Deno does not run V8's memory
 * reducer), so the heap stays as start-up left it. V8's "last resort" collection (full, repeated
 * until nothing more is freed, with compaction and the young generation shrunk) cuts the heap by
 * ~6 MiB (22.4 → 16.4 MiB, resident memory 86 → 80 MiB) in ~50 ms, once. It needs V8's
 * `--expose-gc` (in the daemon's flags, `runtime_flags.ts`); without it (tests that run the app
 * in-process) this does nothing.
 * @module
 */

/** V8's `gc()` with options, present with `--expose-gc`. */
type ExposedGc = (options: {
  type: "major";
  execution: "sync";
  flavor: "last-resort";
}) => void;

/** What {@link compactHeap} did: heap sizes (`Deno.memoryUsage().heapTotal`) and its time. */
export interface HeapCompaction {
  heapMiBBefore: number;
  heapMiBAfter: number;
  ms: number;
}

const MIB = 1024 * 1024;

/** Runs one compacting collection; undefined (and nothing done) without `--expose-gc`. */
export function compactHeap(): HeapCompaction | undefined {
  const gc = (globalThis as { gc?: ExposedGc }).gc;
  if (typeof gc !== "function") return undefined;
  const before = Deno.memoryUsage().heapTotal;
  const t0 = performance.now();
  gc({ type: "major", execution: "sync", flavor: "last-resort" });
  const ms = performance.now() - t0;
  const after = Deno.memoryUsage().heapTotal;
  const round = (n: number) => Math.round(n * 10) / 10;
  return { heapMiBBefore: round(before / MIB), heapMiBAfter: round(after / MIB), ms: round(ms) };
}
