#!/usr/bin/env bash
# What Keystone auth costs glint once tokens are cached: requests/s of an image list (25 of
# 100 public images) with `[auth] strategy = "keystone"` and a warm token cache, against the
# same server with no auth, alternating, ROUNDS rounds (medians), with wrk on loopback.
# Also counts what Keystone was asked during the keystone rounds (from its access log).
#
# Usage: scripts/bench_auth.sh [ROUNDS] [SECONDS]     (defaults 3 and 10)
# AS=admin lists as Keystone's admin (what noauth's caller is: an admin), so that only the
# auth layer differs; the default, AS=alice (member of proj-a), adds a member's visibility
# rules (own, public, shared-with-me) to the keystone side.
# Needs: wrk (apt-get install wrk), a release glint (GLINT_BIN, else target/release/glint),
# and the venv of tests/e2e (Keystone is installed there on first use).
set -euo pipefail

ROUNDS="${1:-3}"
DURATION="${2:-10}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")/../tests/e2e" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/glint-bench-auth.XXXXXX")"
# shellcheck source=tests/e2e/lib.sh
source "$HERE/lib.sh"
# shellcheck source=tests/e2e/keystone_lib.sh
source "$HERE/keystone_lib.sh"
BIN="${GLINT_BIN:-$ROOT/target/release/glint}"
[ -x "$BIN" ] || { echo "build the release binary first: cargo build --release -p gateway" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is required (apt-get install wrk)" >&2; exit 1; }

start_keystone >/dev/null || { echo "keystone did not start" >&2; exit 1; }
NOAUTH_CONFIG="$WORK/noauth.toml"
KEYSTONE_CONFIG="$WORK/keystone.toml"
: >"$NOAUTH_CONFIG"
cat >"$KEYSTONE_CONFIG" <<EOF
[auth]
strategy = "keystone"
[keystone_authtoken]
auth_url = "$KS_URL"
username = "glance"
password = "$PASSWORD"
project_name = "service"
EOF

# 100 public images, created with no auth, listed by both.
GLINT_CONFIG="$NOAUTH_CONFIG"
start_server >/dev/null
"$VENV/bin/python" "$HERE/keystone_setup.py" "$KS_URL" "$ADMIN_PASSWORD" "$URL" "$PASSWORD" >/dev/null
for i in $(seq 1 100); do
  curl -fsS -o /dev/null -H 'Content-Type: application/json' \
    -d "{\"name\": \"img-$i\", \"visibility\": \"public\", \"disk_format\": \"raw\", \"container_format\": \"bare\"}" \
    "$URL/v2/images"
done
stop_server >/dev/null

AS="${AS:-alice}"
if [ "$AS" = admin ]; then AS_PASSWORD="$ADMIN_PASSWORD" AS_PROJECT=admin; else AS_PASSWORD="$PASSWORD" AS_PROJECT=proj-a; fi
TOKEN="$(HOME="$WORK/home" OS_AUTH_URL="$KS_URL" OS_IDENTITY_API_VERSION=3 OS_USERNAME="$AS" \
  OS_PASSWORD="$AS_PASSWORD" OS_PROJECT_NAME="$AS_PROJECT" OS_USER_DOMAIN_NAME=Default \
  OS_PROJECT_DOMAIN_NAME=Default "$VENV/bin/openstack" token issue -f value -c id)"

# run MODE: one wrk run against a fresh server in MODE; prints "MODE REQ_PER_S P99_MS".
run() {
  local mode="$1" header=()
  if [ "$mode" = keystone ]; then
    GLINT_CONFIG="$KEYSTONE_CONFIG"
    header=(-H "X-Auth-Token: $TOKEN")
  else
    GLINT_CONFIG="$NOAUTH_CONFIG"
  fi
  start_server >/dev/null
  local before
  before="$(grep -c '"GET /v3/auth/tokens' "$WORK/keystone-access.log" || true)"
  # Warm-up: the first request validates the token (keystone mode).
  curl -fsS -o /dev/null "${header[@]}" "$URL/v2/images?limit=25"
  local out
  out="$(wrk -t2 -c16 -d"${DURATION}s" --latency "${header[@]}" "$URL/v2/images?limit=25")"
  local after
  after="$(grep -c '"GET /v3/auth/tokens' "$WORK/keystone-access.log" || true)"
  stop_server >/dev/null
  local rps p99 non2xx
  rps="$(printf '%s\n' "$out" | awk '/^Requests\/sec:/ {print $2}')"
  p99="$(printf '%s\n' "$out" | awk '$1 == "99%" {print $2}')"
  non2xx="$(printf '%s\n' "$out" | awk '/Non-2xx/ {print $NF}')"
  echo "$mode rps=$rps p99=$p99 non2xx=${non2xx:-0} keystone_validations=$((after - before))"
}

echo "# AS=$AS scripts/bench_auth.sh $ROUNDS $DURATION — $(date -u +%FT%TZ), $(nproc) cores, $("$BIN" --version 2>/dev/null || echo glint)"
RESULTS="$WORK/results"
for round in $(seq 1 "$ROUNDS"); do
  if [ $((round % 2)) -eq 1 ]; then order="noauth keystone"; else order="keystone noauth"; fi
  for mode in $order; do
    line="$(run "$mode")"
    echo "round $round: $line"
    echo "$line" >>"$RESULTS"
  done
done
python3 - "$RESULTS" <<'EOF'
import re, statistics, sys
rps = {}
for line in open(sys.argv[1]):
    mode = line.split()[0]
    rps.setdefault(mode, []).append(float(re.search(r"rps=([\d.]+)", line).group(1)))
med = {m: statistics.median(v) for m, v in rps.items()}
for m, v in med.items():
    print(f"median {m}: {v:.0f} req/s")
print(f"keystone/noauth: {med['keystone'] / med['noauth']:.3f}")
EOF
