#!/usr/bin/env bash
# Provisioning through the CSI driver beside a copy-based provisioner (a
# host-path driver copies the source into the new PV: `cp -a`). For the
# 20,000-file / 2.1 GB ImageNet-like set and a 200,000-file tree, times
# what a cluster waits on, calling the driver as the sidecars and kubelet
# do (crates/shale-csi/examples/csi_bench.rs): CreateSnapshot,
# CreateVolume from the snapshot, NodeStage + NodePublish, and the first
# file readable in the pod from the CreateVolume call; and `cp -a` of the
# same set, cold (page cache dropped) and warm. Needs root and fuse3.
#
#   cargo build --release -p shale-cli -p shale-csi && cargo build --release -p shale-csi --example csi_bench
#   bench/csi.sh [--rounds R]          # writes bench/results/CSI.md
set -euo pipefail

main() {
ROUNDS=5
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
BIN=${SHALE_BIN_DIR:-$ROOT/target/release}
CLIENT=$BIN/examples/csi_bench
WORK=${BENCH_WORK:-/tmp/shale-csi-bench}
OUT=$HERE/results/CSI.md
for b in "$BIN/shale" "$BIN/shale-csi" "$CLIENT"; do
  [ -x "$b" ] || { echo "missing $b: build it first (see the top of $0)" >&2; exit 2; }
done
DRIVER=
cleanup() {
  [ -n "$DRIVER" ] && kill "$DRIVER" 2>/dev/null || true
  for m in $(grep -o "$WORK/[^ ]*" /proc/self/mountinfo 2>/dev/null | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
}
trap cleanup EXIT
cleanup
rm -rf "$WORK"; mkdir -p "$WORK"
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
now() { date +%s.%N; }

{
  echo "# CSI provisioning: a PVC from a snapshot, beside copying the data"
  echo
  echo "\`bench/csi.sh\`, $(date -u +%Y-%m-%d), $(nproc) cores, release build, local pool;"
  echo "medians of $ROUNDS rounds (each round: snapshot, volume from it, stage+publish, first read, then"
  echo "everything deleted). \`cp -a\` is what a copy-based provisioner (host path) does for the same PVC."
  echo
  echo "| set | CreateSnapshot | CreateVolume from snapshot | stage + publish | first file readable (from CreateVolume) | \`cp -a\` cold | \`cp -a\` warm | cp -a cold / CreateVolume |"
  echo "|---|---|---|---|---|---|---|---|"
} > "$OUT.tmp"

for set in images tree; do
  case $set in
    images) python3 "$HERE/gen_dataset.py" images "$WORK/ds-$set" --files 20000 >&2 ;;
    tree) python3 "$HERE/gen_dataset.py" tree "$WORK/ds-$set" --files 200000 >&2 ;;
  esac
  files=$(find "$WORK/ds-$set" -type f | wc -l)
  size=$(du -sh "$WORK/ds-$set" | cut -f1)
  first=$(cd "$WORK/ds-$set" && find . -type f -size +0 -print -quit)
  first=${first#./}
  pool=$WORK/pool-$set
  "$BIN/shale" --pool "$pool" -q volume create data --from "$WORK/ds-$set"

  "$BIN/shale-csi" --endpoint "unix://$WORK/csi.sock" --node-id bench \
    --pool "main=$pool" --shale "$BIN/shale" 2>"$WORK/driver.log" &
  DRIVER=$!
  for _ in $(seq 100); do [ -S "$WORK/csi.sock" ] && break; sleep 0.1; done
  mkdir -p "$WORK/k8s"
  "$CLIENT" "$WORK/csi.sock" main/data "$first" "$WORK/k8s" "$ROUNDS" > "$WORK/rounds-$set.json"
  kill "$DRIVER"; wait "$DRIVER" 2>/dev/null || true; DRIVER=

  cold=(); warm=()
  for r in $(seq "$ROUNDS"); do
    rm -rf "$WORK/copy"; drop
    t=$(now); cp -a "$WORK/ds-$set" "$WORK/copy"; sync; cold+=("$(echo "$(now) - $t" | bc)")
    rm -rf "$WORK/copy"; find "$WORK/ds-$set" -type f -exec cat {} + >/dev/null   # all in the page cache
    sync
    t=$(now); cp -a "$WORK/ds-$set" "$WORK/copy"; sync; warm+=("$(echo "$(now) - $t" | bc)")
  done
  rm -rf "$WORK/copy"
  python3 - "$WORK/rounds-$set.json" "$set ($files files, $size)" "${cold[*]}" "${warm[*]}" >> "$OUT.tmp" <<'PY'
import json, statistics, sys
rounds = [json.loads(l) for l in open(sys.argv[1])]
med = lambda k: statistics.median(r[k] for r in rounds)
cold = statistics.median(float(x) for x in sys.argv[3].split()) * 1000
warm = statistics.median(float(x) for x in sys.argv[4].split()) * 1000
create = med("create_volume_from_snapshot_ms")
print(f"| {sys.argv[2]} | {med('create_snapshot_ms'):.1f} ms | {create:.1f} ms | "
      f"{med('stage_and_publish_ms'):.0f} ms | {med('first_file_readable_ms'):.0f} ms | "
      f"{cold:.0f} ms | {warm:.0f} ms | {cold / create:.0f}× |")
PY
  rm -rf "$WORK/ds-$set" "$pool"
done
mv "$OUT.tmp" "$OUT"
cat "$OUT"
}

main "$@"
