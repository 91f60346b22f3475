# Shared by tests/e2e/keystone.sh and scripts/bench_auth.sh: a real Keystone (PyPI `keystone`,
# sqlite, fernet tokens) under gunicorn on a free loopback port, in $WORK/keystone. Sourced
# after lib.sh; stopped by lib.sh's cleanup through `extra_cleanup`.
if [ ! -x "$VENV/bin/keystone-manage" ] || [ ! -x "$VENV/bin/gunicorn" ]; then
  echo "installing keystone and gunicorn into $VENV" >&2
  "$VENV/bin/pip" install --quiet keystone gunicorn python-keystoneclient >&2
fi

KEYSTONE_PID=""
extra_cleanup() {
  # A caller with more to stop before Keystone (keystone.sh's second region) defines this.
  if declare -F more_cleanup >/dev/null; then more_cleanup || true; fi
  if [ -n "$KEYSTONE_PID" ]; then
    kill -TERM "$KEYSTONE_PID" 2>/dev/null || true
    local deadline=$((SECONDS + 15))
    while kill -0 "$KEYSTONE_PID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
    kill -KILL "$KEYSTONE_PID" 2>/dev/null || true
    wait "$KEYSTONE_PID" 2>/dev/null || true
  fi
  if [ "${FAIL:-0}" -ne 0 ] && [ -f "$WORK/keystone.log" ]; then
    echo "--- keystone log (last lines) ---" >&2
    tail -n 30 "$WORK/keystone.log" >&2
  fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_keystone: configures, bootstraps and starts Keystone; records checks; returns 1 when
# it does not come up. Sets KS_URL, ADMIN_PASSWORD and PASSWORD (for every other user).
start_keystone() {
KS="$WORK/keystone"
mkdir -p "$KS/fernet-keys" "$KS/credential-keys"
KS_PORT="$(free_port)"
KS_URL="http://127.0.0.1:$KS_PORT/v3"
ADMIN_PASSWORD="admin-$RANDOM$RANDOM"
PASSWORD="user-$RANDOM$RANDOM"
cat >"$KS/keystone.conf" <<EOF
[DEFAULT]
log_file = $WORK/keystone.log
[database]
connection = sqlite:///$KS/keystone.sqlite
[token]
provider = fernet
[fernet_tokens]
key_repository = $KS/fernet-keys
[credential]
key_repository = $KS/credential-keys
[identity]
# Test deployment only: cheap password hashing, so logins under load stay fast.
password_hash_rounds = 4
EOF
# Keystone's app factory parses sys.argv with oslo.config, which rejects gunicorn's flags.
cat >"$KS/keystone_wsgi.py" <<'EOF'
import sys
sys.argv = sys.argv[:1]
from keystone.wsgi.api import application  # noqa: E402,F401
EOF
export OS_KEYSTONE_CONFIG_FILES="$KS/keystone.conf"
manage() { "$VENV/bin/keystone-manage" --config-file "$KS/keystone.conf" "$@" >>"$WORK/keystone.log" 2>&1; }
me="$(id -un)"
group="$(id -gn)"
check_cmd "keystone-manage db_sync" manage db_sync || true
python3 - "$KS/keystone.sqlite" <<'EOF'
import sqlite3, sys
sqlite3.connect(sys.argv[1]).execute("PRAGMA journal_mode=WAL")
EOF
check_cmd "keystone-manage fernet_setup" manage fernet_setup --keystone-user "$me" --keystone-group "$group" || true
check_cmd "keystone-manage credential_setup" manage credential_setup --keystone-user "$me" --keystone-group "$group" || true
check_cmd "keystone-manage bootstrap" manage bootstrap --bootstrap-password "$ADMIN_PASSWORD" \
  --bootstrap-username admin --bootstrap-project-name admin --bootstrap-role-name admin \
  --bootstrap-region-id RegionOne --bootstrap-admin-url "$KS_URL" \
  --bootstrap-internal-url "$KS_URL" --bootstrap-public-url "$KS_URL" || true

(cd "$KS" && exec "$VENV/bin/gunicorn" --no-control-socket --workers 2 --timeout 120 \
  --access-logfile "$WORK/keystone-access.log" \
  --bind "127.0.0.1:$KS_PORT" keystone_wsgi:application) >>"$WORK/keystone.log" 2>&1 &
KEYSTONE_PID=$!
up=""
for _ in $(seq 1 600); do
  if curl -fsS -o /dev/null "$KS_URL" 2>/dev/null; then up=yes; break; fi
  kill -0 "$KEYSTONE_PID" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$up" ]; then not_ok "keystone answers on $KS_URL" "$(tail -n 30 "$WORK/keystone.log")"; return 1; fi
ok "keystone answers on $KS_URL"
}
