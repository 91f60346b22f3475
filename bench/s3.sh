#!/usr/bin/env bash
# glint's S3 store beside a plain S3 client, in one run, on one real Ceph RGW (started in the
# workdir by tests/e2e/rgw_lib.sh, stopped by PID at the end): every round uploads and
# downloads SIZE bytes straight to/from RGW with boto3 (aws-cli's engine, its defaults: 8 MiB
# parts, 10 threads), then the same through glint (glint-bench: one client, checksums and
# inspection on, the data going to the `ceph` store); then one BIG upload through glint with
# its RSS watched, with a length announced (glint-bench) and chunked (curl, as glanceclient
# sends). Prints the raw numbers per round, the medians and the glint/boto3 ratios.
#
# Usage: bench/s3.sh [WORKDIR]          (default: a fresh mktemp -d)
# Env:   ROUNDS=3  SIZE=1G  BIG=4G (BIG=0 skips it)  VENV=<repo>/.venv (boto3 is installed
#        there if missing)  RGW_MEMSTORE_BYTES (default 8 GiB: RGW keeps objects in memory)
#        GLINT_BIN, BENCH_BIN (default: release builds of this tree, built if missing)
#        CEPH_STORE_EXTRA: more lines for [stores.ceph] (e.g. s3_store_thread_pools = 8)
# Only loopback; every process it starts it stops (by PID), also on error or Ctrl-C.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(dirname "$HERE")"
WD="${1:-$(mktemp -d -t glint-s3bench-XXXX)}"; mkdir -p "$WD"; WD="$(cd "$WD" && pwd)"
ROUNDS="${ROUNDS:-3}"; SIZE="${SIZE:-1G}"; BIG="${BIG:-4G}"; VENV="${VENV:-$ROOT/.venv}"
export RGW_MEMSTORE_BYTES="${RGW_MEMSTORE_BYTES:-8589934592}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
GLINT_BIN="${GLINT_BIN:-$TARGET/release/glint}"; BENCH_BIN="${BENCH_BIN:-$TARGET/release/glint-bench}"
if [ ! -x "$GLINT_BIN" ] || [ ! -x "$BENCH_BIN" ]; then
  (cd "$ROOT" && cargo build --release --quiet -p gateway -p glint-bench)
fi
if ! "$VENV/bin/python" -c 'import boto3' 2>/dev/null; then
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet boto3
fi
say() { echo "# $*" >&2; }
# shellcheck source=tests/e2e/rgw_lib.sh
source "$ROOT/tests/e2e/rgw_lib.sh"
GLINT_PID=""
stop_glint() {
  [ -n "$GLINT_PID" ] || return 0
  kill -TERM "$GLINT_PID" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$GLINT_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$GLINT_PID" 2>/dev/null || true; wait "$GLINT_PID" 2>/dev/null || true; GLINT_PID=""
}
cleanup() { stop_glint; rgw_stop; }
trap cleanup EXIT

rgw_install
rgw_start "$WD/ceph" || exit 1
say "RGW up at $RGW_ENDPOINT in ${RGW_BRINGUP_SECONDS}s (memstore $RGW_MEMSTORE_BYTES bytes)"
BUCKET_DIRECT="direct-$RANDOM"; BUCKET_GLINT="glint-$RANDOM"

cat > "$WD/glint.toml" <<EOF
[stores]
default = "ceph"
[stores.local]
type = "file"
[stores.ceph]
type = "s3"
s3_store_host = "$RGW_ENDPOINT"
s3_store_access_key = "$RGW_ACCESS_KEY"
s3_store_secret_key = "$RGW_SECRET_KEY"
s3_store_bucket = "$BUCKET_GLINT"
s3_store_create_bucket_on_put = true
${CEPH_STORE_EXTRA:-}
EOF

# rgw_cpu: CPU-seconds used so far by radosgw and the OSD (what RGW spends per GiB, beside
# what the client spends).
rgw_cpu() {
  local total=0 pid f
  for f in "$WD/ceph/run/ceph-client.rgw.a.pid" "$WD"/ceph/run/ceph-osd.*.pid; do
    pid="$(cat "$f" 2>/dev/null)" || continue
    [ -r "/proc/$pid/stat" ] || continue
    total=$((total + $(awk '{print $14 + $15}' "/proc/$pid/stat")))
  done
  python3 -c "import os, sys; print(int(sys.argv[1]) / os.sysconf('SC_CLK_TCK'))" "$total"
}
# timed NAME ROUND COMMAND...: runs COMMAND, recording RGW's CPU-seconds spent meanwhile.
timed() {
  local name="$1" r="$2" before after; shift 2
  before="$(rgw_cpu)"
  "$@"
  after="$(rgw_cpu)"
  echo "$name $r $before $after" >> "$WD/rgw_cpu.txt"
}

# direct OP ROUND: boto3 straight to RGW (upload from memory, download to /dev/null); prints
# one JSON line with the wall time and MB/s.
direct() {
  RGW_ENDPOINT="$RGW_ENDPOINT" RGW_ACCESS_KEY="$RGW_ACCESS_KEY" RGW_SECRET_KEY="$RGW_SECRET_KEY" \
    BUCKET="$BUCKET_DIRECT" "$VENV/bin/python" - "$@" "$SIZE_BYTES" <<'PY'
import io, json, os, sys, time
import boto3
from botocore.config import Config
op, rnd, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
s3 = boto3.client("s3", endpoint_url=os.environ["RGW_ENDPOINT"],
                  aws_access_key_id=os.environ["RGW_ACCESS_KEY"],
                  aws_secret_access_key=os.environ["RGW_SECRET_KEY"], region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"}))
bucket = os.environ["BUCKET"]
try:
    s3.create_bucket(Bucket=bucket)
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
key = f"direct-{rnd}"
if op == "upload":
    data = io.BytesIO(os.urandom(size))
    t, c = time.monotonic(), time.process_time()
    s3.upload_fileobj(data, bucket, key)
    wall, cpu = time.monotonic() - t, time.process_time() - c
else:
    with open(os.devnull, "wb") as sink:
        t, c = time.monotonic(), time.process_time()
        s3.download_fileobj(bucket, key, sink)
        wall, cpu = time.monotonic() - t, time.process_time() - c
    s3.delete_object(Bucket=bucket, Key=key)
print(json.dumps({"op": op, "round": int(rnd), "bytes": size, "wall_s": wall,
                  "MBps": size / 1e6 / wall, "client_cpu_s": cpu}))
PY
}

SIZE_BYTES="$(python3 -c '
import sys; s = sys.argv[1].upper().removesuffix("IB").removesuffix("B")
m = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
print(int(float(s[:-1]) * m[s[-1]]) if s[-1] in m else int(s))' "$SIZE")"

start_glint() {
  rm -rf "$WD/glint-data"; mkdir -p "$WD/glint-data"; : > "$WD/glint.out"
  "$GLINT_BIN" serve --listen 127.0.0.1:0 --data-dir "$WD/glint-data" --config "$WD/glint.toml" \
    > "$WD/glint.out" 2>> "$WD/glint.err" &
  GLINT_PID=$!
  for _ in $(seq 1 300); do grep -q '^listening on ' "$WD/glint.out" && break; sleep 0.1; done
  URL="$(awk '/^listening on /{print $3; exit}' "$WD/glint.out")"
  [ -n "$URL" ] || { echo "glint did not start; see $WD/glint.err" >&2; exit 1; }
}
bench() { # bench NAME ROUND ARGS...: glint-bench; keeps its JSON
  local name="$1" r="$2"; shift 2
  "$BENCH_BIN" "$@" --url "$URL" --server-pid "$GLINT_PID" --json "$WD/glint.$name.r$r.json" \
    --no-progress --quiet --fail-on-error
}

say "workdir $WD; rounds $ROUNDS; size $SIZE; loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
: > "$WD/direct.jsonl"; : > "$WD/rgw_cpu.txt"
start_glint
for r in $(seq 1 "$ROUNDS"); do
  say "round $r, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
  timed direct-upload "$r" direct upload "$r" >> "$WD/direct.jsonl"
  timed direct-download "$r" direct download "$r" >> "$WD/direct.jsonl"
  timed glint-upload "$r" bench upload "$r" upload --size "$SIZE" -n 1
  # (the download scenario uploads its image first: RGW's CPU for it counts an upload too)
  bench download "$r" download --size "$SIZE" -n 1
done
stop_glint
if [ "$BIG" != 0 ]; then
  say "glint: one $BIG upload to S3, RSS watched"
  start_glint
  bench upload-big 1 upload --size "$BIG" -n 1 --timeout 1200
  stop_glint
  # The same size chunked, as glanceclient sends it (no length announced: parts are gathered
  # before they go up). glint-bench always announces a length, so curl sends it here; the
  # server's peak RSS is read from /proc when the upload has ended.
  say "glint: one $BIG chunked upload to S3, RSS watched"
  start_glint
  ID="$(curl -s -X POST -H 'Content-Type: application/json' \
    -d '{"name": "big-chunked", "disk_format": "raw", "container_format": "bare"}' \
    "$URL/v2/images" | python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')"
  BIG_BYTES="$(python3 -c '
import sys; s = sys.argv[1].upper().removesuffix("IB").removesuffix("B")
m = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
print(int(float(s[:-1]) * m[s[-1]]) if s[-1] in m else int(s))' "$BIG")"
  T0="$(date +%s.%N)"
  python3 -c '
import os, sys
left, block = int(sys.argv[1]), os.urandom(16 << 20)
out = sys.stdout.buffer
while left:
    n = min(left, len(block)); out.write(block[:n]); left -= n' "$BIG_BYTES" |
    curl -s -o /dev/null -w '%{http_code}' -T - -H 'Content-Type: application/octet-stream' \
      "$URL/v2/images/$ID/file" > "$WD/chunked.code"
  T1="$(date +%s.%N)"
  HWM="$(awk '/^VmHWM:/ {print $2}' "/proc/$GLINT_PID/status")"
  python3 -c 'import sys; b, t0, t1, hwm, code = sys.argv[1:]; print(f"chunked {int(b) >> 20} MiB: HTTP {code}, {int(b) / 1e6 / (float(t1) - float(t0)):.1f} MB/s, peak RSS {int(hwm) / 1024:.1f} MiB")' \
    "$BIG_BYTES" "$T0" "$T1" "$HWM" "$(cat "$WD/chunked.code")" > "$WD/chunked.txt"
  stop_glint
fi
python3 - "$WD" "$ROUNDS" "$BIG" <<'PY'
import json, statistics, sys
wd, rounds, big = sys.argv[1], int(sys.argv[2]), sys.argv[3]
direct = [json.loads(l) for l in open(f"{wd}/direct.jsonl")]
def glint(name, r):
    d = json.load(open(f"{wd}/glint.{name}.r{r}.json"))
    op = d["ops"][0]
    return {"MBps": op["throughput_MBps"], "cpu_s_per_GiB": (d.get("server") or {}).get("cpu_s_per_GiB"),
            "peak_rss_MiB": (d.get("server") or {}).get("peak_rss_MiB")}
print("# raw, per round (MB/s; glint: server CPU-s per GiB, peak RSS MiB)")
rgw = {}
for line in open(f"{wd}/rgw_cpu.txt"):
    name, r, before, after = line.split()
    rgw[(name, int(r))] = float(after) - float(before)
rows = {}
for r in range(1, rounds + 1):
    for op in ("upload", "download"):
        d = next(x for x in direct if x["round"] == r and x["op"] == op)
        g = glint(op, r)
        rows.setdefault(op, []).append((d["MBps"], g["MBps"]))
        gib = d["bytes"] / (1 << 30)
        extra = ""
        if op == "upload":
            extra = (f"  CPU-s/GiB: boto3 {d['client_cpu_s'] / gib:.2f} + RGW "
                     f"{rgw[('direct-upload', r)] / gib:.2f} | glint {g['cpu_s_per_GiB']:.2f} + RGW "
                     f"{rgw[('glint-upload', r)] / gib:.2f}")
        print(f"round {r} {op:8} boto3 {d['MBps']:7.1f}  glint {g['MBps']:7.1f}  "
              f"cpu_s/GiB {g['cpu_s_per_GiB']:.2f}  rss {g['peak_rss_MiB']:.1f}{extra}")
print("# medians")
for op, pairs in rows.items():
    d = statistics.median(p[0] for p in pairs); g = statistics.median(p[1] for p in pairs)
    print(f"{op:8} boto3 {d:7.1f} MB/s  glint {g:7.1f} MB/s  glint/boto3 {g / d:.2f}")
if big != "0":
    g = glint("upload-big", 1)
    print(f"# {big} upload through glint to S3 (Content-Length): {g['MBps']:.1f} MB/s, "
          f"peak RSS {g['peak_rss_MiB']:.1f} MiB")
    print("# " + open(f"{wd}/chunked.txt").read().strip())
PY
say "loadavg at end $(cut -d' ' -f1-3 /proc/loadavg); raw JSON in $WD"
