"""Real receivers for notice tests: a threaded HTTP server that verifies signatures and
de-duplicates by X-Rollcall-Delivery, and an aiosmtpd SMTP server. Both record what arrives."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from comms.channels import DELIVERY_HEADER, SIGNATURE_HEADER, verify_signature


@dataclass
class Arrival:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """Records every request; answers `status` (or the next of `statuses`); optional delay.

    De-duplication is what a real receiver does with X-Rollcall-Delivery: the first arrival
    of an id is processed, later copies are acknowledged (200) and ignored. `processed`
    counts how often each id was processed (must be 1), `arrivals` counts raw copies.
    """

    secrets: dict[str, str] = field(default_factory=dict)  # path -> signing secret
    status: int = 200
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    body: bytes | None = None  # answer body for non-2xx statuses (default: a short JSON error)
    arrivals: list[Arrival] = field(default_factory=list)
    processed: Counter = field(default_factory=Counter)
    bad_signatures: list[str] = field(default_factory=list)
    in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Keep-alive clients (the senders reuse connections) would otherwise wait for
            # delayed ACKs between the header and body writes of each answer.
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.in_flight += 1
                if receiver.delay:
                    time.sleep(receiver.delay)
                headers = {k: v for k, v in self.headers.items()}
                delivery_id = headers.get(DELIVERY_HEADER, "")
                with receiver.lock:
                    receiver.arrivals.append(Arrival(self.path, headers, body, time.time()))
                    status = receiver.statuses.pop(0) if receiver.statuses else receiver.status
                    secret = receiver.secrets.get(self.path)
                    if secret is not None and not verify_signature(
                        body, secret, headers.get(SIGNATURE_HEADER, "")
                    ):
                        receiver.bad_signatures.append(delivery_id)
                        status = 401
                    elif 200 <= status < 300 and delivery_id not in receiver.processed:
                        receiver.processed[delivery_id] += 1
                    receiver.in_flight -= 1
                answer = b'{"ok":true}' if status < 300 else (receiver.body or b'{"error":"nope"}')
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def ids(self) -> Counter:
        with self.lock:
            return Counter(a.headers.get(DELIVERY_HEADER, "") for a in self.arrivals)


@dataclass
class SmtpReceiver:
    """aiosmtpd on a free local port; `messages` are the parsed emails that arrived."""

    messages: list[Any] = field(default_factory=list)
    controller: Any = None

    def start(self) -> SmtpReceiver:
        import socket
        from email import message_from_bytes, policy

        from aiosmtpd.controller import Controller

        receiver = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                message = message_from_bytes(envelope.content, policy=policy.default)
                receiver.messages.append(message)
                return "250 Message accepted for delivery"

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=port)
        self.controller.start()
        return self

    @property
    def port(self) -> int:
        return self.controller.port

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
