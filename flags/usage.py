"""Usage reported by SDKs: who asks for which flag, how often, and what they got.

- Unleash client metrics (`POST /api/client/metrics`, also the frontend API's): yes/no and
  variant counts per flag for an interval, per app and instance, stored per minute.
- Registrations (`POST /api/client/register`): app, instance, SDK version, last seen.
- OFREP evaluations: counted in process (`ofrep_count_keys`, a dict increment under a lock) and
  written in aggregate every `FLAGS_USAGE_FLUSH_SECONDS` by a background thread: never a
  database write per evaluation.
- Selectors for the flag page (evaluations over time, connected applications), the observed
  exposure of a time range, and stale flags.
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.db import close_old_connections, connection, transaction
from django.db.models import Max, Q, Sum
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.exceptions import ApplicationError
from core.when import format_date
from flags.models import ClientApplication, Environment, Flag, FlagState, FlagUsage

logger = logging.getLogger(__name__)

MAX_TOGGLES = 5000
MAX_NAME = 200


def _minute(at: datetime) -> datetime:
    return at.replace(second=0, microsecond=0)


def _text(value: Any, where: str, limit: int = MAX_NAME) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ApplicationError(f"{where} must be a string.", field=where)
    return value.strip()[:limit]


def _count(value: Any, where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 10**12:
        raise ApplicationError(f"{where} must be a count (a whole number >= 0).", field=where)
    return value


def _body(raw: bytes) -> dict[str, Any]:
    try:
        payload = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ApplicationError("The body is not JSON.", field="body") from None
    if not isinstance(payload, dict):
        raise ApplicationError("The body must be a JSON object.", field="body")
    return payload


# --------------------------------------------------------------------------------------------
# Writing


def usage_add(
    *,
    environment_id: int,
    counts: Mapping[tuple[str, str, str, str], tuple[int, int, Mapping[str, int]]],
    bucket: datetime,
) -> None:
    """Add counts to the minute rows: (flag, app, instance, source) -> (yes, no, variants).

    Three statements whatever the number of flags (an SDK may report thousands in one post):
    insert the missing rows (rows another process inserts meanwhile are skipped), lock and
    read them in key order (two writers of the same minute wait for each other instead of
    deadlocking), write the sums back in one update.
    """
    bucket = _minute(bucket)
    wanted = {
        key: value
        for key, value in sorted(counts.items())
        if value[0] or value[1] or any(value[2].values())
    }
    if not wanted:
        return

    def dims(i: int) -> list[str]:
        return sorted({key[i] for key in wanted})

    with transaction.atomic():
        FlagUsage.objects.bulk_create(
            [
                FlagUsage(
                    environment_id=environment_id,
                    flag_key=flag_key,
                    app_name=app,
                    instance_id=instance,
                    source=source,
                    bucket=bucket,
                )
                for flag_key, app, instance, source in wanted
            ],
            ignore_conflicts=True,
        )
        # Callers add one app instance's (or OFREP's) counts at a time, so these filters
        # select exactly the wanted rows; any other row they might select is left as it is.
        rows = (
            FlagUsage.objects.select_for_update()
            .filter(
                environment_id=environment_id,
                bucket=bucket,
                flag_key__in=dims(0),
                app_name__in=dims(1),
                instance_id__in=dims(2),
                source__in=dims(3),
            )
            .order_by("flag_key", "app_name", "instance_id", "source")
        )
        changed = []
        for row in rows:
            added = wanted.get((row.flag_key, row.app_name, row.instance_id, row.source))
            if added is None:
                continue
            yes, no, variants = added
            row.yes += yes
            row.no += no
            merged = dict(row.variants or {})
            for name, n in variants.items():
                merged[name] = int(merged.get(name, 0)) + int(n)
            row.variants = merged
            changed.append(row)
        FlagUsage.objects.bulk_update(changed, ["yes", "no", "variants"], batch_size=1000)


def client_seen(
    *,
    environment_id: int,
    app_name: str,
    instance_id: str,
    now: datetime,
    sdk_version: str = "",
    source: str = FlagUsage.Source.UNLEASH,
) -> None:
    app_name = app_name or "unknown"
    updated = ClientApplication.objects.filter(
        environment_id=environment_id, app_name=app_name, instance_id=instance_id
    )
    fields: dict[str, Any] = {"last_seen": now, "updated_at": now}
    if sdk_version:
        fields["sdk_version"] = sdk_version
    if updated.update(**fields):
        return
    ClientApplication.objects.get_or_create(
        environment_id=environment_id,
        app_name=app_name,
        instance_id=instance_id,
        defaults={"sdk_version": sdk_version, "source": source, "first_seen": now,
                  "last_seen": now},
    )  # fmt: skip


def client_register(
    *, environment_id: int, body: bytes, headers: Mapping[str, str], now: datetime | None = None,
    source: str = FlagUsage.Source.UNLEASH,
) -> None:  # fmt: skip
    """An Unleash SDK registered: remember app, instance, SDK version and when."""
    payload = _body(body)
    now = now or timezone.now()
    app = _text(payload.get("appName") or headers.get("appname", ""), "appName")
    instance = _text(payload.get("instanceId") or headers.get("instanceid", ""), "instanceId")
    sdk = _text(payload.get("sdkVersion") or headers.get("sdk", ""), "sdkVersion", 100)
    client_seen(
        environment_id=environment_id, app_name=app, instance_id=instance, now=now,
        sdk_version=sdk, source=source,
    )  # fmt: skip


def client_metrics_store(
    *, environment_id: int, body: bytes, headers: Mapping[str, str], now: datetime | None = None,
    source: str = FlagUsage.Source.UNLEASH,
) -> int:  # fmt: skip
    """Unleash client metrics: `{appName, instanceId, bucket: {start, stop, toggles: {flag:
    {yes, no, variants: {name: count}}}}}`. Returns how many flags had counts."""
    payload = _body(body)
    now = now or timezone.now()
    app = _text(payload.get("appName") or headers.get("appname", ""), "appName")
    instance = _text(payload.get("instanceId") or headers.get("instanceid", ""), "instanceId")
    bucket = payload.get("bucket")
    if bucket is None:
        bucket = {}  # nothing counted (some SDKs send an empty report): only "seen"
    if not isinstance(bucket, dict):
        raise ApplicationError("`bucket` must be an object.", field="bucket")
    toggles = bucket.get("toggles")
    toggles = {} if toggles is None else toggles
    if not isinstance(toggles, dict):
        raise ApplicationError("`bucket.toggles` must be an object.", field="bucket.toggles")
    if len(toggles) > MAX_TOGGLES:
        raise ApplicationError(f"At most {MAX_TOGGLES} toggles.", field="bucket.toggles")
    stop = bucket.get("stop")
    at = now
    if isinstance(stop, str):
        parsed = parse_datetime(stop)
        # A clock far off (or a replayed bucket) counts now, never in the future or far past.
        if (
            parsed is not None
            and timezone.is_aware(parsed)
            and abs(parsed - now) < timedelta(hours=1)
        ):
            at = parsed
    counts: dict[tuple[str, str, str, str], tuple[int, int, dict[str, int]]] = {}
    for name, raw in toggles.items():
        where = f"bucket.toggles.{str(name)[:50]}"
        if not isinstance(raw, dict):
            raise ApplicationError(f"{where} must be an object.", field=where)
        variants_raw = raw.get("variants")
        variants_raw = {} if variants_raw is None else variants_raw
        if not isinstance(variants_raw, dict):
            raise ApplicationError(f"{where}.variants must be an object.", field=where)
        variants = {
            str(v)[:MAX_NAME]: _count(n, f"{where}.variants") for v, n in variants_raw.items()
        }
        counts[(str(name)[:MAX_NAME], app, instance, source)] = (
            _count(raw.get("yes"), f"{where}.yes"),
            _count(raw.get("no"), f"{where}.no"),
            variants,
        )
    usage_add(environment_id=environment_id, counts=counts, bucket=at)
    client_seen(
        environment_id=environment_id, app_name=app, instance_id=instance, now=now,
        sdk_version=_text(headers.get("sdk", ""), "sdk", 100), source=source,
    )  # fmt: skip
    return len(counts)


# --------------------------------------------------------------------------------------------
# OFREP: counted in process, flushed in aggregate


class CountKey:
    """What one OFREP answer adds to: environment, flag, variant ("" for none), a "yes".

    Hashed and compared by identity (cheaper than a tuple's hash, which is computed anew at
    every lookup): `flags.ofrep` makes one per answer of a snapshot and reuses it for every
    request with that answer; the flush adds up keys of equal value (other snapshots).
    """

    __slots__ = ("environment_id", "flag_key", "variant", "yes")

    def __init__(self, environment_id: int, flag_key: str, variant: str, yes: bool) -> None:
        self.environment_id = environment_id
        self.flag_key = flag_key
        self.variant = variant
        self.yes = yes


_PENDING: Counter[CountKey] = Counter()
_LOCK = threading.Lock()
_STATE = {"last_flush": time.monotonic(), "flushing": False}


_CONF: list[tuple[bool, float]] = []


def _conf() -> tuple[bool, float]:
    """(FLAGS_USAGE_OFREP, FLAGS_USAGE_FLUSH_SECONDS), read once: a Django settings lookup
    costs more than counting an answer."""
    if not _CONF:
        _CONF.append((bool(settings.FLAGS_USAGE_OFREP), float(settings.FLAGS_USAGE_FLUSH_SECONDS)))
    return _CONF[0]


def _forget_conf(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("FLAGS_USAGE_"):
        _CONF.clear()


setting_changed.connect(_forget_conf)


def ofrep_count_key(environment_id: int, result: Mapping[str, Any]) -> CountKey:
    """The count key of one successful OFREP answer. `flags.ofrep` builds it once per
    evaluation of a snapshot (with the answer), so counting an answer only adds to it."""
    value = result.get("value")
    return CountKey(
        environment_id,
        result["key"],
        result.get("variant") or "",
        value is True or (value is not False and value is not None),
    )


def ofrep_count_keys(counted: Iterable[CountKey | None]) -> None:
    """Count the answers of one OFREP request (one flag, or every flag of a bulk request)
    under one lock, in one C-level pass; None stands for an error answer (not counted)."""
    if not _conf()[0]:
        return
    with _LOCK:
        _PENDING.update(filter(None, counted))
        due = _flush_due()
    if due:
        _start_flush()


def _flush_due() -> bool:
    """Whether this request hands the counts to a flush thread (called holding _LOCK)."""
    now = time.monotonic()
    every = _conf()[1]  # 0: no background flush (tests flush)
    if 0 < every <= now - _STATE["last_flush"] and not _STATE["flushing"]:
        _STATE["flushing"] = True
        _STATE["last_flush"] = now
        return True
    return False


def _start_flush() -> None:
    threading.Thread(target=_flush_in_thread, name="ofrep-usage-flush", daemon=True).start()


def _take() -> dict[CountKey, int]:
    with _LOCK:
        taken = dict(_PENDING)
        _PENDING.clear()
    return taken


def ofrep_flush(*, now: datetime | None = None) -> int:
    """Write the counted OFREP evaluations (one row per environment, flag and minute)."""
    taken = _take()
    if not taken:
        return 0
    per_env: dict[int, dict[tuple[str, str, str, str], tuple[int, int, dict[str, int]]]] = {}
    for counted, n in taken.items():
        env_id, key = counted.environment_id, counted.flag_key
        variant, yes = counted.variant, counted.yes
        counts = per_env.setdefault(env_id, {})
        y, no, variants = counts.get((key, "", "", FlagUsage.Source.OFREP), (0, 0, {}))
        if yes:
            y += n
        else:
            no += n
        if variant:
            variants = {**variants, variant: variants.get(variant, 0) + n}
        counts[(key, "", "", FlagUsage.Source.OFREP)] = (y, no, variants)
    at = now or timezone.now()
    for env_id, counts in per_env.items():
        usage_add(environment_id=env_id, counts=counts, bucket=at)
    return sum(taken.values())


def _flush_in_thread() -> None:
    try:
        close_old_connections()
        ofrep_flush()
    except Exception:  # a failed flush must never take a web process down
        logger.exception("usage.flush_failed")
    finally:
        with _LOCK:
            _STATE["flushing"] = False
        connection.close()


@atexit.register
def _flush_at_exit() -> None:  # pragma: no cover - process shutdown
    try:
        if _PENDING and settings.FLAGS_USAGE_FLUSH_SECONDS > 0:
            ofrep_flush()
    except Exception:  # noqa: BLE001 - the process is exiting; say so and go
        logger.warning("usage.flush_at_exit_failed")


# --------------------------------------------------------------------------------------------
# Reading


@dataclass(frozen=True)
class UsagePoint:
    bucket: datetime
    environment: str
    yes: int
    no: int
    variants: dict[str, int]


def flag_usage(
    flag_key: str, *, since: datetime, environments: Iterable[Environment] | None = None
) -> list[UsagePoint]:
    """Evaluations of a flag per environment and minute (all apps and sources summed)."""
    qs = FlagUsage.objects.filter(flag_key=flag_key, bucket__gte=since)
    if environments is not None:
        qs = qs.filter(environment__in=list(environments))
    merged: dict[tuple[datetime, str], list[Any]] = {}
    for row in qs.select_related("environment").order_by("bucket"):
        slot = merged.setdefault((row.bucket, row.environment.key), [0, 0, defaultdict(int)])
        slot[0] += row.yes
        slot[1] += row.no
        for name, n in (row.variants or {}).items():
            slot[2][name] += int(n)
    return [
        UsagePoint(bucket, env, yes, no, dict(variants))
        for (bucket, env), (yes, no, variants) in sorted(merged.items())
    ]


def flag_apps(flag_key: str) -> list[dict[str, Any]]:
    """Applications that asked for the flag: app, instance, environment, SDK version, last
    evaluation and last seen."""
    asked = (
        FlagUsage.objects.filter(flag_key=flag_key)
        .exclude(app_name="")
        .values("environment_id", "app_name", "instance_id")
        .annotate(last=Max("bucket"), total=Sum("yes") + Sum("no"))
    )
    keys = {(a["environment_id"], a["app_name"], a["instance_id"]): a for a in asked}
    if not keys:
        return []
    q = Q()
    for env_id, app, instance in keys:
        q |= Q(environment_id=env_id, app_name=app, instance_id=instance)
    clients = {
        (c.environment_id, c.app_name, c.instance_id): c
        for c in ClientApplication.objects.filter(q).select_related("environment")
    }
    envs = {e.id: e for e in Environment.objects.filter(id__in={k[0] for k in keys})}
    rows = []
    for key, a in keys.items():
        client = clients.get(key)
        rows.append(
            {
                "environment": envs[key[0]],
                "app_name": key[1],
                "instance_id": key[2],
                "sdk_version": client.sdk_version if client else "",
                "last_seen": client.last_seen if client else a["last"],
                "last_evaluated": a["last"],
                "evaluations": a["total"] or 0,
            }
        )
    return sorted(rows, key=lambda r: r["last_seen"], reverse=True)


def observed_exposure(
    *, environment_id: int, flag_key: str, start: datetime, end: datetime | None
) -> tuple[float | None, int]:
    """yes / (yes + no) of a flag in an environment over [start, end) and how many answers."""
    qs = FlagUsage.objects.filter(
        environment_id=environment_id, flag_key=flag_key, bucket__gte=_minute(start)
    )
    if end is not None:
        qs = qs.filter(bucket__lt=end)
    totals = qs.aggregate(yes=Sum("yes"), no=Sum("no"))
    yes, no = totals["yes"] or 0, totals["no"] or 0
    return (yes / (yes + no) if yes + no else None), yes + no


def stale_flags(*, days: int, now: datetime | None = None) -> list[dict[str, Any]]:
    """Flags nobody evaluated for `days` days, and flags fully on everywhere they are enabled,
    unchanged for `days` days ("ready to remove"), with the apps that still ask for them."""
    now = now or timezone.now()
    since = now - timedelta(days=days)
    last_used = dict(
        FlagUsage.objects.values_list("flag_key").annotate(last=Max("bucket")).order_by()
    )
    recent_apps: dict[str, set[str]] = defaultdict(set)
    for key, app in (
        FlagUsage.objects.filter(bucket__gte=since)
        .exclude(app_name="")
        .values_list("flag_key", "app_name")
        .distinct()
    ):
        recent_apps[key].add(app)
    rows = []
    flags = Flag.objects.exclude(lifecycle=Flag.Lifecycle.ARCHIVED).prefetch_related("states")
    for flag in flags.order_by("key"):
        last = last_used.get(flag.key)
        states = list(flag.states.all())
        full = (
            bool(states)
            and all(_fully_on(s) for s in states if s.enabled)
            and any(s.enabled for s in states)
        )
        changed = max((s.updated_at for s in states), default=flag.updated_at)
        reason = ""
        if last is None or last < since:
            reason = "not evaluated" + (f" since {format_date(last)}" if last else " yet")
            if flag.created_at > since:
                continue  # too new to say
        elif full and changed < since:
            reason = "ready to remove: fully on, unchanged"
        if reason:
            rows.append(
                {"flag": flag, "reason": reason, "last_evaluated": last,
                 "apps": sorted(recent_apps.get(flag.key, set()))}
            )  # fmt: skip
    return rows


def _fully_on(state: FlagState) -> bool:
    rules = state.rules or []
    if not rules:
        return True  # enabled with no rules: on for everyone
    return any(
        r.get("name") == "default"
        or (
            r.get("name") == "flexibleRollout"
            and str((r.get("parameters") or {}).get("rollout")) == "100"
            and not r.get("constraints")
            and not r.get("segments")
        )
        for r in rules
    )
