"""A stand-in Prometheus HTTP API for unit tests: a real HTTP server on a free port whose
`/api/v1/query` answers with the value the test sets (or an error, or nothing)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


class PrometheusStub:
    def __init__(self) -> None:
        self.values: list[float] | None = [0.0]  # None: an error answer
        self.queries: list[str] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                stub.queries.append(parse_qs(url.query).get("query", [""])[0])
                body: dict[str, Any]
                if stub.values is None:
                    body = {"status": "error", "errorType": "bad_data", "error": "parse error"}
                    code = 400
                else:
                    body = {
                        "status": "success",
                        "data": {
                            "resultType": "vector",
                            "result": [
                                {"metric": {"i": str(i)}, "value": [0, str(v)]}
                                for i, v in enumerate(stub.values)
                            ],
                        },
                    }
                    code = 200
                raw = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
