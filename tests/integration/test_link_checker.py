"""The doc-link sweep in a real Celery worker (PostgreSQL, Redis), scheduled by real beat."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from comms.models import DocLink
from tests.support.factories import DocLinkFactory


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass

    def _serve(self) -> None:
        status = {"/ok": 200, "/no-head": 405 if self.command == "HEAD" else 200}.get(
            self.path, 404
        )
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = _serve
    do_HEAD = _serve


@pytest.fixture
def docs_server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    host, port = httpd.server_address[:2]
    yield f"http://{host}:{port}"
    httpd.shutdown()
    httpd.server_close()


def _statuses() -> dict[str, str]:
    return {link.title: link.status for link in DocLink.objects.all()}


EXPECTED = {"ok": "ok", "no-head": "ok", "missing": "broken"}


def test_check_doc_links__real_worker__records_every_result(
    celery_processes, wait_for, docs_server
):
    from support.tasks import check_doc_links

    for name in EXPECTED:
        DocLinkFactory(title=name, url=f"{docs_server}/{name}")
    celery_processes.worker()

    check_doc_links.delay()

    wait_for(
        lambda: _statuses() == EXPECTED,
        what="the worker to check every doc link",
        logs=celery_processes,
    )
    assert DocLink.objects.get(title="missing").status_code == 404


def test_check_doc_links__scheduled_by_beat_from_the_database(
    celery_processes, wait_for, docs_server
):
    from django.apps import apps

    from core.schedules import ensure_periodic_task

    DocLinkFactory(title="ok", url=f"{docs_server}/ok")
    # The schedule the lead's data migration stores, tightened to 1 s.
    ensure_periodic_task(
        apps, name="Check doc links", task="support.check_doc_links", every_seconds=1
    )
    celery_processes.worker()
    celery_processes.beat()

    wait_for(
        lambda: _statuses() == {"ok": "ok"},
        what="beat to schedule support.check_doc_links and a worker to run it",
        logs=celery_processes,
    )
