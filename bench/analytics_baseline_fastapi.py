"""What a data engineer would otherwise write: a FastAPI + DuckDB analytics endpoint over the
same silver table (DuckDB reads the Iceberg table's Parquet data files directly: its iceberg
extension is a download this machine cannot make), with the usual homemade in-process cache (a
dict keyed by the SQL text, unaware of new snapshots). Used by analytics_bench.py only.

    DATA_GLOB='<lake>/catalog/warehouse/silver/iot_events/data/**/*.parquet' API_KEY=k \
        uvicorn --app-dir bench analytics_baseline_fastapi:app --port 8091 --workers 2
"""
import os
import threading

import duckdb
from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse

GLOB = os.environ["DATA_GLOB"]
KEY = os.environ["API_KEY"]
con = duckdb.connect()
con.execute(f"CREATE VIEW iot_events AS SELECT * FROM read_parquet('{GLOB}')")
local = threading.local()
cache = {}
app = FastAPI()


def cursor():
    if not hasattr(local, "cur"):
        local.cur = con.cursor()
    return local.cur


def run(sql, params=(), use_cache=True):
    key = (sql, tuple(params))
    if use_cache and key in cache:
        return cache[key]
    cur = cursor().execute(sql, list(params))
    cols = [d[0] for d in cur.description]
    rows = [dict(zip(cols, r)) for r in cur.fetchall()]
    body = {"rows": rows, "row_count": len(rows)}
    if use_cache:
        cache[key] = body
    return body


def check(authorization):
    if authorization != f"Bearer {KEY}":
        raise HTTPException(401)


@app.get("/metrics/readings")
def readings(by: str = "site", authorization: str = Header(None), cache_control: str = Header(None)):
    check(authorization)
    if by != "site":
        raise HTTPException(400)
    sql = ("SELECT location_site AS site, count(*) AS readings, avg(temperature) AS avg_temperature "
           "FROM iot_events GROUP BY 1 ORDER BY 1")
    return JSONResponse(run(sql, use_cache=cache_control != "no-cache"), headers={})


@app.post("/query")
async def query(request: Request, authorization: str = Header(None)):
    check(authorization)
    body = await request.json()
    return run(body["sql"], use_cache=request.headers.get("cache-control") != "no-cache")
