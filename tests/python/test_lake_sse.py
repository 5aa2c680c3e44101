"""S3 server-side encryption of every lake write, configured once: with
`AWS_SERVER_SIDE_ENCRYPTION=aws:kms` and `AWS_SSE_KMS_KEY_ID` in the environment, every object
`strata bronze put`, `strata batch` (silver data, manifests, metadata, pipeline state) and
`strata models run` (gold) write to an S3 lake carries SSE-KMS with that key, as moto records
it and boto3 (a client we did not write) reads it back. Without the settings, none does."""
import os
import pathlib
import shutil
import subprocess
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
STRATA = os.environ.get("STRATA_BIN") or str(
    pathlib.Path(os.environ.get("CARGO_TARGET_DIR", pathlib.Path.home() / ".cache/strata/target")) / "debug" / "strata"
)
S3 = os.environ.get("STRATA_TEST_S3_ENDPOINT")

pytestmark = pytest.mark.skipif(not S3 and not os.environ.get("CI"), reason="needs scripts/services.sh up (moto)")


def run(*args, cwd, env):
    out = subprocess.run([STRATA, *args], cwd=cwd, capture_output=True, text=True, env={**os.environ, **env})
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def write_lake(tmp_path, prefix, extra_env):
    bucket = os.environ.get("STRATA_TEST_S3_BUCKET", "strata-test")
    lake = f"s3://{bucket}/{prefix}"
    env = {"AWS_ENDPOINT": S3, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", **extra_env}
    catalog = f"sqlite:{tmp_path / (prefix + '.db')}"
    run("generate", "iot", "--events", "2000", "--out", "in.ndjson", cwd=tmp_path, env=env)
    run("bronze", "put", "--lake", lake, "--source", "iot", "--date", "2025-11-20", "--input", "in.ndjson",
        cwd=tmp_path, env=env)
    run("batch", "--lake", lake, "--catalog", catalog, "--source", "iot",
        "--pipeline", str(ROOT / "pipelines" / "iot.yaml"), cwd=tmp_path, env=env)
    models = tmp_path / "models"
    models.mkdir(exist_ok=True)
    shutil.copy(ROOT / "models" / "agg_device_hourly.sql", models)
    run("models", "run", "--lake", lake, "--catalog", catalog, "--models", str(models), cwd=tmp_path, env=env)
    return bucket


def objects(bucket, prefix):
    import boto3

    s3 = boto3.client("s3", endpoint_url=S3, aws_access_key_id="test", aws_secret_access_key="test",
                      region_name="us-east-1")
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/"):
        keys += [o["Key"] for o in page.get("Contents", [])]
    return s3, keys


def test_every_lake_write_carries_sse_kms_when_configured(tmp_path):
    prefix = f"sse-{uuid.uuid4().hex[:8]}"
    bucket = write_lake(tmp_path, prefix, {"AWS_SERVER_SIDE_ENCRYPTION": "aws:kms",
                                           "AWS_SSE_KMS_KEY_ID": "strata-test-key"})
    s3, keys = objects(bucket, prefix)
    layers = {k.split("/")[1] for k in keys}
    assert any("/bronze/" in k for k in keys), keys[:5]
    assert any("/silver/" in k for k in keys) and any("/gold/" in k for k in keys), sorted(layers)
    plain = []
    for key in keys:
        head = s3.head_object(Bucket=bucket, Key=key)
        if (head.get("ServerSideEncryption"), head.get("SSEKMSKeyId")) != ("aws:kms", "strata-test-key"):
            plain.append(key)
    assert not plain, f"{len(plain)} of {len(keys)} objects without SSE-KMS, e.g. {plain[:3]}"


def test_without_the_settings_no_object_claims_sse(tmp_path):
    prefix = f"nosse-{uuid.uuid4().hex[:8]}"
    bucket = write_lake(tmp_path, prefix, {})
    s3, keys = objects(bucket, prefix)
    assert keys
    assert all(s3.head_object(Bucket=bucket, Key=k).get("ServerSideEncryption") is None for k in keys)
