#!/usr/bin/env bash
# End-to-end test of image import (issue 12) with the real clients: glint runs with a file store
# (`local`, the default) and an S3 store (`ceph`) on a Ceph RGW this script starts
# (tests/e2e/rgw_lib.sh) and stops, and a web origin on loopback (python's http.server, allowed
# by [import_filtering_opts]). Checked:
#   - `openstack image create --import` (stage + glance-direct) → active, identical bytes;
#   - `glance image-create-via-import --import-method web-download` → identical bytes;
#   - `glance image-import --import-method copy-image --stores ceph` → the image in both stores,
#     and after deleting it from `local` the bytes come back from RGW identical;
#   - `glance task-list` / `glance task-show` show the import tasks;
#   - `glance task-create --type import` (the legacy tasks API) makes an active image with the
#     origin's bytes, seen through `glance task-show`; a loopback port not allowed, a file URI
#     and a bad type are refused and create nothing;
#   - web-download of a loopback or metadata URL is refused and stages nothing;
#   - kill -9 mid-import (the origin hangs), restart: the image is queued, no staging file,
#     the task failed.
#
# Usage: tests/e2e/import.sh          (VENV, GLINT_BIN as for cli.sh; see tests/README.md)
# Prints one line per check and ends with "N passed, M failed" (exit 1 if M > 0).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/glint-import-e2e.XXXXXX")"
# shellcheck source=tests/e2e/lib.sh
source "$HERE/lib.sh"
# shellcheck source=tests/e2e/rgw_lib.sh
source "$HERE/rgw_lib.sh"
ORIGIN_PID=""
HANG_PID=""
SMALL_MOUNTED=""
extra_cleanup() {
  if [ -n "$SMALL_MOUNTED" ]; then
    ${SUDO:-} umount "$WORK/small-staging" 2>/dev/null || true
  fi
  [ -n "$ORIGIN_PID" ] && kill "$ORIGIN_PID" 2>/dev/null && wait "$ORIGIN_PID" 2>/dev/null
  [ -n "$HANG_PID" ] && kill "$HANG_PID" 2>/dev/null && wait "$HANG_PID" 2>/dev/null
  rgw_stop
}

rgw_install
rgw_start "$WORK/ceph" || { not_ok "Ceph RGW comes up"; summary; exit 1; }
ok "Ceph RGW up at $RGW_ENDPOINT in ${RGW_BRINGUP_SECONDS}s"
BUCKET="glint-import-$RANDOM$RANDOM"

# --- the web origin: python's http.server on an ephemeral loopback port ---------------------
mkdir -p "$WORK/www"
head -c $((6 * 1024 * 1024 + 123)) /dev/urandom >"$WORK/www/web.raw"
printf "" >"$WORK/origin.log"
python3 -u -m http.server --bind 127.0.0.1 --directory "$WORK/www" 0 >"$WORK/origin.log" 2>&1 &
ORIGIN_PID=$!
ORIGIN_PORT=""
deadline=$((SECONDS + 20))
while [ $SECONDS -lt $deadline ] && [ -z "$ORIGIN_PORT" ]; do
  ORIGIN_PORT="$(sed -n 's/.*port \([0-9]*\).*/\1/p' "$WORK/origin.log" | head -n1)"
  [ -n "$ORIGIN_PORT" ] || sleep 0.05
done
[ -n "$ORIGIN_PORT" ] || { not_ok "web origin starts" "$(cat "$WORK/origin.log")"; summary; exit 1; }
ok "web origin on 127.0.0.1:$ORIGIN_PORT"

# An origin that sends headers and a few bytes, then hangs (for kill -9 mid-import).
printf "" >"$WORK/hang.log"
python3 -u - >"$WORK/hang.log" 2>&1 <<'PY' &
import socket, threading
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
print("port", s.getsockname()[1], flush=True)
held = []
while True:
    c, _ = s.accept()
    c.recv(65536)
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n" + b"x" * 65536)
    held.append(c)
PY
HANG_PID=$!
HANG_PORT=""
deadline=$((SECONDS + 20))
while [ $SECONDS -lt $deadline ] && [ -z "$HANG_PORT" ]; do
  HANG_PORT="$(sed -n 's/^port \([0-9]*\)$/\1/p' "$WORK/hang.log" | head -n1)"
  [ -n "$HANG_PORT" ] || sleep 0.05
done

cat >"$WORK/glint.toml" <<EOF
import_lease_seconds = 6

[import_filtering_opts]
allowed_hosts = ["127.0.0.1"]
allowed_ports = [$ORIGIN_PORT, $HANG_PORT]

[stores]
default = "local"

[stores.local]
type = "file"

[stores.ceph]
type = "s3"
s3_store_host = "$RGW_ENDPOINT"
s3_store_access_key = "$RGW_ACCESS_KEY"
s3_store_secret_key_file = "$WORK/s3-secret"
s3_store_bucket = "$BUCKET"
s3_store_create_bucket_on_put = true
s3_store_large_object_size = 5
s3_store_large_object_chunk_size = 5
EOF
printf '%s\n' "$RGW_SECRET_KEY" >"$WORK/s3-secret"
GLINT_CONFIG="$WORK/glint.toml"

osc() {
  HOME="$WORK/home" "$VENV/bin/openstack" --os-auth-type none --os-endpoint "$URL" "$@"
}
glance() {
  HOME="$WORK/home" "$VENV/bin/glance" --os-image-url "$URL" --os-auth-token fake "$@"
}
api() { curl -sS "$@"; }

# wait_field ID FIELD WANT: polls the image until its FIELD is WANT (30 s).
wait_field() {
  local id="$1" field="$2" want="$3" got="" deadline=$((SECONDS + 30))
  while [ $SECONDS -lt $deadline ]; do
    got="$(api "$URL/v2/images/$id" | json_get "$field")"
    [ "$got" = "$want" ] && return 0
    sleep 0.1
  done
  echo "image $id has $field '$got', not '$want'"
  return 1
}
wait_status() { wait_field "$1" status "$2"; }
wait_stores() { wait_field "$1" stores "$2"; }

staging_empty() { [ -z "$(ls -A "$DATA/staging" 2>/dev/null)" ]; }

head -c $((3 * 1024 * 1024 + 77)) /dev/urandom >"$WORK/direct.raw"
DIRECT_MD5="$(md5sum "$WORK/direct.raw" | cut -d' ' -f1)"
WEB_MD5="$(md5sum "$WORK/www/web.raw" | cut -d' ' -f1)"

start_server || { summary; exit 1; }

if check_cmd "glance import-info" glance import-info; then
  if printf '%s' "$OUT" | grep -q web-download && printf '%s' "$OUT" | grep -q copy-image; then
    ok "import-info lists glance-direct, web-download, copy-image"
  else
    not_ok "import-info lists the methods" "$OUT"
  fi
fi

# --- glance-direct through openstack image create --import ------------------------------------
DIRECT_ID=""
if check_cmd "openstack image create --import (glance-direct)" \
  osc image create --import --disk-format raw --container-format bare \
  --file "$WORK/direct.raw" -f json direct; then
  DIRECT_ID="$(printf '%s' "$OUT" | json_get id)"
fi
if [ -n "$DIRECT_ID" ]; then
  if OUT="$(wait_status "$DIRECT_ID" active)"; then ok "glance-direct image becomes active"; else not_ok "glance-direct image becomes active" "$OUT"; fi
  check_cmd "openstack image save" osc image save --file "$WORK/direct.out" "$DIRECT_ID"
  check_eq "glance-direct bytes identical" "$DIRECT_MD5" "$(md5sum "$WORK/direct.out" | cut -d' ' -f1)"
  check_eq "checksum recorded" "$DIRECT_MD5" "$(api "$URL/v2/images/$DIRECT_ID" | json_get checksum)"
  if staging_empty; then ok "staging emptied after glance-direct"; else not_ok "staging emptied" "$(ls "$DATA/staging")"; fi
fi

# --- web-download through glance image-create-via-import --------------------------------------
WEB_ID=""
# glanceclient reads image data from any stdin that is not a terminal, and refuses data with
# web-download: give it a terminal (a pty), as a user at a shell would.
on_tty() {
  python3 -c 'import os, pty, sys; sys.exit(os.waitstatus_to_exitcode(pty.spawn(sys.argv[1:])))' "$@"
}
if check_cmd "glance image-create-via-import --import-method web-download" \
  on_tty env HOME="$WORK/home" "$VENV/bin/glance" --os-image-url "$URL" --os-auth-token fake \
  image-create-via-import --disk-format raw --container-format bare --name web \
  --import-method web-download --uri "http://127.0.0.1:$ORIGIN_PORT/web.raw"; then
  WEB_ID="$(printf '%s' "$OUT" | tr -d '\r' | sed -n 's/^| id  *| \([0-9a-f-]*\) *|$/\1/p' | head -n1)"
fi
if [ -n "$WEB_ID" ]; then
  if OUT="$(wait_status "$WEB_ID" active)"; then ok "web-download image becomes active"; else not_ok "web-download image becomes active" "$OUT"; fi
  check_cmd "glance image-download (web-download)" glance image-download --file "$WORK/web.out" "$WEB_ID"
  check_eq "web-download bytes identical" "$WEB_MD5" "$(md5sum "$WORK/web.out" | cut -d' ' -f1)"
else
  not_ok "web-download image id" "$OUT"
fi

# --- copy-image to the S3 store -----------------------------------------------------------------
if [ -n "$WEB_ID" ]; then
  check_cmd "glance image-import --import-method copy-image --stores ceph" \
    glance image-import --import-method copy-image --stores ceph "$WEB_ID"
  if OUT="$(wait_stores "$WEB_ID" "local,ceph")"; then ok "copy-image: the image is in local and ceph"; else not_ok "copy-image fills ceph" "$OUT"; fi
  check_eq "copy-image: nothing failed" "" "$(api "$URL/v2/images/$WEB_ID" | json_get os_glance_failed_import)"
  check_cmd "glance stores-delete --store local" glance stores-delete --store local "$WEB_ID"
  check_cmd "glance image-download from ceph" glance image-download --file "$WORK/web.ceph" "$WEB_ID"
  check_eq "bytes from RGW identical" "$WEB_MD5" "$(md5sum "$WORK/web.ceph" | cut -d' ' -f1)"
  # Copy back to local with --stores local,ceph minus what is there: all_stores.
  check_cmd "glance image-import copy-image --all-stores" \
    glance image-import --import-method copy-image --all-stores true "$WEB_ID"
  if OUT="$(wait_stores "$WEB_ID" "ceph,local")"; then ok "copy-image --all-stores fills local again"; else not_ok "all-stores copy" "$OUT"; fi
fi

# --- tasks ------------------------------------------------------------------------------------
if check_cmd "glance task-list" glance task-list; then
  COUNT="$(printf '%s' "$OUT" | grep -c 'api_image_import' || true)"
  if [ "$COUNT" -ge 4 ]; then ok "task-list shows the $COUNT import tasks"; else not_ok "task-list shows the import tasks" "$OUT"; fi
  TASK_ID="$(printf '%s' "$OUT" | grep api_image_import | head -n1 | awk -F'|' '{gsub(/ /,"",$2); print $2}')"
  if check_cmd "glance task-show" glance task-show "$TASK_ID"; then
    if printf '%s' "$OUT" | grep -q success; then ok "task-show: success"; else not_ok "task-show: success" "$OUT"; fi
  fi
fi
if [ -n "$DIRECT_ID" ]; then
  TASKS="$(api "$URL/v2/images/$DIRECT_ID/tasks" -H 'OpenStack-API-Version: image 2.12')"
  check_eq "image tasks: one glance-direct task" "glance-direct" \
    "$(printf '%s' "$TASKS" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tasks"][0]["input"]["import_req"]["method"]["name"])')"
fi

# --- the legacy import task: glance task-create / task-show ----------------------------------
# table_value FIELD: the value of FIELD in a client's `| Property | Value |` table on stdin.
table_value() { tr -d '\r' | sed -n "s/^| $1  *| \(.*[^ ]\) *|\$/\1/p" | head -n1; }
LEGACY_INPUT="{\"import_from\": \"http://127.0.0.1:$ORIGIN_PORT/web.raw\", \"import_from_format\": \"raw\", \"image_properties\": {\"name\": \"legacy\", \"disk_format\": \"raw\", \"container_format\": \"bare\"}}"
LEGACY_TASK=""
if check_cmd "glance task-create --type import" glance task-create --type import --input "$LEGACY_INPUT"; then
  LEGACY_TASK="$(printf '%s' "$OUT" | table_value id)"
  check_eq "task-create: the task is pending" pending "$(printf '%s' "$OUT" | table_value status)"
  check_eq "task-create: type import" import "$(printf '%s' "$OUT" | table_value type)"
fi
if [ -n "$LEGACY_TASK" ]; then
  deadline=$((SECONDS + 30))
  LEGACY_STATUS=""
  while [ $SECONDS -lt $deadline ]; do
    OUT="$(glance task-show "$LEGACY_TASK" 2>&1 || true)"
    LEGACY_STATUS="$(printf '%s' "$OUT" | table_value status)"
    case "$LEGACY_STATUS" in success|failure) break ;; esac
    sleep 0.1
  done
  check_eq "glance task-show: the import task succeeded" success "$LEGACY_STATUS"
  LEGACY_IMAGE="$(api "$URL/v2/tasks/$LEGACY_TASK" | json_get result image_id)"
  if [ -n "$LEGACY_IMAGE" ]; then
    check_eq "… its image is active" active "$(api "$URL/v2/images/$LEGACY_IMAGE" | json_get status)"
    check_eq "… named from image_properties" legacy "$(api "$URL/v2/images/$LEGACY_IMAGE" | json_get name)"
    check_cmd "glance image-download (import task)" glance image-download --file "$WORK/legacy.out" "$LEGACY_IMAGE"
    check_eq "import task bytes identical" "$WEB_MD5" "$(md5sum "$WORK/legacy.out" | cut -d' ' -f1)"
  else
    not_ok "the import task's result names its image" "$(api "$URL/v2/tasks/$LEGACY_TASK")"
  fi
fi
# Refused before any task exists: a loopback port [import_filtering_opts] does not allow, a
# file URI, another type.
IMAGES_BEFORE="$(api "$URL/v2/images" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["images"]))')"
check_fails "task-create from a loopback port not allowed: refused" \
  glance task-create --type import --input "{\"import_from\": \"http://127.0.0.1:1/x\", \"import_from_format\": \"raw\", \"image_properties\": {}}"
if printf '%s' "$OUT" | grep -q "does not pass filtering"; then ok "… saying it does not pass filtering"; else not_ok "… saying it does not pass filtering" "$OUT"; fi
check_fails "task-create from a file URI: refused" \
  glance task-create --type import --input '{"import_from": "file:///etc/passwd", "import_from_format": "raw", "image_properties": {}}'
if printf '%s' "$OUT" | grep -q "File based imports are not allowed"; then ok "… as Glance words it"; else not_ok "… as Glance words it" "$OUT"; fi
check_fails "task-create --type bogus: refused" glance task-create --type bogus --input '{}'
check_eq "refused tasks created no image" "$IMAGES_BEFORE" \
  "$(api "$URL/v2/images" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["images"]))')"

# --- refusals -------------------------------------------------------------------------------------
for uri in "http://127.0.0.1:1/x" "http://169.254.169.254/latest/meta-data/" "http://[::1]:$ORIGIN_PORT/web.raw" "http://0x7f.1:1/x"; do
  ID="$(api -X POST "$URL/v2/images" -H 'Content-Type: application/json' \
    -d '{"disk_format":"raw","container_format":"bare"}' | json_get id)"
  CODE="$(api -o "$WORK/refusal.out" -w '%{http_code}' -X POST "$URL/v2/images/$ID/import" \
    -H 'Content-Type: application/json' \
    -d "{\"method\":{\"name\":\"web-download\",\"uri\":\"$uri\"}}")"
  check_eq "web-download $uri refused with 400" 400 "$CODE"
  check_eq "… image still queued" queued "$(api "$URL/v2/images/$ID" | json_get status)"
done
if staging_empty; then ok "nothing staged by refusals"; else not_ok "nothing staged by refusals" "$(ls "$DATA/staging")"; fi

# --- kill -9 mid-import, restart ----------------------------------------------------------------
HUNG_ID="$(api -X POST "$URL/v2/images" -H 'Content-Type: application/json' \
  -d '{"disk_format":"raw","container_format":"bare"}' | json_get id)"
CODE="$(api -o /dev/null -w '%{http_code}' -X POST "$URL/v2/images/$HUNG_ID/import" \
  -H 'Content-Type: application/json' \
  -d "{\"method\":{\"name\":\"web-download\",\"uri\":\"http://127.0.0.1:$HANG_PORT/big\"}}")"
check_eq "web-download from a hanging origin accepted" 202 "$CODE"
deadline=$((SECONDS + 20))
while [ $SECONDS -lt $deadline ] && staging_empty; do sleep 0.05; done
if staging_empty; then not_ok "bytes reach staging before the kill"; else ok "bytes reach staging before the kill"; fi
CODE="$(api -o /dev/null -w '%{http_code}' -X POST "$URL/v2/images/$HUNG_ID/import" \
  -H 'Content-Type: application/json' \
  -d "{\"method\":{\"name\":\"web-download\",\"uri\":\"http://127.0.0.1:$ORIGIN_PORT/web.raw\"}}")"
check_eq "a second import of the importing image: 409" 409 "$CODE"
kill -KILL "$SERVER_PID"
wait "$SERVER_PID" 2>/dev/null || true
SERVER_PID=""
start_server || { summary; exit 1; }
check_eq "after kill -9 and restart: image queued" queued "$(api "$URL/v2/images/$HUNG_ID" | json_get status)"
if staging_empty; then ok "after restart: no staging file"; else not_ok "after restart: no staging file" "$(ls "$DATA/staging")"; fi
check_eq "after restart: the task failed" failure \
  "$(api "$URL/v2/images/$HUNG_ID/tasks" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tasks"][0]["status"])')"
check_eq "after restart: the lock is gone" "" "$(api "$URL/v2/images/$HUNG_ID" | json_get os_glance_import_task)"

# --- staging disk full: a 2 MiB tmpfs as the staging folder -----------------------------------
# Mounting needs root (or password-less sudo); without it this part says so and is skipped
# (tests/integration/import.rs checks the stage quota, the same refusal path, everywhere).
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo -n"
mkdir -p "$WORK/small-staging"
if $SUDO mount -t tmpfs -o size=2m glint-e2e-staging "$WORK/small-staging" 2>/dev/null; then
  SMALL_MOUNTED=1
  stop_server
  # A top-level key: it goes before the first table.
  { printf 'node_staging_dir = "%s"\n' "$WORK/small-staging"; cat "$WORK/glint.toml"; } >"$WORK/glint.toml.new"
  mv "$WORK/glint.toml.new" "$WORK/glint.toml"
  start_server || { summary; exit 1; }
  FULL_ID="$(api -X POST "$URL/v2/images" -H 'Content-Type: application/json' \
    -d '{"disk_format":"raw","container_format":"bare"}' | json_get id)"
  CODE="$(api -o "$WORK/full.out" -w '%{http_code}' -X PUT "$URL/v2/images/$FULL_ID/stage" \
    -H 'Content-Type: application/octet-stream' --data-binary @"$WORK/direct.raw")"
  check_eq "stage onto a full staging disk: 413" 413 "$CODE"
  if grep -q "full" "$WORK/full.out"; then ok "… saying the storage is full"; else not_ok "… saying the storage is full" "$(cat "$WORK/full.out")"; fi
  check_eq "… image back to queued" queued "$(api "$URL/v2/images/$FULL_ID" | json_get status)"
  if [ -z "$(ls -A "$WORK/small-staging")" ]; then ok "… nothing left in staging"; else not_ok "… nothing left in staging" "$(ls -la "$WORK/small-staging")"; fi
  CODE="$(api -o /dev/null -w '%{http_code}' -X POST "$URL/v2/images/$FULL_ID/import" \
    -H 'Content-Type: application/json' \
    -d "{\"method\":{\"name\":\"web-download\",\"uri\":\"http://127.0.0.1:$ORIGIN_PORT/web.raw\"}}")"
  check_eq "web-download onto a full staging disk accepted" 202 "$CODE"
  deadline=$((SECONDS + 30))
  TASK_STATUS=""
  while [ $SECONDS -lt $deadline ]; do
    TASK_STATUS="$(api "$URL/v2/images/$FULL_ID/tasks" | python3 -c 'import json,sys; t=json.load(sys.stdin)["tasks"]; print(t[-1]["status"] if t else "")')"
    case "$TASK_STATUS" in success|failure) break ;; esac
    sleep 0.1
  done
  check_eq "… the task fails" failure "$TASK_STATUS"
  MESSAGE="$(api "$URL/v2/images/$FULL_ID/tasks" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tasks"][-1]["message"])')"
  if printf '%s' "$MESSAGE" | grep -q "full"; then ok "… its message says the storage is full"; else not_ok "… its message says the storage is full" "$MESSAGE"; fi
  check_eq "… image back to queued" queued "$(api "$URL/v2/images/$FULL_ID" | json_get status)"
  deadline=$((SECONDS + 20))
  while [ $SECONDS -lt $deadline ] && [ -n "$(ls -A "$WORK/small-staging")" ]; do sleep 0.05; done
  if [ -z "$(ls -A "$WORK/small-staging")" ]; then ok "… nothing left in staging"; else not_ok "… nothing left in staging" "$(ls -la "$WORK/small-staging")"; fi
else
  echo "skip - staging disk full: cannot mount a tmpfs here (needs root or password-less sudo)"
fi

stop_server
summary
[ "$FAIL" -eq 0 ]
