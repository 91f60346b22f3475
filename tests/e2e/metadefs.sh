#!/usr/bin/env bash
# End-to-end test of the metadata definitions service with the real `glance md-*` commands
# (python-glanceclient, no Keystone) against the built `glint` binary, and `glint metadefs
# load|export` on the definition files that ship inside Glance's own PyPI package
# (`etc/metadefs/*.json` in the wheel; only the files are read, no Glance code runs).
#
# Usage: tests/e2e/metadefs.sh       (VENV, GLINT_BIN optional; as tests/e2e/cli.sh)
# Prints one line per check and ends with exactly "N passed, M failed" (exit 1 if M > 0).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/glint-metadefs-e2e.XXXXXX")"
# shellcheck source=tests/e2e/lib.sh
source "$HERE/lib.sh"

glance() {
  HOME="$WORK/home" "$VENV/bin/glance" --os-image-url "$URL" --os-auth-token fake "$@"
}
md() { "$BIN" metadefs "$@" --data-dir "$DATA"; }
# field NAME: the value of row NAME in glance's two-column table on stdin.
field() { awk -F'|' -v k="$1" '{ gsub(/^ +| +$/, "", $2); gsub(/^ +| +$/, "", $3); if ($2 == k) print $3 }'; }
# column: the first column of glance's list table on stdin, one value a line, sorted.
column() { awk -F'|' 'NR > 3 && NF > 2 { gsub(/^ +| +$/, "", $2); if ($2 != "") print $2 }' | sort; }
# api PATH: GET PATH, JSON normalised.
api() { curl -fsS "$URL$1" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin), sort_keys=True))'; }

# --- Glance's definition files, from its wheel ----------------------------------------------
DEFS="$WORK/glance-metadefs"
mkdir -p "$WORK/wheel" "$DEFS"
if check_cmd "pip download the glance wheel (no dependencies, not installed)" \
  "$VENV/bin/pip" download --quiet --no-deps --only-binary :all: --dest "$WORK/wheel" glance; then
  python3 - "$WORK/wheel" "$DEFS" <<'EOF'
import glob, os, sys, zipfile
wheel = glob.glob(os.path.join(sys.argv[1], "glance-*.whl"))[0]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if "/etc/glance/metadefs/" in name and name.endswith(".json"):
            with open(os.path.join(sys.argv[2], os.path.basename(name)), "wb") as out:
                out.write(z.read(name))
EOF
fi
FILES="$(find "$DEFS" -name '*.json' | wc -l)"
[ "$FILES" -ge 20 ] && ok "the wheel ships $FILES metadef files" || not_ok "the wheel ships metadef files ($FILES)"
EXPECTED_NS="$(python3 -c '
import json, glob, sys
print("\n".join(sorted(json.load(open(f))["namespace"] for f in glob.glob(sys.argv[1] + "/*.json"))))' "$DEFS")"

# --- the md-* commands ----------------------------------------------------------------------
start_server || { summary; exit 1; }

check_cmd "md-namespace-create" glance md-namespace-create OS::Glint::Test \
  --display-name "Glint test" --description "made by the e2e test" --visibility public --protected True || true
check_eq "created protected and public" "True public" \
  "$(printf '%s\n' "$OUT" | field protected) $(printf '%s\n' "$OUT" | field visibility)"
check_cmd "md-namespace-show" glance md-namespace-show OS::Glint::Test || true
check_eq "md-namespace-show: display_name" "Glint test" "$(printf '%s\n' "$OUT" | field display_name)"
check_cmd "md-namespace-update (description)" glance md-namespace-update OS::Glint::Test --description "changed" || true
check_eq "md-namespace-update answers the change" "changed" "$(printf '%s\n' "$OUT" | field description)"
check_fails "md-namespace-create of an existing namespace fails (409)" \
  glance md-namespace-create OS::Glint::Test
check_eq "... saying why" "1" "$(printf '%s\n' "$OUT" | grep -c 'already exists' || true)"

check_cmd "md-property-create" glance md-property-create OS::Glint::Test --name hw_thing \
  --title "Thing" --type string --schema '{"enum": ["a", "b"], "default": "a"}' || true
check_cmd "md-property-update (title)" glance md-property-update OS::Glint::Test hw_thing --title "Thing 2" || true
check_cmd "md-property-show" glance md-property-show OS::Glint::Test hw_thing || true
check_eq "md-property-show: title and enum" 'Thing 2 ["a", "b"]' \
  "$(printf '%s\n' "$OUT" | field title) $(printf '%s\n' "$OUT" | field enum)"
check_fails "md-property-create with an invalid type fails" glance md-property-create \
  OS::Glint::Test --name bad --title Bad --type strng --schema '{}'
check_cmd "md-property-list" glance md-property-list OS::Glint::Test || true
check_eq "md-property-list: only the valid property" "hw_thing" "$(printf '%s\n' "$OUT" | column)"

check_cmd "md-object-create" glance md-object-create OS::Glint::Test --name Thing \
  --schema '{"description": "an object", "required": ["size"], "properties": {"size": {"title": "Size", "type": "integer", "minimum": 1}}}' || true
check_cmd "md-object-update (rename)" glance md-object-update OS::Glint::Test Thing --name Thingy || true
check_cmd "md-object-show" glance md-object-show OS::Glint::Test Thingy || true
check_eq "md-object-show: required" '["size"]' "$(printf '%s\n' "$OUT" | field required)"
check_cmd "md-object-property-show" glance md-object-property-show OS::Glint::Test Thingy size || true
check_eq "md-object-property-show: minimum" "1" "$(printf '%s\n' "$OUT" | field minimum)"
check_cmd "md-object-list" glance md-object-list OS::Glint::Test || true
check_eq "md-object-list: the renamed object" "Thingy" "$(printf '%s\n' "$OUT" | column)"

check_cmd "md-resource-type-associate" glance md-resource-type-associate OS::Glint::Test \
  --name OS::Glance::Image --prefix hw_ --properties-target image || true
check_cmd "md-namespace-resource-type-list" glance md-namespace-resource-type-list OS::Glint::Test || true
check_eq "the association" "OS::Glance::Image" "$(printf '%s\n' "$OUT" | column)"
check_cmd "md-resource-type-list" glance md-resource-type-list || true
check_eq "the resource type" "OS::Glance::Image" "$(printf '%s\n' "$OUT" | column)"
check_cmd "md-namespace-show --resource-type prefixes nothing already prefixed" \
  glance md-namespace-show OS::Glint::Test --resource-type OS::Glance::Image || true
check_eq "... and lists the prefixed property" '["hw_hw_thing"]' "$(printf '%s\n' "$OUT" | field properties)"

check_cmd "md-tag-create-multiple" glance md-tag-create-multiple OS::Glint::Test --names one,two,three || true
check_cmd "md-tag-create" glance md-tag-create OS::Glint::Test --name four || true
check_cmd "md-tag-update (rename)" glance md-tag-update OS::Glint::Test four --name five || true
check_cmd "md-tag-list" glance md-tag-list OS::Glint::Test || true
check_eq "md-tag-list" "$(printf 'five\none\nthree\ntwo')" "$(printf '%s\n' "$OUT" | column)"
check_cmd "md-tag-create-multiple replaces the tags" glance md-tag-create-multiple OS::Glint::Test --names x,y || true
check_cmd "md-tag-show" glance md-tag-show OS::Glint::Test y || true

# A protected namespace: nothing in it can be deleted.
check_fails "md-tag-delete in a protected namespace fails (403)" glance md-tag-delete OS::Glint::Test x
check_eq "... saying why" "1" "$(printf '%s\n' "$OUT" | grep -c 'is protected and cannot be deleted' || true)"
check_fails "md-resource-type-deassociate in a protected namespace fails" \
  glance md-resource-type-deassociate OS::Glint::Test OS::Glance::Image
check_fails "md-namespace-delete of a protected namespace fails" glance md-namespace-delete OS::Glint::Test
check_cmd "md-namespace-update --protected False" glance md-namespace-update OS::Glint::Test --protected False || true
check_cmd "md-tag-delete" glance md-tag-delete OS::Glint::Test x || true
check_cmd "md-namespace-tags-delete" glance md-namespace-tags-delete OS::Glint::Test || true
check_cmd "md-tag-list after deleting all" glance md-tag-list OS::Glint::Test || true
check_eq "no tags left" "" "$(printf '%s\n' "$OUT" | column)"
check_cmd "md-resource-type-deassociate" glance md-resource-type-deassociate OS::Glint::Test OS::Glance::Image || true
check_cmd "md-property-delete" glance md-property-delete OS::Glint::Test hw_thing || true
check_cmd "md-object-delete" glance md-object-delete OS::Glint::Test Thingy || true
check_cmd "md-namespace-delete" glance md-namespace-delete OS::Glint::Test || true
check_fails "md-namespace-show after delete fails (404)" glance md-namespace-show OS::Glint::Test

# --- every Glance definition file, loaded while the server runs -------------------------------
check_cmd "glint metadefs load (Glance's files, through the running server)" md load "$DEFS" || true
check_eq "... every file created" "1" "$(printf '%s\n' "$OUT" | grep -c "$FILES created" || true)"
check_cmd "md-namespace-list" glance md-namespace-list || true
check_eq "md-namespace-list shows every namespace of the files" "$EXPECTED_NS" "$(printf '%s\n' "$OUT" | column)"
check_cmd "md-namespace-list --resource-types OS::Nova::Flavor" glance md-namespace-list --resource-types OS::Nova::Flavor || true
FLAVOR_NS="$(python3 -c '
import json, glob, sys
print("\n".join(sorted(d["namespace"] for d in (json.load(open(f)) for f in glob.glob(sys.argv[1] + "/*.json"))
  if any(a["name"] == "OS::Nova::Flavor" for a in d.get("resource_type_associations", [])))))' "$DEFS")"
check_eq "... the namespaces associated with flavors" "$FLAVOR_NS" "$(printf '%s\n' "$OUT" | column)"
# Each namespace shows the objects and properties its file defines.
MISMATCH=""
while IFS= read -r ns; do
  [ -n "$ns" ] || continue
  shown="$(glance md-namespace-show "$ns" --max-column-width 100000 2>&1)" || { MISMATCH+="$ns: show failed; "; continue; }
  want="$(python3 - "$DEFS" "$ns" <<'EOF'
import glob, json, sys
for f in glob.glob(sys.argv[1] + "/*.json"):
    d = json.load(open(f))
    if d["namespace"] == sys.argv[2]:
        print(json.dumps(sorted(d.get("properties", {}))), json.dumps(sorted(o["name"] for o in d.get("objects", []))))
EOF
)"
  got="$(printf '%s\n' "$shown" | python3 -c '
import json, sys
rows = {}
for line in sys.stdin:
    cells = [c.strip() for c in line.split("|")]
    if len(cells) > 3:
        rows[cells[1]] = cells[2]
props = json.loads(rows.get("properties", "[]"))
objs = json.loads(rows.get("objects", "[]"))
print(json.dumps(sorted(props)), json.dumps(sorted(objs)))')"
  [ "$want" == "$got" ] || MISMATCH+="$ns: want $want got $got; "
done <<<"$EXPECTED_NS"
check_eq "md-namespace-show: each namespace's properties and objects are its file's" "" "$MISMATCH"
check_cmd "md-property-list OS::Compute::Libvirt" glance md-property-list OS::Compute::Libvirt || true
check_eq "... lists hw_boot_menu's definition" "1" "$(printf '%s\n' "$OUT" | grep -c 'boot_menu' || true)"
check_cmd "md-object-list OS::Compute::Quota" glance md-object-list OS::Compute::Quota || true
check_eq "... lists its objects" "1" "$(printf '%s\n' "$OUT" | grep -c 'CPU Limits' || true)"

BEFORE="$(api /v2/metadefs/namespaces?limit=1000)"
check_cmd "glint metadefs load again" md load "$DEFS" || true
check_eq "... changes nothing" "1" "$(printf '%s\n' "$OUT" | grep -c "$FILES unchanged" || true)"
check_eq "... the API answers the same" "$BEFORE" "$(api /v2/metadefs/namespaces?limit=1000)"

# --- export → load into an empty glint → identical API answers --------------------------------
# answers FILE: every metadefs read answer of the API, one normalised JSON document a line.
answers() {
  python3 - "$URL" >"$1" <<'EOF'
import json, sys, urllib.parse, urllib.request
url = sys.argv[1]
def get(path):
    with urllib.request.urlopen(url + path) as response:
        return json.load(response)
def show(doc):
    print(json.dumps(doc, sort_keys=True))
listing = get("/v2/metadefs/namespaces?limit=1000")
show(listing)
show(get("/v2/metadefs/resource_types"))
for ns in listing["namespaces"]:
    path = "/v2/metadefs/namespaces/" + urllib.parse.quote(ns["namespace"], safe=":")
    for sub in ("", "/objects", "/properties", "/tags", "/resource_types"):
        show(get(path + sub))
EOF
}
check_cmd "glint metadefs export (through the running server)" md export "$WORK/export" || true
answers "$WORK/answers.before"
stop_server
DATA="$WORK/empty"
mkdir -p "$DATA"
check_cmd "glint metadefs load of the export into an empty glint (no server)" md load "$WORK/export" || true
start_server || { summary; exit 1; }
answers "$WORK/answers.after"
check_cmd "identical API answers after export → load ($(wc -l <"$WORK/answers.before") documents)" \
  diff "$WORK/answers.before" "$WORK/answers.after" || true

# A bad file writes nothing: an invalid property schema.
cp "$DEFS/compute-watchdog.json" "$WORK/watchdog.json"
mkdir -p "$WORK/broken"
python3 - "$WORK/watchdog.json" "$WORK/broken/broken.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
d["namespace"] = "OS::Glint::Broken"
next(iter(d["properties"].values()))["type"] = "float"
json.dump(d, open(sys.argv[2], "w"))
EOF
check_fails "glint metadefs load of an invalid file fails" md load "$WORK/broken"
check_eq "... naming the file" "1" "$(printf '%s\n' "$OUT" | grep -c 'broken.json' || true)"
check_fails "... and the namespace does not exist" glance md-namespace-show OS::Glint::Broken

stop_server
summary
[ "$FAIL" -eq 0 ]
