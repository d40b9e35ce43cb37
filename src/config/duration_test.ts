import assert from "node:assert/strict";
import { parseGoDuration } from "./duration.ts";

Deno.test("parseGoDuration() parses Go duration strings", () => {
  const cases: [string, number][] = [
    ["0", 0],
    ["300ms", 300e6],
    ["30s", 30e9],
    ["5m", 300e9],
    ["1h30m", 5400e9],
    ["1.5h", 5400e9],
    [".5s", 0.5e9],
    ["1.s", 1e9],
    ["-2s", -2e9],
    ["+2s", 2e9],
    ["1h1m1s1ms1us1ns", 3661001001001],
    ["10\u00b5s", 10e3],
    ["10\u03bcs", 10e3],
  ];
  for (const [input, ns] of cases) assert.equal(parseGoDuration(input), ns, input);
});

Deno.test("parseGoDuration() rejects what Go rejects, with Go's messages", () => {
  const cases: [string, string][] = [
    ["", 'time: invalid duration ""'],
    ["x", 'time: invalid duration "x"'],
    ["1", 'time: missing unit in duration "1"'],
    ["1d", 'time: unknown unit "d" in duration "1d"'],
    ["1 s", 'time: unknown unit " s" in duration "1 s"'],
    [".s", 'time: invalid duration ".s"'],
    ["-", 'time: invalid duration "-"'],
    ["1m30", 'time: missing unit in duration "1m30"'],
    ["3000000h", 'time: invalid duration "3000000h"'],
  ];
  for (const [input, message] of cases) {
    assert.throws(() => parseGoDuration(input), { message }, input);
  }
});
