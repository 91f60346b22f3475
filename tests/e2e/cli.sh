#!/usr/bin/env bash
# End-to-end test with the real OpenStack clients: python-openstackclient (`openstack`, on
# openstacksdk) and python-glanceclient (`glance`) drive the built `glint` binary in its
# no-auth mode, through upload, list, download, metadata updates, a restart and deletion.
#
# Usage: tests/e2e/cli.sh            (VENV, GLINT_BIN optional; see tests/README.md)
# It builds nothing: the binary comes from $GLINT_BIN or <repo>/target/{debug,release}/glint.
# The clients live in a venv at ${VENV:-<repo>/.venv}, installed there on first use.
# Prints one line per check and ends with exactly "N passed, M failed" (exit 1 if M > 0).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/glint-cli-e2e.XXXXXX")"
# shellcheck source=tests/e2e/lib.sh
source "$HERE/lib.sh"


# The clients, without Keystone. Each run gets its own HOME so nothing is cached between
# servers (glanceclient caches schemas per endpoint under ~/.glanceclient).
osc() {
  HOME="$WORK/home" "$VENV/bin/openstack" --os-auth-type none --os-endpoint "$URL" "$@"
}
glance() {
  HOME="$WORK/home" "$VENV/bin/glance" --os-image-url "$URL" --os-auth-token fake "$@"
}

# --- test data ------------------------------------------------------------------------------
# A qcow2 of 64 MiB virtual size holding 8 MiB of random data (then zeros).
truncate -s 64M "$WORK/disk.raw"
dd if=/dev/urandom of="$WORK/disk.raw" bs=1M count=8 conv=notrunc status=none
qemu-img convert -f raw -O qcow2 "$WORK/disk.raw" "$WORK/cirros.qcow2"
IMG="$WORK/cirros.qcow2"
IMG_MD5="$(md5sum "$IMG" | cut -d' ' -f1)"
IMG_SHA512="$(sha512sum "$IMG" | cut -d' ' -f1)"
IMG_SIZE="$(stat -c %s "$IMG")"
head -c 3000000 /dev/urandom >"$WORK/small.raw"
SMALL_MD5="$(md5sum "$WORK/small.raw" | cut -d' ' -f1)"

# --- the run --------------------------------------------------------------------------------
# With an image cache, so that downloads go through it and the cache commands have one.
printf 'image_cache_max_size = 268435456\n' >"$WORK/glint.toml"
GLINT_CONFIG="$WORK/glint.toml"  # lib.sh passes it as --config (not an environment variable)
start_server || { summary; exit 1; }

ID=""
if check_cmd "openstack image create --file (qcow2, public)" \
  osc image create --container-format bare --disk-format qcow2 --file "$IMG" --public \
  -f json cirros; then
  ID="$(printf '%s' "$OUT" | json_get id)"
fi
[ -n "$ID" ] || { not_ok "image create returned an id" "$OUT"; summary; exit 1; }

check_show() { # check_show LABEL: the image's data fields, after create and after a restart
  local label="$1" show
  if check_cmd "openstack image show ($label)" osc image show -f json "$ID"; then
    show="$OUT"
    check_eq "status active ($label)" active "$(printf '%s' "$show" | json_get status)"
    check_eq "checksum is md5 of the file ($label)" "$IMG_MD5" "$(printf '%s' "$show" | json_get checksum)"
    check_eq "os_hash_algo ($label)" sha512 "$(printf '%s' "$show" | json_get os_hash_algo)"
    check_eq "os_hash_value is sha512 of the file ($label)" "$IMG_SHA512" "$(printf '%s' "$show" | json_get os_hash_value)"
    check_eq "size ($label)" "$IMG_SIZE" "$(printf '%s' "$show" | json_get size)"
    check_eq "virtual_size from the qcow2 header ($label)" 67108864 "$(printf '%s' "$show" | json_get virtual_size)"
    check_eq "visibility ($label)" public "$(printf '%s' "$show" | json_get visibility)"
  fi
}
check_show "after create"

if check_cmd "openstack image list" osc image list -f json; then
  check_eq "openstack image list shows cirros active" "cirros active" "$(printf '%s' "$OUT" | python3 -c '
import json, sys
for row in json.load(sys.stdin):
    if row.get("ID") == sys.argv[1]:
        print(row.get("Name"), row.get("Status"))
' "$ID")"
fi
if check_cmd "glance image-list" glance image-list; then
  if printf '%s' "$OUT" | grep -q "$ID"; then ok "glance image-list shows the image"; else not_ok "glance image-list shows the image" "$OUT"; fi
fi

check_downloads() { # check_downloads LABEL
  local label="$1"
  rm -f "$WORK/out1" "$WORK/out2"
  if check_cmd "openstack image save ($label)" osc image save --file "$WORK/out1" "$ID"; then
    check_cmd "openstack image save bytes identical ($label)" cmp "$IMG" "$WORK/out1" || true
  fi
  if check_cmd "glance image-download ($label)" glance image-download --file "$WORK/out2" "$ID"; then
    check_cmd "glance image-download bytes identical ($label)" cmp "$IMG" "$WORK/out2" || true
  fi
}
check_downloads "after create"

# Metadata through both clients: openstackclient PATCHes extra properties and tags,
# glanceclient builds its patch from the schema (add for new extras, replace for base ones).
check_cmd "openstack image set --property k=v" osc image set --property k=v "$ID" || true
check_cmd "openstack image set --tag t" osc image set --tag t "$ID" || true
check_cmd "glance image-update --property g=h --min-ram 128" \
  glance image-update --property g=h --min-ram 128 "$ID" || true
check_cmd "glance image-tag-update t2" glance image-tag-update "$ID" t2 || true

check_metadata() { # check_metadata LABEL
  local label="$1" show
  if check_cmd "openstack image show metadata ($label)" osc image show -f json "$ID"; then
    show="$OUT"
    check_eq "property k=v ($label)" v "$(printf '%s' "$show" | json_get k)"
    check_eq "property g=h ($label)" h "$(printf '%s' "$show" | json_get g)"
    check_eq "min_ram 128 ($label)" 128 "$(printf '%s' "$show" | json_get min_ram)"
    check_eq "tags t,t2 ($label)" "t,t2" "$(printf '%s' "$show" | tags_of)"
  fi
  if check_cmd "glance image-show ($label)" glance image-show "$ID"; then
    if printf '%s' "$OUT" | grep -Eq '^\|[[:space:]]*k[[:space:]]*\|[[:space:]]*v[[:space:]]*\|'; then
      ok "glance image-show shows k=v ($label)"
    else
      not_ok "glance image-show shows k=v ($label)" "$OUT"
    fi
  fi
}
check_metadata "after updates"

# List filters and sorting as the clients send them.
names_of() { python3 -c '
import json, sys
print(",".join(r.get("Name") or "" for r in json.load(sys.stdin)))'; }
if check_cmd "openstack image list --property k=v" osc image list --property k=v -f json; then
  check_eq "property filter finds cirros" cirros "$(printf '%s' "$OUT" | names_of)"
fi
if check_cmd "openstack image list --tag t2" osc image list --tag t2 -f json; then
  check_eq "tag filter finds cirros" cirros "$(printf '%s' "$OUT" | names_of)"
fi
if check_cmd "openstack image list --property k=other" osc image list --property k=other -f json; then
  check_eq "non-matching property filter finds nothing" "" "$(printf '%s' "$OUT" | names_of)"
fi
if check_cmd "glance image-list --tag t --sort-key name --sort-dir asc" \
  glance image-list --tag t --sort-key name --sort-dir asc; then
  if printf '%s' "$OUT" | grep -q "$ID"; then ok "glance tag filter finds the image"; else not_ok "glance tag filter finds the image" "$OUT"; fi
fi

check_cmd "openstack image set --deactivate" osc image set --deactivate "$ID" || true
check_eq "status deactivated" deactivated "$(osc image show -f json "$ID" 2>&1 | json_get status 2>/dev/null || true)"
check_cmd "openstack image set --activate" osc image set --activate "$ID" || true
check_eq "status active again" active "$(osc image show -f json "$ID" 2>&1 | json_get status 2>/dev/null || true)"

# glanceclient's own upload path: chunked body plus x-openstack-image-size.
GID=""
if check_cmd "glance image-create --file (raw, chunked upload)" \
  glance image-create --name viaglance --disk-format raw --container-format bare \
  --file "$WORK/small.raw"; then
  GID="$(printf '%s' "$OUT" | awk -F'|' '$2 ~ /^[[:space:]]*id[[:space:]]*$/ {gsub(/[[:space:]]/, "", $3); print $3}')"
fi
if [ -n "$GID" ]; then
  check_eq "glance-created image active with md5 checksum" "active $SMALL_MD5" \
    "$(osc image show -f json "$GID" 2>&1 | python3 -c '
import json, sys
d = json.load(sys.stdin)
print(d.get("status"), d.get("checksum"))' 2>/dev/null || true)"
else
  not_ok "glance image-create printed an id" "$OUT"
fi

# Sharing (API 2.1): the glance-created image is `shared` (the default), so it takes members.
# (`openstack image add project` resolves the project through Keystone, so glanceclient adds.)
if [ -n "$GID" ]; then
  check_cmd "glance member-create" glance member-create "$GID" project-b || true
  if check_cmd "glance member-list" glance member-list --image-id "$GID"; then
    if printf '%s' "$OUT" | grep -q "project-b.*pending"; then ok "glance member-list shows project-b pending"; else not_ok "glance member-list shows project-b pending" "$OUT"; fi
  fi
  check_cmd "glance member-update accepted" glance member-update "$GID" project-b accepted || true
  if check_cmd "openstack image member list" osc image member list -f json "$GID"; then
    check_eq "member project-b accepted" "project-b accepted" "$(printf '%s' "$OUT" | python3 -c '
import json, sys
print(" ".join(str(r.get("Member ID")) + " " + str(r.get("Status")) for r in json.load(sys.stdin)))')"
  fi
  check_cmd "glance member-delete" glance member-delete "$GID" project-b || true
  check_cmd "glance member-list after removal" glance member-list --image-id "$GID" || true
  if printf '%s' "$OUT" | grep -q "project-b"; then not_ok "project-b removed" "$OUT"; else ok "project-b removed"; fi
fi

# Hidden images (API 2.7): openstackclient finds them by name through `os_hidden=True`.
HID=""
if check_cmd "openstack image create (to hide)" osc image create -f json hushed; then
  HID="$(printf '%s' "$OUT" | json_get id)"
fi
if [ -n "$HID" ] && check_cmd "openstack image set --hidden" osc image set --hidden "$HID"; then
  check_eq "os_hidden true" true "$(osc image show -f json "$HID" 2>&1 | json_get os_hidden 2>/dev/null || true)"
fi
if check_cmd "openstack image list --hidden" osc image list --hidden -f json; then
  check_eq "hidden image listed only with --hidden" "hushed" "$(printf '%s' "$OUT" | python3 -c '
import json, sys
print(",".join(sorted(r.get("Name") or "" for r in json.load(sys.stdin))))')"
fi
if check_cmd "openstack image show of a hidden image by name" osc image show -f json hushed; then
  check_eq "found the hidden image by name" "$HID" "$(printf '%s' "$OUT" | json_get id)"
fi

# Restart on the same data directory: a new port, everything still there.
OLD_URL="$URL"
stop_server
start_server || { summary; exit 1; }
if [ "$URL" != "$OLD_URL" ]; then ok "restart got a new port"; else not_ok "restart got a new port" "$URL"; fi
check_show "after restart"
check_metadata "after restart"
check_downloads "after restart"

# The cache commands (API 2.14+): glanceclient looks for v2.14 in /versions first.
cached() { # cached ID: whether `glance cache-list` shows ID as cached
  # (Read whole: with pipefail, `| grep -q` can fail the pipeline by closing it early.)
  local listed
  listed="$(glance cache-list 2>/dev/null || true)"
  [[ "$listed" == *"$1 | cached"* ]]
}
check_cmd "glance cache-clear" glance cache-clear || true
check_cmd "glance cache-queue" glance cache-queue "$ID" || true
for _ in $(seq 1 100); do cached "$ID" && break; sleep 0.1; done
if cached "$ID"; then ok "glance cache-list shows the prefetched image"; else not_ok "glance cache-list shows the prefetched image" "$(glance cache-list 2>&1)"; fi
check_downloads "from the cache"
check_cmd "glance cache-delete" glance cache-delete "$ID" || true
if cached "$ID"; then not_ok "glance cache-delete removed it" "$(glance cache-list 2>&1)"; else ok "glance cache-delete removed it"; fi
check_cmd "glance cache-clear --target queue" glance cache-clear --target queue || true

# Deletion through both clients.
check_cmd "openstack image delete" osc image delete "$ID" || true
check_fails "openstack image show fails after delete" osc image show "$ID"
if [ -n "$GID" ]; then
  check_cmd "glance image-delete" glance image-delete "$GID" || true
  check_fails "glance image-show fails after delete" glance image-show "$GID"
fi
if [ -n "$HID" ]; then
  check_cmd "openstack image delete (hidden image)" osc image delete "$HID" || true
fi
if check_cmd "openstack image list after deletes" osc image list -f json; then
  check_eq "no images left" "[]" "$(printf '%s' "$OUT" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)))')"
fi

stop_server

summary
[ "$FAIL" -eq 0 ]
