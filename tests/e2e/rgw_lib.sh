# A real single-node Ceph RGW for tests: one monitor, one OSD keeping its data in memory
# (memstore, no block device), and radosgw on a free loopback port, every file inside one
# temporary folder. Sourced, never run; needs bash.
#
#   source tests/e2e/rgw_lib.sh
#   rgw_start "$WORK/rgw" || exit 1     # sets RGW_ENDPOINT RGW_ACCESS_KEY RGW_SECRET_KEY
#   ...                                  #      RGW_REGION RGW_DNS_NAME RGW_BRINGUP_SECONDS
#   rgw_gateway_stop / rgw_gateway_start # stop and restart radosgw alone (fault tests)
#   rgw_stop                             # stops what rgw_start started, by PID
#
# RGW_MEMSTORE_BYTES sizes the in-memory OSD (default 3 GiB; benchmarks need more).
# Debian packages: ceph-mon ceph-osd radosgw ceph-common (`rgw_install` installs them when
# missing). No systemd, no root needed once installed: the daemons fork to the background and
# write pid files into the folder, and rgw_stop signals exactly those PIDs. On failure
# rgw_start prints the tail of each daemon's log to stderr and stops what it started.
#
# Ceph 16 (Pacific, Debian 12) needs a RADOS cluster under RGW; one monitor and one OSD are
# enough. The OSD sometimes exits right after registering with the monitor (seen on these
# machines): rgw_start waits for `1 up` and starts it again if it is not there.

RGW_PACKAGES=(ceph-mon ceph-osd radosgw ceph-common)

# rgw_install: installs the Debian packages when a binary is missing.
rgw_install() {
  local missing=""
  for bin in ceph-mon ceph-osd radosgw radosgw-admin ceph ceph-authtool monmaptool; do
    command -v "$bin" >/dev/null || missing=yes
  done
  [ -z "$missing" ] && return 0
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing ${RGW_PACKAGES[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=600 "${RGW_PACKAGES[@]}" >&2
}

_rgw_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

_rgw_log() { echo "rgw: $*" >&2; }

# _rgw_wait SECONDS COMMAND...: runs COMMAND every 0.2 s until it succeeds or time is up.
_rgw_wait() {
  local deadline=$((SECONDS + $1))
  shift
  while [ $SECONDS -lt "$deadline" ]; do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  "$@" >/dev/null 2>&1
}

_rgw_ceph() { timeout 20 ceph -c "$RGW_DIR/ceph.conf" --connect-timeout 15 "$@"; }

_rgw_pid_alive() {
  local pid
  pid="$(cat "$1" 2>/dev/null)" || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

_rgw_osd_up() { _rgw_ceph osd stat 2>/dev/null | grep -q '1 up'; }

_rgw_s3_up() {
  curl -fsS -o /dev/null "$RGW_ENDPOINT" 2>/dev/null
}

_rgw_fail() {
  _rgw_log "bring-up failed: $*"
  local f
  for f in "$RGW_DIR"/log/*.log "$RGW_DIR"/*.out; do
    [ -s "$f" ] || continue
    echo "--- $f (last lines) ---" >&2
    tail -n 15 "$f" >&2
  done
  rgw_stop
  return 1
}

_rgw_start_osd() {
  ceph-osd -c "$RGW_DIR/ceph.conf" -i "$RGW_OSD_ID" >>"$RGW_DIR/osd.out" 2>&1
}

# rgw_start DIR: brings the cluster up in DIR (created; must not hold an old cluster) and
# creates an S3 user. Returns 1 (after printing why) when it does not come up.
rgw_start() {
  RGW_DIR="$1"
  RGW_PID_FILES=()
  local started=$SECONDS t0
  t0="$(date +%s.%N)"
  mkdir -p "$RGW_DIR"/{mon,osd,rgw,run,log}
  local mon_port rgw_port fsid
  mon_port="$(_rgw_free_port)"
  rgw_port="$(_rgw_free_port)"
  fsid="$(python3 -c 'import uuid; print(uuid.uuid4())')"
  RGW_ENDPOINT="http://127.0.0.1:$rgw_port"
  RGW_REGION="default"
  # Virtual-host buckets are BUCKET.$RGW_DNS_NAME (no DNS knows it: clients connect by address).
  RGW_DNS_NAME="${RGW_DNS_NAME:-s3.glint.test}"
  RGW_ACCESS_KEY="glint$RANDOM$RANDOM"
  RGW_SECRET_KEY="secret-$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
  cat >"$RGW_DIR/ceph.conf" <<EOF
[global]
fsid = $fsid
mon host = v1:127.0.0.1:$mon_port
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
# The monitor's own data is a few MiB: do not refuse to start on a shared machine whose disk
# has less than the default 5% free (the objects live in memory, memstore).
mon data avail crit = 1
mon data avail warn = 2
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
osd pool default pg autoscale mode = off
osd pool default pg num = 8
osd pool default pgp num = 8
mon max pg per osd = 1000
public network = 127.0.0.0/8
ms bind ipv6 = false
ms bind msgr2 = false
run dir = $RGW_DIR/run
pid file = $RGW_DIR/run/\$cluster-\$name.pid
admin socket = $RGW_DIR/run/\$cluster-\$name.asok
log file = $RGW_DIR/log/\$cluster-\$name.log
keyring = $RGW_DIR/keyring
mon data = $RGW_DIR/mon/\$cluster-\$id
osd data = $RGW_DIR/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = ${RGW_MEMSTORE_BYTES:-3221225472}
osd max object name len = 256
osd max object namespace len = 64
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw data = $RGW_DIR/rgw
rgw dns name = $RGW_DNS_NAME
# Deleted objects' data is freed within seconds, not hours: the OSD keeps it in memory.
rgw gc obj min wait = 5
rgw gc processor period = 5
EOF
  local conf="$RGW_DIR/ceph.conf"
  ceph-authtool --create-keyring "$RGW_DIR/keyring" --gen-key -n mon. --cap mon 'allow *' \
    >>"$RGW_DIR/setup.out" 2>&1 || { _rgw_fail "ceph-authtool (mon.)"; return 1; }
  ceph-authtool "$RGW_DIR/keyring" --gen-key -n client.admin --cap mon 'allow *' \
    --cap osd 'allow *' --cap mgr 'allow *' >>"$RGW_DIR/setup.out" 2>&1 \
    || { _rgw_fail "ceph-authtool (client.admin)"; return 1; }
  monmaptool --create --fsid "$fsid" --addv a "[v1:127.0.0.1:$mon_port]" "$RGW_DIR/monmap" \
    >>"$RGW_DIR/setup.out" 2>&1 || { _rgw_fail "monmaptool"; return 1; }
  ceph-mon -c "$conf" -i a --mkfs --monmap "$RGW_DIR/monmap" --keyring "$RGW_DIR/keyring" \
    >>"$RGW_DIR/setup.out" 2>&1 || { _rgw_fail "ceph-mon --mkfs"; return 1; }

  # The monitor.
  ceph-mon -c "$conf" -i a >>"$RGW_DIR/mon.out" 2>&1 || { _rgw_fail "ceph-mon start"; return 1; }
  RGW_PID_FILES+=("$RGW_DIR/run/ceph-mon.a.pid")
  _rgw_wait 60 _rgw_ceph mon stat || { _rgw_fail "monitor not answering"; return 1; }
  RGW_MON_SECONDS=$((SECONDS - started))

  # The OSD, in memory; started again while it is not `up` (it sometimes exits at once).
  local osd_uuid
  osd_uuid="$(python3 -c 'import uuid; print(uuid.uuid4())')"
  # A monitor that has just answered `mon stat` can still refuse commands for a moment on a
  # loaded machine (EPERM, "problem getting command descriptions"): `osd new` is idempotent
  # for one uuid, so it is tried again.
  local attempt
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    RGW_OSD_ID="$(_rgw_ceph osd new "$osd_uuid" 2>>"$RGW_DIR/setup.out")" && break
    RGW_OSD_ID=""
    sleep 1
  done
  [ -n "$RGW_OSD_ID" ] || { _rgw_fail "ceph osd new"; return 1; }
  mkdir -p "$RGW_DIR/osd/ceph-$RGW_OSD_ID"
  ceph-osd -c "$conf" -i "$RGW_OSD_ID" --mkfs --osd-uuid "$osd_uuid" \
    >>"$RGW_DIR/setup.out" 2>&1 || { _rgw_fail "ceph-osd --mkfs"; return 1; }
  local osd_pid_file="$RGW_DIR/run/ceph-osd.$RGW_OSD_ID.pid"
  RGW_PID_FILES+=("$osd_pid_file")
  RGW_OSD_STARTS=0
  _rgw_start_osd || true
  RGW_OSD_STARTS=1
  local osd_started=$SECONDS deadline=$((SECONDS + 90))
  while ! { _rgw_pid_alive "$osd_pid_file" && _rgw_osd_up; }; do
    [ $SECONDS -lt $deadline ] || { _rgw_fail "OSD never came up"; return 1; }
    # A dead OSD (its pid file stays behind, or none was written within 3 s) is started again.
    if ! _rgw_pid_alive "$osd_pid_file" && [ $((SECONDS - osd_started)) -ge 3 ]; then
      [ "$RGW_OSD_STARTS" -lt 5 ] || { _rgw_fail "OSD exited $RGW_OSD_STARTS times"; return 1; }
      _rgw_log "OSD exited after start $RGW_OSD_STARTS; starting it again"
      _rgw_start_osd || true
      RGW_OSD_STARTS=$((RGW_OSD_STARTS + 1))
      osd_started=$SECONDS
    fi
    sleep 0.2
  done
  RGW_OSD_SECONDS=$((SECONDS - started))

  # radosgw; it creates its pools on first start.
  radosgw -c "$conf" -n client.rgw.a >>"$RGW_DIR/rgw.out" 2>&1 \
    || { _rgw_fail "radosgw start"; return 1; }
  RGW_PID_FILES+=("$RGW_DIR/run/ceph-client.rgw.a.pid")
  _rgw_wait 90 _rgw_s3_up || { _rgw_fail "radosgw not answering on $RGW_ENDPOINT"; return 1; }
  # The OSD can still go away after the first `up`: check once more before handing it out.
  if ! _rgw_pid_alive "$osd_pid_file"; then
    RGW_OSD_STARTS=$((RGW_OSD_STARTS + 1))
    _rgw_start_osd || true
    _rgw_wait 20 _rgw_osd_up || { _rgw_fail "OSD went away"; return 1; }
  fi

  timeout 60 radosgw-admin -c "$conf" -n client.admin user create --uid=glint \
    --display-name="glint tests" --access-key="$RGW_ACCESS_KEY" --secret="$RGW_SECRET_KEY" \
    >>"$RGW_DIR/setup.out" 2>&1 || { _rgw_fail "radosgw-admin user create"; return 1; }
  RGW_BRINGUP_SECONDS="$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)")"
  _rgw_log "up at $RGW_ENDPOINT in ${RGW_BRINGUP_SECONDS}s (monitor ${RGW_MON_SECONDS}s, OSD ${RGW_OSD_SECONDS}s, OSD starts $RGW_OSD_STARTS)"
  export RGW_ENDPOINT RGW_REGION RGW_ACCESS_KEY RGW_SECRET_KEY RGW_DNS_NAME RGW_BRINGUP_SECONDS
}

# rgw_gateway_stop: stops radosgw alone (SIGTERM, SIGKILL after 15 s), leaving the cluster
# up, as an S3 endpoint going away mid-request would.
rgw_gateway_stop() {
  local pid_file="$RGW_DIR/run/ceph-client.rgw.a.pid" pid deadline
  pid="$(cat "$pid_file" 2>/dev/null)" || return 0
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  deadline=$((SECONDS + 15))
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
}

# rgw_gateway_start: starts radosgw again (same port, same user) and waits until it answers.
rgw_gateway_start() {
  radosgw -c "$RGW_DIR/ceph.conf" -n client.rgw.a >>"$RGW_DIR/rgw.out" 2>&1 || return 1
  _rgw_wait 90 _rgw_s3_up
}

# rgw_stop: stops every daemon rgw_start started (SIGTERM, then SIGKILL after 15 s), by the
# PIDs in their pid files. Safe to call twice, or after a failed start.
rgw_stop() {
  local f pid pids=()
  for f in "${RGW_PID_FILES[@]:-}"; do
    [ -n "$f" ] || continue
    pid="$(cat "$f" 2>/dev/null)" || continue
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && pids+=("$pid")
  done
  [ ${#pids[@]} -eq 0 ] && return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  local deadline=$((SECONDS + 15)) alive
  while [ $SECONDS -lt $deadline ]; do
    alive=""
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=yes; done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  RGW_PID_FILES=()
}
