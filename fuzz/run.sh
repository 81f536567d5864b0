#!/usr/bin/env bash
# Runs every fuzz target for a while (default 180 s each) and prints the
# executions each made. Needs cargo-fuzz (`cargo install cargo-fuzz`); the
# sanitizer flags need a nightly toolchain, or RUSTC_BOOTSTRAP=1 on stable.
# A crashing input is copied to fuzz/regressions/TARGET/, which the test
# suite (crates/shale-core/tests/fuzz_regressions.rs) replays.
#
#   fuzz/run.sh [SECONDS]
set -uo pipefail
cd "$(dirname "$0")"
SECS=${1:-180}
export RUSTC_BOOTSTRAP=${RUSTC_BOOTSTRAP:-1}
status=0
for target in $(cargo fuzz list); do
  mkdir -p "corpus/$target" "regressions/$target"
  log=$(mktemp)
  cargo fuzz run "$target" "corpus/$target" -- -max_total_time="$SECS" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
  echo "$target: ${execs:-?} executions in ${SECS}s, exit $rc"
  if [ $rc -ne 0 ]; then
    status=1
    tail -30 "$log"
    for f in artifacts/"$target"/crash-* artifacts/"$target"/oom-* artifacts/"$target"/timeout-*; do
      [ -e "$f" ] && cp "$f" "regressions/$target/" && echo "kept $f as a regression input"
    done
  fi
  rm -f "$log"
done
exit $status
