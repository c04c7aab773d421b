"""Doc links to internal addresses: refused on save with a clear form error, never fetched by
the checker (a real listener on loopback receives nothing), errors without secrets."""

from __future__ import annotations

import pytest
from django.urls import reverse

from comms.models import DocLink
from core.exceptions import ApplicationError
from support import services as support_services
from tests.core.test_outbound import _Listener
from tests.support.factories import DocLinkFactory, ReleaseFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def internal():
    listener = _Listener("127.0.0.2")  # loopback, not in ROLLCALL_OUTBOUND_ALLOW
    yield listener
    listener.stop()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.2:8080/",
        "http://[::1]/docs",
        "http://169.254.169.254/latest/meta-data/",
        "https://192.168.10.4/wiki",
        "http://localhost:8000/admin/",
    ],
)
def test_doclink_create__internal_address__rejected_with_clear_message(
    release_manager, settings, url
):
    settings.ROLLCALL_OUTBOUND_ALLOW = []
    with pytest.raises(ApplicationError) as err:
        support_services.doclink_create(
            title="Internal", url=url, release=ReleaseFactory(), actor=release_manager
        )
    assert err.value.field == "url"
    assert "ROLLCALL_OUTBOUND_ALLOW" in err.value.message
    assert not DocLink.objects.exists()


def test_release_doclink_create__internal_address__form_error_and_listener_untouched(
    rm_client, internal, django_capture_on_commit_callbacks
):
    release = ReleaseFactory()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = rm_client.post(
            reverse("support:release_doclink_create", args=[release.pk]),
            {"title": "Admin", "url": internal.url("/admin"), "kind": "faq",
             "visibility": "internal"},
        )  # fmt: skip
    assert response.status_code == 400
    assert "Refused" in response.content.decode()
    assert callbacks == []  # no check enqueued
    assert internal.requests == []


def test_doclink_create__allowed_internal_host__saved(release_manager, settings):
    settings.ROLLCALL_OUTBOUND_ALLOW = ["127.0.0.0/8"]
    link = support_services.doclink_create(
        title="Wiki", url="http://127.0.0.2:8080/wiki", release=ReleaseFactory(),
        actor=release_manager,
    )  # fmt: skip
    assert link.pk


def test_doclink_check__stored_internal_link__never_fetched_and_marked_broken(internal):
    # A link saved before the guard existed (or before the allow list shrank).
    link = DocLinkFactory(url=internal.url("/latest/meta-data/?token=s3cret"))

    checked = support_services.doclink_check(doclink_id=link.pk, timeout=2)
    summary = support_services.doclinks_check(timeout=2)

    assert internal.requests == []
    assert checked is not None
    assert checked.status == DocLink.Status.BROKEN
    assert checked.status_code is None
    assert checked.last_error.startswith("Refused: the host is a loopback address")
    assert "s3cret" not in checked.last_error
    assert summary.broken == 1


def test_check_button__internal_link__message_names_no_port_or_reply(rm_client, internal):
    link = DocLinkFactory(url=internal.url("/"))
    response = rm_client.post(reverse("support:doclink_check", args=[link.pk]), follow=True)
    assert internal.requests == []
    page = response.content.decode()
    assert "Refused" in page
    assert str(internal.port) not in page.replace(internal.url("/"), "")


def test_check_url__error_reply__only_status_and_short_reason(server_answering_500):
    result = support_services.check_url(server_answering_500, timeout=2)
    assert result.error == "GET answered HTTP 500 Internal Server Error"


@pytest.fixture
def server_answering_500():
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _serve(self):
            body = b"Traceback: secret=hunter2 at /internal/path"
            self.send_response(500)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_HEAD = _serve

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/page"
    httpd.shutdown()
    httpd.server_close()
