#!/usr/bin/env bash
# End-to-end test of glint behind a real Keystone: Keystone (PyPI `keystone`, sqlite, fernet
# tokens) under gunicorn on loopback, bootstrapped, with projects, users and roles; glint with
# `[auth] strategy = "keystone"`, registered in the catalog; then the real `openstack` CLI and
# openstacksdk under different users: who can see, download, create and share what, and which
# tokens are refused.
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
GLINT_CONFIG="$WORK/glint.toml"
cat >"$GLINT_CONFIG" <<EOF
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
start_server || { summary; exit 1; }

check_cmd "projects, users, roles and the image endpoint created" \
  "$VENV/bin/python" "$HERE/keystone_setup.py" "$KS_URL" "$ADMIN_PASSWORD" "$URL" "$PASSWORD" ||
  { summary; exit 1; } || true
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
    OS_REGION_NAME=RegionOne "$VENV/bin/openstack" "$@"
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
stop_server
summary
[ "$FAIL" -eq 0 ]
