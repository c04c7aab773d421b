"""OFREP (OpenFeature Remote Evaluation Protocol) endpoints, authenticated by SDK key.

    POST /ofrep/v1/evaluate/flags/<key>   one flag
    POST /ofrep/v1/evaluate/flags         every flag (ETag / If-None-Match -> 304)

Body: `{"context": {...}}` (optional; `{}` or an empty body means an empty context). The
context maps to Unleash's: `targetingKey` is `userId`; `sessionId`, `remoteAddress`,
`appName`, `environment` and `currentTime` keep their names; everything else is a property.

Answers `{"key", "value", "reason", "variant", "metadata"}` with a standard reason (STATIC,
TARGETING_MATCH, SPLIT, DISABLED, DEFAULT) and always a `variant`:

- boolean flag: `value` is on/off; `variant` is the Unleash variant name (`disabled` when
  none applies) and a variant payload travels in `metadata` as `payload` / `payloadType`.
- string, number and object flags: `value` is the chosen variant's payload (a number payload
  is an int, or a float when written with a fraction or exponent; an object payload is JSON).
  When no variant applies (flag off, no rule matched) `value` is left out, so the SDK answers
  the caller's default, with the reason saying why.

Errors carry `errorCode` and `errorDetails`: PARSE_ERROR (400: the body is not JSON, or a
stored payload does not fit the flag's type), INVALID_CONTEXT (400: `context` is not an object,
`targetingKey` is not a string, a name or value is not valid Unicode, i.e. has a lone UTF-16
surrogate), TARGETING_KEY_MISSING (400, below), FLAG_NOT_FOUND (404),
GENERAL (500: a bug, never bad input; 503 with `Retry-After` in seconds when a process that
has no snapshot yet cannot reach the database). 401 without an SDK key, 403 for a refused key.

TARGETING_KEY_MISSING: a flag that is on and splits users by percentage or between weighted
variants, sticky on the user (stickiness `default` or `userId`), cannot give a stable answer
without knowing the user: such a flag answers TARGETING_KEY_MISSING when the context has no
`targetingKey` (nor `userId`), and, for the `default` stickiness, no `sessionId` either.
Flags that do not split (or split on another field) evaluate without a targeting key.

The bulk ETag is derived from the environment's compiled document and the context, so a
client polling with an unchanged context gets 304 until the configuration changes. (Flags
with `random` stickiness or date constraints evaluated against the current time may change
answer without a new ETag.)

Every answer allows cross-origin use (browser SDKs): `Access-Control-Allow-Origin: *`,
preflight `OPTIONS`, `ETag` exposed. The views are plain Django functions that never touch
the session or the user, and do no database query once the environment's snapshot is warm;
in production they are served without the middleware stack (`flags.machine_wsgi`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Callable
from functools import lru_cache, wraps
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from core.json_limits import loads_bounded
from flags import engine, sdk_auth, snapshot, usage

logger = logging.getLogger(__name__)

# On every machine answer: CORS for browser SDKs, and nosniff (these paths skip the middleware).
MACHINE_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "ETag",
    "X-Content-Type-Options": "nosniff",
}
PREFLIGHT_HEADERS = {
    **MACHINE_HEADERS,
    "Access-Control-Allow-Headers": (
        "Authorization, X-API-Key, Content-Type, If-None-Match, X-Rollcall-Environment"
    ),
    "Access-Control-Max-Age": "86400",
}
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
_canonical = json.JSONEncoder(separators=(",", ":"), sort_keys=True).encode
_INT_RE = re.compile(r"^[+-]?\d+$")
RETRY_AFTER_SECONDS = 5

MachineView = Callable[..., HttpResponse]


# --------------------------------------------------------------------------------------------
# Shared by the machine endpoints (OFREP and the Unleash client API)


def encode_json(data: Any) -> bytes:
    """A machine answer's body: compact JSON, UTF-8."""
    return _dumps(data).encode()


def json_response(data: Any, status: int = 200) -> HttpResponse:
    response = HttpResponse(encode_json(data), content_type="application/json", status=status)
    for name, value in MACHINE_HEADERS.items():
        response[name] = value
    return response


def ofrep_error(code: str, details: str, status: int, key: str | None = None) -> HttpResponse:
    body: dict[str, Any] = {"key": key} if key is not None else {}
    body.update(errorCode=code, errorDetails=details)
    return json_response(body, status)


def not_modified(etag: str) -> HttpResponse:
    response = HttpResponse(status=304)
    response["ETag"] = etag
    for name, value in MACHINE_HEADERS.items():
        response[name] = value
    return response


def etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


ALL_KINDS = frozenset((sdk_auth.SERVER, sdk_auth.FRONTEND))


def machine_view(
    *methods: str, kinds: frozenset[str] = ALL_KINDS
) -> Callable[[MachineView], MachineView]:
    """CSRF-exempt, CORS, SDK-key auth (the view gets the key's KeyInfo), JSON errors.

    `kinds`: the SDK key kinds this endpoint accepts (403 for the others).
    """
    allowed = ", ".join((*methods, "OPTIONS"))

    def decorator(view: MachineView) -> MachineView:
        @csrf_exempt
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method == "OPTIONS":
                response = HttpResponse(status=204)
                for name, value in PREFLIGHT_HEADERS.items():
                    response[name] = value
                # SDKs add their own headers (unleash-sdk, unleash-appname, ...): no cookies
                # are involved, so whatever a browser asks to send is allowed.
                requested = request.META.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS", "")
                if requested.strip():
                    response["Access-Control-Allow-Headers"] = (
                        f"{PREFLIGHT_HEADERS['Access-Control-Allow-Headers']}, {requested.strip()}"
                    )
                response["Access-Control-Allow-Methods"] = allowed
                return response
            if request.method not in methods:
                response = ofrep_error(
                    "GENERAL", f"Use {' or '.join(methods)} on this endpoint.", 405
                )
                response["Allow"] = allowed
                return response
            try:
                key_info = sdk_auth.authenticate(request)
                sdk_auth.require_kind(key_info, kinds)
                return view(request, key_info, *args, **kwargs)
            except sdk_auth.AuthError as exc:
                return ofrep_error("GENERAL", exc.detail, exc.status)
            except snapshot.EnvironmentNotFound:
                return ofrep_error("GENERAL", "This SDK key's environment no longer exists.", 403)
            except DatabaseError:
                # Only a cold process needs the database: tell clients to come back shortly.
                logger.exception("flags.machine_api_unavailable path=%s", request.path)
                response = ofrep_error(
                    "GENERAL", "Flags are briefly unavailable; retry after a few seconds.", 503
                )
                response["Retry-After"] = str(RETRY_AFTER_SECONDS)
                return response
            except Exception:
                logger.exception("flags.machine_api_failed path=%s", request.path)
                return ofrep_error(
                    "GENERAL", "Rollcall could not evaluate this request; it has been logged.", 500
                )

        return wrapper

    return decorator


# --------------------------------------------------------------------------------------------
# OFREP


class _BadRequest(Exception):
    def __init__(self, code: str, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def parse_context(body: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """A request body -> (the OFREP context as sent, the Unleash context); raises _BadRequest.

    Values that cannot be evaluated (lone UTF-16 surrogates) are INVALID_CONTEXT: see
    `flags.engine.context.context_from_ofrep`, which validates while it converts.
    """
    if not body.strip():
        return {}, {}
    try:
        data = loads_bounded(body)  # UTF-8 only, nesting depth limited
    except (ValueError, RecursionError) as exc:
        raise _BadRequest("PARSE_ERROR", f"The body is not valid JSON ({exc}).") from exc
    if not isinstance(data, dict):
        raise _BadRequest("PARSE_ERROR", 'The body must be a JSON object: {"context": {...}}.')
    context = data.get("context")
    if context is None:
        return {}, {}
    if not isinstance(context, dict):
        raise _BadRequest("INVALID_CONTEXT", "'context' must be a JSON object of attributes.")
    targeting_key = context.get("targetingKey")
    if targeting_key is not None and not isinstance(targeting_key, str):
        raise _BadRequest("INVALID_CONTEXT", "'targetingKey' must be a string.")
    try:
        return context, engine.context_from_ofrep(context)
    except engine.InvalidContext as exc:
        raise _BadRequest("INVALID_CONTEXT", exc.details) from None


@lru_cache(maxsize=4096)
def _typed_value(value_type: str, payload_value: str) -> Any:
    """A payload's value as the flag's type; ValueError when it does not fit."""
    if value_type == "number":
        text = payload_value.strip()
        if _INT_RE.match(text):
            return int(text)
        number = float(text)
        if not math.isfinite(number):
            raise ValueError("not a finite number")
        return number
    if value_type == "object":
        parsed = json.loads(payload_value)
        if not isinstance(parsed, dict | list):
            raise ValueError("not a JSON object or array")
        return parsed
    return payload_value


def _missing_targeting_key(compiled: snapshot.Compiled, key: str, ctx: dict[str, Any]) -> bool:
    user_only = compiled.needs_targeting_key.get(key)
    if user_only is None or ctx.get("userId"):
        return False
    return user_only or not ctx.get("sessionId")


# Answers kept per compiled snapshot at most (a snapshot has a few per flag; a cap in case).
MAX_CACHED_ANSWERS = 100_000


def evaluate_one(compiled: snapshot.Compiled, key: str, ctx: dict[str, Any]) -> dict[str, Any]:
    """The OFREP answer (success or error object) of one known flag. Shared: read-only."""
    return _answer(compiled, key, ctx)[0]


def _answer(
    compiled: snapshot.Compiled, key: str, ctx: dict[str, Any]
) -> tuple[dict[str, Any], usage.CountKey | None]:
    """(answer, its usage count key or None when it is not an evaluation).

    Every evaluation is built once per snapshot (`flags.engine`), so its answer and count
    key are built once too and kept on the snapshot (`Compiled.answers`, by the evaluation's
    identity; the entry holds the evaluation, so the identity cannot be reused meanwhile).
    """
    if _missing_targeting_key(compiled, key, ctx):
        return {
            "key": key,
            "errorCode": "TARGETING_KEY_MISSING",
            "errorDetails": (
                f"Flag {key!r} splits users by percentage or variant weight: send a "
                f"'targetingKey' in the context so each user gets a stable answer."
            ),
        }, None
    ev = compiled.snapshot.evaluate(key, ctx)
    cached = compiled.answers.get(id(ev))
    if cached is not None and cached[0] is ev:
        return cached[1], cached[2]
    result = _build_answer(compiled, key, ev)
    count = None
    if "errorCode" not in result:
        count = usage.ofrep_count_key(compiled.environment_id, result)
    if len(compiled.answers) < MAX_CACHED_ANSWERS:
        compiled.answers[id(ev)] = (ev, result, count)
    return result, count


def _build_answer(compiled: snapshot.Compiled, key: str, ev: engine.Evaluation) -> dict[str, Any]:
    value_type = compiled.value_types.get(key, "boolean")
    payload = ev.payload
    result: dict[str, Any] = {"key": key}
    metadata: dict[str, Any] = {}
    if value_type == "boolean":
        result["value"] = ev.enabled
        if payload is not None:
            metadata["payloadType"] = str(payload.get("type", ""))
            metadata["payload"] = str(payload.get("value", ""))
    elif ev.variant_enabled and payload is not None:
        try:
            result["value"] = _typed_value(value_type, str(payload.get("value", "")))
        except ValueError as exc:
            return {
                "key": key,
                "errorCode": "PARSE_ERROR",
                "errorDetails": (
                    f"Variant {ev.variant!r} of {value_type} flag {key!r} has a payload that "
                    f"is not a {value_type} ({exc}); fix the flag's variants."
                ),
            }
    result["reason"] = ev.reason
    result["variant"] = ev.variant
    result["metadata"] = metadata
    return result


def single_answer(
    compiled: snapshot.Compiled, environment_key: str, key: str, body: bytes
) -> tuple[int, dict[str, Any]]:
    """(status, OFREP answer) of `POST /ofrep/v1/evaluate/flags/<key>` with this body."""
    try:
        _, ctx = parse_context(body)
    except _BadRequest as exc:
        return 400, {"key": key, "errorCode": exc.code, "errorDetails": exc.details}
    if key not in compiled.snapshot:
        compiled = snapshot.load_latest(compiled.environment_id)  # created a moment ago?
    if key not in compiled.snapshot:
        return 404, {
            "key": key,
            "errorCode": "FLAG_NOT_FOUND",
            "errorDetails": f"There is no flag {key!r} in the environment {environment_key!r}.",
        }
    result, count = _answer(compiled, key, ctx)
    usage.ofrep_count_keys((count,))  # aggregated in process, flushed every few seconds
    return (400 if "errorCode" in result else 200), result


def bulk_answer(
    compiled: snapshot.Compiled, body: bytes, if_none_match: str | None
) -> tuple[int, dict[str, Any] | None, str | None]:
    """(status, answer, ETag) of `POST /ofrep/v1/evaluate/flags`; answer None for a 304."""
    try:
        raw_ctx, ctx = parse_context(body)
    except _BadRequest as exc:
        return 400, {"errorCode": exc.code, "errorDetails": exc.details}, None
    digest = hashlib.blake2b(
        compiled.etag.encode() + _canonical(raw_ctx).encode(), digest_size=16
    ).hexdigest()
    etag = f'"{digest}"'
    if etag_matches(if_none_match, etag):
        return 304, None, etag
    answers = [_answer(compiled, key, ctx) for key in compiled.snapshot.flag_keys]
    usage.ofrep_count_keys([count for _, count in answers])  # aggregated, like single answers
    return 200, {"flags": [answer for answer, _ in answers]}, etag


def _request_body(request: HttpRequest) -> bytes | None:
    try:
        return request.body
    except RequestDataTooBig:
        return None


_TOO_LARGE = "The request body is too large."


#: The SDK key kinds OFREP accepts (both: browser SDKs evaluate through OFREP too).
OFREP_KINDS = ALL_KINDS


@machine_view("POST", kinds=OFREP_KINDS)
def evaluate_flag(request: HttpRequest, key_info: sdk_auth.KeyInfo, key: str) -> HttpResponse:
    compiled = snapshot.load(key_info.environment_id)
    body = _request_body(request)
    if body is None:
        return ofrep_error("PARSE_ERROR", _TOO_LARGE, 400, key)
    status, result = single_answer(compiled, key_info.environment_key, key, body)
    return json_response(result, status)


@machine_view("POST", kinds=OFREP_KINDS)
def evaluate_flags(request: HttpRequest, key_info: sdk_auth.KeyInfo) -> HttpResponse:
    compiled = snapshot.load(key_info.environment_id)
    body = _request_body(request)
    if body is None:
        return ofrep_error("PARSE_ERROR", _TOO_LARGE, 400)
    status, result, etag = bulk_answer(compiled, body, request.META.get("HTTP_IF_NONE_MATCH"))
    if result is None and etag is not None:
        return not_modified(etag)
    response = json_response(result, status)
    if etag is not None:
        response["ETag"] = etag
    return response
