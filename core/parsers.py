"""Bounded JSON for the API: a body-size limit and a nesting-depth limit.

DRF's own `JSONParser` reads the whole request stream (Django's DATA_UPLOAD_MAX_MEMORY_SIZE
only guards `request.body` and form parsing) and lets `RecursionError` from a deeply nested
document escape as a 500. `BoundedJSONParser` reads at most DATA_UPLOAD_MAX_MEMORY_SIZE bytes
(413 beyond), refuses documents nested deeper than `core.json_limits.MAX_JSON_DEPTH` and
bodies that are not UTF-8 (400), each with a message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import IO, Any

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser

from core.json_limits import JSONTooDeep, NotUTF8, loads_bounded


class BodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "too_large"


def max_body_bytes() -> int:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return int(limit) if limit is not None else 2_621_440


def too_large_message() -> str:
    return f"The request body is larger than {max_body_bytes()} bytes."


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser with a body-size limit (413) and a depth limit (400)."""

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        limit = max_body_bytes()
        body = stream.read(limit + 1)
        if len(body) > limit:
            raise BodyTooLarge(too_large_message())
        try:
            return loads_bounded(body)
        except (NotUTF8, JSONTooDeep) as exc:
            raise ParseError(str(exc)) from None
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
