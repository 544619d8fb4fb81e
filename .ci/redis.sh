#!/usr/bin/env bash
# Throwaway Redis for the test suite (CI runs as root). Prints the URL for TEST_REDIS_URL.
#
#   export TEST_REDIS_URL="$(.ci/redis.sh)"   # install if needed, start on a free port
#   .ci/redis.sh stop                         # stop it and delete its directory
#
# The server listens on 127.0.0.1 only and persists nothing (no RDB snapshots, no AOF): it holds
# nothing but test data and dies with the run. The fault tests in tests/redis/ start their own
# servers from the same binary so they can kill and restart them without disturbing this one.
set -euo pipefail
STATE=${YICHUANG_REDIS_STATE:-/tmp/yichuang-ci-redis}

log() { echo "redis.sh: $*" >&2; }

if [ "${1:-start}" = "stop" ]; then
  if [ -f "$STATE/dir" ]; then
    DIR=$(cat "$STATE/dir")
    if [ -f "$DIR/redis.pid" ]; then
      PID=$(cat "$DIR/redis.pid")
      kill "$PID" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$PID" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$PID" 2>/dev/null || true
    fi
    rm -rf "$DIR" "$STATE"
    log "stopped"
  fi
  exit 0
fi

# Already running (a second call in the same CI run): hand out the same server, start no other.
if [ -f "$STATE/url" ] && kill -0 "$(cat "$(cat "$STATE/dir")/redis.pid" 2>/dev/null)" 2>/dev/null; then
  cat "$STATE/url"
  exit 0
fi

if ! command -v redis-server >/dev/null 2>&1; then
  log "installing Redis (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  # The package would start a system-wide server on port 6379; this script wants only its own.
  GUARD=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    GUARD=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' > "$GUARD" && chmod +x "$GUARD"
  fi
  apt-get update -qq >&2
  apt-get install -y -qq redis-server >&2
  if [ -n "$GUARD" ]; then rm -f "$GUARD"; fi
fi

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
DIR=$(mktemp -d /tmp/yichuang-redis.XXXXXX)
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$DIR" \
  --daemonize yes --pidfile "$DIR/redis.pid" --logfile "$DIR/log" >&2
# Ready when it answers PING (redis-cli comes with the package; python3 is always there).
for _ in $(seq 100); do
  if python3 - "$PORT" <<'EOF' 2>/dev/null; then break; fi
import socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1) as s:
    s.sendall(b"PING\r\n")
    sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
EOF
  sleep 0.1
done
mkdir -p "$STATE"
echo "$DIR" > "$STATE/dir"
echo "redis://127.0.0.1:$PORT/0" > "$STATE/url"
log "running on 127.0.0.1:$PORT (pid $(cat "$DIR/redis.pid"), files in $DIR)"
cat "$STATE/url"
