#!/usr/bin/env bash
# glint reads glance-api.conf as it is (issue 17): the file that ships in Glance's PyPI package
# (downloaded with pip, read only: no Glance code runs) and the walkthrough's
# (gateway/tests/fixtures/glance-api.walkthrough.conf).
#
# - glint's catalog of Glance's options holds every option of the shipped file
#   (scripts/glance_options.py --check);
# - `glint check-config --glance-config` accepts the shipped file as it is (every option
#   commented out), and the same file with every option set to the default it shows: every
#   option then gets a verdict (none is "not a Glance option"), and where glint maps an option,
#   Glance's default gives glint's own default (the effective configuration is the same as
#   with no file at all);
# - the walkthrough's file: keystone auth and its service user, the disk formats, the
#   password never shown.
#
# Usage: tests/e2e/glance_config.sh   (VENV, GLINT_BIN as tests/e2e/cli.sh; GLANCE_VERSION,
#        default the version glance_options.txt was written from)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/glint-glance-config.XXXXXX")"
# shellcheck source=tests/e2e/lib.sh
source "$HERE/lib.sh"

CATALOG="$ROOT/gateway/src/config/glance_options.txt"
VERSION="${GLANCE_VERSION:-$(sed -n "1s/^# Glance \([^']*\)'s options.*/\1/p" "$CATALOG")}"
check_cmd "pip download glance==$VERSION (the wheel only)" "$VENV/bin/pip" download --quiet \
  --no-deps --only-binary :all: -d "$WORK/pypi" "glance==$VERSION" || { summary; exit 1; }
SHIPPED="$WORK/glance-api.conf"
python3 - "$WORK/pypi" "$SHIPPED" <<'EOF'
import glob, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/glance-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.endswith("/etc/glance/glance-api.conf"))
    open(sys.argv[2], "wb").write(z.read(name))
EOF
check_cmd "the shipped glance-api.conf is a sample: every option commented out" \
  test "$(grep -cE '^#[a-z_]+ = ' "$SHIPPED")" -gt 400 || true
check_cmd "glint's catalog holds every option of the shipped file" \
  python3 "$ROOT/scripts/glance_options.py" --check "$CATALOG" "$SHIPPED" || true

check_cmd "check-config reads the shipped file as it is" \
  "$BIN" check-config --glance-config "$SHIPPED" || true

# Every option set to the default the sample shows (`<None>`: no default, left out). The
# sample's flavor is keystone (a sample_default), which needs a Keystone: the TOML file, read
# over the INI file, says noauth. Its gpt_safety_checks_nonfatal shows `mbr`, which is not the
# default of the code that ships with it (`[]`): that one is left out.
UNCOMMENTED="$WORK/uncommented.conf"
python3 - "$SHIPPED" "$UNCOMMENTED" <<'EOF'
import re, sys
out = []
for line in open(sys.argv[1], encoding="utf-8"):
    m = re.match(r"^#([A-Za-z_][A-Za-z0-9_.\-]*) =(.*)$", line)
    if m and "<None>" not in m.group(2) and m.group(1) != "gpt_safety_checks_nonfatal":
        line = f"{m.group(1)} ={m.group(2)}\n"
    out.append(line)
open(sys.argv[2], "w", encoding="utf-8").write("".join(out))
EOF
printf '[auth]\nstrategy = "noauth"\n' >"$WORK/noauth.toml"
set_options="$(grep -cE '^[A-Za-z_][A-Za-z0-9_.\-]* =' "$UNCOMMENTED")"
if check_cmd "check-config reads the sample with all its $set_options defaults set" \
  "$BIN" check-config --glance-config "$UNCOMMENTED" --config "$WORK/noauth.toml"; then
  EFFECTIVE="$OUT"
  # Each option set once per section; the report has one line per option.
  check_eq "every option gets one verdict" "$set_options" \
    "$(printf '%s\n' "$EFFECTIVE" | grep -cE '^#   \[' || true)"
  check_eq "no option is unknown to glint's catalog" "" \
    "$(printf '%s\n' "$EFFECTIVE" | grep 'not a Glance option' || true)"
  mapped="$(printf '%s\n' "$EFFECTIVE" | grep -c 'mapped to' || true)"
  check_cmd "options glint implements are mapped ($mapped)" test "$mapped" -ge 15 || true
  check_cmd "check-config with no file" "$BIN" check-config --config "$WORK/noauth.toml" || true
  DEFAULTS="$OUT"
  # Glance's defaults are glint's: the same effective settings (the [keystone_authtoken]
  # table, which exists only when given, aside; and the stores, checked below: Glance's
  # default folder is /var/lib/glance/images, glint's is under its data_dir).
  strip() {
    sed -e '/^#/d' -e '/^\[keystone_authtoken\]/,/^$/d' -e '/^\[stores[].]/,/^$/d' -e '/^$/d'
  }
  check_eq "Glance's defaults give glint's defaults" "$(printf '%s\n' "$DEFAULTS" | strip)" \
    "$(printf '%s\n' "$EFFECTIVE" | strip)"
  stores_of() { sed -n '/^\[stores[].]/,/^$/p' | sed '/^$/d'; }
  check_eq "Glance's default stores: file (its folder) and http, single-store mode" \
    "$(printf '[stores]\ndefault = "file"\nmulti_store = false\n[stores.file]\ntype = "file"
filesystem_store_datadir = "/var/lib/glance/images"\nfilesystem_store_chunk_size = 65536
[stores.http]\ntype = "http"')" "$(printf '%s\n' "$EFFECTIVE" | stores_of)"
  check_eq "and no store table without a glance-api.conf" "[stores]" \
    "$(printf '%s\n' "$DEFAULTS" | stores_of)"
fi

# Multi-store: one section per store of enabled_backends, the S3 secret never shown.
cat >"$WORK/multi.conf" <<'CONF'
[DEFAULT]
enabled_backends = fast:file, cold:s3, web:http
[glance_store]
default_backend = fast
[fast]
filesystem_store_datadir = /srv/glance/fast
store_description = Local disks
[cold]
s3_store_host = http://127.0.0.1:7480
s3_store_access_key = AKEXAMPLE
s3_store_secret_key = s3-SECRET-never-shown
s3_store_bucket = glance
s3_store_large_object_size = 50
[web]
https_insecure = false
CONF
if check_cmd "check-config reads a multi-store glance-api.conf (file, s3, http)" \
  "$BIN" check-config --glance-config "$WORK/multi.conf"; then
  MULTI="$OUT"
  check_cmd "each store's options are mapped" grep -q \
    '\[cold\] s3_store_secret_key (line [0-9]*): mapped to `stores.cold.s3_store_secret_key`' \
    <<<"$MULTI" || true
  check_cmd "the default backend" grep -qx 'default = "fast"' <<<"$MULTI" || true
  check_cmd "the S3 secret is shown as ***" grep -qx 's3_store_secret_key = "\*\*\*"' \
    <<<"$MULTI" || true
  check_eq "the S3 secret is never shown" "" "$(grep s3-SECRET <<<"$MULTI" || true)"
fi

WALKTHROUGH="$ROOT/gateway/tests/fixtures/glance-api.walkthrough.conf"
if check_cmd "check-config reads the walkthrough's glance-api.conf" \
  "$BIN" check-config --glance-config "$WALKTHROUGH"; then
  SHOWN="$OUT"
  check_eq "keystone auth from [paste_deploy] flavor" 'strategy = "keystone"' \
    "$(printf '%s\n' "$SHOWN" | grep -x 'strategy = "keystone"' || true)"
  check_eq "the service user" 'username = "glance"' \
    "$(printf '%s\n' "$SHOWN" | grep -x 'username = "glance"' || true)"
  check_eq "the password is not shown" "" "$(printf '%s\n' "$SHOWN" | grep GLANCE_PASS || true)"
  check_cmd "the walkthrough's disk formats" grep -q '"root-tar"' <<<"$SHOWN" || true
  check_cmd "[oslo_messaging_rabbit] is ignored (harmless)" \
    grep -q 'rabbit_ha_queues (line [0-9]*): ignored (harmless)' <<<"$SHOWN" || true
  check_cmd "[glance_store] stores is mapped" \
    grep -q '\[glance_store\] stores (line [0-9]*): mapped to `stores`' <<<"$SHOWN" || true
  check_cmd "Glance's image folder is glint's file store" \
    grep -qx 'filesystem_store_datadir = "/var/lib/glance/images/"' <<<"$SHOWN" || true
fi
# A bad value stops start-up, naming the option and its line.
printf '[DEFAULT]\nimage_size_cap = lots\n' >"$WORK/bad.conf"
check_fails "a bad value is refused" "$BIN" check-config --glance-config "$WORK/bad.conf"
check_cmd "naming [DEFAULT] image_size_cap and its line" \
  grep -q 'image_size_cap (.*bad.conf line 2)' <<<"$("$BIN" check-config --glance-config "$WORK/bad.conf" 2>&1 || true)" || true
summary
[ "$FAIL" -eq 0 ]
