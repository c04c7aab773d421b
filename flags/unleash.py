"""The Unleash client API, so any Unleash SDK can use Rollcall as its server.

    GET  /api/client/features   the key's environment in Unleash's format (ETag / 304)
    POST /api/client/register   app, instance and SDK version stored (202; `flags.usage`)
    POST /api/client/metrics    yes/no and variant counts stored per minute (202)

Unleash SDKs send the key as `Authorization: <key>`; `Bearer` and `X-API-Key` work too
(see `flags.sdk_auth`); only server keys are accepted here (the document holds every rule,
segment and user list; browsers use the frontend API, `flags.frontend`). The document is the
environment's compiled snapshot's, served as cached bytes: no query and no serialisation per
request once warm. Rollcall serves every flag of the environment whatever the `project` or
`namePrefix` query parameters say.
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest, HttpResponse

from core.exceptions import ApplicationError
from flags import sdk_auth, snapshot, usage
from flags.ofrep import MACHINE_HEADERS, etag_matches, machine_view, not_modified, ofrep_error

logger = logging.getLogger(__name__)


SERVER_ONLY = frozenset((sdk_auth.SERVER,))


@machine_view("GET", kinds=SERVER_ONLY)
def client_features(request: HttpRequest, key_info: sdk_auth.KeyInfo) -> HttpResponse:
    compiled = snapshot.load(key_info.environment_id)
    if etag_matches(request.META.get("HTTP_IF_NONE_MATCH"), compiled.etag):
        return not_modified(compiled.etag)
    response = HttpResponse(compiled.body, content_type="application/json")
    response["ETag"] = compiled.etag
    for name, value in MACHINE_HEADERS.items():
        response[name] = value
    return response


def _accepted() -> HttpResponse:
    response = HttpResponse(status=202)
    for name, value in MACHINE_HEADERS.items():
        response[name] = value
    return response


@machine_view("POST", kinds=SERVER_ONLY)
def client_register(request: HttpRequest, key_info: sdk_auth.KeyInfo) -> HttpResponse:
    logger.debug(
        "flags.sdk_registered environment=%s app=%s",
        key_info.environment_key,
        request.META.get("HTTP_UNLEASH_APPNAME", ""),
    )
    return usage_response(request, key_info, usage.client_register)


@machine_view("POST", kinds=SERVER_ONLY)
def client_metrics(request: HttpRequest, key_info: sdk_auth.KeyInfo) -> HttpResponse:
    return usage_response(request, key_info, usage.client_metrics_store)


def sdk_headers(request: HttpRequest) -> dict[str, str]:
    """What Unleash SDKs say about themselves in headers (appname, instanceid, sdk)."""
    meta = request.META
    return {
        "appname": meta.get("HTTP_UNLEASH_APPNAME", ""),
        "instanceid": meta.get("HTTP_UNLEASH_INSTANCEID", ""),
        "sdk": meta.get("HTTP_UNLEASH_SDK", ""),
    }


def usage_response(
    request: HttpRequest, key_info: sdk_auth.KeyInfo, store: Any, *, status: int = 202,
    source: str = "unleash",
) -> HttpResponse:  # fmt: skip
    """Store what the SDK reported; a malformed body is a 400 saying what is wrong."""
    try:
        store(
            environment_id=key_info.environment_id,
            body=request.body,
            headers=sdk_headers(request),
            source=source,
        )
    except ApplicationError as exc:
        return ofrep_error("INVALID_CONTEXT", exc.message, 400)
    response = _accepted()
    response.status_code = status
    return response
