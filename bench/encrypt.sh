#!/usr/bin/env bash
# Encrypted pools beside plain ones, and beside restic (which encrypts
# too), in one run: import (`volume create --from`) and a cold read of
# every file through a read-only mount.
#
#   bench/encrypt.sh [--files N] [--reps N] [--readers N]
#
# Writes bench/results/ENCRYPT.md and prints it. Needs root (mounts, and
# dropping the page cache so reads are cold). restic missing: its row says
# n/a.
set -euo pipefail

main() {
FILES=10000
REPS=3
READERS=8
WORK=${BENCH_WORK:-/tmp/shale-bench-encrypt}
while [ $# -gt 0 ]; do
  case "$1" in
    --files) FILES=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --readers) READERS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
OUT=$HERE/results/ENCRYPT.md
cargo build --release --manifest-path "$ROOT/Cargo.toml" -p shale-cli >/dev/null
SHALE=$ROOT/target/release/shale
rm -rf "$WORK"; mkdir -p "$WORK"
trap 'for m in "$WORK"/mnt-*; do fusermount3 -u "$m" 2>/dev/null || true; done' EXIT

log() { echo "[bench] $*" >&2; }
settle() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
secs() { settle; local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
fmt() { printf "%.2f" "$1"; }
ratio() { if [ "$1" = "n/a" ] || [ "$2" = "n/a" ]; then echo "n/a"; else printf "%.2f" "$(echo "$1 / $2" | bc -l)"; fi; }

log "generating $FILES image-like files and two 64 MiB checkpoints"
python3 "$HERE/gen_dataset.py" images "$WORK/ds" --files "$FILES" >&2
python3 "$HERE/gen_dataset.py" checkpoints "$WORK/ds" --count 2 --size-mib 64 >&2
BYTES=$(du -sb "$WORK/ds" | cut -f1)
head -c 32 /dev/urandom > "$WORK/key"
export RESTIC_PASSWORD=bench

# pool KIND: a new pool made by `pool init` (plain or --encrypt)
new_pool() {
  rm -rf "$WORK/$1"
  case $1 in
    plain) "$SHALE" -q --pool "$WORK/plain" pool init ;;
    sealed) "$SHALE" -q --pool "$WORK/sealed" --key-file "$WORK/key" pool init --encrypt ;;
  esac
}
import() { new_pool "$1"; secs "$SHALE" -q --pool "$WORK/$1" --key-file "$WORK/key" volume create ds --from "$WORK/ds"; }
restic_backup() {
  command -v restic >/dev/null || { echo n/a; return; }
  rm -rf "$WORK/restic"; restic init -q -r "$WORK/restic" >/dev/null
  secs restic -q -r "$WORK/restic" backup "$WORK/ds"
}
# cold_read KIND: every file of volume ds read once through a fresh
# read-only mount, $READERS at a time
cold_read() {
  local m=$WORK/mnt-$1
  mkdir -p "$m"
  "$SHALE" -q --pool "$WORK/$1" --key-file "$WORK/key" mount "$m" --volume ds --read-only
  secs sh -c "find '$m' -type f -print0 | xargs -0 -P $READERS -n 64 cat > /dev/null"
  "$SHALE" -q --pool "$WORK/$1" unmount "$m"
}

IP=(); IS=(); IR=(); RP=(); RS=()
for rep in $(seq "$REPS"); do
  log "rep $rep: imports"
  # alternate the order, so neither kind always runs on a warmer machine
  if [ $((rep % 2)) = 1 ]; then IP+=("$(import plain)"); IS+=("$(import sealed)")
  else IS+=("$(import sealed)"); IP+=("$(import plain)"); fi
  IR+=("$(restic_backup)")
  log "rep $rep: cold reads"
  if [ $((rep % 2)) = 1 ]; then RP+=("$(cold_read plain)"); RS+=("$(cold_read sealed)")
  else RS+=("$(cold_read sealed)"); RP+=("$(cold_read plain)"); fi
done
ip=$(printf "%s\n" "${IP[@]}" | median); is=$(printf "%s\n" "${IS[@]}" | median)
rp=$(printf "%s\n" "${RP[@]}" | median); rs=$(printf "%s\n" "${RS[@]}" | median)
if [ "${IR[0]}" = n/a ]; then ir=n/a; else ir=$(printf "%s\n" "${IR[@]}" | median); fi
stored() { du -sb "$WORK/$1/packs" | cut -f1; }
{
  echo "# Encrypted pools beside plain pools and restic"
  echo
  echo "$(date -u +%Y-%m-%d), $(nproc) cores; $FILES image-like files and two 64 MiB checkpoints,"
  echo "$((BYTES / 1000000)) MB; local pools made by \`pool init\` (128 KiB chunks), the"
  echo "encrypted one with a key file; medians of $REPS runs, each after \`sync\` and"
  echo "dropping the page cache; imports alternate which kind goes first."
  echo
  echo "| what | plain pool | encrypted pool | peer | ratios |"
  echo "|---|---|---|---|---|"
  echo "| import (\`volume create --from\`) | $(fmt "$ip") s | $(fmt "$is") s | restic backup $( [ "$ir" = n/a ] && echo n/a || echo "$(fmt "$ir") s") | encrypted speed / plain = $(ratio "$ip" "$is") (goal ≥ 0.9); restic time / encrypted = $(ratio "$ir" "$is") (goal ≥ 2) |"
  echo "| cold read through a read-only mount, $READERS readers | $(fmt "$rp") s | $(fmt "$rs") s | | encrypted speed / plain = $(ratio "$rp" "$rs") (goal ≥ 0.9) |"
  echo "| packs stored | $(stored plain) B | $(stored sealed) B | | |"
  echo
  echo "Runs: import plain ${IP[*]}; encrypted ${IS[*]}; restic ${IR[*]};"
  echo "read plain ${RP[*]}; encrypted ${RS[*]}."
} > "$OUT"
cat "$OUT"
rm -rf "$WORK"
}
main "$@"
