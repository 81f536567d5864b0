#!/usr/bin/env bash
# ResNet-50 training fed from native files, from a Shale mount and from
# shale.torch (no mount), one cold and one warm epoch each, beside the GPU's
# own ceiling (synthetic batches already on the GPU), in one run; or, with
# --cpu, the same loader measurements without the model, on the CPU (runs
# anywhere). Needs root (page-cache drops, mounts), fuse3, and a Python
# with torch (and torchvision for the model) and the shale package.
#
#   bench/gpu/run.sh [--files N] [--batch B] [--workers W] [--cpu]
#
# On a machine where nothing is built (a lent GPU machine), give what was
# built elsewhere: SHALE (a stripped CLI), SHALE_PY (a Python with torch),
# SHALE_WHEEL (the shale package); see bench/lib/shale_env.sh.
#
# Writes bench/results/GPU.md (GPU_CPU.md with --cpu).
set -euo pipefail

main() {
FILES=24000
BATCH=256
WORKERS=$(( $(nproc) < 16 ? $(nproc) : 16 ))
DEVICE=cuda
MODEL=resnet50
while [ $# -gt 0 ]; do
  case "$1" in
    --files) FILES=$2; shift 2 ;;
    --batch) BATCH=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    --cpu) DEVICE=cpu; MODEL=none; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH=$(dirname "$HERE")
ROOT=$(dirname "$BENCH")
WORK=${BENCH_WORK:-/tmp/shale-gpu-bench}
OUT=$BENCH/results/GPU.md
[ $DEVICE = cpu ] && OUT=$BENCH/results/GPU_CPU.md
mkdir -p "$WORK"
. "$BENCH/lib/shale_env.sh"
"$PY" -c "import torch, shale.torch" || { echo "needs torch and the shale package in $PY" >&2; exit 2; }
if [ $DEVICE = cuda ]; then
  "$PY" -c "import torch, torchvision, sys; sys.exit(0 if torch.cuda.is_available() else 1)" \
    || { echo "no CUDA device (or torchvision) here: run with --cpu" >&2; exit 2; }
fi
cleanup() { fusermount3 -u "$WORK/mnt" 2>/dev/null || true; }
trap cleanup EXIT
cleanup
rm -rf "$WORK/ds" "$WORK/pool"; mkdir -p "$WORK/mnt"
"$PY" "$BENCH/gen_dataset.py" images "$WORK/ds" --files "$FILES" --fixed-size 150528 >&2
sh() { "$S" -q --pool "$WORK/pool" "$@"; }
sh pool init
sh volume create ds --from "$WORK/ds"
sh snapshot create ds v1
train() { "$PY" "$HERE/train.py" "$@" --device $DEVICE --model $MODEL --batch "$BATCH" --workers "$WORKERS"; }
rate() { train "$@" | "$PY" -c "import json, sys; print(json.load(sys.stdin)['images_per_s'])"; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
CEILING=$(rate ceiling "$FILES")
echo "ceiling: $CEILING images/s" >&2
ROWS=()
for source in native mount shale.torch; do
  row="| $source |"
  for temp in cold warm; do
    case $source in
      native) [ $temp = cold ] && drop; r=$(rate files "$WORK/ds") ;;
      mount)
        # Cold: mounted again, so the server holds nothing either.
        if [ $temp = cold ]; then cleanup; sh mount "$WORK/mnt" --volume ds@v1; drop; fi
        r=$(rate files "$WORK/mnt") ;;
      shale.torch) [ $temp = cold ] && drop; r=$(rate snapshot "$WORK/pool" ds@v1) ;;
    esac
    echo "$source $temp: $r images/s" >&2
    row+=" $r ($(echo "$r $CEILING" | awk '{printf "%.0f%%", 100 * $1 / $2}')) |"
  done
  ROWS+=("$row")
done
cleanup
{
  if [ $MODEL = none ]; then
    echo "# A training job's loaders, no model: native files, a Shale mount, shale.torch"
  else
    echo "# ResNet-50 fed from native files, a Shale mount and shale.torch"
  fi
  echo
  echo "\`bench/gpu/run.sh\`, $(date -u +%Y-%m-%d), $(nproc) cores, kernel $(uname -r),"
  echo "device: $("$PY" -c "import torch; print(torch.cuda.get_device_name() if '$DEVICE' == 'cuda' else 'cpu')"),"
  echo "model: $MODEL; $FILES files of 150,528 bytes (224x224x3 raw pixels), batch $BATCH,"
  echo "$WORKERS DataLoader workers; images per second over one epoch, listing included;"
  echo "in brackets the share of the ceiling ($CEILING images/s: the same steps on"
  echo "synthetic batches already on the device)."
  echo
  echo "| source | cold epoch | warm epoch |"
  echo "|---|---|---|"
  printf "%s\n" "${ROWS[@]}"
} > "$OUT"
cat "$OUT"
}

main "$@"
