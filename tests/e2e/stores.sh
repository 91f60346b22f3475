#!/usr/bin/env bash
# End-to-end test of glint's stores with the real clients and a real Ceph RGW: glint runs with
# a file store (`local`, the default) and an S3 store (`ceph`) on an RGW this script starts
# (tests/e2e/rgw_lib.sh) and stops. The `glance` and `openstack` CLIs upload to each store,
# download identical bytes, list the stores, add a second location and delete from one store;
# deleting the images leaves the bucket empty. Then the faults: radosgw stopped in the middle
# of an upload (a clear 5xx, the image back to queued, glint still serving, and once RGW is back
# no incomplete multipart upload left), and an object missing from the bucket (the download
# fails, it is never short).
#
# Usage: tests/e2e/stores.sh          (VENV, GLINT_BIN as for cli.sh; see tests/README.md)
# Prints one line per check and ends with "N passed, M failed" (exit 1 if M > 0).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/glint-stores-e2e.XXXXXX")"
# shellcheck source=tests/e2e/lib.sh
source "$HERE/lib.sh"
# shellcheck source=tests/e2e/rgw_lib.sh
source "$HERE/rgw_lib.sh"
extra_cleanup() { rgw_stop; }

# boto3 looks into the bucket behind glint's back.
if ! "$VENV/bin/python" -c 'import boto3' 2>/dev/null; then
  echo "installing boto3 into $VENV" >&2
  "$VENV/bin/pip" install --quiet boto3 >&2
fi

rgw_install
rgw_start "$WORK/ceph" || { not_ok "Ceph RGW comes up"; summary; exit 1; }
ok "Ceph RGW up at $RGW_ENDPOINT in ${RGW_BRINGUP_SECONDS}s"
BUCKET="glint-e2e-$RANDOM$RANDOM"

# s3 WHAT [KEY]: asks the bucket directly (boto3): `objects` lists keys, `uploads` lists
# incomplete multipart uploads, `put KEY FILE` stores a file, `delete KEY` removes one.
s3() {
  RGW_ENDPOINT="$RGW_ENDPOINT" RGW_ACCESS_KEY="$RGW_ACCESS_KEY" RGW_SECRET_KEY="$RGW_SECRET_KEY" \
    BUCKET="$BUCKET" "$VENV/bin/python" - "$@" <<'PY'
import os, sys
import boto3
from botocore.config import Config
s3 = boto3.client("s3", endpoint_url=os.environ["RGW_ENDPOINT"],
                  aws_access_key_id=os.environ["RGW_ACCESS_KEY"],
                  aws_secret_access_key=os.environ["RGW_SECRET_KEY"], region_name="us-east-1",
                  config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
bucket = os.environ["BUCKET"]
what = sys.argv[1]
if what == "objects":
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    print(" ".join(sorted(keys)))
elif what == "uploads":
    print(len(s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])))
elif what == "put":
    s3.upload_file(sys.argv[3], bucket, sys.argv[2])
elif what == "delete":
    s3.delete_object(Bucket=bucket, Key=sys.argv[2])
PY
}

cat >"$WORK/glint.toml" <<EOF
show_multiple_locations = true

[stores]
default = "local"

[stores.local]
type = "file"
description = "Local disk"

[stores.ceph]
type = "s3"
description = "Ceph RGW"
s3_store_host = "$RGW_ENDPOINT"
s3_store_access_key = "$RGW_ACCESS_KEY"
s3_store_secret_key_file = "$WORK/s3-secret"
s3_store_bucket = "$BUCKET"
s3_store_create_bucket_on_put = true
s3_store_large_object_size = 8
s3_store_large_object_chunk_size = 5
s3_store_thread_pools = 2
EOF
printf '%s\n' "$RGW_SECRET_KEY" >"$WORK/s3-secret"
GLINT_CONFIG="$WORK/glint.toml"

osc() {
  HOME="$WORK/home" "$VENV/bin/openstack" --os-auth-type none --os-endpoint "$URL" "$@"
}
glance() {
  HOME="$WORK/home" "$VENV/bin/glance" --os-image-url "$URL" --os-auth-token fake "$@"
}

# --- test data ------------------------------------------------------------------------------
head -c $((20 * 1024 * 1024 + 4321)) /dev/urandom >"$WORK/big.raw"   # multipart in S3
head -c 3000000 /dev/urandom >"$WORK/small.raw"                     # one PutObject
BIG_MD5="$(md5sum "$WORK/big.raw" | cut -d' ' -f1)"

start_server || { summary; exit 1; }

# --- the stores, as the clients see them ----------------------------------------------------
if check_cmd "glance stores-info" glance stores-info; then
  if printf '%s' "$OUT" | grep -q '"id": "ceph"' && printf '%s' "$OUT" | grep -q '"default": "true"'; then
    ok "stores-info lists ceph and a default"
  else
    not_ok "stores-info lists ceph and a default" "$OUT"
  fi
fi
if check_cmd "glance stores-info --detail" glance stores-info --detail; then
  if printf '%s' "$OUT" | grep -q '"type": "s3"' && printf '%s' "$OUT" | grep -q 's3_store_large_object_size'; then
    ok "stores-info --detail shows the s3 store's type and properties"
  else
    not_ok "stores-info --detail shows the s3 store's type and properties" "$OUT"
  fi
  if printf '%s' "$OUT" | grep -q "$RGW_SECRET_KEY"; then not_ok "no secret in stores-info"; else ok "no secret in stores-info"; fi
fi

# --- upload to each store, download identical bytes -----------------------------------------
S3_ID=""
if check_cmd "glance image-create --store ceph (20 MiB: multipart)" \
  glance image-create --store ceph --file "$WORK/big.raw" --disk-format raw \
  --container-format bare --name on-ceph; then
  S3_ID="$(printf '%s' "$OUT" | awk -F'|' '$2 ~ /^ *id *$/ {gsub(/ /, "", $3); print $3}')"
fi
[ -n "$S3_ID" ] || { not_ok "image-create printed an id" "$OUT"; summary; exit 1; }
SHOW="$(osc image show -f json "$S3_ID")"
check_eq "the S3 image is active" active "$(printf '%s' "$SHOW" | json_get status)"
check_eq "its stores field is ceph" ceph "$(printf '%s' "$SHOW" | json_get stores)"
check_eq "its checksum is the file's md5" "$BIG_MD5" "$(printf '%s' "$SHOW" | json_get checksum)"
check_eq "the object is in the bucket" "$S3_ID" "$(s3 objects)"
check_eq "no incomplete multipart upload" 0 "$(s3 uploads)"
if check_cmd "glance image-download (from ceph)" glance image-download --file "$WORK/out1" "$S3_ID"; then
  check_cmd "glance image-download bytes identical" cmp "$WORK/big.raw" "$WORK/out1" || true
fi
if check_cmd "openstack image save (from ceph)" osc image save --file "$WORK/out2" "$S3_ID"; then
  check_cmd "openstack image save bytes identical" cmp "$WORK/big.raw" "$WORK/out2" || true
fi

LOCAL_ID=""
if check_cmd "openstack image create --file (default store)" \
  osc image create --container-format bare --disk-format raw --file "$WORK/small.raw" -f json on-local; then
  LOCAL_ID="$(printf '%s' "$OUT" | json_get id)"
fi
check_eq "the default store took it" local "$(osc image show -f json "$LOCAL_ID" | json_get stores)"

# --- a second location, then delete from one store ------------------------------------------
# The same bytes put into the bucket by another client, added as a location of the local
# image (the legacy location API, show_multiple_locations).
s3 put "$LOCAL_ID" "$WORK/small.raw"
S3_URL="s3://${RGW_ENDPOINT#http://}/$BUCKET/$LOCAL_ID"
check_cmd "glance location-add (a copy in ceph)" \
  glance location-add --url "$S3_URL" --metadata '{"store": "ceph"}' "$LOCAL_ID" || true
check_eq "the image is in both stores" "local,ceph" "$(osc image show -f json "$LOCAL_ID" | json_get stores)"
check_cmd "glance stores-delete --store local" glance stores-delete --store local "$LOCAL_ID" || true
check_eq "only ceph is left" ceph "$(osc image show -f json "$LOCAL_ID" | json_get stores)"
if check_cmd "glance image-download (now from ceph)" glance image-download --file "$WORK/out3" "$LOCAL_ID"; then
  check_cmd "bytes identical after the store delete" cmp "$WORK/small.raw" "$WORK/out3" || true
fi
check_fails "glance stores-delete of the last store is refused" \
  glance stores-delete --store ceph "$LOCAL_ID"

# --- deleting the images empties the bucket -------------------------------------------------
check_cmd "openstack image delete (both)" osc image delete "$S3_ID" "$LOCAL_ID" || true
check_eq "no object left in the bucket" "" "$(s3 objects)"

# --- fault: radosgw stops in the middle of an upload ----------------------------------------
# (Created over the API: the CLIs read stdin as image data when it is not a terminal.)
FAULT_ID="$(curl -s -X POST -H 'Content-Type: application/json' \
  -d '{"name": "slow", "disk_format": "raw", "container_format": "bare"}' \
  "$URL/v2/images" | json_get id)"
head -c $((200 * 1024 * 1024)) /dev/urandom >"$WORK/slow.raw"
# 200 MiB at 20 MiB/s: RGW goes away about half way.
curl -s -o "$WORK/fault.body" -w '%{http_code}' --limit-rate 20M -X PUT \
  -H 'Content-Type: application/octet-stream' -H 'X-Image-Meta-Store: ceph' \
  --data-binary @"$WORK/slow.raw" "$URL/v2/images/$FAULT_ID/file" >"$WORK/fault.code" &
CURL_PID=$!
deadline=$((SECONDS + 60))
while [ "$(s3 uploads 2>/dev/null || echo 0)" = 0 ] && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
check_eq "the upload is under way as a multipart upload" 1 "$(s3 uploads)"
rgw_gateway_stop
wait "$CURL_PID" || true
CODE="$(cat "$WORK/fault.code")"
if [[ "$CODE" == 5* ]]; then ok "the upload fails with a clear 5xx ($CODE)"; else not_ok "the upload fails with a clear 5xx" "status $CODE: $(head -c 300 "$WORK/fault.body")"; fi
if grep -q "ceph" "$WORK/fault.body"; then ok "the error names the store"; else not_ok "the error names the store" "$(head -c 300 "$WORK/fault.body")"; fi
check_eq "the image is back in queued" queued "$(osc image show -f json "$FAULT_ID" | json_get status)"
check_cmd "glint keeps serving (image list)" osc image list || true
HEALTH="$(curl -s -w ' %{http_code}' "$URL/healthcheck")"
check_eq "/healthcheck is 503 naming the store" "UNAVAILABLE: store ceph 503" "$HEALTH"
rgw_gateway_start || not_ok "radosgw starts again"
deadline=$((SECONDS + 150))
while [ "$(s3 uploads 2>/dev/null || echo x)" != 0 ] && [ $SECONDS -lt $deadline ]; do sleep 1; done
check_eq "once RGW is back, no incomplete multipart upload is left" 0 "$(s3 uploads)"
check_eq "/healthcheck is 200 again" "OK 200" "$(curl -s -w ' %{http_code}' "$URL/healthcheck")"
# The same upload now goes through.
check_cmd "the upload succeeds once RGW is back" \
  glance image-upload --store ceph --file "$WORK/small.raw" "$FAULT_ID" || true
check_eq "active in ceph" "active ceph" "$(osc image show -f json "$FAULT_ID" | python3 -c '
import json, sys; d = json.load(sys.stdin); print(d["status"], d.get("stores") or d["properties"].get("stores"))')"

# --- fault: the object disappears from the bucket -------------------------------------------
s3 delete "$FAULT_ID"
check_fails "downloading an image whose object is gone fails" \
  glance image-download --file "$WORK/out4" "$FAULT_ID"
CODE="$(curl -s -o /dev/null -w '%{http_code}' "$URL/v2/images/$FAULT_ID/file")"
check_eq "the download is a 503, not a short 200" 503 "$CODE"

stop_server
if grep -q "$RGW_SECRET_KEY" "$WORK/glint.log"; then not_ok "the secret never reaches the log"; else ok "the secret never reaches the log"; fi
summary
[ "$FAIL" -eq 0 ]
