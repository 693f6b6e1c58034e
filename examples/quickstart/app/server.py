"""The quickstart's demo service: `/` answers a JSON greeting with the service's
version, `/health` answers 200 while the process is healthy.

It listens on 127.0.0.1:$PORT (ferry's embedded runtime gives each pod its own port)
and reads its greeting and version from the environment.
"""

import json
import os
import signal
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = os.environ.get("VERSION", "v1")
GREETING = os.environ.get("GREETING", "Hello")
POD = os.environ.get("POD_NAME", socket.gethostname())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/health":
            self._send(200, {"status": "ok"})
        elif self.path == "/":
            self._send(200, {"greeting": GREETING, "version": VERSION, "pod": POD})
        else:
            self._send(404, {"error": "not found", "path": self.path})

    def log_message(self, fmt, *args):
        sys.stdout.write("%s %s\n" % (self.address_string(), fmt % args))
        sys.stdout.flush()


def main():
    port = int(os.environ.get("PORT", "8080"))
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print("greeter %s listening on 127.0.0.1:%d" % (VERSION, port), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
