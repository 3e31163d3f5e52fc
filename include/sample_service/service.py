"""The sample web service the sample release deploys: answers /health with its version.

Run: python service.py --port 18081 --version 1.2.0
Version 2.0.0 is known bad: it starts, but /health answers 503, so validation fails and the
release rolls back.
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BROKEN_VERSIONS = frozenset({"2.0.0"})


def make_handler(version: str, environment: str) -> type[BaseHTTPRequestHandler]:
    healthy = version not in BROKEN_VERSIONS

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                status = 200 if healthy else 503
                body = {"status": "ok" if healthy else "failing", "version": version, "environment": environment}
            elif self.path == "/":
                status, body = 200, {"service": "sample", "version": version, "environment": environment}
            else:
                status, body = 404, {"error": "not found"}
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--environment", default="")
    args = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(args.version, args.environment))
    server.serve_forever()


if __name__ == "__main__":
    main()
