"""The API's pagination: DRF's limit/offset with bounds, so that no query string can ask the
database for a number it cannot store (SQLite and PostgreSQL stop at 2**63 - 1)."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request

MAX_LIMIT = 1000
MAX_OFFSET = 2**31 - 1


def _bounded(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({name: [f"{name} must be a whole number."]}) from None
    if not low <= value <= high:
        raise ValidationError({name: [f"{name} must be between {low} and {high}."]})
    return value


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """`?limit=` from 1 to MAX_LIMIT, `?offset=` from 0 to MAX_OFFSET; else a 400 saying so."""

    max_limit = MAX_LIMIT

    def get_limit(self, request: Request) -> Any:
        return _bounded(request, self.limit_query_param, self.default_limit, 1, MAX_LIMIT)

    def get_offset(self, request: Request) -> Any:
        return _bounded(request, self.offset_query_param, 0, 0, MAX_OFFSET)
