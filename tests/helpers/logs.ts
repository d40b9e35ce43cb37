/**
 * Log capture for tests: routes the plugin's logtape records into an array for one test.
 *
 * @module
 */

import { configure, type LogRecord, reset } from "@logtape/logtape";

/**
 * Runs `fn` with every `teleport-email` log record (debug and up) collected into `records`,
 * then resets logtape whether `fn` passed or threw.
 */
export async function captureLogs<T>(fn: (records: LogRecord[]) => Promise<T>): Promise<T> {
  const records: LogRecord[] = [];
  await configure({
    sinks: { mem: (r: LogRecord) => records.push(r) },
    loggers: [
      { category: ["teleport-email"], sinks: ["mem"], lowestLevel: "debug" },
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "warning" },
    ],
    reset: true,
  });
  try {
    return await fn(records);
  } finally {
    await reset();
  }
}
