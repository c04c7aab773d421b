"""A light WSGI path for the machine endpoints (OFREP, the Unleash client and frontend APIs).

Services evaluate flags far more often than people load pages, and the evaluation itself
takes microseconds: most of a request's time would go to Django's request machinery. Two
levels, installed around the project's application by `machine_dispatch` (config/wsgi.py) for
`/ofrep/`, `/api/client/` and `/api/frontend`:

1. `OfrepApp`, a tiny WSGI app for the steady state of OFREP (`POST /ofrep/v1/evaluate/flags`
   and `.../flags/<key>`): it checks the Host header against ALLOWED_HOSTS exactly as
   Django's `request.get_host()` does (accepted hosts are remembered), authenticates the SDK
   key (`flags.sdk_auth`), takes the environment's compiled snapshot (`flags.snapshot`) and
   answers with the same functions as the Django views (`flags.ofrep.single_answer` /
   `bulk_answer`), with no HttpRequest, URL resolving, signals or HttpResponse. Anything else
   -- another method (CORS preflight), a missing or refused key, an unknown host, a body over
   DATA_UPLOAD_MAX_MEMORY_SIZE, a non-ASCII path, any exception (a database that is down
   included) -- is handed to level 2 with the body it already read, so every error answer,
   its logging and the database connection handling stay Django's.
2. `MachineHandler`, Django's WSGI handler with no middleware and `flags.machine_urls` as its
   URLconf (the Unleash client and frontend APIs, and OFREP's non-steady cases). Its request
   lifecycle is Django's own (request_started/finished signals, so database connections are
   managed as usual; the Host header is checked against ALLOWED_HOSTS).

Everything else goes to the full application. A warm OFREP request does no database query,
so level 1 does not send request_started/finished: a persistent connection opened by a cold
lookup is checked (CONN_MAX_AGE, health) by the next request that reaches Django on that
thread, and a database error sends the request to level 2, which closes an unusable
connection before retrying. `bench/ofrep_http.py` measures both levels against a bare handler.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponse
from django.http.request import split_domain_port, validate_host

from flags import ofrep, sdk_auth, snapshot

MACHINE_PREFIXES = ("/ofrep/", "/api/client/", "/api/frontend")
MACHINE_URLCONF = "flags.machine_urls"
BULK_PATH = "/ofrep/v1/evaluate/flags"
SINGLE_PREFIX = BULK_PATH + "/"
_MAX_HOSTS = 256

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_STATUS = {200: "200 OK", 304: "304 Not Modified", 400: "400 Bad Request", 404: "404 Not Found"}
_JSON_HEADERS = [("Content-Type", "application/json"), *ofrep.MACHINE_HEADERS.items()]
_NOT_MODIFIED_HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    *ofrep.MACHINE_HEADERS.items(),
]


class MachineHandler(WSGIHandler):
    """Django's WSGI handler without middleware, resolving against `flags.machine_urls`."""

    def load_middleware(self, is_async: bool = False) -> None:
        get_response = self._get_response  # type: ignore[attr-defined]

        def machine(request: HttpRequest) -> HttpResponse:
            request.get_host()  # DisallowedHost -> 400, as CommonMiddleware would
            request.urlconf = MACHINE_URLCONF  # type: ignore[attr-defined]
            return get_response(request)

        self._view_middleware: list[Any] = []
        self._template_response_middleware: list[Any] = []
        self._exception_middleware: list[Any] = []
        self._middleware_chain = convert_exception_to_response(machine)


class _Meta:
    """What `sdk_auth.authenticate` reads of a request: its META (here the WSGI environ)."""

    __slots__ = ("META",)

    def __init__(self, environ: dict[str, Any]) -> None:
        self.META = environ


class _Settings:
    """The settings the fast path reads, cached until a setting changes (tests)."""

    __slots__ = ("accepted_hosts", "allowed_hosts", "forwarded_host", "max_body")

    def __init__(self) -> None:
        allowed = list(settings.ALLOWED_HOSTS)
        if settings.DEBUG and not allowed:
            allowed = [".localhost", "127.0.0.1", "[::1]"]  # as HttpRequest.get_host
        self.allowed_hosts = allowed
        self.forwarded_host = bool(settings.USE_X_FORWARDED_HOST)
        self.max_body: int | None = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        self.accepted_hosts: set[str] = set()


_SETTINGS: list[_Settings] = []


def _settings() -> _Settings:
    if not _SETTINGS:
        _SETTINGS.append(_Settings())
    return _SETTINGS[0]


def _forget_settings(**kwargs: Any) -> None:
    _SETTINGS.clear()


setting_changed.connect(_forget_settings)


class OfrepApp:
    """Level 1: steady-state OFREP evaluations; everything else goes to `fallback`."""

    def __init__(self, fallback: WSGIApp) -> None:
        self.fallback = fallback

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path: str = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") != "POST" or not path.isascii():
            return self.fallback(environ, start_response)
        if path == BULK_PATH:
            key = None
        elif path.startswith(SINGLE_PREFIX) and "/" not in path[len(SINGLE_PREFIX) :]:
            key = path[len(SINGLE_PREFIX) :]
            if not key:
                return self.fallback(environ, start_response)
        else:
            return self.fallback(environ, start_response)
        conf = _SETTINGS[0] if _SETTINGS else _settings()
        if not _host_allowed(environ, conf):
            return self.fallback(environ, start_response)
        try:
            key_info = sdk_auth.authenticate(_Meta(environ))  # type: ignore[arg-type]
            sdk_auth.require_kind(key_info, ofrep.OFREP_KINDS)
            compiled = snapshot.load(key_info.environment_id)
        except Exception:  # noqa: BLE001 - answered (and logged) by Django below
            return self.fallback(environ, start_response)
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length < 0 or (conf.max_body is not None and length > conf.max_body):
            return self.fallback(environ, start_response)
        body = environ["wsgi.input"].read(length) if length else b""
        try:
            if key is None:
                status, result, etag = ofrep.bulk_answer(
                    compiled, body, environ.get("HTTP_IF_NONE_MATCH")
                )
            else:
                status, result = ofrep.single_answer(compiled, key_info.environment_key, key, body)
                etag = None
            if result is None:
                headers = [*_NOT_MODIFIED_HEADERS, ("ETag", str(etag))]
                start_response(_STATUS[status], headers)
                return [b""]
            payload = ofrep.encode_json(result)
        except Exception:  # noqa: BLE001
            environ["wsgi.input"] = io.BytesIO(body)
            return self.fallback(environ, start_response)
        headers = [*_JSON_HEADERS, ("Content-Length", str(len(payload)))]
        if etag is not None:
            headers.append(("ETag", etag))
        start_response(_STATUS[status], headers)
        return [payload]


def _host_allowed(environ: dict[str, Any], conf: _Settings) -> bool:
    """HttpRequest.get_host()'s check, for requests that carry a Host header."""
    if conf.forwarded_host and "HTTP_X_FORWARDED_HOST" in environ:
        host = environ["HTTP_X_FORWARDED_HOST"]
    else:
        host = environ.get("HTTP_HOST")
        if host is None:
            return False  # rebuilt from SERVER_NAME: left to Django
    if host in conf.accepted_hosts:
        return True
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, conf.allowed_hosts):
        return False  # Django answers 400 (DisallowedHost) and logs it
    if len(conf.accepted_hosts) >= _MAX_HOSTS:
        conf.accepted_hosts.clear()
    conf.accepted_hosts.add(host)
    return True


def machine_dispatch(application: WSGIApp) -> WSGIApp:
    """Wrap the project's WSGI application: machine paths take the light handlers."""
    machine = OfrepApp(MachineHandler())

    def dispatch(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith(MACHINE_PREFIXES):
            return machine(environ, start_response)
        return application(environ, start_response)

    return dispatch
