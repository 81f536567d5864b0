#!/usr/bin/env bash
# shale serve: a snapshot through the API beside the CLI's own; volume
# list requests per second (100 volumes, wrk); the dashboard's first page
# in headless Chromium on a pool of 1,000 volumes and 10,000 snapshots;
# and a bounded load test (50 connections listing and snapshotting for
# 30 s) after which the pool must verify. Needs wrk (Debian), chromium and
# the test environment's Python (target/py, for Playwright).
#
#   cargo build --release -p shale-cli
#   bench/server.sh [--rounds R]        # writes bench/results/SERVER.md
set -euo pipefail

main() {
ROUNDS=9
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
S=${SHALE_BIN_DIR:-$ROOT/target/release}/shale
PY=${SHALE_PYTHON:-$ROOT/target/py/bin/python}
WORK=${BENCH_WORK:-/tmp/shale-server-bench}
OUT=$HERE/results/SERVER.md
[ -x "$S" ] || { echo "missing $S: cargo build --release -p shale-cli" >&2; exit 2; }
command -v wrk >/dev/null || { echo "needs wrk (apt-get install wrk)" >&2; exit 2; }
rm -rf "$WORK"; mkdir -p "$WORK"
now() { date +%s.%N; }
ms() { python3 -c "print(round(($2 - $1) * 1000, 1))"; }
median() { python3 -c "import statistics,sys; print(statistics.median(float(x) for x in sys.argv[1:]))" "$@"; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
serve() { # POOL PORT -> pid
  "$S" --pool "$1" serve --listen "127.0.0.1:$2" 2>/dev/null &
  SERVER=$!
  until python3 -c "import socket; socket.create_connection(('127.0.0.1',$2),0.2)" 2>/dev/null; do sleep 0.05; done
}
trap 'kill ${SERVER:-0} 2>/dev/null || true' EXIT

# 100 volumes: snapshot (CLI vs API), list throughput, load.
P=$WORK/pool100
"$S" --pool "$P" -q pool init
for i in $(seq 0 99); do "$S" --pool "$P" -q volume create "v$i"; done
T=$("$S" --pool "$P" token create --role admin 2>/dev/null)
PORT=$(port); serve "$P" "$PORT"
cli=(); apis=()
for r in $(seq "$ROUNDS"); do
  t0=$(now); "$S" --pool "$P" -q snapshot create v1 "cli-$r"; t1=$(now); cli+=("$(ms "$t0" "$t1")")
  a=$(curl -s -o /dev/null -w '%{time_total}' -X POST -H "Authorization: Bearer $T" \
        -H 'Content-Type: application/json' -d "{\"name\":\"api-$r\"}" "http://127.0.0.1:$PORT/api/v1/volumes/v1/snapshots")
  apis+=("$(python3 -c "print(round($a * 1000, 1))")")
done
cl=$(median "${cli[@]}"); ap=$(median "${apis[@]}")
list=$(wrk -t2 -c32 -d10s -H "Authorization: Bearer $T" "http://127.0.0.1:$PORT/api/v1/volumes" | awk '/Requests\/sec/ {print $2}')
load=$(wrk -t2 -c50 -d30s --latency -s "$HERE/lib/api_load.lua" -H "Authorization: Bearer $T" \
        -H 'Content-Type: application/json' "http://127.0.0.1:$PORT")
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true
p99=$(echo "$load" | awk '$1 == "99%" {print $2}')
rps=$(echo "$load" | awk '/Requests\/sec/ {print $2}')
bad=$(echo "$load" | awk '/non-2xx/ {print $2}')
errs=$(echo "$load" | awk '/Socket errors/ {print}' | tr -s ' ')
problems=$("$S" --pool "$P" --json verify | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["problems"]))')

# 1,000 volumes, 10,000 snapshots: the dashboard's first page.
Q=$WORK/pool1000
"$S" --pool "$Q" -q pool init
"$PY" - "$Q" <<'PY'
import sys
import shale
pool = shale.Pool(sys.argv[1], create=False)
for i in range(1000):
    v = pool.create_volume(f"d{i}")
    for j in range(10):
        v.snapshot(f"s{j}")
PY
T2=$("$S" --pool "$Q" token create --role read 2>/dev/null)
PORT=$(port); serve "$Q" "$PORT"
page=$("$PY" - "$PORT" "$T2" "$ROUNDS" <<'PY'
import shutil, statistics, sys, time
from playwright.sync_api import sync_playwright
port, token, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
times = []
with sync_playwright() as p:
    b = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
    page = b.new_page()
    page.goto(f"http://127.0.0.1:{port}/")
    page.evaluate(f"sessionStorage.setItem('shale-token', '{token}')")
    for _ in range(rounds):
        t0 = time.monotonic()
        page.goto(f"http://127.0.0.1:{port}/")
        page.get_by_role("link", name="d999").wait_for()
        times.append((time.monotonic() - t0) * 1000)
    b.close()
print(round(statistics.median(times)))
PY
)
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true

{
  echo "# shale serve"
  echo
  echo "\`bench/server.sh\`, $(date -u +%Y-%m-%d), $(nproc) cores, release build, local pool, 127.0.0.1; medians of $ROUNDS."
  echo
  echo "| measure | result | goal |"
  echo "|---|---|---|"
  echo "| snapshot: \`shale snapshot create\` (whole command) | $cl ms | |"
  echo "| snapshot: \`POST …/snapshots\` through the API (curl, whole request) | $ap ms ($(python3 -c "print(f'{$ap / $cl:.2f}')")x the CLI) | ≤ 2x |"
  echo "| \`GET /api/v1/volumes\`, 100 volumes, wrk 2 threads × 32 connections, 10 s | $list requests/s | ≥ 2,000/s |"
  echo "| dashboard first page (1,000 volumes, 10,000 snapshots) until the table shows the last volume, Chromium | $page ms | ≤ 1,000 ms |"
  echo "| load: 50 connections, 30 s, 4 lists to 1 snapshot | $rps requests/s, p99 $p99, non-2xx $bad${errs:+, $errs} | no errors |"
  echo "| \`shale verify\` after the load | $problems problems | 0 |"
} > "$OUT"
cat "$OUT"
}
main "$@"
