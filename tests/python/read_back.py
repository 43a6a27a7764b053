"""Reads structured-mode CloudEvents, one JSON object a line on standard input, with the
Python CloudEvents SDK, and checks what the SDK itself does not: specversion 1.0, a non-empty
id and source, lower-case alphanumeric attribute names.

Prints {"read": N, "failures": [...]}; exits 1 if any event could not be read.
"""
import json
import re
import sys

from cloudevents.http import from_json

failures = []
read = 0
for line in sys.stdin:
    if not line.strip():
        continue
    read += 1
    try:
        event = from_json(line.encode())
        attributes = event.get_attributes()
        if attributes.get("specversion") != "1.0":
            raise ValueError("specversion %r" % attributes.get("specversion"))
        if not attributes.get("id") or not attributes.get("source"):
            raise ValueError("empty id or source")
        for name in attributes:
            if not re.fullmatch(r"[a-z0-9]+", name):
                raise ValueError("attribute name %r" % name)
    except Exception as e:  # noqa: BLE001 - every failure is reported
        failures.append({"line": read, "error": str(e)[:300]})
print(json.dumps({"read": read, "failures": failures}))
sys.exit(1 if failures else 0)
