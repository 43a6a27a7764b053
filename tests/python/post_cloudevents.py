"""Posts CloudEvents to the Lienthong ingress with the Python CloudEvents SDK.

Usage: post_cloudevents.py URL TOKEN SOURCE
Prints one JSON line per post: [status, body].
"""
import json
import sys
import urllib.error
import urllib.request

from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent

url, token, source = sys.argv[1:4]


def post(headers, body):
    headers = {**headers, "Authorization": "Bearer " + token}
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def report(report_id, ward):
    return {
        "report_id": report_id,
        "category": "HTGT",
        "category_name": "Hạ tầng giao thông",
        "ward": ward,
        "status": "open",
        "description": "Ổ gà trên đường Lê Duẩn",
        "requested_at": "2023-12-30T08:00:00+07:00",
    }


def event(report_id, ward):
    return CloudEvent(
        {
            "type": "vn.egov.field_reports.report.submitted",
            "source": source,
            "subject": report_id,
            "id": "py/" + report_id,
            "time": "2023-12-30T01:00:00Z",
            "datacontenttype": "application/json",
        },
        report(report_id, ward),
    )


for headers, body in [
    to_structured(event("PY-STRUCT-1", "lac-dao")),
    to_binary(event("PY-BIN-2", "hung-long")),
    to_structured(event("PY-INVALID-3", "atlantis")),
]:
    print(json.dumps(post(headers, body)))
