#!/usr/bin/env bash
# docs/openapi.yaml against the live server: schemathesis (PyPI) generates requests for every
# operation (examples, coverage and fuzzing phases, a bounded number per operation) and checks
# each answer: no 5xx, the status and content type documented, the body matching its schema.
# The server must still be healthy afterwards and its log free of panics.
#
# Usage: tests/e2e/openapi.sh   (VENV, GLINT_BIN as for cli.sh; OPENAPI_EXAMPLES per operation,
#        default 20; OPENAPI_SEED replays a run). Ends with "N passed, M failed".
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
EXAMPLES="${OPENAPI_EXAMPLES:-20}"
SEED="${OPENAPI_SEED:-$RANDOM$RANDOM}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/glint-openapi.XXXXXX")"
# shellcheck source=tests/e2e/lib.sh
source "$HERE/lib.sh"

if [ ! -x "$VENV/bin/schemathesis" ]; then
  echo "installing schemathesis into $VENV" >&2
  "$VENV/bin/pip" install --quiet schemathesis >&2
fi

# Multi-store (Glance's `enabled_backends`), so that the stores and locations operations answer
# as they do where an operator has several stores, rather than their single-store 404s.
GLINT_CONFIG="$WORK/glint.toml"
# The import routes answer with glance-direct and copy-image enabled; web-download stays off, so
# that the URIs the fuzzer makes up are never resolved or fetched (network only to loopback).
# The legacy import task (POST /v2/tasks) fetches whatever [import_filtering_opts] lets through:
# here only 127.0.0.1 port 1, where nothing listens.
cat >"$GLINT_CONFIG" <<'TOML'
# An image cache, so that the cache operations answer rather than 404.
image_cache_max_size = 67108864
enabled_import_methods = ["glance-direct", "copy-image"]

[import_filtering_opts]
allowed_hosts = ["127.0.0.1"]
allowed_ports = [1]

[stores]
default = "local"

[stores.local]
type = "file"
description = "Local disk"

[stores.backup]
type = "file"

[stores.web]
type = "http"
TOML
start_server

# Something for the operations on one image to find: an active, shared, protected image with
# a member and a tag (protected, so that a generated DELETE does not take it away at once).
api() { curl -sS -H 'accept: application/json' "$@"; }
IMAGE_ID="$(api -X POST -H 'content-type: application/json' "$URL/v2/images" \
  -d '{"name": "openapi", "disk_format": "raw", "container_format": "bare",
       "visibility": "shared", "protected": true, "tags": ["openapi"]}' | json_get id)"
api -X PUT -H 'content-type: application/octet-stream' --data-binary 'openapi bytes' \
  "$URL/v2/images/$IMAGE_ID/file" >/dev/null
api -X POST -H 'content-type: application/json' -d '{"member": "openapi-member"}' \
  "$URL/v2/images/$IMAGE_ID/members" >/dev/null
check_eq "fixture image is active" active "$(api "$URL/v2/images/$IMAGE_ID" | json_get status)"
check_eq "fixture image is in the default store" local \
  "$(api "$URL/v2/images/$IMAGE_ID" | json_get stores)"

# And for the task operations: the fixture copied into the backup store, a task that ends.
api -X POST -H 'content-type: application/json' "$URL/v2/images/$IMAGE_ID/import" \
  -d '{"method": {"name": "copy-image"}, "stores": ["backup"]}' >/dev/null
TASK_ID=""
deadline=$((SECONDS + 30))
while [ $SECONDS -lt $deadline ]; do
  TASK_ID="$(api "$URL/v2/images/$IMAGE_ID/tasks" | python3 -c '
import json, sys
tasks = json.load(sys.stdin)["tasks"]
print(next((t["id"] for t in tasks if t["status"] in ("success", "failure")), ""))')"
  [ -n "$TASK_ID" ] && break
  sleep 0.1
done
check_eq "fixture copy-image task succeeded" success \
  "$(api "$URL/v2/tasks/${TASK_ID:-none}" | json_get status)"

# And for the metadefs operations: a protected public namespace with a property, an object, a
# tag and a resource type association (protected: its deletes answer 403 and leave it there).
NAMESPACE="openapi-ns"
api -X POST -H 'content-type: application/json' "$URL/v2/metadefs/namespaces" \
  -d '{"namespace": "'"$NAMESPACE"'", "visibility": "public", "protected": true,
       "properties": {"openapi_prop": {"title": "Prop", "type": "string"}},
       "objects": [{"name": "openapi-object",
                    "properties": {"size": {"title": "Size", "type": "integer"}}}],
       "tags": [{"name": "openapi-tag"}],
       "resource_type_associations": [{"name": "OS::Glance::Image", "prefix": "openapi_"}]}' \
  >/dev/null
check_eq "fixture namespace exists" "$NAMESPACE" \
  "$(api "$URL/v2/metadefs/namespaces/$NAMESPACE" | json_get namespace)"

cat >"$WORK/schemathesis.toml" <<TOML
[parameters]
image_id = "$IMAGE_ID"
member_id = "openapi-member"
tag = "openapi"
namespace = "$NAMESPACE"
object_name = "openapi-object"
property_name = "openapi_prop"
tag_name = "openapi-tag"
resource_type = "OS::Glance::Image"
store_id = "backup"
task_id = "$TASK_ID"
TOML

echo "schemathesis: $EXAMPLES examples per operation, seed $SEED (OPENAPI_SEED=$SEED replays)"
started=$SECONDS
if (cd "$WORK" && PYTHONPATH="$HERE" SCHEMATHESIS_HOOKS=openapi_hooks \
  "$VENV/bin/schemathesis" --config-file "$WORK/schemathesis.toml" run "$ROOT/docs/openapi.yaml" \
  --url "$URL" --max-examples "$EXAMPLES" --seed "$SEED" --no-color --workers 1 \
  --phases examples,coverage,fuzzing \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --generation-database none >"$WORK/schemathesis.out" 2>&1); then
  ok "schemathesis: every generated request answered as docs/openapi.yaml says ($((SECONDS - started)) s)"
else
  not_ok "schemathesis: every generated request answered as docs/openapi.yaml says" \
    "$(grep -v '^\s*$' "$WORK/schemathesis.out" | tail -n 60)"
fi
grep -E "Operations:|generated|passed|failed|error" "$WORK/schemathesis.out" | sed 's/^/    /' | tail -n 8 || true

check_eq "glint is healthy after the run" 200 \
  "$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthcheck")"
if grep -q "panicked" "$WORK/glint.log"; then
  not_ok "no panic in the server log" "$(grep -m5 -A5 panicked "$WORK/glint.log")"
else
  ok "no panic in the server log"
fi
stop_server
summary
[ "$FAIL" -eq 0 ]
