"""The IoT transform of pipelines/iot.yaml written the way a DuckDB user would: read raw lines,
validate JSON, extract + try_cast, quarantine with a reason, dedup by (device_id, seq) keeping
the first occurrence, mask the email, derive temp_f / event_date, write zstd Parquet partitioned by day for
good rows, and Parquet for quarantine. Usage: duckdb_iot.py INPUT.ndjson OUT_DIR THREADS
"""
import os
import sys

import duckdb

src, out, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(out, exist_ok=True)
con = duckdb.connect()
con.execute(f"SET threads={threads}")
con.execute("SET preserve_insertion_order=true")
con.execute(
    """
CREATE TEMP TABLE lines AS
SELECT row_number() OVER () AS _line, column0 AS raw
FROM read_csv(?, header=false, columns={'column0':'VARCHAR'}, delim=chr(1), quote='', escape='',
              auto_detect=false, strict_mode=false, null_padding=true, all_varchar=true)
""",
    [src],
)
con.execute(
    """
CREATE TEMP TABLE parsed AS
WITH v AS (
  SELECT _line, raw, coalesce(json_valid(raw) AND starts_with(ltrim(raw), '{'), false) AS is_obj FROM lines
), e AS (
  SELECT _line, raw, is_obj,
    CASE WHEN is_obj THEN json_extract_string(raw, ['$.device_id','$.ts','$.seq','$.temperature','$.humidity',
      '$.battery','$.location.lat','$.location.lon','$.location.site','$.owner_email']) END AS f,
    CASE WHEN is_obj THEN json_extract(raw, '$.tags') END AS tags_json
  FROM v
)
SELECT _line, raw, is_obj, f[1] AS device_id, f[2] AS ts_text,
  coalesce(try_cast(f[2] AS TIMESTAMPTZ), make_timestamp(try_cast(f[2] AS BIGINT) * 1000)::TIMESTAMPTZ) AS ts,
  try_cast(f[3] AS BIGINT) AS seq, f[4] AS temperature_text, try_cast(f[4] AS DOUBLE) AS temperature,
  try_cast(f[5] AS DOUBLE) AS humidity, try_cast(f[6] AS INTEGER) AS battery,
  try_cast(f[7] AS DOUBLE) AS location_lat, try_cast(f[8] AS DOUBLE) AS location_lon, f[9] AS location_site,
  try_cast(tags_json AS VARCHAR[]) AS tags, f[10] AS owner_email
FROM e
"""
)
con.execute(
    """
CREATE TEMP TABLE judged AS
SELECT *, CASE
  WHEN NOT is_obj THEN 'not a JSON object'
  WHEN device_id IS NULL THEN 'required field device_id is missing or null'
  WHEN ts IS NULL THEN 'field ts is not a valid timestamp'
  WHEN seq IS NULL THEN 'required field seq is missing or null'
  WHEN temperature_text IS NOT NULL AND temperature IS NULL THEN 'temperature cannot be cast to float64'
  WHEN NOT (device_id LIKE 'dev-%') THEN 'expectation device_id_format failed'
  WHEN NOT coalesce(temperature BETWEEN -50 AND 100, false) THEN 'expectation temperature_range failed'
END AS reason
FROM parsed
"""
)
con.execute(
    f"""
COPY (
  SELECT device_id, ts, seq, temperature, humidity, battery, location_lat, location_lon, location_site, tags,
         sha256(owner_email) AS owner_email, temperature * 9.0 / 5.0 + 32.0 AS temp_f, ts::DATE AS event_date, _line
  FROM judged WHERE reason IS NULL
  QUALIFY row_number() OVER (PARTITION BY device_id, seq ORDER BY _line) = 1
  ORDER BY _line
) TO '{out}/rows' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (event_date))
"""
)
con.execute(
    f"""
COPY (SELECT raw AS _raw, reason AS _reason, _line FROM judged WHERE reason IS NOT NULL ORDER BY _line)
TO '{out}/quarantine.parquet' (FORMAT parquet, COMPRESSION zstd)
"""
)
rows = con.execute(f"SELECT count(*) FROM read_parquet('{out}/rows/*/*.parquet')").fetchone()[0]
q = con.execute(f"SELECT count(*) FROM '{out}/quarantine.parquet'").fetchone()[0]
print(f"duckdb: {rows} rows, {q} quarantined")
