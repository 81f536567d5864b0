#!/usr/bin/env bash
# Workspaces: `shale workspace clone` of a workspace holding the
# 20,000-file / 2.1 GB ImageNet-like set and a 200,000-file tree, beside
# what a user would otherwise do: start a plain `jupyter lab` on a local
# directory, and copy the workspace first (`cp -a`, page cache dropped,
# synced). Reports Shale's own time (clone + mounts, before JupyterLab
# starts; from the command's --json) and the whole command until the new
# lab answers, and `workspace snapshot` of the running workspace. Needs
# root, fuse3 and a Python with jupyterlab (SHALE_PYTHON, default
# target/py/bin/python).
#
#   cargo build --release -p shale-cli
#   bench/workspace.sh [--rounds R]        # writes bench/results/WORKSPACE.md
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
S=${SHALE_BIN_DIR:-$ROOT/target/release}/shale
export SHALE_PYTHON=${SHALE_PYTHON:-$ROOT/target/py/bin/python}
WORK=${BENCH_WORK:-/tmp/shale-ws-bench}
export SHALE_POOL=$WORK/pool
OUT=$HERE/results/WORKSPACE.md
[ -x "$S" ] || { echo "missing $S: cargo build --release -p shale-cli" >&2; exit 2; }
cleanup() {
  for w in $("$S" --json workspace list 2>/dev/null | python3 -c 'import json,sys; [print(w["name"]) for w in json.load(sys.stdin)]' 2>/dev/null); do
    "$S" -q workspace delete "$w" --yes 2>/dev/null || true
  done
  for m in $(grep -o "$WORK/[^ ]*" /proc/self/mountinfo 2>/dev/null | sort -r); do umount -l "$m" 2>/dev/null || true; done
}
trap cleanup EXIT
cleanup
rm -rf "$WORK"; mkdir -p "$WORK"
drop() { sync; echo 3 > /proc/sys/vm/drop_caches; }
now() { date +%s.%N; }
ms() { python3 -c "print(round(($2 - $1) * 1000))"; }
median() { python3 -c "import statistics,sys; print(round(statistics.median(float(x) for x in sys.argv[1:])))" "$@"; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { until python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null; do sleep 0.02; done; }

{
  echo "# Workspaces: a running JupyterLab on a clone, beside a plain lab and a copy"
  echo
  echo "\`bench/workspace.sh\`, $(date -u +%Y-%m-%d), $(nproc) cores, release build, local pool; medians of $ROUNDS rounds."
  echo "Shale's own time: the clone and its mount, before JupyterLab starts. Whole command: until the new lab"
  echo "answers on its port. Plain lab: \`jupyter lab\` started on a local directory, until it answers."
  echo "\`cp -a\`: the copy a user would make first (page cache dropped, then synced)."
  echo
  echo "| set | snapshot of the running workspace | clone: Shale's own time | clone: whole command to a lab answering | plain \`jupyter lab\` start | \`cp -a\` | cp -a + plain lab / whole clone |"
  echo "|---|---|---|---|---|---|---|"
} > "$OUT.tmp"

for set in images tree; do
  D=$WORK/ds-$set
  case $set in
    images) python3 "$HERE/gen_dataset.py" images "$D" --files 20000 >&2; label="20,000 files" ;;
    tree) python3 "$HERE/gen_dataset.py" tree "$D" --files 200000 >&2; label="200,000 files" ;;
  esac
  label="$label, $(du -sh --apparent-size "$D" | cut -f1)"
  "$S" -q volume create "seed-$set" --from "$D"
  "$S" -q workspace clone "ws-$set" --from "seed-$set"
  snaps=(); shale=(); whole=(); plain=(); copies=()
  for r in $(seq "$ROUNDS"); do
    t0=$(now); "$S" -q workspace snapshot "ws-$set" "s$r"; t1=$(now); snaps+=("$(ms "$t0" "$t1")")
    t0=$(now)
    j=$("$S" --json workspace clone "exp-$set" --from "ws-$set@s$r")
    t1=$(now)
    whole+=("$(ms "$t0" "$t1")")
    shale+=("$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["seconds"]["shale"]*1000)' "$j")")
    "$S" -q workspace delete "exp-$set" --yes
    p=$(free_port)
    t0=$(now)
    JUPYTER_TOKEN=x setsid "$SHALE_PYTHON" -m jupyterlab --no-browser --allow-root --ServerApp.ip=127.0.0.1 \
      --ServerApp.port="$p" --ServerApp.root_dir="$D" >"$WORK/plain.log" 2>&1 &
    lab=$!
    wait_port "$p"; t1=$(now); plain+=("$(ms "$t0" "$t1")")
    kill -- -"$lab" 2>/dev/null || kill "$lab"; wait "$lab" 2>/dev/null || true
    drop
    t0=$(now); cp -a "$D" "$WORK/copy"; sync; t1=$(now); copies+=("$(ms "$t0" "$t1")")
    rm -rf "$WORK/copy"; sync
  done
  sn=$(median "${snaps[@]}"); sh=$(median "${shale[@]}"); wh=$(median "${whole[@]}")
  pl=$(median "${plain[@]}"); cp=$(median "${copies[@]}")
  ratio=$(python3 -c "print(f'{($cp + $pl) / $wh:.1f}x')")
  echo "| $label | $sn ms | $sh ms | $wh ms | $pl ms | $cp ms | $ratio |" >> "$OUT.tmp"
  echo "$set: snapshot ${snaps[*]} | shale ${shale[*]} | whole ${whole[*]} | plain ${plain[*]} | cp ${copies[*]}" >&2
  "$S" -q workspace delete "ws-$set" --yes
  "$S" -q volume delete "seed-$set"
  rm -rf "$D"
done
mv "$OUT.tmp" "$OUT"
cat "$OUT"
}
main "$@"
