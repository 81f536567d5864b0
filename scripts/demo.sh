#!/usr/bin/env bash
# Builds Shale and runs its main job end to end on an embedded local pool:
# ingest a dataset, snapshot, clone, change the clone, diff, export, restore.
#
#   scripts/demo.sh            # pool and data in a fresh temporary directory
#   DEMO_DIR=/some/dir scripts/demo.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$ROOT/Cargo.toml" -p shale-cli
SHALE=$ROOT/target/release/shale
DIR=${DEMO_DIR:-$(mktemp -d -t shale-demo.XXXXXX)}
export SHALE_POOL=$DIR/pool

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "a sample dataset: 1,000 ImageNet-like images and a checkpoint"
python3 "$ROOT/bench/gen_dataset.py" images "$DIR/imagenet" --files 1000 --per-class 100
python3 "$ROOT/bench/gen_dataset.py" checkpoints "$DIR/imagenet" --count 1 --size-mib 16

step "ingest it as a volume"
run "$SHALE" volume create imagenet --from "$DIR/imagenet"

step "snapshot and clone: constant time, nothing copied"
run "$SHALE" snapshot create imagenet before-cleanup
run "$SHALE" volume clone imagenet-exp1 --from imagenet@before-cleanup

step "relabel one class in the clone (exact mirror of a new directory)"
mkdir -p "$DIR/relabelled"
first_class=$(ls "$DIR/imagenet/train" | head -1)
cp -a "$DIR/imagenet/train/$first_class/." "$DIR/relabelled/"
rm "$DIR/relabelled/$(ls "$DIR/relabelled" | head -1)"
echo "relabelled by the demo" > "$DIR/relabelled/LABELS.txt"
run "$SHALE" volume import imagenet-exp1 "$DIR/relabelled" --to "train/$first_class" --delete

step "what changed"
run "$SHALE" diff imagenet@before-cleanup imagenet-exp1
run "$SHALE" diff --stat imagenet@before-cleanup imagenet-exp1

step "materialise the clone"
run "$SHALE" volume export imagenet-exp1 "$DIR/exp1"
diff -r "$DIR/relabelled" "$DIR/exp1/train/$first_class" && echo "export matches the imported class exactly"

step "a mistake in the original, then restore"
mkdir -p "$DIR/oops" && echo oops > "$DIR/oops/mistake.txt"
run "$SHALE" volume import imagenet "$DIR/oops"
run "$SHALE" diff imagenet@before-cleanup imagenet
run "$SHALE" snapshot restore imagenet before-cleanup
run "$SHALE" diff imagenet@before-cleanup imagenet && echo "(no differences)"

step "volumes, snapshots and the space saved by sharing"
run "$SHALE" volume list
run "$SHALE" snapshot list
run "$SHALE" pool info
echo
echo "pool and data are in $DIR"
