#!/usr/bin/env bash
# Issue 14's measurements, on this machine, in one run (docs/PERFORMANCE.md):
#
#  1. list and show through PostgreSQL at 100,000 images (p99, req/s), beside redb at
#     100,000 images: the same release glint, the same glint-bench commands;
#  2. the boot storm through three gateways over one PostgreSQL and one store, each with an
#     image cache: cold caches (the store must be read exactly once per gateway:
#     glint_store_read_bytes_total{store}), then warm; beside one gateway without a cache
#     (the single-gateway file-store figure). Every client's bytes are checked (md5) in a
#     separate verify run. The store: one bucket of a real Ceph RGW (STORM_STORE=rgw, the
#     default; tests/e2e/rgw_lib.sh starts it), or one shared file-store folder
#     (STORM_STORE=file).
#
# Usage: scripts/bench_scale.sh [OUT_DIR]     (builds release binaries; ~10 min here;
#        GLINT_BIN=… BENCH_BIN=… use binaries built already)
# Everything runs on loopback; servers are stopped by PID; the temporary folder is removed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
OUT="${1:-$ROOT/target/bench-scale}"
mkdir -p "$OUT"
IMAGES="${IMAGES:-100000}"
STORM_SIZE="${STORM_SIZE:-64M}"
STORM_CLIENTS="${STORM_CLIENTS:-64}"
STORM_STORE="${STORM_STORE:-rgw}"

# GLINT_BIN / BENCH_BIN: binaries built already (else release builds of this tree).
if [ -z "${GLINT_BIN:-}" ] || [ -z "${BENCH_BIN:-}" ]; then
  cargo build --release --quiet -p gateway -p glint-bench
fi
GLINT="${GLINT_BIN:-$ROOT/target/release/glint}"
BENCH="${BENCH_BIN:-$ROOT/target/release/glint-bench}"

# shellcheck source=tests/e2e/pg_lib.sh
source "$ROOT/tests/e2e/pg_lib.sh"
# shellcheck source=tests/e2e/rgw_lib.sh
source "$ROOT/tests/e2e/rgw_lib.sh"
pg_install
[ "$STORM_STORE" = rgw ] && rgw_install
WORK="$(mktemp -d "${TMPDIR:-/tmp}/glint-bench-scale.XXXXXX")"
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  pg_stop
  [ "$STORM_STORE" = rgw ] && rgw_stop
  rm -rf "$WORK"
}
trap cleanup EXIT
pg_start "$WORK/pg"
PSQL=("$(_pg_bin)/psql" -h "$PG_DIR" -p "$PG_PORT" -U glint -d glint -qAt)

# start NAME CONFIG_TOML [IMAGES_LINK]: a release glint on a free port; sets URL and PID.
start() {
  local dir="$WORK/$1"
  mkdir -p "$dir/data"
  printf '%s' "$2" >"$dir/glint.toml"
  [ -n "${3:-}" ] && ln -sfn "$3" "$dir/data/images"
  "$GLINT" serve --listen 127.0.0.1:0 --data-dir "$dir/data" --config "$dir/glint.toml" \
    >"$dir/out" 2>"$dir/log" &
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 1 300); do grep -q '^listening on ' "$dir/out" 2>/dev/null && break; sleep 0.1; done
  URL="$(awk '/^listening on /{print $3; exit}' "$dir/out")"
  [ -n "$URL" ] || { tail -n 20 "$dir/log" >&2; exit 1; }
}
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }
DB="[database]
connection = \"postgresql://glint@127.0.0.1:$PG_PORT/glint\"
password = \"$PG_PASSWORD\"
sync_on_start = true
"
metric() { # metric URL SERIES (awk reads the whole page: curl must not see a closed pipe)
  curl -s "$1/metrics" | awk -v s="$2" '$1 == s {v = $2} END {print v}'
}
bench() { # bench LABEL ARGS...: one glint-bench run, its table kept as OUT/LABEL.{txt,json}
  local label="$1"; shift
  echo "== $label: glint-bench $*"
  "$BENCH" "$@" --no-progress --json "$OUT/$label.json" | tee "$OUT/$label.txt"
}
upload() { # upload URL FILE: a raw/bare image with FILE's bytes; prints its id
  local id
  id="$(curl -s -X POST "$1/v2/images" -H 'content-type: application/json' \
    -d '{"name": "storm", "disk_format": "raw", "container_format": "bare", "visibility": "public"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')"
  curl -s -X PUT "$1/v2/images/$id/file" -H 'content-type: application/octet-stream' \
    --data-binary @"$2" -o /dev/null
  echo "$id"
}

echo "machine: $(nproc) cpus, $(awk '/MemTotal/{print int($2/1048576)" GiB"}' /proc/meminfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "commit: $(git rev-parse --short HEAD)"

# --- 1. list and show at 100,000 images -------------------------------------------------------
start pg "$DB"; PG_GLINT=$PID; PG_URL_HTTP=$URL
# 100,000 public images straight into the table glint reads (as glint writes them); the
# populate through the API is what redb gets below.
"${PSQL[@]}" -c "INSERT INTO images (id, name, status, visibility, protected, os_hidden, owner,
    size, min_ram, min_disk, disk_format, container_format, created_at, updated_at)
  SELECT gen_random_uuid(), 'img-' || n, 'active', 'public', false, false, 'glint', n * 1024,
    0, 0, 'qcow2', 'bare', 1700000000000000 + n * 1000000, 1700000000000000 + n * 1000000
  FROM generate_series(1::bigint, $IMAGES) AS n; ANALYZE images;"
echo "postgresql: $("${PSQL[@]}" -c "SELECT count(*) FROM images") images"
bench pg-list list --url "$PG_URL_HTTP" -n 3000 -c 1 --server-pid "$PG_GLINT"
SHOWN="$("${PSQL[@]}" -c "SELECT id FROM images ORDER BY created_at LIMIT 1 OFFSET 50000")"
bench pg-show show --url "$PG_URL_HTTP" --image "$SHOWN" -n 3000 -c 1 --server-pid "$PG_GLINT"
bench pg-list-c4 list --url "$PG_URL_HTTP" -n 6000 -c 4
bench pg-show-c4 show --url "$PG_URL_HTTP" --image "$SHOWN" -n 6000 -c 4
stop "$PG_GLINT"

start redb ""; REDB_GLINT=$PID; REDB_URL=$URL
"$BENCH" list --url "$REDB_URL" --populate "$IMAGES" -c 4 -n 1 --keep --no-progress --quiet
SHOWN="$(curl -s "$REDB_URL/v2/images?limit=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["images"][0]["id"])')"
bench redb-list list --url "$REDB_URL" -n 3000 -c 1 --server-pid "$REDB_GLINT"
bench redb-show show --url "$REDB_URL" --image "$SHOWN" -n 3000 -c 1 --server-pid "$REDB_GLINT"
bench redb-list-c4 list --url "$REDB_URL" -n 6000 -c 4
bench redb-show-c4 show --url "$REDB_URL" --image "$SHOWN" -n 6000 -c 4
stop "$REDB_GLINT"

# --- 2. the boot storm through three gateways ---------------------------------------------------
"${PSQL[@]}" -c "TRUNCATE image_members, images"
CACHE="image_cache_max_size = 4294967296
"
if [ "$STORM_STORE" = rgw ]; then
  RGW_MEMSTORE_BYTES=$((6 << 30)) rgw_start "$WORK/ceph" || exit 1
  echo "rgw: bring-up took ${RGW_BRINGUP_SECONDS}s"
  STORE_ID=ceph
  STORES="
[stores]
default = \"ceph\"

[stores.ceph]
type = \"s3\"
s3_store_host = \"$RGW_ENDPOINT\"
s3_store_access_key = \"$RGW_ACCESS_KEY\"
s3_store_secret_key = \"$RGW_SECRET_KEY\"
s3_store_bucket = \"glint-storm\"
s3_store_create_bucket_on_put = true
"
  start gw1 "$CACHE$DB$STORES"; GW1=$PID; U1=$URL
  start gw2 "$CACHE$DB$STORES"; GW2=$PID; U2=$URL
  start gw3 "$CACHE$DB$STORES"; GW3=$PID; U3=$URL
else
  STORE_ID=file
  SHARED="$WORK/shared-images"; mkdir -p "$SHARED"
  start gw1 "$CACHE$DB" "$SHARED"; GW1=$PID; U1=$URL
  start gw2 "$CACHE$DB" "$SHARED"; GW2=$PID; U2=$URL
  start gw3 "$CACHE$DB" "$SHARED"; GW3=$PID; U3=$URL
fi
echo "storm store: $STORM_STORE (glint_store_read_bytes_total{store=\"$STORE_ID\"})"
head -c "$(python3 -c "s='$STORM_SIZE'; print(int(s[:-1]) << {'K': 10, 'M': 20, 'G': 30}[s[-1]])")" /dev/urandom >"$WORK/storm.img"
IMAGE="$(upload "$U1" "$WORK/storm.img")"
SIZE="$(curl -s "$U1/v2/images/$IMAGE" | python3 -c 'import json,sys; print(json.load(sys.stdin)["size"])')"
echo "image $IMAGE: $SIZE bytes in store(s) $(curl -s "$U2/v2/images/$IMAGE" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("stores", "-"))')"
before() { for u in "$U1" "$U2" "$U3"; do metric "$u" "glint_store_read_bytes_total{store=\"$STORE_ID\"}"; done; }
B=($(before))
bench storm-cold-verify boot-storm --url "$U1" --also-url "$U2" --also-url "$U3" \
  --image "$IMAGE" -c "$STORM_CLIENTS" --verify-md5
A=($(before))
for i in 0 1 2; do
  read_bytes=$(python3 -c "print(int(float('${A[$i]}') - float('${B[$i]}')))")
  echo "gateway $((i + 1)): store read $read_bytes bytes for a $SIZE-byte image ($(python3 -c "print(round(($read_bytes) / $SIZE, 3))") reads)"
done | tee "$OUT/storm-store-reads.txt"
for round in 1 2 3; do
  for u in "$U1" "$U2" "$U3"; do curl -s -X DELETE "$u/v2/cache" -o /dev/null; done
  bench "storm-cold-$round" boot-storm --url "$U1" --also-url "$U2" --also-url "$U3" \
    --image "$IMAGE" -c "$STORM_CLIENTS"
  bench "storm-warm-$round" boot-storm --url "$U1" --also-url "$U2" --also-url "$U3" \
    --image "$IMAGE" -c "$STORM_CLIENTS"
done
stop "$GW1"; stop "$GW2"; stop "$GW3"

# The anchor: one gateway, file store, no cache, the same image bytes.
mkdir -p "$WORK/single-images"
start single "" "$WORK/single-images"; SINGLE=$PID; US=$URL
SIMAGE="$(upload "$US" "$WORK/storm.img")"
for round in 1 2 3; do
  bench "storm-single-$round" boot-storm --url "$US" --image "$SIMAGE" -c "$STORM_CLIENTS" \
    --server-pid "$SINGLE"
done
stop "$SINGLE"
echo "results in $OUT"
