"""A light WSGI path for the machine endpoints (OFREP, the Unleash client and frontend APIs).

Services evaluate flags far more often than people load pages, and the evaluation itself
takes microseconds: most of a request's time would go to the middleware stack (sessions,
auth, messages, CSRF, htmx, history, static files), none of which these SDK-key endpoints use.
`machine_dispatch` sends `/ofrep/`, `/api/client/` and `/api/frontend` requests to a Django
handler with no middleware and `flags.machine_urls` as its URLconf; everything else goes to the
full application. The request lifecycle is otherwise Django's own (request_started/finished signals,
so database connections are managed as usual; the Host header is still checked against
ALLOWED_HOSTS). `bench/ofrep_http.py` measures the difference.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.core.handlers.exception import convert_exception_to_response
from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, HttpResponse

MACHINE_PREFIXES = ("/ofrep/", "/api/client/", "/api/frontend")
MACHINE_URLCONF = "flags.machine_urls"

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


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


def machine_dispatch(application: WSGIApp) -> WSGIApp:
    """Wrap the project's WSGI application: machine paths take the light handler."""
    machine = MachineHandler()

    def dispatch(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO", "").startswith(MACHINE_PREFIXES):
            return machine(environ, start_response)
        return application(environ, start_response)

    return dispatch
