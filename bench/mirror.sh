#!/usr/bin/env bash
# `shale mirror` between two local pools beside `rsync -a` between two
# directories, in one run, on the ImageNet-like set:
#   baseline transfer                 mirror create (+ first update)  vs  rsync -a
#   update after changing 1% of files bytes sent vs bytes changed; time vs rsync -a
#   update with nothing changed       mirror update  vs  rsync -a
# Needs root (drop_caches) and rsync.
#
#   bench/mirror.sh [--files N]
#
# Writes bench/results/MIRROR.md.
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
WORK=${BENCH_WORK:-/tmp/shale-mirror-bench}
OUT=$HERE/results/MIRROR.md
mkdir -p "$HERE/results"
cargo build --release --manifest-path "$ROOT/Cargo.toml" -p shale-cli >/dev/null
SHALE=$ROOT/target/release/shale
rm -rf "$WORK"; mkdir -p "$WORK"
settle() { sync; echo 3 > /proc/sys/vm/drop_caches; }
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l; }
ratio() { printf %.2f "$(echo "$1 / $2" | bc -l)"; }
num() { printf "%.${2:-1}f" "$1"; }
timed() { local s e; s=$(now); "$@" >/dev/null 2>&1 || echo "failed: $*" >&2; e=$(now); secs "$s" "$e"; }
A=$WORK/site-a; B=$WORK/site-b
ROWS=()

python3 "$HERE/gen_dataset.py" images "$WORK/ds" --files "$FILES" >&2
BYTES=$(du -sb "$WORK/ds" | cut -f1)
"$SHALE" -q --pool "$A" volume create ds --from "$WORK/ds"
"$SHALE" -q --pool "$A" snapshot create ds s1
"$SHALE" -q --pool "$B" pool init
cp -a "$WORK/ds" "$WORK/rsync-src"

# --- baseline -------------------------------------------------------------------
settle; TS=$(timed "$SHALE" -q --pool "$B" mirror create ds --source "$A::ds")
settle; TR=$(timed rsync -a "$WORK/rsync-src/" "$WORK/rsync-dst/")
ROWS+=("| baseline transfer of $FILES files ($(numfmt --to=iec "$BYTES")), local -> local, cold cache | $(num "$TS") s | rsync -a $(num "$TR") s | shale/rsync = $(ratio "$TS" "$TR") | <= 1.0 x rsync |")

# --- update after changing 1% of files ----------------------------------------
CHANGED=$(python3 "$HERE/gen_dataset.py" mutate "$WORK/ds" --fraction 0.01 --what images 2>&1 | sed -n 's/.*: \([0-9]*\) bytes$/\1/p')
"$SHALE" -q --pool "$A" volume import ds "$WORK/ds" --delete
"$SHALE" -q --pool "$A" snapshot create ds s2
rsync -a --delete "$WORK/ds/" "$WORK/rsync-src/"
settle; s=$(now); "$SHALE" --json --pool "$B" mirror update ds > "$WORK/update.json"; e=$(now); TS=$(secs "$s" "$e")
SENT=$(python3 -c "import json,sys; print(json.load(open('$WORK/update.json'))['bytes'])")
settle; TR=$(timed rsync -a --delete "$WORK/rsync-src/" "$WORK/rsync-dst/")
ROWS+=("| update after changing 1% of files ($(numfmt --to=iec "$CHANGED") changed) | $(num "$TS" 2) s, $(numfmt --to=iec "$SENT") sent | rsync -a $(num "$TR" 2) s | time shale/rsync = $(ratio "$TS" "$TR"); sent/changed = $(ratio "$SENT" "$CHANGED") | time <= 0.5 x rsync; sent <= 1.1 x changed |")

# --- nothing changed -----------------------------------------------------------------
"$SHALE" -q --pool "$B" mirror update ds
TS=$(timed "$SHALE" -q --pool "$B" mirror update ds)
TR=$(timed rsync -a --delete "$WORK/rsync-src/" "$WORK/rsync-dst/")
ROWS+=("| update with nothing changed (warm cache) | $(num "$(echo "$TS * 1000" | bc -l)" 0) ms | rsync -a $(num "$(echo "$TR * 1000" | bc -l)" 0) ms | shale/rsync = $(ratio "$TS" "$TR") | <= 100 ms |")
"$SHALE" -q --pool "$B" verify --read-data >&2

{
  echo "# shale mirror"
  echo
  echo "Run on $(date -u +%Y-%m-%d), $(nproc) cores; both pools and both rsync trees on the same local disk; $(rsync --version | head -1)."
  echo
  echo "| measure | shale | peer | ratios | goal |"
  echo "|---|---|---|---|---|"
  printf "%s\n" "${ROWS[@]}"
} > "$OUT"
cat "$OUT"
rm -rf "$WORK"
}

main "$@"
