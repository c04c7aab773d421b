"""Customer lookup: what does customer X see, per environment, and since when?

The answer must never disagree with what services get over OFREP, so it is computed by the
very function the OFREP endpoint answers with (`flags.ofrep.evaluate_one`), on the same
compiled snapshot (`flags.snapshot`) and the same context mapping
(`flags.engine.context_from_ofrep`).

Bounded whatever the number of flags and rollouts: the flags are answered one page at a time
(`LOOKUP_FLAGS_PER_PAGE`, in key order, optionally only those whose key or name contains a
search), and at most `LOOKUP_ROLLOUTS_LIMIT` recent rollouts are looked at. A constant number
of queries either way (the snapshots are in memory in the steady state).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import Prefetch, Q
from django.utils import timezone

from flags.models import Environment, Flag, FlagState
from rollouts.models import Phase, Rollout
from support.selectors._common import _state_event_subqueries, environments, format_when
from support.selectors.exposure import Exposure, rollout_exposure

LOOKUP_RECENT_DAYS = 30
LOOKUP_FLAGS_PER_PAGE = 50
# The newest rollouts looked at (of the active and recent ones); a search by flag finds others.
LOOKUP_ROLLOUTS_LIMIT = 100
_LOOKUP_STATES = (
    Rollout.State.RUNNING,
    Rollout.State.PAUSED,
    Rollout.State.HELD,
    Rollout.State.COMPLETED,
    Rollout.State.ROLLED_BACK,
)


@dataclass(frozen=True)
class FlagAnswer:
    key: str
    name: str
    value: Any  # as OFREP answers it; absent -> NO_VALUE
    has_value: bool
    variant: str
    reason: str
    error_code: str
    error_details: str
    # The answer in words: "yes — 25% split on user id, bucket 17 ≤ 25".
    words: str = ""
    rule_number: int | None = None  # the rule that decided, 1-based

    @property
    def reason_words(self) -> str:
        return REASON_WORDS.get(self.reason, self.reason.replace("_", " ").lower())

    @property
    def shown_variant(self) -> str:
        """The variant only when one applies (never Unleash's "disabled" placeholder)."""
        return "" if self.variant in ("", "disabled") else self.variant

    @property
    def value_text(self) -> str:
        if not self.has_value:
            return "(no value: the caller's default)"
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        if isinstance(self.value, (dict, list)):
            return json.dumps(self.value, sort_keys=True)
        return str(self.value)


@dataclass(frozen=True)
class Membership:
    rollout: Rollout
    exposure: Exposure
    is_in: bool | None  # None: the flag answered an error for this customer
    since: datetime | None
    text: str
    hosts: bool = False  # a rolling deploy: about hosts, not this customer


@dataclass
class EnvironmentAnswer:
    environment: Environment
    flags: list[FlagAnswer]  # the answers of this page's flags, by key
    memberships: list[Membership]
    error: str = ""
    # The page of flag keys `flags` answers (its paginator counts every matching flag).
    page: Page[str] | None = None

    @property
    def flag_count(self) -> int:
        return self.page.paginator.count if self.page is not None else len(self.flags)

    @property
    def rollouts_in(self) -> list[Membership]:
        return [m for m in self.memberships if m.is_in]


@dataclass
class LookupResult:
    context: dict[str, Any]
    environments: list[EnvironmentAnswer]
    flag_filter: str = ""
    # More rollouts matched than `LOOKUP_ROLLOUTS_LIMIT`: only the newest are shown.
    rollouts_truncated: bool = False


def _lookup_rollouts(
    environment_ids: list[int], *, now: datetime, flag_filter: str = ""
) -> tuple[dict[int, list[Rollout]], bool]:
    """The newest rollout of each flag per environment, if it may matter to a customer now
    (of the `LOOKUP_ROLLOUTS_LIMIT` newest), and whether there were more."""
    recent = now - timedelta(days=LOOKUP_RECENT_DAYS)
    qs = Rollout.objects.filter(environment_id__in=environment_ids, state__in=_LOOKUP_STATES)
    if flag_filter:
        qs = qs.filter(Q(flag__key__icontains=flag_filter) | Q(flag__name__icontains=flag_filter))
    rows = list(
        qs.filter(
            Q(state__in=Rollout.ACTIVE_STATES)
            | Q(finished_at__gte=recent)
            | Q(finished_at__isnull=True, updated_at__gte=recent)
        )
        .select_related("release", "flag", "environment")
        .annotate(**_state_event_subqueries())
        .prefetch_related(
            Prefetch("phases", queryset=Phase.objects.select_related("segment").order_by("order"))
        )
        .order_by("-created_at", "-id")[: LOOKUP_ROLLOUTS_LIMIT + 1]
    )
    truncated = len(rows) > LOOKUP_ROLLOUTS_LIMIT
    out: dict[int, list[Rollout]] = {}
    seen: set[tuple[int, int]] = set()
    for rollout in rows[:LOOKUP_ROLLOUTS_LIMIT]:
        pair = (rollout.environment_id, rollout.flag_id)
        if pair in seen:
            continue  # an older rollout of the same flag no longer decides anything
        seen.add(pair)
        out.setdefault(rollout.environment_id, []).append(rollout)
    return out, truncated


REASON_WORDS = {
    "TARGETING_MATCH": "a rule matched",
    "SPLIT": "in the percentage split",
    "DISABLED": "the flag is off here",
    "DEFAULT": "no rule matched (the default)",
    "STATIC": "the same for everyone",
    "UNKNOWN": "unknown",
    "ERROR": "error",
}
_FIELD_WORDS = {"userId": "user id", "sessionId": "session id", "hostId": "host id"}


def _stickiness_value(stickiness: str, ctx: Mapping[str, Any]) -> tuple[str, str | None]:
    props = ctx.get("properties") or {}
    if stickiness in ("", "default"):
        if ctx.get("userId"):
            return "user id", str(ctx["userId"])
        if ctx.get("sessionId"):
            return "session id", str(ctx["sessionId"])
        return "a random draw", None
    if stickiness == "random":
        return "a random draw", None
    value = ctx.get(stickiness, props.get(stickiness))
    return _FIELD_WORDS.get(stickiness, stickiness), (str(value) if value else None)


def _rule_words(rule: Mapping[str, Any], flag_key: str, ctx: Mapping[str, Any]) -> str:
    """Why this rule gives this customer the flag, or what it would take."""
    from flags import engine

    params = rule.get("parameters") or {}
    parts = []
    if rule.get("name", "flexibleRollout") == "flexibleRollout":
        pct = int(float(params.get("rollout", 100) or 0))
        what, value = _stickiness_value(str(params.get("stickiness") or "default"), ctx)
        if pct >= 100:
            parts.append("on for everyone")
        elif value is None:
            parts.append(f"{pct}% split on {what}")
        else:
            b = engine.bucket(str(params.get("groupId") or flag_key), value)
            parts.append(f"{pct}% split on {what}, bucket {b} {'≤' if b <= pct else '>'} {pct}")
    elif rule.get("name") == "default":
        parts.append("on for everyone")
    else:
        parts.append(f"strategy {rule.get('name')}")
    for c in rule.get("constraints") or []:
        values = c.get("values")
        shown = ", ".join(map(str, values)) if values is not None else str(c.get("value", ""))
        negated = "not " if c.get("inverted") else ""
        parts.append(f"if {c.get('contextName')} {negated}{c.get('operator', '').lower()} {shown}")
    if rule.get("segments"):
        parts.append("for a segment")
    return ", ".join(parts)


def _answer_words(
    *, value: Any, has_value: bool, reason: str, rule_index: int | None,
    rules: Sequence[Mapping[str, Any]], flag_key: str, ctx: Mapping[str, Any],
) -> tuple[str, int | None]:  # fmt: skip
    """The answer in plain words and the deciding rule's number (1-based)."""
    yes = value is True or (has_value and value not in (False, None, ""))
    head = (
        ("yes" if value is True else "no" if value is False else f"“{value}”")
        if has_value
        else ("the caller's default")
    )
    if reason == "DISABLED":
        return f"{head} — the flag is off in this environment", None
    if rule_index is not None and 0 <= rule_index < len(rules):
        return f"{head} — rule {rule_index + 1}: {_rule_words(rules[rule_index], flag_key, ctx)}", (
            rule_index + 1
        )
    if not yes and rules:
        # No rule matched: show the first percentage rule's bucket, the usual question.
        return f"{head} — no rule matched ({_rule_words(rules[0], flag_key, ctx)})", None
    return f"{head} — {REASON_WORDS.get(reason, reason.lower())}", None


def _is_in(rollout: Rollout, answer: FlagAnswer | None) -> bool | None:
    if answer is None or answer.error_code:
        return None
    if rollout.strategy == Rollout.Strategy.BLUE_GREEN:
        from rollouts.strategies import GREEN

        return answer.has_value and answer.value == GREEN
    return answer.value is True


def _entered_at(
    rollout: Rollout, phases: Sequence[Phase], unleash_context: Mapping[str, Any]
) -> datetime | None:
    """When this customer most likely got the new behaviour: the first applied phase whose
    percentage covers their bucket (Unleash hashing, group id = flag key), else the first
    applied phase with an audience segment (they are in through it), else the start."""
    from flags import engine
    from rollouts.strategies import STRATEGIES

    applied = [p for i, p in enumerate(phases) if p.applied_at and i <= rollout.current_phase_index]
    if not applied:
        return rollout.started_at
    spec = STRATEGIES.get(rollout.strategy)
    stickiness = spec.stickiness if spec else "default"
    props = unleash_context.get("properties") or {}
    if stickiness == "default":
        value = unleash_context.get("userId") or unleash_context.get("sessionId")
    elif stickiness in ("userId", "sessionId"):
        value = unleash_context.get(stickiness)
    elif stickiness == "random":
        value = None
    else:
        value = props.get(stickiness)
    if value:
        customer_bucket = engine.bucket(rollout.flag.key, str(value))
        for phase in applied:
            if (phase.percentage or 0) >= customer_bucket:
                return phase.applied_at
    for phase in applied:
        if phase.segment_id:
            return phase.applied_at
    return applied[0].applied_at


def _membership(
    rollout: Rollout,
    answer: FlagAnswer | None,
    unleash_context: Mapping[str, Any],
    *,
    now: datetime,
) -> Membership:
    phases = list(rollout.phases.all())
    exposure = rollout_exposure(
        rollout,
        phases,
        state_event_at=getattr(rollout, "state_event_at", None),
        state_event_reason=getattr(rollout, "state_event_reason", None) or "",
        now=now,
    )
    is_in = _is_in(rollout, answer)
    strategy = rollout.get_strategy_display().lower()
    if rollout.strategy == Rollout.Strategy.ROLLING:
        # A rolling deploy moves hosts, not customers: a user id says nothing about it.
        state = (
            "completed: every host runs the new version"
            if rollout.state == Rollout.State.COMPLETED
            else f"now {exposure.audience} of hosts"
        )
        return Membership(
            rollout=rollout, exposure=exposure, is_in=None, since=None,
            text=f"A rolling deploy moves hosts, not customers; {state}.", hosts=True,
        )  # fmt: skip
    step = (
        f"phase {exposure.phase_number} of {exposure.phase_count} ({exposure.phase_name})"
        if exposure.phase_number
        else ""
    )
    since = None
    if is_in is None:
        text = f"Unknown: the flag answered {answer.error_code if answer else 'nothing'}."
    elif is_in:
        since = _entered_at(rollout, phases, unleash_context)
        when = format_when(since, now=now)
        text = f"In the {strategy} since {when}" if since else f"In the {strategy}"
        text += f", {step}" if step else ""
        text += "."
        if rollout.state == Rollout.State.COMPLETED:
            done_at = format_when(exposure.since, now=now)
            text = f"Has it: the {strategy} completed at {done_at}."
        elif rollout.state in (Rollout.State.HELD, Rollout.State.PAUSED):
            text += f" {exposure.text}"
    else:
        text = f"Not in the {strategy}"
        if rollout.state == Rollout.State.ROLLED_BACK:
            text = f"Not in it: {exposure.text}"
        else:
            text += f" (now {exposure.audience}" + (f", {step})." if step else ").")
    return Membership(rollout=rollout, exposure=exposure, is_in=is_in, since=since, text=text)


def _flag_answer(
    compiled: Any,
    key: str,
    unleash_context: dict[str, Any],
    *,
    name: str,
    rules: Sequence[Mapping[str, Any]],
) -> FlagAnswer:
    """The flag's OFREP answer for the customer, with the answer in words."""
    from flags import ofrep

    raw = ofrep.evaluate_one(compiled, key, unleash_context)
    ev = compiled.snapshot.evaluate(key, unleash_context)
    words, rule_number = _answer_words(
        value=raw.get("value"),
        has_value="value" in raw,
        reason=raw.get("reason", ""),
        rule_index=ev.rule_index,
        rules=rules,
        flag_key=key,
        ctx=unleash_context,
    )
    return FlagAnswer(
        key=key,
        name=name,
        value=raw.get("value"),
        has_value="value" in raw,
        variant=raw.get("variant", ""),
        reason=raw.get("reason", ""),
        error_code=raw.get("errorCode", ""),
        error_details=raw.get("errorDetails", ""),
        words=words,
        rule_number=rule_number,
    )


def customer_lookup(
    *,
    context: Mapping[str, Any],
    environment_key: str = "",
    now: datetime | None = None,
    flag_filter: str = "",
    page: int | str | None = 1,
    per_page: int = LOOKUP_FLAGS_PER_PAGE,
) -> LookupResult:
    """One page of the flags' OFREP answers (in key order; `flag_filter`: only flags whose key
    or name contains it) and the rollouts the customer is in, per environment.

    A page number out of range gives the last page. Queries: the environments, the flags
    matching the filter (keys only, when filtering), the rollouts and their phases, and the
    page's names and rules; none per flag or rollout.
    """
    from flags import engine, snapshot

    now = now or timezone.now()
    flag_filter = flag_filter.strip()
    envs = environments()
    if environment_key:
        envs = [e for e in envs if e.key == environment_key]
    unleash_context = engine.context_from_ofrep(dict(context))
    matching: set[str] | None = None
    if flag_filter:
        matching = set(
            Flag.objects.filter(
                Q(key__icontains=flag_filter) | Q(name__icontains=flag_filter)
            ).values_list("key", flat=True)
        )
    rollouts, truncated = _lookup_rollouts([e.pk for e in envs], now=now, flag_filter=flag_filter)
    loaded: list[tuple[Environment, Any, Page[str] | None]] = []
    for env in envs:
        try:
            compiled = snapshot.load(env.pk)
        except snapshot.EnvironmentNotFound:
            loaded.append((env, None, None))
            continue
        shown = sorted(k for k in compiled.snapshot.flag_keys if matching is None or k in matching)
        loaded.append((env, compiled, Paginator(shown, per_page).get_page(page)))
    # The names and rules of the pages' flags (one query for every environment).
    page_keys = {key for _, _, keys in loaded if keys is not None for key in keys.object_list}
    rows = (
        FlagState.objects.filter(
            environment_id__in=[env.pk for env, _, _ in loaded], flag__key__in=page_keys
        ).values_list("environment_id", "flag__key", "flag__name", "rules")
        if page_keys
        else []
    )
    names: dict[str, str] = {}
    rules_of: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for environment_id, key, name, rules in rows:
        names[key] = name
        rules_of[(environment_id, key)] = rules or []
    answers: list[EnvironmentAnswer] = []
    for env, compiled, keys in loaded:
        if compiled is None or keys is None:
            answers.append(EnvironmentAnswer(env, [], [], error="This environment was deleted."))
            continue
        flags = [
            _flag_answer(
                compiled,
                key,
                unleash_context,
                name=names.get(key, key),
                rules=rules_of.get((env.pk, key), []),
            )
            for key in keys.object_list
        ]
        by_key = {f.key: f for f in flags}
        memberships = []
        for r in rollouts.get(env.pk, []):
            # The rollout's flag may be on another page: answered here (in memory).
            answer = by_key.get(r.flag.key)
            if answer is None and r.flag.key in compiled.snapshot:
                answer = _flag_answer(
                    compiled, r.flag.key, unleash_context, name=r.flag.name, rules=[]
                )
            memberships.append(_membership(r, answer, unleash_context, now=now))
        memberships.sort(key=lambda m: (not m.is_in, m.rollout.release.name.lower()))
        answers.append(EnvironmentAnswer(env, flags, memberships, page=keys))
    return LookupResult(
        context=dict(context),
        environments=answers,
        flag_filter=flag_filter,
        rollouts_truncated=truncated,
    )
