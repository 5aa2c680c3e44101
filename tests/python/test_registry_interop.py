"""Strata's Schema Registry and Avro wire format checked by clients we did not write:
Confluent's own `SchemaRegistryClient`, `AvroSerializer` and `AvroDeserializer` (confluent-kafka,
with fastavro) register, fetch and decode what `strata avro encode` writes, and `strata avro
decode` reads what they write."""
import datetime as dt
import json
import os
import pathlib
import signal
import struct
import subprocess
from decimal import Decimal

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

ROOT = pathlib.Path(__file__).resolve().parents[2]
STRATA = os.environ.get("STRATA_BIN") or str(
    pathlib.Path(os.environ.get("CARGO_TARGET_DIR", pathlib.Path.home() / ".cache/strata/target")) / "debug" / "strata"
)


def run(*args, cwd):
    out = subprocess.run([STRATA, *args], cwd=cwd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


class Registry:
    """`strata registry serve` on a free port (127.0.0.1:0; the URL is read from its first line).
    `init` passes `--init` (a new registry); `extra` flags and `env` variables are added."""

    def __init__(self, state, *extra, init=True, env=None):
        self.proc = subprocess.Popen(
            [STRATA, "registry", "serve", "--listen", "127.0.0.1:0", "--state", str(state),
             *(["--init"] if init else []), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **(env or {})},
        )
        line = self.proc.stdout.readline()
        assert "listening on http://" in line, (line, self.proc.stderr.read() if self.proc.poll() is not None else "")
        self.url = line.split("listening on ")[1].split()[0]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(timeout=10) == 0, self.proc.stderr.read()


@pytest.fixture
def registry(tmp_path):
    r = Registry(tmp_path / "registry-state.json")
    yield r
    if r.proc.poll() is None:
        r.stop()


def read_messages(path):
    data = pathlib.Path(path).read_bytes()
    out, i = [], 0
    while i < len(data):
        (n,) = struct.unpack(">I", data[i:i + 4])
        out.append(data[i + 4:i + 4 + n])
        i += 4 + n
    assert i == len(data)
    return out


def write_messages(path, messages):
    with open(path, "wb") as f:
        for m in messages:
            f.write(struct.pack(">I", len(m)))
            f.write(m)


def test_confluent_deserializer_reads_strata_avro(registry, tmp_path):
    d = tmp_path
    run("generate", "iot", "--events", "2000", "--out", "in.ndjson", cwd=d)
    summary = json.loads(run("avro", "encode", "--registry", registry.url, "--topic", "iot",
                             "--pipeline", str(ROOT / "pipelines" / "iot.yaml"),
                             "--input", "in.ndjson", "--out", "msgs.bin", "--json", cwd=d))
    messages = read_messages(d / "msgs.bin")
    assert len(messages) == summary["messages"] == summary["metrics"]["rows_out"]
    assert 0 < len(messages) <= 2000
    assert summary["metrics"]["quarantined"] > 0  # the generator injects faults

    client = SchemaRegistryClient({"url": registry.url})
    assert "iot-value" in client.get_subjects()
    latest = client.get_latest_version("iot-value")
    assert latest.schema_id == summary["schema_id"] and latest.version == 1
    assert all(m[0] == 0 and struct.unpack(">I", m[1:5])[0] == latest.schema_id for m in messages)

    deserializer = AvroDeserializer(client)
    ctx = SerializationContext("iot", MessageField.VALUE)
    theirs = [deserializer(m, ctx) for m in messages]
    ours = [json.loads(l) for l in run("avro", "decode", "--registry", registry.url,
                                        "--input", "msgs.bin", cwd=d).splitlines()]
    assert len(theirs) == len(ours) == len(messages)

    for t, o in zip(theirs, ours):
        assert set(t) == set(o)
        for k in ("device_id", "seq", "temperature", "humidity", "battery", "location_site",
                  "tags", "owner_email", "temp_f", "_line", "_file", "_source"):
            assert t[k] == o[k], (k, t[k], o[k])
        # timestamp-micros → aware datetime in Python, RFC 3339 text in Strata.
        assert t["ts"].tzinfo is not None
        assert t["ts"] == dt.datetime.fromisoformat(o["ts"])
        assert t["event_date"] == dt.date.fromisoformat(o["event_date"])
        assert t["event_date"] == t["ts"].date()
    # Values are real: masked emails are sha256 hex, devices match the generator's pattern.
    assert all(t["device_id"].startswith("dev-") for t in theirs)
    assert any(t["owner_email"] and len(t["owner_email"]) == 64 for t in theirs)
    assert len({(t["device_id"], t["seq"]) for t in theirs}) == len(theirs)  # dedup held

    # Running the same pipeline again reuses the registered schema: same id, no new version.
    again = json.loads(run("avro", "encode", "--registry", registry.url, "--topic", "iot",
                           "--pipeline", str(ROOT / "pipelines" / "iot.yaml"),
                           "--input", "in.ndjson", "--out", "again.bin", "--json", cwd=d))
    assert again["schema_id"] == summary["schema_id"]
    assert client.get_versions("iot-value") == [1]


ORDER_SCHEMA = json.dumps({
    "type": "record", "name": "Order", "namespace": "py.shop",
    "fields": [
        {"name": "order_id", "type": "long"},
        {"name": "customer", "type": "string"},
        {"name": "amount", "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}},
        {"name": "placed_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "ship_to", "type": ["null", {"type": "record", "name": "Address", "fields": [
            {"name": "city", "type": "string"},
            {"name": "zip", "type": ["null", "string"], "default": None}]}], "default": None},
        {"name": "items", "type": {"type": "array", "items": "string"}},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "PAID", "SHIPPED"]}},
        {"name": "attrs", "type": {"type": "map", "values": "int"}},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "raw", "type": "bytes"},
    ],
})


def orders():
    utc = dt.timezone.utc
    return [
        {"order_id": 1, "customer": "Ana", "amount": Decimal("123.45"),
         "placed_at": dt.datetime(2025, 11, 20, 13, 46, 0, 123000, tzinfo=utc),
         "ship_to": {"city": "Lisboa", "zip": "1000-001"}, "items": ["book", "pen"], "status": "PAID",
         "attrs": {"gift": 1}, "note": None, "day": dt.date(2025, 11, 20), "raw": b"\x00\xffhi"},
        {"order_id": -2, "customer": "Bó ✓", "amount": Decimal("-0.05"),
         "placed_at": dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=utc),
         "ship_to": None, "items": [], "status": "NEW", "attrs": {}, "note": "first", "day": dt.date(1970, 1, 1),
         "raw": b""},
    ]


def test_strata_decodes_what_confluent_serializer_writes(registry, tmp_path):
    client = SchemaRegistryClient({"url": registry.url})
    serializer = AvroSerializer(client, ORDER_SCHEMA)
    ctx = SerializationContext("orders", MessageField.VALUE)
    messages = [serializer(o, ctx) for o in orders()]
    write_messages(tmp_path / "py.bin", messages)

    schema_id = client.get_latest_version("orders-value").schema_id
    assert all(struct.unpack(">I", m[1:5])[0] == schema_id for m in messages)

    ours = [json.loads(l) for l in run("avro", "decode", "--registry", registry.url,
                                        "--input", "py.bin", cwd=tmp_path).splitlines()]
    assert ours == [
        {"order_id": 1, "customer": "Ana", "amount": "123.45", "placed_at": "2025-11-20T13:46:00.123Z",
         "ship_to": {"city": "Lisboa", "zip": "1000-001"}, "items": ["book", "pen"], "status": "PAID",
         "attrs": {"gift": 1}, "note": None, "day": "2025-11-20", "raw": "AP9oaQ=="},
        {"order_id": -2, "customer": "Bó ✓", "amount": "-0.05", "placed_at": "1969-12-31T23:59:59.999Z",
         "ship_to": None, "items": [], "status": "NEW", "attrs": {}, "note": "first", "day": "1970-01-01",
         "raw": ""},
    ]

    # A corrupted frame (unknown schema id) is refused with the registry's error, exit code 1.
    bad = bytearray(messages[0])
    bad[1:5] = struct.pack(">I", 4242)
    write_messages(tmp_path / "bad.bin", [bytes(bad)])
    out = subprocess.run([STRATA, "avro", "decode", "--registry", registry.url, "--input", "bad.bin"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 1 and "40403" in out.stderr, out.stderr


def test_schema_registry_client_calls(registry, tmp_path):
    client = SchemaRegistryClient({"url": registry.url})
    assert client.get_subjects() == []
    assert client.get_schema_types() == ["AVRO"]

    v1 = Schema(ORDER_SCHEMA, "AVRO")
    id1 = client.register_schema("orders-value", v1)
    assert client.register_schema("orders-value", v1) == id1
    assert SchemaRegistryClient({"url": registry.url}).register_schema("orders-value", v1) == id1
    assert client.get_subjects() == ["orders-value"]
    latest = client.get_latest_version("orders-value")
    assert (latest.schema_id, latest.version, latest.subject) == (id1, 1, "orders-value")
    assert json.loads(latest.schema.schema_str)["name"] == "Order"
    assert client.lookup_schema("orders-value", v1).version == 1
    assert client.get_version("orders-value", 1).schema_id == id1

    # A compatible evolution (new field with a default) and an incompatible one (type change).
    doc = json.loads(ORDER_SCHEMA)
    doc["fields"].append({"name": "channel", "type": ["null", "string"], "default": None})
    v2 = Schema(json.dumps(doc), "AVRO")
    doc_bad = json.loads(ORDER_SCHEMA)
    doc_bad["fields"][1] = {"name": "customer", "type": "long"}
    bad = Schema(json.dumps(doc_bad), "AVRO")
    assert client.test_compatibility("orders-value", v2) is True
    assert client.test_compatibility("orders-value", bad) is False

    with pytest.raises(SchemaRegistryError) as e:
        client.register_schema("orders-value", bad)
    assert e.value.http_status_code == 409 and e.value.error_code == 409
    assert "orders-value" in e.value.error_message

    with pytest.raises(SchemaRegistryError) as e:
        client.register_schema("orders-value", Schema('{"type": "record", "name": "x"}', "AVRO"))
    assert e.value.error_code == 42201

    with pytest.raises(SchemaRegistryError) as e:
        SchemaRegistryClient({"url": registry.url}).get_schema(987654)
    assert e.value.http_status_code == 404 and e.value.error_code == 40403

    with pytest.raises(SchemaRegistryError) as e:
        client.get_latest_version("nope-value")
    assert e.value.error_code == 40401

    # Compatibility config: global BACKWARD by default; a subject set to NONE accepts the change.
    assert client.get_compatibility() == "BACKWARD"
    client.set_compatibility("orders-value", "FULL")
    assert client.get_compatibility("orders-value") == "FULL"
    id2 = client.register_schema("orders-value", v2)  # FULL: default-valued field is fine
    assert id2 != id1
    client.set_compatibility("orders-value", "NONE")
    id3 = client.register_schema("orders-value", bad)
    assert client.get_versions("orders-value") == [1, 2, 3]
    with pytest.raises(SchemaRegistryError) as e:
        client.set_compatibility(level="SIDEWAYS")
    assert e.value.error_code == 42203

    # Soft delete, then a restart on the same state file keeps every id.
    assert client.delete_subject("orders-value") == [1, 2, 3]
    assert client.get_subjects() == []
    registry.stop()
    again = Registry(tmp_path / "registry-state.json", init=False)
    try:
        fresh = SchemaRegistryClient({"url": again.url})
        for i, s in [(id1, ORDER_SCHEMA), (id2, v2.schema_str), (id3, bad.schema_str)]:
            assert json.loads(fresh.get_schema(i).schema_str) == json.loads(s)
        assert fresh.get_compatibility("orders-value") == "NONE"
        # Re-registering after a soft delete reuses the global id.
        assert fresh.register_schema("orders-value", v1) == id1
        assert fresh.get_versions("orders-value") == [4]
    finally:
        again.stop()


def test_confluent_client_needs_credentials_to_write(tmp_path):
    """With `--auth-user` / `--auth-password` (from the environment) and `--auth-token`,
    Confluent's client is refused writes without credentials (401, error_code 40101) and
    registers with `basic.auth.user.info` or a static bearer token; reads stay open."""
    r = Registry(tmp_path / "auth-state.json", "--auth-user", "sr-user", "--auth-token", "sr-token",
                 env={"STRATA_REGISTRY_PASSWORD": "sr-pass"})
    try:
        order = Schema(ORDER_SCHEMA, "AVRO")
        for conf in [{}, {"basic.auth.user.info": "sr-user:wrong"}]:
            with pytest.raises(SchemaRegistryError) as e:
                SchemaRegistryClient({"url": r.url, **conf}).register_schema("orders-value", order)
            assert e.value.http_status_code == 401 and e.value.error_code == 40101, e.value
        basic = SchemaRegistryClient({"url": r.url, "basic.auth.user.info": "sr-user:sr-pass"})
        sid = basic.register_schema("orders-value", order)
        bearer = SchemaRegistryClient({
            "url": r.url,
            "bearer.auth.credentials.source": "STATIC_TOKEN",
            "bearer.auth.token": "sr-token",
            "bearer.auth.logical.cluster": "lsrc-strata",
        })
        assert bearer.register_schema("payments-value", order) == sid
        anonymous = SchemaRegistryClient({"url": r.url})
        assert sorted(anonymous.get_subjects()) == ["orders-value", "payments-value"]
        assert json.loads(anonymous.get_schema(sid).schema_str)["name"] == "Order"
    finally:
        r.stop()

