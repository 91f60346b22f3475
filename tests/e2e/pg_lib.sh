# A private PostgreSQL cluster for tests: initdb into a temporary folder, the server on a free
# loopback port with its socket in that folder, a `glint` database and role with a
# scram-sha-256 password. Sourced, never run; needs bash.
#
#   source tests/e2e/pg_lib.sh
#   pg_start "$WORK/pg" || exit 1   # sets PG_URL (password inside), PG_PASSWORD, PG_PORT,
#   ...                              #      PG_BRINGUP_SECONDS
#   pg_stop                          # stops the server pg_start started, by its PID
#
# Debian's `postgresql` package (PostgreSQL 15); `pg_install` installs it when initdb is
# missing. The server must not run as root: as root, the folder is given to the `postgres`
# user and every server command runs as it. The test cluster trades durability for speed
# (fsync = off, synchronous_commit = off): a test never survives a machine crash anyway.

_pg_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && { echo "$dir"; return 0; }
  done
  command -v initdb >/dev/null && dirname "$(command -v initdb)"
}

# pg_install: installs Debian's postgresql when initdb is missing.
pg_install() {
  [ -n "$(_pg_bin)" ] && return 0
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing postgresql" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    -o DPkg::Lock::Timeout=600 postgresql >&2
}

_pg_as() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

_pg_log() { echo "pg: $*" >&2; }

# pg_start DIR: a new cluster in DIR (created), running. Returns 1 (after printing its log)
# when it does not come up.
pg_start() {
  PG_DIR="$1"
  local started=$SECONDS bin
  bin="$(_pg_bin)"
  mkdir -p "$PG_DIR"
  PG_PASSWORD="$(python3 -c 'import secrets; print(secrets.token_hex(16))')"
  printf '%s\n' "$PG_PASSWORD" >"$PG_DIR/pw"
  [ "$(id -u)" = 0 ] && chown -R postgres: "$PG_DIR"
  chmod 700 "$PG_DIR"
  PG_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  if ! _pg_as "$bin/initdb" -D "$PG_DIR/data" -U glint --pwfile="$PG_DIR/pw" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-locale >"$PG_DIR/initdb.log" 2>&1; then
    _pg_log "initdb failed"; tail -n 20 "$PG_DIR/initdb.log" >&2; return 1
  fi
  if ! _pg_as "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=300" \
    start >/dev/null; then
    _pg_log "the server did not start"; tail -n 20 "$PG_DIR/server.log" >&2; pg_stop; return 1
  fi
  if ! _pg_as "$bin/psql" -h "$PG_DIR" -p "$PG_PORT" -U glint -d postgres -qAt \
    -c 'CREATE DATABASE glint' >/dev/null; then
    _pg_log "cannot create the database"; pg_stop; return 1
  fi
  PG_URL="postgresql://glint:$PG_PASSWORD@127.0.0.1:$PG_PORT/glint"
  PG_BRINGUP_SECONDS=$((SECONDS - started))
  export PG_URL PG_PASSWORD PG_PORT PG_DIR PG_BRINGUP_SECONDS
}

# pg_stop: stops the server by the PID in its postmaster.pid (fast shutdown), waits for it.
pg_stop() {
  local pid
  pid="$(head -n 1 "$PG_DIR/data/postmaster.pid" 2>/dev/null)" || return 0
  [ -n "$pid" ] || return 0
  kill -INT "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}
