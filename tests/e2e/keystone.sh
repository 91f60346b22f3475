#!/usr/bin/env bash
# End-to-end test of glint behind a real Keystone: Keystone (PyPI `keystone`, sqlite, fernet
# tokens) under gunicorn on loopback, bootstrapped, with projects, users and roles; glint with
# `[auth] strategy = "keystone"`, registered in the catalog; then the real `openstack` CLI and
# openstacksdk under different users: who can see, download, create and share what, which
# tokens are refused, and what system- and domain-scoped tokens get on every image route.
# A second glint is RegionTwo's Image service: `glance image-create-via-import --import-method
# glance-download` copies an image from it, found through the real catalog.
#
# Usage: tests/e2e/keystone.sh       (VENV, GLINT_BIN optional; as tests/e2e/cli.sh)
# Prints one line per check and ends with exactly "N passed, M failed" (exit 1 if M > 0).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/glint-keystone-e2e.XXXXXX")"
# shellcheck source=tests/e2e/lib.sh
source "$HERE/lib.sh"

# shellcheck source=tests/e2e/keystone_lib.sh
source "$HERE/keystone_lib.sh"
start_keystone || { summary; exit 1; }

# --- glint, validating tokens with Keystone -------------------------------------------------
AUTH_CONFIG="$WORK/auth.toml"
cat >"$AUTH_CONFIG" <<EOF
[auth]
strategy = "keystone"

[keystone_authtoken]
auth_url = "$KS_URL"
www_authenticate_uri = "$KS_URL"
auth_type = "password"
username = "glance"
password = "$PASSWORD"
project_name = "service"
user_domain_name = "Default"
project_domain_name = "Default"
# Short, so that the revoked-token check below does not wait the default 300 s.
token_cache_time = 3
EOF

# RegionTwo's Image service: a second glint with the same Keystone, stopped by PID on exit.
REGION2_PID=""
more_cleanup() {
  [ -n "$REGION2_PID" ] || return 0
  kill -TERM "$REGION2_PID" 2>/dev/null || true
  local deadline=$((SECONDS + 15))
  while kill -0 "$REGION2_PID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
  kill -KILL "$REGION2_PID" 2>/dev/null || true
  wait "$REGION2_PID" 2>/dev/null || true
  REGION2_PID=""
}
mkdir -p "$WORK/region2"
"$BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/region2" --config "$AUTH_CONFIG" \
  >"$WORK/region2.stdout" 2>>"$WORK/region2.log" &
REGION2_PID=$!
REGION2_URL=""
deadline=$((SECONDS + 30))
while [ $SECONDS -lt $deadline ] && kill -0 "$REGION2_PID" 2>/dev/null; do
  REGION2_URL="$(sed -n 's/^listening on \(http:[^[:space:]]*\).*/\1/p' "$WORK/region2.stdout" | head -n1)"
  [ -n "$REGION2_URL" ] && break
  sleep 0.05
done
if [ -z "$REGION2_URL" ]; then
  not_ok "RegionTwo's glint listens" "$(tail -n 20 "$WORK/region2.log")"
  summary
  exit 1
fi
ok "RegionTwo's glint listening on $REGION2_URL"

# RegionOne's glint offers glance-download and may reach RegionTwo's on loopback (the catalog's
# endpoint meets [import_filtering_opts] like any URL glint fetches).
GLINT_CONFIG="$WORK/glint.toml"
{
  echo 'enabled_import_methods = ["glance-direct", "web-download", "copy-image", "glance-download"]'
  cat "$AUTH_CONFIG"
  echo '[import_filtering_opts]'
  echo 'allowed_hosts = ["127.0.0.1"]'
  echo "allowed_ports = [${REGION2_URL##*:}]"
} >"$GLINT_CONFIG"
start_server || { summary; exit 1; }

check_cmd "projects, users, roles and the image endpoints of both regions created" \
  "$VENV/bin/python" "$HERE/keystone_setup.py" "$KS_URL" "$ADMIN_PASSWORD" "$URL" "$PASSWORD" \
  "$REGION2_URL" || { summary; exit 1; } || true
declare -A PROJECT
while IFS='=' read -r name id; do PROJECT[$name]="$id"; done <<<"$OUT"
PROJ_A="${PROJECT[proj-a]:-}"
PROJ_B="${PROJECT[proj-b]:-}"

# as USER COMMAND...: the openstack CLI as USER (of the project its role is on).
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
    OS_REGION_NAME="${REGION:-RegionOne}" "$VENV/bin/openstack" "$@"
}
token_of() { as "$1" token issue -f value -c id; }
status_with_token() { curl -s -o /dev/null -w '%{http_code}' -H "X-Auth-Token: $1" "$URL$2"; }

# --- tokens ---------------------------------------------------------------------------------
check_eq "no token → 401" 401 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v2/images")"
check_eq "bogus token → 401" 401 "$(status_with_token bogus-token /v2/images)"
check_eq "versions need no token" 200 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/versions")"
challenge="$(curl -s -D - -o /dev/null "$URL/v2/images" | tr -d '\r' | grep -i '^www-authenticate:' | cut -d' ' -f2- || true)"
check_eq "401 names Keystone" "Keystone uri=\"$KS_URL\"" "$challenge"

# --- alice (member of A) creates a private image --------------------------------------------
head -c 2000000 /dev/urandom >"$WORK/a.raw"
A_MD5="$(md5sum "$WORK/a.raw" | cut -d' ' -f1)"
ID=""
if check_cmd "alice creates a private image with data" as alice image create --private \
  --disk-format raw --container-format bare --file "$WORK/a.raw" -f json private-a; then
  ID="$(printf '%s' "$OUT" | json_get id)"
  check_eq "its owner is project A" "$PROJ_A" "$(printf '%s' "$OUT" | json_get owner)"
  check_eq "it is active" active "$(printf '%s' "$OUT" | json_get status)"
  check_eq "checksum is the file's md5" "$A_MD5" "$(printf '%s' "$OUT" | json_get checksum)"
fi
[ -n "$ID" ] || { not_ok "alice's image has an id"; summary; exit 1; }

check_cmd "alice lists images" as alice image list -f value -c ID || true
check_eq "alice sees her image" "$ID" "$(printf '%s\n' "$OUT" | grep -x "$ID" || true)"
check_cmd "rita (reader of A) sees it" as rita image show "$ID" -f value -c id || true
check_fails "rita (reader) cannot create an image" as rita image create --disk-format raw \
  --container-format bare no-readers
check_fails "rita (reader) cannot download (download_image needs member)" \
  as rita image save --file "$WORK/rita.raw" "$ID"

# --- bob (member of B) cannot see it --------------------------------------------------------
check_cmd "bob lists images" as bob image list -f value -c ID || true
check_eq "bob does not see alice's private image" "" "$(printf '%s\n' "$OUT" | grep -x "$ID" || true)"
check_fails "bob cannot show it" as bob image show "$ID"
BOB_TOKEN="$(token_of bob)"
check_eq "bob gets 404 for it, not 403" 404 "$(status_with_token "$BOB_TOKEN" "/v2/images/$ID")"
check_eq "bob cannot download it (404)" 404 "$(status_with_token "$BOB_TOKEN" "/v2/images/$ID/file")"

# --- shared with B, accepted by bob ---------------------------------------------------------
check_cmd "alice makes it shared" as alice image set --shared "$ID" || true
check_cmd "alice adds project B as a member" as alice image add project "$ID" "$PROJ_B" || true
check_cmd "bob lists images (pending member)" as bob image list -f value -c ID || true
check_eq "a pending share is not in bob's default list" "" "$(printf '%s\n' "$OUT" | grep -x "$ID" || true)"
check_cmd "bob can show a shared image he is a member of" as bob image show "$ID" -f value -c id || true
check_cmd "bob accepts the share" as bob image set --accept "$ID" || true
check_cmd "bob lists images (accepted)" as bob image list -f value -c ID || true
check_eq "bob now sees it in his list" "$ID" "$(printf '%s\n' "$OUT" | grep -x "$ID" || true)"
check_cmd "bob downloads it" as bob image save --file "$WORK/bob.raw" "$ID" || true
check_eq "bob's copy is identical" "$A_MD5" "$(md5sum "$WORK/bob.raw" 2>/dev/null | cut -d' ' -f1)"
check_fails "bob (member, not owner) cannot change it" as bob image set --property x=y "$ID"
check_fails "bob cannot delete it" as bob image delete "$ID"

# openstacksdk directly, as bob.
check_cmd "openstacksdk as bob finds the shared image" "$VENV/bin/python" - "$KS_URL" "$PASSWORD" "$ID" <<'EOF' || true
import sys
import openstack
url, password, image_id = sys.argv[1:4]
conn = openstack.connect(auth_url=url, username="bob", password=password,
                         project_name="proj-b", user_domain_name="Default",
                         project_domain_name="Default", region_name="RegionOne")
ids = [i.id for i in conn.image.images()]
assert image_id in ids, ids
data = conn.image.download_image(image_id)
assert len(data.content) == 2000000, len(data.content)
EOF

# --- admin sees everything ------------------------------------------------------------------
check_cmd "bob creates a private image" as bob image create --private --disk-format raw \
  --container-format bare -f value -c id private-b || true
B_ID="$OUT"
check_cmd "admin lists images" as admin image list -f value -c ID || true
check_eq "admin sees alice's image" "$ID" "$(printf '%s\n' "$OUT" | grep -x "$ID" || true)"
check_eq "admin sees bob's private image" "$B_ID" "$(printf '%s\n' "$OUT" | grep -x "$B_ID" || true)"
check_cmd "alice lists images" as alice image list -f value -c ID || true
check_eq "alice does not see bob's private image" "" "$(printf '%s\n' "$OUT" | grep -x "$B_ID" || true)"

# --- tokens not scoped to a project (issue 16) ----------------------------------------------
# sysadmin/sysreader hold admin/reader on the system, domadmin/domreader on the Default domain.
# Glance accepts their tokens and every image rule, being project-scoped, refuses them: an
# image is 404; listing and creating are 403; what Glance checks before the rule answers
# otherwise (403 for the members of an image the data layer shows but that is not shared,
# and for a deactivated image's data to a non-admin). The data layer shows an admin of any
# scope every image, others the public ones.
# as_scoped USER OPENSTACK-ARGS...: the openstack CLI as USER, with no project.
as_scoped() {
  local user="$1"
  shift
  HOME="$WORK/home" OS_AUTH_URL="$KS_URL" OS_IDENTITY_API_VERSION=3 OS_IMAGE_API_VERSION=2 \
    OS_USERNAME="$user" OS_PASSWORD="$PASSWORD" OS_USER_DOMAIN_NAME=Default \
    OS_INTERFACE=public OS_REGION_NAME=RegionOne "$VENV/bin/openstack" "$@"
}
as_system() { local user="$1"; shift; as_scoped "$user" --os-system-scope all "$@"; }
as_domain() { local user="$1"; shift; as_scoped "$user" --os-domain-name Default "$@"; }

declare -A SCOPED
if check_cmd "real system- and domain-scoped tokens; admin deactivates a public image" \
  "$VENV/bin/python" "$HERE/keystone_scopes.py" setup "$KS_URL" "$ADMIN_PASSWORD" "$PASSWORD" \
  "$WORK/a.raw"; then
  while IFS='=' read -r name value; do SCOPED[$name]="$value"; done <<<"$OUT"
fi
DEACT_ID="${SCOPED[deactivated]:-}"
check_cmd "openstack --os-system-scope all token issue" as_system sysadmin token issue -f value -c id || true

# code METHOD PATH TOKEN [JSON]: the status glint answers.
code() {
  local args=(-s -o /dev/null -w '%{http_code}' -X "$1" -H "X-Auth-Token: $3")
  if [ -n "${4:-}" ]; then
    local type=application/json
    [ "$1" = PATCH ] && type=application/openstack-images-v2.1-json-patch
    args+=(-H "Content-Type: $type" -d "$4")
  fi
  curl "${args[@]}" "$URL$2"
}
# routes TOKEN IMAGE_ID: the statuses of every image route, in one line.
routes() {
  local t="$1" i="/v2/images/$2" out=""
  out+="show=$(code GET "$i" "$t") "
  out+="download=$(code GET "$i/file" "$t") "
  out+="upload=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "X-Auth-Token: $t" \
    -H 'Content-Type: application/octet-stream' --data-binary data "$URL$i/file") "
  out+="update=$(code PATCH "$i" "$t" '[{"op": "replace", "path": "/name", "value": "x"}]') "
  out+="delete=$(code DELETE "$i" "$t") "
  out+="deactivate=$(code POST "$i/actions/deactivate" "$t") "
  out+="reactivate=$(code POST "$i/actions/reactivate" "$t") "
  out+="tag=$(code PUT "$i/tags/t" "$t") untag=$(code DELETE "$i/tags/t" "$t") "
  out+="members=$(code GET "$i/members" "$t") "
  out+="member=$(code GET "$i/members/$PROJ_B" "$t") "
  out+="add-member=$(code POST "$i/members" "$t" '{"member": "someone"}') "
  out+="update-member=$(code PUT "$i/members/$PROJ_B" "$t" '{"status": "accepted"}') "
  out+="delete-member=$(code DELETE "$i/members/$PROJ_B" "$t")"
  printf '%s' "$out"
}
# expected DOWNLOAD MEMBERS: the line `routes` must print.
expected() {
  printf 'show=404 download=%s upload=404 update=404 delete=404 deactivate=404 reactivate=404 tag=404 untag=404 members=%s member=404 add-member=%s update-member=%s delete-member=%s' \
    "$1" "$2" "$2" "$2" "$2"
}
UNKNOWN_ID="$(python3 -c 'import uuid; print(uuid.uuid4())')"
for user in sysadmin sysreader domadmin domreader; do
  token="${SCOPED[$user]:-}"
  [ -n "$token" ] || { not_ok "$user has a token"; continue; }
  admin=no
  case "$user" in *admin) admin=yes ;; esac
  check_eq "$user lists images: 403" 403 "$(code GET /v2/images "$token")"
  check_eq "$user creates an image: 403" 403 \
    "$(code POST /v2/images "$token" '{"name": "n", "disk_format": "raw", "container_format": "bare"}')"
  check_eq "$user reads schemas and usage, like any caller" "200 200" \
    "$(code GET /v2/schemas/image "$token") $(code GET /v2/info/usage "$token")"
  # alice's shared image and bob's private one are hidden from all but admins; the public
  # deactivated one is shown to all. Shown and not shared: members are 403.
  private_members=404
  [ "$admin" = yes ] && private_members=403
  deact_download=403
  [ "$admin" = yes ] && deact_download=404
  check_eq "$user on alice's shared image" "$(expected 404 404)" "$(routes "$token" "$ID")"
  check_eq "$user on bob's private image" "$(expected 404 "$private_members")" "$(routes "$token" "$B_ID")"
  check_eq "$user on a public deactivated image" "$(expected "$deact_download" 403)" "$(routes "$token" "$DEACT_ID")"
  check_eq "$user on an unknown image" "$(expected 404 404)" "$(routes "$token" "$UNKNOWN_ID")"
done
check_eq "versions and healthcheck unchanged" "200 200" \
  "$(code GET /versions "${SCOPED[sysadmin]:-x}") $(code GET /healthcheck "${SCOPED[sysadmin]:-x}")"

check_fails "openstack --os-system-scope all image list fails" as_system sysadmin image list
check_eq "… with the 403 of get_images" yes "$(printf '%s' "$OUT" | grep -q 403 && echo yes || echo "$OUT")"
check_fails "openstack --os-system-scope all image show fails" as_system sysadmin image show "$ID"
check_fails "openstack --os-domain-name Default image create fails" as_domain domadmin image create \
  --disk-format raw --container-format bare not-for-domains
check_eq "… with a 403" yes "$(printf '%s' "$OUT" | grep -q 403 && echo yes || echo "$OUT")"
check_cmd "openstacksdk with system- and domain-scoped tokens" "$VENV/bin/python" \
  "$HERE/keystone_scopes.py" sdk "$KS_URL" "$PASSWORD" "$ID" "$B_ID" "$DEACT_ID" || true
check_cmd "alice's image is untouched" as alice image show "$ID" -f json || true
check_eq "… same name" private-a "$(printf '%s' "$OUT" | json_get name)"
check_eq "… no tags" "" "$(printf '%s' "$OUT" | tags_of)"

# --- a revoked token stops working once its cache entry lapses ------------------------------
ALICE_TOKEN="$(token_of alice)"
check_eq "alice's fresh token works" 200 "$(status_with_token "$ALICE_TOKEN" /v2/images)"
check_cmd "alice's token revoked" as alice token revoke "$ALICE_TOKEN" || true
sleep 4
check_eq "revoked token → 401 after token_cache_time" 401 "$(status_with_token "$ALICE_TOKEN" /v2/images)"

check_cmd "alice deletes her image" as alice image delete "$ID" || true

# --- metadata definitions: the real `glance md-*` commands as each user ------------------------
# md USER ARGS...: python-glanceclient as USER, through the catalog.
md() {
  local user="$1" project password="$PASSWORD"
  shift
  case "$user" in
    admin) project=admin; password="$ADMIN_PASSWORD" ;;
    alice | rita) project=proj-a ;;
    bob) project=proj-b ;;
  esac
  HOME="$WORK/home" OS_AUTH_URL="$KS_URL" OS_USERNAME="$user" OS_PASSWORD="$password" \
    OS_PROJECT_NAME="$project" OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default \
    OS_INTERFACE=public OS_REGION_NAME=RegionOne "$VENV/bin/glance" "$@"
}
check_fails "alice (member) cannot create a namespace (metadef writes are admin-only)" \
  md alice md-namespace-create OS::Alice::Own
check_cmd "admin creates a private namespace owned by project A" \
  md admin md-namespace-create OS::Private::A --owner "$PROJ_A" || true
check_cmd "admin creates a public namespace owned by project A" \
  md admin md-namespace-create OS::Public::A --owner "$PROJ_A" --visibility public || true
check_cmd "rita (reader of A) lists namespaces" md rita md-namespace-list || true
check_eq "rita sees A's private namespace" "1" "$(printf '%s\n' "$OUT" | grep -c 'OS::Private::A' || true)"
check_cmd "bob (member of B) lists namespaces" md bob md-namespace-list || true
check_eq "bob does not see A's private namespace" "0" "$(printf '%s\n' "$OUT" | grep -c 'OS::Private::A' || true)"
check_eq "bob sees the public one" "1" "$(printf '%s\n' "$OUT" | grep -c 'OS::Public::A' || true)"
check_fails "bob cannot show A's private namespace" md bob md-namespace-show OS::Private::A
check_eq "... it does not exist for him (404)" "1" "$(printf '%s\n' "$OUT" | grep -c '404' || true)"
check_fails "bob cannot change the public namespace" md bob md-namespace-update OS::Public::A --description mine
check_eq "... refused (403)" "1" "$(printf '%s\n' "$OUT" | grep -c '403' || true)"
check_fails "bob cannot add a tag to it" md bob md-tag-create OS::Public::A --name bobs
check_cmd "admin deletes both namespaces" md admin md-namespace-delete OS::Private::A || true
check_cmd "... and the public one" md admin md-namespace-delete OS::Public::A || true

# --- glance-download: RegionTwo's image imported into RegionOne through the catalog ----------
head -c 1500000 /dev/urandom >"$WORK/remote.raw"
REMOTE_MD5="$(md5sum "$WORK/remote.raw" | cut -d' ' -f1)"
REMOTE_ID=""
if REGION=RegionTwo check_cmd "alice uploads an image to RegionTwo" as alice image create \
  --disk-format raw --container-format bare --property hw_disk_bus=virtio \
  --property os_distro=cirros --property note=stays-remote --file "$WORK/remote.raw" -f json remote-a; then
  REMOTE_ID="$(printf '%s' "$OUT" | json_get id)"
fi
ALICE_TOKEN="$(token_of alice)"
check_eq "it is in RegionTwo's glint" 200 "$(curl -s -o /dev/null -w '%{http_code}' \
  -H "X-Auth-Token: $ALICE_TOKEN" "$REGION2_URL/v2/images/$REMOTE_ID")"
check_eq "not in RegionOne's" 404 "$(status_with_token "$ALICE_TOKEN" "/v2/images/$REMOTE_ID")"
# glance_tty USER ARGS...: python-glanceclient as USER on a terminal (a pty), as a user at a
# shell: it takes any other stdin for image data, which glance-download refuses.
glance_tty() {
  local user="$1" project=proj-a
  shift
  [ "$user" = bob ] && project=proj-b
  python3 -c 'import os, pty, sys; sys.exit(os.waitstatus_to_exitcode(pty.spawn(sys.argv[1:])))' \
    env HOME="$WORK/home" OS_AUTH_URL="$KS_URL" OS_USERNAME="$user" OS_PASSWORD="$PASSWORD" \
    OS_PROJECT_NAME="$project" OS_USER_DOMAIN_NAME=Default OS_PROJECT_DOMAIN_NAME=Default \
    OS_INTERFACE=public OS_REGION_NAME=RegionOne "$VENV/bin/glance" "$@"
}
check_cmd "glance image-create-via-import --import-method glance-download --remote-region RegionTwo" \
  glance_tty alice image-create-via-import --name via-glance-download --disk-format raw \
  --container-format bare --import-method glance-download --remote-region RegionTwo \
  --remote-image-id "$REMOTE_ID" || true
GD_ID="$(as alice image show via-glance-download -f value -c id 2>/dev/null || true)"
gd_status=""
deadline=$((SECONDS + 60))
while [ -n "$GD_ID" ] && [ $SECONDS -lt $deadline ]; do
  gd_status="$(curl -s -H "X-Auth-Token: $ALICE_TOKEN" "$URL/v2/images/$GD_ID" | json_get status)"
  [ "$gd_status" = active ] && break
  sleep 0.2
done
check_eq "the imported image becomes active in RegionOne" active "$gd_status"
check_cmd "alice shows it" as alice image show "$GD_ID" -f json || true
check_eq "… its checksum is the RegionTwo file's md5" "$REMOTE_MD5" "$(printf '%s' "$OUT" | json_get checksum)"
check_eq "… hw_disk_bus and os_distro copied, note not" "virtio cirros -" \
  "$(printf '%s' "$OUT" | python3 -c 'import json,sys; p=json.load(sys.stdin)["properties"]; print(p.get("hw_disk_bus"), p.get("os_distro"), p.get("note", "-"))')"
check_cmd "alice downloads it from RegionOne" as alice image save --file "$WORK/gd.raw" "$GD_ID" || true
check_eq "the download's md5 is the RegionTwo file's" "$REMOTE_MD5" \
  "$(md5sum "$WORK/gd.raw" 2>/dev/null | cut -d' ' -f1)"
# A region the catalog does not have: accepted, and the task fails saying so (as Glance).
NOWHERE_ID="$(curl -s -X POST -H "X-Auth-Token: $ALICE_TOKEN" -H 'Content-Type: application/json' \
  -d '{"name": "gd-nowhere", "disk_format": "raw", "container_format": "bare"}' \
  "$URL/v2/images" | json_get id)"
check_cmd "glance image-import --import-method glance-download --remote-region RegionNine" \
  glance_tty alice image-import "$NOWHERE_ID" --import-method glance-download --remote-region RegionNine \
  --remote-image-id "$REMOTE_ID" || true
task_message=""
deadline=$((SECONDS + 30))
while [ $SECONDS -lt $deadline ]; do
  task_message="$(curl -s -H "X-Auth-Token: $ALICE_TOKEN" "$URL/v2/images/$NOWHERE_ID/tasks" |
    python3 -c 'import json,sys; t=json.load(sys.stdin)["tasks"]; print(t[-1]["message"] if t and t[-1]["status"]=="failure" else "")')"
  [ -n "$task_message" ] && break
  sleep 0.2
done
check_eq "… its task fails naming the region" "public glance endpoint not found for region RegionNine" \
  "$task_message"
check_eq "… and the image is queued again" queued \
  "$(curl -s -H "X-Auth-Token: $ALICE_TOKEN" "$URL/v2/images/$NOWHERE_ID" | json_get status)"
more_cleanup
stop_server
summary
[ "$FAIL" -eq 0 ]
