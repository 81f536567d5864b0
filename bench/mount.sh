#!/usr/bin/env bash
# Reading a dataset through a read-only Shale mount, beside the same files
# on the native file system and on JuiceFS (SQLite metadata, local storage),
# in one run. Needs root (mounts, page-cache drops) and fuse3.
#
#   bench/mount.sh [--files N]
#
# Writes bench/results/MOUNT.md.
set -euo pipefail

main() {
FILES=20000
while [ $# -gt 0 ]; do
  case "$1" in
    --files) FILES=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
WORK=${BENCH_WORK:-/tmp/shale-mount-bench}
OUT=$HERE/results/MOUNT.md
mkdir -p "$HERE/results"
cargo build --release --manifest-path "$ROOT/Cargo.toml" -p shale-cli >/dev/null
SHALE=$ROOT/target/release/shale
cleanup() {
  fusermount3 -u "$WORK/mnt" 2>/dev/null || true
  juicefs umount "$WORK/jfs" >/dev/null 2>&1 || umount "$WORK/jfs" 2>/dev/null || true
}
trap cleanup EXIT
cleanup
rm -rf "$WORK"; mkdir -p "$WORK/mnt" "$WORK/jfs"
python3 "$HERE/gen_dataset.py" images "$WORK/ds" --files "$FILES" >&2
"$SHALE" -q --pool "$WORK/pool" volume create ds --from "$WORK/ds"
"$SHALE" -q --pool "$WORK/pool" mount "$WORK/mnt" --read-only
JFS=""
if command -v juicefs >/dev/null && juicefs format --storage file --bucket "$WORK/jfs-data/" "sqlite3://$WORK/jfs.db" bench >/dev/null 2>&1 \
   && juicefs mount -d "sqlite3://$WORK/jfs.db" "$WORK/jfs" >/dev/null 2>&1; then
  cp -a "$WORK/ds" "$WORK/jfs/ds"
  JFS="$WORK/jfs/ds"
fi

settle() { sync; echo 3 > /proc/sys/vm/drop_caches; }
# files/s reading every file of DIR with P parallel readers
rate() { # dir parallel
  local s e
  s=$(date +%s.%N)
  (cd "$1" && find . -type f -print0 | xargs -0 -P "$2" -n 200 cat > /dev/null)
  e=$(date +%s.%N)
  echo "$FILES / ($e - $s)" | bc -l
}
ROWS=()
measure() {
  local n s j k d what
  declare -A r
  for name in native shale juicefs; do
    case $name in native) d="$WORK/ds" ;; shale) d="$WORK/mnt/ds" ;; juicefs) d="$JFS" ;; esac
    if [ -z "$d" ]; then r[$name.c1]=nan; r[$name.c8]=nan; r[$name.w]=nan; continue; fi
    settle; r[$name.c1]=$(rate "$d" 1)
    settle; r[$name.c8]=$(rate "$d" 8)
    r[$name.w]=$(rate "$d" 8)
  done
  for k in c1 c8 w; do
    case $k in c1) what="cold read, 1 reader" ;; c8) what="cold read, 8 readers" ;; w) what="warm re-read (second epoch), 8 readers" ;; esac
    n=${r[native.$k]}; s=${r[shale.$k]}; j=${r[juicefs.$k]}
    ROWS+=("| $what, $FILES files | $(printf %.0f "$s") files/s | native $(printf %.0f "$n"); juicefs $(printf %.0f "$j" 2>/dev/null || echo n/a) | shale/native = $(printf %.2f "$(echo "$s / $n" | bc -l)"); shale/juicefs = $( [ "$j" = nan ] && echo n/a || printf %.2f "$(echo "$s / $j" | bc -l)") |")
  done
}
measure
{
  echo "# Reading through a read-only Shale mount"
  echo
  echo "Run on $(date -u +%Y-%m-%d), $(nproc) cores; page cache dropped before each cold read."
  echo
  echo "| measure | shale mount | peers (files/s) | ratios |"
  echo "|---|---|---|---|"
  printf "%s\n" "${ROWS[@]}"
} > "$OUT"
cat "$OUT"
}

main "$@"
