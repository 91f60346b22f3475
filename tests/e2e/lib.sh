# Shared by the end-to-end scripts (cli.sh, keystone.sh): the clients, the glint binary, the
# checks and their summary, and starting/stopping glint. Sourced, never run; expects ROOT,
# VENV and WORK (a fresh temporary folder, removed on exit) set by the caller. A caller with
# more to stop on exit defines `extra_cleanup`; GLINT_CONFIG, when set, is passed as --config,
# GLINT_GLANCE_CONFIG as --glance-config, and GLINT_LISTEN (default 127.0.0.1:0) as --listen.

DATA="$WORK/data"
mkdir -p "$DATA" "$WORK/home"
SERVER_PID=""
URL=""
STARTS=0

# --- the clients ----------------------------------------------------------------------------
if [ ! -x "$VENV/bin/openstack" ] || [ ! -x "$VENV/bin/glance" ]; then
  echo "installing python-openstackclient and python-glanceclient into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet python-openstackclient python-glanceclient >&2
fi
VENV="$(cd "$VENV" && pwd)"

# --- the binary -----------------------------------------------------------------------------
if [ -n "${GLINT_BIN:-}" ]; then
  BIN="$GLINT_BIN"
else
  BIN=""
  for candidate in "$ROOT/target/debug/glint" "$ROOT/target/release/glint"; do
    if [ -x "$candidate" ] && { [ -z "$BIN" ] || [ "$candidate" -nt "$BIN" ]; }; then
      BIN="$candidate"
    fi
  done
fi
if [ -z "$BIN" ] || [ ! -x "$BIN" ]; then
  echo "no glint binary (GLINT_BIN or target/{debug,release}/glint): run \`cargo build -p gateway\` first" >&2
  exit 1
fi
command -v qemu-img >/dev/null || { echo "qemu-img is required (apt-get install qemu-utils)" >&2; exit 1; }

# --- checks ---------------------------------------------------------------------------------
PASS=0
FAIL=0
ok() {
  PASS=$((PASS + 1))
  echo "ok   - $1"
}
not_ok() {
  FAIL=$((FAIL + 1))
  echo "FAIL - $1"
  if [ -n "${2:-}" ]; then printf '%s\n' "$2" | head -n 30 | sed 's/^/       /'; fi
}
# check_eq DESCRIPTION EXPECTED ACTUAL
check_eq() {
  if [ "$2" == "$3" ]; then ok "$1"; else not_ok "$1" "expected: $2"$'\n'"actual:   $3"; fi
}
# check_cmd DESCRIPTION COMMAND...: passes when the command exits 0; output kept in $OUT.
OUT=""
check_cmd() {
  local desc="$1"
  shift
  if OUT="$("$@" 2>&1)"; then ok "$desc"; return 0; else not_ok "$desc" "$OUT"; return 1; fi
}
# check_fails DESCRIPTION COMMAND...: passes when the command exits non-zero.
check_fails() {
  local desc="$1"
  shift
  if OUT="$("$@" 2>&1)"; then not_ok "$desc" "command succeeded: $OUT"; else ok "$desc"; fi
}

# json_get KEY [SUBKEY]: read JSON on stdin, print a field ("" if absent; lists and dicts
# as JSON). A key missing at top level is also looked up in "properties" (openstackclient
# folds extra properties into it).
json_get() {
  python3 -c '
import json, sys
doc = json.load(sys.stdin)
keys = sys.argv[1:]
def lookup(d, k):
    if isinstance(d, dict) and k in d:
        return d[k]
    props = d.get("properties") if isinstance(d, dict) else None
    if isinstance(props, str):
        try:
            props = json.loads(props)
        except ValueError:
            props = None
    if isinstance(props, dict) and k in props:
        return props[k]
    return None
v = doc
for k in keys:
    v = lookup(v, k)
if v is None:
    print("")
elif isinstance(v, (list, dict)):
    print(json.dumps(v, sort_keys=True))
elif isinstance(v, bool):
    print("true" if v else "false")
else:
    print(v)
' "$@"
}

# tags_of JSON: the image's tags as one sorted, comma-separated line.
tags_of() {
  python3 -c '
import json, sys
tags = json.load(sys.stdin).get("tags") or []
if isinstance(tags, str):
    tags = [t.strip() for t in tags.split(",") if t.strip()]
print(",".join(sorted(tags)))
'
}

# --- the server -----------------------------------------------------------------------------
log_tail() { tail -n 40 "$WORK/glint.log" 2>/dev/null || true; }

start_server() {
  STARTS=$((STARTS + 1))
  local out="$WORK/stdout.$STARTS"
  : >"$out"
  "$BIN" serve --listen "${GLINT_LISTEN:-127.0.0.1:0}" --data-dir "$DATA" \
    ${GLINT_CONFIG:+--config "$GLINT_CONFIG"} \
    ${GLINT_GLANCE_CONFIG:+--glance-config "$GLINT_GLANCE_CONFIG"} >"$out" 2>>"$WORK/glint.log" &
  SERVER_PID=$!
  local line="" deadline=$((SECONDS + 30))
  while [ $SECONDS -lt $deadline ]; do
    line="$(grep -m1 '^listening on http://' "$out" || true)"
    [ -n "$line" ] && break
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then break; fi
    sleep 0.05
  done
  if [ -z "$line" ]; then
    not_ok "glint start #$STARTS prints its listening line" "$(log_tail)"
    return 1
  fi
  URL="${line#listening on }"
  URL="${URL%%[[:space:]]*}"
  ok "glint start #$STARTS listening on $URL"
}

# stop_server: SIGTERM, wait up to 15 s (then SIGKILL); records the exit status as a check.
stop_server() {
  [ -n "$SERVER_PID" ] || return 0
  local pid="$SERVER_PID" status=0 deadline=$((SECONDS + 15))
  SERVER_PID=""
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    not_ok "glint exits within 15 s of SIGTERM" "$(log_tail)"
    return 0
  fi
  wait "$pid" 2>/dev/null || status=$?
  check_eq "glint exits 0 on SIGTERM" 0 "$status"
}

cleanup() {
  local rc=$?
  if [ -n "$SERVER_PID" ]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    local deadline=$((SECONDS + 15))
    while kill -0 "$SERVER_PID" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if declare -F extra_cleanup >/dev/null; then extra_cleanup || true; fi
  if [ "$rc" -ne 0 ] && [ -f "$WORK/glint.log" ]; then
    echo "--- glint log (last lines) ---" >&2
    log_tail >&2
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT

summary() { echo "$PASS passed, $FAIL failed"; }
