#!/usr/bin/env bash
# Pipeline steps: what a Shale step adds to a pipeline task that reads the
# 20,000-file / 2.1 GB ImageNet-like set. `shale run` is what the Airflow
# ShaleRunOperator and the Kubeflow train_traced component run: snapshot
# the dataset, mount that snapshot read-only, run the task, unmount,
# record the run. Reported beside the same task reading the directory
# directly; every round starts with the page cache dropped. The task reads
# every file once, as a data loader's first epoch does (bench/lib/read_all.py).
# Needs root and fuse3.
#
#   cargo build --release -p shale-cli
#   bench/pipeline.sh [--rounds R]        # writes bench/results/PIPELINE.md
set -euo pipefail

main() {
ROUNDS=5
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
S=${SHALE_BIN_DIR:-$ROOT/target/release}/shale
WORK=${BENCH_WORK:-/tmp/shale-pipeline-bench}
export SHALE_POOL=$WORK/pool
OUT=$HERE/results/PIPELINE.md
[ -x "$S" ] || { echo "missing $S: cargo build --release -p shale-cli" >&2; exit 2; }
cleanup() {
  for m in $(grep -o "$WORK/[^ ]*" /proc/self/mountinfo 2>/dev/null | sort -r); do umount -l "$m" 2>/dev/null || true; done
}
trap cleanup EXIT
cleanup
rm -rf "$WORK"; mkdir -p "$WORK"
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
now() { date +%s.%N; }
ms() { python3 -c "print(round(($2 - $1) * 1000))"; }
median() { python3 -c "import statistics,sys; print(round(statistics.median(float(x) for x in sys.argv[1:])))" "$@"; }
READ="python3 $HERE/lib/read_all.py"

D=$WORK/images
python3 "$HERE/gen_dataset.py" images "$D" --files 20000 >&2
size=$(du -sh --apparent-size "$D" | cut -f1)
"$S" -q volume create ds --from "$D"
direct=(); whole=(); overhead=(); snap=(); mnt=(); umnt=()
for r in $(seq "$ROUNDS"); do
  drop; t0=$(now); $READ "$D" >/dev/null; t1=$(now); direct+=("$(ms "$t0" "$t1")")
  drop; t0=$(now); "$S" -q run --dataset ds -- sh -c "$READ \"\$SHALE_DATASET_PATH\" >/dev/null"; t1=$(now)
  whole+=("$(ms "$t0" "$t1")")
  drop; t0=$(now); "$S" -q run --dataset ds -- true; t1=$(now); overhead+=("$(ms "$t0" "$t1")")
  # The same three steps one by one.
  t0=$(now); "$S" -q snapshot create ds "step-$r"; t1=$(now); snap+=("$(ms "$t0" "$t1")")
  mkdir -p "$WORK/m"
  t0=$(now); "$S" -q mount "$WORK/m" --volume "ds@step-$r" --read-only; t1=$(now); mnt+=("$(ms "$t0" "$t1")")
  t0=$(now); "$S" -q unmount "$WORK/m"; t1=$(now); umnt+=("$(ms "$t0" "$t1")")
done
di=$(median "${direct[@]}"); wh=$(median "${whole[@]}"); ov=$(median "${overhead[@]}")
sn=$(median "${snap[@]}"); mo=$(median "${mnt[@]}"); um=$(median "${umnt[@]}")
{
  echo "# Pipeline steps: a task on a Shale snapshot, beside the task on the directory"
  echo
  echo "\`bench/pipeline.sh\`, $(date -u +%Y-%m-%d), $(nproc) cores, release build, local pool; 20,000 files, $size;"
  echo "medians of $ROUNDS rounds, page cache dropped before each. The task reads every file once."
  echo
  echo "| | time |"
  echo "|---|---|"
  echo "| the task on the directory | $di ms |"
  echo "| \`shale run\`: snapshot, read-only mount, the task through it, unmount, record | $wh ms ($(python3 -c "print(f'{$wh / $di:.2f}')")x the direct task) |"
  echo "| **Shale's overhead alone** (\`shale run -- true\`) | **$ov ms** |"
  echo "| of which: snapshot / mount / unmount, one by one | $sn / $mo / $um ms |"
} > "$OUT"
echo "direct ${direct[*]} | whole ${whole[*]} | overhead ${overhead[*]} | snapshot ${snap[*]} | mount ${mnt[*]} | unmount ${umnt[*]}" >&2
cat "$OUT"
}
main "$@"
