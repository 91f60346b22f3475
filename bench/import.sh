#!/usr/bin/env bash
# Image import (issue 12) measured beside a plain upload, on glint and on real Glance, in one
# run: every round, on each system (their order alternating from round to round), the same
# SIZE bytes go in four ways —
#   upload         POST /v2/images + PUT /file                           (the baseline)
#   glance-direct  POST /v2/images + PUT /stage + POST /import, until active and task success
#   web-download   POST /v2/images + POST /import of a loopback nginx URL, until the same
#   copy-image     POST /import {copy-image} of an active image into a second file store, until
#                  the image is in it and the task ended success
# — each timed by the client (wall, from the first request to the first poll that sees the
# end; polls every POLL s) and costed from /proc (the server's utime + stime, every thread and
# child process, per GiB; its peak RSS). The hash limit (md5 + sha512 over SIZE bytes through
# hashlib/OpenSSL) is measured every round as the CPU anchor; the load average is printed with
# every round and every figure. Uploads are sent by curl from one payload file (in the page
# cache), which nginx also serves as the web-download origin; the origin's CPU is shown too.
#
# Usage: bench/import.sh [WORKDIR]       (default: a fresh mktemp -d; needs ~3 x SIZE free)
# Env:   ROUNDS=3  SIZE=1G  SYSTEMS="glint glance"  POLL=0.05 (s)  DEADLINE=900 (s per import)
#        GLINT_BIN (default: the release build of this tree, built if missing)
#        GLANCE_DIR=/work/anchors-run/glance (run ../shared/anchors/glance/setup.sh into it;
#        it is only read: this script runs Glance from a copy of its configuration in WORKDIR,
#        with a second file store and the import filter opened to the origin)
#        NGINX_PORT=18080  GLANCE_PORT=19292  ANCHORS=../shared/anchors
# Only loopback; every server it starts it stops (by PID), also on error or Ctrl-C.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"; ROOT="$(dirname "$HERE")"
ANCHORS="${ANCHORS:-$ROOT/../shared/anchors}"; [ -d "$ANCHORS" ] || ANCHORS=/work/shared/anchors
WD="${1:-$(mktemp -d -t glint-import-XXXX)}"; mkdir -p "$WD"; WD="$(cd "$WD" && pwd)"
ROUNDS="${ROUNDS:-3}"; SIZE="${SIZE:-1G}"; SYSTEMS="${SYSTEMS:-glint glance}"
POLL="${POLL:-0.05}"; DEADLINE="${DEADLINE:-900}"
GLANCE_DIR="${GLANCE_DIR:-/work/anchors-run/glance}"
NGINX_PORT="${NGINX_PORT:-18080}"; GLANCE_PORT="${GLANCE_PORT:-19292}"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"; GLINT_BIN="${GLINT_BIN:-$TARGET/release/glint}"
if [ ! -x "$GLINT_BIN" ]; then (cd "$ROOT" && cargo build --release --quiet -p gateway); fi
BENCH=(python3 "$HERE/import_bench.py")
RES="$WD/results.jsonl"; : > "$RES"; LOG="$WD/log"; mkdir -p "$LOG"
NGINX_RUN="$WD/nginx"; GLANCE_RUN="$WD/glance"
GLINT_PID=""; STARTED_NGINX=""; STARTED_GLANCE=""; HEADERS=()
say() { echo "# $*" >&2; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

stop_glint() {
  [ -n "$GLINT_PID" ] || return 0
  kill -TERM "$GLINT_PID" 2>/dev/null || true
  for _ in $(seq 1 150); do kill -0 "$GLINT_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$GLINT_PID" 2>/dev/null || true; wait "$GLINT_PID" 2>/dev/null || true; GLINT_PID=""
}
stop_glance() {
  [ -z "$STARTED_GLANCE" ] || "$ANCHORS/glance/stop.sh" "$GLANCE_RUN" >/dev/null 2>&1 || true
  STARTED_GLANCE=""
}
cleanup() {
  stop_glint; stop_glance
  [ -z "$STARTED_NGINX" ] || "$ANCHORS/nginx/stop.sh" "$NGINX_RUN" >/dev/null 2>&1 || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$1/"; }

SIZE_BYTES="$(python3 -c '
import sys; s = sys.argv[1].upper().removesuffix("IB").removesuffix("B")
m = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
print(int(float(s[:-1]) * m[s[-1]]) if s[-1] in m else int(s))' "$SIZE")"

# The payload: SIZE random bytes, once; nginx serves it as the web-download origin.
mkdir -p "$NGINX_RUN/root/files"; PAYLOAD="$NGINX_RUN/root/files/payload.bin"
python3 -c '
import os, sys
left, block = int(sys.argv[1]), os.urandom(16 << 20)
with open(sys.argv[2], "wb") as f:
    while left:
        n = min(left, len(block)); f.write(block[:n]); left -= n
        block = os.urandom(16 << 20) if left else block' "$SIZE_BYTES" "$PAYLOAD"
port_free "$NGINX_PORT" || { echo "port $NGINX_PORT is taken by a server this script did not start" >&2; exit 1; }
"$ANCHORS/nginx/start.sh" "$NGINX_RUN" "$NGINX_PORT" >/dev/null; STARTED_NGINX=1
NGINX_PID="$(cat "$NGINX_RUN/nginx.pid")"; ORIGIN="http://127.0.0.1:$NGINX_PORT/files/payload.bin"
curl -sf -o /dev/null -r 0-0 "$ORIGIN" || { echo "nginx does not serve $ORIGIN" >&2; exit 1; }

# glint: two file stores (the default `local`, and `second` for copy-image) on the same file
# system as its staging folder; the import filter lets web-download reach the origin.
cat > "$WD/glint.toml" <<EOF
[stores]
default = "local"
[stores.local]
type = "file"
[stores.second]
type = "file"
[import_filtering_opts]
allowed_hosts = ["127.0.0.1"]
allowed_ports = [$NGINX_PORT]
EOF
start_glint() {
  rm -rf "$WD/glint-data"; mkdir -p "$WD/glint-data"; : > "$WD/glint.out"
  "$GLINT_BIN" serve --listen 127.0.0.1:0 --data-dir "$WD/glint-data" --config "$WD/glint.toml" \
    > "$WD/glint.out" 2>> "$LOG/glint.err" &
  GLINT_PID=$!
  for _ in $(seq 1 300); do grep -q '^listening on ' "$WD/glint.out" && break; sleep 0.1; done
  URL="$(awk '/^listening on /{print $3; exit}' "$WD/glint.out")"
  [ -n "$URL" ] || { echo "glint did not start; see $LOG/glint.err" >&2; exit 1; }
  PID=$GLINT_PID; TO_STORE=second; HEADERS=()
}

# Glance: the anchor's configuration copied into WORKDIR (its venv shared, its files
# untouched), with a second file store `fs2`, the three import methods named, the import
# filter opened to the origin (Glance refuses loopback hosts and ports other than 80/443 by
# default, as glint does), and one more paste pipeline. The anchor's noauth pipeline
# (unauthenticated-context) gives every request an admin context without a project, and
# Glance cannot record an import's task without an owner (POST /import is a 500: "NOT NULL
# constraint failed: tasks.owner"). The `trusted` pipeline is the keystone one without
# authtoken: Glance's ContextMiddleware builds the context from the X-Identity-Status,
# X-User-Id, X-Project-Id and X-Roles headers keystonemiddleware would have set, which this
# script sends (an admin of one project, as glint's noauth); anonymous GETs stay allowed for
# the anchor's start.sh readiness probe.
setup_glance() {
  [ -x "$GLANCE_DIR/venv/bin/uwsgi" ] || { echo "no Glance in $GLANCE_DIR: run $ANCHORS/glance/setup.sh $GLANCE_DIR" >&2; exit 1; }
  rm -rf "$GLANCE_RUN"
  mkdir -p "$GLANCE_RUN"/{etc,images,images2,staging,tasks,log,lock}
  ln -s "$GLANCE_DIR/venv" "$GLANCE_RUN/venv"
  local f
  for f in glance-api.conf glance-api-paste.ini uwsgi.ini; do
    sed -e "s#$GLANCE_DIR/venv#@VENV@#g" -e "s#$GLANCE_DIR#$GLANCE_RUN#g" -e "s#@VENV@#$GLANCE_DIR/venv#g" \
      -e "s#127.0.0.1:19292#127.0.0.1:$GLANCE_PORT#g" "$GLANCE_DIR/etc/$f" > "$GLANCE_RUN/etc/$f"
  done
  python3 - "$GLANCE_RUN/etc/glance-api.conf" "$GLANCE_RUN" "$NGINX_PORT" <<'PY'
import sys
path, run, port = sys.argv[1:]
text = open(path).read()
assert "enabled_backends = fs:file\n" in text, "the anchor's glance-api.conf changed: enabled_backends"
text = text.replace("enabled_backends = fs:file\n",
                    "enabled_backends = fs:file, fs2:file\n"
                    "enabled_import_methods = [glance-direct,web-download,copy-image]\n")
assert "\nflavor =\n" in text, "the anchor's glance-api.conf changed: [paste_deploy] flavor"
text = text.replace("\nflavor =\n", "\nflavor = trusted\n")
text = text.replace("[DEFAULT]\n", "[DEFAULT]\nallow_anonymous_access = true\n", 1)
text += (f"\n[fs2]\nfilesystem_store_datadir = {run}/images2/\n"
         f"\n[import_filtering_opts]\nallowed_hosts = [127.0.0.1]\nallowed_ports = [{port}]\n")
open(path, "w").write(text)
paste = path.replace("glance-api.conf", "glance-api-paste.ini")
text = open(paste).read()
keystone = "keystone = cors http_proxy_to_wsgi versionnegotiation osprofiler authtoken context rootapp\n"
assert keystone in text, "the anchor's paste ini changed: the keystone pipeline"
text = text.replace(keystone, keystone + keystone.replace("keystone =", "trusted =").replace(" authtoken", ""))
composite = "[composite:glance-api-keystone]\n"
assert composite in text, "the anchor's paste ini changed: [composite:glance-api-keystone]"
text = text.replace(composite, composite.replace("keystone", "trusted")
                    + text.split(composite, 1)[1].split("\n\n", 1)[0] + "\n\n" + composite)
open(paste, "w").write(text)
PY
  OS_GLANCE_CONFIG_DIR="$GLANCE_RUN/etc" "$GLANCE_RUN/venv/bin/glance-manage" \
    --config-dir "$GLANCE_RUN/etc" db_sync > "$GLANCE_RUN/log/db_sync.log" 2>&1 \
    || { echo "Glance db_sync failed, see $GLANCE_RUN/log/db_sync.log" >&2; exit 1; }
}
start_glance() {
  port_free "$GLANCE_PORT" || { echo "port $GLANCE_PORT is taken by a server this script did not start" >&2; exit 1; }
  STARTED_GLANCE=1
  "$ANCHORS/glance/start.sh" "$GLANCE_RUN" "$GLANCE_PORT" > "$LOG/glance-start.out" 2>&1 \
    || { cat "$LOG/glance-start.out" >&2; exit 1; }
  PID="$(cat "$GLANCE_RUN/uwsgi.pid")"; URL="http://127.0.0.1:$GLANCE_PORT"; TO_STORE=fs2
  HEADERS=(-H "X-Identity-Status: Confirmed" -H "X-User-Id: import-bench"
           -H "X-Project-Id: import-bench" -H "X-Roles: admin,member,reader")
}

# measure SYSTEM ROUND METHOD: one import_bench.py run against the server at URL/PID.
measure() {
  local origin=()
  [ "$3" != web-download ] || origin=(--origin-url "$ORIGIN" --origin-pid "$NGINX_PID")
  say "  $1 $3 (load $(load))"
  "${BENCH[@]}" run --system "$1" --round "$2" --method "$3" --url "$URL" --pid "$PID" \
    --payload "$PAYLOAD" --to-store "$TO_STORE" --poll "$POLL" --deadline "$DEADLINE" \
    --out "$RES" "${origin[@]}" "${HEADERS[@]}"
}

say "workdir $WD; rounds $ROUNDS; size $SIZE; systems $SYSTEMS; nproc $(nproc); load $(load)"
say "glint $GLINT_BIN; origin $ORIGIN (nginx pid $NGINX_PID)"
[[ " $SYSTEMS " != *" glance "* ]] || setup_glance
for r in $(seq 1 "$ROUNDS"); do
  say "round $r, load $(load)"
  "${BENCH[@]}" hash --size "$SIZE_BYTES" --round "$r" --out "$RES"
  order="$SYSTEMS"; [ $((r % 2)) = 1 ] || order="$(echo "$SYSTEMS" | tr ' ' '\n' | tac | tr '\n' ' ')"
  for sys in $order; do
    case $sys in
      glint) start_glint ;;
      glance) start_glance ;;
      *) echo "unknown system $sys (glint, glance)" >&2; exit 1 ;;
    esac
    for method in upload glance-direct web-download copy-image; do measure "$sys" "$r" "$method"; done
    case $sys in glint) stop_glint ;; glance) stop_glance ;; esac
  done
done
"${BENCH[@]}" summary "$RES"
# The bytes go (the payload, the stores); the figures and the logs stay.
rm -rf "$PAYLOAD" "$WD/glint-data" "$GLANCE_RUN/images" "$GLANCE_RUN/images2" "$GLANCE_RUN/staging"
say "load at end $(load); nproc $(nproc); raw JSON lines in $RES"
