"""The `encrypt` mask from Python: a pipeline encrypts a column deterministically (equal
values, equal tokens; no plaintext left), and `strata.decrypt` gives the values back with the
key, naming the key it lacks otherwise."""
import base64
import json

import pyarrow as pa
import pytest

import strata

KEY = base64.b64encode(bytes(range(32))).decode()

SPEC = """
name: people
steps:
  - type: parse_json
    schema: {id: int64 not null, email: string}
  - type: mask
    columns:
      email: {method: encrypt, key_env: STRATA_PY_TEST_KEY, key_id: py1}
output:
  schema: {id: int64 not null, email: string}
"""


def file_table(lines: list[str]) -> pa.Table:
    n = len(lines)
    return pa.Table.from_arrays(
        [
            pa.array([line.encode() for line in lines], pa.binary()),
            pa.array(["people"] * n),
            pa.array([0] * n, pa.timestamp("us", tz="UTC")),
            pa.array(["people.ndjson"] * n),
            pa.array(range(1, n + 1), pa.uint64()),
        ],
        schema=strata.file_input_schema(),
    )


def test_encrypt_then_decrypt_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRATA_PY_TEST_KEY", KEY)
    pipeline = strata.Pipeline.from_yaml(SPEC)
    emails = ["ana@example.com", "bob@example.com", "ana@example.com", None]
    lines = [json.dumps({"id": i, "email": e}) for i, e in enumerate(emails)]
    rows, quarantine = pipeline.process(file_table(lines))
    assert quarantine.num_rows == 0
    tokens = rows.column("email").to_pylist()
    assert tokens[0] == tokens[2] and tokens[0] != tokens[1] and tokens[3] is None
    assert all(t.startswith("enc1:py1:") and "example" not in t for t in tokens[:3])
    plain = strata.decrypt(rows, {"py1": KEY})
    assert plain.column("email").to_pylist() == emails
    assert plain.column("id").to_pylist() == [0, 1, 2, 3]
    with pytest.raises(strata.DataError, match="key `py1`, which was not given"):
        strata.decrypt(rows, {})
