"""core.outbound: which addresses may be reached, redirects re-checked hop by hop, the
connection pinned to the checked address (DNS rebinding), messages without secrets.

Real sockets: listeners on loopback addresses record whether anything arrived.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core import outbound


class _Listener:
    """A real HTTP server on a loopback address; records each request's path and Host."""

    def __init__(
        self, host: str, *, redirect_to: str | None = None, keep_alive: bool = False
    ) -> None:
        self.requests: list[tuple[str, str, str]] = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if keep_alive else "HTTP/1.0"

            def log_message(self, *args) -> None:
                pass

            def _serve(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                listener.requests.append((self.command, self.path, self.headers.get("Host", "")))
                if listener.redirect_to:
                    self.send_response(302)
                    self.send_header("Location", listener.redirect_to)
                else:
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD = do_POST = _serve

        self.redirect_to = redirect_to
        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,))
        self.thread.daemon = True
        self.thread.start()

    def url(self, path: str = "/") -> str:
        host = self.httpd.server_address[0]
        return f"http://{host}:{self.port}{path}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def allowed() -> Iterator[_Listener]:
    listener = _Listener("127.0.0.1")  # allowed by the test settings
    yield listener
    listener.stop()


@pytest.fixture
def internal() -> Iterator[_Listener]:
    listener = _Listener("127.0.0.2")  # loopback too, but not allowed
    yield listener
    listener.stop()


# --------------------------------------------------------------------------------------------
# Which addresses


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.9", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.0.10", "private"),
        ("fd12:3456::1", "private"),
        ("100.64.0.1", "non-public"),  # carrier-grade NAT (shared address space)
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "private"),  # reserved (Python lists 240/4 as private too)
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped IPv6
        ("::ffff:10.0.0.1", "private"),
        ("2002:a9fe:a9fe::1", "link-local"),  # 6to4 wrapping 169.254.169.254
    ],
)
def test_refusal_reason__internal_addresses__refused_with_their_kind(address, reason):
    assert outbound.refusal_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
def test_refusal_reason__public_addresses__allowed(address):
    assert outbound.refusal_reason(ipaddress.ip_address(address)) is None


def test_parse_allowlist__hosts_suffixes_and_networks():
    allow = outbound.parse_allowlist(
        ["wiki.corp.example", ".intra.example", "10.20.0.0/16", "fd00::/8", "192.168.1.7", " "]
    )
    assert allow.allows_host("WIKI.corp.example.")
    assert allow.allows_host("chat.intra.example")
    assert not allow.allows_host("intra.example.evil.test")
    assert allow.allows_address(ipaddress.ip_address("10.20.9.9"))
    assert allow.allows_address(ipaddress.ip_address("fd00::5"))
    assert allow.allows_address(ipaddress.ip_address("192.168.1.7"))
    assert not allow.allows_address(ipaddress.ip_address("10.21.0.1"))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2/",
        "http://[::1]:8080/",
        "http://169.254.169.254/latest/meta-data/",
        "https://10.0.0.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://localhost:8000/",
        "http://2130706433/",  # 127.0.0.1 as one decimal number (resolved by the resolver)
    ],
)
def test_check_destination__internal__refused_with_safe_message(settings, url):
    settings.ROLLCALL_OUTBOUND_ALLOW = []
    with pytest.raises(outbound.OutboundRefused) as err:
        outbound.check_destination(url)
    assert "ROLLCALL_OUTBOUND_ALLOW" in err.value.message
    assert url not in err.value.message


def test_check_destination__allowed_network__passes(settings):
    settings.ROLLCALL_OUTBOUND_ALLOW = ["10.0.0.0/8"]
    target = outbound.check_destination("https://10.1.2.3/wiki")
    assert target is not None
    assert (target.host, target.port, str(target.address)) == ("10.1.2.3", 443, "10.1.2.3")


def test_check_destination__allowed_host_name__passes_whatever_it_resolves_to(settings):
    settings.ROLLCALL_OUTBOUND_ALLOW = ["localhost"]
    target = outbound.check_destination("http://localhost:8000/")
    assert target is not None
    assert target.address.is_loopback


def test_check_destination__name_resolving_to_internal_address__refused(settings, monkeypatch):
    settings.ROLLCALL_OUTBOUND_ALLOW = []
    monkeypatch.setattr(outbound, "resolve", lambda host, port: [ipaddress.ip_address("10.9.8.7")])
    with pytest.raises(outbound.OutboundRefused) as err:
        outbound.check_destination("https://innocent.example/")
    assert "resolves to a private address" in err.value.message


def test_check_destination__one_of_several_addresses_internal__refused(settings, monkeypatch):
    settings.ROLLCALL_OUTBOUND_ALLOW = []
    addresses = [ipaddress.ip_address("93.184.215.14"), ipaddress.ip_address("127.0.0.1")]
    monkeypatch.setattr(outbound, "resolve", lambda host, port: addresses)
    with pytest.raises(outbound.OutboundRefused):
        outbound.check_destination("https://mixed.example/")


@pytest.mark.parametrize("url", ["ftp://example.com/", "http:///nohost", "http://[::1/"])
def test_check_destination__not_a_web_address__refused(url):
    with pytest.raises(outbound.OutboundRefused):
        outbound.check_destination(url)


def test_redact_url__scheme_and_host_only():
    url = "https://hooks.slack.com/services/T000/B000/XXXXXXXX?token=abc"
    assert outbound.redact_url(url) == "https://hooks.slack.com"
    assert outbound.redact_url("http://[::1]:9/x") == "http://[::1]"
    assert outbound.redact_url("not a url") == "(invalid address)"


# --------------------------------------------------------------------------------------------
# Requests over real sockets


def test_request__refused_address__listener_receives_nothing(internal):
    with pytest.raises(outbound.OutboundRefused):
        outbound.request("GET", internal.url("/admin"), timeout=2)
    assert internal.requests == []


def test_request__redirect_into_internal_address__refused_before_the_hop(allowed, internal):
    allowed.redirect_to = internal.url("/latest/meta-data/")
    with pytest.raises(outbound.OutboundRefused):
        outbound.request("GET", allowed.url("/go"), max_redirects=5, timeout=2)
    assert [path for _, path, _ in allowed.requests] == ["/go"]
    assert internal.requests == []


def test_request__redirect_not_followed_without_max_redirects(allowed, internal):
    allowed.redirect_to = internal.url("/")
    response = outbound.request("POST", allowed.url("/hook"), data=b"{}", timeout=2)
    assert response.status_code == 302
    assert internal.requests == []


def test_request__dns_rebinding__connects_to_the_checked_address(
    settings, allowed, internal, monkeypatch
):
    """The name answers 127.0.0.1 (allowed) when checked and 127.0.0.2 (refused) afterwards:
    the connection still goes to the checked address, with the name in the Host header."""
    real_getaddrinfo = socket.getaddrinfo
    answers = iter(["127.0.0.1"] + ["127.0.0.2"] * 10)

    def rebinding(host, port, *args, **kwargs):
        if host == "rebind.test":
            return real_getaddrinfo(next(answers), port, *args, **kwargs)
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    response = outbound.request("GET", f"http://rebind.test:{allowed.port}/page", timeout=2)

    assert response.status_code == 200
    assert allowed.requests == [("GET", "/page", f"rebind.test:{allowed.port}")]
    assert internal.requests == []


def test_request__connection_refused__safe_message_without_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(outbound.OutboundError) as err:
        outbound.request("GET", f"http://127.0.0.1:{port}/secret-token-path", timeout=2)
    assert err.value.message == "Could not connect (refused, reset or unreachable)."


def test_request__unpinned_connection__refused(allowed):
    """A guarded session never connects to an address `request` did not check."""
    with outbound.new_session() as session, pytest.raises(outbound.OutboundRefused):
        session.get(allowed.url("/direct"), timeout=2)
    assert allowed.requests == []


def test_request__pinned_connection__keeps_urllib3_socket_options_no_nagle_delay():
    """The pinned connection is opened with urllib3's socket options (TCP_NODELAY): without
    them a POST whose body follows its headers waits for the receiver's delayed ACK, about
    40 ms per delivery on a kept-alive connection (webhooks then went out at ~23/s)."""
    allowed = _Listener("127.0.0.1", keep_alive=True)
    with outbound.new_session() as session:
        for _ in range(2):  # the second request reuses the kept-alive connection
            response = outbound.request(
                "POST", allowed.url("/hook"), session=session, data=b'{"a": 1}', timeout=2
            )
            assert response.status_code == 200
        adapter = session.get_adapter(allowed.url())
        socks = [
            conn.sock
            for pool in adapter.poolmanager.pools._container.values()
            for conn in list(pool.pool.queue)
            if conn is not None and conn.sock is not None
        ]
        assert len(socks) == 1
        assert socks[0].getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    allowed.stop()
    assert [path for _, path, _ in allowed.requests] == ["/hook", "/hook"]
