#!/bin/sh
# Stands in for the compiled teleport-email when no denort runtime is available:
#   TELEPORT_EMAIL_BIN=scripts/launcher_for_tests.sh deno task test tests/cli_test.ts ...
# Runs main.ts with exactly the daemon's permissions and runtime flags (src/permissions.ts and
# src/runtime_flags.ts, checked by tests/binary_switch_test.ts) from outside the repository: from the caller's directory (the test
# helper gives it an empty temporary one), or from $TMPDIR when called inside the repository, so a
# test that depends on the project folder fails as it would with the binary. With
# TELEPORT_EMAIL_LAUNCHER_LOG set, appends one line "<cwd> <args>" per run to that file (the
# test that proves the switch reads it).
set -eu
repo=$(CDPATH='' cd -- "$(dirname -- "$0")/.." && pwd)
case "$(pwd)/" in
"$repo"/*) cd "${TMPDIR:-/tmp}" ;;
esac
if [ -n "${TELEPORT_EMAIL_LAUNCHER_LOG:-}" ]; then
  printf '%s %s\n' "$(pwd)" "$*" >>"$TELEPORT_EMAIL_LAUNCHER_LOG"
fi
exec "${DENO:-deno}" run --quiet --config "$repo/deno.json" \
  --allow-net --allow-read --allow-write --allow-env --allow-sys \
  --v8-flags=--max-semi-space-size=2,--heap-growing-percent=50,--expose-gc --no-code-cache \
  --node-modules-dir=manual --no-lock \
  "$repo/main.ts" "$@"
