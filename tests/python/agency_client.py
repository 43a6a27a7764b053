"""An agency's own client, written with the NATS Python client and nothing of Lienthong's:
connects with the credentials file Lienthong wrote (NATS_URL, NATS_USER, NATS_PASSWORD,
NATS_INBOX_PREFIX) and tries what an agency would, and what it must not.

Usage: agency_client.py ENV_FILE GRANTED_STREAM OTHER_STREAM EXPECTED_MESSAGES
Waits (10 s at most) until its copy of GRANTED_STREAM holds EXPECTED_MESSAGES, reads them all
with a durable consumer of its own, then tries what it must not. Prints one JSON object: when
the copy was complete, what it read, and how each forbidden attempt ended.
"""
import asyncio
import json
import sys
import time

import nats
from nats.js.api import ConsumerConfig


def read_env(path):
    out = {}
    for line in open(path):
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            out[k] = v
    return out


async def main():
    env = read_env(sys.argv[1])
    granted, other, expected = sys.argv[2], sys.argv[3], int(sys.argv[4])
    started = time.monotonic()
    errors = []

    async def on_error(e):
        errors.append(str(e))

    nc = await nats.connect(env["NATS_URL"], user=env["NATS_USER"], password=env["NATS_PASSWORD"],
                            inbox_prefix=env["NATS_INBOX_PREFIX"].encode(), error_cb=on_error,
                            max_reconnect_attempts=0)
    js = nc.jetstream(timeout=3)
    result = {}
    while True:
        info = await js.stream_info(granted)
        if info.state.messages >= expected or time.monotonic() - started > 10:
            break
        await asyncio.sleep(0.1)
    result["granted_messages"] = info.state.messages
    result["complete_after_secs"] = round(time.monotonic() - started, 2)
    # A durable pull consumer of its own, read and acknowledged.
    sub = await js.pull_subscribe(">", durable="agency-reader", stream=granted,
                                  config=ConsumerConfig(ack_wait=30))
    got = 0
    while got < info.state.messages:
        msgs = await sub.fetch(100, timeout=3)
        for m in msgs:
            event = json.loads(m.data)
            assert event["specversion"] == "1.0", event
            await m.ack()
            got += 1
    result["read"] = got

    async def attempt(name, coro):
        try:
            await coro
            result[name] = "allowed"
        except Exception as e:  # refused: a permissions violation (no answer) or an error
            result[name] = type(e).__name__

    quick = nc.jetstream(timeout=1)
    await attempt("other_stream", quick.stream_info(other))
    await attempt("publish", quick.publish(f"egov.{granted.lower()}.report.X.submitted", b"{}", timeout=1))
    await attempt("bus_api", nc.request("$JS.EGOV.API.STREAM.INFO." + other, b"", timeout=1))
    await attempt("delete_copy", quick.delete_stream(granted))
    await asyncio.sleep(0.3)
    result["violations"] = [e for e in errors if "permissions violation" in e.lower()]
    await nc.close()
    print(json.dumps(result))


asyncio.run(main())
