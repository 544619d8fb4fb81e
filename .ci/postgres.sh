#!/usr/bin/env bash
# Throwaway PostgreSQL for the test suite (CI runs as root). Prints the URL for TEST_DATABASE_URL.
#
#   export TEST_DATABASE_URL="$(.ci/postgres.sh)"   # install if needed, start on a free port
#   .ci/postgres.sh stop                            # stop it and delete its data
#
# The cluster lives in a temporary directory, listens on 127.0.0.1 only, trusts local
# connections and skips fsync: it holds nothing but test data and dies with the run.
set -euo pipefail
STATE=${YICHUANG_PG_STATE:-/tmp/yichuang-ci-postgres}

log() { echo "postgres.sh: $*" >&2; }

find_bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

if [ "${1:-start}" = "stop" ]; then
  if [ -f "$STATE/dir" ]; then
    DIR=$(cat "$STATE/dir")
    BIN=$(find_bindir) && runuser -u postgres -- "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$DIR" "$STATE"
    log "stopped"
  fi
  exit 0
fi

if ! BIN=$(find_bindir); then
  log "installing PostgreSQL (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  BIN=$(find_bindir)
fi
id postgres >/dev/null 2>&1 || useradd --system --home-dir /nonexistent --shell /usr/sbin/nologin postgres

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
DIR=$(mktemp -d /tmp/yichuang-pg.XXXXXX)
chown postgres: "$DIR"
runuser -u postgres -- "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null \
  || runuser -u postgres -- "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
runuser -u postgres -- "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w -t 60 \
  -o "-p $PORT -c listen_addresses=127.0.0.1 -k $DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
  start >/dev/null
runuser -u postgres -- "$BIN/createdb" -h 127.0.0.1 -p "$PORT" -U postgres yichuang_test
mkdir -p "$STATE"
echo "$DIR" > "$STATE/dir"
log "running on 127.0.0.1:$PORT (data in $DIR)"
echo "postgresql+psycopg://postgres@127.0.0.1:$PORT/yichuang_test"
