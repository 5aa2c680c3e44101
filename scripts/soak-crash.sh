#!/usr/bin/env bash
# Soak: kill -9 `strata stream silver` at random moments many times (default 25) while it copies a
# topic into silver, then check every event is in the table exactly once. Needs the broker from
# `scripts/services.sh up` and a debug build (`cargo build --bin strata`).
#
#   scripts/soak-crash.sh [KILLS] [EVENTS]
set -euo pipefail
cd "$(dirname "$0")/.."
KILLS="${1:-25}"
EVENTS="${2:-100000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/strata/target}"
STRATA="${STRATA_BIN:-$CARGO_TARGET_DIR/debug/strata}"
./scripts/services.sh up >/dev/null
# shellcheck disable=SC1090
source "$(./scripts/services.sh env)"
VENV="$(./scripts/python-env.sh)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
TOPIC="soak-$(date +%s%N)"
PIPELINE="$PWD/pipelines/iot.yaml"
cd "$WORK"
"$STRATA" generate iot --events "$EVENTS" --duplicates 0.03 --out in.ndjson >/dev/null
WANT=$("$STRATA" transform --json --input in.ndjson --out t --pipeline "$PIPELINE" \
  | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["metrics"]["rows_out"])')
"$VENV/bin/python" - "$STRATA_TEST_KAFKA" "$TOPIC" <<'PY'
import sys, json
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
brokers, topic = sys.argv[1], sys.argv[2]
admin = AdminClient({"bootstrap.servers": brokers})  # must outlive the future
admin.create_topics([NewTopic(topic, 3, 1)])[topic].result()
p = Producer({"bootstrap.servers": brokers, "enable.idempotence": True, "acks": "all"})
for line in open("in.ndjson", "rb"):
    line = line.rstrip(b"\n")
    try:
        key = json.loads(line).get("device_id", "")
    except Exception:
        key = ""
    p.produce(topic, line, key=str(key).encode())
    p.poll(0)
p.flush()
PY
for i in $(seq 1 "$KILLS"); do
  "$STRATA" stream silver --brokers "$STRATA_TEST_KAFKA" --input-topic "$TOPIC" --pipeline "$PIPELINE" \
    --lake lake --commit-interval-ms 300 >/dev/null 2>&1 &
  pid=$!
  sleep "0.$(( RANDOM % 9 + 1 ))$(( RANDOM % 10 ))"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done
"$STRATA" stream silver --brokers "$STRATA_TEST_KAFKA" --input-topic "$TOPIC" --pipeline "$PIPELINE" \
  --lake lake --commit-interval-ms 300 --stop-when-idle-ms 3000 >/dev/null
GOT=$("$STRATA" sql --lake lake "SELECT count(*) AS n, count(DISTINCT concat(device_id, '/', CAST(seq AS VARCHAR))) AS k FROM iot_events" \
  | awk -F'|' 'NR==4 {gsub(/ /,""); print $2" "$3}')
echo "after $KILLS kills: want $WANT rows; silver has (rows distinct) = $GOT"
[ "$GOT" = "$WANT $WANT" ] || { echo "MISMATCH"; exit 1; }
echo "soak passed"
