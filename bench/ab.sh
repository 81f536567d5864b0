#!/usr/bin/env bash
# Two builds of Shale side by side, taking turns on the same data: did a
# change move import, snapshot, clone, or cold (1 and 8 readers) and warm
# reads through a mount?
# Needs root (mounts, page-cache drops) and fuse3.
#
#   bench/ab.sh OLD_SHALE NEW_SHALE [--files N] [--rounds R]
#
# OLD_SHALE and NEW_SHALE are `shale` binaries (e.g. a release build of the
# last landed commit, made in a `git worktree`, and target/release/shale),
# or scripts that run one with other settings (e.g. a mount option).
# Prints a Markdown table of medians (and each round) and the ratio
# new/old; writes nothing else.
set -euo pipefail

main() {
[ $# -ge 2 ] || { sed -n '2,11p' "$0" >&2; exit 2; }
OLD=$(realpath "$1"); NEW=$(realpath "$2"); shift 2
FILES=20000
ROUNDS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --files) FILES=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${BENCH_WORK:-/tmp/shale-ab-bench}
cleanup() { fusermount3 -u "$WORK/mnt" 2>/dev/null || true; }
trap cleanup EXIT
cleanup
rm -rf "$WORK"; mkdir -p "$WORK/mnt"
python3 "$HERE/gen_dataset.py" images "$WORK/ds" --files "$FILES" >&2

now() { date +%s.%N; }
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
# One round of one build: seconds for import, snapshot, clone, and the
# files per second through a mount of the snapshot of 8 cold readers, of
# 1 cold reader (mounted again) and of 8 readers again (warm).
round() {
  local bin=$1 pool=$WORK/pool-$2
  rm -rf "$pool"
  local s=(-q --pool "$pool")
  "$bin" "${s[@]}" pool init >/dev/null
  drop; local t0; t0=$(now)
  "$bin" "${s[@]}" volume create ds --from "$WORK/ds"
  local t1; t1=$(now)
  "$bin" "${s[@]}" snapshot create ds s1
  local t2; t2=$(now)
  "$bin" "${s[@]}" volume clone exp --from ds@s1
  local t3; t3=$(now)
  "$bin" "${s[@]}" mount "$WORK/mnt" --volume ds@s1 --read-only
  drop; local t4; t4=$(now)
  readers 8
  local t5; t5=$(now)
  "$bin" -q unmount "$WORK/mnt"
  "$bin" "${s[@]}" mount "$WORK/mnt" --volume ds@s1 --read-only
  drop; local t6; t6=$(now)
  readers 1
  local t7; t7=$(now)
  readers 8
  local t8; t8=$(now)
  "$bin" -q unmount "$WORK/mnt"
  echo "$t0 $t1 $t2 $t3 $t4 $t5 $t6 $t7 $t8" | awk -v n="$FILES" \
    '{printf "%.3f %.4f %.4f %.0f %.0f %.0f\n", $2-$1, $3-$2, $4-$3, n/($6-$5), n/($8-$7), n/($9-$8)}'
}
readers() { (cd "$WORK/mnt" && find . -type f -print0 | xargs -0 -n 64 -P "$1" cat >/dev/null); }

# A round of each first, not counted: the first run after the data is
# made pays for things neither build does (the data's first read).
round "$OLD" old >/dev/null; round "$NEW" new >/dev/null
declare -a O_IMP O_SNAP O_CLONE O_READ O_ONE O_WARM N_IMP N_SNAP N_CLONE N_READ N_ONE N_WARM
for r in $(seq 1 "$ROUNDS"); do
  # Turns alternate which build goes first.
  for who in $( [ $((r % 2)) -eq 1 ] && echo old new || echo new old ); do
    if [ "$who" = old ]; then read -r a b c d e f < <(round "$OLD" old)
      O_IMP+=("$a"); O_SNAP+=("$b"); O_CLONE+=("$c"); O_READ+=("$d"); O_ONE+=("$e"); O_WARM+=("$f")
    else read -r a b c d e f < <(round "$NEW" new)
      N_IMP+=("$a"); N_SNAP+=("$b"); N_CLONE+=("$c"); N_READ+=("$d"); N_ONE+=("$e"); N_WARM+=("$f")
    fi
    echo "round $r $who: import $a s, snapshot $b s, clone $c s, cold read $d files/s (1 reader $e), warm $f" >&2
  done
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
row() {
  local what=$1 unit=$2; shift 2
  local n=$(( $# / 2 ))
  local old=("${@:1:$n}") new=("${@:$((n+1))}")
  local mo mn; mo=$(median "${old[@]}"); mn=$(median "${new[@]}")
  printf '| %s | %s %s (%s) | %s %s (%s) | %.2f |\n' "$what" "$mo" "$unit" "${old[*]}" \
    "$mn" "$unit" "${new[*]}" "$(echo "$mn $mo" | awk '{print ($2 > 0) ? $1/$2 : 0}')"
}
echo "| measure ($FILES files, $ROUNDS rounds, by turns) | old: median (rounds) | new: median (rounds) | new/old |"
echo "|---|---|---|---|"
row "import (volume create --from)" s "${O_IMP[@]}" "${N_IMP[@]}"
row "snapshot" s "${O_SNAP[@]}" "${N_SNAP[@]}"
row "clone" s "${O_CLONE[@]}" "${N_CLONE[@]}"
row "cold read, 8 readers, through a mount" files/s "${O_READ[@]}" "${N_READ[@]}"
row "cold read, 1 reader" files/s "${O_ONE[@]}" "${N_ONE[@]}"
row "warm re-read, 8 readers" files/s "${O_WARM[@]}" "${N_WARM[@]}"
}
main "$@"
