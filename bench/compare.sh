#!/usr/bin/env bash
# glint beside its anchors (nginx with sendfile, real Glance) in one run: the same glint-bench
# scenarios against each, systems alternating within every round, several rounds; then the
# medians, the glint/anchor ratios and the targets of issue 6, all from this one run. The hash
# limit (OpenSSL's md5 + sha512 over the same number of bytes in memory, through Python's
# hashlib) is measured in every round too.
#
# Usage: bench/compare.sh [WORKDIR]            (default: a fresh mktemp -d; needs ~6 GiB free)
# Env:   ROUNDS=3  SYSTEMS="glint nginx glance"  SIZE=1G (upload/download)  STORM_SIZE=256M
#        STORM_CLIENTS=64  LIST_IMAGES=100000 (glint)  GLANCE_LIST_IMAGES=1000
#        LIST_REQUESTS=2000  BIG=4G (glint-only upload watched for RSS; BIG=0 skips it)
#        GLINT_BIN, BENCH_BIN (default: release builds of this tree, built if missing)
#        GLINT_B_BIN: another glint build; SYSTEMS="glint glint-b" runs the glint scenarios
#        against both, alternating within every round (before/after a change, in one run)
#        GLANCE_DIR=/work/anchors-run/glance (run ../shared/anchors/glance/setup.sh into it)
#        NGINX_DIR=/work/anchors-run/nginx   ANCHORS=../shared/anchors
# Only loopback; every server it starts it stops (by PID), also on error or Ctrl-C.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(dirname "$HERE")"
ANCHORS="${ANCHORS:-$ROOT/../shared/anchors}"; [ -d "$ANCHORS" ] || ANCHORS=/work/shared/anchors
WD="${1:-$(mktemp -d -t glint-compare-XXXX)}"; mkdir -p "$WD"; WD="$(cd "$WD" && pwd)"
ROUNDS="${ROUNDS:-3}"; SYSTEMS="${SYSTEMS:-glint nginx glance}"
SIZE="${SIZE:-1G}"; STORM_SIZE="${STORM_SIZE:-256M}"; STORM_CLIENTS="${STORM_CLIENTS:-64}"
LIST_IMAGES="${LIST_IMAGES:-100000}"; GLANCE_LIST_IMAGES="${GLANCE_LIST_IMAGES:-1000}"
LIST_REQUESTS="${LIST_REQUESTS:-2000}"; BIG="${BIG:-4G}"
GLANCE_DIR="${GLANCE_DIR:-/work/anchors-run/glance}"; NGINX_DIR="${NGINX_DIR:-/work/anchors-run/nginx}"
NGINX_PORT=18080; GLANCE_PORT=19292
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
GLINT_BIN="${GLINT_BIN:-$TARGET/release/glint}"; BENCH_BIN="${BENCH_BIN:-$TARGET/release/glint-bench}"
# Not a setting: glint refuses unknown GLINT_* variables, so it must not inherit this one.
GLINT_B_BIN="${GLINT_B_BIN:-}"; export -n GLINT_B_BIN
if [ ! -x "$GLINT_BIN" ] || [ ! -x "$BENCH_BIN" ]; then
  (cd "$ROOT" && cargo build --release --quiet -p gateway -p glint-bench)
fi
RES="$WD/results.txt"; : > "$RES"; LOG="$WD/log"; mkdir -p "$LOG"
GLINT_PID=""; STARTED_NGINX=""; STARTED_GLANCE=""
say() { echo "# $*" >&2; }

stop_glint() {
  [ -n "$GLINT_PID" ] || return 0
  kill -TERM "$GLINT_PID" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$GLINT_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$GLINT_PID" 2>/dev/null || true; wait "$GLINT_PID" 2>/dev/null || true; GLINT_PID=""
}
cleanup() {
  stop_glint
  [ -z "$STARTED_NGINX" ] || "$ANCHORS/nginx/stop.sh" "$NGINX_DIR" >/dev/null 2>&1 || true
  [ -z "$STARTED_GLANCE" ] || "$ANCHORS/glance/stop.sh" "$GLANCE_DIR" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# start_glint DATADIR [BIN]: glint (or BIN) on 127.0.0.1:0; sets GLINT_PID and URL.
start_glint() {
  mkdir -p "$1"; : > "$WD/glint.out"
  "${2:-$GLINT_BIN}" serve --listen 127.0.0.1:0 --data-dir "$1" > "$WD/glint.out" 2>> "$LOG/glint.err" &
  GLINT_PID=$!
  for _ in $(seq 1 300); do grep -q '^listening on ' "$WD/glint.out" && break; sleep 0.1; done
  URL="$(awk '/^listening on /{print $3; exit}' "$WD/glint.out")"
  [ -n "$URL" ] || { echo "glint did not start; see $LOG/glint.err" >&2; exit 1; }
}
start_nginx() {
  if curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/" && [ -z "$STARTED_NGINX" ]; then
    echo "port $NGINX_PORT is taken by a server this script did not start" >&2; exit 1; fi
  "$ANCHORS/nginx/start.sh" "$NGINX_DIR" "$NGINX_PORT" >/dev/null; STARTED_NGINX=1
  PID="$(cat "$NGINX_DIR/nginx.pid")"; URL="http://127.0.0.1:$NGINX_PORT/upload"
}
stop_nginx() { "$ANCHORS/nginx/stop.sh" "$NGINX_DIR" >/dev/null 2>&1 || true; STARTED_NGINX=""; }
start_glance() {
  if curl -s -o /dev/null "http://127.0.0.1:$GLANCE_PORT/" && [ -z "$STARTED_GLANCE" ]; then
    echo "port $GLANCE_PORT is taken by a server this script did not start" >&2; exit 1; fi
  [ -x "$GLANCE_DIR/venv/bin/uwsgi" ] || { echo "no Glance in $GLANCE_DIR: run $ANCHORS/glance/setup.sh $GLANCE_DIR" >&2; exit 1; }
  "$ANCHORS/glance/start.sh" "$GLANCE_DIR" "$GLANCE_PORT" >/dev/null; STARTED_GLANCE=1
  PID="$(cat "$GLANCE_DIR/uwsgi.pid")"; URL="http://127.0.0.1:$GLANCE_PORT"
}
stop_glance() { "$ANCHORS/glance/stop.sh" "$GLANCE_DIR" >/dev/null 2>&1 || true; STARTED_GLANCE=""; }

# bench SYSTEM ROUND NAME ARGS...: one glint-bench run; its JSON is kept as SYSTEM.NAME.rROUND.json
bench() {
  local sys="$1" r="$2" name="$3"; shift 3
  local json="$WD/$sys.$name.r$r.json"
  "$BENCH_BIN" "$@" --url "$URL" --server-pid "$PID" --json "$json" --no-progress --quiet \
    2>> "$LOG/bench.err" || { echo "glint-bench $sys $name failed (see $LOG/bench.err)" >&2; exit 1; }
  echo "$sys $name $r $json" >> "$RES"
}

SIZE_BYTES="$(python3 -c '
import sys; s = sys.argv[1].upper().removesuffix("IB").removesuffix("B")
m = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
print(int(float(s[:-1]) * m[s[-1]]) if s[-1] in m else int(s))' "$SIZE")"
hash_limit() { # CPU-s per GiB OpenSSL (through hashlib) needs for md5 + sha512 over SIZE bytes
  python3 - "$SIZE_BYTES" <<'PY'
import hashlib, os, sys, time
size = int(sys.argv[1]); block = os.urandom(64 << 20); mv = memoryview(block)
h1, h2 = hashlib.md5(), hashlib.sha512(); done = 0
c = time.process_time()
while done < size:
    n = min(len(block), size - done)
    for o in range(0, n, 1 << 20):
        piece = mv[o:min(o + (1 << 20), n)]; h1.update(piece); h2.update(piece)
    done += n
c = time.process_time() - c
print(f"{c / (size / (1 << 30)):.4f}")
PY
}

say "workdir $WD; rounds $ROUNDS; systems $SYSTEMS; loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
say "glint $GLINT_BIN; bench $BENCH_BIN${GLINT_B_BIN:+; glint-b $GLINT_B_BIN}"
# glint_bin SYSTEM: the binary of glint or glint-b.
glint_bin() {
  if [ "$1" = glint-b ]; then
    [ -x "${GLINT_B_BIN:-}" ] || { echo "SYSTEMS has glint-b but GLINT_B_BIN is not set" >&2; exit 1; }
    echo "$GLINT_B_BIN"
  else echo "$GLINT_BIN"; fi
}
# Images the list scenario pages through: made once per glint, outside the rounds.
list_dir() { echo "$WD/$1-list"; }
for sys in $SYSTEMS; do case $sys in
  glint|glint-b) say "populating $sys with $LIST_IMAGES images"
         start_glint "$(list_dir "$sys")" "$(glint_bin "$sys")"; PID=$GLINT_PID
         "$BENCH_BIN" list --url "$URL" --populate "$LIST_IMAGES" -c 4 -n 1 --keep --no-progress --quiet; stop_glint;;
  glance) say "populating Glance with $GLANCE_LIST_IMAGES images"; start_glance
         "$BENCH_BIN" list --url "$URL" --populate "$GLANCE_LIST_IMAGES" -c 4 -n 1 --keep --no-progress --quiet
         stop_glance;;
esac; done

for r in $(seq 1 "$ROUNDS"); do
  say "round $r, loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "hash md5+sha512 $r $(hash_limit)" >> "$RES"
  for sys in $SYSTEMS; do
    case $sys in
      glint|glint-b)
        bin="$(glint_bin "$sys")"
        rm -rf "$WD/glint-data"; start_glint "$WD/glint-data" "$bin"; PID=$GLINT_PID
        bench "$sys" "$r" upload upload --size "$SIZE" -n 1 --keep
        bench "$sys" "$r" download download --size "$SIZE" -n 3
        bench "$sys" "$r" boot-storm boot-storm --size "$STORM_SIZE" -c "$STORM_CLIENTS"
        bench "$sys" "$r" verify download --size "$STORM_SIZE" -c 2 --verify-md5
        stop_glint; rm -rf "$WD/glint-data"
        start_glint "$(list_dir "$sys")" "$bin"; PID=$GLINT_PID
        bench "$sys" "$r" list list -n "$LIST_REQUESTS" -d 20
        stop_glint;;
      nginx)
        start_nginx
        bench nginx "$r" upload upload --api files --size "$SIZE" -n 1
        bench nginx "$r" download download --api files --size "$SIZE" -n 3
        bench nginx "$r" boot-storm boot-storm --api files --size "$STORM_SIZE" -c "$STORM_CLIENTS"
        bench nginx "$r" verify download --api files --size "$STORM_SIZE" -c 2 --verify-md5
        rm -f "$NGINX_DIR"/root/upload/glint-bench-*
        stop_nginx;;
      glance)
        start_glance
        bench glance "$r" upload upload --size "$SIZE" -n 1
        bench glance "$r" download download --size "$SIZE" -n 3
        bench glance "$r" boot-storm boot-storm --size "$STORM_SIZE" -c "$STORM_CLIENTS"
        bench glance "$r" verify download --size "$STORM_SIZE" -c 2 --verify-md5
        bench glance "$r" list list -n "$LIST_REQUESTS" -d 20
        stop_glance;;
    esac
  done
done
if [[ " $SYSTEMS " == *" glint "* ]] && [ "$BIG" != 0 ]; then
  say "glint: one $BIG upload, RSS watched"
  rm -rf "$WD/glint-data"; start_glint "$WD/glint-data"; PID=$GLINT_PID
  bench glint 1 upload-big upload --size "$BIG" -n 1
  stop_glint; rm -rf "$WD/glint-data"
fi
# The Glance images the list scenario used are removed (the glint ones go with the workdir).
if [[ " $SYSTEMS " == *" glance "* ]]; then
  start_glance
  python3 - "$URL" <<'PY'
import json, sys, urllib.request
base = sys.argv[1]
while True:
    page = json.load(urllib.request.urlopen(f"{base}/v2/images?limit=1000"))
    ids = [i["id"] for i in page["images"] if i.get("name", "").startswith("glint-bench-")]
    if not ids: break
    for i in ids: urllib.request.urlopen(urllib.request.Request(f"{base}/v2/images/{i}", method="DELETE"))
PY
  stop_glance
fi
rm -rf "$(list_dir glint)" "$(list_dir glint-b)"
python3 "$HERE/summarize.py" "$RES"
say "loadavg at end $(cut -d' ' -f1-3 /proc/loadavg); raw JSON in $WD"
