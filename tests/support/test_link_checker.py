"""The doc-link checker against a real local HTTP server (http.server in a thread)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from comms.models import DocLink
from support import services as support_services
from support import tasks as support_tasks
from support.services import check_url
from tests.support.factories import DocLinkFactory, aware

NOW = aware(2026, 11, 24, 10, 0)


class _Server:
    def __init__(self) -> None:
        self.calls: Counter[tuple[str, str]] = Counter()
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.release = threading.Event()  # wakes slow handlers at teardown
        self.httpd: ThreadingHTTPServer | None = None

    @property
    def base(self) -> str:
        assert self.httpd is not None
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base + path


def _handler(state: _Server) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output quiet
            pass

        def _answer(self, status: int, *, location: str | None = None, body: bytes = b"ok"):
            self.send_response(status)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _serve(self) -> None:
            path = self.path
            with state.lock:
                state.calls[(self.command, path)] += 1
            self._route(path)

        def _route(self, path: str) -> None:
            head = self.command == "HEAD"
            if path == "/ok":
                return self._answer(200)
            if path == "/missing":
                return self._answer(404)
            if path == "/slow":
                state.release.wait(3)
                return self._answer(200)
            if path.startswith("/busy/"):
                # Counted only while working, not while the answer is on its way: the checker's
                # next request may arrive before this thread has finished sending.
                with state.lock:
                    state.in_flight += 1
                    state.max_in_flight = max(state.max_in_flight, state.in_flight)
                time.sleep(0.15)  # long enough for checks to overlap
                with state.lock:
                    state.in_flight -= 1
                return self._answer(200)
            if path.startswith("/redirect/"):
                left = int(path.rsplit("/", 1)[1])
                if left == 0:
                    return self._answer(200)
                return self._answer(302, location=f"/redirect/{left - 1}")
            if path == "/loop":
                return self._answer(301, location="/loop")
            if path == "/no-head":
                return self._answer(405 if head else 200)
            if path == "/no-head-501":
                return self._answer(501 if head else 200)
            if path == "/head-lies":
                return self._answer(404 if head else 200)
            if path == "/error":
                return self._answer(500)
            return self._answer(404)

        do_GET = _serve
        do_HEAD = _serve

    return Handler


@pytest.fixture
def server() -> Iterator[_Server]:
    state = _Server()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.httpd = httpd
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield state
    state.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


# --------------------------------------------------------------------------------------------
# check_url: no database


def test_check_url__200__ok_with_head_only(server):
    result = check_url(server.url("/ok"), timeout=2)
    assert result.ok is True
    assert result.status_code == 200
    assert result.method == "HEAD"
    assert server.calls[("GET", "/ok")] == 0


def test_check_url__404__broken_with_status(server):
    result = check_url(server.url("/missing"), timeout=2)
    assert result.ok is False
    assert result.status_code == 404
    assert "404" in result.error


def test_check_url__500__broken(server):
    result = check_url(server.url("/error"), timeout=2)
    assert (result.ok, result.status_code) == (False, 500)


@pytest.mark.parametrize("path", ["/no-head", "/no-head-501"])
def test_check_url__head_refused__falls_back_to_get(server, path):
    result = check_url(server.url(path), timeout=2)
    assert result.ok is True
    assert result.status_code == 200
    assert result.method == "GET"
    assert server.calls[("HEAD", path)] == 1
    assert server.calls[("GET", path)] == 1


def test_check_url__head_answers_404_but_get_works__ok(server):
    result = check_url(server.url("/head-lies"), timeout=2)
    assert result.ok is True
    assert result.method == "GET"


def test_check_url__timeout__broken_with_readable_error(server):
    started = time.monotonic()
    result = check_url(server.url("/slow"), timeout=0.3)
    elapsed = time.monotonic() - started
    assert result.ok is False
    assert result.status_code is None
    assert "0.3 seconds" in result.error
    # HEAD and the GET fallback each give up after the timeout, not after the server's 3 s.
    assert elapsed < 2.5


@pytest.mark.parametrize("hops", [1, 5])
def test_check_url__redirects_up_to_five__followed(server, hops):
    result = check_url(server.url(f"/redirect/{hops}"), timeout=2)
    assert result.ok is True
    assert result.status_code == 200
    assert server.calls[("HEAD", "/redirect/0")] == 1


def test_check_url__six_redirects__broken(server):
    result = check_url(server.url("/redirect/6"), timeout=2)
    assert result.ok is False
    assert "More than 5 redirects" in result.error
    # A redirect loop is not retried with GET: it would loop the same way.
    assert server.calls[("GET", "/redirect/6")] == 0


def test_check_url__redirect_loop__broken(server):
    result = check_url(server.url("/loop"), timeout=2)
    assert result.ok is False
    assert "redirect" in result.error


def test_check_url__connection_refused__broken():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = check_url(f"http://127.0.0.1:{port}/", timeout=1)
    assert result.ok is False
    assert "Could not connect" in result.error


# --------------------------------------------------------------------------------------------
# Services and the task (database)


@pytest.mark.django_db
def test_doclinks_check__mixed_links__records_status_code_error_and_time(server):
    ok = DocLinkFactory(url=server.url("/ok"))
    missing = DocLinkFactory(url=server.url("/missing"))
    no_head = DocLinkFactory(url=server.url("/no-head"))
    slow = DocLinkFactory(url=server.url("/slow"))

    summary = support_services.doclinks_check(now=NOW, timeout=0.3, max_workers=4)

    assert (summary.checked, summary.ok, summary.broken) == (4, 2, 2)
    ok.refresh_from_db()
    missing.refresh_from_db()
    no_head.refresh_from_db()
    slow.refresh_from_db()
    assert (ok.status, ok.status_code, ok.last_error, ok.checked_at) == ("ok", 200, "", NOW)
    assert (missing.status, missing.status_code) == ("broken", 404)
    assert "404" in missing.last_error
    assert (no_head.status, no_head.status_code) == ("ok", 200)
    assert (slow.status, slow.status_code) == ("broken", None)
    assert "seconds" in slow.last_error


@pytest.mark.django_db
def test_doclinks_check__concurrency__bounded_by_max_workers(server):
    for i in range(6):
        DocLinkFactory(url=server.url(f"/busy/{i}"))

    support_services.doclinks_check(now=NOW, timeout=2, max_workers=2)

    assert server.max_in_flight == 2  # overlapped, but never more than two at once


@pytest.mark.django_db
def test_doclinks_check__same_url_on_two_links__asked_once(server):
    DocLinkFactory(url=server.url("/ok"))
    DocLinkFactory(url=server.url("/ok"))

    summary = support_services.doclinks_check(now=NOW, timeout=2)

    assert summary.checked == 2
    assert server.calls[("HEAD", "/ok")] == 1


@pytest.mark.django_db
def test_doclink_record_check__url_changed_during_check__result_not_stored(server):
    link = DocLinkFactory(url=server.url("/missing"))
    result = check_url(link.url, timeout=2)
    DocLink.objects.filter(pk=link.pk).update(url=server.url("/ok"))

    stored = support_services.doclink_record_check(
        doclink_id=link.pk, url=server.url("/missing"), result=result, now=NOW
    )

    link.refresh_from_db()
    assert stored is False
    assert link.status == DocLink.Status.UNCHECKED


@pytest.mark.django_db
def test_doclink_check__broken_link_fixed__becomes_ok(server):
    link = DocLinkFactory(url=server.url("/missing"))
    assert support_services.doclink_check(doclink_id=link.pk, now=NOW).status == "broken"
    DocLink.objects.filter(pk=link.pk).update(url=server.url("/ok"))

    checked = support_services.doclink_check(doclink_id=link.pk, now=NOW)

    assert (checked.status, checked.status_code, checked.last_error) == ("ok", 200, "")


@pytest.mark.django_db
def test_doclink_check__deleted_link__returns_none():
    assert support_services.doclink_check(doclink_id=987654) is None


@pytest.mark.django_db
def test_task_check_doc_links__checks_every_link_and_is_idempotent(server):
    DocLinkFactory(url=server.url("/ok"))
    DocLinkFactory(url=server.url("/missing"))

    assert support_tasks.check_doc_links.name == "support.check_doc_links"
    first = support_tasks.check_doc_links()
    second = support_tasks.check_doc_links()

    assert first == second == 2
    assert sorted(DocLink.objects.values_list("status", flat=True)) == ["broken", "ok"]


@pytest.mark.django_db
def test_task_check_doc_link__one_link__checked(server):
    link = DocLinkFactory(url=server.url("/no-head"))

    support_tasks.check_doc_link(link.pk)

    link.refresh_from_db()
    assert (link.status, link.status_code) == ("ok", 200)
