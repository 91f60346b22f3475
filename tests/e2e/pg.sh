#!/usr/bin/env bash
# Runs a command against a private PostgreSQL cluster: installs Debian's postgresql when
# missing, starts a cluster on a free loopback port in a temporary folder
# (tests/e2e/pg_lib.sh), runs the command with GLINT_PG_TEST_URL (password inside),
# GLINT_PG_TEST_PASSWORD and GLINT_REQUIRE_PG=1 set, then stops the server by PID and removes
# the folder, whatever the command's outcome.
#
# Usage: tests/e2e/pg.sh [COMMAND...]
#   default COMMAND: cargo test -p meta --test pg_backend --test pg_model --test pg_metadefs_model
# Exit status: the command's (1 if the cluster does not come up).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
cd "$ROOT"
# shellcheck source=tests/e2e/pg_lib.sh
source "$HERE/pg_lib.sh"

pg_install
WORK="$(mktemp -d "${TMPDIR:-/tmp}/glint-pg.XXXXXX")"
chmod 755 "$WORK"
cleanup() {
  pg_stop
  rm -rf "$WORK"
}
trap cleanup EXIT

pg_start "$WORK/pg" || exit 1
echo "pg: bring-up took ${PG_BRINGUP_SECONDS}s"

export GLINT_PG_TEST_URL="$PG_URL"
export GLINT_PG_TEST_PASSWORD="$PG_PASSWORD"
# The PostgreSQL tests fail, rather than pass without running, if they do not see the URL.
export GLINT_REQUIRE_PG=1

if [ $# -eq 0 ]; then
  set -- cargo test -p meta --test pg_backend --test pg_model --test pg_metadefs_model
fi
status=0
"$@" || status=$?
if [ "$status" -ne 0 ]; then
  echo "--- postgresql log (last lines) ---" >&2
  tail -n 30 "$WORK/pg/server.log" >&2 2>/dev/null || true
fi
exit "$status"
