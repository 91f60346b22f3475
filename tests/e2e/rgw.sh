#!/usr/bin/env bash
# Runs a command against a real single-node Ceph RGW: installs the Debian packages when
# missing, starts RGW on free loopback ports in a temporary folder (tests/e2e/rgw_lib.sh), runs
# the command with the endpoint and credentials in GLINT_S3_TEST_*, then stops RGW by PID and
# removes the folder, whatever the command's outcome.
#
# Usage: tests/e2e/rgw.sh [COMMAND...]
#   default COMMAND: cargo test -p gateway --test s3_rgw
# Exit status: the command's (1 if RGW does not come up).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
# shellcheck source=tests/e2e/rgw_lib.sh
source "$HERE/rgw_lib.sh"

rgw_install
WORK="$(mktemp -d "${TMPDIR:-/tmp}/glint-rgw.XXXXXX")"
cleanup() {
  rgw_stop
  rm -rf "$WORK"
}
trap cleanup EXIT

rgw_start "$WORK/ceph" || exit 1
echo "rgw: bring-up took ${RGW_BRINGUP_SECONDS}s"

export GLINT_S3_TEST_ENDPOINT="$RGW_ENDPOINT"
export GLINT_S3_TEST_ACCESS_KEY="$RGW_ACCESS_KEY"
export GLINT_S3_TEST_SECRET_KEY="$RGW_SECRET_KEY"
export GLINT_S3_TEST_VHOST_DOMAIN="$RGW_DNS_NAME"
# The S3 tests fail, rather than pass without running, if they do not see the endpoint.
export GLINT_REQUIRE_S3=1

if [ $# -eq 0 ]; then
  set -- cargo test -p gateway --test s3_rgw
fi
status=0
"$@" || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- radosgw log (last lines) ---" >&2
  tail -n 30 "$WORK/ceph/log/ceph-client.rgw.a.log" >&2 2>/dev/null || true
fi
exit "$status"
