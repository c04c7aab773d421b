"""The Unleash frontend API, for browser and mobile SDKs (`unleash-proxy-client` and the React,
iOS and Android SDKs built on it).

    GET  /api/frontend                   the enabled toggles for the context in the query
    POST /api/frontend                   the same, context in the body: {"context": {...}}
    GET  /api/frontend/features/<name>   one toggle (404 when it is off or unknown)
    POST /api/frontend/features/<name>
    POST /api/frontend/client/metrics    counts stored like the client API's (202)
    POST /api/frontend/client/register   accepted (200) and discarded

Answers Unleash's format, listing only the flags that are on for the context:

    {"toggles": [{"name": "checkout", "enabled": true, "impressionData": false,
                  "variant": {"name": "blue", "enabled": true, "feature_enabled": true,
                              "payload": {"type": "string", "value": "..."}}}]}

The variant is `{"name": "disabled", "enabled": false}` when none applies. Nothing else of the
configuration (rules, segments, user lists) leaves the server, so these endpoints accept
frontend SDK keys, which are public once shipped in an app (server keys work too).

Context, as the SDKs send it: query parameters `userId`, `sessionId`, `remoteAddress`,
`environment`, `appName`, `currentTime` and `properties[<name>]=<value>`; any other query
parameter is a property too (as in Unleash). With POST the body is `{"context": {...}}` with
the same names and a `properties` object. Unlike Unleash, Rollcall does not fill in
`remoteAddress` from the caller's IP address: a rule on it only sees an address the app sends.

`ETag` (derived from the environment's configuration and the context) and `If-None-Match`
give 304 while nothing changed; CORS allows any origin (no cookies are involved), preflight
included. Served without the middleware stack, like OFREP (`flags.machine_wsgi`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, QueryDict

from core.json_limits import loads_bounded
from flags import engine, sdk_auth, snapshot, usage
from flags.engine.context import TOP_LEVEL_FIELDS
from flags.ofrep import (
    MACHINE_HEADERS,
    etag_matches,
    json_response,
    machine_view,
    not_modified,
)

logger = logging.getLogger(__name__)

_canonical = json.JSONEncoder(separators=(",", ":"), sort_keys=True, default=str).encode
_PROPERTY_PREFIX = "properties["


class _BadRequest(Exception):
    pass


def context_from_query(query: QueryDict) -> dict[str, Any]:
    """The Unleash context of a frontend GET: top-level fields and `properties[name]`."""
    context: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    for name, value in query.items():
        if name.startswith(_PROPERTY_PREFIX) and name.endswith("]"):
            properties[name[len(_PROPERTY_PREFIX) : -1]] = value
        elif name in TOP_LEVEL_FIELDS:
            context[name] = value
        else:
            properties[name] = value
    if properties:
        context["properties"] = properties
    return context


def context_from_body(request: HttpRequest) -> dict[str, Any]:
    """The Unleash context of a frontend POST (`{"context": {...}}`); raises _BadRequest."""
    try:
        body = request.body
    except RequestDataTooBig as exc:
        raise _BadRequest("The request body is too large.") from exc
    if not body.strip():
        return {}
    try:
        data = loads_bounded(body)  # UTF-8 only, nesting depth limited
    except (ValueError, RecursionError) as exc:
        raise _BadRequest(f"The body is not valid JSON ({exc}).") from exc
    if not isinstance(data, dict):
        raise _BadRequest('The body must be a JSON object: {"context": {...}}.')
    context = data.get("context", {})
    if context is None:
        return {}
    if not isinstance(context, dict):
        raise _BadRequest("'context' must be a JSON object of attributes.")
    properties = context.get("properties") or {}
    if not isinstance(properties, dict):
        raise _BadRequest("'context.properties' must be a JSON object.")
    flat = {k: v for k, v in context.items() if k != "properties"}
    return {**flat, "properties": properties} if properties else flat


def unleash_context(raw: dict[str, Any]) -> dict[str, Any]:
    """Normalise a frontend context for the engine (unknown top-level names are properties)."""
    properties = raw.get("properties") or {}
    flat = {k: v for k, v in raw.items() if k != "properties" and k != "targetingKey"}
    # Explicit properties win over top-level extras of the same name, as in Unleash.
    return engine.context_from_ofrep({**flat, **properties})


def toggle(compiled: snapshot.Compiled, key: str, ctx: dict[str, Any]) -> dict[str, Any] | None:
    """One flag in the frontend format, or None when it is off for this context."""
    evaluation = compiled.snapshot.evaluate(key, ctx)
    if not evaluation.enabled:
        return None
    variant: dict[str, Any] = {"name": evaluation.variant, "enabled": evaluation.variant_enabled}
    if evaluation.payload is not None:
        variant["payload"] = evaluation.payload
    variant["feature_enabled"] = True
    return {
        "name": key,
        "enabled": True,
        "variant": variant,
        "impressionData": compiled.impression_data.get(key, False),
    }


def _context(request: HttpRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    raw = (
        context_from_body(request) if request.method == "POST" else context_from_query(request.GET)
    )
    try:
        return raw, unleash_context(raw)
    except engine.InvalidContext as exc:  # a lone UTF-16 surrogate: never reaches the engine
        raise _BadRequest(exc.details) from None


def _etag(compiled: snapshot.Compiled, raw: dict[str, Any], name: str = "") -> str:
    digest = hashlib.blake2b(
        b"frontend:" + compiled.etag.encode() + name.encode() + _canonical(raw).encode(),
        digest_size=16,
    ).hexdigest()
    return f'"{digest}"'


def _error(status: int, message: str) -> HttpResponse:
    return json_response({"error": message}, status)


@machine_view("GET", "POST")
def frontend_features(request: HttpRequest, key_info: sdk_auth.KeyInfo) -> HttpResponse:
    compiled = snapshot.load(key_info.environment_id)
    try:
        raw, ctx = _context(request)
    except _BadRequest as exc:
        return _error(400, str(exc))
    etag = _etag(compiled, raw)
    if etag_matches(request.META.get("HTTP_IF_NONE_MATCH"), etag):
        return not_modified(etag)
    toggles = [
        item
        for key in compiled.snapshot.flag_keys
        if (item := toggle(compiled, key, ctx)) is not None
    ]
    response = json_response({"toggles": toggles})
    response["ETag"] = etag
    return response


@machine_view("GET", "POST")
def frontend_feature(request: HttpRequest, key_info: sdk_auth.KeyInfo, name: str) -> HttpResponse:
    compiled = snapshot.load(key_info.environment_id)
    try:
        raw, ctx = _context(request)
    except _BadRequest as exc:
        return _error(400, str(exc))
    item = toggle(compiled, name, ctx) if name in compiled.snapshot else None
    if item is None:
        return _error(404, f"{name!r} is not enabled for this context (or does not exist).")
    etag = _etag(compiled, raw, name)
    if etag_matches(request.META.get("HTTP_IF_NONE_MATCH"), etag):
        return not_modified(etag)
    response = json_response(item)
    response["ETag"] = etag
    return response


def _accepted(status: int) -> HttpResponse:
    response = HttpResponse(status=status)
    for header, value in MACHINE_HEADERS.items():
        response[header] = value
    return response


@machine_view("POST")
def frontend_metrics(request: HttpRequest, key_info: sdk_auth.KeyInfo) -> HttpResponse:
    from flags.unleash import usage_response  # the same storage as the client API's

    return usage_response(request, key_info, usage.client_metrics_store, source="frontend")


@machine_view("POST")
def frontend_register(request: HttpRequest, key_info: sdk_auth.KeyInfo) -> HttpResponse:
    logger.debug(
        "flags.frontend_registered environment=%s app=%s",
        key_info.environment_key,
        request.META.get("HTTP_UNLEASH_APPNAME", ""),
    )
    return _accepted(200)
