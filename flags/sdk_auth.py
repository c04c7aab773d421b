"""SDK-key authentication for the machine APIs (OFREP and the Unleash client API).

A key is sent as `Authorization: Bearer <key>`, `Authorization: <key>` (what Unleash SDKs
send) or `X-API-Key: <key>`. Keys look like `rc_<environment-key>_<public id>_<secret>`, stored as
SHA-256 hashes. A request may name the environment it expects in `X-Rollcall-Environment`;
a key of another environment is then refused.

Lookups are kept in the process while `flags.freshness` reports no SDK-key change (it checks
at most every `settings.FLAGS_SNAPSHOT_TTL` seconds), and with a shared cache also in the
Django cache (`flags:sdkkey:<hash>`), so a warm request does no query. `sdk_key_revoke` calls
`forget()` on commit: the revocation applies at once in that process and within the same
interval everywhere else. Keys only evaluate: the management API never accepts them.

Two kinds: `server` keys may use every machine endpoint; `frontend` keys (shipped in browser
and mobile apps, so public) only get evaluated answers: the Unleash frontend API and OFREP,
never the rules (`/api/client/features`). Views state the kinds they accept (`require_kind`).
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import NamedTuple

from django.conf import settings
from django.http import HttpRequest

from flags import freshness
from flags.snapshot import cache_call

logger = logging.getLogger(__name__)

KEY_PREFIX = "rc_"
ENVIRONMENT_HEADER = "HTTP_X_ROLLCALL_ENVIRONMENT"
CACHE_KEY = "flags:sdkkey:{}"
CACHE_TIMEOUT = 300
_DENIED = "-"


SERVER = "server"
FRONTEND = "frontend"


class KeyInfo(NamedTuple):
    sdk_key_id: int
    environment_id: int
    environment_key: str
    kind: str = SERVER


class AuthError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


_LOCAL: dict[str, tuple[KeyInfo | None, float]] = {}
# Bumped by forget(): a lookup that started before a revocation must not store its answer.
_GENERATION = [0]
# The SDK keys' fingerprint (`freshness.keys_fingerprint`) the entries of _LOCAL were read at.
_FINGERPRINT: list[tuple[int, int, int] | None] = [None]
_clock = time.monotonic


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def raw_key(request: HttpRequest) -> str | None:
    """The key a request carries, or None."""
    meta = request.META
    value = meta.get("HTTP_AUTHORIZATION") or meta.get("HTTP_X_API_KEY")
    if not value:
        return None
    value = value.strip()
    scheme, _, rest = value.partition(" ")
    if rest and scheme.lower() == "bearer":
        value = rest.strip()
    return value or None


def authenticate(request: HttpRequest) -> KeyInfo:
    """The key's environment; AuthError(401) without a key, (403) for a refused one."""
    raw = raw_key(request)
    if raw is None:
        raise AuthError(
            401,
            "Send an SDK key: 'Authorization: Bearer <key>' or 'X-API-Key: <key>'. "
            "Admins create keys on the environment's page.",
        )
    info = lookup(hash_key(raw))
    if info is None:
        raise AuthError(403, "This SDK key is unknown or revoked.")
    wanted = request.META.get(ENVIRONMENT_HEADER)
    if wanted and wanted != info.environment_key:
        raise AuthError(
            403,
            f"This SDK key belongs to the environment {info.environment_key!r}, not {wanted!r}.",
        )
    from flags import sdk_usage  # last_used_at, batched (never a write per request)

    sdk_usage.record_use(info.sdk_key_id)
    return info


def require_kind(info: KeyInfo, kinds: frozenset[str]) -> None:
    """AuthError(403) when the key's kind may not call this endpoint."""
    if info.kind not in kinds:
        raise AuthError(
            403,
            f"A {info.kind} SDK key cannot call this endpoint: frontend keys only get evaluated "
            "answers (/api/frontend, OFREP); use a server key for the Unleash client API.",
        )


def lookup(key_hash: str) -> KeyInfo | None:
    """The active key with this hash (in-process, then cache, then one query)."""
    fingerprint = freshness.keys_fingerprint()
    if fingerprint != _FINGERPRINT[0]:  # a key was created, revoked or deleted somewhere
        _GENERATION[0] += 1
        _LOCAL.clear()
        _FINGERPRINT[0] = fingerprint
    entry = _LOCAL.get(key_hash)
    now = _clock()
    shared = freshness.cache_is_shared()
    # Without a shared cache the fingerprint alone says when an entry may be out of date.
    if entry is not None and (not shared or now - entry[1] < settings.FLAGS_SNAPSHOT_TTL):
        return entry[0]
    generation = _GENERATION[0]
    info = _from_cache(key_hash) if shared else _MISS
    if info is _MISS:
        info = _from_database(key_hash)
        if shared:
            cache_call("add", CACHE_KEY.format(key_hash), _encode(info), CACHE_TIMEOUT)
    if len(_LOCAL) > 10_000:
        _LOCAL.clear()  # bound memory under a flood of random keys
    if _GENERATION[0] == generation:
        _LOCAL[key_hash] = (info, now)  # type: ignore[assignment]
    return info  # type: ignore[return-value]


def forget(key_hash: str) -> None:
    """A key changed (revoked): drop it here and mark it denied for other processes."""
    _GENERATION[0] += 1
    _LOCAL.pop(key_hash, None)
    cache_call("set", CACHE_KEY.format(key_hash), _DENIED, CACHE_TIMEOUT)
    freshness.publish()


def clear_local() -> None:
    _LOCAL.clear()
    _FINGERPRINT[0] = None


_MISS = object()


def _encode(info: KeyInfo | None) -> str:
    if info is None:
        return _DENIED
    return f"{info.sdk_key_id}|{info.environment_id}|{info.kind}|{info.environment_key}"


def _from_cache(key_hash: str) -> KeyInfo | object | None:
    value = cache_call("get", CACHE_KEY.format(key_hash))
    if value is None:
        return _MISS
    if value == _DENIED:
        return None
    parts = value.split("|", 3)
    if len(parts) == 3:  # written before key kinds existed: a server key
        parts.insert(2, SERVER)
    sdk_key_id, environment_id, kind, environment_key = parts
    return KeyInfo(int(sdk_key_id), int(environment_id), environment_key, kind)


def _from_database(key_hash: str) -> KeyInfo | None:
    from flags.models import SdkKey

    row = (
        SdkKey.objects.filter(key_hash=key_hash, revoked_at__isnull=True)
        .values_list("id", "environment_id", "environment__key", "kind")
        .first()
    )
    if row is None:
        return None
    return KeyInfo(*row)
