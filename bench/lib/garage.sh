# Shared by the object-store benchmarks: a single-node Garage on 127.0.0.1
# with bucket `bench`, and clients (AWS variables, rclone remote `g:`)
# pointed at it (db_engine from GARAGE_DB_ENGINE, default sqlite, the
# engine every result in bench/results was measured with). Source it with WORK and GARAGE set; it defines `g` (the
# garage CLI), `port`, and sets GPID (kill it when done).

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_garage() {
mkdir -p "$WORK/garage"
RPC=$(port); S3=$(port); ADMIN=$(port)
cat > "$WORK/garage/garage.toml" <<EOF2
metadata_dir = "$WORK/garage/meta"
data_dir = "$WORK/garage/data"
db_engine = "${GARAGE_DB_ENGINE:-sqlite}"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$RPC"
rpc_public_addr = "127.0.0.1:$RPC"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$S3"
[admin]
api_bind_addr = "127.0.0.1:$ADMIN"
EOF2
"$GARAGE" -c "$WORK/garage/garage.toml" server > "$WORK/garage/log" 2>&1 & GPID=$!   # garage itself, so that kill stops it
# Wait for the server to answer (`node id` alone reads the key file, which
# exists before the server listens).
for _ in $(seq 100); do g status >/dev/null 2>&1 && break; sleep 0.2; done
NODE=$(g node id -q | cut -d@ -f1)
g layout assign -z dc1 -c 10G "$NODE" >/dev/null
g layout apply --version 1 >/dev/null
g bucket create bench >/dev/null
KEY=GK0123456789abcdef01234567; SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
g key import --yes -n bench "$KEY" "$SECRET" >/dev/null
g bucket allow --read --write --owner bench --key "$KEY" >/dev/null
export AWS_ACCESS_KEY_ID=$KEY AWS_SECRET_ACCESS_KEY=$SECRET AWS_REGION=garage AWS_DEFAULT_REGION=garage
export AWS_ENDPOINT_URL=http://127.0.0.1:$S3
export RCLONE_CONFIG_G_TYPE=s3 RCLONE_CONFIG_G_PROVIDER=Other RCLONE_CONFIG_G_ENDPOINT=$AWS_ENDPOINT_URL \
       RCLONE_CONFIG_G_ACCESS_KEY_ID=$KEY RCLONE_CONFIG_G_SECRET_ACCESS_KEY=$SECRET RCLONE_CONFIG_G_REGION=garage \
       RCLONE_CONFIG_G_FORCE_PATH_STYLE=true
}
# A new, empty Garage in place of the running one. Garage stores blocks by
# content hash and keeps one copy, so a tool uploading data another tool has
# already uploaded writes no blocks: first copies must each start empty.
fresh_garage() {
if [ -n "${GPID:-}" ]; then kill "$GPID"; wait "$GPID" 2>/dev/null || true; fi
rm -rf "$WORK/garage"
start_garage
}
g() { "$GARAGE" -c "$WORK/garage/garage.toml" "$@"; }

settle() { sync; echo 3 > /proc/sys/vm/drop_caches; }
now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l; }
ratio() { if [ "$2" = nan ] || [ -z "$2" ]; then echo n/a; else printf %.2f "$(echo "$1 / $2" | bc -l)"; fi; }
num() { if [ "$1" = nan ]; then echo n/a; else printf "%.${2:-1}f" "$1"; fi; }
