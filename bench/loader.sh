#!/usr/bin/env bash
# A data loader's read of a dataset (fixed 150,528-byte files, ImageNet's
# 224x224x3), cold and warm, with 1 to 64 reader threads, in one run:
#   native     the files on the local disk (ext4 here)
#   mount      the same data imported into a volume, read through `shale mount`
#   shale.torch  the snapshot read without a mount (SnapshotFiles)
# Files per second, listing included (os.walk / the tree). Cold: page cache
# dropped, Shale's chunk cache is per process. Needs root (drop_caches,
# mount), fuse3, and the Python package (scripts/test.sh builds target/py;
# on a lent machine SHALE, SHALE_PY, SHALE_WHEEL: bench/lib/shale_env.sh).
# The mount is served by `shale mount`'s default threads, or as many as
# SHALE_MOUNT_THREADS says.
#
#   bench/loader.sh [--files N] [--readers "1 4 16 64"]
#
# Writes bench/results/LOADER.md.
set -euo pipefail

main() {
FILES=12000
READERS="1 4 16 64"
while [ $# -gt 0 ]; do
  case "$1" in
    --files) FILES=$2; shift 2 ;;
    --readers) READERS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
WORK=${BENCH_WORK:-/tmp/shale-loader-bench}
OUT=$HERE/results/LOADER.md
mkdir -p "$WORK"
. "$HERE/lib/shale_env.sh"
"$PY" -c "import shale.torch" || { echo "needs the shale Python package in $PY (scripts/test.sh)" >&2; exit 2; }
cleanup() { fusermount3 -u "$WORK/mnt" 2>/dev/null || true; }
trap cleanup EXIT
cleanup
rm -rf "$WORK/ds" "$WORK/pool"; mkdir -p "$WORK/mnt"
python3 "$HERE/gen_dataset.py" images "$WORK/ds" --files "$FILES" --fixed-size 150528 >&2
"$S" -q --pool "$WORK/pool" pool init
"$S" -q --pool "$WORK/pool" volume create ds --from "$WORK/ds"
"$S" -q --pool "$WORK/pool" snapshot create ds v1
"$S" -q --pool "$WORK/pool" mount "$WORK/mnt" --volume ds@v1
settle() { sync; echo 3 > /proc/sys/vm/drop_caches; }
rate() { "$PY" "$HERE/loader.py" "$@" | cut -d' ' -f1; }
# Cold: the page cache dropped just before. Warm: the same read twice in a
# row, the second timed (each cold read drops what the one before cached,
# so a warm read must follow its own source's read).
measure() {
  if [ "$1" = cold ]; then settle; else rate "${@:2}" >/dev/null; fi
  rate "${@:2}"
}
ROWS=()
for n in $READERS; do
  row="| $n |"
  for temp in cold warm; do
    a=$(measure $temp files "$WORK/ds" "$n")
    b=$(measure $temp files "$WORK/mnt" "$n")
    c=$(measure $temp snapshot "$WORK/pool" ds@v1 "$n")
    row+=" $a | $b ($(printf %.2f "$(echo "$b / $a" | bc -l)")x) | $c ($(printf %.2f "$(echo "$c / $a" | bc -l)")x) |"
  done
  ROWS+=("$row")
done
{
  echo "# A data loader's read: native, mount, shale.torch"
  echo
  echo "\`bench/loader.sh\`, $(date -u +%Y-%m-%d), $(nproc) cores, kernel $(uname -r); $FILES files of 150,528 bytes, incompressible;"
  echo "files per second, listing included; in brackets the rate over native's."
  echo
  echo "| readers | native cold | mount cold | shale.torch cold | native warm | mount warm | shale.torch warm |"
  echo "|---|---|---|---|---|---|---|"
  printf "%s\n" "${ROWS[@]}"
} > "$OUT"
cat "$OUT"
}

main "$@"
