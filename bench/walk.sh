#!/usr/bin/env bash
# Cold tree walks of a dataset of many small files, the way data loaders
# and people list them, in one run:
#   native       the files on the local disk (ext4 here)
#   mount        the same data imported and snapshotted, walked through
#                `shale mount` (mounted afresh before each cold walk)
#   shale.torch  SnapshotFiles' file list, straight from the tree, against
#                native os.walk (shuffling readers also find each file's
#                pack: its own row); timed with the module loaded (the
#                clock starts when os.walk's would), and once more with
#                `import shale.torch` inside the clock. The first listing
#                of a snapshot walks its tree and keeps the list in the
#                pool (POOL/lists/); later ones, in any process, read it
# Seconds (median of --runs), and native's time over Shale's (above 1:
# Shale is faster). Cold: page cache dropped. Needs root (drop_caches,
# mount), fuse3, and the Python package (scripts/test.sh builds target/py).
#
#   bench/walk.sh [--files N] [--per-class N] [--runs N]
#
# Writes bench/results/WALK.md.
set -euo pipefail

main() {
FILES=1000000
PER_CLASS=1000
RUNS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --files) FILES=$2; shift 2 ;;
    --per-class) PER_CLASS=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
WORK=${BENCH_WORK:-/tmp/shale-walk-bench}
OUT=$HERE/results/WALK.md
PY=${SHALE_PY:-$ROOT/target/py/bin/python}
"$PY" -c "import shale.torch" || { echo "needs the shale Python package in $PY (scripts/test.sh)" >&2; exit 2; }
cargo build --release --manifest-path "$ROOT/Cargo.toml" -p shale-cli >/dev/null
S=$ROOT/target/release/shale
cleanup() { fusermount3 -u "$WORK/mnt" 2>/dev/null || true; }
trap cleanup EXIT
cleanup
rm -rf "$WORK"; mkdir -p "$WORK/mnt"
python3 "$HERE/gen_dataset.py" images "$WORK/ds" --files "$FILES" --per-class "$PER_CLASS" --fixed-size 64 >&2
"$S" -q --pool "$WORK/pool" pool init
"$S" -q --pool "$WORK/pool" volume create ds --from "$WORK/ds"
"$S" -q --pool "$WORK/pool" snapshot create ds v1
settle() { sync; echo 3 > /proc/sys/vm/drop_caches; }
remount() { cleanup; "$S" -q --pool "$WORK/pool" mount "$WORK/mnt" --volume ds@v1; }
secs() { "$PY" "$HERE/walk.py" "$@" | cut -d' ' -f1; }
median() { printf "%s\n" "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
ratio() { printf %.2f "$(echo "$1 / $2" | bc -l)"; }
row() { # label native-times shale-times
  local n s; n=$(median $2); s=$(median $3)
  ROWS+=("| $1 | $n | $s | $(ratio "$n" "$s")x |")
}
ROWS=()
for walk in find imagefolder oswalk stat; do
  native=() shale=()
  for _ in $(seq "$RUNS"); do
    settle; native+=("$(secs "$walk" "$WORK/ds/train")")
    remount; settle; shale+=("$(secs "$walk" "$WORK/mnt/train")")
  done
  row "\`$walk\` cold, mount" "${native[*]}" "${shale[*]}"
done
native=() warm=()
for _ in $(seq "$RUNS"); do
  native+=("$(secs find "$WORK/ds/train")"); warm+=("$(secs find "$WORK/mnt/train")")
done
row "\`find\` warm, mount" "${native[*]}" "${warm[*]}"
cleanup
native=() first=() list=() groups=() both=()
for _ in $(seq "$RUNS"); do
  settle; native+=("$(secs oswalk "$WORK/ds")")
  rm -rf "$WORK/pool/lists"
  settle; first+=("$(secs snapshot "$WORK/pool" ds@v1)")
  settle; list+=("$(secs snapshot "$WORK/pool" ds@v1)")
  settle; groups+=("$(secs snapshot-groups "$WORK/pool" ds@v1)")
  settle; both+=("$(secs import-snapshot "$WORK/pool" ds@v1)")
done
row "shale.torch first file list (walks the tree, keeps the list) vs \`os.walk\`, cold" "${native[*]}" "${first[*]}"
row "shale.torch file list (kept) vs \`os.walk\`, cold" "${native[*]}" "${list[*]}"
row "shale.torch file list (kept) and packs vs \`os.walk\`, cold" "${native[*]}" "${groups[*]}"
row "\`import shale.torch\` and file list (kept) vs \`os.walk\`, cold" "${native[*]}" "${both[*]}"
{
  echo "# Cold tree walks: native, mount, shale.torch"
  echo
  echo "\`bench/walk.sh\`, $(date -u +%Y-%m-%d), $(nproc) cores, kernel $(uname -r); $FILES files of 64 bytes,"
  echo "$PER_CLASS per directory; seconds, median of $RUNS runs; speed: native's time over Shale's."
  echo "The shale.torch rows start the clock once the module is loaded, as os.walk's starts once"
  echo "Python has; the last row counts loading it too (page cache dropped before, paid once per process)."
  echo "A snapshot's first listing walks its tree and keeps the list in the pool; later ones read it."
  echo
  echo "| walk | native s | Shale s | speed |"
  echo "|---|---|---|---|"
  printf "%s\n" "${ROWS[@]}"
} > "$OUT"
cat "$OUT"
rm -rf "$WORK"
}

main "$@"
