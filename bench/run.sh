#!/usr/bin/env bash
# Shale beside the tools users would otherwise use, in one run.
#
#   bench/run.sh [--files N] [--scale-files N] [--flat-files N] [--reps N]
#
# Writes bench/results/RESULTS.md (a Markdown table of times and ratios)
# and prints it. Needs root for the btrfs and JuiceFS peers; a peer that is
# not installed or cannot run is reported as "n/a", never faked.
# Every timed command is preceded by `sync`; caches are dropped when the
# kernel lets us (echo 3 > /proc/sys/vm/drop_caches), so reads are cold.
set -euo pipefail

# The whole script is one function, so that bash reads it all before it
# runs any of it (editing a running script cannot then derail it).
main() {

FILES=20000          # the standard ImageNet-like set (~2.1 GB)
SCALE_FILES=200000   # the scale set (same layout, files 1/10 the size)
FLAT_FILES=1000000   # entries in the one huge directory
REPS=3
WORK=${BENCH_WORK:-/tmp/shale-bench}
while [ $# -gt 0 ]; do
  case "$1" in
    --files) FILES=$2; shift 2 ;;
    --scale-files) SCALE_FILES=$2; shift 2 ;;
    --flat-files) FLAT_FILES=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --work) WORK=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
RESULTS=$HERE/results
mkdir -p "$RESULTS"
OUT=$RESULTS/RESULTS.md
cargo build --release --manifest-path "$ROOT/Cargo.toml" -p shale-cli >/dev/null
SHALE=$ROOT/target/release/shale
export RESTIC_PASSWORD=bench
rm -rf "$WORK"; mkdir -p "$WORK"
GEN="python3 $HERE/gen_dataset.py"

log() { echo "[bench] $*" >&2; }
settle() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
# secs CMD…: wall seconds of one run, after settling
secs() { settle; warm "$@"; }
# warm CMD…: wall seconds of one run, without settling (for commands that
# touch no file data: snapshot and clone)
warm() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); echo "$e - $s" | bc -l; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
fmt() { printf "%.3f" "$1"; }
ratio() { if [ "$2" = "n/a" ] || [ "$1" = "n/a" ]; then echo "n/a"; else printf "%.2f" "$(echo "$1 / $2" | bc -l)"; fi; }
ms() { printf "%.1f" "$(echo "$1 * 1000" | bc -l)"; }

ROWS=()
row() { ROWS+=("| $*"); log "$*"; }

# ---------------------------------------------------------------- datasets
log "generating $FILES-file dataset"
$GEN images "$WORK/ds" --files "$FILES" >&2
$GEN checkpoints "$WORK/ds" >&2
DS_BYTES=$(du -sb "$WORK/ds" | cut -f1)

# ---------------------------------------------------------------- ingest
create_shale() { rm -rf "$WORK/pool"; settle; secs "$SHALE" -q --pool "$WORK/pool" volume create ds --from "$WORK/ds"; }
create_cp() { rm -rf "$WORK/cp"; secs cp -a "$WORK/ds" "$WORK/cp"; }
create_cp_sync() { rm -rf "$WORK/cp"; secs sh -c "cp -a '$WORK/ds' '$WORK/cp' && sync"; }
create_restic() { rm -rf "$WORK/restic"; restic init -q -r "$WORK/restic" >/dev/null; secs restic -q -r "$WORK/restic" backup "$WORK/ds"; }
T_SHALE=(); T_CP=(); T_CPS=(); T_RESTIC=()
for _ in $(seq "$REPS"); do
  T_SHALE+=("$(create_shale)"); T_CP+=("$(create_cp)"); T_CPS+=("$(create_cp_sync)"); T_RESTIC+=("$(create_restic)")
done
S=$(printf "%s\n" "${T_SHALE[@]}" | median); C=$(printf "%s\n" "${T_CP[@]}" | median)
CS=$(printf "%s\n" "${T_CPS[@]}" | median); R=$(printf "%s\n" "${T_RESTIC[@]}" | median)
row "volume create --from ($FILES files, $((DS_BYTES/1000000)) MB) | $(fmt "$S") s | cp -a $(fmt "$C") s; cp -a+sync $(fmt "$CS") s; restic backup $(fmt "$R") s | shale/cp = $(ratio "$S" "$C"); shale/(cp+sync) = $(ratio "$S" "$CS"); restic/shale = $(ratio "$R" "$S") | ≤ 1.0 × cp; restic/shale ≥ 2 |"

# ---------------------------------------------------------------- snapshot & clone
snap_clone_times() { # pool volume label
  local pool=$1 vol=$2 label=$3 i st ct
  st=(); ct=()
  for i in $(seq 10); do
    st+=("$(warm "$SHALE" -q --pool "$pool" snapshot create "$vol" "bs$i")")
    ct+=("$(warm "$SHALE" -q --pool "$pool" volume clone "bc$i" --from "$vol@bs$i")")
  done
  SNAP=$(printf "%s\n" "${st[@]}" | median); CLONE=$(printf "%s\n" "${ct[@]}" | median)
  echo "$SNAP $CLONE"
}
read -r SNAP20 CLONE20 < <(snap_clone_times "$WORK/pool" ds "$FILES")
CPCLONE=$C
BTRFS_SNAP=n/a; BTRFS_REFLINK=n/a
if command -v mkfs.btrfs >/dev/null && truncate -s $((DS_BYTES * 3 / 1000000000 + 2))G "$WORK/btrfs.img" \
   && mkfs.btrfs -q "$WORK/btrfs.img" >/dev/null 2>&1 && mkdir -p "$WORK/btr" && mount -o loop "$WORK/btrfs.img" "$WORK/btr" 2>/dev/null; then
  btrfs subvolume create "$WORK/btr/ds" >/dev/null
  cp -a "$WORK/ds/." "$WORK/btr/ds/"
  sync
  BTRFS_REFLINK=$(warm cp -a --reflink=always "$WORK/btr/ds" "$WORK/btr/reflink")
  BTRFS_SNAP=$(warm btrfs subvolume snapshot "$WORK/btr/ds" "$WORK/btr/snap")
  umount "$WORK/btr" || true
fi
JFS_CLONE=n/a
if command -v juicefs >/dev/null && [ -e /dev/fuse ]; then
  mkdir -p "$WORK/jfs"
  if juicefs format --storage file --bucket "$WORK/jfs-data/" "sqlite3://$WORK/jfs.db" bench >/dev/null 2>&1 \
     && juicefs mount -d "sqlite3://$WORK/jfs.db" "$WORK/jfs" >/dev/null 2>&1; then
    cp -a "$WORK/ds" "$WORK/jfs/ds"
    sync
    JFS_CLONE=$(warm juicefs clone "$WORK/jfs/ds" "$WORK/jfs/ds-clone")
    juicefs umount "$WORK/jfs" >/dev/null 2>&1 || umount "$WORK/jfs" || true
  fi
fi
row "snapshot create, $FILES files | $(ms "$SNAP20") ms | btrfs subvolume snapshot $( [ "$BTRFS_SNAP" = n/a ] && echo n/a || echo "$(ms "$BTRFS_SNAP") ms") | shale/btrfs = $(ratio "$SNAP20" "$BTRFS_SNAP") | ≤ 20 ms |"
row "volume clone, $FILES files | $(ms "$CLONE20") ms | cp -a $(fmt "$CPCLONE") s; cp --reflink (btrfs) $( [ "$BTRFS_REFLINK" = n/a ] && echo n/a || echo "$(ms "$BTRFS_REFLINK") ms"); juicefs clone $( [ "$JFS_CLONE" = n/a ] && echo n/a || echo "$(ms "$JFS_CLONE") ms") | cp/shale = $(ratio "$CPCLONE" "$CLONE20"); reflink/shale = $(ratio "$BTRFS_REFLINK" "$CLONE20"); juicefs/shale = $(ratio "$JFS_CLONE" "$CLONE20") | ≤ 20 ms |"

# ---------------------------------------------------------------- re-import after 1% change
# Both tools first take in the same tree, which is then changed in place
# (restic also looks at ctime and inode numbers, so the tree is not recopied).
rm -rf "$WORK/restic2"; restic init -q -r "$WORK/restic2" >/dev/null
rm -rf "$WORK/cur"; cp -a "$WORK/ds" "$WORK/cur"
restic -q -r "$WORK/restic2" backup "$WORK/cur" >/dev/null
"$SHALE" -q --pool "$WORK/pool" volume create cur --from "$WORK/cur"
$GEN mutate "$WORK/cur" >&2
RI_RESTIC=$(secs restic -q -r "$WORK/restic2" backup "$WORK/cur")
RI_SHALE=$(secs "$SHALE" -q --pool "$WORK/pool" volume import cur "$WORK/cur" --delete)
row "re-import after changing 1% of files | $(fmt "$RI_SHALE") s | restic backup (incremental) $(fmt "$RI_RESTIC") s | restic/shale = $(ratio "$RI_RESTIC" "$RI_SHALE") | shale ≤ restic |"

# ---------------------------------------------------------------- export
E_SHALE=(); E_CP=(); E_RESTIC=()
for _ in $(seq "$REPS"); do
  rm -rf "$WORK/exp"; E_SHALE+=("$(secs "$SHALE" -q --pool "$WORK/pool" volume export ds "$WORK/exp")")
  rm -rf "$WORK/exp"; E_CP+=("$(secs cp -a "$WORK/ds" "$WORK/exp")")
  rm -rf "$WORK/exp"; E_RESTIC+=("$(secs restic -q -r "$WORK/restic" restore latest --target "$WORK/exp")")
done
rm -rf "$WORK/exp"
ES=$(printf "%s\n" "${E_SHALE[@]}" | median); EC=$(printf "%s\n" "${E_CP[@]}" | median); ER=$(printf "%s\n" "${E_RESTIC[@]}" | median)
row "volume export, $FILES files | $(fmt "$ES") s | cp -a $(fmt "$EC") s; restic restore $(fmt "$ER") s | shale/cp = $(ratio "$ES" "$EC"); restic/shale = $(ratio "$ER" "$ES") | ≤ 1.2 × cp |"

# ---------------------------------------------------------------- clone + change 1% of bytes
stored() { "$SHALE" --pool "$WORK/pool" --json pool info | python3 -c 'import json,sys; print(json.load(sys.stdin)["stored_bytes"])'; }
clone_growth() { # what seed label
  local what=$1 seed=$2 label=$3 mut changed s0 s1
  "$SHALE" -q --pool "$WORK/pool" volume clone "exp-$what" --from ds@bs1
  rm -rf "$WORK/edit"; cp -a "$WORK/ds" "$WORK/edit"
  mut=$($GEN mutate "$WORK/edit" --seed "$seed" --what "$what")
  changed=$(echo "$mut" | sed -E 's/.*: ([0-9]+) bytes/\1/')
  s0=$(stored)
  "$SHALE" -q --pool "$WORK/pool" volume import "exp-$what" "$WORK/edit" --delete
  s1=$(stored)
  row "clone + $label | stored +$((s1 - s0)) B | bytes changed $changed B | growth/changed = $(ratio "$((s1 - s0))" "$changed") | ≤ 1.05 |"
}
# (each scenario writes content of its own, so none deduplicates against another)
clone_growth images 7 "rewrite 1% of its files (~1% of bytes)"
clone_growth checkpoints 8 "edit each checkpoint in place (4 × 64 KiB spans)"
clone_growth both 9 "both changes together"

# ---------------------------------------------------------------- gc after create, clone, modify, delete
used_sum=0
for v in exp-images exp-checkpoints exp-both cur; do
  u=$("$SHALE" --json --pool "$WORK/pool" volume info "$v" --space | python3 -c 'import json,sys; print(json.load(sys.stdin)["used_bytes"])')
  used_sum=$((used_sum + u))
  "$SHALE" -q --pool "$WORK/pool" volume delete "$v"
done
RECLAIM=$("$SHALE" --json --pool "$WORK/pool" pool info | python3 -c 'import json,sys; print(json.load(sys.stdin)["reclaimable_bytes"])')
GC_T0=$(date +%s.%N)
GC_JSON=$("$SHALE" --json --pool "$WORK/pool" gc)
GC_T1=$(date +%s.%N)
FREED=$(echo "$GC_JSON" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["freed_bytes"] - r["written_bytes"])')
"$SHALE" -q --pool "$WORK/pool" verify --read-data && VERIFY=passes || VERIFY=FAILS
row "gc after deleting the 3 modified clones and the re-imported volume | freed $FREED B in $(fmt "$(echo "$GC_T1 - $GC_T0" | bc -l)") s | their used (--space) $used_sum B; pool info said $RECLAIM B reclaimable | freed/used = $(ratio "$FREED" "$used_sum"); verify --read-data $VERIFY | frees what nothing reaches |"

# ---------------------------------------------------------------- scale: 200k files
log "generating $SCALE_FILES-file scale dataset (files 1/10 the size)"
python3 - "$WORK/big" "$SCALE_FILES" <<'PY' >&2
import math, os, random, sys
out, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(5); sigma = 0.6; mu = math.log(11000) - sigma * sigma / 2
per = 200
for c in range(max(1, n // per)):
    d = os.path.join(out, "train", f"n{1440764 + c * 997:08d}"); os.makedirs(d, exist_ok=True)
    for i in range(per):
        with open(os.path.join(d, f"{i:05d}.JPEG"), "wb") as f:
            f.write(rng.randbytes(max(256, int(rng.lognormvariate(mu, sigma)))))
print(f"{n} files under {out}")
PY
settle
MEM=$( { /usr/bin/time -f "%M" "$SHALE" -q --pool "$WORK/pool" volume create big --from "$WORK/big" >/dev/null; } 2>&1 | tail -1)
read -r SNAP200 CLONE200 < <(snap_clone_times "$WORK/pool" big "$SCALE_FILES")
row "snapshot create, $SCALE_FILES files | $(ms "$SNAP200") ms | — | at 200k / at 20k = $(ratio "$SNAP200" "$SNAP20") | ≤ 20 ms, ratio ≤ 1.5 |"
row "volume clone, $SCALE_FILES files | $(ms "$CLONE200") ms | — | at 200k / at 20k = $(ratio "$CLONE200" "$CLONE20") | ≤ 20 ms, ratio ≤ 1.5 |"
row "peak memory importing $SCALE_FILES files | $((MEM / 1024)) MiB | — | — | ≤ 512 MiB |"

# ---------------------------------------------------------------- one huge directory
log "generating a directory of $FLAT_FILES entries"
$GEN flat "$WORK/flat" --files "$FLAT_FILES" >&2
"$SHALE" -q --pool "$WORK/pool" volume create flat
FIRST=$("$SHALE" --json --pool "$WORK/pool" volume import flat "$WORK/flat" | python3 -c 'import json,sys; print(json.load(sys.stdin)["written_bytes"])')
echo changed > "$WORK/flat/flat/item0500000"
SECOND=$("$SHALE" --json --pool "$WORK/pool" volume import flat "$WORK/flat" | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r["written_bytes"])')
row "re-import after changing 1 file in a directory of $FLAT_FILES entries | $SECOND B written | first import wrote $FIRST B | second/first = $(ratio "$SECOND" "$FIRST") | O(log n) |"

{
  echo "# Shale benchmark results"
  echo
  echo "Run on $(date -u +%Y-%m-%d) on $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB RAM; median of $REPS runs where repeated,"
  echo "10 runs for snapshot/clone. \`sync\` and a page-cache drop before every timed data-moving command (cold reads);"
  echo "snapshot, clone and their peers (btrfs, JuiceFS) are timed warm, as a user runs them: they move no file data."
  echo "Shale makes every pack durable (fsync) before it commits; \`cp -a\` does not, so \`cp -a+sync\` is shown too."
  echo
  echo "| measure | shale | peers | ratios | goal |"
  echo "|---|---|---|---|---|"
  printf "%s\n" "${ROWS[@]}"
} > "$OUT"
cat "$OUT"
"$SHALE" --pool "$WORK/pool" pool info >&2
}

main "$@"
