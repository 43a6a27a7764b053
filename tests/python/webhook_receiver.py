"""A webhook receiver as an agency would write one: checks every request's signature with the
official Standard Webhooks library, logs what it got (one JSON line per request), and answers
410 Gone once it has taken GONE_AFTER events (ending its subscription).

Usage: webhook_receiver.py PORT SECRET LOG GONE_AFTER   (prints "ready" when listening)
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from standardwebhooks.webhooks import Webhook

port, secret, log_path, gone_after = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
webhook = Webhook(secret)
taken = 0


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        global taken
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            webhook.verify(body, headers)
            verified = True
        except Exception as e:  # a bad signature is answered 401 and logged
            verified = False
            print(f"verification failed: {e}", file=sys.stderr)
        event = json.loads(body) if body else {}
        with open(log_path, "a") as log:
            log.write(json.dumps({"id": headers.get("webhook-id"), "verified": verified,
                                  "specversion": event.get("specversion")}) + "\n")
        if not verified:
            self.send_response(401)
        elif taken >= gone_after:
            self.send_response(410)
        else:
            taken += 1
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
print("ready", flush=True)
server.serve_forever()
