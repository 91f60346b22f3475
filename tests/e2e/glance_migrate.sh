#!/usr/bin/env bash
# From Glance to glint in one step (issue 17), end to end: a real Glance (PyPI `glance`, under
# gunicorn, behind the real Keystone of keystone_lib.sh, SQLite — or MariaDB from Debian with
# GLANCE_DB=mariadb) gets images through the real `openstack` CLI: several formats,
# properties, tags, a shared image with a member, a deactivated one, a deleted one, Glance's
# metadata definitions. What Glance answers is recorded; then `glint migrate-from-glance
# --glance-config glance-api.conf` (run twice: the second changes nothing), and glint is
# started on the same glance-api.conf, on Glance's port, so the catalog still points at it.
# `openstack image list/show/save` and the metadef list must answer as Glance did: same ids,
# fields and bytes, and the member still sees the shared image.
#
# With GLANCE_STORE=s3, Glance runs in multi-store mode (`enabled_backends = ceph:s3,
# local:file`, default `ceph`) on a real Ceph RGW (tests/e2e/rgw_lib.sh, started and stopped
# here; boto3 for glance_store's s3 driver): glint adopts the objects where they lie (its
# stores read from the same glance-api.conf, the store names kept), answers as Glance did,
# then `--copy-to local` copies every image into the file store through glint's stores and
# `openstack image save` gives the same bytes again.
#
# Usage: tests/e2e/glance_migrate.sh   (VENV, GLINT_BIN as tests/e2e/cli.sh; GLANCE_DB=sqlite
#        or mariadb; GLANCE_STORE=file or s3; GLANCE_SPEC, the PyPI requirement to install,
#        default the Glance release of gateway/src/config/glance_options.txt)
# Prints one line per check and ends with exactly "N passed, M failed" (exit 1 if M > 0).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
GLANCE_DB="${GLANCE_DB:-sqlite}"
GLANCE_STORE="${GLANCE_STORE:-file}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/glint-glance-e2e.XXXXXX")"
# shellcheck source=tests/e2e/lib.sh
source "$HERE/lib.sh"

started=$SECONDS
# The Glance release glint's catalog of options was written from (glance_options.txt).
GLANCE_VERSION="$(sed -n "1s/^# Glance \([^']*\)'s options.*/\1/p" "$ROOT/gateway/src/config/glance_options.txt")"
if [ ! -x "$VENV/bin/glance-manage" ] || ! "$VENV/bin/python" -c 'import pymysql' 2>/dev/null; then
  echo "installing ${GLANCE_SPEC:-glance==$GLANCE_VERSION} and PyMySQL into $VENV" >&2
  "$VENV/bin/pip" install --quiet "${GLANCE_SPEC:-glance==$GLANCE_VERSION}" PyMySQL >&2
fi
if [ "$GLANCE_STORE" = s3 ] && ! "$VENV/bin/python" -c 'import boto3' 2>/dev/null; then
  echo "installing boto3 (glance_store's s3 driver) into $VENV" >&2
  "$VENV/bin/pip" install --quiet boto3 >&2
fi
echo "glance install: $((SECONDS - started))s" >&2

# shellcheck source=tests/e2e/keystone_lib.sh
source "$HERE/keystone_lib.sh"
GLANCE_PID=""
MARIADB_PID=""
keystone_cleanup() { :; }
eval "$(declare -f extra_cleanup | sed '1s/extra_cleanup/keystone_cleanup/')"
extra_cleanup() {
  for pid in "$GLANCE_PID" "$MARIADB_PID"; do
    [ -n "$pid" ] || continue
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 30))
    while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  [ "$GLANCE_STORE" = s3 ] && rgw_stop
  if [ "${FAIL:-0}" -ne 0 ] && [ -f "$WORK/glance.log" ]; then
    echo "--- glance log (last lines) ---" >&2
    tail -n 40 "$WORK/glance.log" >&2
  fi
  keystone_cleanup
}
start_keystone || { summary; exit 1; }
if [ "$GLANCE_STORE" = s3 ]; then
  # shellcheck source=tests/e2e/rgw_lib.sh
  source "$HERE/rgw_lib.sh"
  rgw_install
  # Not through check_cmd: its subshell would keep the endpoint and the PIDs to stop.
  rgw_start "$WORK/ceph" || { not_ok "Ceph RGW comes up"; summary; exit 1; }
  ok "Ceph RGW comes up at $RGW_ENDPOINT in ${RGW_BRINGUP_SECONDS}s"
fi

# --- the database ---------------------------------------------------------------------------
GLANCE_DIR="$WORK/glance"
mkdir -p "$GLANCE_DIR/etc" "$GLANCE_DIR/staging" "$GLANCE_DIR/lock"
if [ "$GLANCE_DB" = mariadb ]; then
  if ! command -v mariadbd >/dev/null && ! [ -x /usr/sbin/mariadbd ]; then
    echo "installing mariadb-server (Debian)" >&2
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mariadb-server >&2
  fi
  MDB="$WORK/mariadb"
  mkdir -p "$MDB/data"
  MDB_PORT="$(free_port)"
  MDB_SOCKET="$MDB/mysqld.sock"
  check_cmd "mariadb-install-db" mariadb-install-db --no-defaults --datadir="$MDB/data" \
    --user="$(id -un)" --auth-root-authentication-method=socket --skip-test-db ||
    { summary; exit 1; }
  /usr/sbin/mariadbd --no-defaults --datadir="$MDB/data" --socket="$MDB_SOCKET" \
    --port="$MDB_PORT" --bind-address=127.0.0.1 --user="$(id -un)" \
    --pid-file="$MDB/mysqld.pid" --log-error="$MDB/error.log" --skip-name-resolve &
  MARIADB_PID=$!
  for _ in $(seq 1 300); do
    mariadb --no-defaults --socket="$MDB_SOCKET" -u root -e 'SELECT 1' >/dev/null 2>&1 && break
    kill -0 "$MARIADB_PID" 2>/dev/null || break
    sleep 0.1
  done
  DB_PASSWORD="db-$RANDOM$RANDOM"
  check_cmd "mariadb up, glance database and user created" mariadb --no-defaults \
    --socket="$MDB_SOCKET" -u root -e "CREATE DATABASE glance; \
      CREATE USER 'glance'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD'; \
      GRANT ALL PRIVILEGES ON glance.* TO 'glance'@'127.0.0.1';" || { summary; exit 1; }
  CONNECTION="mysql+pymysql://glance:$DB_PASSWORD@127.0.0.1:$MDB_PORT/glance"
else
  CONNECTION="sqlite:///$GLANCE_DIR/glance.sqlite"
fi

# --- Glance, as the install walkthrough configures it ---------------------------------------
GLANCE_PORT="$(free_port)"
GLANCE_URL="http://127.0.0.1:$GLANCE_PORT"
check_cmd "projects, users, roles and the image endpoint (Glance's port) created" \
  "$VENV/bin/python" "$HERE/keystone_setup.py" "$KS_URL" "$ADMIN_PASSWORD" "$GLANCE_URL" \
  "$PASSWORD" || { summary; exit 1; }
declare -A PROJECT
while IFS='=' read -r name id; do PROJECT[$name]="$id"; done <<<"$OUT"
PROJ_B="${PROJECT[proj-b]:-}"

cp "$VENV/etc/glance/glance-api-paste.ini" "$GLANCE_DIR/etc/glance-api-paste.ini"
sed -i "s#^disable_by_file_path = .*#disable_by_file_path = $GLANCE_DIR/etc/healthcheck_disable#" \
  "$GLANCE_DIR/etc/glance-api-paste.ini"
GLANCE_CONF="$GLANCE_DIR/etc/glance-api.conf"
S3_BUCKET="glance-images"
# The stores, in Glance's two forms: single-store (`[glance_store] stores`) with the file store
# in glint's folder (<data-dir>/images: Glance's files are adopted where they lie), or
# multi-store with Glance's images in RGW.
glance_stores() {
  if [ "$GLANCE_STORE" = s3 ]; then
    cat <<STORES
[glance_store]
default_backend = ceph

[ceph]
store_description = Ceph RGW
s3_store_host = $RGW_ENDPOINT
s3_store_access_key = $RGW_ACCESS_KEY
s3_store_secret_key = $RGW_SECRET_KEY
s3_store_bucket = $S3_BUCKET
s3_store_create_bucket_on_put = true
s3_store_bucket_url_format = path

[local]
filesystem_store_datadir = $DATA/images/
STORES
  else
    cat <<STORES
[glance_store]
stores = file,http
default_store = file
filesystem_store_datadir = $DATA/images/
STORES
  fi
}
mkdir -p "$GLANCE_DIR/tasks"
cat >"$GLANCE_CONF" <<EOF
[DEFAULT]
$([ "$GLANCE_STORE" = s3 ] && echo "enabled_backends = ceph:s3, local:file")
log_file = $WORK/glance.log
debug = false
worker_self_reference_url = $GLANCE_URL

[database]
connection = $CONNECTION

[keystone_authtoken]
www_authenticate_uri = $KS_URL
auth_url = $KS_URL
auth_type = password
project_domain_name = Default
user_domain_name = Default
project_name = service
username = glance
password = $PASSWORD

[paste_deploy]
flavor = keystone
config_file = $GLANCE_DIR/etc/glance-api-paste.ini

$(glance_stores)

[os_glance_staging_store]
filesystem_store_datadir = $GLANCE_DIR/staging/

[os_glance_tasks_store]
filesystem_store_datadir = $GLANCE_DIR/tasks/

# Harmless to Glance; glint lists it as not supported (it sends no CORS headers).
[cors]
allowed_origin = http://dashboard.example

[image_format]
disk_formats = ami,ari,aki,vhd,vmdk,raw,qcow2,vdi,iso,root-tar

[oslo_concurrency]
lock_path = $GLANCE_DIR/lock

[oslo_messaging_rabbit]
rabbit_ha_queues = false
EOF
mkdir -p "$DATA/images"
manage() {
  OS_GLANCE_CONFIG_DIR="$GLANCE_DIR/etc" "$VENV/bin/glance-manage" --config-file "$GLANCE_CONF" \
    "$@" >>"$WORK/glance-manage.log" 2>&1
}
check_cmd "glance-manage db_sync ($GLANCE_DB)" manage db_sync || {
  tail -n 20 "$WORK/glance-manage.log"; summary; exit 1; }
check_cmd "glance-manage db_load_metadefs (Glance's definition files)" \
  manage db_load_metadefs "$VENV/etc/glance/metadefs" || true

start_glance() {
  (cd "$GLANCE_DIR" && OS_GLANCE_CONFIG_DIR="$GLANCE_DIR/etc" exec "$VENV/bin/gunicorn" \
    --no-control-socket --workers 1 --threads 4 --timeout 300 \
    --bind "127.0.0.1:$GLANCE_PORT" glance.wsgi.api:application) >>"$WORK/glance.log" 2>&1 &
  GLANCE_PID=$!
  local up=""
  for _ in $(seq 1 1200); do
    if curl -fsS -o /dev/null "$GLANCE_URL/versions" 2>/dev/null; then up=yes; break; fi
    kill -0 "$GLANCE_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ -z "$up" ]; then not_ok "glance answers on $GLANCE_URL" "$(tail -n 30 "$WORK/glance.log")"; return 1; fi
  ok "glance answers on $GLANCE_URL"
}
stop_glance() {
  kill -TERM "$GLANCE_PID" 2>/dev/null || true
  local deadline=$((SECONDS + 30))
  while kill -0 "$GLANCE_PID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  kill -KILL "$GLANCE_PID" 2>/dev/null || true
  wait "$GLANCE_PID" 2>/dev/null || true
  GLANCE_PID=""
}
glance_started=$SECONDS
start_glance || { summary; exit 1; }
echo "glance up: $((SECONDS - glance_started))s" >&2

as() {
  local user="$1" project
  shift
  case "$user" in
    admin) project=admin ;;
    alice | rita) project=proj-a ;;
    bob) project=proj-b ;;
  esac
  local password="$PASSWORD"
  [ "$user" = admin ] && password="$ADMIN_PASSWORD"
  HOME="$WORK/home" OS_AUTH_URL="$KS_URL" OS_IDENTITY_API_VERSION=3 OS_IMAGE_API_VERSION=2 \
    OS_USERNAME="$user" OS_PASSWORD="$password" OS_PROJECT_NAME="$project" \
    OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default OS_INTERFACE=public \
    OS_REGION_NAME=RegionOne "$VENV/bin/openstack" "$@"
}
created_id() { printf '%s' "$OUT" | json_get id; }

# --- images in Glance -----------------------------------------------------------------------
qemu-img create -q -f qcow2 "$WORK/disk.qcow2" 64M
qemu-img create -q -f vmdk "$WORK/disk.vmdk" 32M
head -c 3000000 /dev/urandom >"$WORK/disk.raw"
declare -A FILE_OF
IDS=()
check_cmd "alice uploads a qcow2 with properties and tags" as alice image create \
  --disk-format qcow2 --container-format bare --file "$WORK/disk.qcow2" \
  --property os_distro=cirros --property hw_disk_bus=virtio --tag web --tag base \
  --min-ram 64 -f json cirros-qcow2 && { IDS+=("$(created_id)"); FILE_OF[$(created_id)]=disk.qcow2; }
QCOW_ID="${IDS[0]:-}"
check_cmd "alice uploads a vmdk, protected" as alice image create --disk-format vmdk \
  --container-format bare --file "$WORK/disk.vmdk" --protected -f json disk-vmdk &&
  { IDS+=("$(created_id)"); FILE_OF[$(created_id)]=disk.vmdk; }
check_cmd "alice uploads a raw image, shared" as alice image create --disk-format raw \
  --container-format bare --file "$WORK/disk.raw" --shared --property purpose=share -f json \
  shared-raw && { IDS+=("$(created_id)"); FILE_OF[$(created_id)]=disk.raw; }
SHARED_ID="$(created_id)"
check_cmd "alice adds project B as a member" as alice image add project "$SHARED_ID" "$PROJ_B" || true
check_cmd "bob accepts the share" as bob image set --accept "$SHARED_ID" || true
# (Through the API: the CLI would upload its standard input as the data.)
check_cmd "alice creates a queued image (no data), hidden" curl -fsS -X POST \
  -H "X-Auth-Token: $(as alice token issue -f value -c id)" -H 'Content-Type: application/json' \
  -d '{"name": "queued-hidden", "disk_format": "raw", "container_format": "bare",
       "os_hidden": true}' "$GLANCE_URL/v2/images" && IDS+=("$(created_id)")
check_cmd "admin uploads a public qcow2" as admin image create --public --disk-format qcow2 \
  --container-format bare --file "$WORK/disk.qcow2" -f json public-qcow2 &&
  { IDS+=("$(created_id)"); FILE_OF[$(created_id)]=disk.qcow2; }
check_cmd "alice uploads an image to be deactivated" as alice image create --disk-format raw \
  --container-format bare --file "$WORK/disk.raw" -f json to-deactivate &&
  { IDS+=("$(created_id)"); FILE_OF[$(created_id)]=disk.raw; }
DEACTIVATED_ID="$(created_id)"
check_cmd "admin deactivates it" as admin image set --deactivate "$DEACTIVATED_ID" || true
check_cmd "alice uploads an image and deletes it" as alice image create --disk-format raw \
  --container-format bare --file "$WORK/disk.raw" -f json to-delete || true
DELETED_ID="$(created_id)"
check_cmd "alice deletes it" as alice image delete "$DELETED_ID" || true
check_eq "Glance says the deleted image is gone" "" \
  "$(as admin image show "$DELETED_ID" -f value -c id 2>/dev/null || true)"

# What Glance answers: list as each user, show of every image, the member list, metadefs.
# show_fields: the fields of `image show -f json` both must agree on (properties: the user's).
show_fields() {
  python3 -c '
import json, sys
doc = json.load(sys.stdin)
keys = ["id", "name", "status", "checksum", "os_hash_algo", "os_hash_value", "size",
        "virtual_size", "visibility", "protected", "owner", "created_at", "updated_at", "tags",
        "min_disk", "min_ram", "disk_format", "container_format", "os_hidden"]
out = {k: doc.get(k) for k in keys}
props = doc.get("properties") or {}
if isinstance(props, str):
    props = json.loads(props)
out["properties"] = {k: v for k, v in props.items()
                     if not k.startswith("os_glance") and k not in ("stores", "direct_url",
                                                                  "locations")}
if isinstance(out["tags"], list):
    out["tags"] = sorted(out["tags"])
print(json.dumps(out, sort_keys=True))
'
}
record() { # DIR: what the current server answers
  local dir="$1" user id
  mkdir -p "$dir"
  for user in alice bob admin; do
    as "$user" image list -f value -c ID >"$dir/list.$user" 2>"$dir/list.$user.err" || true
    as "$user" image list --hidden -f value -c ID >"$dir/hidden.$user" 2>/dev/null || true
  done
  for id in "${IDS[@]}"; do
    as admin image show "$id" -f json 2>/dev/null | show_fields >"$dir/show.$id" || true
  done
  as bob image show "$SHARED_ID" -f json 2>/dev/null | show_fields >"$dir/bob-show" || true
  as alice image member list "$SHARED_ID" -f value -c "Member ID" -c Status >"$dir/members" 2>&1 || true
  as admin image metadef namespace list -f value -c namespace 2>/dev/null | sort >"$dir/metadefs" || true
}
record "$WORK/glance-answers"
# The comparisons below are only worth something if Glance answered.
for id in "${IDS[@]}"; do
  grep -q "\"id\": \"$id\"" "$WORK/glance-answers/show.$id" ||
    not_ok "Glance showed $id" "$(cat "$WORK/glance-answers/show.$id")"
done
check_eq "Glance lists alice's images and the public one, not the hidden one" \
  "$(( ${#IDS[@]} - 1 ))" "$(grep -c . "$WORK/glance-answers/list.alice" || true)"
check_eq "Glance lists the hidden one with --hidden" 1 \
  "$(grep -c . "$WORK/glance-answers/hidden.alice" || true)"
check_eq "Glance lists the shared image to bob (accepted member)" "$SHARED_ID" \
  "$(grep -x "$SHARED_ID" "$WORK/glance-answers/list.bob" || true)"
check_cmd "Glance has metadef namespaces" test -s "$WORK/glance-answers/metadefs" || true

# --- migrate, while Glance keeps running ----------------------------------------------------
check_cmd "migrate-from-glance --dry-run writes nothing" "$BIN" migrate-from-glance \
  --glance-config "$GLANCE_CONF" --data-dir "$DATA" --dry-run || true
printf '%s\n' "$OUT" | grep -q "would adopt $DELETED_ID deleted" &&
  ok "the dry run plans the deleted image's tombstone" ||
  not_ok "the dry run plans the deleted image's tombstone" "$OUT"
check_eq "no metadata database after the dry run" "" "$(ls "$DATA/meta.redb" 2>/dev/null || true)"
migrated=$SECONDS
check_cmd "migrate-from-glance --verify" "$BIN" migrate-from-glance \
  --glance-config "$GLANCE_CONF" --data-dir "$DATA" --verify || true
echo "migration: $((SECONDS - migrated))s" >&2
printf '%s\n' "$OUT" | sed 's/^/       /'
summary_line="$(printf '%s\n' "$OUT" | tail -n 1)"
check_eq "every image adopted (the deleted one as a tombstone) and verified" \
  "$(( ${#IDS[@]} + 1 )) images: $(( ${#IDS[@]} + 1 )) adopted, 0 unchanged, 0 replaced (1 of them deleted ids), 0 copied, $(( ${#FILE_OF[@]} )) verified, 0 failed" \
  "$summary_line"
case "$OUT" in *"$PASSWORD"*|*"${DB_PASSWORD:-no-db-password}"*|*"${RGW_SECRET_KEY:-no-s3-secret}"*)
  not_ok "no password in the output" ;;
  *) ok "no password in the output" ;; esac
if [ "$GLANCE_STORE" = s3 ]; then
  check_eq "adopted in place: no image file in glint's file store" "" "$(ls "$DATA/images")"
fi
check_cmd "a second run changes nothing" "$BIN" migrate-from-glance \
  --glance-config "$GLANCE_CONF" --data-dir "$DATA" || true
check_eq "the second run: every image unchanged" \
  "$(( ${#IDS[@]} + 1 )) images: 0 adopted, $(( ${#IDS[@]} + 1 )) unchanged, 0 replaced (1 of them deleted ids), 0 copied, 0 verified, 0 failed" \
  "$(printf '%s\n' "$OUT" | tail -n 1)"
stop_glance

# --- glint on Glance's config and port ------------------------------------------------------
GLINT_GLANCE_CONFIG="$GLANCE_CONF"
GLINT_LISTEN="127.0.0.1:$GLANCE_PORT"
start_server || { summary; exit 1; }
grep -q "not supported (changes behaviour)" "$WORK/glint.log" &&
  ok "glint lists the Glance options it does not honour" ||
  not_ok "glint lists the Glance options it does not honour" "$(tail -n 20 "$WORK/glint.log")"
record "$WORK/glint-answers"
for user in alice bob admin; do
  check_eq "image list as $user: same ids, same order" \
    "$(cat "$WORK/glance-answers/list.$user")" "$(cat "$WORK/glint-answers/list.$user")"
  check_eq "image list --hidden as $user: same ids" \
    "$(cat "$WORK/glance-answers/hidden.$user")" "$(cat "$WORK/glint-answers/hidden.$user")"
done
for id in "${IDS[@]}"; do
  check_eq "image show $id: same fields" \
    "$(cat "$WORK/glance-answers/show.$id")" "$(cat "$WORK/glint-answers/show.$id")"
done
check_eq "the member sees the shared image as before" \
  "$(cat "$WORK/glance-answers/bob-show")" "$(cat "$WORK/glint-answers/bob-show")"
check_eq "bob still lists the shared image" "$SHARED_ID" \
  "$(grep -x "$SHARED_ID" "$WORK/glint-answers/list.bob" || true)"
check_eq "the members and their statuses" \
  "$(cat "$WORK/glance-answers/members")" "$(cat "$WORK/glint-answers/members")"
check_eq "the metadef namespaces" \
  "$(cat "$WORK/glance-answers/metadefs")" "$(cat "$WORK/glint-answers/metadefs")"
for id in "${!FILE_OF[@]}"; do
  [ "$id" = "$DEACTIVATED_ID" ] && continue
  check_cmd "image save $id" as admin image save --file "$WORK/saved.$id" "$id" || continue
  check_cmd "its bytes are the uploaded ${FILE_OF[$id]}" cmp "$WORK/saved.$id" "$WORK/${FILE_OF[$id]}" || true
done
check_cmd "bob (member) downloads the shared image" as bob image save --file "$WORK/bob.raw" \
  "$SHARED_ID" || true
check_cmd "bob's copy is the uploaded file" cmp "$WORK/bob.raw" "$WORK/disk.raw" || true
check_fails "the deactivated image cannot be downloaded by its owner" \
  as alice image save --file "$WORK/deact.raw" "$DEACTIVATED_ID"
check_cmd "admin reactivates it in glint" as admin image set --activate "$DEACTIVATED_ID" || true
check_cmd "then it downloads" as alice image save --file "$WORK/react.raw" "$DEACTIVATED_ID" || true
check_cmd "with the uploaded bytes" cmp "$WORK/react.raw" "$WORK/disk.raw" || true
check_fails "the deleted image's id cannot be reused" as alice image create --id "$DELETED_ID" \
  --disk-format raw --container-format bare reuse
check_eq "glint answers 404 for the deleted image" 404 "$(curl -s -o /dev/null -w '%{http_code}' \
  -H "X-Auth-Token: $(as admin token issue -f value -c id)" "$URL/v2/images/$DELETED_ID")"
check_cmd "the qcow2 image takes new tags in glint" as alice image set --tag migrated "$QCOW_ID" || true
if [ "$GLANCE_STORE" = s3 ]; then
  check_eq "the image is in Glance's store, by its name" ceph "$(curl -fsS \
    -H "X-Auth-Token: $(as admin token issue -f value -c id)" "$URL/v2/images/$QCOW_ID" |
    json_get stores)"
  check_eq "Glance's objects are where Glance put them, one per image with data" \
    "${#FILE_OF[@]}" "$(RGW_BUCKET="$S3_BUCKET" "$VENV/bin/python" -c '
import os, boto3
s3 = boto3.client("s3", endpoint_url=os.environ["RGW_ENDPOINT"], region_name="us-east-1",
                  aws_access_key_id=os.environ["RGW_ACCESS_KEY"],
                  aws_secret_access_key=os.environ["RGW_SECRET_KEY"])
print(s3.list_objects_v2(Bucket=os.environ["RGW_BUCKET"]).get("KeyCount", 0))')"
fi
stop_server
if grep -q "${RGW_SECRET_KEY:-no-s3-secret}" "$WORK/glint.log"; then
  not_ok "the S3 secret never reaches glint's log"
else ok "the S3 secret never reaches glint's log"; fi

# --- --copy-to: from RGW into glint's file store, through glint's stores ----------------------
if [ "$GLANCE_STORE" = s3 ]; then
  copied=$SECONDS
  # glint's records changed since (a tag, a reactivation): --overwrite takes Glance's again.
  check_cmd "migrate-from-glance --copy-to local --overwrite --verify" "$BIN" migrate-from-glance \
    --glance-config "$GLANCE_CONF" --data-dir "$DATA" --copy-to local --overwrite --verify || true
  echo "copy: $((SECONDS - copied))s" >&2
  check_eq "every image with data copied from RGW and verified" \
    "$(( ${#IDS[@]} + 1 )) images: 0 adopted, $(( ${#IDS[@]} + 1 - ${#FILE_OF[@]} )) unchanged, ${#FILE_OF[@]} replaced (1 of them deleted ids), ${#FILE_OF[@]} copied, ${#FILE_OF[@]} verified, 0 failed" \
    "$(printf '%s\n' "$OUT" | tail -n 1)"
  check_eq "the copies are in the file store" "${#FILE_OF[@]}" "$(ls "$DATA/images" | grep -c . || true)"
  check_cmd "--copy-to again" "$BIN" migrate-from-glance --glance-config "$GLANCE_CONF" \
    --data-dir "$DATA" --copy-to local || true
  check_eq "copies are not made twice" \
    "$(( ${#IDS[@]} + 1 )) images: 0 adopted, $(( ${#IDS[@]} + 1 )) unchanged, 0 replaced (1 of them deleted ids), 0 copied, 0 verified, 0 failed" \
    "$(printf '%s\n' "$OUT" | tail -n 1)"
  start_server || { summary; exit 1; }
  check_eq "the image is in the file store now" local "$(curl -fsS \
    -H "X-Auth-Token: $(as admin token issue -f value -c id)" "$URL/v2/images/$QCOW_ID" |
    json_get stores)"
  for id in "${!FILE_OF[@]}"; do
    [ "$id" = "$DEACTIVATED_ID" ] && continue
    check_cmd "image save $id (copy)" as admin image save --file "$WORK/copy.$id" "$id" || continue
    check_cmd "its bytes are still the uploaded ${FILE_OF[$id]}" \
      cmp "$WORK/copy.$id" "$WORK/${FILE_OF[$id]}" || true
  done
  stop_server
fi
echo "glance_migrate.sh ($GLANCE_DB): $((SECONDS - started))s in all" >&2
summary
[ "$FAIL" -eq 0 ]
