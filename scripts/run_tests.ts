/**
 * `deno task test`: runs `deno test` in a shuffled order and prints the seed (Deno 2.9.6 does
 * not), before and after the run, so a failure that depends on the order can be repeated:
 *
 * ```sh
 * deno task test [ARGS...]               # a random seed
 * TEST_SEED=1234 deno task test [ARGS...] # that order again
 * ```
 *
 * ARGS go to `deno test` (files, `--filter`, …); a `--shuffle=N` among them wins. Exits with
 * `deno test`'s status. (Not named `test.ts`: `deno test` would take it for a test module.)
 */
const given = Deno.env.get("TEST_SEED") ?? "";
const own = Deno.args.find((a) => a.startsWith("--shuffle"));
const seed = own !== undefined
  ? own.slice("--shuffle=".length)
  : /^[0-9]{1,15}$/.test(given)
  ? given
  : String(Math.floor(Math.random() * 2 ** 31));
const line = `Test order seed: ${seed} (run this order again: TEST_SEED=${seed} deno task test)`;
console.log(line);
const args = ["test", "--allow-all", "--no-check=remote"];
if (own === undefined) args.push(`--shuffle=${seed}`);
const { code } = await new Deno.Command(Deno.execPath(), {
  args: [...args, ...Deno.args],
  stdin: "inherit",
  stdout: "inherit",
  stderr: "inherit",
}).spawn().status;
console.log(line);
Deno.exit(code);
