#!/usr/bin/env bash
# Project-local PostgreSQL + PostGIS for development and tests.
#   scripts/devdb.sh start   install Debian packages if missing, create the cluster, start it
#   scripts/devdb.sh stop    stop it (the data stays in $PGDIR)
#   scripts/devdb.sh status  exit 0 when it is running
#   scripts/devdb.sh url     print the SQLAlchemy URL of database ${PGDATABASE:-roadwatch}
# The cluster lives in $PGDIR (default: .pg/ in the project), listens on a unix socket there and on a
# free port of 127.0.0.1 only. Production points DATABASE_URL at any PostGIS instead.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PGDIR="${PGDIR:-$ROOT/.pg}"
PGBIN=/usr/lib/postgresql/15/bin
DB="${PGDATABASE:-roadwatch}"

as_owner() {  # initdb/pg_ctl refuse to run as root: run them as postgres then
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

install_packages() {
  if [ ! -x "$PGBIN/initdb" ] || [ ! -f /usr/share/postgresql/15/extension/postgis.control ]; then
    echo "devdb: installing postgresql-15-postgis-3 (Debian)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq postgresql-15-postgis-3 >/dev/null
  fi
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

url() {
  echo "postgresql+psycopg://postgres@/${DB}?host=${PGDIR}/run&port=$(cat "$PGDIR/port")"
}

start() {
  install_packages
  mkdir -p "$PGDIR"
  if [ "$(id -u)" = 0 ]; then
    chown postgres: "$PGDIR"
    # postgres must be able to reach its folder through the project's parents.
    d="$PGDIR"; while [ "$d" != / ]; do d="$(dirname "$d")"; chmod o+x "$d" 2>/dev/null || true; done
  fi
  if [ ! -f "$PGDIR/data/PG_VERSION" ]; then
    as_owner "$PGBIN/initdb" -D "$PGDIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    as_owner mkdir -p "$PGDIR/run"
  fi
  if as_owner "$PGBIN/pg_ctl" -D "$PGDIR/data" status >/dev/null 2>&1; then
    echo "devdb: already running on port $(cat "$PGDIR/port")" >&2
  else
    free_port > "$PGDIR/port.tmp" && mv "$PGDIR/port.tmp" "$PGDIR/port"
    as_owner "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -p $(cat "$PGDIR/port") -c unix_socket_directories=$PGDIR/run -c fsync=on -c max_connections=200" >/dev/null
    echo "devdb: started on 127.0.0.1:$(cat "$PGDIR/port"), socket $PGDIR/run" >&2
  fi
  if ! "$PGBIN/psql" -h "$PGDIR/run" -p "$(cat "$PGDIR/port")" -U postgres -tAc \
      "select 1 from pg_database where datname='$DB'" postgres | grep -q 1; then
    "$PGBIN/createdb" -h "$PGDIR/run" -p "$(cat "$PGDIR/port")" -U postgres "$DB"
  fi
}

stop() {
  if [ -f "$PGDIR/data/PG_VERSION" ]; then
    as_owner "$PGBIN/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null 2>&1 || true
    echo "devdb: stopped" >&2
  fi
}

status() {
  [ -f "$PGDIR/data/PG_VERSION" ] && as_owner "$PGBIN/pg_ctl" -D "$PGDIR/data" status >/dev/null 2>&1
}

case "${1:-}" in
  start) start ;;
  status) status ;;
  stop) stop ;;
  url) url ;;
  *) echo "usage: $0 start|stop|status|url" >&2; exit 2 ;;
esac
