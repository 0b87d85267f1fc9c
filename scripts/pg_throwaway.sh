#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster for the storage tests.
#
#   export SUPPORTBOT_TEST_POSTGRES_URL=$(scripts/pg_throwaway.sh [PORT])   # default 54329
#   .venv/bin/pytest tests/storage
#   scripts/pg_throwaway.sh stop [PORT]                                     # and delete it
#
# Listens on 127.0.0.1:PORT only, trust auth, database `supportbot_test`, data under
# ${PG_THROWAWAY_ROOT:-/tmp}/supportbot-pg-PORT. Durability is switched off (fsync) since
# the data is thrown away. Idempotent: starting a running cluster just prints its URL
# again, stopping a stopped one does nothing. Progress goes to stderr; stdout carries
# only the URL, as the last line. Run as root, the server runs as the `postgres` user.
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
DB=supportbot_test

action=start
if [[ "${1:-}" == "stop" ]]; then
    action=stop
    shift
elif [[ "${1:-}" == "start" ]]; then
    shift
fi
port=${1:-54329}
if ! [[ "$port" =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
    echo "pg_throwaway: usage: $0 [start] [PORT] | stop [PORT]  (got port '$port')" >&2
    exit 2
fi

root=${PG_THROWAWAY_ROOT:-/tmp}
[[ "$root" == /* ]] || root=$PWD/$root
base=$root/supportbot-pg-$port
data=$base/data
logfile=$base/server.log
url="postgresql+psycopg://postgres@127.0.0.1:$port/$DB"

say() { echo "pg_throwaway: $*" >&2; }

# Run a PostgreSQL binary as the owner of the cluster: `postgres` when we are root
# (the server refuses to run as root), else ourselves.
if [[ $(id -u) -eq 0 ]]; then
    if ! id postgres >/dev/null 2>&1; then
        say "running as root but there is no 'postgres' user to run the server as"
        exit 1
    fi
    owner=postgres
    as_owner() { runuser -u postgres -- "$@"; }
else
    owner=$(id -un)
    as_owner() { "$@"; }
fi

# The postgres user may not be allowed into the caller's directory (initdb needs one).
cd /

running() { [[ -f "$data/PG_VERSION" ]] && as_owner "$PGBIN/pg_ctl" -D "$data" status >/dev/null 2>&1; }
answering() { as_owner "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$port" -t 5; }

if [[ "$action" == "stop" ]]; then
    if running; then
        say "stopping the cluster in $data"
        as_owner "$PGBIN/pg_ctl" -D "$data" -m fast -w stop >&2
    else
        say "no cluster running in $data"
    fi
    rm -rf "$base"
    exit 0
fi

if [[ ! -x "$PGBIN/initdb" ]]; then
    say "PostgreSQL 15 binaries not found in $PGBIN (apt-get install postgresql-15, or set PGBIN)"
    exit 1
fi

if running && ! answering; then
    # A crashed server can leave a live-looking postmaster.pid behind.
    say "the cluster in $data does not answer; restarting it"
    as_owner "$PGBIN/pg_ctl" -D "$data" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
    rm -f "$data/postmaster.pid"
fi

if ! running; then
    if [[ ! -f "$data/PG_VERSION" ]]; then
        rm -rf "$base"  # a half-made directory from an interrupted run
        mkdir -p "$base"
        chown "$owner" "$base"
        chmod 700 "$base"
        say "initdb in $data"
        as_owner "$PGBIN/initdb" -D "$data" -U postgres -A trust -E UTF8 --no-sync \
            >"$base/initdb.log" 2>&1 || { cat "$base/initdb.log" >&2; exit 1; }
    fi
    say "starting on 127.0.0.1:$port"
    # Unix socket in $base: /var/run/postgresql need not exist on a fresh machine.
    if ! as_owner "$PGBIN/pg_ctl" -D "$data" -l "$logfile" -w -t 30 start -o \
        "-p $port -k $base -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        >&2; then
        say "the server did not start; its log says:"
        tail -n 20 "$logfile" >&2 || true
        exit 1
    fi
fi

psql_() { as_owner "$PGBIN/psql" -h 127.0.0.1 -p "$port" -U postgres -X -q -v ON_ERROR_STOP=1 "$@"; }
if [[ "$(psql_ -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != "1" ]]; then
    say "creating database $DB"
    psql_ -d postgres -c "CREATE DATABASE $DB" >&2
fi
echo "$url"
