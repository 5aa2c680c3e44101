"""What a data engineer would otherwise write: a FastAPI webhook receiver in front of Kafka with
Confluent's Python client — the same contract as `strata serve webhooks` for the Pipefy source
(constant-time HMAC check, 400 for malformed JSON, produce with acks=all + idempotence and
answer 200 only after the delivery report, 503 otherwise). Used by webhook_bench.py only.

    KAFKA=127.0.0.1:19092 TOPIC=t PIPEFY_WEBHOOK_SECRET=s \
        uvicorn --app-dir bench webhook_baseline_fastapi:app --port 8090 --workers 2
"""
import asyncio
import hashlib
import hmac
import json
import os
import threading
import time

from confluent_kafka import Producer
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

SECRET = os.environ["PIPEFY_WEBHOOK_SECRET"].encode()
TOPIC = os.environ["TOPIC"]
producer = Producer({
    "bootstrap.servers": os.environ["KAFKA"],
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    "compression.type": "lz4",
    "message.timeout.ms": 10000,
})


def _poll():
    while True:
        producer.poll(0.05)


threading.Thread(target=_poll, daemon=True).start()
app = FastAPI()


@app.post("/webhooks/pipefy")
async def receive(request: Request):
    body = await request.body()
    given = request.headers.get("x-pipefy-signature", "")
    want = hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(want, given):
        return JSONResponse({"status": "rejected"}, status_code=401)
    try:
        event = json.loads(body)
    except ValueError:
        return JSONResponse({"status": "malformed"}, status_code=400)
    key = hashlib.sha256(body).hexdigest()
    envelope = {"source": "pipefy", "received_at": time.time(), "idempotency_key": key,
                "event_type": event.get("data", {}).get("action"), "event": event}
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def delivered(err, _msg):
        loop.call_soon_threadsafe(done.set_result, err)

    producer.produce(TOPIC, key=str(event["data"]["card"]["id"]), value=json.dumps(envelope),
                     on_delivery=delivered)
    err = await done
    if err is not None:
        return JSONResponse({"status": "unavailable"}, status_code=503, headers={"Retry-After": "5"})
    return {"status": "stored", "idempotency_key": key}
