#!/usr/bin/env bash
# Where the time of a sequential read through a Shale mount goes: one large
# file read with fio (1 MiB blocks, as in bench/mount.sh) natively and
# through the mount, under conditions that take one cost away at a time.
# Needs root (mounts, page-cache drops, sysfs), fuse3 and fio.
#
#   bench/mount_seq.sh [--gib G] [--rounds R]
#
# Writes bench/results/MOUNT_SEQ.md. The cases, taking turns each round:
#   native            ext4, page cache dropped
#   native, touched   the same, after writing and freeing as much memory as
#                     the read will use: on a VM whose host takes freed
#                     memory back, the first touch of each page is slow, and
#                     how much was taken back differs from read to read
#   mount, touched    through the mount, page cache dropped, memory touched
#   mount, packs cached   through a fresh mount whose packs are in the page
#                     cache, memory touched: no disk I/O, only the FUSE path
#   mount, 1 CPU      the same, mount and reader on one CPU: what one core
#                     does, with no wake-ups across CPUs
#   mount, ra 4 MiB   mount, touched, with the kernel's read-ahead for the
#                     mount raised from 128 KiB to 4 MiB
# and, where tracefs is available, the sizes of the page-cache folios the
# kernel allocates for the file, native and through the mount.
set -euo pipefail

main() {
GIB=2
ROUNDS=3
while [ $# -gt 0 ]; do
  case "$1" in
    --gib) GIB=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
WORK=${BENCH_WORK:-/tmp/shale-mount-seq}
OUT=$HERE/results/MOUNT_SEQ.md
mkdir -p "$HERE/results"
cargo build --release --manifest-path "$ROOT/Cargo.toml" -p shale-cli >/dev/null
SHALE=$ROOT/target/release/shale
. "$HERE/lib/memory.sh"
sh() { "$SHALE" -q --pool "$WORK/pool" "$@"; }
cleanup() { fusermount3 -u "$WORK/mnt" 2>/dev/null || true; rm -f /dev/shm/shale-touch; }
trap cleanup EXIT
cleanup
rm -rf "$WORK"; mkdir -p "$WORK/mnt" "$WORK/native"
fio --name=make --filename="$WORK/native/big" --size="${GIB}G" --rw=write --bs=1M \
    --refill_buffers --end_fsync=1 >/dev/null
sh volume create scratch
sh volume import scratch "$WORK/native" --to big-dir
BIG=$WORK/mnt/scratch/big-dir/big

drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
# Writes and frees twice the file's size (the mount's page cache and the
# packs'): lib/memory.sh.
mem() { touch_memory $((GIB * 2 * 1024 * 1024)); }
remount() { sh unmount "$WORK/mnt"; "$@" "$SHALE" -q --pool "$WORK/pool" mount "$WORK/mnt"; }
fio_mbs() { # file [wrapper...] -> MB/s
  local f=$1; shift
  "$@" fio --name=seq --filename="$f" --rw=read --bs=1M --size="${GIB}G" --readonly \
      --output-format=json | python3 -c 'import json,sys; print(json.load(sys.stdin)["jobs"][0]["read"]["bw"]/1024)'
}
bdi_ra() { echo "$1" > "/sys/class/bdi/$(mountpoint -d "$WORK/mnt")/read_ahead_kb"; }

sh mount "$WORK/mnt"
CASES=("native" "native, touched" "mount, touched" "mount, packs cached" "mount, 1 CPU" "mount, ra 4 MiB")
declare -A r
for round in $(seq "$ROUNDS"); do
  for c in "${CASES[@]}"; do
    case $c in
      "native") remount; drop; v=$(fio_mbs "$WORK/native/big") ;;
      "native, touched") remount; drop; mem; v=$(fio_mbs "$WORK/native/big") ;;
      "mount, touched") remount; drop; mem; v=$(fio_mbs "$BIG") ;;
      "mount, packs cached")
        drop; cat "$WORK"/pool/packs/*/*.pack > /dev/null; mem; remount; v=$(fio_mbs "$BIG") ;;
      "mount, 1 CPU")
        drop; cat "$WORK"/pool/packs/*/*.pack > /dev/null; mem; remount taskset -c 0
        v=$(fio_mbs "$BIG" taskset -c 0) ;;
      "mount, ra 4 MiB") remount; bdi_ra 4096; drop; mem; v=$(fio_mbs "$BIG") ;;
    esac
    r[$c]+="$(printf %.0f "$v") "
    echo "round $round: $c: $v MB/s" >&2
  done
done
remount

# Folio sizes the kernel allocates for the file, from the page-cache trace.
FOLIOS="tracefs not available"
T=/sys/kernel/tracing
if [ -w "$T/events/filemap/mm_filemap_add_to_page_cache/enable" ]; then
  orders() { # file -> "size x count, ..." (by device: only this file is read meanwhile)
    local dev
    drop
    echo > "$T/trace"
    echo 1 > "$T/events/filemap/mm_filemap_add_to_page_cache/enable"
    echo 1 > "$T/tracing_on"
    dd if="$1" of=/dev/null bs=1M count=256 status=none
    echo 0 > "$T/events/filemap/mm_filemap_add_to_page_cache/enable"
    dev=$(mountpoint -d "$(stat -c %m "$1")" 2>/dev/null || true)
    grep -o "dev $dev ino .*order=[0-9]*" "$T/trace" | sed 's/.*order=//' \
      | sort -n | uniq -c | awk '{printf "%s%d KiB x %d", (NR>1?", ":""), 4*2^$2, $1}' || true
  }
  FOLIOS="native: $(orders "$WORK/native/big"); mount: $(orders "$BIG")"
fi

median() { printf "%s\n" $1 | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
{
  echo "# Sequential read through a Shale mount: where the time goes"
  echo
  echo "Run on $(date -u +%Y-%m-%d), $(nproc) cores, kernel $(uname -r), a ${GIB} GiB file, fio 1 MiB reads,"
  echo "$ROUNDS rounds with the cases taking turns (\`bench/mount_seq.sh\`). MB/s, median and all rounds."
  echo
  echo "| case | median MB/s | rounds | / native, touched |"
  echo "|---|---|---|---|"
  base=$(median "${r[native, touched]}")
  for c in "${CASES[@]}"; do
    m=$(median "${r[$c]}")
    echo "| $c | $m | ${r[$c]% } | $(printf %.2f "$(echo "$m / $base" | bc -l)") |"
  done
  echo
  echo "Page-cache folios allocated for the first 256 MiB read: $FOLIOS."
} > "$OUT"
cat "$OUT"
}

main "$@"
